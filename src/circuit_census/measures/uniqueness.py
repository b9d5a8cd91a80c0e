"""Uniqueness measures of a census (docs/definitions.md: uniqueness measures, effective rank).

Everything here works on the valid circuits of a census as ``(n, n_words)`` uint64 bitsets
(:mod:`circuit_census.circuits.space` conventions) and is exact, except the pairwise overlap
figures of very large valid sets, which are estimated from a seeded sample of pairs and
flagged as such (``pairs_estimated``).

- :func:`minimal_circuits`: valid circuits with no valid proper sub-circuit.
- :func:`circuit_measures`: counts, identifiability, pairwise overlap, smallest sizes, and
  node / edge frequencies, as a :class:`Measures`.
- :func:`hidden_effective_rank`: effective rank of each hidden layer's activations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from circuit_census.circuits.space import CircuitSpace, bits_to_bools, popcount, sort_circuits
from circuit_census.errors import InputError
from circuit_census.network import Network
from circuit_census.tasks.complexity import effective_rank

if TYPE_CHECKING:  # pragma: no cover
    from circuit_census.circuits.census import CensusResult

#: Largest number of circuit pairs whose overlap is computed exactly (all pairs).
MAX_EXACT_PAIRS = 20_000_000
#: Number of random pairs drawn when there are more pairs than ``max_pairs``.
SAMPLE_PAIRS = 1_000_000
#: Rows converted to booleans at a time when counting frequencies.
_CHUNK = 1 << 16
#: Up to this many circuits, minimal circuits and pair overlaps are computed with NumPy:
#: as fast as the compiled kernels there, and nothing to compile on a first run.
SMALL_SET = 2_000

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S4 = np.uint64(4)
_S56 = np.uint64(56)


# --------------------------------------------------------------------------- kernels


@numba.njit(cache=True, inline="always")
def _popcount64(x: np.uint64) -> int:
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return int((x * _H01) >> _S56)


@numba.njit(cache=True, parallel=True)
def _minimal_flags(bits: np.ndarray, pc: np.ndarray) -> np.ndarray:
    """``bits`` sorted by popcount ``pc``: flag the rows that contain no earlier-found
    minimal row. Distinct rows of one popcount never contain one another, so a row is
    compared only with the minimal rows of strictly smaller popcount (identical rows are
    both flagged; the caller removes duplicates)."""
    n, n_words = bits.shape
    flags = np.zeros(n, dtype=np.bool_)
    found = np.empty((n, n_words), dtype=np.uint64)  # minimal rows found so far, packed
    n_found = 0
    start = 0
    while start < n:
        stop = start
        while stop < n and pc[stop] == pc[start]:
            stop += 1
        n_before = n_found  # minimal rows of smaller popcount
        for r in numba.prange(start, stop):
            covered = False
            for t in range(n_before):
                inside = True
                for w in range(n_words):
                    if found[t, w] & ~bits[r, w]:
                        inside = False
                        break
                if inside:
                    covered = True
                    break
            flags[r] = not covered
        for r in range(start, stop):
            if flags[r]:
                for w in range(n_words):
                    found[n_found, w] = bits[r, w]
                n_found += 1
        start = stop
    return flags


@numba.njit(cache=True, inline="always")
def _pair(bits: np.ndarray, pc: np.ndarray, i: int, j: int) -> tuple[float, int, int]:
    inter = 0
    for w in range(bits.shape[1]):
        inter += _popcount64(bits[i, w] & bits[j, w])
    union = pc[i] + pc[j] - inter
    jac = inter / union if union > 0 else 1.0
    nested = 1 if (inter == pc[i] or inter == pc[j]) else 0
    disjoint = 1 if inter == 0 else 0
    return jac, nested, disjoint


@numba.njit(cache=True)
def _all_pairs(bits: np.ndarray, pc: np.ndarray) -> tuple[float, int, int]:
    """Sums of Jaccard index, nested pairs and disjoint pairs over all pairs ``i < j``."""
    n = bits.shape[0]
    jac_sum = 0.0
    nested = 0
    disjoint = 0
    for i in range(n):
        row_jac = 0.0  # summing per row keeps the float error small
        for j in range(i + 1, n):
            jac, nes, dis = _pair(bits, pc, i, j)
            row_jac += jac
            nested += nes
            disjoint += dis
        jac_sum += row_jac
    return jac_sum, nested, disjoint


@numba.njit(cache=True)
def _some_pairs(
    bits: np.ndarray, pc: np.ndarray, ii: np.ndarray, jj: np.ndarray
) -> tuple[float, int, int]:
    """The same sums over the pairs ``(ii[k], jj[k])``."""
    jac_sum = 0.0
    nested = 0
    disjoint = 0
    for k in range(ii.shape[0]):
        jac, nes, dis = _pair(bits, pc, ii[k], jj[k])
        jac_sum += jac
        nested += nes
        disjoint += dis
    return jac_sum, nested, disjoint


# --------------------------------------------------------------------------- helpers


def _check_bits(valid: np.ndarray, space: CircuitSpace | None = None) -> np.ndarray:
    bits = np.asarray(valid)
    if bits.ndim != 2:
        raise InputError(f"circuits must be an (n, n_words) bitset array, got shape {bits.shape}")
    if bits.dtype != np.uint64:
        if not np.issubdtype(bits.dtype, np.integer):
            raise InputError(f"circuit bitsets must be uint64, got {bits.dtype}")
        bits = bits.astype(np.uint64)
    if space is not None and bits.shape[1] != space.n_words:
        raise InputError(
            f"circuit bitsets have {bits.shape[1]} words; the space has {space.n_words}"
        )
    return np.ascontiguousarray(bits)


def minimal_circuits(valid: np.ndarray) -> np.ndarray:
    """The valid circuits with no valid proper subset among ``valid``: the minimal ones.

    Exact: the circuits are visited by increasing number of edges; a circuit is not minimal
    exactly when it contains a minimal circuit found before it (any valid proper subset
    contains a minimal one). The cost is ``n_valid x n_minimal`` word operations at worst,
    never all pairs of the valid set. Duplicate rows count once. Returned in the canonical
    order of :func:`sort_circuits` as an ``(n_minimal, n_words)`` uint64 array.
    """
    bits = _check_bits(valid)
    if bits.shape[0] == 0:
        return bits.copy()
    pc = popcount(bits)
    order = np.argsort(pc, kind="stable")
    bits, pc = np.ascontiguousarray(bits[order]), np.ascontiguousarray(pc[order])
    flags = _minimal_flags_small(bits, pc) if len(bits) <= SMALL_SET else _minimal_flags(bits, pc)
    return sort_circuits(np.unique(bits[flags], axis=0))


def _minimal_flags_small(bits: np.ndarray, pc: np.ndarray) -> np.ndarray:
    """:func:`_minimal_flags` with NumPy, one popcount at a time (for a few circuits)."""
    flags = np.zeros(len(bits), dtype=bool)
    found = bits[:0]
    for size in np.unique(pc):
        rows = np.flatnonzero(pc == size)
        inside = ((found[None, :, :] & ~bits[rows][:, None, :]) == 0).all(axis=2)
        flags[rows] = ~inside.any(axis=1)
        found = np.concatenate([found, bits[rows[flags[rows]]]])
    return flags


def _all_pairs_small(bits: np.ndarray, pc: np.ndarray) -> tuple[float, int, int]:
    """:func:`_all_pairs` with NumPy (for a few circuits)."""
    ii, jj = np.triu_indices(len(bits), k=1)
    inter = popcount(bits[ii] & bits[jj])
    union = pc[ii] + pc[jj] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        jaccard = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    nested = (inter == pc[ii]) | (inter == pc[jj])
    return float(jaccard.sum()), int(nested.sum()), int((inter == 0).sum())


@dataclass(frozen=True)
class Overlap:
    """Pairwise overlap of a set of circuits (unordered pairs of distinct rows)."""

    n_pairs: int
    n_pairs_sampled: int  # pairs actually compared (= n_pairs when exact)
    estimated: bool
    mean_jaccard: float | None  # None without pairs
    nested_fraction: float | None  # None without pairs
    n_disjoint_pairs: int  # rounded estimate when ``estimated``


def pair_overlap(
    bits: np.ndarray,
    *,
    max_pairs: int = MAX_EXACT_PAIRS,
    sample_pairs: int = SAMPLE_PAIRS,
    seed: int = 0,
) -> Overlap:
    """Mean Jaccard index, fraction of nested pairs and number of edge-disjoint pairs over
    all unordered pairs of rows of ``bits``: exactly when there are at most ``max_pairs``
    pairs, else estimated from ``sample_pairs`` pairs drawn uniformly (with replacement)
    with ``numpy.random.default_rng(seed)``; the disjoint count then scales the sampled
    fraction to all pairs."""
    bits = _check_bits(bits)
    n = bits.shape[0]
    n_pairs = n * (n - 1) // 2
    if n_pairs == 0:
        return Overlap(0, 0, False, None, None, 0)
    pc = popcount(bits)
    if n_pairs <= max_pairs:
        pairs = _all_pairs_small if n <= SMALL_SET else _all_pairs
        jac, nested, disjoint = pairs(bits, pc)
        return Overlap(n_pairs, n_pairs, False, jac / n_pairs, nested / n_pairs, int(disjoint))
    if sample_pairs < 1:
        raise InputError("sample_pairs must be at least 1")
    rng = np.random.default_rng(seed)
    ii = rng.integers(0, n, size=sample_pairs)
    jj = rng.integers(0, n - 1, size=sample_pairs)
    jj += jj >= ii  # uniform over the other n - 1 rows
    jac, nested, disjoint = _some_pairs(bits, pc, ii, jj)
    return Overlap(
        n_pairs,
        sample_pairs,
        True,
        jac / sample_pairs,
        nested / sample_pairs,
        round(Fraction(int(disjoint), sample_pairs) * n_pairs),  # exact at any size
    )


def frequencies(
    valid: np.ndarray, space: CircuitSpace
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Edge frequencies (per layer ``n_l x n_{l-1}``), node frequencies (per layer ``n_l``,
    inputs first) across the rows of ``valid``, and each row's node count (nodes touched by
    its edges). Frequencies are NaN when there are no rows."""
    bits = _check_bits(valid, space)
    edge_counts, node_counts, n_nodes = frequency_counts(bits, space)
    n = bits.shape[0]
    return as_frequencies(edge_counts, n), as_frequencies(node_counts, n), n_nodes


