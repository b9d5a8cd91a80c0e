"""``circuit-census study run|preset``, ``export`` and ``reproduce``: run (or resume) studies,
print built-in sweeps, export a study's rows, and rerun the built-in experiments."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import typer

from circuit_census.cli.progress import show_bar, study_progress
from circuit_census.errors import DiskFull, InputError

study_app = typer.Typer(
    help="Run studies described by sweep files (TOML), or print a built-in one.",
    no_args_is_help=True,
)

DEFAULT_REPRODUCE_DIR = Path("circuit-census-study")
EXPORT_FORMATS = ("csv", "parquet")
# Scalars lifted from the measures JSON into the export (None where a row lacks them,
# e.g. the overlap figures of a multi-output row, which are per output).
EXPORT_MEASURES = (
    "mean_jaccard",
    "nested_fraction",
    "n_disjoint_pairs",
    "min_edges",
    "min_nodes",
    "pairs_estimated",
)

_WORKERS_HELP = "Local worker processes (default: one per CPU core; 1 = this process only)."

_SCHEDULER_HELP = (
    "Run on a Dask distributed cluster at this scheduler address (tcp://HOST:PORT) "
    "instead of local processes; needs pip install 'circuit-census\\[dask]'."
)


@study_app.command("run")
def study_run(
    sweep: Path = typer.Argument(..., help="Sweep file (TOML); see docs/study.md."),
    out: Path = typer.Option(..., "--out", "-o", help="Study directory (created if needed)."),
    workers: int | None = typer.Option(None, "--workers", "-j", help=_WORKERS_HELP),
    scheduler: str | None = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run a study (or resume it: finished rows are kept and skipped).

    Ctrl-C (exit code 130) or SIGTERM (143) stops it cleanly, keeping
    every row stored so far; a second Ctrl-C stops at once. One run at a
    time per directory: a second is refused (exit code 2).
    """
    from circuit_census.experiments.sweeps import load_sweep

    parsed = load_sweep(sweep)
    summary = _run_study(parsed, out, workers, scheduler, quiet)
    typer.echo(summary.line())


def _run_study(sweep, out: Path, workers: int | None, scheduler: str | None, quiet: bool):
    """Run the study; interrupted, note on the exception how many rows are kept (the
    line ``main`` prints); stopped by dying workers, say so in one line (exit code 1)."""
    from circuit_census.experiments.executors import WorkerLost
    from circuit_census.experiments.runner import run_study

    try:
        with study_progress(show_bar(quiet, sys.stderr)) as progress:
            return run_study(sweep, out, workers=workers, scheduler=scheduler, progress=progress)
    except WorkerLost as exc:
        sys.stderr.write(f"error: {exc}; {_kept_rows(sweep, out)}\n")
        raise SystemExit(1) from None
    except DiskFull as exc:  # the store rolled the row back: every stored row is whole
        sys.stderr.write(f"error: {exc}; {_kept_rows(sweep, out)}\n")
        raise SystemExit(1) from None
    except (Exception, SystemExit):
        raise
    except BaseException as exc:  # an interrupt (SIGINT, SIGTERM)
        exc.kept = _kept_rows(sweep, out)
        raise


def _kept_rows(sweep, out: Path) -> str:
    """``37 of 160 rows are stored in DIR; run the same command again to resume``."""
    from circuit_census.experiments.runner import study_status

    try:
        stored, total = study_status(sweep, out)
    except Exception:  # noqa: BLE001 - the line must still be printed
        return f"the rows stored so far are kept in {out}; run the same command again to resume"
    if stored == total:
        return f"all {total} rows are stored in {out}"
    return f"{stored} of {total} rows are stored in {out}; run the same command again to resume"


@study_app.command("preset")
def study_preset(
    name: str = typer.Argument(
        ...,
        help="l1, orthogonality, capacity, task-complexity, emergence, explanations, "
        "discovery, or all of them.",
    ),
    quick: bool = typer.Option(False, "--quick", help="The quick scale (fewer seeds and levels)."),
) -> None:
    """Print a built-in experiment as a sweep file (TOML) to edit or run."""
    from circuit_census.experiments.presets import PRESET_NAMES, preset_sweep

    names = list(PRESET_NAMES) if name == "all" else name
    typer.echo(preset_sweep(names, "quick" if quick else "default").to_toml(), nl=False)


