"""Compact files of circuits: a JSON header, then one fixed-size uint64 bitset per circuit.

Written as a census streams (so a census never holds all its valid circuits at once) and
read back with :func:`read_circuits`. Layout: the 8-byte magic ``CCIRCS1\\n``, the header
length as a little-endian uint32, the UTF-8 JSON header (``sizes``, ``compat``, ``output``,
``n_words``, ...), zero padding to a multiple of 8, then ``n x n_words`` little-endian uint64.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.files import discard, forget, new_file_mode, temporary_beside

MAGIC = b"CCIRCS1\n"


class CircuitFileWriter:
    """Streams bitsets to ``path``; the file appears (atomically) only on :meth:`close`."""

    def __init__(self, path: Path, space: CircuitSpace, header: dict[str, Any] | None = None):
        self.path = Path(path)
        self.space = space
        self.count = 0
        fd, self._tmp = temporary_beside(self.path)
        try:
            self._fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            discard(self._tmp)
            raise
        meta = {"sizes": list(space.sizes), "compat": space.compat, "n_words": space.n_words}
        meta.update(header or {})
        blob = json.dumps(meta, sort_keys=True).encode()
        pad = (-(len(MAGIC) + 4 + len(blob))) % 8
        try:
            self._fh.write(MAGIC + struct.pack("<I", len(blob) + pad) + blob + b" " * pad)
        except BaseException:
            self.discard()
            raise

    def add(self, bits: np.ndarray) -> None:
        """Append ``(n, n_words)`` bitsets."""
        if len(bits):
            self._fh.write(np.ascontiguousarray(bits, dtype="<u8").tobytes())
            self.count += len(bits)

    def close(self) -> None:
        """Finish the file and move it into place."""
        self._fh.close()
        os.chmod(self._tmp, new_file_mode())
        os.replace(self._tmp, self.path)
        forget(self._tmp)

    def discard(self) -> None:
        """Drop the partial file (on error)."""
        try:
            self._fh.close()
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
