"""Deep networks: families of prefixes decided by interval bounds and counted by the
dynamic program, and the compiled last two hidden layers, against the plain reference
enumerator of ``test_census`` (every activation, ablation, criterion, bounds on and off,
circuits listed or only counted)."""

from __future__ import annotations

import numpy as np
import pytest
from brute_force import admissible_edge_flags
from test_census import as_flags, random_network, reference_census, xor_like_data

from circuit_census.activations import ACTIVATIONS
from circuit_census.circuits.census import census, combine_results
from circuit_census.circuits.engine import last_layers
from circuit_census.circuits.engine.families import (
    Base,
    Decided,
    Family,
    family_count,
    layer_choices,
    prefix_families,
    root_prefix,
)
from circuit_census.circuits.engine.kernels import IDENTITY
from circuit_census.circuits.engine.last_layers import last_count
from circuit_census.circuits.engine.problem import prepare
from circuit_census.circuits.engine.structures import MSE, Rule
from circuit_census.circuits.engine.tree_kernels import (
    _quadratic_decision,
    _quadratic_setup,
    option_classes,
)
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace

DEEP = [(2, 2, 2, 2, 1), (2, 3, 2, 1), (2, 2, 3, 1), (2, 2, 2, 2)]


def _threshold(net, x, criterion: str) -> float:
    """A threshold that leaves some circuits valid and some not."""
    if criterion == "accuracy":
        return 0.5
    return float(max(1e-6, 0.2 * np.var(net.forward(x))))


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
def test_deep_census_equals_reference(hidden, ablation, criterion):
    rng = np.random.default_rng(sum(map(ord, "deep" + hidden + ablation + criterion)))
    seen_valid = seen_invalid = 0
    for number, sizes in enumerate(DEEP):
        out_act = ("identity", "sigmoid", hidden)[number % 3]
        net = random_network(rng, sizes, hidden, out_act)
        x, y = xor_like_data(rng, sizes[0], sizes[-1])
        threshold = _threshold(net, x, criterion)
        output = "joint" if sizes[-1] > 1 else None
        n_ref, valid_ref = reference_census(net, x, y, ablation, criterion, threshold)
        settings = CensusSettings(criterion, threshold, ablation)
        for prune in (True, False):
            listed = census(net, x, y, settings, RunOptions(prune=prune), output=output)
            assert (listed.n_candidates, listed.n_valid) == (n_ref, len(valid_ref))
            assert as_flags(listed) == valid_ref
            # counted only: the compiled last two layers (with bounds)
            counted = census(
                net, x, y, settings, RunOptions(prune=prune, collect=False), output=output
            )
            assert (counted.n_candidates, counted.n_valid) == (n_ref, len(valid_ref))
        seen_valid += len(valid_ref)
        seen_invalid += n_ref - len(valid_ref)
    assert seen_valid > 0 and seen_invalid > 0


@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
def test_deep_meloux2025_mode_equals_reference(criterion):
    rng = np.random.default_rng(17)
    for sizes in [(2, 2, 2, 2, 1), (2, 3, 2, 1)]:
        net = random_network(rng, sizes, "relu", "leaky_relu")
        x, y = xor_like_data(rng, sizes[0], sizes[-1])
        threshold = 0.1 if criterion == "mse" else 0.5
        n_ref, valid_ref = reference_census(net, x, y, "zero", criterion, threshold, compat=True)
        settings = CensusSettings(criterion, threshold, compat="meloux2025")
        listed = census(net, x, y, settings)
        counted = census(net, x, y, settings, RunOptions(collect=False))
        assert (listed.n_candidates, as_flags(listed)) == (n_ref, valid_ref)
        assert (counted.n_candidates, counted.n_valid) == (n_ref, len(valid_ref))


def _consistent(masks, family: Family, space: CircuitSpace) -> bool:
    """Whether a circuit's masks extend ``family``'s prefix and chosen nodes."""
    layer = family.choices.layer
    flat = np.concatenate([m.reshape(-1) for m in masks[: layer - 1]] + [np.zeros(0, bool)])
    prefix_flags = space.bits_to_masks(family.prefix.bits)
    expected = np.concatenate([m.reshape(-1) for m in prefix_flags[: layer - 1]] + [np.zeros(0)])
    if not np.array_equal(flat.astype(bool), expected.astype(bool)):
        return False
    return all(
        np.array_equal(masks[layer - 1][j], family.choices.subsets[c])
        for j, c in enumerate(family.picked)
    )


