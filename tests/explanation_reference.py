"""A plain reading of SPEC's "Explanations beyond circuits", for tests: every table choice
of every neuron, every NOT pattern, every mapping, one at a time. Slow and obviously
right; the fast explanations stage must agree with it."""

from __future__ import annotations

import functools
import itertools
import string

import numpy as np

from circuit_census.activations import apply_activation
from circuit_census.network import Network


def corner_list(n_inputs: int) -> list[tuple[int, ...]]:
    """Corners, first input most significant: 00, 01, 10, 11."""
    return list(itertools.product((0, 1), repeat=n_inputs))


def circuit_values(network: Network, masks, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's values in the zero-ablated circuit, by hand."""
    h = [np.asarray(x, dtype=np.float64)]
    for layer, (w, b) in enumerate(zip(network.weights, network.biases)):
        h.append(
            apply_activation(network.layer_activation(layer), h[-1] @ (w * masks[layer]).T + b)
        )
    return h


@functools.cache
def is_threshold(function: tuple[tuple[tuple[int, ...], int], ...], m: int) -> bool:
    """Whether some ``[w . p > t]`` with small integer weights agrees with ``function``
    (pattern, bit pairs); every threshold function of up to four inputs has weights within
    -3..3."""
    for w in itertools.product(range(-3, 4), repeat=m):
        for t in np.arange(-12.5, 13):
            if all(int(np.dot(w, p) > t) == bit for p, bit in function):
                return True
    return False


def plain_interpretations(network: Network, masks, compat: str | None) -> int:
    """The number of interpretations of a circuit, by listing every table choice."""
    n = network.sizes[0]
    corners = corner_list(n)
    h = circuit_values(network, masks, np.array(corners, dtype=np.float64))
    out = h[-1]
    h[-1] = np.round(out) if compat else (out >= 0.5).astype(float)
    neurons = []  # (layer, index, list of tables as tuples)
    for layer in range(1, network.n_layers + 1):
        for j in range(network.sizes[layer]):
            if not np.any(masks[layer - 1][j]):
                continue
            v = h[layer][:, j]
            distinct = sorted(set(v.tolist()))
            cuts = [(a + b) / 2 for a, b in zip(distinct, distinct[1:])]
            if cuts:
                neurons.append((layer, j, [tuple(int(x > c) for x in v) for c in cuts]))
    total = 0
    for choice in itertools.product(*[tables for _, _, tables in neurons]):
        chosen = {(layer, j): t for (layer, j, _), t in zip(neurons, choice)}
        ways = 1
        for (layer, j, _), table in zip(neurons, choice):
            if layer == 1:
                continue
            parents = [
                i
                for i in range(network.sizes[layer - 1])
                if masks[layer - 1][j][i] and (layer - 1, i) in chosen
            ]
            ways *= local_count(
                [chosen[(layer - 1, i)] for i in parents], table, len(corners), compat
            )
        total += ways
    return total


def local_count(parent_tables, table, n_corners: int, compat: str | None) -> int:
    """How many local functions make ``table`` a function of ``parent_tables``."""
    m = len(parent_tables)
    local: dict[tuple[int, ...], int] = {}
    for c in range(n_corners):
        pattern = tuple(t[c] for t in parent_tables)
        if local.setdefault(pattern, table[c]) != table[c]:
            return 0
    if compat:
        count = 0
        for bits in itertools.product((0, 1), repeat=2**m):
            full = dict(zip(itertools.product((0, 1), repeat=m), bits))
            if any(full[p] != b for p, b in local.items()):
                continue
            if m == 2 and bits in ((0, 1, 1, 0), (1, 0, 0, 1)):
                continue
            count += 1
        return count
    return int(is_threshold(tuple(sorted(local.items())), m))


# Formulas: a leaf is ("var", i), an inner node (op, left, right); NOTs are a set of
# preorder ids.


def text(tree, negated=frozenset(), ids=None, top=True) -> str:
    ids = ids if ids is not None else itertools.count()
    node = next(ids)
    if tree[0] == "var":
        s = string.ascii_uppercase[tree[1]]
    else:
        s = f"({text(tree[1], negated, ids, False)}{tree[0]}{text(tree[2], negated, ids, False)})"
    if node in negated:
        s = "¬" + s
    return s[1:-1] if top and s.startswith("(") else s


def trees(depth: int, n: int) -> list:
    if depth == 0:
        return [("var", i) for i in range(n)]
    return [
        (op, left, right)
        for left in trees(depth - 1, n)
        for d in range(depth)
        for right in trees(d, n)
        if text(left) < text(right)
        for op in ("*", "+")
    ]


def preorder(tree) -> list:
    nodes = [tree]
    if tree[0] != "var":
        nodes += preorder(tree[1]) + preorder(tree[2])
    return nodes


def evaluate(tree, negated, corner, fixed=None) -> dict[int, int]:
    """Each node's value (after its NOT) at ``corner``; ``fixed = (node, value)`` pins one."""
    values: dict[int, int] = {}

    def go(t, node: int) -> tuple[int, int]:
        if t[0] == "var":
            v, nxt = corner[t[1]], node + 1
        else:
            left, after_left = go(t[1], node + 1)
            right, nxt = go(t[2], after_left)
            v = (left & right) if t[0] == "*" else (left | right)
        if node in negated:
            v = 1 - v
        if fixed is not None and fixed[0] == node:
            v = fixed[1]
        values[node] = v
        return v, nxt

    go(tree, 0)
    return values


def plain_formulas(table, n: int, max_depth: int, compat: str | None) -> list[tuple]:
    """(tree, negated) of every candidate formula, trying NOT patterns one by one."""
    corners = corner_list(n)
    found = []
    for depth in range(max_depth + 1):
        for tree in trees(depth, n):
            ids = range(len(preorder(tree)))
            for r in range(len(ids) + 1):
                done = False
                for negated in itertools.combinations(ids, r):
                    neg = frozenset(negated)
                    if all(evaluate(tree, neg, c)[0] == table[k] for k, c in enumerate(corners)):
                        found.append((tree, neg))
                        if compat:
                            done = True
                            break
                if done:
                    break
    return found


def intermediate_nodes(tree, negated) -> list[int]:
    nodes = preorder(tree)
    return [i for i in range(1, len(nodes)) if nodes[i][0] != "var" or i in negated]


def plain_pairs(n: int, compat: str | None) -> list[tuple[int, int]]:
    """(source, base) corner indices into :func:`corner_list`."""
    corners = corner_list(n)
    if compat:
        order = [corners.index(tuple(reversed(c))) for c in corners]  # first input fastest
        return [(order[i], order[j]) for i in range(len(order)) for j in range(i + 1, len(order))]
    return [(s, b) for s in range(len(corners)) for b in range(len(corners)) if s != b]


def patched_output(network: Network, x, layer: int, neurons, source_x) -> float:
    """The full network's output on ``x`` with ``neurons`` of ``layer`` set to their values
    on ``source_x``."""
    source = network.activations(np.array([source_x], dtype=float))[layer][0]
    h = np.array(x, dtype=float)
    for i, (w, b) in enumerate(zip(network.weights, network.biases)):
        h = apply_activation(network.layer_activation(i), w @ h + b)
        if i + 1 == layer:
            h = h.copy()
            h[list(neurons)] = source[list(neurons)]
    return float(h[0])


def plain_mappings(network: Network, tree, negated, compat: str | None) -> tuple[int, int]:
    """(valid, minimal) mappings of one formula, listing every assignment of neuron sets."""
    n = network.sizes[0]
    corners = corner_list(n)
    pairs = plain_pairs(n, compat)
    nodes = intermediate_nodes(tree, negated)
    options = [
        (layer, subset)
        for layer in range(1, network.n_layers)
        for r in range(1, network.sizes[layer] + 1)
        for subset in itertools.combinations(range(network.sizes[layer]), r)
    ]

    def passes(node, layer, subset) -> bool:
        for s, b in pairs:
            value = evaluate(tree, negated, corners[s])[node]
            want = evaluate(tree, negated, corners[b], fixed=(node, value))[0]
            got = int(patched_output(network, corners[b], layer, subset, corners[s]) > 0.5)
            if got != want:
                return False
        return True

    ok = {(node, opt): passes(node, *opt) for node in nodes for opt in options}
    valid = []
    for choice in itertools.product(options, repeat=len(nodes)):
        used = [(layer, j) for layer, subset in choice for j in subset]
        if len(used) != len(set(used)):
            continue
        if all(ok[(node, opt)] for node, opt in zip(nodes, choice)):
            valid.append(choice)

    def within(a, b) -> bool:
        return all(x[0] == y[0] and set(x[1]) <= set(y[1]) for x, y in zip(a, b))

    minimal = [m for m in valid if not any(o != m and within(o, m) for o in valid)]
    return len(valid), len(minimal)
