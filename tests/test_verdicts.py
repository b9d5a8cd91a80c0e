"""Findings as signed claims: the verdict rule at its boundaries, Holm's adjustment, the
stratified test, complexity levels, declared findings, and per-output measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from circuit_census.analysis.findings import (
    FINDINGS,
    NEGATIVE,
    NOT_NEGATIVE,
    POSITIVE,
    STRONG_POSITIVE,
    WEAK,
    Claim,
)
from circuit_census.analysis.rows import snap_levels
from circuit_census.analysis.series import split_series, study_stats
from circuit_census.analysis.statistics import holm, stratified_spearman
from circuit_census.analysis.verdicts import MIN_MODELS, study_verdicts
from circuit_census.errors import InputError
from circuit_census.experiments.sweeps import sweep_from_dict
from circuit_census.tasks.boolean import make_task

NAN = math.nan


@pytest.mark.parametrize(
    ("region", "low", "high", "verdict"),
    [
        # |rho| < 0.3, open at both ends
        (WEAK, -0.29, 0.29, "agrees"),
        (WEAK, -0.1, 0.3, "inconclusive"),  # 0.3 itself is outside the claim
        (WEAK, 0.3, 0.6, "disagrees"),  # touches the open end: no shared point
        (WEAK, -0.6, -0.3, "disagrees"),
        (WEAK, 0.29, 0.5, "inconclusive"),
        # rho >= 0, closed at 0
        (NOT_NEGATIVE, 0.0, 0.4, "agrees"),
        (NOT_NEGATIVE, -0.2, 0.0, "inconclusive"),  # shares 0
        (NOT_NEGATIVE, -0.3, -0.01, "disagrees"),
        # rho >= 0.5
        (STRONG_POSITIVE, 0.5, 0.9, "agrees"),
        (STRONG_POSITIVE, 0.3, 0.5, "inconclusive"),
        (STRONG_POSITIVE, 0.2, 0.4999, "disagrees"),
        # rho < 0, open at 0
        (NEGATIVE, -0.5, -0.01, "agrees"),
        (NEGATIVE, -0.5, 0.0, "inconclusive"),
        (NEGATIVE, 0.0, 0.3, "disagrees"),
        # rho > 0, open at 0
        (POSITIVE, 0.01, 0.3, "agrees"),
        (POSITIVE, 0.0, 0.3, "inconclusive"),
        (POSITIVE, -0.3, 0.0, "disagrees"),
        # no interval
        (WEAK, NAN, NAN, "inconclusive"),
        (POSITIVE, 0.2, NAN, "inconclusive"),
    ],
)
def test_verdict_rule_at_the_region_boundaries(region, low, high, verdict):
    assert Claim("n_valid", region, "").verdict(low, high) == verdict


def test_the_four_findings_are_the_declared_signed_claims():
    claims = {n: [(c.measure, c.region) for c in f.claims] for n, f in FINDINGS.items()}
    assert claims == {
        1: [("n_valid", WEAK), ("n_minimal", WEAK)],
        2: [("n_valid", WEAK), ("n_minimal", NOT_NEGATIVE)],
        3: [("n_valid", STRONG_POSITIVE)],
        4: [("valid_fraction", NEGATIVE), ("n_minimal", POSITIVE)],
    }
    assert [n for n, f in FINDINGS.items() if f.stratify] == [4]


def _holm_by_definition(p):
    """adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the sorted p-values."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    m, out, running = len(p), [0.0] * len(p), 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def test_holm_adjustment_matches_its_definition_and_skips_non_tests():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 9)).tolist()
        assert holm(p) == pytest.approx(_holm_by_definition(p))
    assert holm([0.01, 0.04, NAN, 0.03]) == pytest.approx([0.03, 0.06, NAN, 0.06], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1


def test_stratified_test_with_one_stratum_is_spearman():
    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(5.0), 8)
    y = x + rng.normal(0, 2, x.size)
    c = stratified_spearman(x, y, ["s"] * x.size, n_resamples=500)
    assert c.statistic == pytest.approx(stats.spearmanr(x, y).statistic)
    assert c.ci_low <= c.statistic <= c.ci_high and 0 < c.p_value <= 1