@pytest.mark.parametrize("sizes", [(2, 2, 2, 1), (2, 2, 2, 2, 1), (2, 1, 2, 2)])
@pytest.mark.parametrize("compat", [None, "meloux2025"])
def test_family_count_equals_enumeration(sizes, compat):
    """Every family of the first two nodes' choices (and of whole complete layers) holds
    exactly as many admissible circuits as a plain enumeration finds."""
    rng = np.random.default_rng(3)
    net = random_network(rng, sizes)
    x, _ = xor_like_data(rng, sizes[0], sizes[-1])
    problem = prepare(net, x, None, CensusSettings(compat=compat))
    space = problem.space
    everything = [masks for _, masks in admissible_edge_flags(space)]
    root = Family(root_prefix(problem), layer_choices(problem, root_prefix(problem), 1), ())
    assert family_count(space.sizes, compat is not None, root.shape(problem)) == space.count()
    families, frontier = [root], [root]
    for _ in range(sizes[1] + 1):  # every choice of layer 1, then the first of layer 2
        grown = []
        for fam in frontier:
            if fam.complete:  # an admissible prefix opens the next layer's families
                prefix = fam.next_prefix(problem)
                empty = family_count(space.sizes, compat is not None, fam.shape(problem)) == 0
                if empty or len(sizes) < 5:
                    continue
                grown.append(Family(prefix, layer_choices(problem, prefix, 2), ()))
            else:
                grown += [
                    Family(fam.prefix, fam.choices, (*fam.picked, c))
                    for c in range(len(fam.choices.subsets))
                ]
        families += grown
        frontier = grown
    for fam in families:
        expected = sum(_consistent(masks, fam, space) for masks in everything)
        assert family_count(space.sizes, compat is not None, fam.shape(problem)) == expected


def test_last_layer_count_matches_the_space():
    """Keeping ``a`` senders and ``m`` outputs to feed, the last hidden layer's ways add up
    to the covering counts the space's dynamic program uses."""
    # a 2-a-n1-m network with every first-layer node kept: the last layer's ways
    for a, n1, m in [(2, 2, 1), (3, 2, 2), (2, 3, 1)]:
        by_formula = last_count(a, a, m, m, n1, False)
        space = CircuitSpace((a, n1, m))
        # inputs need not be covered in a plain space: compare with covered senders instead
        brute = sum(
            1
            for _, masks in admissible_edge_flags(space)
            if masks[0].any(axis=0).all()  # every sender feeds a kept node
        )
        assert by_formula == brute


def test_families_are_decided_both_ways_and_counted_exactly():
    """A threshold nothing passes, one everything passes, and one between: families of
    prefixes are decided invalid and valid, and the census still equals the reference."""
    rng = np.random.default_rng(23)
    net = random_network(rng, (2, 2, 2, 2, 1), "relu", "identity")
    x, y = xor_like_data(rng, 2, 1)
    kinds = set()
    for threshold in (1e-9, 1e9, _threshold(net, x, "mse")):
        settings = CensusSettings(threshold=threshold)
        items = list(prefix_families(prepare(net, x, None, settings)))
        kinds |= {item.verdict for item in items if isinstance(item, Decided)}
        assert any(isinstance(item, (Decided, Base)) for item in items)
        n_ref, valid_ref = reference_census(net, x, y, "zero", "mse", threshold)
        listed = census(net, x, y, settings)
        counted = census(net, x, y, settings, RunOptions(collect=False))
        assert (listed.n_candidates, as_flags(listed)) == (n_ref, valid_ref)
        assert (counted.n_candidates, counted.n_valid) == (n_ref, len(valid_ref))
        if threshold > 1:
            assert counted.n_bounded == n_ref  # the root family alone decided it
    assert kinds == {-1, 1}


@pytest.mark.parametrize("collect", [True, False])
def test_deep_shards_add_up_to_the_census(collect):
    rng = np.random.default_rng(31)
    net = random_network(rng, (2, 2, 2, 2, 1), "tanh", "identity")
    x, _ = xor_like_data(rng, 2, 1)
    settings = CensusSettings(threshold=_threshold(net, x, "mse"))
    whole = census(net, x, settings=settings)
    for n in (2, 5):
        options = [RunOptions(shard=(i, n), collect=collect) for i in range(n)]
        parts = [census(net, x, settings=settings, options=o) for o in options]
        assert sum(p.n_candidates for p in parts) == whole.n_candidates
        assert sum(p.n_valid for p in parts) == whole.n_valid
        if collect:
            assert np.array_equal(combine_results(parts).valid, whole.valid)


@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (2, 5, 5, 5, 1), (3, 6, 4, 2)])
def test_family_counts_past_two_to_the_64_are_exact(sizes):
    """The root family's count is the space's, exactly, far past 2^64."""
    net = random_network(np.random.default_rng(0), sizes)
    x, _ = xor_like_data(np.random.default_rng(0), sizes[0], sizes[-1], repeats=1)
    problem = prepare(net, x, None, CensusSettings())
    root = Family(root_prefix(problem), layer_choices(problem, root_prefix(problem), 1), ())
    total = family_count(tuple(sizes), False, root.shape(problem))
    assert total == CircuitSpace(sizes).count()
    assert sizes != (2, 8, 8, 1) or total == 118_530_511_097_526_559_703_295


