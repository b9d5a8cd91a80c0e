"""Uniform random circuits: an exact sampler built on the counting dynamic program.

The admissible circuits of an architecture are counted layer by layer over the sizes of
the active sets (:meth:`CircuitSpace.count`). Drawing one uniformly runs that count
backwards: pick the previous layer's active-set size with probability proportional to
the number of circuits through it, then the active set itself (uniform among sets of
that size), then the edges between the two active sets (a uniform 0/1 matrix with no
empty column, and no empty row where the senders are hidden neurons), column by column
with exact completion counts. Counts are Python integers, exact at any size. The
``meloux2025`` mode leaves out circuits that keep every hidden neuron: while every hidden
layer drawn so far is whole, a whole next layer is weighted by the circuits below it that
do not keep every neuron (the count minus the all-kept count), so no draw is rejected.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from math import comb

import numpy as np

from circuit_census.circuits.space import CircuitSpace, bools_to_bits, covering_matrices


@cache
def _completions(n_rows: int, uncovered: int, columns: int) -> int:
    """Ways to fill ``columns`` non-zero columns of ``n_rows`` bits so that every one of
    ``uncovered`` given rows gets a 1 (the other rows are free)."""
    return sum(
        (-1) ** j * comb(uncovered, j) * (2 ** (n_rows - j) - 1) ** columns
        for j in range(uncovered + 1)
    )


def _choose(weights: list[int], rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to exact integer weights."""
    total = sum(weights)
    # A uniform integer below total, exactly (floats lose precision past 2^53).
    if total < 1 << 62:
        r = int(rng.integers(total))
    else:
        r = int.from_bytes(rng.bytes((total.bit_length() + 7) // 8 + 8), "little") % total
    for i, w in enumerate(weights):
        if r < w:
            return i
        r -= w
    raise AssertionError("weights exhausted")  # pragma: no cover


def _subset(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform k-subset of range(n), as sorted indices."""
    return np.sort(rng.choice(n, size=k, replace=False))


# Below this chance that a uniform 0/1 matrix already covers, a covering matrix is drawn
# column by column instead of by drawing whole matrices until one covers.
ACCEPT_AT_LEAST = 0.25


@cache
def _acceptance(n_rows: int, n_cols: int) -> float:
    """The chance that a uniform ``n_rows x n_cols`` 0/1 matrix has no zero row or column."""
    return covering_matrices(n_rows, n_cols, True) / 2 ** (n_rows * n_cols)


def covering_matrix(
    n_rows: int, n_cols: int, rows_covered: bool, rng: np.random.Generator
) -> np.ndarray:
    """A uniform ``n_rows x n_cols`` 0/1 matrix with no zero column (and no zero row if
    ``rows_covered``). Without covered rows the columns are independent non-zero vectors,
    each redrawn until non-zero; with them, whole uniform matrices until one covers where
    that is likely (every covering matrix is then equally likely), else column by column
    with exact completion counts."""
    if not rows_covered:
        m = rng.random((n_rows, n_cols)) < 0.5
        empty = ~m.any(axis=0)
        while empty.any():
            m[:, empty] = rng.random((n_rows, int(empty.sum()))) < 0.5
            empty = ~m.any(axis=0)
        return m
    if _acceptance(n_rows, n_cols) >= ACCEPT_AT_LEAST:
        while True:
            m = rng.random((n_rows, n_cols)) < 0.5
            if m.any(axis=0).all() and m.any(axis=1).all():
                return m
    out = np.zeros((n_rows, n_cols), dtype=bool)
    uncovered = list(range(n_rows))
    for col in range(n_cols):
        left = n_cols - col - 1
        k = len(uncovered)
        free = n_rows - k
        # m: how many of the uncovered rows this column covers.
        weights = []
        for m in range(k + 1):
            vectors = comb(k, m) * 2**free - (1 if m == 0 else 0)  # the zero column is out
            weights.append(vectors * _completions(n_rows, k - m, left))
        m = _choose(weights, rng)
        newly = [uncovered[i] for i in _subset(k, m, rng)] if m else []
        while True:  # the free rows: any pattern, but not an all-zero column
            rest = rng.random(free) < 0.5
            if m or rest.any():
                break
        covered_rows = [r for r in range(n_rows) if r not in uncovered]
        out[newly, col] = True
        out[np.asarray(covered_rows, dtype=np.int64)[rest], col] = True
        uncovered = [r for r in uncovered if r not in newly]
    assert not uncovered
    return out


def _forward_ways(space: CircuitSpace) -> list[dict[int, int]]:
    """``ways[l][a]``: circuits of layers up to ``l`` ending in one given active set of
    size ``a`` in layer ``l`` (the count's forward table, kept for sampling)."""
    sizes = space.sizes
    inputs_covered = space.compat == "meloux2025"
    tables = [{sizes[0]: 1}]
    for layer in range(1, len(sizes)):
        n = sizes[layer]
        last = layer == len(sizes) - 1
        covered = inputs_covered or layer > 1
        new: dict[int, int] = {}
        for b in [n] if last else range(n + 1):
            new[b] = sum(
                (comb(sizes[layer - 1], a) if layer > 1 else 1)
                * w
                * covering_matrices(a, b, covered)
                for a, w in tables[-1].items()
            )
        tables.append(new)
    return tables


def _all_kept_ways(space: CircuitSpace) -> list[int]:
    """``kept[l]``: circuits of layers up to ``l`` keeping every node of hidden layers
    ``1..l`` (``kept[0] = 1``: the inputs); the forward table's ``[l][n_l]`` counts them
    and more."""
    sizes = space.sizes
    kept = [1]
    for layer in range(1, len(sizes) - 1):
        covered = space.compat == "meloux2025" or layer > 1
        kept.append(kept[-1] * covering_matrices(sizes[layer - 1], sizes[layer], covered))
    return kept


def sample_circuits(space: CircuitSpace, n: int, seed: int = 0) -> np.ndarray:
    """``n`` circuits drawn uniformly (with replacement) from the admissible circuits, as
    an ``(n, n_words)`` bitset array; the same seed gives the same circuits."""
    blocks = list(sample_blocks(space, n, seed))
    return np.concatenate(blocks) if blocks else np.zeros((0, space.n_words), dtype=np.uint64)


def sample_blocks(
    space: CircuitSpace, n: int, seed: int = 0, block: int = 256
) -> Iterator[np.ndarray]:
    """The circuits of :func:`sample_circuits` (the same ones, in the same order), as
    successive bitset arrays of at most ``block`` rows, so that a caller can judge them
    and report progress as they come."""
    rng = np.random.default_rng(seed)
    tables = _forward_ways(space)
    # meloux2025 leaves out the circuits that keep every hidden node
    kept = _all_kept_ways(space) if space.compat == "meloux2025" else None
    for start in range(0, n, block):
        out = np.zeros((min(block, n - start), space.n_edges), dtype=bool)
        for drawn in range(len(out)):
            masks = _draw_masks(space, tables, kept, rng)
            out[drawn] = np.concatenate([m.reshape(-1) for m in masks])
        yield bools_to_bits(out, space.n_words)


def _draw_masks(
    space: CircuitSpace,
    tables: list[dict[int, int]],
    kept: list[int] | None,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """One circuit's per-layer masks, drawn backwards from the output layer; with
    ``kept`` (the all-kept counts), never one that keeps every hidden node."""
    sizes = space.sizes
    inputs_covered = space.compat == "meloux2025"
    masks = [np.zeros(shape, dtype=bool) for shape in space.layer_shapes]
    active = np.arange(sizes[-1])  # the output layer: every output active
    whole_so_far = kept is not None  # every hidden layer drawn so far keeps every node
    for layer in range(len(sizes) - 1, 0, -1):
        prev = sizes[layer - 1]
        covered = inputs_covered or layer > 1
        b = active.size
        if layer == 1:
            prev_active = np.arange(prev)
        else:
            options = sorted(tables[layer - 1])
            weights = []
            for a in options:
                below = tables[layer - 1][a]
                if whole_so_far and a == prev:
                    below -= kept[layer - 1]  # whole all the way down: left out
                weights.append(comb(prev, a) * below * covering_matrices(a, b, covered))
            a = options[_choose(weights, rng)]
            whole_so_far = whole_so_far and a == prev
            prev_active = _subset(prev, a, rng)
        if prev_active.size:
            block = covering_matrix(prev_active.size, b, covered, rng)
            masks[layer - 1][np.ix_(active, prev_active)] = block.T
        active = prev_active
    return masks
