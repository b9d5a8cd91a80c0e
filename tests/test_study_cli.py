"""``circuit-census study run|preset``, ``export`` and ``reproduce`` from the command line."""

from __future__ import annotations

import csv
import importlib.util
import sys

import pytest

from circuit_census.cli import main
from circuit_census.experiments.presets import reproduction_sweep
from circuit_census.experiments.store import Store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REQUIRED_EXPORT = [
    "experiment",
    "task",
    "hidden",
    "l1",
    "l2",
    "orthogonality",
    "dropout",
    "seed",
    "converged",
    "n_candidates",
    "n_valid",
    "n_minimal",
    "identifiable",
]

SWEEP = """
[defaults]
task = "xor"
hidden = 2
seeds = 2
[defaults.training]
epochs = 200
[experiments.l2]
factor = "l2"
levels = [0.0, 0.01]
[experiments.act]
factor = "activation"
levels = ["relu", "tanh"]
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study run through ``circuit-census study run``."""
    root = tmp_path_factory.mktemp("study")
    sweep = root / "sweep.toml"
    sweep.write_text(SWEEP)
    out = root / "out"
    try:
        main(["study", "run", str(sweep), "--out", str(out), "--workers", "1", "--quiet"])
    except SystemExit as exc:  # pragma: no cover - reported by the assertion below
        assert exc.code == 0
    return out


def test_study_run_writes_the_store_and_a_copy_of_the_sweep(study):
    with Store(study) as store:
        rows = store.rows()
    assert len(rows) == 8
    assert {r["experiment"] for r in rows} == {"l2", "act"}
    assert {r["activation"] for r in rows if r["experiment"] == "act"} == {"relu", "tanh"}
    assert all(r["factor_value"] is None for r in rows if r["experiment"] == "act")
    assert tomllib.loads((study / "sweep.toml").read_text())["experiments"]["l2"]["levels"] == [
        0.0,
        0.01,
    ]


def test_study_run_again_skips_everything(study, cli):
    sweep = study.parent / "sweep.toml"
    code, out, _ = cli(["study", "run", str(sweep), "--out", str(study), "-j", "1", "-q"])
    assert code == 0 and "0 rows computed, 8 already stored" in out


def test_export_csv_has_the_columns_and_one_row_per_model(study, tmp_path, cli):
    target = tmp_path / "rows.csv"
    code, out, err = cli(["export", str(study), "--format", "csv", "--output", str(target)])
    assert code == 0, err
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert set(REQUIRED_EXPORT) <= set(rows[0])
    assert {r["converged"] for r in rows} <= {"true", "false"}
    assert all(float(r["n_valid"]) <= int(r["n_candidates"]) == 15 for r in rows)
    assert all(float(r["valid_fraction"]) == pytest.approx(float(r["n_valid"]) / 15) for r in rows)
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing left behind


def test_export_parquet_has_the_columns_and_one_row_per_model(study, tmp_path, cli):
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "rows.parquet"
    code, _, err = cli(["export", str(study), "-f", "parquet", "-o", str(target)])
    assert code == 0, err
    data = pq.read_table(target)
    assert data.num_rows == 8
    assert set(REQUIRED_EXPORT) <= set(data.column_names)
    assert str(data.schema.field("converged").type) == "bool"
    assert str(data.schema.field("n_candidates").type) == "string"  # exact at any size
    assert [int(v) for v in data.column("n_candidates").to_pylist()] == [15] * 8
    assert str(data.schema.field("n_valid").type) == "double"  # averaged over outputs
    assert str(data.schema.field("valid_fraction").type) == "double"