def test_holding_no_circuits_counts_them_all_and_holds_none():
    """``collect=0`` (the command line's ``--max-measured 0``) lists nothing, so the
    compiled kernels count it, and the result says the valid circuits were not held."""
    rng = np.random.default_rng(41)
    net = random_network(rng, (2, 3, 2, 1), "relu", "identity")
    x, y = xor_like_data(rng, 2, 1)
    settings = CensusSettings(threshold=_threshold(net, x, "mse"))
    n_ref, valid_ref = reference_census(net, x, y, "zero", "mse", settings.threshold)
    none_held = census(net, x, y, settings, RunOptions(collect=0))
    assert (none_held.n_candidates, none_held.n_valid) == (n_ref, len(valid_ref))
    assert len(valid_ref) > 0 and none_held.valid is None


@pytest.mark.parametrize("path", ["by class", "by option", "mixed"])
@pytest.mark.parametrize("compat", [None, "meloux2025"])
def test_last_layer_searches_by_class_and_by_option_agree(monkeypatch, path, compat):
    """The last hidden layer searched over classes of equal options (counted by inclusion
    and exclusion), option by option (``CLASS_CIRCUITS`` 0), or each where it fits (a
    small ``MAX_CLASS_ENTRIES``) gives the reference census."""
    if path == "by option":
        monkeypatch.setattr(last_layers, "CLASS_CIRCUITS", 0)
    if path == "mixed":
        monkeypatch.setattr(last_layers, "MAX_CLASS_ENTRIES", 24)
    rng = np.random.default_rng(53)
    for sizes, hidden, criterion in [
        ((2, 3, 2, 1), "relu", "mse"),
        ((2, 2, 3, 1), "relu", "accuracy"),
        ((2, 2, 2, 2), "leaky_relu", "mse"),
        ((2, 2, 2, 2, 1), "tanh", "mse"),
    ]:
        net = random_network(rng, sizes, hidden, "identity")
        x, y = xor_like_data(rng, sizes[0], sizes[-1])
        threshold = _threshold(net, x, criterion)
        n_ref, valid_ref = reference_census(
            net, x, y, "zero", criterion, threshold, compat=compat is not None
        )
        settings = CensusSettings(criterion, threshold, compat=compat)
        output = "joint" if sizes[-1] > 1 else None
        counted = census(net, x, y, settings, RunOptions(collect=False), output=output)
        assert (counted.n_candidates, counted.n_valid) == (n_ref, len(valid_ref))


def test_options_with_equal_contributions_share_a_class():
    """Rows equal in every term share the class of their first; option 0's class is 0."""
    rows = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, -0.0], [2.0, 1.0], [1.0, 2.0], [3.0, 0.0]])
    classes, n_classes = option_classes(rows)
    assert classes.tolist() == [0, 1, 0, 2, 1, 3] and n_classes == 4


def test_quadratic_bound_holds_for_every_member():
    """The quadratic bound of an mse family (identity output) is checked against every
    member's error: a family it decides has no member on the other side of the budget,
    and over a range of budgets it decides some families both ways and leaves some open."""
    rng = np.random.default_rng(61)
    n1, n_opt, n_terms = 3, 5, 6
    seen = set()
    for _ in range(20):
        contrib = rng.normal(size=(n1, n_opt, n_terms)) * rng.uniform(0.1, 2, (n1, 1, 1))
        contrib[:, 3] = contrib[:, 1]  # options with equal contributions share a class
        classes = [option_classes(contrib[j]) for j in range(n1)]
        n_cls = np.array([n for _, n in classes])
        first = np.zeros((n1, n_opt), np.int64)
        for j, (cls, n) in enumerate(classes):
            for c in range(n):
                first[j, c] = np.flatnonzero(cls == c)[0]
        order = np.argsort(-n_cls)
        b_out = np.array([0.2])
        target = rng.normal(size=n_terms) + rng.normal(0, 3)  # some far from every member
        weight = rng.uniform(0.5, 2, n_terms)
        members = np.array(
            [
                sum(contrib[j, first[j, c]] for j, c in enumerate(pick))
                for pick in np.ndindex(*n_cls)
            ]
        )
        errors = ((members + b_out - target) ** 2 * weight).sum(axis=1)
        for budget in np.quantile(errors, [0.0, 0.0, 0.5, 1.0]) * [0.1, 0.5, 1.0, 2.0]:
            rule = Rule(IDENTITY, np.zeros(2), MSE, float(budget), 1, target, weight)
            start, gram, reach, linear, norm, pad = _quadratic_setup(
                contrib, order, n_cls, first, rule, b_out
            )
            verdict = _quadratic_decision(0, start, linear, norm, reach, pad, budget)
            if verdict == 1:
                assert (errors < budget).all()
            if verdict == -1:
                assert (errors > budget).all()
            seen.add(verdict)
    assert seen == {-1, 0, 1}
