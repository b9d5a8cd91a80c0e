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

from circuit_census.analysis.discovery import discovery_table, faithfulness_figure, has_discovery
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
from circuit_census.analysis.emergence import FirstValid, first_valid
from circuit_census.analysis.explanations import (
    LEVELS,
    ConditionLevels,
    condition_levels,
    has_explanations,
    levels_figure,
)
from circuit_census.analysis.findings import FINDINGS
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
    regression_sentence,
    verdict_sentence,
)
from circuit_census.analysis.series import SeriesStats, series_stats, split_series
from circuit_census.analysis.setup_table import setup_table, value_text
from circuit_census.analysis.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURE_LABELS,
    MEASURES,
    STRENGTH_BANDS,
)
from circuit_census.analysis.study_figures import factor_label, figure_png, series_figure
from circuit_census.analysis.verdicts import (
    POOLED,
    VerdictRow,
    consistency,
    findings_csv,
    study_verdicts,
)

Rows = Sequence[Mapping[str, object]]

MELOUX = (
    'Méloux, Maniu, Portet and Peyrard, "Everything, Everywhere, All at Once: Is '
    'Mechanistic Interpretability Identifiable?", ICLR 2025'
)
SAIRC = (
    '"Characterizing Mechanistic Uniqueness and Identifiability Through Circuit '
    'Analysis" (SAIRC study, 2026)'
)

TASK_COMPLEXITY_DEFINITION = (
    "Task complexity is the effective rank (Roy & Vetterli 2007) of the task's truth "
    "table: for m > 1 outputs, of the 2^n x m target matrix; for one output, of the truth "
    "table laid out as a 2^floor(n/2) x 2^ceil(n/2) matrix (XOR 2, AND 1, OR about 1.80). "
    "Tasks are compared only with tasks of the same number of inputs and outputs, and "
    "complexities equal to within 10^-9 are one level."
)

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
    series = split_series(rows)
    stats = [series_stats(s, n_resamples=n_resamples, seed=seed) for s in series]
    findings = declared_findings(setup)
    verdicts = study_verdicts(series, stats, findings, n_resamples=n_resamples, seed=seed)
    name = setup.get("title") or setup.get("name")
    title = "circuit-census study report" + (f": {name}" if name else "")
    sentences = {s.name: finding_sentence(s) for s in stats}

    blocks: list[Block] = [Heading(1, title), Para(INTRODUCTION)]
    blocks += _summary_section(verdicts, stats, findings)
    blocks += _robustness_section(verdicts)
    blocks += _survivorship_section(verdicts, stats)
    blocks += [Heading(2, "Setup", "setup"), setup_table(rows, setup, stats)]
    figures: dict[str, bytes] = {}
    for s, group in zip(stats, series, strict=True):
        figure = FigureBlock(f"{slug(s.name)}.png", _figure_caption(s))
        figures[figure.name] = figure_png(
            series_figure(s, group.rows, _subtitle(s, setup), seed=seed)
        )
        mine = [v for v in verdicts if v.experiment == s.experiment and v.stratum == s.stratum]
        blocks += _series_section(s, group.rows, sentences[s.name], mine, figure)
    if has_explanations(rows):
        conditions = condition_levels(rows)
        blocks += _explanations_section(conditions)
        figures["explanations-levels.png"] = figure_png(levels_figure(conditions, rows))
    if has_discovery(rows):
        blocks += _discovery_section(rows)
        figures["discovery-faithfulness.png"] = figure_png(faithfulness_figure(rows))
    pooled = [v for v in verdicts if v.stratum == POOLED]
    if pooled:
        blocks += [Heading(2, "Pooled over strata", "pooled")]
        blocks += [Para(verdict_sentence(v), css="verdict") for v in pooled]
    blocks += _methods_section(rows, n_resamples, seed)

    markdown = render_markdown(blocks)
    page = render_html(blocks, figures, title)
    return Report(title, markdown, page, figures, stats, sentences, verdicts)


# ------------------------------------------------------------------------ summary


def _rho_ci(rho: float, low: float, high: float) -> str:
    """``+0.21 [+0.05, +0.36]``; says so when there is no interval."""
    ci = fmt_ci(low, high)
    if fmt_r(rho) == "–":
        return "not computed"
    return f"{fmt_r(rho)} " + (ci if ci != "–" else "(no interval)")


def _where(v: VerdictRow) -> str:
    return f"{v.experiment} ({v.stratum})"


