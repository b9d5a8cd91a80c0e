"""The study report: built from result rows (``build_report``) and written to a study
directory as ``report.md``, a self-contained ``report.html`` and ``figures/`` (``write_report``).

Each series gets a sentence saying what was found, set beside the study's published finding
(SPEC, "The question") with a verdict on whether this run agrees; then its figure and tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from circuit_census.analysis.document import (
    Block,
    Bullets,
    FigureBlock,
    Heading,
    Para,
    Table,
    render_html,
    render_markdown,
    slug,
)
from circuit_census.analysis.findings import (
    PRESETS,
    PUBLISHED,
    finding_rank,
    headline,
    published_for,
)
from circuit_census.analysis.formatting import (
    fmt_ci,
    fmt_fraction_ci,
    fmt_iqr,
    fmt_num,
    fmt_p,
    fmt_r,
)
from circuit_census.analysis.rows import as_float
from circuit_census.analysis.sentences import (
    finding_sentence,
    published_sentence,
    regression_sentence,
)
from circuit_census.analysis.series import SeriesStats, split_series, study_stats
from circuit_census.analysis.setup_table import setup_table, value_text
from circuit_census.analysis.statistics import (
    ALPHA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURE_LABELS,
    strength,
)
from circuit_census.analysis.study_figures import factor_label, figure_png, series_figure

Rows = Sequence[Mapping[str, object]]

TASK_COMPLEXITY_DEFINITION = (
    "Task complexity is the effective rank (Roy & Vetterli 2007) of the task's truth "
    "table, as SPEC defines it: for m > 1 outputs, of the 2^n x m target matrix; for one "
    "output, of the truth table laid out as a 2^floor(n/2) x 2^ceil(n/2) matrix (XOR 2, "
    "AND 1, OR about 1.80)."
)

INTRODUCTION = (
    "When is a small network's behaviour explained by a unique circuit? This report "
    "tests the study's four published findings (SPEC, \"The question\") on this run's "
    "seeds. Counts are exact censuses of every admissible circuit; non-converged models "
    "are excluded from every statistic and counted below."
)


@dataclass
class Report:
    """A rendered report: both documents, the figures by file name, the statistics."""

    title: str
    markdown: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)
    stats: list[SeriesStats] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)  # series name -> finding


def build_report(
    rows: Rows,
    setup: Mapping[str, object] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Report:
    """Statistics, figures, ``report.md`` and ``report.html`` from result rows."""
    setup = dict(setup or {})
    rows = list(rows)
    groups = [group for *_, group in split_series(rows)]
    stats = study_stats(rows, n_resamples=n_resamples, seed=seed)
    # The four presets first, in the order of SPEC's findings; then custom experiments.
    order = sorted(range(len(stats)), key=lambda i: (finding_rank(stats[i].experiment), i))
    stats = [stats[i] for i in order]
    groups = [groups[i] for i in order]
    name = setup.get("title") or setup.get("name")
    title = "circuit-census study report" + (f": {name}" if name else "")
    sentences = {s.name: finding_sentence(s) for s in stats}

    blocks: list[Block] = [Heading(1, title), Para(INTRODUCTION)]
    blocks += _summary_section(stats, n_resamples, seed)
    blocks += [Heading(2, "Setup", "setup"), setup_table(rows, setup, stats)]
    figures: dict[str, bytes] = {}
    for s, group in zip(stats, groups, strict=True):
        figure = FigureBlock(f"{slug(s.name)}.png", _figure_caption(s))
        figures[figure.name] = figure_png(series_figure(s, group, _subtitle(s, setup), seed=seed))
        blocks += _series_section(s, sentences[s.name], figure)
    blocks += _definitions_section(rows, n_resamples, seed)

    markdown = render_markdown(blocks)
    page = render_html(blocks, figures, title)
    return Report(title, markdown, page, figures, stats, sentences)


# ------------------------------------------------------------------------ summary


def _summary_section(stats: Sequence[SeriesStats], n_resamples: int, seed: int) -> list[Block]:
    """One row per series with its headline correlation and verdict; presets not run too."""
    run = {f.number for s in stats if (f := published_for(s.experiment)) is not None}
    # Stats are in finding order; a preset that was not run gets its row in its place.
    entries: list[tuple[int, int, tuple[str, ...]]] = [
        (finding_rank(s.experiment), i, _summary_row(s)) for i, s in enumerate(stats)
    ]
    entries += [
        (PUBLISHED[k].number, -1, _not_run_row(k))
        for k in PRESETS
        if PUBLISHED[k].number not in run
    ]
    rows = tuple(row for *_, row in sorted(entries, key=lambda e: (e[0], e[1])))
    header = (
        "experiment",
        "factor",
        "converged / models",
        "Spearman ρ (valid circuits)",
        "95% CI",
        "p",
        "strength",
        "published finding",
        "this run",
    )
    numeric = (False, False, True, True, True, True, False, False, False)
    caption = "Headline: Spearman correlation of the number of valid circuits with the swept factor"
    note = (
        f"Strength: |ρ| < 0.3 weak, 0.3–0.6 moderate, ≥ 0.6 strong; significant when "
        f"p < {ALPHA}. 95% CI: paired bootstrap percentile interval "
        f"({n_resamples} resamples, seed {seed})."
    )
    return [
        Heading(2, "Summary", "summary"),
        Table(header, rows, numeric, caption=caption),
        Para(note, css="note"),
    ]


def _summary_row(s: SeriesStats) -> tuple[str, ...]:
    c = headline(s)
    f = published_for(s.experiment)
    return (
        s.name,
        factor_label(s.factor),
        f"{s.n_converged}/{s.n_models}",
        fmt_r(c.statistic),
        fmt_ci(c.ci_low, c.ci_high),
        fmt_p(c.p_value),
        strength(c.statistic) if c.defined else "–",
        f"{f.number}. {f.text}" if f else "(custom experiment: no published finding)",
        f.judge(c).word if f else "–",
    )


def _not_run_row(preset: str) -> tuple[str, ...]:
    f = PUBLISHED[preset]
    return (preset, "–", "–", "–", "–", "–", "–", f"{f.number}. {f.text}", "not run")


# ------------------------------------------------------------------------- series


def _series_section(s: SeriesStats, found: str, figure: FigureBlock) -> list[Block]:
    """What was found, the published finding, the figure, the tables and the regression."""
    blocks: list[Block] = [
        Heading(2, f"{s.name}: {factor_label(s.factor)}", slug(s.name)),
        Para(f"**Found:** {found}", css="finding"),
    ]
    f = published_for(s.experiment)
    if f is not None:
        blocks.append(Para(published_sentence(s, f)[0], css="published"))
    else:
        blocks.append(
            Para("Custom experiment: the study has no published finding to compare with.")
        )
    if s.factor == "task_complexity":
        blocks.append(Para(TASK_COMPLEXITY_DEFINITION, css="note"))
    blocks += [figure, _level_table(s), _correlation_table(s), Para(regression_sentence(s))]
    blocks += [Para(f"Note: {note}.", css="note") for note in s.notes]
    return blocks


def _figure_caption(s: SeriesStats) -> str:
    return (
        f"{s.name}: valid and minimal circuit counts per converged model (points, "
        f"jittered; boxes: quartiles, whiskers 5–95%; line: median per level) and the "
        f"identifiable fraction with Wilson 95% intervals, against {factor_label(s.factor)}."
    )


def _subtitle(s: SeriesStats, setup: Mapping[str, object]) -> str:
    """The figure's subtitle: tasks, architectures and the validity criterion."""
    parts = []
    if len(s.tasks) <= 3:
        parts.append("task " + ", ".join(s.tasks))
    else:
        parts.append(f"{len(s.tasks)} tasks")
    if len(s.architectures) <= 3:
        parts.append("hidden " + ", ".join(s.architectures))
    census = setup.get("census")
    if isinstance(census, Mapping):
        parts.append("validity: " + value_text(census))
    if s.factor == "task_complexity":
        parts.append("complexity = effective rank of the truth table (SPEC)")
    return "; ".join(parts)