def test_stratified_test_does_not_pool_across_strata():
    """Simpson's paradox: within each stratum the measure falls with the factor, while a
    stratum of larger factor values has larger measures overall."""
    rng = np.random.default_rng(1)
    x = np.concatenate([np.repeat([1.0, 1.5, 2.0], 10), np.repeat([2.0, 2.5, 3.0], 10)])
    y = np.concatenate([100 - 10 * x[:30], 1000 - 10 * x[30:]]) + rng.normal(0, 1, 60)
    strata = ["2 inputs"] * 30 + ["3 inputs"] * 30
    assert stats.spearmanr(x, y).statistic > 0.3  # pooled naively: positive
    c = stratified_spearman(x, y, strata, n_resamples=999)
    assert c.statistic < -0.8 and c.ci_high < 0 and c.p_value < 0.01


def test_equal_complexities_share_one_level():
    xor, parity3 = make_task("xor").complexity, make_task("parity3").complexity
    assert math.isclose(xor, parity3)
    levels = snap_levels([xor, parity3, 1.0, 1.8])
    assert levels[xor] == levels[parity3] and len(set(levels.values())) == 3


def _rows(experiment, factor, values, measure_of, n_seeds=12, **extra):
    rows = []
    for v in values:
        for s in range(n_seeds):
            n_valid = measure_of(v, s)
            rows.append(
                {
                    "key": f"{experiment}-{v}-{s}",
                    "experiment": experiment,
                    "factor": factor,
                    "factor_value": v,
                    "hidden": "4",
                    "n_inputs": 2,
                    "n_outputs": 1,
                    "seed": s,
                    "converged": True,
                    "n_candidates": 255,
                    "n_valid": n_valid,
                    "n_minimal": 1 + (n_valid + s) % 3,
                    "identifiable": float((n_valid + s) % 3 == 0),
                    **extra,
                }
            )
    return rows


def _verdicts(rows, findings, n_resamples=999):
    series = split_series(rows)
    stats_ = study_stats(rows, n_resamples=n_resamples)
    return study_verdicts(series, stats_, findings, n_resamples=n_resamples)


def test_each_verdict_outcome_from_synthetic_rows():
    levels = [0.0, 1.0, 2.0, 3.0, 4.0]
    strong = _rows("wide", "width", levels, lambda v, s: int(10 * v + s % 3))
    none = _rows("flat", "l1", levels, lambda v, s: (7 * s + 3 * int(v)) % 11)
    (capacity,) = _verdicts(strong, {"wide": 3})
    assert capacity.verdict == "agrees" and capacity.ci_low >= 0.5
    weak_on_strong = _verdicts(strong, {"wide": 1})[0]
    assert weak_on_strong.verdict == "disagrees" and weak_on_strong.ci_low >= 0.3
    flat = _verdicts(none, {"flat": 3})[0]
    assert flat.verdict == "disagrees" and flat.ci_high < 0.5


def test_too_little_data_is_inconclusive_whatever_the_interval():
    few = _rows("wide", "width", [1.0, 2.0, 3.0], lambda v, s: int(10 * v), n_seeds=2)
    (v,) = _verdicts(few, {"wide": 3})
    assert v.n < MIN_MODELS and v.verdict == "inconclusive" and "too little data" in v.note
    two_levels = _rows("wide", "width", [1.0, 2.0], lambda v, s: int(10 * v + s), n_seeds=20)
    (v,) = _verdicts(two_levels, {"wide": 3})
    assert v.verdict == "inconclusive" and "2 levels" in v.note


def test_holm_is_applied_over_the_whole_table():
    levels = [0.0, 1.0, 2.0, 3.0]
    rows = _rows("a", "l1", levels, lambda v, s: int(5 * v + s % 4))
    rows += _rows("b", "orthogonality", levels, lambda v, s: int(3 * v + s % 5))
    vs = _verdicts(rows, {"a": 1, "b": 2})
    assert len(vs) == 4
    assert [v.p_holm for v in vs] == pytest.approx(holm([v.p for v in vs]), nan_ok=True)


def test_an_experiment_named_l1_gets_no_verdict_unless_it_declares_one():
    rows = _rows("l1", "l1", [0.0, 1.0, 2.0], lambda v, s: s)
    assert _verdicts(rows, {}) == []
    assert {v.finding for v in _verdicts(rows, {"l1": 2})} == {2}


