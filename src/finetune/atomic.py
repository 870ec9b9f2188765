"""Files written whole or not at all: a temporary name in the target's own folder, fsync, rename, fsync the folder.

A crash never leaves a half file under its final name, and a rename within one folder is atomic on every local
filesystem (a move from the system temp folder is a copy when the run dir is on another filesystem). A full disk
ends in ``DiskFull``: one line naming the folder, the space the file needed and the space that was free, with
the earlier file of that name intact. Torch-free.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from finetune.errors import UserError, causes


class DiskFull(UserError):
    """No space left to write a file; the earlier file of that name (if any) is unchanged."""


def partial_name(path: Path) -> Path:
    """Where ``path`` is written before it is renamed: a hidden name in the same folder, unique per process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", needed: int | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit fsync it and rename it to ``path``.

    ``needed``: the size being written, for the message when the disk is full (else the bytes written so far).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_name(path)
    handle = None
    try:
        with open(partial, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        fsync_folder(path.parent)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if is_disk_full(error):
            written = needed if needed is not None else _tell(handle)
            raise disk_full(path, written) from None
        raise


def write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """``path`` holds exactly ``data`` afterwards, or is unchanged."""
    with atomic_open(path, "wb", needed=len(data)) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    """``path`` holds exactly ``text`` (UTF-8) afterwards, or is unchanged."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    """``data`` as indented, key-sorted JSON, written atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def folder_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder`` (0 when there is no such folder)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def remove_dead_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files and folders (``.<name>.<pid>.tmp``, ``.partial``, ``.old``) that a process
    which is no longer alive left beside ``path``; return them. A live writer's are kept."""
    removed = []
    for leftover in path.parent.glob(f".{path.name}.*"):
        pid = leftover.name.removeprefix(f".{path.name}.").split(".")[0]
        if pid.isdigit() and leftover.suffix in (".tmp", ".partial", ".old") and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def replace_folder(partial: Path, final: Path) -> None:
    """Rename the finished folder ``partial`` to ``final``, replacing (not merging into) a folder already there."""
    if final.exists():
        stale = final.with_name(f".{final.name}.{os.getpid()}.old")
        os.replace(final, stale)
        os.replace(partial, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(partial, final)
    fsync_folder(final.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# How libraries that are not Python's own I/O report it (safetensors: "IoError(Os { code: 28, kind: StorageFull").
FULL_DISK_WORDS = ("StorageFull", "No space left on device", "Disk quota exceeded")


def is_disk_full(error: BaseException) -> bool:
    """True for "no space left on device" and "disk quota exceeded", also when wrapped in another error or
    reported by a library in words only (safetensors' writer)."""
    return any(
        (isinstance(c, OSError) and c.errno in (errno.ENOSPC, errno.EDQUOT))
        or any(w in str(c) for w in FULL_DISK_WORDS)
        for c in causes(error)
    )


def disk_full(path: Path, needed: int | None) -> DiskFull:
    """The one-line error for a file that did not fit: the folder, what it needed, what is free."""
    free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else None
    size = f"{_mib(needed)} needed" if needed else "space needed"
    room = f", {_mib(free)} free" if free is not None else ""
    return DiskFull(
        f"disk full: could not write {path.name} in {path.parent} ({size}{room}); free space there or "
        "point paths.log_dir at a disk with room, then rerun the same command to resume"
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _tell(handle: IO[Any] | None) -> int | None:
    try:
        return handle.tell() if handle is not None else None
    except (OSError, ValueError):
        return None
