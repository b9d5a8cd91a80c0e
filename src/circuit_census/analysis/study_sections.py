"""The report's sections of a study's series and of the experiments beyond the census:
what each series shows with its figure and tables, the four levels of identifiability,
discovery graded against the census, and the methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from circuit_census.analysis.discovery import discovery_table
from circuit_census.analysis.document import (
    Block,
    Bullets,
    FigureBlock,
    Heading,
    Para,
    Table,
    slug,
)
from circuit_census.analysis.emergence import FirstValid, first_valid
from circuit_census.analysis.estimates import EstimatedCondition
from circuit_census.analysis.explanations import (
    LEVELS,
    ConditionLevels,
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
    regression_sentence,
    verdict_sentence,
)
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.setup_table import value_text
from circuit_census.analysis.statistics import (
    MEASURE_LABELS,
    MEASURES,
    STRENGTH_BANDS,
)
from circuit_census.analysis.study_figures import factor_label
from circuit_census.analysis.verdicts import (
    VerdictRow,
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


def series_section(
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


def figure_caption(s: SeriesStats) -> str:
    return (
        f"{s.name}: valid circuits, minimal circuits and valid fraction per converged model "
        f"(points, jittered; boxes: quartiles, whiskers 5–95%; line: median per level; "
        f'"no variance": every model has the same value) and the identifiable fraction '
        f"with Wilson 95% intervals, against {factor_label(s.factor)}."
    )


def subtitle(s: SeriesStats, setup: Mapping[str, object]) -> str:
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


def explanations_section(conditions: Sequence[ConditionLevels]) -> list[Block]:
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


def discovery_section(rows: Rows) -> list[Block]:
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


# ---------------------------------------------------------------------- estimates


def estimates_section(conditions: Sequence[EstimatedCondition]) -> list[Block]:
    """The conditions past the exact limit, estimated from drawn circuits: a table apart
    from the exact results, said to be estimates."""
    body = tuple(
        (
            c.experiment,
            c.level,
            c.network,
            fmt_num(c.n_models),
            fmt_num(c.draws),
            fmt_num(c.n_candidates),
            f"≈ {fmt_num(c.n_valid.median)} ({fmt_iqr(c.n_valid)})",
            f"≈ {fmt_num(c.valid_fraction.median)} ({fmt_iqr(c.valid_fraction)})",
            fmt_num(c.widest_interval),
        )
        for c in conditions
    )
    return [
        Heading(2, "Estimates past the exact limit", "estimates"),
        Para(
            "These conditions' censuses have more candidate circuits than the exact census "
            "takes, and their experiments asked for estimates: each model's valid count and "
            "valid fraction come from circuits drawn uniformly from its admissible circuits, "
            "each judged exactly, with a 95% Wilson interval of the fraction. They are "
            "estimates, not counts: they enter no statistic, figure or verdict above, and "
            "their minimal circuits and identifiability are unknown."
        ),
        Table(
            (
                "experiment",
                "level",
                "network",
                "models",
                "draws each",
                "candidates",
                "estimated valid, median (IQR)",
                "estimated valid fraction, median (IQR)",
                "widest 95% interval",
            ),
            body,
            (False, False, False, True, True, True, True, True, True),
            caption="Per condition, over its converged models: the estimated number and "
            "fraction of valid circuits, and the width of the widest per-model 95% "
            "interval of the valid fraction",
        ),
    ]


# ------------------------------------------------------------------------ methods


def methods_section(rows: Rows, n_resamples: int, seed: int) -> list[Block]:
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