def _level_table(s: SeriesStats) -> Table:
    """Per level: models, converged, valid and minimal counts, identifiable fraction."""
    show_tasks = len(s.tasks) > 1
    header = ["level", "models", "converged", "valid mean", "valid median", "valid IQR"]
    header += ["minimal mean", "minimal median", "minimal IQR", "identifiable", "95% CI"]
    numeric = [True] * len(header)
    if show_tasks:
        header.insert(1, "tasks")
        numeric.insert(1, False)
    rows = []
    for lv in s.levels:
        ident = (
            f"{lv.n_identifiable}/{lv.n_converged} ({lv.identifiable_fraction:.2f})"
            if lv.n_converged
            else "–"
        )
        row = [
            lv.label,
            str(lv.n_models),
            str(lv.n_converged),
            fmt_num(lv.valid.mean),
            fmt_num(lv.valid.median),
            fmt_iqr(lv.valid),
            fmt_num(lv.minimal.mean),
            fmt_num(lv.minimal.median),
            fmt_iqr(lv.minimal),
            ident,
            fmt_fraction_ci(*lv.identifiable_ci),
        ]
        if show_tasks:
            row.insert(1, ", ".join(lv.tasks))
        rows.append(tuple(row))
    caption = f"Per level of {factor_label(s.factor)} (converged models only)"
    return Table(tuple(header), tuple(rows), tuple(numeric), caption=caption)


