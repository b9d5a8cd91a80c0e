"""Compact files of circuits: a JSON header, then one fixed-size uint64 bitset per circuit.

Written as a census streams (so a census never holds all its valid circuits at once), only
when asked for, and read back with :func:`read_circuits`. The writer stops at a size limit
(and at the free space of its file system), removing the partial file, so that a census
of billions of valid circuits cannot fill a disk.

Layout: the 8-byte magic ``CCIRCS1\\n``, the header length as a little-endian uint32, the
UTF-8 JSON header (``sizes``, ``compat``, ``output``, ``n_words``, ...), zero padding to a
multiple of 8, then ``n x n_words`` little-endian uint64.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import DiskFull, InputError, is_disk_full
from circuit_census.files import (
    discard,
    forget,
    format_size,
    new_file_mode,
    temporary_beside,
)

MAGIC = b"CCIRCS1\n"


def _header(space: CircuitSpace, header: dict[str, Any] | None) -> bytes:
    """The magic, the header's length and the padded JSON header of a circuits file."""
    meta = {"sizes": list(space.sizes), "compat": space.compat, "n_words": space.n_words}
    meta.update(header or {})
    blob = json.dumps(meta, sort_keys=True).encode()
    pad = (-(len(MAGIC) + 4 + len(blob))) % 8
    return MAGIC + struct.pack("<I", len(blob) + pad) + blob + b" " * pad


def circuits_file_size(
    space: CircuitSpace, n_circuits: int, header: dict[str, Any] | None = None
) -> int:
    """Bytes of a circuits file holding ``n_circuits`` circuits of ``space``."""
    return len(_header(space, header)) + 8 * space.n_words * n_circuits


def free_space(path: Path) -> int:
    """Bytes free to this user on the file system that ``path`` would be written to (its
    nearest existing folder)."""
    folder = Path(path).absolute().parent
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


class CircuitFileWriter:
    """Streams bitsets to ``path``; the file appears (atomically) only on :meth:`close`.

    ``max_bytes``: the largest file allowed (``None``: no limit but the free space). A
    circuit that would take the file past it, or past the free space its file system had
    when the writer opened, raises :class:`InputError` (a full disk :class:`DiskFull`);
    the caller then calls :meth:`discard`.
    """

    def __init__(
        self,
        path: Path,
        space: CircuitSpace,
        header: dict[str, Any] | None = None,
        max_bytes: int | None = None,
    ):
        self.path = Path(path)
        self.space = space
        self.count = 0
        blob = _header(space, header)
        free = free_space(self.path)
        self.limit = (max_bytes, "--max-file-size")
        if max_bytes is None or free < max_bytes:
            self.limit = (free, "the free space on its file system")
        self.size = 0
        try:
            fd, self._tmp = temporary_beside(self.path)
        except OSError as exc:
            raise DiskFull(self.path) if is_disk_full(exc) else exc from None
        try:
            self._fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            discard(self._tmp)
            raise
        self._write(blob)

    def _write(self, data: bytes, n_circuits: int = 0) -> None:
        """Append ``data`` (``n_circuits`` bitsets), within the limit; a full disk raises
        :class:`DiskFull`."""
        if self.size + len(data) > self.limit[0]:
            limit, why = self.limit
            raise InputError(
                f"the circuits file {self.path.name} would pass {format_size(limit)} "
                f"({why}) with {self.count + n_circuits:,} valid circuits found so far; the "
                "census stopped and wrote nothing: raise --max-file-size, free some space, "
                "or leave out --circuits-file"
            )
        try:
            self._fh.write(data)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path) from None
            raise
        self.size += len(data)

    def add(self, bits: np.ndarray) -> None:
        """Append ``(n, n_words)`` bitsets."""
        if len(bits):
            self._write(np.ascontiguousarray(bits, dtype="<u8").tobytes(), len(bits))
            self.count += len(bits)

    def close(self) -> None:
        """Finish the file and move it into place."""
        try:
            self._fh.close()
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFull(self.path) from None
            raise
        os.chmod(self._tmp, new_file_mode())
        os.replace(self._tmp, self.path)
        forget(self._tmp)

    def discard(self) -> None:
        """Drop the partial file (on error)."""
        try:
            self._fh.close()
        except OSError:  # a full disk cannot take the buffered rest: it is dropped anyway
            pass
        finally:
            discard(self._tmp)


def read_circuits(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Header and ``(n, n_words)`` uint64 bitsets of a circuits file (memory-mapped)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            if magic != MAGIC:
                raise InputError(f"{path.name} is not a circuit-census circuits file")
            (length,) = struct.unpack("<I", fh.read(4))
            header = json.loads(fh.read(length).decode())
    except (OSError, struct.error, ValueError) as exc:
        raise InputError(f"cannot read circuits file {path}: {exc}") from None
    offset = len(MAGIC) + 4 + length
    n_words = int(header["n_words"])
    size = path.stat().st_size - offset
    if size % (8 * n_words):
        raise InputError(f"circuits file {path.name} is truncated")
    if size == 0:
        return header, np.zeros((0, n_words), dtype=np.uint64)
    bits = np.memmap(
        path, dtype="<u8", mode="r", offset=offset, shape=(size // (8 * n_words), n_words)
    )
    return header, bits
