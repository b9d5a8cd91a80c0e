"""Candidate algorithms (SPEC, "Explanations beyond circuits"): AND/OR formulas over the
inputs, with NOT allowed on any node or leaf, that compute the task on every corner.

Skeletons (the AND/OR trees without NOTs) are generated depth by depth in a fixed order;
every pattern of NOT nodes of a skeleton is tried at once as one array operation, and the
patterns that compute the task become candidate formulas (only the first per skeleton in
meloux2025 mode, as the reference code keeps).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np

from circuit_census.circuits.space import MELOUX2025 as MELOUX
from circuit_census.errors import InputError

AND, OR = "*", "+"
MAX_SKELETON_NODES = 20  # 2^nodes NOT patterns are tried at once

# A skeleton is an input index (a leaf) or (op, left, right).
Skeleton = int | tuple


def skeleton_text(skeleton: Skeleton, outer: bool = True) -> str:
    """``A``, ``A*B``, ``(A*B)+B``: the reference's spelling (outer parentheses dropped)."""
    if isinstance(skeleton, int):
        return string.ascii_uppercase[skeleton]
    op, left, right = skeleton
    text = f"({skeleton_text(left, False)}{op}{skeleton_text(right, False)})"
    return text[1:-1] if outer else text


@cache
def skeletons(depth: int, n_inputs: int) -> tuple[Skeleton, ...]:
    """Skeletons of depth exactly ``depth``: the left child has depth ``depth - 1``, the
    right child any smaller depth, and the children are in strict string order; each pair
    gives an AND then an OR."""
    if depth == 0:
        return tuple(range(n_inputs))
    found: list[Skeleton] = []
    for left in skeletons(depth - 1, n_inputs):
        for right_depth in range(depth):
            for right in skeletons(right_depth, n_inputs):
                if skeleton_text(left) < skeleton_text(right):
                    found += [(AND, left, right), (OR, left, right)]
    return tuple(found)


def _flatten(skeleton: Skeleton, ops: list, children: list) -> int:
    """Append ``skeleton``'s nodes in preorder (ids as the reference numbers them)."""
    node = len(ops)
    ops.append(skeleton if isinstance(skeleton, int) else skeleton[0])
    children.append(None)
    if not isinstance(skeleton, int):
        left = _flatten(skeleton[1], ops, children)
        right = _flatten(skeleton[2], ops, children)
        children[node] = (left, right)
    return node


@dataclass(frozen=True)
class Formula:
    """A skeleton with a set of negated nodes (preorder ids). Its intermediate nodes are the
    non-root AND/OR nodes and the negated leaves: a NOT node stands for the node it
    negates, so a NOT over the root is the root and a NOT over a leaf is a node of its own."""

    skeleton: Skeleton
    negated: frozenset[int]
    n_inputs: int

    @cached_property
    def _nodes(self) -> tuple[tuple, tuple]:
        ops: list = []
        children: list = []
        _flatten(self.skeleton, ops, children)
        return tuple(ops), tuple(children)

    @property
    def n_nodes(self) -> int:
        return len(self._nodes[0])

    @cached_property
    def text(self) -> str:
        """The reference's spelling, ``¬`` before a negated node: ``¬(A*B)*(A+B)``."""
        return self.node_text(0)

    def node_text(self, node: int) -> str:
        """The sub-formula rooted at ``node`` (with its NOT), spelled as :attr:`text`."""
        ops, children = self._nodes

        def render(n: int) -> str:
            if children[n] is None:
                text = string.ascii_uppercase[ops[n]]
            else:
                left, right = children[n]
                text = f"({render(left)}{ops[n]}{render(right)})"
            return "¬" + text if n in self.negated else text

        text = render(node)
        return text[1:-1] if text.startswith("(") else text

    @cached_property
    def intermediate(self) -> tuple[int, ...]:
        """Preorder ids of the intermediate nodes (see the class docstring)."""
        ops, children = self._nodes
        return tuple(n for n in range(1, len(ops)) if children[n] is not None or n in self.negated)

    def evaluate(
        self, corners: np.ndarray, fixed: np.ndarray | None = None, values: np.ndarray | None = None
    ) -> np.ndarray:
        """Every node's value (after its NOT) at every corner: ``B x n_nodes x n_corners``
        for ``B`` variants, where variant ``i`` fixes node ``fixed[i]`` to ``values[i]``
        (``fixed[i] = -1``: none); one variant with none fixed if ``fixed`` is None."""
        ops, children = self._nodes
        bits = np.asarray(corners) >= 0.5
        if fixed is None:
            fixed, values = np.array([-1]), np.array([False])
        out = np.zeros((len(fixed), len(ops), bits.shape[0]), dtype=bool)
        for node in reversed(range(len(ops))):
            if children[node] is None:
                value = np.broadcast_to(bits[:, ops[node]], out[:, node].shape)
            else:
                left, right = children[node]
                value = (
                    out[:, left] & out[:, right]
                    if ops[node] == AND
                    else out[:, left] | out[:, right]
                )
            if node in self.negated:
                value = ~value
            out[:, node] = np.where((fixed == node)[:, None], values[:, None], value)
        return out