def _correlation_table(s: SeriesStats) -> Table:
    """Spearman and Pearson of each measure with the factor, with intervals and p-values."""
    rows = []
    for measure in ("n_valid", "n_minimal", "identifiable"):
        row = [MEASURE_LABELS[measure]]
        for method in ("spearman", "pearson"):
            c = s.correlation(measure, method)
            row += [fmt_r(c.statistic), fmt_ci(c.ci_low, c.ci_high), fmt_p(c.p_value)]
        notes = {s.correlation(measure, m).note for m in ("spearman", "pearson")} - {""}
        row.append("; ".join(sorted(notes)))
        rows.append(tuple(row))
    header = ("measure", "Spearman ρ", "95% CI", "p", "Pearson r", "95% CI", "p", "note")
    numeric = (False, True, True, True, True, True, True, False)
    if not any(r[-1] for r in rows):  # no notes: drop the column
        header, numeric, rows = header[:-1], numeric[:-1], [r[:-1] for r in rows]
    return Table(
        header,
        tuple(rows),
        numeric,
        caption=f"Correlation with {factor_label(s.factor)} (one point per converged model, "
        f"n = {s.n_converged}; paired bootstrap CI)",
    )


# -------------------------------------------------------------------- definitions


def _definitions_section(rows: Rows, n_resamples: int, seed: int) -> list[Block]:
    """The terms and methods of the report."""
    multi_output = []
    if any(as_float(r.get("n_outputs")) > 1 for r in rows):
        multi_output.append(
            "Multi-output tasks: the census is taken per output (SPEC); a row's valid and "
            "minimal counts are the sums over its outputs, and it is identifiable when every "
            "output is."
        )
    items = (
        "Valid circuit: a circuit whose ablated model reproduces the full model on the "
        'evaluation set (SPEC, "Validity"); minimal: valid with no valid proper subset.',
        "Identifiable (at the circuit level): exactly one minimal valid circuit.",
        *multi_output,
        TASK_COMPLEXITY_DEFINITION,
        "Statistics use converged models only, one point per model; levels with no "
        "converged model show – .",
        "Correlations: scipy.stats.spearmanr and pearsonr; 95% intervals by "
        f"scipy.stats.bootstrap (paired, percentile, {n_resamples} resamples, seed "
        f"{seed}); regression: scipy.stats.linregress of log(valid) on the factor over "
        "models with at least one valid circuit.",
    )
    return [Heading(2, "Definitions", "definitions"), Bullets(items)]


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
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into the study directory."""
    from circuit_census.files import atomic_write

    study_dir = Path(study_dir)
    rows, stored = read_rows(study_dir)
    merged = {**stored, **(setup or {})}
    report = build_report(rows, merged, n_resamples=n_resamples)
    figure_dir = study_dir / "figures"
    for name, png in report.figures.items():
        atomic_write(figure_dir / name, lambda tmp, png=png: tmp.write_bytes(png))
    md_path, html_path = study_dir / "report.md", study_dir / "report.html"
    atomic_write(md_path, lambda tmp: tmp.write_text(report.markdown, encoding="utf-8"))
    atomic_write(html_path, lambda tmp: tmp.write_text(report.html, encoding="utf-8"))
    return md_path, html_path
