"""The census engine equals a plain reference enumerator, written here from SPEC alone:
loop over every subset of edges, keep the admissible ones, evaluate each circuit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from circuit_census.activations import ACTIVATIONS
from circuit_census.circuits.census import census, census_outputs, combine_results
from circuit_census.circuits.circuitfile import read_circuits
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.network import Network

# ----------------------------------------------------------------------------- reference


def admissible(masks, compat=False) -> bool:
    """SPEC, "Circuit", read literally (plus the meloux2025 filter when ``compat``)."""
    if not all(row.any() for row in masks[-1]):
        return False
    every_hidden_kept = True
    for layer in range(1, len(masks)):
        for node in range(masks[layer - 1].shape[0]):
            has_in = masks[layer - 1][node].any()
            has_out = masks[layer][:, node].any()
            if has_in != has_out:
                return False
            every_hidden_kept &= bool(has_in)
    if compat:
        if not all(masks[0][:, i].any() for i in range(masks[0].shape[1])):
            return False
        if every_hidden_kept:
            return False
    return True


def act(name, z):
    return {
        "relu": lambda v: np.maximum(v, 0),
        "leaky_relu": lambda v: np.where(v >= 0, v, 0.01 * v),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "identity": lambda v: v,
    }[name](z)


def forward(ws, bs, hidden, out_act, x, masks=None, means=None, replaced=None):
    """``means``: per-layer node means (mean ablation); ``replaced``: per-layer values of
    every sample's corrupted partner (resample ablation)."""
    h = x
    for layer, (w, b) in enumerate(zip(ws, bs)):
        if masks is None:
            z = h @ w.T + b
        else:
            m = masks[layer]
            z = h @ (w * m).T + b
            if means is not None:
                z = z + (w * (1 - m)) @ means[layer]
            if replaced is not None:
                z = z + replaced[layer] @ (w * (1 - m)).T
        h = act(out_act if layer == len(ws) - 1 else hidden, z)
    return h


def layer_values(ws, bs, hidden, out_act, x):
    values, h = [x], x
    for layer, (w, b) in enumerate(zip(ws, bs)):
        h = act(out_act if layer == len(ws) - 1 else hidden, h @ w.T + b)
        values.append(h)
    return values


def resample_pairs(n, pairs, seed):
    """SPEC's pairs (x, x') as indices: x' = X permuted by the seed, or every ordered pair."""
    if pairs == "all":
        return [i for i in range(n) for _ in range(n)], [j for _ in range(n) for j in range(n)]
    return list(range(n)), list(np.random.default_rng(seed).permutation(n))


def reference_census(
    net, x, y, ablation, criterion, threshold, compat=False, pairs="seeded", seed=0
):
    """Every edge subset; admissible ones evaluated one forward pass each."""
    ws, bs = net.weights, net.biases
    shapes = [w.shape for w in ws]
    means = replaced = None
    if ablation == "mean":
        means = [
            v.mean(axis=0) for v in layer_values(ws, bs, net.activation, net.output_activation, x)
        ]
    if ablation == "resample":
        clean, corrupted = resample_pairs(len(x), pairs, seed)
        replaced = layer_values(ws, bs, net.activation, net.output_activation, x[corrupted])
        x, y = x[clean], y[clean]
    full = forward(ws, bs, net.activation, net.output_activation, x)
    n_edges = sum(a * b for a, b in shapes)
    candidates, valid = 0, set()
    for flags in itertools.product((0, 1), repeat=n_edges):
        flat, masks, at = np.array(flags, dtype=float), [], 0
        for a, b in shapes:
            masks.append(flat[at : at + a * b].reshape(a, b))
            at += a * b
        if not admissible(masks, compat):
            continue
        candidates += 1
        out = forward(ws, bs, net.activation, net.output_activation, x, masks, means, replaced)
        if criterion == "mse":
            ok = np.mean((out - full) ** 2) < threshold
        else:
            bits = np.round(out) if compat else (out >= 0.5)
            right = np.mean(np.all(bits == y, axis=1))
            ok = right > threshold if compat else right >= threshold
        if ok:
            valid.add(flags)
    return candidates, valid


