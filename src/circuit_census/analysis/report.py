"""The study report: built from result rows (``build_report``) and written to a study
directory as ``report.md``, a self-contained ``report.html``, ``findings.csv`` and
``figures/`` (``write_report``).

The summary is the verdict table: every claim of every finding the study declares it
tests, judged from the 95% interval of rho (``analysis.verdicts``); then whether each
finding's verdict is the same everywhere it was tested, what excluding non-converged
models does, and one section per series with what its numbers show, its figure and tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from circuit_census.analysis.discovery import faithfulness_figure, has_discovery
from circuit_census.analysis.document import (
    Block,
    FigureBlock,
    Heading,
    Para,
    render_html,
    render_markdown,
    slug,
)
from circuit_census.analysis.estimates import estimated_conditions
from circuit_census.analysis.explanations import (
    condition_levels,
    has_explanations,
    levels_figure,
)
from circuit_census.analysis.findings import FINDINGS
from circuit_census.analysis.rows import is_estimated
from circuit_census.analysis.sentences import (
    finding_sentence,
    verdict_sentence,
)
from circuit_census.analysis.series import SeriesStats, series_stats, split_series
from circuit_census.analysis.setup_table import setup_table
from circuit_census.analysis.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
)
from circuit_census.analysis.study_figures import figure_png, series_figure
from circuit_census.analysis.study_sections import (
    MELOUX,
    SAIRC,
    discovery_section,
    estimates_section,
    explanations_section,
    figure_caption,
    methods_section,
    series_section,
    subtitle,
)
from circuit_census.analysis.verdict_sections import (
    robustness_section,
    summary_section,
    survivorship_section,
)
from circuit_census.analysis.verdicts import (
    POOLED,
    VerdictRow,
    findings_csv,
    study_verdicts,
)

Rows = Sequence[Mapping[str, object]]

INTRODUCTION = (
    "When is a small network's behaviour explained by a unique circuit? Following "
    f"{MELOUX}, and the follow-up study {SAIRC}, this report tests the findings the "
    "study declares on this run's seeds (the Findings section of docs/definitions.md "
    "states them). Counts are exact censuses of every admissible circuit."
)


@dataclass
class Report:
    """A rendered report: both documents, the figures by file name, the statistics."""

    title: str
    markdown: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)
    stats: list[SeriesStats] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)  # series name -> what it shows
    verdicts: list[VerdictRow] = field(default_factory=list)

    @property
    def findings_csv(self) -> str:
        return findings_csv(self.verdicts)


def declared_findings(setup: Mapping[str, object]) -> dict[str, int]:
    """``experiment -> finding`` as the study's sweep declares them (``finding = N``)."""
    found = setup.get("findings")
    if not isinstance(found, Mapping):
        return {}
    return {str(k): int(v) for k, v in found.items() if int(v) in FINDINGS}  # type: ignore[call-overload]


