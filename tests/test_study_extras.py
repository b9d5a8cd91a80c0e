"""Study experiments beyond the findings: explanations and discovery columns, exact counts."""

from __future__ import annotations

import pytest

from circuit_census.analysis.discovery import discovery_table
from circuit_census.analysis.explanations import condition_levels
from circuit_census.errors import InputError
from circuit_census.experiments.presets import preset_sweep, reproduction_sweep
from circuit_census.experiments.rows import EXACT_COLUMNS
from circuit_census.experiments.store import Store
from circuit_census.experiments.sweeps import sweep_from_dict
from circuit_census.experiments.work import evaluate_task, run_description, train_task


def _one(**experiment):
    doc = {"defaults": {"seeds": [0]}, "experiments": {"e": experiment}}
    return sweep_from_dict(doc).conditions[0]


def test_explanations_columns_equal_explain_summary():
    from circuit_census.circuits.settings import RunOptions
    from circuit_census.explanations.explain import explain_summary

    cond = _one(factor="width", levels=[3], task="xor", explanations=True)
    (run,) = train_task(cond, [0])
    row = evaluate_task(cond, run, "k", 10).row
    want = explain_summary(run.network, run.x, run.y, cond.census, RunOptions())
    got = (row.interpretations_total, row.n_formulas, row.minimal_mappings_total)
    assert got == (want.interpretations_total, want.n_formulas, want.minimal_mappings_total)
    assert row.interpretations_median == want.interpretations_median
    assert run_description(cond, 0)["explanations"] is True
    plain = _one(factor="width", levels=[3], task="xor")
    assert "explanations" not in run_description(plain, 0)
    assert evaluate_task(plain, run, "k", 10).row.n_formulas is None


def test_explanations_need_one_output_and_a_boolean():
    with pytest.raises(InputError, match="one-output"):
        _one(factor="task", levels=["xor+and"], explanations=True)
    with pytest.raises(InputError, match="true or false"):
        _one(factor="width", levels=[3], explanations=1)
    with pytest.raises(InputError, match="at least 0"):
        _one(factor="width", levels=[3], discovery=-1)


def test_exact_counts_survive_the_store_past_64_bits(tmp_path):
    big = 2**126 + 7
    row = {"key": "k", "experiment": "e", "n_candidates": 4**32 - 1, "interpretations_total": big}
    with Store(tmp_path) as store:
        store.put(row)
        (back,) = store.rows()
    assert back["n_candidates"] == 4**32 - 1 and back["interpretations_total"] == big
    assert isinstance(back["interpretations_total"], int)


def test_discovery_rows_pool_per_network_and_method():
    cond = _one(factor="width", levels=[4], task="xor", discovery=2)
    (run,) = train_task(cond, [0])
    row = evaluate_task(cond, run, "k", 10).row.to_dict()
    found = row["measures"]["discovery"]
    assert set(found["methods"]) == {"acdc", "eap", "eap-ig", "magnitude"}
    assert all(m["n"] == 2 for m in found["methods"].values())
    assert "curve" in found["methods"]["eap"] and "curve" not in found["methods"]["acdc"]
    table = discovery_table([row, {**row, "key": "k2"}])
    assert {(d.network, d.method) for d in table} == {
        ("2-4-1 xor", m) for m in ("acdc", "eap", "eap-ig", "magnitude")
    }
    assert all(d.n_models == 2 for d in table)
    acdc = next(d for d in table if d.method == "acdc")
    assert acdc.fraction_valid == found["methods"]["acdc"]["fraction_valid"]
    # graded against the row's own census: the same as against a census taken anew
    from circuit_census.discovery.grading import method_summaries

    for summary in method_summaries(run.network, run.x, run.y, cond.census, seeds=2):
        stored = found["methods"][summary.method]
        assert {k: stored[k] for k in summary.__dict__} == summary.__dict__


def test_explanation_levels_per_condition():
    rows = [
        {
            "hidden": "3",
            "n_inputs": 2,
            "n_outputs": 1,
            "task": "xor",
            "converged": True,
            "n_valid": v,
            "interpretations_total": 2 * v,
            "interpretations_median": 2.0,
            "n_formulas": 1,
            "minimal_mappings_total": 3,
        }
        for v in (1, 3, 5)
    ]
    (c,) = condition_levels(rows)
    assert c.condition == "2-3-1 xor" and c.n_models == 3
    assert c.summaries["interpretations_total"].median == 6


def test_extra_presets_are_not_in_reproduce():
    names = {e.name for e in reproduction_sweep(False).experiments}
    assert not names & {"explanations-xor", "explanations-and", "discovery"}
    ex = preset_sweep("explanations")
    assert all(c.explanations for c in ex.conditions) and len(ex.conditions[0].seeds) >= 30
    hidden = {c.hidden for c in ex.conditions}
    assert {(3,), (4,), (5,), (6,), (3, 3)} == hidden
    disc = preset_sweep("discovery")
    assert {c.hidden for c in disc.conditions if c.task == "xor"} == {(4,), (8,), (3, 3)}
    assert any(c.task == "majority3" for c in disc.conditions)
    assert all(c.discovery_seeds > 0 and len(c.seeds) >= 30 for c in disc.conditions)
    assert "n_candidates" in EXACT_COLUMNS and "interpretations_total" in EXACT_COLUMNS