def as_flags(result) -> set:
    space = result.space
    out = set()
    for bits in result.valid:
        masks = space.bits_to_masks(bits)
        out.add(tuple(int(v) for m in masks for v in m.reshape(-1)))
    return out


def random_network(rng, sizes, hidden="relu", out_act="identity") -> Network:
    ws = tuple(rng.normal(0, 1.2, size=(sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1))
    bs = tuple(rng.normal(0, 0.5, size=sizes[i + 1]) for i in range(len(sizes) - 1))
    return Network(ws, bs, hidden, out_act)


def xor_like_data(rng, n_inputs, n_outputs, repeats=4, noise=0.15):
    corners = np.array(list(itertools.product((0, 1), repeat=n_inputs)), dtype=float)
    x = np.repeat(corners, repeats, axis=0)
    x = x + rng.normal(0, noise, size=x.shape)
    y = rng.integers(0, 2, size=(len(x), n_outputs)).astype(float)
    return x, y


# ----------------------------------------------------------------------------- the engine

ARCHITECTURES = [(2, 2, 1), (2, 3, 1), (3, 2, 1), (2, 2, 2, 1), (2, 1, 2, 1)]


@pytest.mark.parametrize("hidden", ACTIVATIONS)
@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
def test_census_equals_reference_for_every_activation_ablation_and_criterion(
    hidden, ablation, criterion
):
    rng = np.random.default_rng(sum(map(ord, hidden + ablation + criterion)))
    seen_valid = seen_invalid = 0
    for number, sizes in enumerate(ARCHITECTURES):
        # resample: a seeded permutation (a new seed each time) or every ordered pair
        pairs, seed = ("all", 0) if number % 2 else ("seeded", number)
        for out_act in ("identity", "sigmoid", hidden):
            net = random_network(rng, sizes, hidden, out_act)
            x, y = xor_like_data(rng, sizes[0], sizes[-1])
            # thresholds that leave some circuits valid and some not
            threshold = 0.05 if criterion == "mse" else 0.5
            if criterion == "mse":
                full = net.forward(x)
                threshold = float(max(0.02, 0.5 * np.var(full)))
            n_ref, valid_ref = reference_census(
                net, x, y, ablation, criterion, threshold, pairs=pairs, seed=seed
            )
            settings = CensusSettings(
                criterion, threshold, ablation, resample_pairs=pairs, resample_seed=seed
            )
            for prune in (True, False):  # with bounds deciding families first, and without
                result = census(net, x, y, settings, RunOptions(prune=prune))
                assert result.n_candidates == n_ref
                assert result.n_valid == len(valid_ref)
                assert as_flags(result) == valid_ref
            seen_valid += len(valid_ref)
            seen_invalid += n_ref - len(valid_ref)
    assert seen_valid > 0 and seen_invalid > 0  # both outcomes were exercised


@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
def test_meloux2025_mode_equals_reference_with_its_filter(criterion):
    rng = np.random.default_rng(7)
    for sizes in [(2, 2, 1), (2, 3, 1), (2, 2, 2, 1)]:
        for hidden in ("leaky_relu", "relu"):
            net = random_network(rng, sizes, hidden, "leaky_relu")
            x, y = xor_like_data(rng, sizes[0], sizes[-1])
            threshold = 0.1 if criterion == "mse" else 0.5
            n_ref, valid_ref = reference_census(
                net, x, y, "zero", criterion, threshold, compat=True
            )
            result = census(
                net,
                x,
                y,
                CensusSettings(criterion=criterion, threshold=threshold, compat="meloux2025"),
            )
            assert (result.n_candidates, as_flags(result)) == (n_ref, valid_ref)


def test_meloux2025_rounding_counts_half_as_zero_and_needs_strictly_more():
    # output exactly 0.5 through hidden node 0: ">= 0.5" reads 1, round-half-even reads 0
    w1 = np.array([[1.0, 0.0], [0.0, 0.0]])
    net = Network((w1, np.array([[1.0, 0.0]])), (np.zeros(2), np.zeros(1)), "relu")
    x = np.array([[0.5, 0.0], [0.5, 1.0]])
    y = np.ones((2, 1))
    plain = census(net, x, y, CensusSettings(criterion="accuracy", threshold=1.0))
    assert plain.n_valid > 0
    n_ref, valid_ref = reference_census(net, x, y, "zero", "accuracy", 1.0)
    assert as_flags(plain) == valid_ref
    compat = census(
        net, x, y, CensusSettings(criterion="accuracy", threshold=0.0, compat="meloux2025")
    )
    assert compat.n_candidates == 2  # one hidden node kept, fed by both inputs
    assert compat.n_valid == 0  # no sample right, and a fraction of 0 is not > 0


@pytest.mark.parametrize(
    "sizes, expected",
    [((2, 1, 1), 3), ((2, 2, 1), 15), ((2, 3, 1), 63), ((2, 4, 1), 255), ((2, 2, 2, 1), 99),
     ((2, 3, 2, 1), 999)],
)  # fmt: skip
def test_sanity_counts_of_spec(sizes, expected):
    assert CircuitSpace(sizes).count() == expected
    net = random_network(np.random.default_rng(0), sizes)
    x = np.random.default_rng(1).normal(size=(5, sizes[0]))
    assert census(net, x, options=RunOptions(collect=False)).n_candidates == expected


def test_general_k_counts_are_four_to_the_k_minus_one():
    for k in range(1, 17):
        assert CircuitSpace((2, k, 1)).count() == 4**k - 1


@pytest.mark.parametrize("sizes", [(2, 4, 1), (2, 3, 3, 1), (2, 2, 2, 2, 1), (3, 2, 2)])
@pytest.mark.parametrize("compat", [None, "meloux2025"])
def test_closed_form_count_equals_enumeration(sizes, compat):
    space = CircuitSpace(sizes, compat)
    shapes = space.layer_shapes
    n_edges = space.n_edges
    if n_edges > 20:
        pytest.skip("enumeration too long")
    count = 0
    for flags in itertools.product((0, 1), repeat=n_edges):
        flat, masks, at = np.array(flags), [], 0
        for a, b in shapes:
            masks.append(flat[at : at + a * b].reshape(a, b))
            at += a * b
        count += admissible(masks, compat is not None)
    assert space.count() == count


def test_meloux2025_space_sizes_on_2_4_1_and_2_3_3_1():
    for sizes in [(2, 4, 1), (2, 3, 3, 1)]:
        space = CircuitSpace(sizes, "meloux2025")
        n_edges = space.n_edges
        count = 0
        for flags in itertools.product((0, 1), repeat=n_edges):
            flat, masks, at = np.array(flags), [], 0
            for a, b in space.layer_shapes:
                masks.append(flat[at : at + a * b].reshape(a, b))
                at += a * b
            count += admissible(masks, compat=True)
        assert space.count() == count
        net = random_network(np.random.default_rng(3), sizes, "leaky_relu", "leaky_relu")
        x = np.random.default_rng(4).normal(size=(6, 2))
        assert (
            census(
                net,
                x,
                settings=CensusSettings(compat="meloux2025"),
                options=RunOptions(collect=False),
            ).n_candidates
            == count
        )


def test_depth_three_network_equals_reference():
    rng = np.random.default_rng(11)
    net = random_network(rng, (2, 2, 1, 2, 1), "tanh", "identity")
    x, y = xor_like_data(rng, 2, 1)
    for ablation in ("zero", "mean", "resample"):
        n_ref, valid_ref = reference_census(net, x, y, ablation, "mse", 0.05)
        result = census(net, x, y, CensusSettings(ablation=ablation, threshold=0.05))
        assert (result.n_candidates, as_flags(result)) == (n_ref, valid_ref)


def test_multi_output_census_is_per_output_subnetwork():
    rng = np.random.default_rng(5)
    net = random_network(rng, (2, 2, 2), "relu", "sigmoid")
    x, y = xor_like_data(rng, 2, 2)
    results = census_outputs(net, x, y, CensusSettings(criterion="accuracy", threshold=0.5))
    assert len(results) == 2
    for o, result in enumerate(results):
        sub = net.output_subnetwork(o)
        n_ref, valid_ref = reference_census(sub, x, y[:, o : o + 1], "zero", "accuracy", 0.5)
        assert (result.n_candidates, as_flags(result)) == (n_ref, valid_ref)
        masks = result.edge_masks(result.valid[0], net.sizes) if result.n_valid else None
        if masks is not None:
            assert masks[-1].shape == (2, 2) and not masks[-1][1 - o].any()


def test_joint_census_of_multi_output_network_equals_reference():
    rng = np.random.default_rng(6)
    net = random_network(rng, (2, 2, 2), "relu", "identity")
    x, y = xor_like_data(rng, 2, 2)
    for ablation, pairs in (("mean", "seeded"), ("resample", "seeded"), ("resample", "all")):
        for criterion, threshold in (("mse", 0.3), ("accuracy", 0.5)):
            n_ref, valid_ref = reference_census(
                net, x, y, ablation, criterion, threshold, pairs=pairs, seed=4
            )
            settings = CensusSettings(
                criterion, threshold, ablation, resample_pairs=pairs, resample_seed=4
            )
            result = census(net, x, y, settings, output="joint")
            assert (result.n_candidates, as_flags(result)) == (n_ref, valid_ref)


def test_valid_circuits_are_listed_by_size_then_edge_list():
    rng = np.random.default_rng(13)
    net = random_network(rng, (2, 4, 1), "relu", "identity")
    x, _ = xor_like_data(rng, 2, 1)
    settings = CensusSettings(threshold=float(0.5 * np.var(net.forward(x))))
    whole = census(net, x, settings=settings)
    assert 1 < whole.n_valid < whole.n_candidates

    def edges(bits) -> list[int]:
        masks = whole.space.bits_to_masks(bits)
        return [int(e) for e in np.flatnonzero(np.concatenate([m.reshape(-1) for m in masks]))]

    edge_lists = [edges(bits) for bits in whole.valid]
    assert edge_lists == sorted(edge_lists, key=lambda edges: (len(edges), edges))
    parts = [census(net, x, settings=settings, options=RunOptions(shard=(i, 3))) for i in range(3)]
    assert np.array_equal(combine_results(parts[::-1]).valid, whole.valid)


def test_network_without_hidden_layer():
    rng = np.random.default_rng(8)
    net = random_network(rng, (3, 1), "relu", "sigmoid")
    x, y = xor_like_data(rng, 3, 1)
    n_ref, valid_ref = reference_census(net, x, y, "mean", "mse", 0.01)
    result = census(net, x, y, CensusSettings(ablation="mean", threshold=0.01))
    assert (result.n_candidates, as_flags(result)) == (n_ref, valid_ref)


# ----------------------------------------------------------------------------- bounds


def members_error(act_name, z, target, weight, criterion, limit, compat=False):
    """Whether each row of pre-activations ``z`` (members, terms) is valid, from SPEC."""
    out = act(act_name, z)
    if criterion == "mse":
        return (weight * (out - target) ** 2).sum(axis=1) < limit
    bits = np.round(out) if compat else (out >= 0.5).astype(float)
    wrong = (bits != target).astype(float) @ weight
    return wrong <= limit


@pytest.mark.parametrize("out_act", ACTIVATIONS)
@pytest.mark.parametrize("criterion", ["mse", "accuracy", "rounded"])
def test_interval_decision_never_contradicts_a_member_of_the_family(out_act, criterion):
    from circuit_census.activations import TABLE
    from circuit_census.circuits.engine import kernels
    from circuit_census.circuits.engine.structures import Rule

    rng = np.random.default_rng(sum(map(ord, out_act + criterion)))
    code = {"mse": kernels.MSE, "accuracy": kernels.ACCURACY, "rounded": kernels.ACCURACY_ROUNDED}
    act_code = TABLE[out_act].code
    decided = {-1: 0, 0: 0, 1: 0}
    for _ in range(400):
        n = 12
        z = rng.normal(0, 2, n)
        width = rng.exponential(0.3, (2, n)) * rng.integers(0, 2, (1, n))
        lo, hi = -width[0], width[1]
        if criterion == "mse":
            target = act(out_act, z + rng.normal(0, 1.0, n))
        else:  # the centre's reading, with a few bits flipped
            out = act(out_act, z)
            bits = np.clip(np.round(out) if criterion == "rounded" else out >= 0.5, 0, 1)
            target = np.abs(bits - (rng.random(n) < 0.15)).astype(float)
        weight = rng.integers(1, 4, n).astype(float)
        if criterion == "mse":  # around the error at the centre of the intervals
            centre = float((weight * (act(out_act, z) - target) ** 2).sum())
            limit = centre * float(rng.uniform(0.3, 3.0)) + 1e-3
        else:
            limit = float(rng.integers(0, weight.sum() + 1))
        rule = Rule(
            activation=act_code,
            table=kernels.activation_table(act_code),
            criterion=code[criterion],
            budget=limit,
            n_out=1,
            target=target,
            weight=weight,
        )
        verdict = kernels.interval_decision(z, lo, hi, np.zeros(n), rule)
        decided[verdict] += 1
        # members: both ends of every interval, and points inside
        members = z + np.concatenate(
            [lo[None], hi[None], lo + (hi - lo) * rng.random((64, n))], axis=0
        )
        ok = members_error(
            out_act,
            members,
            target,
            weight,
            "mse" if criterion == "mse" else "accuracy",
            limit,
            compat=criterion == "rounded",
        )
        if verdict == 1:
            assert ok.all()
        elif verdict == -1:
            assert not ok.any()
    assert decided[-1] > 0 and decided[1] > 0 and decided[0] > 0


@pytest.mark.parametrize("out_act", ACTIVATIONS)
@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
@pytest.mark.parametrize("leaf", [1, 16])
def test_bounds_change_no_verdict_of_scoring_every_pair(out_act, criterion, leaf, monkeypatch):
    import circuit_census.circuits.engine.bounds as bounds

    monkeypatch.setattr(bounds, "PAIR_LEAF", leaf)
    rng = np.random.default_rng(sum(map(ord, out_act + criterion)) + leaf)
    bounded = by_pairs = 0
    for sizes, output in [((2, 7, 1), None), ((2, 3, 3, 1), None), ((2, 4, 2), "joint")]:
        for ablation in ("zero", "mean", "resample"):
            net = random_network(rng, sizes, "relu", out_act)
            x, _ = xor_like_data(rng, 2, sizes[-1], repeats=6)
            y = (net.forward(x) >= 0.5).astype(float)  # the full model is right
            threshold = 0.8 if criterion == "accuracy" else 0.5 * float(np.var(net.forward(x)))
            settings = CensusSettings(criterion, threshold, ablation)
            pruned = census(net, x, y, settings, output=output)
            every_pair = census(net, x, y, settings, RunOptions(prune=False), output=output)
            assert pruned.n_candidates == every_pair.n_candidates
            assert np.array_equal(pruned.valid, every_pair.valid)
            assert every_pair.n_bounded == 0
            bounded += pruned.n_bounded
            by_pairs += pruned.n_candidates - pruned.n_bounded
    assert bounded > 0
    if leaf > 1:  # single pairs are always decided by their (exact) bounds
        assert by_pairs > 0  # both ways of deciding were exercised


# ----------------------------------------------------------------------------- shards, files


@pytest.mark.parametrize("sizes", [(2, 6, 1), (2, 3, 2, 1)])
@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
def test_union_of_shards_is_exactly_the_census(sizes, criterion, monkeypatch):
    import circuit_census.circuits.engine.plan as plan

    monkeypatch.setattr(plan, "BLOCK_ELEMENTS", 64)  # many small work units
    rng = np.random.default_rng(9)
    net = random_network(rng, sizes, "relu", "identity")
    x, y = xor_like_data(rng, 2, 1)
    threshold = 0.5 if criterion == "accuracy" else 0.3
    whole = census(net, x, y, CensusSettings(criterion=criterion, threshold=threshold))
    for n in (2, 3, 7):
        parts = [
            census(
                net,
                x,
                y,
                CensusSettings(criterion=criterion, threshold=threshold),
                RunOptions(shard=(i, n)),
            )
            for i in range(n)
        ]
        assert sum(p.n_candidates for p in parts) == whole.n_candidates
        seen = np.concatenate([p.valid for p in parts])
        assert len(seen) == whole.n_valid  # no circuit in two shards
        merged = combine_results(parts)
        assert merged.n_valid == whole.n_valid
        assert np.array_equal(merged.valid, whole.valid)


def test_combine_refuses_missing_shards():
    rng = np.random.default_rng(1)
    net = random_network(rng, (2, 3, 1))
    x = rng.normal(size=(4, 2))
    parts = [census(net, x, options=RunOptions(shard=(i, 3))) for i in (0, 2)]
    with pytest.raises(InputError, match="shards"):
        combine_results(parts)


def test_workers_give_the_same_census():
    rng = np.random.default_rng(2)
    net = random_network(rng, (2, 5, 1), "tanh", "identity")
    x, _ = xor_like_data(rng, 2, 1)
    one = census(net, x, settings=CensusSettings(threshold=0.2))
    two = census(net, x, settings=CensusSettings(threshold=0.2), options=RunOptions(workers=2))
    assert (two.n_candidates, two.n_valid) == (one.n_candidates, one.n_valid)
    assert np.array_equal(two.valid, one.valid)


def test_circuits_stream_to_a_file_that_reads_back(tmp_path):
    rng = np.random.default_rng(3)
    net = random_network(rng, (2, 5, 1))
    x, _ = xor_like_data(rng, 2, 1)
    path = tmp_path / "c.circuits"
    result = census(
        net,
        x,
        settings=CensusSettings(threshold=0.5),
        options=RunOptions(collect=10, circuits_file=path),
    )
    header, bits = read_circuits(path)
    assert header["sizes"] == [2, 5, 1]
    assert len(bits) == result.n_valid
    full = census(net, x, settings=CensusSettings(threshold=0.5))
    assert {tuple(b) for b in np.asarray(bits)} == {tuple(b) for b in full.valid}
    if result.n_valid > 10:
        assert result.valid is None  # more than it may hold: none held, all counted


def test_written_files_get_the_permissions_of_a_plain_new_file(tmp_path):
    import os

    from circuit_census.files import atomic_write

    rng = np.random.default_rng(3)
    net = random_network(rng, (2, 3, 1))
    x, _ = xor_like_data(rng, 2, 1)
    old = os.umask(0o022)
    try:
        census(
            net,
            x,
            settings=CensusSettings(threshold=0.5),
            options=RunOptions(circuits_file=tmp_path / "c.circuits"),
        )
        atomic_write(tmp_path / "note.txt", lambda tmp: tmp.write_text("written"))
    finally:
        os.umask(old)
    for name in ("c.circuits", "note.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600


def test_collect_false_keeps_nothing_but_counts_everything():
    rng = np.random.default_rng(4)
    net = random_network(rng, (2, 4, 1))
    x, _ = xor_like_data(rng, 2, 1)
    counted = census(
        net, x, settings=CensusSettings(threshold=0.5), options=RunOptions(collect=False)
    )
    kept = census(net, x, settings=CensusSettings(threshold=0.5))
    assert counted.valid is None
    assert counted.n_valid == kept.n_valid == len(kept.valid)


def test_progress_reaches_the_total():
    rng = np.random.default_rng(5)
    net = random_network(rng, (2, 6, 1))
    x, _ = xor_like_data(rng, 2, 1)
    seen = []
    result = census(
        net, x, options=RunOptions(progress=lambda done, total: seen.append((done, total)))
    )
    assert seen[-1] == (result.n_candidates, result.n_candidates)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# ----------------------------------------------------------------------------- bad input


def test_refuses_more_candidates_than_the_limit():
    net = random_network(np.random.default_rng(0), (2, 6, 1))
    with pytest.raises(InputError, match="4,095 candidate circuits exceed the limit of 100"):
        census(net, np.zeros((3, 2)), options=RunOptions(max_candidates=100))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ablation": "patch"}, "unknown ablation"),
        ({"ablation": "resample", "resample_pairs": "some"}, "unknown resample pairs"),
        ({"ablation": "resample", "resample_seed": -1}, "non-negative integer"),
        ({"ablation": "resample", "resample_seed": 1.5}, "non-negative integer"),
        ({"criterion": "kl"}, "unknown criterion"),
        ({"threshold": -0.1}, "non-negative"),
        ({"threshold": float("nan")}, "non-negative"),
        ({"criterion": "accuracy", "threshold": 1.5}, "fraction"),
        ({"threshold": "high"}, "a number"),
        ({"compat": "other"}, "compatibility"),
    ],
)
def test_bad_settings_are_refused_when_made(kwargs, message):
    with pytest.raises(InputError, match=message):
        CensusSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "at least 1"),
        ({"backend": "jax"}, "unknown backend"),
        ({"shard": (3, 3)}, "shard"),
        ({"workers": 2, "device": "cuda"}, "one worker"),
    ],
)
def test_bad_run_options_are_refused_when_made(kwargs, message):
    with pytest.raises(InputError, match=message):
        RunOptions(**kwargs)