@pytest.mark.parametrize(
    "argv,words",
    [
        (
            ["export", "{missing}", "--format", "csv", "--output", "{tmp}/x.csv"],
            ["no results store"],
        ),
        (
            ["export", "{study}", "--format", "xlsx", "--output", "{tmp}/x.xlsx"],
            ["xlsx", "csv or parquet"],
        ),
        (["study", "preset", "dropout"], ["unknown preset", "dropout"]),
        (["study", "run", "{missing}/sweep.toml", "--out", "{tmp}/o"], ["does not exist"]),
        (["study", "run", "{study}/sweep.toml", "--out", "{tmp}/o", "--workers", "0"], ["workers"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, study, tmp_path, cli):
    fill = {"missing": str(tmp_path / "nowhere"), "tmp": str(tmp_path), "study": str(study)}
    code, _, err = cli([a.format(**fill) for a in argv])
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    "text,field",
    [
        ("[experiments.a]\nfactor='l1'\nlevels=[0.0]\ncolour='red'\n", "experiments.a.colour"),
        (
            "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.training]\nepochs='many'\n",
            "experiments.a.training.epochs",
        ),
        ("[experiments.a]\nfactor='l1'\nlevels=[]\n", "experiments.a.levels"),
        ("[experiments.a]\nfactor='l1'\nlevels=[-1.0]\n", "experiments.a.levels[0]"),
    ],
)
def test_bad_sweep_files_exit_2_naming_the_field(text, field, tmp_path, cli):
    sweep = tmp_path / "bad.toml"
    sweep.write_text(text)
    code, out, err = cli(["study", "run", str(sweep), "--out", str(tmp_path / "o")])
    assert code == 2 and field in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()  # nothing started


def test_study_preset_prints_a_sweep_file_that_runs_as_is(cli):
    code, out, _ = cli(["study", "preset", "capacity", "--quick"])
    assert code == 0
    doc = tomllib.loads(out)
    assert doc["experiments"]["capacity"]["factor"] == "width"
    code, out, _ = cli(["study", "preset", "all"])
    assert code == 0
    from circuit_census.experiments.presets import PRESET_NAMES, preset_sweep

    assert (
        set(tomllib.loads(out)["experiments"])
        == {e.name for e in preset_sweep(list(PRESET_NAMES)).experiments}
        > {e.name for e in reproduction_sweep().experiments}
    )


@pytest.mark.slow  # about a minute on two cores; CI runs it (nothing deselects "slow")
def test_reproduce_quick_end_to_end(tmp_path, cli):
    out = tmp_path / "study"
    code, stdout, err = cli(["reproduce", "--quick", "--out", str(out), "--workers", "2", "-q"])
    assert code == 0, err
    expected = reproduction_sweep(quick=True)
    with Store(out) as store:
        rows = store.rows()
        assert store.integrity_check() == "ok"
    assert len(rows) == expected.n_runs()
    assert {r["experiment"] for r in rows} == {e.name for e in expected.experiments}
    assert sum(r["converged"] for r in rows) > len(rows) // 2
    widths = {
        r["width"]: r["n_candidates"]
        for r in rows
        if r["experiment"] == "capacity" and r["depth"] == 1
    }
    assert widths == {w: 4**w - 1 for w in (2, 4, 6, 8)}  # SPEC: 4^k - 1 for 2-k-1
    target = tmp_path / "rows.csv"
    assert cli(["export", str(out), "--format", "csv", "--output", str(target)])[0] == 0
    with open(target, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    if importlib.util.find_spec("circuit_census.analysis.report") is not None:
        assert (out / "report.md").stat().st_size > 0
        assert (out / "report.html").stat().st_size > 0
        assert "report" in stdout


def test_study_bar_counts_stored_rows_and_names_the_last_experiment(capsys):
    from circuit_census.cli.progress import study_progress

    with study_progress(False) as progress:
        assert progress is None
    with study_progress(True) as progress:
        progress(1, 4, "study")  # one row was already stored
        progress(2, 4, "l2")
        progress(4, 4, "a-very-long-experiment-name")
    err = capsys.readouterr().err
    assert "4/4" in err and "models" in err and "eta" in err
    assert "a-very-long-experiment" in err and "a-very-long-experiment-" not in err
    with study_progress(True) as progress:
        progress(0, 0, "study")  # an empty study shows no bar
    assert capsys.readouterr().err == ""


def test_a_study_stopped_by_dying_workers_says_what_is_kept_and_exits_1(tmp_path, cli, monkeypatch):
    import circuit_census.experiments.runner as runner
    from circuit_census.experiments.executors import WorkerLost

    def lose(self, batches):
        raise WorkerLost("workers died while running the census of l2 0.0, seed 1 (X)")

    monkeypatch.setattr(runner._Study, "run", lose)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"
    code, _, err = cli(["study", "run", str(sweep), "--out", str(out), "-j", "1", "-q"])
    assert code == 1
    assert err.splitlines() == [
        "error: workers died while running the census of l2 0.0, seed 1 (X); "
        f"0 of 8 rows are stored in {out}; run the same command again to resume"
    ]


def test_study_and_reproduce_help_say_how_to_resume_and_stop(cli):
    for argv in (["study", "run", "--help"], ["reproduce", "--help"]):
        code, out, _ = cli(argv)
        text = " ".join(out.split())
        assert code == 0
        assert "resume" in text and "130" in text and "143" in text, text
