"""Studies past the exact limit: an experiment with ``estimate = N`` estimates the censuses
beyond it from N uniform draws, stores them marked as estimates, and the report shows
them apart from every statistic and verdict."""

from __future__ import annotations

import sqlite3

import pytest

from circuit_census.analysis.report import write_report
from circuit_census.circuits.estimate import estimate_census
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES
from circuit_census.circuits.space import CircuitSpace
from circuit_census.errors import InputError
from circuit_census.experiments.runner import check_sizes, run_study
from circuit_census.experiments.store import SCHEMA_VERSION, Store
from circuit_census.experiments.sweeps import sweep_from_dict
from circuit_census.experiments.work import (
    census_size,
    evaluate_task,
    is_estimated,
    run_description,
    train_task,
)

WIDE = 18  # 2-18-1: 4^18 - 1 candidates, past the exact limit of 10^10


def _sweep(**experiment):
    doc = {
        "defaults": {"seeds": [0], "task": "xor", "training": {"epochs": 60}},
        "experiments": {"e": {"factor": "width", **experiment}},
    }
    return sweep_from_dict(doc)


def test_a_census_past_the_limit_is_refused_unless_its_experiment_estimates():
    assert census_size(_sweep(levels=[WIDE]).conditions[0]) > DEFAULT_MAX_CANDIDATES
    with pytest.raises(InputError, match="set estimate = N in the experiment"):
        check_sizes(_sweep(levels=[WIDE]))
    check_sizes(_sweep(levels=[WIDE], estimate=50))  # no error
    with pytest.raises(InputError, match="need its whole census"):
        check_sizes(_sweep(levels=[WIDE], estimate=50, explanations=True))
    with pytest.raises(InputError, match="need its whole census"):
        check_sizes(_sweep(levels=[WIDE], estimate=50, discovery=1))
    for bad in (-1, 2.5, "10"):
        with pytest.raises(InputError, match="estimate"):
            _sweep(levels=[4], estimate=bad)


def test_only_censuses_past_the_limit_are_estimated_and_keyed_as_such():
    small, wide = _sweep(levels=[4, WIDE], estimate=50).conditions
    assert not is_estimated(small) and is_estimated(wide)
    # an exact condition's rows keep the key they would have without the key
    plain = _sweep(levels=[4]).conditions[0]
    assert run_description(small, 0) == run_description(plain, 0)
    assert run_description(wide, 0)["estimate"] == 50


def test_an_estimated_row_is_the_estimate_of_the_models_seeded_draws():
    (cond,) = _sweep(levels=[WIDE], estimate=120).conditions
    (run,) = train_task(cond, [0])
    finished = evaluate_task(cond, run, "k", 10)
    row = finished.row
    want = estimate_census(run.network, run.x, run.y, cond.census, 120, seed=run.seed)
    assert row.estimated is True and finished.circuits == []
    assert row.n_candidates == CircuitSpace(run.network.sizes).count() == 4**WIDE - 1
    assert row.valid_fraction == want.valid_fraction
    assert row.n_valid == want.n_valid
    assert (row.valid_fraction_low, row.valid_fraction_high) == (
        want.fraction_low,
        want.fraction_high,
    )
    assert row.valid_fraction_low <= row.valid_fraction <= row.valid_fraction_high
    assert row.n_minimal is None and row.identifiable is None
    assert row.measures["estimate"]["n_sampled"] == 120
    assert row.measures["estimate"]["estimate"] is True


def test_a_study_stores_estimates_marked_and_the_report_keeps_them_apart(tmp_path):
    doc = {
        "defaults": {"seeds": 2, "task": "xor", "training": {"epochs": 60}},
        "experiments": {
            "narrow": {"factor": "width", "levels": [3, 4]},
            "wide": {"factor": "width", "levels": [WIDE], "estimate": 40},
        },
    }
    run_study(sweep_from_dict(doc), tmp_path)
    with Store(tmp_path) as store:
        rows = store.rows()
    wide = [r for r in rows if r["experiment"] == "wide"]
    narrow = [r for r in rows if r["experiment"] == "narrow"]
    assert len(wide) == 2 and len(narrow) == 4
    assert all(r["estimated"] is True and r["n_minimal"] is None for r in wide)
    assert all(r["estimated"] is False and r["valid_fraction_low"] is None for r in narrow)
    assert all(r["n_candidates"] == 4**WIDE - 1 for r in wide)  # exact past 2^32

    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Estimates past the exact limit")[1]
    kept = sum(r["converged"] for r in narrow)
    models = f"6 trained; {kept} converged and in the statistics; 2 estimated, reported apart"
    assert f"{models}; {4 - kept} excluded" in text
    assert all(r["converged"] for r in wide)  # the table summarizes converged models
    assert f"| wide | {WIDE} | {WIDE} relu | 2 | 40 | 68,719,476,735 |" in section
    # the wide experiment has no series (no statistics, figure or verdict)
    assert not (tmp_path / "figures" / "wide.png").exists()
    assert (tmp_path / "figures" / "narrow.png").exists()


def test_a_schema_2_store_gains_the_estimate_columns(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store(path) as store:
        store.put({"key": "k", "experiment": "e", "n_valid": 3.0})
    con = sqlite3.connect(path)
    for name in ("estimated", "valid_fraction_low", "valid_fraction_high"):
        con.execute(f"ALTER TABLE results DROP COLUMN {name}")
    con.execute("UPDATE meta SET value = '2' WHERE name = 'schema'")
    con.commit()
    con.close()
    with Store(path) as store:
        (row,) = store.rows()
        assert store.meta("schema") == str(SCHEMA_VERSION)
    assert row["estimated"] is False and row["n_valid"] == 3.0
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '1' WHERE name = 'schema'")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="schema 1"):
        Store(path)
