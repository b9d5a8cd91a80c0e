"""Writing result files safely: whole or not at all, with a plain new file's permissions.

Every temporary file is written next to its target as ``.NAME.*.tmp`` and registered here
while it exists, so that :func:`remove_temporaries` can delete what is left when the
process must stop at once (a second Ctrl-C; see ``circuit_census.cli.app``). On an
ordinary error or a first interrupt the ``except BaseException`` cleanups remove them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from circuit_census.errors import DiskFull, is_disk_full

_TEMPORARIES: set[Path] = set()


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file (0o666 less the umask); a temporary file
    from ``mkstemp`` gets 0o600 instead, which would follow it when renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new temporary file ``.NAME.*.tmp`` in ``path``'s folder (created if needed), open
    for writing: its descriptor and path. It stays registered until :func:`forget`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    _TEMPORARIES.add(Path(tmp))
    return fd, Path(tmp)


def forget(tmp: Path) -> None:
    """``tmp`` was renamed into place or removed: no longer a temporary to clean up."""
    _TEMPORARIES.discard(Path(tmp))


def discard(tmp: Path) -> None:
    """Remove a temporary file (if still there) and forget it."""
    Path(tmp).unlink(missing_ok=True)
    forget(tmp)


def remove_temporaries() -> None:
    """Delete every temporary file this process still has (before stopping at once)."""
    for tmp in list(_TEMPORARIES):
        try:
            discard(tmp)
        except OSError:
            pass


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file.
    A full file system raises :class:`DiskFull` naming ``path``, the temporary removed."""
    path = Path(path)
    try:
        fd, tmp = temporary_beside(path)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(path) from None
        raise
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
        forget(tmp)
    except BaseException as exc:
        discard(tmp)
        if is_disk_full(exc) and not isinstance(exc, DiskFull):
            raise DiskFull(path) from None
        raise


_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB")


def format_size(n_bytes: int) -> str:
    """A size for a person, in decimal units as disks are sold: ``2.1 GB``, ``512 bytes``."""
    if n_bytes < 1000:
        return f"{n_bytes:,} byte{'' if n_bytes == 1 else 's'}"
    value = float(n_bytes)
    for unit in _UNITS:
        value /= 1000
        if value < 999.95 or unit == _UNITS[-1]:
            return f"{value:,.1f} {unit}"
    raise AssertionError("unreachable")