def export(
    study_dir: Path = typer.Argument(..., help="Study directory (holding results.sqlite)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    experiment: str | None = typer.Option(None, "--experiment", help="Only this experiment."),
) -> None:
    """Write the study's results, one row per (condition, seed), as CSV or Parquet."""
    n = export_rows(study_dir, fmt, output, experiment)
    typer.echo(f"wrote {n} rows to {output}")


def export_columns() -> list[str]:
    from circuit_census.experiments.store import COLUMN_NAMES

    return [c for c in COLUMN_NAMES if c not in ("measures", "settings")] + list(EXPORT_MEASURES)


def export_rows(study_dir: Path, fmt: str, output: Path, experiment: str | None = None) -> int:
    """Export a study's rows; returns how many were written."""
    from circuit_census.experiments.store import STORE_NAME, Store
    from circuit_census.files import atomic_write

    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose csv or parquet")
    study_dir = Path(study_dir)
    path = study_dir / STORE_NAME
    if not path.is_file():
        raise InputError(f"{study_dir}: no results store ({STORE_NAME}); run a study there first")
    if Path(output).is_dir():
        raise InputError(f"--output {output} is a directory; give a file name")
    with Store(path) as store:
        rows = store.rows(experiment)
    if experiment is not None and not rows:
        raise InputError(f"{study_dir}: no rows for experiment {experiment!r}")
    columns = export_columns()
    table = []
    for row in rows:
        measures = row.get("measures") or {}
        flat = {c: row.get(c) for c in columns if c not in EXPORT_MEASURES}
        flat.update({c: measures.get(c) for c in EXPORT_MEASURES})
        table.append(flat)
    if fmt == "csv":
        atomic_write(Path(output), lambda tmp: _write_csv(tmp, columns, table))
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(
                "Parquet export needs pyarrow: pip install 'circuit-census[parquet]'"
            ) from None
        atomic_write(Path(output), lambda tmp: _write_parquet(tmp, columns, table))
    return len(table)


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return v


def _write_csv(path: Path, columns: list[str], table: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in table:
            writer.writerow([_csv_value(row[c]) for c in columns])


def _arrow_type(name: str):
    import pyarrow as pa

    from circuit_census.experiments.store import BOOL_COLUMNS, COLUMNS, EXACT_COLUMNS

    types = dict(COLUMNS)
    if name in EXACT_COLUMNS:  # exact at any size: the integer's decimal text
        return pa.string()
    if name in BOOL_COLUMNS or name == "pairs_estimated":
        return pa.bool_()
    if name in ("mean_jaccard", "nested_fraction"):
        return pa.float64()
    if name in ("n_disjoint_pairs", "min_edges", "min_nodes"):
        return pa.int64()
    kind = types.get(name, "TEXT").split()[0]
    return {"TEXT": pa.string(), "REAL": pa.float64(), "INTEGER": pa.int64()}[kind]


def _write_parquet(path: Path, columns: list[str], table: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from circuit_census.experiments.store import EXACT_COLUMNS

    schema = pa.schema([(c, _arrow_type(c)) for c in columns])
    exact = [c for c in columns if c in EXACT_COLUMNS]
    table = [{**r, **{c: None if r[c] is None else str(r[c]) for c in exact}} for r in table]
    data = pa.Table.from_pylist(table, schema=schema)
    pq.write_table(data, str(path))


def reproduce(
    quick: bool = typer.Option(
        False, "--quick", help="Fewer seeds and levels, same pipeline (under 2 minutes)."
    ),
    out: Path = typer.Option(DEFAULT_REPRODUCE_DIR, "--out", "-o", help="Study directory."),
    workers: int | None = typer.Option(None, "--workers", "-j", help=_WORKERS_HELP),
    scheduler: str | None = typer.Option(None, "--scheduler", help=_SCHEDULER_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run the built-in experiments on fresh seeds and write the report.

    L1 and orthogonality at widths 4 and 8, capacity at depths 1 and 2, task
    complexity, and emergence during training (see docs/study.md); each tests the
    finding it declares. report.md, report.html and findings.csv (the verdicts) go
    into the study directory.

    Run it again to resume: finished rows are kept and skipped. Ctrl-C
    (exit code 130) or SIGTERM (143) stops it cleanly, keeping every row
    stored so far; a second Ctrl-C stops at once. One run at a time per
    directory: a second is refused (exit code 2).
    """
    from circuit_census.experiments.presets import reproduction_sweep

    started = time.perf_counter()
    sweep = reproduction_sweep(quick=quick)
    summary = _run_study(sweep, out, workers, scheduler, quiet)
    typer.echo(summary.line())
    try:
        from circuit_census.analysis.report import write_report
    except ImportError:  # pragma: no cover - the report module ships with the package
        typer.echo("the report module is not available; results are in the store", err=True)
        return
    try:
        md, html = write_report(Path(out))
    except (Exception, SystemExit):
        raise
    except BaseException as exc:  # an interrupt while writing the report
        exc.kept = (
            f"all {summary.total} rows are stored in {out} but the report is not finished; "
            "run the same command again to write it"
        )
        raise
    elapsed = time.perf_counter() - started
    verdicts = md.with_name("findings.csv")
    typer.echo(f"report: {md}, {html} and verdicts in {verdicts} ({elapsed:.0f} s in all)")