def _summary_section(
    verdicts: Sequence[VerdictRow], stats: Sequence[SeriesStats], findings: Mapping[str, int]
) -> list[Block]:
    """The verdict table, and which experiments and findings have no verdict."""
    rows = tuple(
        (
            str(v.finding),
            v.claim,
            _where(v),
            fmt_num(v.n),
            _rho_ci(v.rho, v.ci_low, v.ci_high),
            fmt_p(v.p_holm),
            v.verdict + (" †" if v.zero_variance_levels else ""),
        )
        for v in sorted(verdicts, key=lambda v: v.finding)
    )
    blocks: list[Block] = [Heading(2, "Summary: verdicts", "summary")]
    if rows:
        blocks.append(
            Table(
                ("finding", "claim", "tested in", "n", "ρ [95% CI]", "Holm p", "verdict"),
                rows,
                (False, False, False, True, True, True, False),
                caption="Each claim of each declared finding, judged from the 95% bootstrap "
                "interval of Spearman's ρ over converged models",
            )
        )
        blocks.append(
            Para(
                "Verdict: agrees when the whole interval lies in the claimed region, "
                "disagrees when it lies wholly outside, inconclusive otherwise. p: Holm-"
                f"adjusted over the {len(verdicts)} tests of this table. †: the measure does "
                "not vary at some levels (see the series' table).",
                css="note",
            )
        )
    else:
        blocks.append(Para("No experiment of this study declares a finding: no verdicts."))
    tested = set(findings.values())
    untested = [f"{n}. {FINDINGS[n].title}" for n in FINDINGS if n not in tested]
    if untested:
        blocks.append(Para("Findings not tested by this study: " + "; ".join(untested) + "."))
    undeclared = sorted({s.experiment for s in stats} - set(findings))
    if undeclared:
        blocks.append(
            Para(
                "Experiments without a declared finding (statistics only, no verdict): "
                + ", ".join(undeclared)
                + "."
            )
        )
    for n in sorted(tested):
        blocks.append(Para(f"**Finding {n}, {FINDINGS[n].title}.** {FINDINGS[n].statement}"))
    return blocks


def _robustness_section(verdicts: Sequence[VerdictRow]) -> list[Block]:
    """Whether each claim's verdict is the same everywhere it was tested."""
    rows = tuple((str(n), claim, same, where) for n, claim, same, where in consistency(verdicts))
    if not rows:
        return []
    return [
        Heading(2, "Robustness: the same verdict everywhere?", "robustness"),
        Table(
            ("finding", "claim", "verdict", "where"),
            rows,
            caption="Each claim across the widths, depths and task strata it was tested at",
        ),
    ]


def _survivorship_section(
    verdicts: Sequence[VerdictRow], stats: Sequence[SeriesStats]
) -> list[Block]:
    """Models trained, converged and kept per level; and each verdict with every model."""
    blocks: list[Block] = [Heading(2, "Survivorship", "survivorship")]
    level_rows = tuple(
        (
            s.name,
            lv.label,
            fmt_num(lv.n_models),
            fmt_num(lv.n_trained_converged),
            fmt_num(lv.n_converged),
        )
        for s in stats
        for lv in s.levels
    )
    blocks.append(
        Table(
            ("series", "level", "trained", "converged", "kept"),
            level_rows,
            (False, False, True, True, True),
            caption="Models per level: trained, converged, and kept in the statistics "
            "(converged, with a census)",
        )
    )
    if verdicts:
        rows = tuple(
            (
                str(v.finding),
                v.claim,
                _where(v),
                v.verdict,
                fmt_num(v.n_all),
                _rho_ci(v.rho_all, v.ci_low_all, v.ci_high_all),
                v.verdict_all,
                "no" if v.verdict == v.verdict_all else "yes",
            )
            for v in sorted(verdicts, key=lambda v: v.finding)
        )
        blocks.append(
            Table(
                (
                    "finding",
                    "claim",
                    "tested in",
                    "verdict",
                    "n, all",
                    "ρ, all",
                    "verdict, all",
                    "moved",
                ),
                rows,
                (False, False, False, False, True, True, False, False),
                caption="The same tests with non-converged models included (their census "
                "is taken too): does excluding them move a verdict?",
            )
        )
    return blocks


# ------------------------------------------------------------------------- series


def _emergence_sentence(f: FirstValid) -> str:
    """When the first valid circuit appears during training, in numbers."""
    if f.n_with == 0:
        return (
            f"**Emergence:** none of the {fmt_num(f.n_models)} models has a valid circuit at "
            "any checkpoint."
        )
    never = f.n_models - f.n_with
    return (
        f"**Emergence:** the first valid circuit appears at training progress "
        f"{fmt_num(f.median)} (median over {fmt_num(f.n_with)} models; IQR "
        f"{fmt_num(f.q25)}–{fmt_num(f.q75)})"
        + (f"; {fmt_num(never)} models have none at any checkpoint." if never else ".")
        + " Progress is the fraction of each model's own training run (0: its "
        "initialization; 1: its final weights)."
    )


