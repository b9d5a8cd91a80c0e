"""The study report: what report.md and report.html contain, and the ``report`` command."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuit_census.analysis.findings import FINDINGS
from circuit_census.analysis.report import build_report, write_report
from circuit_census.analysis.sentences import DESCRIBED, finding_sentence, relation_words
from circuit_census.analysis.series import study_stats
from circuit_census.analysis.statistics import MEASURE_LABELS
from circuit_census.analysis.verdicts import CSV_FIRST

# Task, complexity, inputs, outputs for the synthetic task-complexity experiment; xor and
# parity3 as the effective rank gives them (equal up to the last bit).
TASKS = [
    ("and", 1.0, 2, 1),
    ("or", 1.80, 2, 1),
    ("xor", 2.0, 2, 1),
    ("00000001", 1.0, 3, 1),
    ("majority3", 1.83, 3, 1),
    ("parity3", 1.9999999999999998, 3, 1),
]
DECLARED = {"l1": 1, "orthogonality": 2, "capacity": 3, "task-complexity": 4}


def synthetic_rows(n_seeds: int = 12, seed: int = 0) -> list[dict]:
    """A realistic study: the four presets (capacity with a depth-2 variant) and a custom one."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []

    def add(
        experiment,
        factor,
        value,
        *,
        hidden="4",
        task="xor",
        complexity=2.0,
        log_mu=3.0,
        p_converge=0.95,
        **extra,
    ):
        for s in range(n_seeds):
            converged = bool(rng.random() < p_converge)
            n_valid = max(1, int(round(math.exp(log_mu + rng.normal(0, 0.6)))))
            n_minimal = max(1, int(round(n_valid**0.55 * rng.uniform(0.4, 1.0))))
            row = {
                "key": f"{experiment}-{value}-{hidden}-{task}-{s}",
                "experiment": experiment,
                "factor": factor,
                "factor_value": float(value),
                "task": task,
                "task_complexity": complexity,
                "hidden": hidden,
                "width": int(hidden.split(",")[0]),
                "depth": len(hidden.split(",")),
                "activation": "relu",
                "l1": 0.0,
                "l2": 0.0,
                "orthogonality": 0.0,
                "dropout": 0.0,
                "seed": s,
                "converged": int(converged),
                "final_loss": 0.01 if converged else 0.3,
                "val_accuracy": 1.0 if converged else 0.75,
                "epochs": 2000,
                "n_candidates": 4 ** int(hidden.split(",")[0]) - 1,
                "n_valid": n_valid if converged else None,
                "n_minimal": n_minimal if converged else None,
                "identifiable": int(n_minimal == 1) if converged else None,
                "measures": json.dumps({"mean_jaccard": 0.4}),
                "train_seconds": 0.2,
                "census_seconds": 0.01,
            }
            row.update(extra)
            rows.append(row)

    for v in (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
        add("l1", "l1", v, log_mu=2.4 - 15 * v, p_converge=0.95 - 20 * v, l1=v)
    for v in (0.0, 0.01, 0.03, 0.1, 0.3, 1.0):
        add("orthogonality", "orthogonality", v, log_mu=2.4 + 0.2 * v, orthogonality=v)
    for w in range(2, 13):
        add("capacity", "width", w, hidden=str(w), log_mu=0.45 * w, p_converge=0.7 + 0.025 * w)
    for w in range(2, 6):
        add("capacity", "width", w, hidden=f"{w},{w}", log_mu=0.8 * w)
    for task, c, n_in, n_out in TASKS:
        add(
            "task-complexity",
            "task_complexity",
            c,
            task=task,
            complexity=c,
            log_mu=4.5 - 1.2 * c,
            n_inputs=n_in,
            n_outputs=n_out,
        )
    for v in (0.0, 0.1, 0.2):
        add("noise", "noise", v, log_mu=2.0)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_rows()


@pytest.fixture(scope="module")
def report(rows):
    setup = {
        "training": {"epochs": 2000, "lr": 0.01, "batch_size": None},
        "census": {"ablation": "zero", "compat": None, "criterion": "mse", "threshold": 0.05},
        "findings": DECLARED,
    }
    return build_report(rows, setup, n_resamples=300)


SERIES = [
    "l1",
    "orthogonality",
    "capacity (depth 1)",
    "capacity (depth 2)",
    "task-complexity (2 inputs, 1 output)",
    "task-complexity (3 inputs, 1 output)",
    "noise",
]


def test_every_series_has_a_section_a_sentence_and_a_figure(report):
    assert [s.name for s in report.stats] == SERIES
    for s in report.stats:
        sentence = report.sentences[s.name]
        assert sentence.startswith(f"In {s.name}, ")
        assert f"## {s.name}: " in report.markdown
        assert f">{s.name}: " in report.html
        assert sentence in report.markdown
        assert html.escape(sentence, quote=False) in report.html
    assert len(report.figures) == len(report.stats)
    for png in report.figures.values():
        assert png.startswith(b"\x89PNG")


def test_sentences_never_contradict_their_numbers(report):
    """Every measure's words are the words of its own rho."""
    for s in report.stats:
        for measure in DESCRIBED:
            c = s.correlation(measure)
            if c.defined:
                label = MEASURE_LABELS[measure]
                assert (
                    f"{label} show{'s' if 'fraction' in label else ''} "
                    + relation_words(c.statistic)
                    in report.sentences[s.name]
                )
    capacity = next(s for s in report.stats if s.name == "capacity (depth 1)")
    assert capacity.correlation("n_valid").statistic >= 0.5
    assert "valid circuits show a strong positive relation" in report.sentences[capacity.name]


def test_verdicts_only_for_declared_experiments(report):
    assert {v.experiment for v in report.verdicts} == set(DECLARED)
    for v in report.verdicts:
        claims = [c.measure for c in FINDINGS[v.finding].claims]
        assert v.measure in claims and DECLARED[v.experiment] == v.finding
    assert "Experiments without a declared finding (statistics only, no verdict): noise" in (
        report.markdown
    )
    for number in DECLARED.values():
        assert FINDINGS[number].statement in report.html


def test_an_experiment_named_l1_without_a_finding_gets_no_verdict(rows):
    l1 = [r for r in rows if r["experiment"] == "l1"]
    rep = build_report(l1, {}, n_resamples=50)
    assert rep.verdicts == []
    assert "No experiment of this study declares a finding" in rep.markdown
    assert rep.findings_csv.splitlines() == [
        ",".join(CSV_FIRST) + rep.findings_csv.split("\n")[0][len(",".join(CSV_FIRST)) :]
    ]
    declared = build_report(l1, {"findings": {"l1": 1}}, n_resamples=50)
    assert [v.measure for v in declared.verdicts] == ["n_valid", "n_minimal"]


def test_task_complexity_is_judged_per_stratum_and_pooled(report):
    strata = [v.stratum for v in report.verdicts if v.finding == 4]
    assert strata == [
        "2 inputs, 1 output",
        "2 inputs, 1 output",
        "3 inputs, 1 output",
        "3 inputs, 1 output",
        "pooled over strata",
        "pooled over strata",
    ]
    three = next(s for s in report.stats if s.name == "task-complexity (3 inputs, 1 output)")
    assert [lv.label for lv in three.levels] == ["1", "1.83", "2"]  # parity3 is one level


def test_findings_csv_has_the_fixed_columns_first_and_one_row_per_verdict(report):
    lines = report.findings_csv.splitlines()
    assert lines[0].split(",")[: len(CSV_FIRST)] == list(CSV_FIRST)
    assert len(lines) == 1 + len(report.verdicts)
    assert all(v.verdict in ("agrees", "disagrees", "inconclusive") for v in report.verdicts)


def test_whole_numbers_are_written_exactly_at_any_size():
    from circuit_census.analysis.formatting import fmt_num

    assert fmt_num(2**64 - 1) == "18,446,744,073,709,551,615"
    assert (fmt_num(16.0), fmt_num(12345.6), fmt_num(0.0447)) == ("16", "12,300", "0.0447")


def test_no_none_and_one_number_format(report):
    text = report.markdown
    assert "None" not in text and "nan" not in text.lower() and "= <" not in text
    for number in re.findall(r"\d[\d,]*\.\d+", text):  # 3 significant figures at most
        assert len(number.replace(",", "").replace(".", "").lstrip("0")) <= 3, number
    years = re.sub(r"\b(20(07|25|26)|00000001)\b", "", re.sub(r"figures/\S+", "", text))
    assert not re.search(r"(?<![\d.,])\d{4,}(?![\d,])", years)  # thousands separated


def test_task_complexity_definition_is_stated(report):
    assert "effective rank" in report.markdown
    assert "2^floor(n/2) x 2^ceil(n/2)" in report.markdown


def test_html_is_self_contained(report):
    page = report.html
    assert 'src="http' not in page and 'href="http' not in page
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == len(report.figures)
    assert all(src.startswith("data:image/png;base64,") for src in images)


def test_markdown_links_the_figure_files(report):
    for name in report.figures:
        assert f"](figures/{name})" in report.markdown


def test_findings_not_tested_are_named():
    rows = [r for r in synthetic_rows(n_seeds=5) if r["experiment"] == "capacity"]
    rep = build_report(rows, {"findings": {"capacity": 3}}, n_resamples=100)
    assert "Findings not tested by this study: 1. L1 sparsity; 2. Orthogonality; 4. Task " in (
        rep.markdown
    )


def test_excluded_models_are_counted_in_the_report(rows, report):
    n_excluded = sum(1 for r in rows if not r["converged"])
    assert n_excluded > 0
    assert f"{n_excluded} excluded" in report.markdown


def test_undefined_correlation_is_reported_not_raised():
    rows = [r for r in synthetic_rows(n_seeds=4) if r["experiment"] == "noise"]
    for r in rows:
        r["n_valid"], r["n_minimal"], r["identifiable"] = 7, 1, 1
    rep = build_report(rows, n_resamples=50)
    assert "valid circuits: not computed (valid circuits is constant" in finding_sentence(
        rep.stats[0]
    )


def test_write_report_needs_a_store(tmp_path):
    from circuit_census.errors import InputError

    with pytest.raises(InputError, match="no results store"):
        write_report(tmp_path)


def test_report_command_on_an_empty_directory_exits_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from circuit_census.cli import main; main()",
            "report",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no results store" in lines[0]


def _store_class():
    try:
        from circuit_census.experiments.store import Store
    except ImportError:
        pytest.skip("the results store is not built yet")
    return Store


def test_write_report_from_a_store(tmp_path):
    """write_report reads the store's rows and writes both documents and the figures."""
    Store = _store_class()  # noqa: N806
    rows = synthetic_rows(n_seeds=4)
    with Store(tmp_path / "results.sqlite") as store:
        for row in rows:
            store.put(row)
        store.set_meta("setup", json.dumps({"title": "synthetic", "executor": "inline"}))
    md, page = write_report(tmp_path, n_resamples=50)
    assert md == tmp_path / "report.md" and page == tmp_path / "report.html"
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# circuit-census study report: synthetic")
    assert "| Executor | inline |" in text
    assert f"{len(rows)} trained" in text
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == sorted(
        f"{name}.png"
        for name in (
            "l1",
            "orthogonality",
            "capacity-depth-1",
            "capacity-depth-2",
            "task-complexity-2-inputs-1-output",
            "task-complexity-3-inputs-1-output",
            "noise",
        )
    )
    assert (tmp_path / "findings.csv").is_file()
    for name in figures:
        assert f"](figures/{name})" in text
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_stats_of_the_report_equal_study_stats(rows, report):
    again = study_stats(rows, n_resamples=300)
    assert [s.correlation().statistic for s in again] == [
        s.correlation().statistic for s in report.stats
    ]


def test_report_of_an_empty_store_is_an_input_error(tmp_path, monkeypatch):
    Store = _store_class()  # noqa: N806
    from circuit_census.errors import InputError

    try:
        store = Store(tmp_path / "results.sqlite")
    except TypeError:
        pytest.skip("unexpected Store constructor")
    close = getattr(store, "close", None)
    if callable(close):
        close()
    with pytest.raises(InputError, match="no rows"):
        write_report(tmp_path)


def test_figure_files_are_named_after_the_series(report):
    assert "capacity-depth-2.png" in report.figures
    assert Path("task-complexity-3-inputs-1-output.png").name in report.figures
