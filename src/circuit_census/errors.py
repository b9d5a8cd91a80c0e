"""The error types a person sees: bad input, and a full disk.

Library code raises :class:`InputError` with a message written for a person; the CLI turns
it into one line on stderr and exit code 2, never a traceback. A write that finds its file
system full raises :class:`DiskFull` (after removing what it half wrote); the CLI turns it
into one line and exit code 1.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

# errno values of a write that found no room: the file system is full, or a quota is used up
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class InputError(ValueError):
    """Bad user input: a message for a person, never a traceback."""


class DiskFull(OSError):
    """No space was left to write ``path``; whatever was half written is removed."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(errno.ENOSPC, "no space left on device", str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"no space left on the device to write {self.path}"


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write found no room: an ``OSError`` with a :data:`NO_SPACE`
    errno, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in NO_SPACE
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return False
