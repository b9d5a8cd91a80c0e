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

from circuit_census.analysis.findings import PUBLISHED, published_for
from circuit_census.analysis.report import build_report, write_report
from circuit_census.analysis.sentences import finding_sentence
from circuit_census.analysis.series import study_stats

# Task, complexity (effective rank per SPEC) for the synthetic task-complexity experiment.
TASKS = [
    ("and", 1.0),
    ("or", 1.80),
    ("xor", 2.0),
    ("majority3", 2.2),
    ("parity3", 2.83),
    ("xor+and", 1.93),
    ("xor+and+or", 2.6),
]


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
    for task, c in TASKS:
        add("task-complexity", "task_complexity", c, task=task, complexity=c, log_mu=4.5 - 1.2 * c)
    for v in (0.0, 0.1, 0.2):
        add("noise", "noise", v, log_mu=2.0)
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return synthetic_rows()


@pytest.fixture(scope="module")
def report(rows):
    return build_report(rows, {"training": {"epochs": 2000, "lr": 0.01}}, n_resamples=300)


def test_every_series_has_a_section_a_sentence_and_a_figure(report):
    names = [s.name for s in report.stats]
    assert names == [
        "l1",
        "orthogonality",
        "capacity (depth 1)",
        "capacity (depth 2)",
        "task-complexity",
        "noise",
    ]
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


def test_sentences_follow_the_numbers(report):
    capacity = next(s for s in report.stats if s.name == "capacity (depth 1)")
    c = capacity.correlation("n_valid", "spearman")
    assert c.statistic > 0.6 and c.p_value < 0.05
    assert (
        "clearly more valid circuits: a strong positive correlation, significant"
        in (report.sentences[capacity.name])
    )
    noise = next(s for s in report.stats if s.name == "noise")
    assert not noise.correlation().significant
    assert "shows no significant relation" in report.sentences["noise"]
    assert "This run agrees" in report.markdown


def test_published_findings_are_set_beside_the_presets_only(report):
    for number, name in enumerate(("l1", "orthogonality", "capacity", "task-complexity"), 1):
        assert published_for(name).number == number
        assert f"finding {number}" in report.markdown
    assert published_for("noise") is None
    assert "no published finding" in report.markdown
    assert PUBLISHED["capacity"].text in report.html


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


def test_summary_table_lists_the_four_findings_even_when_not_run():
    rows = [r for r in synthetic_rows(n_seeds=5) if r["experiment"] == "capacity"]
    rep = build_report(rows, n_resamples=100)
    assert rep.markdown.count("| not run |") == 3


def test_excluded_models_are_counted_in_the_report(rows, report):
    n_excluded = sum(1 for r in rows if not r["converged"])
    assert n_excluded > 0
    assert f"{n_excluded} excluded" in report.markdown


def test_undefined_correlation_is_reported_not_raised():
    rows = [r for r in synthetic_rows(n_seeds=4) if r["experiment"] == "noise"]
    for r in rows:
        r["n_valid"], r["n_minimal"], r["identifiable"] = 7, 1, 1
    rep = build_report(rows, n_resamples=50)
    assert "could not be computed" in finding_sentence(rep.stats[0])


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
            "task-complexity",
            "noise",
        )
    )
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
    assert Path("task-complexity.png").name in report.figures
