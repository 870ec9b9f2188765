"""The one exception type for mistakes a user can fix (bad config, missing file, wrong column)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and what would be right.

    The CLI prints it as one line and exits with status 2 instead of showing a traceback.
    """