def _series_section(
    s: SeriesStats,
    rows: Rows,
    found: str,
    verdicts: Sequence[VerdictRow],
    figure: FigureBlock,
) -> list[Block]:
    """What the numbers show, the verdicts, the figure, the tables and the regression."""
    blocks: list[Block] = [
        Heading(2, f"{s.name}: {factor_label(s.factor)}", slug(s.name)),
        Para(found, css="finding"),
    ]
    blocks += [Para(verdict_sentence(v), css="verdict") for v in verdicts]
    if not verdicts:
        blocks.append(Para("No finding declared for this experiment: statistics only."))
    if s.factor == "task_complexity":
        blocks.append(Para(TASK_COMPLEXITY_DEFINITION, css="note"))
    if s.factor == "progress":
        blocks.append(Para(_emergence_sentence(first_valid(rows))))
    blocks += [figure, _level_table(s), _correlation_table(s), Para(regression_sentence(s))]
    blocks += [Para(f"Note: {note}.", css="note") for note in s.notes]
    return blocks


def _figure_caption(s: SeriesStats) -> str:
    return (
        f"{s.name}: valid circuits, minimal circuits and valid fraction per converged model "
        f"(points, jittered; boxes: quartiles, whiskers 5–95%; line: median per level; "
        f'"no variance": every model has the same value) and the identifiable fraction '
        f"with Wilson 95% intervals, against {factor_label(s.factor)}."
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
        parts.append("complexity = effective rank of the truth table")
    return "; ".join(parts)


def _flagged(summary_text: str, flat: bool) -> str:
    return summary_text + (" †" if flat else "")


def _level_table(s: SeriesStats) -> Table:
    """Per level: kept models, median and IQR of each measure, identifiable fraction."""
    show_tasks = len(s.tasks) > 1
    header = ["level", "kept / trained", "valid median (IQR)", "minimal median (IQR)"]
    header += ["valid fraction median", "identifiable [95% CI]"]
    numeric = [True] * len(header)
    if show_tasks:
        header.insert(1, "tasks")
        numeric.insert(1, False)
    rows = []
    for lv in s.levels:
        ci = fmt_fraction_ci(*lv.identifiable_ci)
        ident = fmt_num(lv.identifiable_fraction) + (f" {ci}" if ci != "–" else "")
        row = [
            lv.label,
            f"{fmt_num(lv.n_converged)} / {fmt_num(lv.n_models)}",
            _flagged(
                f"{fmt_num(lv.valid.median)} ({fmt_iqr(lv.valid)})", lv.zero_variance("n_valid")
            ),
            _flagged(
                f"{fmt_num(lv.minimal.median)} ({fmt_iqr(lv.minimal)})",
                lv.zero_variance("n_minimal"),
            ),
            _flagged(fmt_num(lv.valid_fraction.median), lv.zero_variance("valid_fraction")),
            _flagged(ident, lv.zero_variance("identifiable")),
        ]
        if show_tasks:
            row.insert(1, ", ".join(lv.tasks))
        rows.append(tuple(row))
    caption = (
        f"Per level of {factor_label(s.factor)} (kept: converged models with a census). "
        "†: the measure does not vary at this level."
    )
    return Table(tuple(header), tuple(rows), tuple(numeric), caption=caption)


def _correlation_table(s: SeriesStats) -> Table:
    """Spearman's rho of each measure with the factor: converged models, then all."""
    rows = []
    for measure in MEASURES:
        c, c_all = s.correlation(measure), s.correlation(measure, all_models=True)
        rows.append(
            (
                MEASURE_LABELS[measure],
                fmt_num(c.n),
                fmt_r(c.statistic),
                fmt_ci(c.ci_low, c.ci_high),
                fmt_p(c.p_value),
                fmt_r(c_all.statistic),
                c.note or "",
            )
        )
    header = ("measure", "n", "Spearman ρ", "95% CI", "p (unadjusted)", "ρ, all models", "note")
    numeric = (False, True, True, True, True, True, False)
    if not any(r[-1] for r in rows):
        header, numeric, rows = header[:-1], numeric[:-1], [r[:-1] for r in rows]
    return Table(
        header,
        tuple(rows),
        numeric,
        caption=f"Correlation with {factor_label(s.factor)} (one point per converged model)",
    )


# ------------------------------------------------------------------- explanations


def _explanations_section(conditions: Sequence[ConditionLevels]) -> list[Block]:
    """The four levels of identifiability side by side per condition."""
    body = []
    for c in conditions:
        cells = [c.condition, fmt_num(c.n_models)]
        for name, _ in LEVELS:
            summary = c.summaries[name]
            cells.append(f"{fmt_num(summary.median)} ({fmt_iqr(summary)})")
        cells.insert(4, fmt_num(c.interpretations_median.median))
        body.append(tuple(cells))
    return [
        Heading(2, "Four levels of identifiability", "explanations"),
        Para(
            "Beyond circuits, following Méloux et al.: the interpretations of each valid "
            "circuit (truth tables for its neurons that fit together layer by layer), the "
            "algorithms (AND/OR/NOT formulas of the task with a valid mapping onto neurons "
            "under interchange interventions) and the minimal mappings of each; "
            "definitions in docs/definitions.md. Medians over converged models, IQR in "
            "parentheses."
        ),
        Table(
            (
                "condition",
                "models",
                "valid circuits",
                "interpretations, all circuits",
                "median per circuit",
                "algorithms",
                "minimal mappings",
            ),
            tuple(body),
            (False, True, True, True, True, True, True),
            caption="Per condition: median (IQR) of each level over models",
        ),
        FigureBlock(
            "explanations-levels.png",
            "The four levels per condition: valid circuits, interpretations over all valid "
            "circuits, formulas with a valid mapping, and minimal mappings; one point per "
            "converged model, boxes: quartiles.",
        ),
    ]


# ---------------------------------------------------------------------- discovery


def _discovery_section(rows: Rows) -> list[Block]:
    """The discovery methods graded against the census: a table and the faithfulness figure."""
    table = discovery_table(rows)
    body = tuple(
        (
            d.network,
            d.method,
            fmt_num(d.n_models),
            fmt_num(d.fraction_valid),
            fmt_num(d.fraction_minimal),
            fmt_num(d.median_size_excess),
            fmt_num(d.coverage),
        )
        for d in sorted(table, key=lambda d: (d.network, d.method))
    )
    return [
        Heading(2, "Circuit discovery against the census", "discovery"),
        Para(
            "Each discovery method (ACDC, edge attribution patching, EAP with integrated "
            "gradients, weight magnitude) was run on every kept model, and every circuit it "
            "returned was graded against that model's exact census. Descriptive: no finding "
            "is tested here."
        ),
        Table(
            (
                "network",
                "method",
                "models",
                "valid",
                "minimal",
                "median size excess (edges)",
                "coverage of minimal circuits",
            ),
            body,
            (False, False, True, True, True, True, True),
            caption="Per network and method: the share of returned circuits that are valid "
            "and minimal (mean over models), the median number of edges beyond the smallest "
            "valid circuit, and the mean share of a model's minimal circuits ever returned "
            "across seeds",
        ),
        FigureBlock(
            "discovery-faithfulness.png",
            "For every k, the share of models whose top-k circuit under EAP and EAP-IG "
            "(seed 0) is valid; the dashed line is the census's smallest valid circuit "
            "(median over models).",
        ),
    ]


# ------------------------------------------------------------------------ methods


def _methods_section(rows: Rows, n_resamples: int, seed: int) -> list[Block]:
    """The measures, the tests and the sources, one sentence each."""
    bands = ", ".join(f"below {b:g} {w}" for b, w in STRENGTH_BANDS)
    items = [
        "Valid circuit: a circuit (a subgraph of the network with no dangling neuron) whose "
        "model, with every other edge ablated, reproduces the full model on the evaluation "
        "set under the study's validity criterion.",
        "Valid circuits: how many of a model's admissible circuits are valid (redundancy).",
        "Minimal circuits: valid circuits with no valid proper subset (distinct pathways).",
        "Valid fraction: valid circuits divided by admissible candidates, which compares "
        "architectures of different sizes.",
        "Identifiable (at the circuit level): exactly one minimal circuit; the identifiable "
        "fraction is the share of models (or of a model's outputs) that are.",
    ]
    if any(as_float(r.get("n_outputs")) > 1 for r in rows):
        items.append(
            "Multi-output tasks: every measure is taken per output and averaged over the "
            "outputs, so adding outputs does not raise a count by construction; the joint "
            "census of all outputs is stored beside it (columns *_joint)."
        )
    items += [
        TASK_COMPLEXITY_DEFINITION,
        "Statistics use converged models with a census, one point per model; the "
        "survivorship tables repeat each test with non-converged models included.",
        f"Correlation: Spearman's ρ (scipy.stats.spearmanr); words for its size: {bands}, "
        "else strong. 95% interval: paired percentile bootstrap (scipy.stats.bootstrap, "
        f"{fmt_num(n_resamples)} resamples, seed {seed}).",
        "Pooled over strata: the correlation of ranks taken within each stratum; p by "
        "permuting the measure within strata, interval by resampling models within strata.",
        "Verdicts: a claim agrees when the whole 95% interval of ρ lies in its region, "
        "disagrees when the whole interval lies outside it, and is inconclusive otherwise; "
        "p-values beside verdicts are Holm-adjusted over all tests of the report.",
        "Regression: scipy.stats.linregress of log(valid circuits) on the factor over models "
        "with at least one valid circuit.",
        f"Sources: {MELOUX}; {SAIRC}.",
    ]
    return [Heading(2, "Methods", "methods"), Bullets(tuple(items))]


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
