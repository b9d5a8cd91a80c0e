"""``circuit-census report DIR``: regenerate a study's report from its results store."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    study_dir: Path = typer.Argument(
        ..., metavar="DIR", help="Study directory holding results.sqlite (written by a study run)."
    ),
    resamples: int = typer.Option(
        9999, "--resamples", min=0, help="Bootstrap resamples for the confidence intervals."
    ),
) -> None:
    """Write report.md, report.html, findings.csv (the verdicts) and figures/ in DIR from
    its results store."""
    from circuit_census.analysis.report import write_report

    md_path, html_path = write_report(study_dir, n_resamples=resamples)
    typer.echo(str(md_path))
    typer.echo(str(html_path))
    typer.echo(str(md_path.with_name("findings.csv")))