def build_report(
    rows: Rows,
    setup: Mapping[str, object] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Report:
    """Statistics, verdicts, figures, ``report.md`` and ``report.html`` from result rows.
    Verdicts only for experiments that ``setup["findings"]`` declares."""
    setup = dict(setup or {})
    rows = list(rows)
    exact = [r for r in rows if not is_estimated(r)]  # estimates are reported apart
    series = split_series(exact)
    stats = [series_stats(s, n_resamples=n_resamples, seed=seed) for s in series]
    findings = declared_findings(setup)
    verdicts = study_verdicts(series, stats, findings, n_resamples=n_resamples, seed=seed)
    name = setup.get("title") or setup.get("name")
    title = "circuit-census study report" + (f": {name}" if name else "")
    sentences = {s.name: finding_sentence(s) for s in stats}

    blocks: list[Block] = [Heading(1, title), Para(INTRODUCTION)]
    blocks += summary_section(verdicts, stats, findings)
    blocks += robustness_section(verdicts)
    blocks += survivorship_section(verdicts, stats)
    blocks += [Heading(2, "Setup", "setup"), setup_table(rows, setup, stats)]
    figures: dict[str, bytes] = {}
    for s, group in zip(stats, series, strict=True):
        figure = FigureBlock(f"{slug(s.name)}.png", figure_caption(s))
        figures[figure.name] = figure_png(
            series_figure(s, group.rows, subtitle(s, setup), seed=seed)
        )
        mine = [v for v in verdicts if v.experiment == s.experiment and v.stratum == s.stratum]
        blocks += series_section(s, group.rows, sentences[s.name], mine, figure)
    if has_explanations(exact):
        conditions = condition_levels(exact)
        blocks += explanations_section(conditions)
        figures["explanations-levels.png"] = figure_png(levels_figure(conditions, exact))
    if has_discovery(exact):
        blocks += discovery_section(exact)
        figures["discovery-faithfulness.png"] = figure_png(faithfulness_figure(exact))
    estimated = estimated_conditions(rows)
    if estimated:
        blocks += estimates_section(estimated)
    pooled = [v for v in verdicts if v.stratum == POOLED]
    if pooled:
        blocks += [Heading(2, "Pooled over strata", "pooled")]
        blocks += [Para(verdict_sentence(v), css="verdict") for v in pooled]
    blocks += methods_section(rows, n_resamples, seed)

    markdown = render_markdown(blocks)
    page = render_html(blocks, figures, title)
    return Report(title, markdown, page, figures, stats, sentences, verdicts)


# ---------------------------------------------------------------------- files


def _store_setup(store: object) -> dict[str, object]:
    """Study information the store records in its ``meta`` table (``setup``/``study``)."""
    meta = getattr(store, "meta", None)
    out: dict[str, object] = {}
    if not callable(meta):
        return out
    for name in ("study", "setup"):
        try:
            value = meta(name)
        except Exception:  # noqa: BLE001 - optional extra information only
            continue
        if not value:
            continue
        try:
            loaded = json.loads(value)
        except (TypeError, ValueError):
            loaded = value
        if isinstance(loaded, Mapping):
            out.update(loaded)
        else:
            out[name] = loaded
    return out


def read_rows(study_dir: Path) -> tuple[list[dict], dict[str, object]]:
    """The rows of the study's results store and the setup it records."""
    from circuit_census.errors import InputError

    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise InputError(f"{study_dir}: no such study directory")
    path = study_dir / "results.sqlite"
    if not path.is_file():
        raise InputError(f"{study_dir}: no results store (results.sqlite); run a study there first")
    from circuit_census.experiments.store import Store

    store = Store(path)
    try:
        rows = [dict(r) for r in store.rows(experiment=None)]
        setup = _store_setup(store)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    if not rows:
        raise InputError(f"{path}: the results store has no rows yet")
    return rows, setup


def write_report(
    study_dir: Path,
    setup: Mapping[str, object] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html``, ``findings.csv`` and ``figures/*.png`` into the
    study directory."""
    from circuit_census.files import atomic_write

    study_dir = Path(study_dir)
    rows, stored = read_rows(study_dir)
    merged = {**stored, **(setup or {})}
    report = build_report(rows, merged, n_resamples=n_resamples)
    atomic_write(
        study_dir / "findings.csv",
        lambda tmp: tmp.write_text(report.findings_csv, encoding="utf-8"),
    )
    figure_dir = study_dir / "figures"
    for name, png in report.figures.items():
        atomic_write(figure_dir / name, lambda tmp, png=png: tmp.write_bytes(png))
    for stale in figure_dir.glob("*.png"):  # figures of series this report no longer has
        if stale.name not in report.figures:
            stale.unlink()
    md_path, html_path = study_dir / "report.md", study_dir / "report.html"
    atomic_write(md_path, lambda tmp: tmp.write_text(report.markdown, encoding="utf-8"))
    atomic_write(html_path, lambda tmp: tmp.write_text(report.html, encoding="utf-8"))
    return md_path, html_path
