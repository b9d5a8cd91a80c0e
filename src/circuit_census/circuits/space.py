"""The space of admissible circuits of an architecture (docs/definitions.md, "Circuit").

A circuit is stored as a bitset over the network's edges, flattened layer by layer in the
C order of each ``W_l`` (row = receiving node, column = sending node): edge ``e`` is bit
``e % 64`` of word ``e // 64`` of a ``uint64`` vector. Many circuits form an
``(n, n_words)`` array.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from math import comb

import numpy as np

from circuit_census.errors import InputError

MELOUX2025 = "meloux2025"  # the reference code of Méloux et al. (SPEC, compat section)
COMPAT_MODES = (MELOUX2025,)


def check_compat(compat: str | None) -> str | None:
    """Return ``compat`` if it names a known compatibility mode (or is None)."""
    if compat is not None and compat not in COMPAT_MODES:
        raise InputError(f"unknown compatibility mode {compat!r}; known: {', '.join(COMPAT_MODES)}")
    return compat


@cache
def covering_matrices(rows: int, cols: int, rows_covered: bool) -> int:
    """Number of ``rows x cols`` 0/1 matrices with no zero column (and, if ``rows_covered``,
    no zero row): the ways to wire ``rows`` senders to ``cols`` receivers that all get input."""
    if not rows_covered:
        return (2**rows - 1) ** cols
    return sum((-1) ** k * comb(rows, k) * (2 ** (rows - k) - 1) ** cols for k in range(rows + 1))


@dataclass(frozen=True)
class CircuitSpace:
    """Admissible circuits of layer sizes ``sizes``, optionally in a compatibility mode."""

    sizes: tuple[int, ...]
    compat: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise InputError(f"layer sizes must be at least two positive numbers: {self.sizes}")
        check_compat(self.compat)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @cached_property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(n_l, n_{l-1})`` for each weight layer."""
        return tuple((self.sizes[i + 1], self.sizes[i]) for i in range(self.n_layers))

    @cached_property
    def edge_offsets(self) -> tuple[int, ...]:
        """Index of each layer's first edge; the last entry is the number of edges."""
        offs = [0]
        for out_n, in_n in self.layer_shapes:
            offs.append(offs[-1] + out_n * in_n)
        return tuple(offs)

    @property
    def n_edges(self) -> int:
        return self.edge_offsets[-1]

    @property
    def n_words(self) -> int:
        """uint64 words per circuit bitset."""
        return max(1, (self.n_edges + 63) // 64)

    def edge_index(self, layer: int, receiver: int, sender: int) -> int:
        """Flat index of edge ``W_layer[receiver, sender]``."""
        return self.edge_offsets[layer] + receiver * self.sizes[layer] + sender

    def count(self) -> int:
        """Exact number of admissible circuits, by dynamic programming over active-set sizes."""
        total = self._count(require_all_hidden=False)
        if self.compat == "meloux2025":
            total -= self._count(require_all_hidden=True)
        return total

    def _count(self, require_all_hidden: bool) -> int:
        # ways[a]: circuits of the layers so far whose last layer has one given active set of size a
        inputs_covered = self.compat == "meloux2025"
        ways = {self.sizes[0]: 1}
        for layer in range(1, len(self.sizes)):
            n = self.sizes[layer]
            last = layer == len(self.sizes) - 1
            if last or require_all_hidden:
                targets = [n]
            else:
                targets = list(range(n + 1))
            covered = inputs_covered or layer > 1
            new: dict[int, int] = {}
            for b in targets:
                new[b] = sum(
                    comb(self.sizes[layer - 1], a) * w * covering_matrices(a, b, covered)
                    if layer > 1
                    else w * covering_matrices(a, b, covered)
                    for a, w in ways.items()
                )
            ways = new
        return ways[self.sizes[-1]]

    def masks_to_bits(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """One circuit's per-layer 0/1 edge masks to its bitset (``n_words`` uint64)."""
        flat = np.concatenate([np.asarray(m, dtype=bool).reshape(-1) for m in masks])
        if flat.size != self.n_edges:
            raise InputError(f"edge masks have {flat.size} edges; the space has {self.n_edges}")
        return bools_to_bits(flat[None, :], self.n_words)[0]

    def bits_to_masks(self, bits: np.ndarray) -> list[np.ndarray]:
        """One circuit's bitset to its per-layer ``n_l x n_{l-1}`` uint8 masks."""
        flat = bits_to_bools(np.asarray(bits, dtype=np.uint64)[None, :], self.n_edges)[0]
        offs = self.edge_offsets
        return [
            flat[offs[i] : offs[i + 1]].reshape(shape).astype(np.uint8)
            for i, shape in enumerate(self.layer_shapes)
        ]

    def is_admissible(self, masks: Sequence[np.ndarray]) -> bool:
        """Whether per-layer edge masks form an admissible circuit of this space."""
        ms = [np.asarray(m, dtype=bool) for m in masks]
        if [m.shape for m in ms] != list(self.layer_shapes):
            return False
        if not ms[-1].any(axis=1).all():
            return False
        all_hidden = True
        for layer in range(1, self.n_layers):
            has_in = ms[layer - 1].any(axis=1)
            has_out = ms[layer].any(axis=0)
            if np.any(has_in != has_out):
                return False
            all_hidden &= bool(has_in.all())
        if self.compat == "meloux2025":
            if not ms[0].any(axis=0).all():
                return False
            if self.n_layers > 1 and all_hidden:
                return False
        return True


def bools_to_bits(flags: np.ndarray, n_words: int) -> np.ndarray:
    """``(n, n_edges)`` booleans to ``(n, n_words)`` uint64 bitsets."""
    n, e = flags.shape
    padded = np.zeros((n, n_words * 64), dtype=bool)
    padded[:, :e] = flags
    packed = np.packbits(padded, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64).reshape(n, n_words)


def bits_to_bools(bits: np.ndarray, n_edges: int) -> np.ndarray:
    """``(n, n_words)`` uint64 bitsets to ``(n, n_edges)`` booleans."""
    raw = np.ascontiguousarray(bits.astype("<u8")).view(np.uint8)
    return np.unpackbits(raw, axis=1, bitorder="little")[:, :n_edges].astype(bool)


def popcount(bits: np.ndarray) -> np.ndarray:
    """Number of edges in each circuit of an ``(n, n_words)`` bitset array."""
    words = np.ascontiguousarray(bits, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # NumPy 2
        counts = np.bitwise_count(words)
    else:
        raw = words.view(np.uint8)
        counts = _BYTE_POPCOUNT[raw]
    return counts.sum(axis=1, dtype=np.int64)


_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
_BYTE_REVERSED = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], dtype=np.uint8)


def _reversed_words(bits: np.ndarray) -> np.ndarray:
    """Each uint64 word with its bit order reversed (bit 0 becomes bit 63)."""
    raw = np.ascontiguousarray(bits, dtype="<u8").view(np.uint8)
    n, n_bytes = raw.shape
    flipped = _BYTE_REVERSED[raw].reshape(n, n_bytes // 8, 8)[:, :, ::-1]
    return np.ascontiguousarray(flipped).view("<u8").reshape(n, n_bytes // 8).astype(np.uint64)


def sort_circuits(bits: np.ndarray) -> np.ndarray:
    """Circuits in the canonical order: by number of edges, then by their sorted edge-index
    lists (lexicographically: a circuit holding a lower-numbered edge comes first).

    Among circuits of one size, the one holding the lowest edge of their symmetric
    difference comes first; with each word's bits reversed (edge ``64 w`` as its most
    significant bit) that is the larger word, word 0 first. So it sorts by popcount
    ascending, then by each reversed word descending: integer keys, no bit matrix.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2:
        raise InputError(f"circuits must be an (n, n_words) bitset array, got shape {bits.shape}")
    if not np.issubdtype(bits.dtype, np.integer):
        raise InputError(f"circuit bitsets must be uint64, got {bits.dtype}")
    bits = np.ascontiguousarray(bits, dtype=np.uint64)
    if bits.shape[0] <= 1:
        return bits.copy()
    descending = ~_reversed_words(bits)  # ascending order of ~w is descending order of w
    sizes = popcount(bits).astype(np.uint16)  # a radix sort's key
    keys = [descending[:, w] for w in range(bits.shape[1] - 1, -1, -1)] + [sizes]
    return bits[np.lexsort(keys)]