def test_task_strata_are_series_of_their_own_and_pooled():
    two = _rows("tc", "task_complexity", [1.0, 1.8, 2.0], lambda v, s: int(50 - 10 * v + s % 4))
    three = _rows(
        "tc",
        "task_complexity",
        [1.0, 1.67, 1.9999999999999998],
        lambda v, s: int(500 - 100 * v + s % 4),
        n_inputs=3,
    )
    for r in three:
        r["key"] += "-3"
    series = split_series(two + three)
    assert [s.name for s in series] == ["tc (2 inputs, 1 output)", "tc (3 inputs, 1 output)"]
    assert len({r["factor_value"] for r in series[1].rows}) == 3
    vs = _verdicts(two + three, {"tc": 4})
    assert [v.stratum for v in vs][-2:] == ["pooled over strata"] * 2


# ------------------------------------------------------------------ sweep declarations


def _doc(**experiment):
    return {"experiments": {"e": {"factor": "l1", "levels": [0.0, 0.001], **experiment}}}


def test_a_sweep_experiment_declares_its_finding():
    assert sweep_from_dict(_doc(finding=1)).experiments[0].finding == 1
    assert sweep_from_dict(_doc()).experiments[0].finding is None
    with pytest.raises(InputError, match="no finding 5"):
        sweep_from_dict(_doc(finding=5))
    with pytest.raises(InputError, match="must be an integer"):
        sweep_from_dict(_doc(finding="one"))


def test_presets_declare_findings_at_every_robustness_setting():
    from circuit_census.experiments.presets import reproduction_sweep

    sweep = reproduction_sweep(quick=False)
    declared = {e.name: (e.finding, {c.hidden for c in e.conditions}) for e in sweep.experiments}
    assert declared["l1"] == (1, {(4,)}) and declared["l1-width8"] == (1, {(8,)})
    assert declared["orthogonality"] == (2, {(4,)})
    assert declared["orthogonality-width8"] == (2, {(8,)})
    assert declared["capacity"][0] == 3 and {len(h) for h in declared["capacity"][1]} == {1, 2}
    assert declared["task-complexity"][0] == 4
    assert declared["task-complexity-stacks"][0] is None
    tasks = next(e for e in sweep.experiments if e.name == "task-complexity").conditions
    assert {(make_task(c.task).n_inputs, make_task(c.task).n_outputs) for c in tasks} == {
        (2, 1),
        (3, 1),
    }


# ------------------------------------------------------------------ per-output measures


def test_multi_output_rows_average_per_output_and_keep_the_joint_census():
    from circuit_census.circuits.census import census
    from circuit_census.circuits.settings import RunOptions
    from circuit_census.experiments.work import evaluate_task, train_task
    from circuit_census.measures.uniqueness import minimal_circuits

    doc = {"experiments": {"e": {"factor": "task", "levels": ["and+xor"], "hidden": 3}}}
    cond = sweep_from_dict({**doc, "defaults": {"seeds": [0]}}).conditions[0]
    (run,) = train_task(cond, [0])
    row = evaluate_task(cond, run, "k", 100).row
    per_output = [
        census(run.network, run.x, run.y, cond.census, RunOptions(), output=o) for o in (0, 1)
    ]
    minimal = [minimal_circuits(r.valid).shape[0] for r in per_output]
    assert row.n_valid == pytest.approx(np.mean([r.n_valid for r in per_output]))
    assert row.n_minimal == pytest.approx(np.mean(minimal))
    assert row.identifiable == pytest.approx(np.mean([m == 1 for m in minimal]))
    assert row.valid_fraction == pytest.approx(
        np.mean([r.n_valid / r.n_candidates for r in per_output])
    )
    joint = census(run.network, run.x, run.y, cond.census, RunOptions(), output="joint")
    assert (row.n_candidates_joint, row.n_valid_joint) == (joint.n_candidates, joint.n_valid)
    assert row.n_minimal_joint == minimal_circuits(joint.valid).shape[0]
    assert row.measures["n_outputs"] == 2 and len(row.measures["outputs"]) == 2