def test_settings_record_resample_pairs_only_under_resample_ablation():
    # other ablations keep the record (and so the keys of stored study runs) they had
    assert set(CensusSettings(ablation="mean").to_dict()) == {
        "criterion",
        "threshold",
        "ablation",
        "compat",
    }
    record = CensusSettings(ablation="resample", resample_pairs="all", resample_seed=3).to_dict()
    assert record["resample_pairs"] == "all" and record["resample_seed"] == 3


def test_settings_fill_in_the_criterion_default_threshold():
    assert CensusSettings().threshold == 0.05
    assert CensusSettings("accuracy").threshold == 0.99
    assert CensusSettings("accuracy", 0.5).rule.threshold == 0.5


def test_accuracy_without_targets_is_refused():
    net = random_network(np.random.default_rng(0), (2, 2, 1))
    with pytest.raises(InputError, match="needs targets"):
        census(net, np.zeros((3, 2)), settings=CensusSettings("accuracy"))


def test_data_that_does_not_fit_is_refused():
    net = random_network(np.random.default_rng(0), (2, 2, 1))
    with pytest.raises(InputError, match="input columns"):
        census(net, np.zeros((3, 3)))
    with pytest.raises(InputError, match="NaN"):
        census(net, np.array([[0.0, np.nan]]))


