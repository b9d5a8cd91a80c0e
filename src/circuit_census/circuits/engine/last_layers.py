"""The last two hidden layers of a deep network counted in compiled code: everything
below one base family (layers before them fixed) in two kernel calls per option of the
first next-to-last node, with exact member counts of every decided family in Python ints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from math import comb, prod

import numba
import numpy as np

from circuit_census.activations import TABLE
from circuit_census.circuits.engine.families import (
    Family,
    FamilyShape,
    covering_choices,
    family_count,
)
from circuit_census.circuits.engine.problem import Problem
from circuit_census.circuits.engine.tree_kernels import (
    Memo,
    TwoLayers,
    last_layers,
    mid_families,
)

MAX_OPEN = 1 << 25  # tuples of value classes of next-to-last configurations counted
MAX_OPTIONS = 1 << 12  # options of one last-hidden node the kernel holds
MAX_MEMO = 1 << 26  # bytes of remembered bounds of next-to-last families
MAX_CLASS_ENTRIES = 1 << 22  # counts per node, class of equal options and cover pattern
CLASS_CIRCUITS = 2**64  # the most last-layer choices one configuration has, counted by class


@dataclass
class Counts:
    """Candidates, valid circuits and those decided by bounds on whole families."""

    candidates: int = 0
    valid: int = 0
    bounded: int = 0


@cache
def last_count(senders: int, uncovered_in: int, outputs: int, uncovered_out: int, free: int,
               exclude_all: bool) -> int:  # fmt: skip
    """Admissible ways to choose the ``free`` last-hidden nodes' edges: each kept one
    takes a non-empty set of the ``senders`` and of the ``outputs``, together feeding the
    uncovered ones (``exclude_all``: minus the ways keeping every free node)."""
    total = sum(
        comb(free, t)
        * covering_choices(senders, uncovered_in, t, True)
        * covering_choices(outputs, uncovered_out, t, True)
        for t in range(free + 1)
    )
    if exclude_all:
        total -= covering_choices(senders, uncovered_in, free, True) * covering_choices(
            outputs, uncovered_out, free, True
        )
    return total


def _mid_shape(problem: Problem, family: Family, key: tuple[int, ...]) -> FamilyShape:
    uncovered, kept, free, all_kept = key
    layer = family.choices.layer
    return FamilyShape(
        layer=layer,
        senders=int(family.prefix.active.sum()),
        uncovered=uncovered,
        fixed_active=kept,
        free=free,
        must_cover=layer > 1 or problem.criterion.compat is not None,
        all_hidden_so_far=bool(all_kept),
    )


def _same_values(values: np.ndarray) -> np.ndarray:
    """``(n2, S)``: for each mid node and option, the first option of that node with the
    same values at every point, kept alike: the last layer cannot tell them apart, so one
    scoring stands for every configuration that differs only there."""
    n2, n_opts = values.shape[:2]
    same = np.zeros((n2, n_opts), dtype=np.int64)
    for i in range(n2):
        first: dict[bytes, int] = {}
        for s in range(1, n_opts):
            same[i, s] = first.setdefault(values[i, s].tobytes(), s)
    return same


def _classes(same_row: np.ndarray) -> int:
    """Classes of equal values among one node's options (left out is class 0)."""
    return len(np.unique(same_row))


def _first_of_class(same_row: np.ndarray) -> np.ndarray:
    """The first option of each class, in the order of :func:`_rank`."""
    return np.unique(same_row)


def _rank(same_row: np.ndarray) -> np.ndarray:
    """Each option's class (0 for option 0, which is its own class)."""
    return np.searchsorted(np.unique(same_row), same_row)


def _memo(same: np.ndarray) -> Memo | None:
    """Room for every family's bound up to equal values (none past ``MAX_MEMO``) and for
    the open configurations per tuple of classes (``None`` past ``MAX_OPEN``)."""
    n2, radix = same.shape
    offset = np.cumsum([0] + [radix**d for d in range(n2 + 1)])[: n2 + 1].astype(np.int64)
    size = int(offset[-1]) + radix**n2
    verdicts = np.zeros(size if size <= MAX_MEMO else 1, dtype=np.int8)
    classes = [_classes(row) for row in same]
    if prod(classes) > MAX_OPEN:
        return None
    stride = np.cumprod([1] + classes[:-1]).astype(np.int64)
    rank = np.stack([_rank(row) for row in same]).astype(np.int64)
    open_count = np.zeros(prod(classes), dtype=np.int32)
    return Memo(np.ascontiguousarray(same), offset, verdicts, rank, stride, open_count)


