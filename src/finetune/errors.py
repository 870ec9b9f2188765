"""The one exception type for mistakes a user can fix (bad config, missing file, wrong column)."""

from __future__ import annotations

from collections.abc import Iterator


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and what would be right.

    The CLI prints it as one line and exits with status 2 instead of showing a traceback.
    """


class Refused(SystemExit):
    """Exit status 2 after the one ``error:`` line was printed; ``line`` keeps it for the failure record."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line


def refuse(message: str) -> Refused:
    """Print ``error: <message>`` on stderr and return the exit to raise (``raise refuse(...) from None``)."""
    import sys

    print(f"error: {message}", file=sys.stderr)
    return Refused(message)


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from or during, innermost last (bounded: a chain can loop)."""
    for _ in range(10):
        if error is None:
            return
        yield error
        error = error.__cause__ or error.__context__


def caused_by(error: BaseException | None, kind: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """True when ``error`` or one of its causes is a ``kind``."""
    return any(isinstance(cause, kind) for cause in causes(error))