def _pattern_matrix(n_nodes: int) -> np.ndarray:
    """Every NOT pattern of ``n_nodes`` nodes: ``2^n x n`` booleans (pattern ``p`` negates
    node ``i`` when bit ``i`` of ``p`` is set)."""
    p = np.arange(1 << n_nodes, dtype=np.int64)
    return ((p[:, None] >> np.arange(n_nodes)[None, :]) & 1).astype(bool)


def _patterns_computing(skeleton: Skeleton, n_inputs: int, corners: np.ndarray, table: np.ndarray):
    """The NOT patterns (sets of node ids) that make ``skeleton`` compute ``table``, ordered
    by size, then lexicographically by node id."""
    ops, children = Formula(skeleton, frozenset(), n_inputs)._nodes
    n = len(ops)
    if n > MAX_SKELETON_NODES:
        raise InputError(f"a formula skeleton of {n} nodes is too large to try every NOT pattern")
    neg = _pattern_matrix(n)
    bits = np.asarray(corners) >= 0.5
    vals: list[np.ndarray | None] = [None] * n
    for node in reversed(range(n)):
        if children[node] is None:
            value = np.broadcast_to(bits[:, ops[node]], (len(neg), bits.shape[0]))
        else:
            left, right = children[node]
            value = vals[left] & vals[right] if ops[node] == AND else vals[left] | vals[right]
        vals[node] = value ^ neg[:, node, None]
    hits = np.flatnonzero((vals[0] == table[None, :].astype(bool)).all(axis=1))
    found = [tuple(int(i) for i in np.flatnonzero(neg[p])) for p in hits]
    return sorted(found, key=lambda nodes: (len(nodes), nodes))


def candidate_formulas(
    table: np.ndarray, corners: np.ndarray, max_depth: int, compat: str | None = None
) -> list[Formula]:
    """The candidate formulas of a one-output task (``table``: its bit at each of
    ``corners``), skeletons of depth 0 to ``max_depth`` in generation order; in meloux2025
    mode only the first pattern per skeleton."""
    n_inputs = corners.shape[1]
    if n_inputs > len(string.ascii_uppercase):
        raise InputError(f"formulas name inputs A to Z; the task has {n_inputs} inputs")
    found: list[Formula] = []
    for depth in range(max_depth + 1):
        for skeleton in skeletons(depth, n_inputs):
            patterns = _patterns_computing(skeleton, n_inputs, corners, table)
            if compat == MELOUX:
                patterns = patterns[:1]
            found += [Formula(skeleton, frozenset(p), n_inputs) for p in patterns]
    return found