# ----------------------------------------------------------------------------- devices


@pytest.mark.parametrize("criterion", ["mse", "accuracy"])
@pytest.mark.parametrize("out_act", ["identity", "sigmoid", "relu"])
@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_pytorch_scorer_used_for_gpus_equals_the_compiled_kernels(criterion, out_act, ablation):
    rng = np.random.default_rng(12)
    seen_valid = seen_invalid = 0
    for sizes in [(2, 5, 1), (2, 3, 2, 1), (2, 2, 2)]:
        net = random_network(rng, sizes, "tanh", out_act)
        x, y = xor_like_data(rng, 2, sizes[-1])
        threshold = (
            0.5 if criterion == "accuracy" else float(max(0.01, 0.5 * np.var(net.forward(x))))
        )
        settings = CensusSettings(criterion, threshold, ablation)
        output = "joint" if sizes[-1] > 1 else None
        cpu = census(net, x, y, settings, output=output)
        torch_cpu = census(net, x, y, settings, RunOptions(backend="torch"), output=output)
        assert torch_cpu.n_candidates == cpu.n_candidates
        assert np.array_equal(torch_cpu.valid, cpu.valid)
        seen_valid += cpu.n_valid
        seen_invalid += cpu.n_candidates - cpu.n_valid
    assert seen_valid > 0 and seen_invalid > 0


def test_unavailable_device_is_a_clear_error():
    net = random_network(np.random.default_rng(0), (2, 2, 1))
    with pytest.raises(InputError, match="not available"):
        census(net, np.zeros((3, 2)), options=RunOptions(device="nosuchdevice"))