def census_last_layers(problem: Problem, family: Family) -> Counts | None:
    """Candidates, valid circuits and those decided by bounds among the members of
    ``family`` (a base: every layer before the last two hidden ones fixed), or ``None``
    when its layers are too wide for the kernels' buffers."""
    net, choices = problem.network, family.choices
    n2, n1, m = net.sizes[-3], net.sizes[-2], net.sizes[-1]
    n_opts = len(choices.subsets)
    if 1 + (2**n2 - 1) * (2**m - 1) > MAX_OPTIONS:
        return None
    a3 = int(family.prefix.active.sum())
    compat = problem.criterion.compat is not None
    sizes = net.sizes
    mid_nonzero = np.zeros((a3 + 1, n2 + 1, n2 + 1, 2), dtype=bool)
    for key in np.ndindex(mid_nonzero.shape):
        mid_nonzero[key] = family_count(sizes, compat, _mid_shape(problem, family, key)) > 0
    last_nonzero = np.zeros((n2 + 1, n2 + 1, m + 1, n1 + 1, 2), dtype=bool)
    for a2, u_in, u_out, free, all_kept in np.ndindex(last_nonzero.shape):
        if u_in <= a2:
            count = last_count(a2, u_in, m, u_out, free, compat and bool(all_kept))
            last_nonzero[a2, u_in, u_out, free, all_kept] = count > 0
    scale = 1.0 + np.abs(net.biases[-1]).max() + np.abs(problem.pre_reference).reshape(-1)
    two = TwoLayers(
        mid_values=np.ascontiguousarray(np.stack(choices.values)),
        free_lo=np.ascontiguousarray(choices.free.lo),
        free_hi=np.ascontiguousarray(choices.free.hi),
        rep_mid=np.ascontiguousarray(problem.replacement[-3]),
        rep_last=np.ascontiguousarray(problem.replacement[-2]),
        w_last=np.ascontiguousarray(net.weights[-2]),
        b_last=np.ascontiguousarray(net.biases[-2]),
        w_out=np.ascontiguousarray(net.weights[-1]),
        b_out=np.ascontiguousarray(net.biases[-1]),
        scale=scale,
        hidden=TABLE[net.activation].code,
        base_all_kept=bool(family.prefix.all_hidden),
        compat=compat,
        mid_nonzero=mid_nonzero,
        last_nonzero=last_nonzero,
    )
    mid_tally = np.zeros((2, a3 + 1, n2 + 1, n2 + 1, 2), dtype=np.int64)
    groups = 4 * numba.get_num_threads()
    last_tally = np.zeros((groups, 2, n2 + 1, n2 + 1, m + 1, n1 + 1, 2), dtype=np.int64)
    leaves = np.zeros((groups, 2), dtype=np.int64)
    same = _same_values(np.stack(choices.values))
    memo = _memo(same)
    if memo is None:
        return None
    counts = Counts()
    for first in range(n_opts):
        mid_families(two, first, problem.rule, memo, mid_tally)
    codes = np.flatnonzero(memo.open_count)
    if len(codes):
        configs = np.stack(
            [_first_of_class(same[i])[(codes // memo.stride[i]) % _classes(same[i])]
             for i in range(n2)], axis=1,
        )  # fmt: skip
        times = memo.open_count[codes].astype(np.int64)
        # the class search counts mod 2^64: exact while a configuration has fewer circuits
        by_class = (1 + (2**n2 - 1) * (2**m - 1)) ** n1 <= CLASS_CIRCUITS
        class_counts = np.zeros((len(codes), 3), dtype=np.uint64)
        entries = MAX_CLASS_ENTRIES if by_class else 0
        last_layers(two, np.ascontiguousarray(configs), times, problem.rule, entries,
                    last_tally, leaves, class_counts)  # fmt: skip
        for (candidates, valid, bounded), n in zip(class_counts.tolist(), times.tolist()):
            counts.candidates += candidates * n
            counts.valid += valid * n
            counts.bounded += bounded * n
    for key in zip(*np.nonzero(mid_tally)):
        verdict, shape = key[0], _mid_shape(problem, family, tuple(int(k) for k in key[1:]))
        n = int(mid_tally[key]) * family_count(sizes, compat, shape)
        counts.candidates += n
        counts.bounded += n
        counts.valid += n * int(verdict)
    summed = last_tally.sum(axis=0)
    for key in zip(*np.nonzero(summed)):
        verdict, a2, u_in, u_out, free, all_kept = (int(k) for k in key)
        n = int(summed[key]) * last_count(a2, u_in, m, u_out, free, compat and bool(all_kept))
        counts.candidates += n
        counts.bounded += n
        counts.valid += n * verdict
    counts.candidates += int(leaves[:, 0].sum())
    counts.valid += int(leaves[:, 1].sum())
    return counts
