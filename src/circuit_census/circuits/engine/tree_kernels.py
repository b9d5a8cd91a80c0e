"""Numba kernels for the last two hidden layers of a deep network, once the layers before
them are fixed: branch and bound over the next-to-last layer's nodes (phase 1) and, for
each of its open configurations, over the last hidden layer's nodes (phase 2).

A decided family is not counted here: the kernels tally it by its *shape* (how many
senders are still uncovered, how many nodes are free, ...) and the caller multiplies each
tally by the exact member count of that shape (``families.family_count``, Python ints),
so counts never overflow. Families whose shape has no admissible member are skipped, and
a single circuit the bounds leave open is judged exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from circuit_census.circuits.engine.kernels import (
    ACCURACY,
    DECISION_SLACK,
    IDENTITY,
    MSE,
    VALUE_SLACK,
    activate,
    interval_decision,
)
from circuit_census.circuits.engine.structures import Rule


class TwoLayers(NamedTuple):
    """The last two hidden layers' problem: next-to-last ("mid", ``n2`` nodes, each taking
    a subset ``s`` of the ``a3`` kept nodes before it, bit ``t`` of ``s`` = member ``t``)
    and last (``n1`` nodes), with ``m`` outputs and ``P`` points (``K = P m`` terms)."""

    mid_values: np.ndarray  # (n2, 2^a3, P) each mid node's value with each sender subset
    free_lo: np.ndarray  # (P, n2) a free mid node's least value over its options
    free_hi: np.ndarray  # (P, n2) and most
    rep_mid: np.ndarray  # (P, n2) what an ablated edge from a mid node carries
    rep_last: np.ndarray  # (P, n1) from a last-hidden node
    w_last: np.ndarray  # (n1, n2)
    b_last: np.ndarray  # (n1,)
    w_out: np.ndarray  # (m, n1)
    b_out: np.ndarray  # (m,)
    scale: np.ndarray  # (K,) 1 + |output bias| + |full model's pre-activation|, for the pad
    hidden: int  # the hidden activation's code
    base_all_kept: bool  # every hidden node before the mid layer kept
    compat: bool  # meloux2025: circuits keeping every hidden node are excluded
    mid_nonzero: np.ndarray  # (a3+1, n2+1, n2+1, 2) bool: a mid family shape has members
    last_nonzero: np.ndarray  # (n2+1, n2+1, m+1, n1+1, 2) bool: a last-layer shape has


@njit(cache=True)
def _popcount(v: int) -> int:
    n = 0
    while v:
        v &= v - 1
        n += 1
    return n


@njit(cache=True)
def _hull_add(lo: float, hi: float, mag: float, a: float, b: float, d: float) -> tuple:
    """Add the hull of ``a``, ``b`` (a kept edge's ends) and ``d`` (its replacement)."""
    return (
        min(lo + a, lo + b, lo + d),
        max(hi + a, hi + b, hi + d),
        mag + max(abs(a), abs(b)) + abs(d),
    )


@njit(cache=True)
def _mid_family_decision(tl: TwoLayers, digits, depth: int, rule: Rule, work) -> int:
    """Verdict of the family whose first ``depth`` mid nodes take options ``digits``:
    mid values fixed or bounded, then last-hidden values, then outputs, by intervals."""
    lo_out, hi_out, pad_out, mlo, mhi, keep, llo, lhi = work
    n2, n1, m = tl.free_lo.shape[1], tl.w_last.shape[0], tl.w_out.shape[0]
    n_points = tl.free_lo.shape[0]
    for p in range(n_points):
        for i in range(n2):
            if i < depth:
                keep[i] = digits[i] != 0
                mlo[i] = tl.mid_values[i, digits[i], p]
                mhi[i] = mlo[i]
            else:
                keep[i] = True
                mlo[i] = tl.free_lo[p, i]
                mhi[i] = tl.free_hi[p, i]
        for j in range(n1):
            lo = hi = tl.b_last[j]
            mag = abs(lo)
            for k in range(n2):
                w = tl.w_last[j, k]
                d = w * tl.rep_mid[p, k]
                if keep[k]:
                    lo, hi, mag = _hull_add(lo, hi, mag, w * mlo[k], w * mhi[k], d)
                else:
                    lo, hi, mag = lo + d, hi + d, mag + abs(d)
            pad = VALUE_SLACK * (1.0 + mag)
            v_lo, v_hi = activate(lo - pad, tl.hidden), activate(hi + pad, tl.hidden)
            llo[j] = v_lo - VALUE_SLACK * (1.0 + abs(v_lo))
            lhi[j] = v_hi + VALUE_SLACK * (1.0 + abs(v_hi))
        for o in range(m):
            lo = hi = tl.b_out[o]
            mag = abs(lo)
            for j in range(n1):
                w = tl.w_out[o, j]
                lo, hi, mag = _hull_add(lo, hi, mag, w * llo[j], w * lhi[j], w * tl.rep_last[p, j])
            k = p * m + o
            lo_out[k], hi_out[k] = lo, hi
            pad_out[k] = VALUE_SLACK * (1.0 + mag)
    zero = np.zeros(lo_out.shape[0])
    return interval_decision(zero, lo_out, hi_out, pad_out, rule)


class Memo(NamedTuple):
    """Bounds already computed, per family of mid configurations up to equal values:
    family ``(depth, digits)`` is entry ``offset[depth] + sum_i same[i, digits[i]]
    radix^i`` of ``verdicts`` (0 unknown, else verdict + 2); one unused entry disables it."""

    same: np.ndarray  # (n2, radix) each option's first option with the same values
    offset: np.ndarray  # (n2 + 1,) first entry of each depth
    verdicts: np.ndarray  # int8
    rank: np.ndarray  # (n2, radix) each option's class of equal values (0: left out)
    stride: np.ndarray  # (n2,) place value of each node's class in ``open_count``
    open_count: np.ndarray  # int32, open complete configurations per tuple of classes


@njit(cache=True)
def _remembered_decision(tl: TwoLayers, digits, depth: int, rule: Rule, work, memo: Memo) -> int:
    """:func:`_mid_family_decision`, looked up in ``memo`` when it is in use."""
    if memo.verdicts.shape[0] <= 1:
        return _mid_family_decision(tl, digits, depth, rule, work)
    radix = memo.same.shape[1]
    code, scale = memo.offset[depth], 1
    for i in range(depth):
        code += memo.same[i, digits[i]] * scale
        scale *= radix
    if memo.verdicts[code] == 0:
        memo.verdicts[code] = _mid_family_decision(tl, digits, depth, rule, work) + 2
    return memo.verdicts[code] - 2


@njit(cache=True)
def mid_families(tl: TwoLayers, first: int, rule: Rule, memo: Memo, tally) -> int:
    """Branch and bound over the mid nodes' options with mid node 0 taking ``first``.
    Decided families go to ``tally[verdict, uncovered, kept, free, all_kept]`` (verdict 0
    invalid, 1 valid); complete open configurations are counted per tuple of value
    classes in ``memo.open_count``; returns how many. Families whose chosen nodes carry
    the same values share one bound."""
    n2, n_opts = tl.mid_values.shape[0], tl.mid_values.shape[1]
    n1, m, n_points = tl.w_last.shape[0], tl.w_out.shape[0], tl.free_lo.shape[0]
    full = n_opts - 1  # every kept sender, as a bitmask
    work = (
        np.empty(n_points * m), np.empty(n_points * m), np.empty(n_points * m),
        np.empty(n2), np.empty(n2), np.empty(n2, np.bool_), np.empty(n1), np.empty(n1),
    )  # fmt: skip
    digits = np.zeros(n2, np.int64)
    digits[0] = first
    depth, n_open = 1, 0
    while True:
        union, kept, all_kept = 0, 0, 1 if tl.base_all_kept else 0
        for i in range(depth):
            union |= digits[i]
            if digits[i] != 0:
                kept += 1
            else:
                all_kept = 0
        uncovered = _popcount(full & ~union)
        free = n2 - depth
        descend = False
        if tl.mid_nonzero[uncovered, kept, free, all_kept]:
            verdict = _remembered_decision(tl, digits, depth, rule, work, memo)
            if verdict != 0:
                tally[1 if verdict > 0 else 0, uncovered, kept, free, all_kept] += 1
            elif depth == n2:
                code = 0
                for i in range(n2):
                    code += memo.rank[i, digits[i]] * memo.stride[i]
                memo.open_count[code] += 1
                n_open += 1
            else:
                descend = True
        if descend:
            digits[depth] = 0
            depth += 1
            continue
        while True:  # next sibling, climbing while the last one is done
            if depth <= 1:
                return n_open
            digits[depth - 1] += 1
            if digits[depth - 1] < n_opts:
                break
            digits[depth - 1] = 0
            depth -= 1


@njit(cache=True)
def exact_verdict(z, rule: Rule) -> bool:
    """One circuit's verdict from its output pre-activations ``z`` (K terms)."""
    if rule.criterion == MSE:
        err = 0.0
        for k in range(z.shape[0]):
            diff = activate(z[k], rule.activation) - rule.target[k]
            err += rule.weight[k] * diff * diff
        return err < rule.budget
    wrong = 0.0
    n_out = rule.n_out
    for p in range(z.shape[0] // n_out):
        for o in range(n_out):
            g = activate(z[p * n_out + o], rule.activation)
            bit = (1.0 if g >= 0.5 else 0.0) if rule.criterion == ACCURACY else np.rint(g)
            if bit != rule.target[p * n_out + o]:
                wrong += rule.weight[p]
                break
    return wrong <= rule.budget


@njit(cache=True)
def _last_options(tl: TwoLayers, digits):
    """Every last-hidden node's options below one mid configuration ``digits``: their
    contributions to the output pre-activations ``(n1, n_opt, K)`` and the senders and
    outputs each feeds (bitmasks ``(n1, n_opt)``; option 0 leaves the node out). Also the
    number of kept mid nodes and whether every hidden node so far is kept."""
    n2, n1, m = tl.mid_values.shape[0], tl.w_last.shape[0], tl.w_out.shape[0]
    n_points = tl.free_lo.shape[0]
    n_terms = n_points * m
    position = np.full(n2, -1, np.int64)  # each kept mid node's bit in a sender subset
    a2, mid_all = 0, tl.base_all_kept
    for i in range(n2):
        if digits[i] != 0:
            position[i] = a2
            a2 += 1
        else:
            mid_all = False
    n_in, n_outs = (1 << a2) - 1, (1 << m) - 1
    n_opt = 1 + n_in * n_outs
    contrib = np.empty((n1, n_opt, n_terms))
    cov_in = np.zeros((n1, n_opt), np.int64)
    cov_out = np.zeros((n1, n_opt), np.int64)
    values = np.empty(n_in + 1)
    pre = np.empty(n_in + 1)
    delta = np.empty(max(a2, 1))
    for j in range(n1):
        for p in range(n_points):
            dead = tl.rep_last[p, j]
            for o in range(m):
                contrib[j, 0, p * m + o] = tl.w_out[o, j] * dead
            # pre-activation with every in-edge ablated, then each kept sender's change;
            # a set's pre-activation adds its lowest member's change to the rest's
            pre[0] = tl.b_last[j]
            for k in range(n2):
                pre[0] += tl.w_last[j, k] * tl.rep_mid[p, k]
                if position[k] >= 0:
                    h = tl.mid_values[k, digits[k], p]
                    delta[position[k]] = tl.w_last[j, k] * h - tl.w_last[j, k] * tl.rep_mid[p, k]
            for s in range(1, n_in + 1):
                low = s & -s
                t = _popcount(low - 1)
                pre[s] = pre[s ^ low] + delta[t]
                values[s] = activate(pre[s], tl.hidden)
            for s in range(1, n_in + 1):
                for q in range(1, n_outs + 1):
                    opt = 1 + (s - 1) * n_outs + (q - 1)
                    cov_in[j, opt] = s
                    cov_out[j, opt] = q
                    for o in range(m):
                        fed = (q >> o) & 1
                        value = values[s] if fed else dead
                        contrib[j, opt, p * m + o] = tl.w_out[o, j] * value
    return a2, mid_all, contrib, cov_in, cov_out


@njit(cache=True)
def _order_and_rest(contrib, scale):
    """The last-hidden nodes in the order the tree fixes them (those that move the output
    most first), what the nodes from depth ``d`` on can add at least and most
    (``rest_lo[d]``, ``rest_hi[d]``) and the rounding pad of every term."""
    n1, n_opt, n_terms = contrib.shape
    spread = np.zeros(n1)
    for j in range(n1):
        for k in range(n_terms):
            lo, hi = contrib[j, 0, k], contrib[j, 0, k]
            for opt in range(n_opt):
                lo, hi = min(lo, contrib[j, opt, k]), max(hi, contrib[j, opt, k])
            spread[j] = max(spread[j], hi - lo)
    order = np.argsort(-spread)
    rest_lo = np.zeros((n1 + 1, n_terms))
    rest_hi = np.zeros((n1 + 1, n_terms))
    pad = np.empty(n_terms)
    for k in range(n_terms):
        pad[k] = scale[k]
    for d in range(n1 - 1, -1, -1):
        j = order[d]
        for k in range(n_terms):
            lo, hi, big = contrib[j, 0, k], contrib[j, 0, k], 0.0
            for opt in range(n_opt):
                c = contrib[j, opt, k]
                lo, hi, big = min(lo, c), max(hi, c), max(big, abs(c))
            rest_lo[d, k] = rest_lo[d + 1, k] + lo
            rest_hi[d, k] = rest_hi[d + 1, k] + hi
            pad[k] += big
    for k in range(n_terms):
        pad[k] *= VALUE_SLACK
    return order, rest_lo, rest_hi, pad


@njit(cache=True)
def _last_layer(tl: TwoLayers, digits, times: int, rule: Rule, tally, leaves) -> None:
    """Branch and bound over the last hidden layer for one mid configuration ``digits``
    (standing for ``times`` configurations with the same values): decided families to
    ``tally[verdict, a2, uncovered_in, uncovered_out, free, all_kept]``; single circuits
    judged exactly, ``leaves[0]`` candidates, ``leaves[1]`` valid."""
    n1, m = tl.w_last.shape[0], tl.w_out.shape[0]
    n_points = tl.free_lo.shape[0]
    n_terms = n_points * m
    a2, mid_all, contrib, cov_in, cov_out = _last_options(tl, digits)
    n_in, n_outs, n_opt = (1 << a2) - 1, (1 << m) - 1, contrib.shape[1]
    order, rest_lo, rest_hi, pad = _order_and_rest(contrib, tl.scale)
    z = np.empty((n1 + 1, n_terms))
    for p in range(n_points):
        for o in range(m):
            z[0, p * m + o] = tl.b_out[o]
    c_in = np.zeros(n1 + 1, np.int64)
    c_out = np.zeros(n1 + 1, np.int64)
    kept_all = np.ones(n1 + 1, np.bool_)
    kept_all[0] = mid_all
    digit = np.zeros(n1, np.int64)
    depth = 0
    while True:
        u_in, u_out = _popcount(n_in & ~c_in[depth]), _popcount(n_outs & ~c_out[depth])
        free, all_kept = n1 - depth, 1 if kept_all[depth] else 0
        descend = False
        if tl.last_nonzero[a2, u_in, u_out, free, all_kept]:
            if depth == n1:
                leaves[0] += times
                if exact_verdict(z[depth], rule):
                    leaves[1] += times
            else:
                verdict = interval_decision(z[depth], rest_lo[depth], rest_hi[depth], pad, rule)
                if verdict != 0:
                    tally[1 if verdict > 0 else 0, a2, u_in, u_out, free, all_kept] += times
                else:
                    descend = True
        if descend:
            digit[depth] = 0
        else:
            while True:  # next sibling, climbing while the last one is done
                if depth == 0:
                    return
                digit[depth - 1] += 1
                if digit[depth - 1] < n_opt:
                    depth -= 1
                    break
                depth -= 1
        j, opt = order[depth], digit[depth]
        for k in range(n_terms):
            z[depth + 1, k] = z[depth, k] + contrib[j, opt, k]
        c_in[depth + 1] = c_in[depth] | cov_in[j, opt]
        c_out[depth + 1] = c_out[depth] | cov_out[j, opt]
        kept_all[depth + 1] = kept_all[depth] and opt != 0
        depth += 1


@njit(cache=True)
def _same_rows(rows, a: int, b: int) -> bool:
    for k in range(rows.shape[1]):
        if rows[a, k] != rows[b, k]:
            return False
    return True


@njit(cache=True)
def option_classes(rows):
    """Each option's class of equal contributions (classes numbered by their first
    option, so option 0 is in class 0) and the number of classes: options are sorted by
    a weighted sum of their row and compared in full only where those sums are equal."""
    n_opt, n_terms = rows.shape
    key = np.empty(n_opt)
    for o in range(n_opt):
        acc = 0.0
        for k in range(n_terms):
            acc += rows[o, k] * (1.0 + ((k * 40503) % 65521) / 65521.0)
        key[o] = acc
    by_key = np.argsort(key, kind="mergesort")  # stable: equal keys stay in option order
    leader = np.arange(n_opt)
    start = 0
    while start < n_opt:
        end = start + 1
        while end < n_opt and key[by_key[end]] == key[by_key[start]]:
            end += 1
        for i in range(start + 1, end):
            o = by_key[i]
            for i2 in range(start, i):
                first = by_key[i2]
                if leader[first] == first and _same_rows(rows, o, first):
                    leader[o] = first
                    break
        start = end
    cls = np.empty(n_opt, np.int64)
    n_cls = 0
    for o in range(n_opt):
        if leader[o] == o:
            cls[o] = n_cls
            n_cls += 1
        else:
            cls[o] = cls[leader[o]]
    return cls, n_cls


@njit(cache=True)
def _class_count(prod, prod_kept, power, power_kept, negative, depth: int, free: int,
                 exclude_all: bool) -> np.uint64:  # fmt: skip
    """Admissible members of a family (mod 2^64): by inclusion and exclusion over the
    cover patterns ``TU`` (senders ``T``, outputs ``U`` allowed), the product of each
    fixed node's options within ``TU`` and of each free node's (``exclude_all``: minus
    the members keeping every last-hidden node)."""
    total = np.uint64(0)
    for tu in range(prod.shape[1]):
        ways = prod[depth, tu] * power[free, tu]
        if exclude_all:
            ways -= prod_kept[depth, tu] * power_kept[free, tu]
        if negative[tu]:
            total -= ways
        else:
            total += ways
    return total


MAX_QUADRATIC_CLASSES = 1024  # classes of one configuration the quadratic bound holds


@njit(cache=True)
def _quadratic_setup(contrib, order, n_cls, first, rule: Rule, b_out):
    """What the quadratic bound of an mse family with an identity output needs, for the
    classes in tree order (class ``c`` of the node at depth ``d`` is ``start[d] + c``):
    each class's contribution less its node's per-term midpoint (``delta``), their
    weighted inner products ``gram``, each depth's largest ``|delta|`` summed from there
    on (``reach``), the inner products of the midpoints' residual with every ``delta``
    (``linear``) and its squared norm, and a rounding pad."""
    n1, _, n_terms = contrib.shape
    m = b_out.shape[0]
    start = np.zeros(n1 + 1, np.int64)
    for d in range(n1):
        start[d + 1] = start[d] + n_cls[order[d]]
    n_all = start[n1]
    delta = np.empty((n_all, n_terms))
    residual = np.empty(n_terms)
    magnitude = np.empty(n_terms)
    for k in range(n_terms):
        residual[k] = b_out[k % m] - rule.target[k]
        magnitude[k] = abs(b_out[k % m]) + abs(rule.target[k])
    for d in range(n1):
        j = order[d]
        for k in range(n_terms):
            lo, hi = contrib[j, 0, k], contrib[j, 0, k]
            for c in range(n_cls[j]):
                v = contrib[j, first[j, c], k]
                lo, hi = min(lo, v), max(hi, v)
            middle = 0.5 * (lo + hi)
            residual[k] += middle
            magnitude[k] += 3.0 * max(abs(lo), abs(hi))
            for c in range(n_cls[j]):
                delta[start[d] + c, k] = contrib[j, first[j, c], k] - middle
    weight = rule.weight
    gram = np.zeros((n_all, n_all))
    for g in range(n_all):
        for h in range(g, n_all):
            acc = 0.0
            for k in range(n_terms):
                acc += weight[k] * delta[g, k] * delta[h, k]
            gram[g, h] = acc
    reach = np.zeros(n1 + 1)
    for d in range(n1 - 1, -1, -1):
        most = 0.0
        for c in range(start[d], start[d + 1]):
            most = max(most, np.sqrt(max(gram[c, c], 0.0)))
        reach[d] = reach[d + 1] + most
    linear = np.zeros((n1 + 1, n_all))
    norm = 0.0
    scale = 0.0
    for k in range(n_terms):
        norm += weight[k] * residual[k] * residual[k]
        scale += weight[k] * magnitude[k] * magnitude[k]
    for g in range(n_all):
        acc = 0.0
        for k in range(n_terms):
            acc += weight[k] * residual[k] * delta[g, k]
        linear[0, g] = acc
    return start, gram, reach, linear, norm, QUADRATIC_SLACK * scale


QUADRATIC_SLACK = 1e-8  # of the summed squared magnitudes: far above float64 rounding


@njit(cache=True)
def _quadratic_decision(depth, start, linear, norm, reach, pad, budget) -> int:
    """The mse verdict of a family from ``|e + sum delta_j|^2 = |e|^2 + 2 sum e.delta_j +
    |sum delta_j|^2``: ``e`` (squared norm ``norm``) the fixed nodes' residual with every
    free node at its midpoint, each free node's ``e.delta`` at its least and most over its
    classes (``linear[depth]``), and the last term between 0 (or the triangle inequality's
    bound) and ``reach[depth]^2``. -1 all invalid, 1 all valid, 0 undecided."""
    low = high = 0.0
    for d in range(depth, start.shape[0] - 1):
        lo = hi = linear[depth, start[d]]
        for g in range(start[d] + 1, start[d + 1]):
            lo, hi = min(lo, linear[depth, g]), max(hi, linear[depth, g])
        low += lo
        high += hi
    free = reach[depth]
    lower = norm + 2.0 * low
    apart = np.sqrt(max(norm, 0.0)) - free
    if apart > 0.0:
        lower = max(lower, apart * apart)
    if lower - pad > budget * (1.0 + DECISION_SLACK):
        return -1
    if norm + 2.0 * high + free * free + pad < budget * (1.0 - DECISION_SLACK):
        return 1
    return 0


@njit(cache=True)
def _class_last_layer(tl: TwoLayers, digits, rule: Rule, max_entries: int, out) -> bool:
    """Branch and bound over the last hidden layer for one mid configuration, over each
    node's classes of options with equal contributions instead of its options: a family
    fixes classes, and its admissible members are counted exactly (mod 2^64, exact while
    the configuration has fewer than 2^64 circuits) by inclusion and exclusion over cover
    patterns. Adds candidates, valid and bounded to ``out``; ``False`` (nothing added)
    when the classes' counts (nodes x classes x cover patterns) would pass ``max_entries``."""
    if max_entries <= 0:
        return False
    n1, m = tl.w_last.shape[0], tl.w_out.shape[0]
    n_terms = tl.free_lo.shape[0] * m
    a2, mid_all, contrib, cov_in, cov_out = _last_options(tl, digits)
    n_opt = contrib.shape[1]
    bits = a2 + m
    n_tu = 1 << bits
    cls = np.empty((n1, n_opt), np.int64)
    n_cls = np.empty(n1, np.int64)
    for j in range(n1):
        node_cls, n_cls[j] = option_classes(contrib[j])
        cls[j, :] = node_cls
    most = n_cls.max()
    if n1 * most * n_tu > max_entries:
        return False
    # within[j, c, TU]: options of class c of node j feeding only senders in T and
    # outputs in U (a subset-sum over the cover bits); ``kept`` without option 0
    within = np.zeros((n1, most, n_tu), np.uint64)
    kept = np.zeros((n1, most, n_tu), np.uint64)
    first = np.zeros((n1, most), np.int64)
    one = np.uint64(1)
    for j in range(n1):
        for o in range(n_opt - 1, -1, -1):
            c = cls[j, o]
            first[j, c] = o
            tu = (cov_in[j, o] << m) | cov_out[j, o]
            within[j, c, tu] += one
            if o != 0:
                kept[j, c, tu] += one
        for c in range(n_cls[j]):
            for b in range(bits):
                for tu in range(n_tu):
                    if (tu >> b) & 1:
                        within[j, c, tu] += within[j, c, tu ^ (1 << b)]
                        kept[j, c, tu] += kept[j, c, tu ^ (1 << b)]
    # Patterns allowing no sender (or no output) add up to zero: there every node has only
    # the option of being left out, the same product for every set of outputs (senders),
    # whose signs cancel. Those two sums share the pattern allowing neither, so the total is
    # the patterns allowing both less that one: they are kept (numbered anew) and that
    # one's sign is turned.
    low_mask = (1 << m) - 1
    n_kept = 0
    patterns = np.empty(n_tu, np.int64)
    for tu in range(n_tu):
        if a2 == 0 or tu == 0 or ((tu >> m) != 0 and (tu & low_mask) != 0):
            patterns[n_kept] = tu
            n_kept += 1
    within_all, kept_all = within, kept
    within = np.empty((n1, most, n_kept), np.uint64)
    kept = np.empty((n1, most, n_kept), np.uint64)
    for j in range(n1):
        for c in range(n_cls[j]):
            for i in range(n_kept):
                within[j, c, i] = within_all[j, c, patterns[i]]
                kept[j, c, i] = kept_all[j, c, patterns[i]]
    # every option of a free node within a pattern, and those keeping it, to each power
    power = np.empty((n1 + 1, n_kept), np.uint64)
    power_kept = np.empty((n1 + 1, n_kept), np.uint64)
    negative = np.empty(n_kept, np.bool_)
    for i in range(n_kept):
        tu = patterns[i]
        t, u = tu >> m, tu & low_mask
        ways = np.uint64(((1 << _popcount(t)) - 1) * ((1 << _popcount(u)) - 1))
        power[0, i] = power_kept[0, i] = one
        for r in range(1, n1 + 1):
            power[r, i] = power[r - 1, i] * (ways + one)
            power_kept[r, i] = power_kept[r - 1, i] * ways
        negative[i] = ((bits - _popcount(tu)) & 1) == 1
        if tu == 0 and a2 > 0:
            negative[i] = not negative[i]
    n_tu = n_kept
    exclude_all = tl.compat and mid_all
    order, rest_lo, rest_hi, pad = _order_and_rest(contrib, tl.scale)
    # an identity output under mse: the quadratic bound first (cheap once set up)
    quadratic = (
        rule.criterion == MSE
        and rule.activation == IDENTITY
        and n_cls.sum() <= MAX_QUADRATIC_CLASSES
    )
    if quadratic:
        start, gram, reach, linear, norm0, q_pad = _quadratic_setup(
            contrib, order, n_cls, first, rule, tl.b_out
        )
    else:
        start, gram, reach = np.zeros(1, np.int64), np.zeros((1, 1)), np.zeros(1)
        linear, norm0, q_pad = np.zeros((1, 1)), 0.0, 0.0
    norm = np.empty(n1 + 1)
    norm[0] = norm0
    z = np.empty((n1 + 1, n_terms))
    for p in range(tl.free_lo.shape[0]):
        for o in range(m):
            z[0, p * m + o] = tl.b_out[o]
    z_ready = np.zeros(n1 + 1, np.bool_)
    z_ready[0] = True
    # prod[d]: the fixed classes' options within each cover pattern, for nodes the search
    # descends from; signed[d]: with its sign and the free nodes' ways, for its children
    prod = np.ones((n1 + 1, n_tu), np.uint64)
    prod_kept = np.ones((n1 + 1, n_tu), np.uint64)
    signed = np.zeros((n1 + 1, n_tu), np.uint64)
    signed_kept = np.zeros((n1 + 1, n_tu), np.uint64)
    signed_ready = np.zeros(n1 + 1, np.bool_)
    digit = np.zeros(n1, np.int64)
    zero = np.uint64(0)
    candidates = _class_count(prod, prod_kept, power, power_kept, negative, 0, n1, exclude_all)
    valid = exact = zero
    depth = 0
    # Only valid families and single circuits are counted: the rest of the candidates
    # were decided invalid by bounds (the counts are exact, so the difference is too).
    while True:
        descend = False
        if depth == n1:
            ways = _child_count(prod, prod_kept, signed, signed_kept, signed_ready, power,
                                power_kept, negative, within, kept, order, digit, depth,
                                exclude_all)  # fmt: skip
            if ways != 0:
                exact += ways
                _ready_z(z, z_ready, contrib, order, first, digit, depth)
                if exact_verdict(z[depth], rule):
                    valid += ways
        else:
            verdict = 0
            if quadratic:
                verdict = _quadratic_decision(
                    depth, start, linear, norm[depth], reach, q_pad, rule.budget
                )
            if verdict == 0:
                _ready_z(z, z_ready, contrib, order, first, digit, depth)
                verdict = interval_decision(z[depth], rest_lo[depth], rest_hi[depth], pad, rule)
            if verdict > 0:
                if depth == 0:
                    valid += candidates
                else:
                    valid += _child_count(prod, prod_kept, signed, signed_kept, signed_ready,
                                          power, power_kept, negative, within, kept, order,
                                          digit, depth, exclude_all)  # fmt: skip
            elif verdict == 0:
                descend = True
                if depth > 0:
                    j, c = order[depth - 1], digit[depth - 1]
                    for tu in range(n_tu):
                        prod[depth, tu] = prod[depth - 1, tu] * within[j, c, tu]
                    if exclude_all:
                        for tu in range(n_tu):
                            prod_kept[depth, tu] = prod_kept[depth - 1, tu] * kept[j, c, tu]
                    signed_ready[depth] = False
        if descend:
            digit[depth] = 0
            depth += 1
        else:
            while True:  # next sibling, climbing while the last one is done
                if depth == 0:
                    out[0] += candidates
                    out[1] += valid
                    out[2] += candidates - exact
                    return True
                digit[depth - 1] += 1
                if digit[depth - 1] < n_cls[order[depth - 1]]:
                    break
                depth -= 1
        # enter the node at ``depth``: its residual moves by the new class's delta
        z_ready[depth] = False
        if quadratic:
            g = start[depth - 1] + digit[depth - 1]
            norm[depth] = norm[depth - 1] + 2.0 * linear[depth - 1, g] + gram[g, g]
            for h in range(start[depth], start[n1]):
                linear[depth, h] = linear[depth - 1, h] + gram[g, h]


@njit(cache=True)
def _ready_z(z, z_ready, contrib, order, first, digit, depth: int) -> None:
    """The output pre-activations of the node at ``depth`` from its parent's (ready)."""
    if z_ready[depth]:
        return
    j = order[depth - 1]
    o = first[j, digit[depth - 1]]
    for k in range(z.shape[1]):
        z[depth, k] = z[depth - 1, k] + contrib[j, o, k]
    z_ready[depth] = True


@njit(cache=True)
def _child_count(prod, prod_kept, signed, signed_kept, signed_ready, power, power_kept,
                 negative, within, kept, order, digit, depth: int,
                 exclude_all: bool) -> np.uint64:  # fmt: skip
    """:func:`_class_count` of the node at ``depth`` from its parent's products: one
    product per cover pattern, with the parent's signed ways prepared once for all its
    children."""
    parent = depth - 1
    free = order.shape[0] - depth
    if not signed_ready[parent]:
        zero = np.uint64(0)
        for tu in range(prod.shape[1]):
            ways = prod[parent, tu] * power[free, tu]
            ways_kept = prod_kept[parent, tu] * power_kept[free, tu]
            signed[parent, tu] = zero - ways if negative[tu] else ways
            signed_kept[parent, tu] = zero - ways_kept if negative[tu] else ways_kept
        signed_ready[parent] = True
    j, c = order[parent], digit[parent]
    total = np.uint64(0)
    for tu in range(prod.shape[1]):
        total += signed[parent, tu] * within[j, c, tu]
    if exclude_all:
        for tu in range(prod.shape[1]):
            total -= signed_kept[parent, tu] * kept[j, c, tu]
    return total


@njit(parallel=True, cache=True)
def last_layers(tl: TwoLayers, configs, times, rule: Rule, class_entries: int, tallies,
                leaves, class_counts) -> None:  # fmt: skip
    """Phase 2 over the open mid configurations ``configs`` (each standing for ``times``
    of them), in parallel groups. A configuration is searched over classes of equal
    options into ``class_counts[c]`` (candidates, valid, bounded, each once, mod 2^64;
    the caller multiplies by ``times``) where its counts fit ``class_entries`` (0: never);
    otherwise
    option by option, group ``g`` tallying into ``tallies[g]`` and ``leaves[g]``."""
    n_groups = tallies.shape[0]
    for g in prange(n_groups):
        for c in range(g, configs.shape[0], n_groups):
            if not _class_last_layer(tl, configs[c], rule, class_entries, class_counts[c]):
                _last_layer(tl, configs[c], times[c], rule, tallies[g], leaves[g])
