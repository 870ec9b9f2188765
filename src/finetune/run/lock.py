"""One process trains in a run dir at a time: an advisory lock file held while it does.

The lock is ``fcntl.flock`` on ``<run dir>/.run.lock``: the kernel drops it when the holder exits, however it
exits (kill -9 included), so a stale lock of a killed process is simply taken over. The file records the
holder (pid, host, start time) for the message a second command prints. Torch-free: it runs before the
preflight's heavy imports.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from finetune.errors import UserError

LOCK_FILE = ".run.lock"


def holder(run_dir: Path) -> str | None:
    """Who trains in ``run_dir`` now ("pid 123 on host h since 12:00:01"), or None if nobody does.

    Read only: opening the lock file to test it changes nothing in the run dir.
    """
    path = run_dir / LOCK_FILE
    try:
        handle = path.open("r")
    except OSError:
        return None  # no lock file: nobody has trained here since the lock existed
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(handle.read())
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on host {info['host']} since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "another process"


class RunLock:
    """Held while this process trains in ``run_dir`` (or writes a file: ``name``, ``busy``); ``release()`` (or
    process exit) frees it.

    Args:
        run_dir: the folder the lock file goes in.
        name: the lock file's name.
        busy: the refusal when a live process holds it, with ``{who}``; None: the run dir's.

    Raises:
        UserError: when a live process holds the lock.
    """

    def __init__(self, run_dir: Path, name: str = LOCK_FILE, busy: str | None = None) -> None:
        self.path = run_dir / name
        run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # the file can be unlinked by a releasing holder between open and flock: retry
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                who = _describe(handle.read())
                handle.close()
                trained = f"{run_dir} is being trained by {{who}}: wait for it to finish, or stop it; "
                busy = busy or trained + "resume=false starts a separate run"
                raise UserError(busy.format(who=who)) from None
            if _same_file(handle, self.path):
                break
            handle.close()
        else:
            raise UserError(f"could not lock {self.path}: it keeps being replaced by another process")
        self._handle = handle
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        handle.truncate(0)
        handle.write(json.dumps(info))
        handle.flush()

    def release(self) -> None:
        """Remove the lock file, then unlock (unlinking first: a waiter never locks a file about to vanish)."""
        if self._handle.closed:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def _same_file(handle, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False