def as_frequencies(counts: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Counts over ``n`` circuits as fractions (NaN when ``n`` is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return [c / n if n else np.full(c.shape, np.nan) for c in counts]


def frequency_counts(
    bits: np.ndarray, space: CircuitSpace
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """How many rows of ``bits`` hold each edge (per layer) and touch each node (per
    layer, inputs first), and each row's node count; checked ``(n, n_words)`` uint64."""
    n = bits.shape[0]
    offs = space.edge_offsets
    shapes = space.layer_shapes
    edge_counts = [np.zeros(shape, dtype=np.int64) for shape in shapes]
    node_counts = [np.zeros(size, dtype=np.int64) for size in space.sizes]
    n_nodes = np.zeros(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        flags = bits_to_bools(bits[start : start + _CHUNK], space.n_edges)
        masks = [
            flags[:, offs[i] : offs[i + 1]].reshape(-1, *shape) for i, shape in enumerate(shapes)
        ]
        for i, m in enumerate(masks):
            edge_counts[i] += m.sum(axis=0)
        for layer in range(len(space.sizes)):
            touched = np.zeros((flags.shape[0], space.sizes[layer]), dtype=bool)
            if layer > 0:  # receives through W_layer
                touched |= masks[layer - 1].any(axis=2)
            if layer < space.n_layers:  # sends through W_{layer+1}
                touched |= masks[layer].any(axis=1)
            node_counts[layer] += touched.sum(axis=0)
            n_nodes[start : start + flags.shape[0]] += touched.sum(axis=1)
    return edge_counts, node_counts, n_nodes


# --------------------------------------------------------------------------- measures


def matrix_to_list(a: np.ndarray) -> list:
    """A float array as nested lists, NaN as None (JSON has no NaN)."""
    return np.where(np.isnan(a), None, a).tolist() if a.size else a.tolist()


@dataclass(frozen=True)
class Measures:
    """The uniqueness measures of one census (see ``docs/measures.md``)."""

    n_valid: int
    n_minimal: int
    identifiable: bool  # exactly one minimal valid circuit
    # Pairwise overlap of the valid circuits (unordered pairs of distinct circuits).
    n_pairs: int
    pairs_estimated: bool
    n_pairs_sampled: int
    mean_jaccard: float | None
    nested_fraction: float | None
    n_disjoint_pairs: int
    # The same overlap among the minimal circuits only.
    minimal_mean_jaccard: float | None
    minimal_n_disjoint_pairs: int
    minimal_pairs_estimated: bool
    # Sizes.
    min_edges: int | None  # fewest edges of any valid circuit
    min_nodes: int | None  # fewest nodes (touched by its edges) of any valid circuit
    size_counts: list[int]  # size_counts[k]: valid circuits with k edges, k = 0..n_edges
    # Frequencies across valid circuits (NaN when there are none).
    edge_frequency: list[np.ndarray] = field(repr=False)  # per layer, n_l x n_{l-1}
    node_frequency: list[np.ndarray] = field(repr=False)  # per layer, n_l (inputs first)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict: plain numbers, lists for the frequency matrices, None for
        undefined values (no pairs, no valid circuits)."""
        return {
            "n_valid": self.n_valid,
            "n_minimal": self.n_minimal,
            "identifiable": self.identifiable,
            "n_pairs": self.n_pairs,
            "pairs_estimated": self.pairs_estimated,
            "n_pairs_sampled": self.n_pairs_sampled,
            "mean_jaccard": self.mean_jaccard,
            "nested_fraction": self.nested_fraction,
            "n_disjoint_pairs": self.n_disjoint_pairs,
            "minimal_mean_jaccard": self.minimal_mean_jaccard,
            "minimal_n_disjoint_pairs": self.minimal_n_disjoint_pairs,
            "minimal_pairs_estimated": self.minimal_pairs_estimated,
            "min_edges": self.min_edges,
            "min_nodes": self.min_nodes,
            "size_counts": list(self.size_counts),
            "edge_frequency": [matrix_to_list(m) for m in self.edge_frequency],
            "node_frequency": [matrix_to_list(v) for v in self.node_frequency],
            "seed": self.seed,
        }

    def summary_lines(self) -> list[str]:
        """A few lines for a person (the census summary); a measure that is undefined (no
        valid circuit, no pair) is said in words, never as "n/a"."""
        if self.n_valid == 0 or self.min_edges is None or self.min_nodes is None:
            return ["no valid circuit"]

        def count(n: int, noun: str) -> str:
            return f"{n:,} {noun}{'' if n == 1 else 's'}"

        ident = "yes" if self.identifiable else "no"
        lines = [
            f"valid circuits: {self.n_valid:,}; minimal: {self.n_minimal:,} "
            f"(identifiable: {ident})",
            f"smallest valid circuit: {count(self.min_edges, 'edge')}, "
            f"{count(self.min_nodes, 'node')}",
        ]
        if self.n_pairs == 0 or self.mean_jaccard is None or self.nested_fraction is None:
            lines.append("pairs of valid circuits: none (one valid circuit)")
        else:
            est = (
                f" (estimated from {self.n_pairs_sampled:,} sampled pairs, seed {self.seed})"
                if self.pairs_estimated
                else ""
            )
            lines.append(
                f"pairs of valid circuits: {self.n_pairs:,}; mean Jaccard "
                f"{self.mean_jaccard:.3f}, nested {self.nested_fraction:.3f}, "
                f"edge-disjoint {self.n_disjoint_pairs:,}{est}"
            )
        if self.n_minimal > 1 and self.minimal_mean_jaccard is not None:
            lines.append(
                f"minimal circuits: mean Jaccard {self.minimal_mean_jaccard:.3f}, "
                f"edge-disjoint pairs {self.minimal_n_disjoint_pairs:,}"
                + (" (estimated)" if self.minimal_pairs_estimated else "")
            )
        return lines


def circuit_measures(
    valid: np.ndarray,
    space: CircuitSpace,
    *,
    minimal: np.ndarray | None = None,
    max_pairs: int = MAX_EXACT_PAIRS,
    sample_pairs: int = SAMPLE_PAIRS,
    seed: int = 0,
) -> Measures:
    """All uniqueness measures of the valid circuits ``valid`` (distinct rows) of ``space``.

    ``minimal`` may pass the result of :func:`minimal_circuits` to avoid computing it twice.
    Pairwise figures are exact up to ``max_pairs`` pairs, else estimated from
    ``sample_pairs`` pairs drawn with ``seed`` (``pairs_estimated`` says which).
    """
    bits = _check_bits(valid, space)
    if minimal is None:
        minimal = minimal_circuits(bits)
    else:
        minimal = _check_bits(minimal, space)
    n = bits.shape[0]
    overlap = pair_overlap(bits, max_pairs=max_pairs, sample_pairs=sample_pairs, seed=seed)
    min_overlap = pair_overlap(minimal, max_pairs=max_pairs, sample_pairs=sample_pairs, seed=seed)
    edge_freq, node_freq, n_nodes = frequencies(bits, space)
    pc = popcount(bits)
    size_counts = np.bincount(pc, minlength=space.n_edges + 1)
    return Measures(
        n_valid=int(n),
        n_minimal=int(minimal.shape[0]),
        identifiable=minimal.shape[0] == 1,
        n_pairs=overlap.n_pairs,
        pairs_estimated=overlap.estimated,
        n_pairs_sampled=overlap.n_pairs_sampled,
        mean_jaccard=overlap.mean_jaccard,
        nested_fraction=overlap.nested_fraction,
        n_disjoint_pairs=overlap.n_disjoint_pairs,
        minimal_mean_jaccard=min_overlap.mean_jaccard,
        minimal_n_disjoint_pairs=min_overlap.n_disjoint_pairs,
        minimal_pairs_estimated=min_overlap.estimated,
        min_edges=int(pc.min()) if n else None,
        min_nodes=int(n_nodes.min()) if n else None,
        size_counts=[int(c) for c in size_counts],
        edge_frequency=edge_freq,
        node_frequency=node_freq,
        seed=seed,
    )


def census_measures(result: CensusResult, **kwargs: Any) -> tuple[Measures, np.ndarray]:
    """Measures and minimal circuits of a census result (which must have collected its
    valid circuits). Keyword arguments go to :func:`circuit_measures`."""
    if result.valid is None:
        raise InputError(
            "uniqueness measures need the valid circuits; the census did not keep them"
        )
    minimal = minimal_circuits(result.valid)
    return circuit_measures(result.valid, result.space, minimal=minimal, **kwargs), minimal


# --------------------------------------------------------------------------- effective rank


def hidden_effective_rank(network: Network, x: np.ndarray) -> list[float]:
    """Effective rank (Roy & Vetterli) of each hidden layer's activation matrix
    (samples x neurons) over the inputs ``x``, first hidden layer first. Repeated rows
    weigh in, so pass each input once (the task's corners)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != network.sizes[0]:
        raise InputError(
            f"inputs must be a samples x {network.sizes[0]} matrix, got shape {x.shape}"
        )
    hs = network.activations(x)
    return [effective_rank(h) for h in hs[1:-1]]


__all__ = [
    "MAX_EXACT_PAIRS",
    "SAMPLE_PAIRS",
    "Measures",
    "Overlap",
    "census_measures",
    "circuit_measures",
    "frequencies",
    "hidden_effective_rank",
    "minimal_circuits",
    "pair_overlap",
    "sort_circuits",
]
