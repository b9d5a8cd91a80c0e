"""The study report: ``report.md`` and a self-contained ``report.html``.

``build_report(rows, setup)`` is the pure core: statistics, figures and both documents
from result rows (one dict per trained model) and a setup dict. ``write_report(study_dir)``
reads the study's results store and writes ``report.md`` (figures linked from
``figures/``), ``report.html`` (figures embedded as base64 data URIs, inline CSS, no
external resource) and the PNG files, each atomically.

Both documents are rendered from one list of blocks, so they always say the same thing.
Each series gets one generated sentence saying what was found (direction, strength and
significance of the Spearman correlation of the number of valid circuits with the
factor), set beside the study's published finding (SPEC, "The question") where the
experiment is one of the four presets, with a verdict on whether this run agrees.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from circuit_census.analysis.statistics import (
    ALPHA,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    MEASURE_LABELS,
    Correlation,
    CountSummary,
    SeriesStats,
    architecture_of,
    as_float,
    format_level,
    is_included,
    natural_key,
    split_series,
    strength,
    study_stats,
)
from circuit_census.analysis.study_figures import (
    factor_label,
    figure_png,
    series_figure,
)

HEADLINE_MEASURE = "n_valid"
HEADLINE_METHOD = "spearman"

TASK_COMPLEXITY_DEFINITION = (
    "Task complexity is the effective rank (Roy & Vetterli 2007) of the task's truth "
    "table, as SPEC defines it: for m > 1 outputs, of the 2^n x m target matrix; for one "
    "output, of the truth table laid out as a 2^floor(n/2) x 2^ceil(n/2) matrix (XOR 2, "
    "AND 1, OR about 1.80)."
)

# ------------------------------------------------------------- published findings


@dataclass(frozen=True)
class Verdict:
    word: str  # "agrees", "partly agrees", "disagrees", "undetermined"
    reason: str


@dataclass(frozen=True)
class PublishedFinding:
    """One of the study's four findings (SPEC, "The question") and how a run is checked."""

    number: int
    title: str
    text: str
    criterion: str  # in words
    judge: Callable[[Correlation], Verdict]


def _weak_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    a = abs(c.statistic)
    if a < 0.3:
        return Verdict("agrees", f"|ρ| = {fmt_abs(a)} < 0.3, a weak correlation")
    if a < 0.6:
        return Verdict("partly agrees", f"|ρ| = {fmt_abs(a)} is moderate, not weak")
    return Verdict("disagrees", f"|ρ| = {fmt_abs(a)} is strong")


def _capacity_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    r = c.statistic
    if r >= 0.6 and c.significant:
        return Verdict("agrees", f"ρ = {fmt_r(r)} ≥ 0.6 and significant")
    if r > 0 and c.significant:
        return Verdict("partly agrees", f"ρ = {fmt_r(r)} is positive and significant, not strong")
    if r > 0:
        return Verdict("disagrees", f"ρ = {fmt_r(r)} is positive but not significant")
    return Verdict("disagrees", f"ρ = {fmt_r(r)}: wider networks did not have more valid circuits")


def _complexity_judge(c: Correlation) -> Verdict:
    if not c.defined:
        return Verdict("undetermined", "no correlation could be computed")
    r = c.statistic
    if c.significant and abs(r) >= 0.3:
        return Verdict("agrees", f"|ρ| = {fmt_abs(r)} ≥ 0.3 and significant")
    if c.significant:
        return Verdict("partly agrees", f"significant but weak (|ρ| = {fmt_abs(r)} < 0.3)")
    return Verdict("disagrees", f"not significant (p = {fmt_p(c.p_value)})")


PUBLISHED: dict[str, PublishedFinding] = {
    "l1": PublishedFinding(
        1,
        "Induced sparsity",
        "L1 regularization of the weights shows only a weak correlation with circuit uniqueness.",
        "agrees if |ρ| < 0.3, partly if 0.3 ≤ |ρ| < 0.6, else disagrees",
        _weak_judge,
    ),
    "orthogonality": PublishedFinding(
        2,
        "Orthogonality",
        "A penalty pushing hidden activations towards orthogonality shows a weak "
        "correlation with uniqueness, sometimes promoting non-uniqueness.",
        "agrees if |ρ| < 0.3, partly if 0.3 ≤ |ρ| < 0.6, else disagrees",
        _weak_judge,
    ),
    "capacity": PublishedFinding(
        3,
        "Capacity",
        "More hidden neurons give strongly more valid circuits.",
        "agrees if ρ ≥ 0.6 with p < 0.05, partly if positive and significant but weaker",
        _capacity_judge,
    ),
    "task-complexity": PublishedFinding(
        4,
        "Task complexity",
        "Simpler tasks collapse networks onto one causal pathway with increasingly "
        "redundant circuits; task complexity (effective rank) predicts non-uniqueness.",
        "agrees if |ρ| ≥ 0.3 with p < 0.05, partly if significant but weaker",
        _complexity_judge,
    ),
}
PRESETS = ("l1", "orthogonality", "capacity", "task-complexity")


def _finding_rank(experiment: str) -> int:
    f = published_for(experiment)
    return f.number if f is not None else len(PUBLISHED) + 1


def published_for(experiment: str) -> PublishedFinding | None:
    key = experiment.strip().lower().replace("_", "-")
    if key.startswith("task-complexity") or key == "complexity":  # the stacks variant too
        return PUBLISHED["task-complexity"]
    return PUBLISHED.get(key)


# ------------------------------------------------------------------ formatting


def fmt_num(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    return f"{v:.{digits}g}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "–"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def fmt_r(r: float) -> str:
    """``+0.42``; more digits where two would round onto a strength boundary (0.3, 0.6)."""
    if math.isnan(r):
        return "–"
    digits = 4 if abs(round(r, 2)) in (0.3, 0.6) and abs(r) not in (0.3, 0.6) else 2
    return f"{r:+.{digits}f}".replace("-", "−")


def fmt_abs(r: float) -> str:
    return fmt_r(abs(r)).lstrip("+")


def fmt_ci(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "–"
    return f"[{fmt_r(low)}, {fmt_r(high)}]"


def fmt_iqr(s: CountSummary) -> str:
    return "–" if s.n == 0 else f"{fmt_num(s.q25)}–{fmt_num(s.q75)}"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "series"


# ------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: str  # plain text; **bold** spans allowed
    css: str = ""


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-aligned columns
    caption: str = ""


@dataclass(frozen=True)
class FigureBlock:
    name: str  # file name under figures/
    caption: str


Block = Heading | Para | Bullets | Table | FigureBlock


@dataclass
class Report:
    """A rendered report: both documents, the figures by file name, the statistics."""

    title: str
    markdown: str
    html: str
    figures: dict[str, bytes] = field(default_factory=dict)
    stats: list[SeriesStats] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)  # series name -> finding


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _md_text(text: str) -> str:
    return text


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _html_text(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=False))


def render_markdown(blocks: Sequence[Block], figure_dir: str = "figures") -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(_md_text(b.text))
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_text(i)}" for i in b.items))
        elif isinstance(b, Table):
            numeric = b.numeric or (False,) * len(b.header)
            lines = []
            if b.caption:
                lines.append(f"*{b.caption}*\n")
            lines.append("| " + " | ".join(_md_cell(h) or " " for h in b.header) + " |")
            lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
            for row in b.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("\n".join(lines))
        elif isinstance(b, FigureBlock):
            alt = b.name.rsplit(".", 1)[0]
            out.append(f"![{alt}]({figure_dir}/{b.name})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1d1d1f;
  max-width: 1180px; margin: 2em auto; padding: 0 1.5em; line-height: 1.5; font-size: 15px; }
h1 { font-size: 1.9em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d8dde3; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #d0d5db; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f0f3f6; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; }
p.caption { font-weight: 600; margin: 1.2em 0 0.2em; }
p.caption + table { margin-top: 0.2em; }
td.key { background: #f0f3f6 !important; font-weight: 600; white-space: nowrap; }
figure { margin: 1em 0; }
figure img { width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { font-size: 0.88em; color: #555; margin-top: 0.3em; }
p.finding { background: #f3f7fb; border-left: 4px solid #1f5f9e; padding: 0.6em 0.9em; }
p.published { background: #f8f6f1; border-left: 4px solid #b5841c; padding: 0.6em 0.9em; }
p.note { color: #666; font-size: 0.88em; }
.verdict-agrees { color: #1b6e20; font-weight: 600; }
.verdict-disagrees { color: #a12a1b; font-weight: 600; }
.verdict-partly { color: #8a5a00; font-weight: 600; }
nav ul { columns: 2; }
"""

_VERDICT_CLASS = {
    "agrees": "verdict-agrees",
    "partly agrees": "verdict-partly",
    "disagrees": "verdict-disagrees",
}


def render_html(blocks: Sequence[Block], figures: Mapping[str, bytes], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            anchor = f' id="{html.escape(b.anchor)}"' if b.anchor else ""
            out.append(f"<h{b.level}{anchor}>{_html_text(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            css = f' class="{b.css}"' if b.css else ""
            out.append(f"<p{css}>{_html_text(b.text)}</p>")
        elif isinstance(b, Bullets):
            items = "".join(f"<li>{_html_text(i)}</li>" for i in b.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(b, Table):
            numeric = b.numeric or (False,) * len(b.header)
            parts = []
            if b.caption:
                parts.append(f'<p class="caption">{_html_text(b.caption)}</p>')
            parts.append("<table>")
            if any(b.header):
                parts.append(
                    "<thead><tr>"
                    + "".join(
                        f"<th{' class=num' if n else ''}>{_html_text(h)}</th>"
                        for h, n in zip(b.header, numeric, strict=True)
                    )
                    + "</tr></thead>"
                )
            parts.append("<tbody>")
            for row in b.rows:
                cells = []
                key_column = not any(b.header)
                for c, n in zip(row, numeric, strict=True):
                    cls = _VERDICT_CLASS.get(c, "num" if n else "")
                    if key_column and not cells:
                        cls = "key"
                    attr = f' class="{cls}"' if cls else ""
                    cells.append(f"<td{attr}>{_html_text(c)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</tbody></table>")
            out.append("".join(parts))
        elif isinstance(b, FigureBlock):
            data = base64.b64encode(figures[b.name]).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(b.caption)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{_html_text(b.caption)}</figcaption></figure>"
            )
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- sentences


def short_factor(factor: str) -> str:
    """The factor's label without its parenthesis: ``L1 strength``, ``hidden width``."""
    return factor_label(factor).split(" (")[0]


_ADVERB = {"weak": "slightly", "moderate": "moderately", "strong": "clearly"}


def finding_sentence(s: SeriesStats) -> str:
    """One sentence saying what this run found, generated from the numbers."""
    c = s.correlation(HEADLINE_MEASURE, HEADLINE_METHOD)
    models = f"{s.n_converged} converged models"
    if s.n_excluded:
        models += f"; {s.n_excluded} not converged, excluded"
    if s.n_converged == 0:
        return (
            f"In {s.name}, no model converged ({s.n_models} trained, all excluded): there is "
            "nothing to correlate."
        )
    medians = [(lv.valid.median, lv.label) for lv in s.levels if lv.valid.n]
    if s.categorical and medians:
        low, high = min(medians), max(medians)
        return (
            f"In {s.name}, the median number of valid circuits ranges from {fmt_num(low[0])} "
            f"({low[1]}) to {fmt_num(high[0])} ({high[1]}) across the levels of "
            f"{factor_label(s.factor)}, a categorical factor without a correlation ({models})."
        )
    if not c.defined:
        return (
            f"In {s.name}, the correlation of the number of valid circuits with "
            f"{factor_label(s.factor)} could not be computed ({c.note}; {models})."
        )
    word = strength(c.statistic)
    sign = "positive" if c.statistic > 0 else "negative" if c.statistic < 0 else "zero"
    ci = fmt_ci(c.ci_low, c.ci_high)
    ci = f"95% CI {ci}" if ci != "–" else "no bootstrap interval"
    numbers = f"Spearman ρ = {fmt_r(c.statistic)}, {ci}, p = {fmt_p(c.p_value)}"
    if c.significant:
        more = "more" if c.statistic > 0 else "fewer"
        text = (
            f"In {s.name}, a larger {short_factor(s.factor)} goes with {_ADVERB[word]} {more} "
            f"valid circuits: a {word} {sign} correlation, significant at α = {ALPHA} "
            f"({numbers}; {models})"
        )
    else:
        text = (
            f"In {s.name}, {short_factor(s.factor)} shows no significant relation with the "
            f"number of valid circuits: a {word} {sign} correlation, not significant at "
            f"α = {ALPHA} ({numbers}; {models})"
        )
    ident = s.correlation("identifiable", HEADLINE_METHOD)
    levels = [lv for lv in s.levels if not math.isnan(lv.identifiable_fraction)]
    if levels:
        first, last = levels[0], levels[-1]
        text += (
            f"; the identifiable fraction goes from {first.identifiable_fraction:.2f} at "
            f"{first.label} to {last.identifiable_fraction:.2f} at {last.label}"
        )
        if ident.defined:
            text += f" (ρ = {fmt_r(ident.statistic)}, p = {fmt_p(ident.p_value)})"
    return text + "."


_VERDICT_LEAD = {
    "agrees": "This run agrees",
    "partly agrees": "This run partly agrees",
    "disagrees": "This run disagrees",
    "undetermined": "Undetermined in this run",
}


def published_sentence(s: SeriesStats, finding: PublishedFinding) -> tuple[str, Verdict]:
    c = s.correlation(HEADLINE_MEASURE, HEADLINE_METHOD)
    verdict = finding.judge(c)
    extra = ""
    if finding.number == 2 and c.defined and c.statistic > 0 and c.significant:
        extra = " The correlation is positive: orthogonality promoted non-uniqueness here."
    if finding.number == 4 and c.defined and c.significant:
        if c.statistic < 0:
            extra = " Simpler tasks had more valid (redundant) circuits in this run."
        else:
            extra = " More complex tasks had more valid circuits in this run."
    text = (
        f"**Published (finding {finding.number}, {finding.title.lower()}):** {finding.text} "
        f"**{_VERDICT_LEAD[verdict.word]}:** {verdict.reason} (rule: {finding.criterion})."
        f"{extra}"
    )
    return text, verdict


# ------------------------------------------------------------------- the report


def _setup_table(rows: Sequence[Mapping[str, object]], setup: Mapping[str, object], stats):
    n = len(rows)
    n_used = sum(1 for r in rows if is_included(r))
    tasks: dict[str, float] = {}
    for r in rows:
        if r.get("task") is not None:
            tasks[str(r["task"])] = as_float(r.get("task_complexity"))
    task_text = ", ".join(
        f"{t} ({fmt_num(c, 3)})" if not math.isnan(c) else t
        for t, c in sorted(tasks.items(), key=lambda tc: (tc[1], tc[0]))
    )
    archs = sorted({architecture_of(r) for r in rows}, key=natural_key)
    seeds = sorted({int(s) for r in rows if (s := r.get("seed")) is not None})
    entries: list[tuple[str, str]] = [
        ("Models", f"{n} trained; {n_used} converged and in the statistics; {n - n_used} excluded"),
        ("Tasks (complexity)", task_text or "–"),
        ("Hidden layer sizes, activation", ", ".join(archs) or "–"),
        ("Seeds", _seed_text(seeds)),
    ]
    for s in stats:
        levels = ", ".join(lv.label for lv in s.levels)
        per = sorted({lv.n_models for lv in s.levels})
        per_text = str(per[0]) if len(per) == 1 else f"{per[0]}–{per[-1]}"
        entries.append(
            (f"Levels: {s.name}", f"{factor_label(s.factor)} ∈ {{{levels}}}; {per_text} seeds each")
        )
    for col, label in (("l2", "L2"), ("dropout", "dropout"), ("epochs", "epochs trained")):
        vals = sorted({as_float(r.get(col)) for r in rows} - {math.nan})
        vals = [v for v in vals if not math.isnan(v)]
        if vals:
            text = fmt_num(vals[0]) if len(vals) == 1 else f"{fmt_num(vals[0])}–{fmt_num(vals[-1])}"
            entries.append((label, text))
    t_train = sum(as_float(r.get("train_seconds")) for r in rows if _finite(r, "train_seconds"))
    t_census = sum(as_float(r.get("census_seconds")) for r in rows if _finite(r, "census_seconds"))
    if t_train or t_census:
        entries.append(("Compute", f"{t_train:.1f} s training, {t_census:.1f} s census (summed)"))
    for section, values in _settings_of(rows).items():
        if section not in setup:
            entries.append((section.replace("_", " ").capitalize(), values))
    for key, value in setup.items():
        if key in {"title", "name", "date", "version"}:
            continue
        entries.append((key.replace("_", " ").capitalize(), _value_text(value)))
    entries.append(("Software", _software(setup)))
    entries.append(
        ("Date", str(setup.get("date") or _dt.datetime.now().strftime("%Y-%m-%d %H:%M")))
    )
    return Table(("", ""), tuple(entries), (False, False))


_FACTOR_SETTINGS = {"l1", "l2", "orthogonality", "dropout", "hidden", "activation", "task"}


def _settings_of(rows: Sequence[Mapping[str, object]]) -> dict[str, str]:
    """The rows' ``settings`` sections (``training``, ``census``): each key with its values.

    Keys that are study factors (regularizers, architecture, task) are left out: the
    levels say them."""
    sections: dict[str, dict[str, set[str]]] = {}
    for r in rows:
        settings = r.get("settings")
        if isinstance(settings, (str, bytes)):
            try:
                settings = json.loads(settings)
            except ValueError:
                continue
        if not isinstance(settings, Mapping):
            continue
        for key, value in settings.items():
            if isinstance(value, Mapping):
                section = sections.setdefault(str(key), {})
                for k, v in value.items():
                    if k not in _FACTOR_SETTINGS:
                        section.setdefault(str(k), set()).add(_value_text(v))
    out = {}
    for section, keys in sections.items():
        parts = []
        for k, vals in sorted(keys.items()):
            shown = sorted(vals, key=natural_key)
            parts.append(
                f"{k} = {shown[0]}" if len(shown) == 1 else f"{k} ∈ {{{', '.join(shown)}}}"
            )
        if parts:
            out[section] = ", ".join(parts)
    return out


def _finite(row: Mapping[str, object], key: str) -> bool:
    return math.isfinite(as_float(row.get(key)))


def _seed_text(seeds: Sequence[int]) -> str:
    if not seeds:
        return "–"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{len(seeds)} ({seeds[0]}–{seeds[-1]})"
    return f"{len(seeds)} distinct"


def _value_text(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {_value_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value)
    return str(value)


def _software(setup: Mapping[str, object]) -> str:
    import matplotlib
    import numpy
    import scipy

    from circuit_census import __version__

    version = setup.get("version") or __version__
    return (
        f"circuit-census {version}; Python {platform.python_version()}, NumPy "
        f"{numpy.__version__}, SciPy {scipy.__version__}, Matplotlib {matplotlib.__version__}"
    )


def _fmt_fraction_ci(low: float, high: float) -> str:
    return "–" if math.isnan(low) or math.isnan(high) else f"[{low:.2f}, {high:.2f}]"


def _level_table(s: SeriesStats) -> Table:
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
            _fmt_fraction_ci(*lv.identifiable_ci),
        ]
        if show_tasks:
            row.insert(1, ", ".join(lv.tasks))
        rows.append(tuple(row))
    return Table(
        tuple(header),
        tuple(rows),
        tuple(numeric),
        caption=f"Per level of {factor_label(s.factor)} (converged models only)",
    )


def _correlation_table(s: SeriesStats) -> Table:
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


def _regression_para(s: SeriesStats) -> Para:
    g = s.regression
    if s.categorical:
        return Para("No regression: the factor is categorical.")
    if math.isnan(g.r) and math.isnan(g.slope):
        return Para(f"Regression of log(valid circuits) on the factor: not computed ({g.note}).")
    if math.isnan(g.r):
        return Para(f"Regression of log(valid circuits) on the factor: {g.note}.")
    levels = [lv.level for lv in s.levels if lv.n_converged]
    span = (max(levels) - min(levels)) if levels else math.nan
    if span >= 1:
        effect = f"each unit of {short_factor(s.factor)} multiplies the fitted count by "
        effect += f"{g.fold_per_unit:.3g}"
    else:
        effect = (
            f"from {format_level(min(levels))} to {format_level(max(levels))} the fitted count "
            f"is multiplied by {math.exp(g.slope * span):.3g}"
        )
    intercept = f"{g.intercept:.3g}".replace("-", "−")
    text = (
        f"**Regression** of log(valid circuits) on {short_factor(s.factor)} (x; n = {g.n}): "
        f"log(valid) = {intercept} {'+' if g.slope >= 0 else '−'} {abs(g.slope):.3g} x "
        f"(slope standard error {g.stderr:.2g}, r = {fmt_r(g.r)}, p = {fmt_p(g.p_value)}); "
        f"{effect}."
    )
    if g.note:
        text += f" ({g.note}.)"
    return Para(text)


def _subtitle(s: SeriesStats, setup: Mapping[str, object]) -> str:
    parts = []
    if len(s.tasks) <= 3:
        parts.append("task " + ", ".join(s.tasks))
    else:
        parts.append(f"{len(s.tasks)} tasks")
    if len(s.architectures) <= 3:
        parts.append("hidden " + ", ".join(s.architectures))
    census = setup.get("census")
    if isinstance(census, Mapping):
        parts.append("validity: " + _value_text(census))
    if s.factor == "task_complexity":
        parts.append("complexity = effective rank of the truth table (SPEC)")
    return "; ".join(parts)


def build_report(
    rows: Sequence[Mapping[str, object]],
    setup: Mapping[str, object] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Report:
    """Statistics, figures, ``report.md`` and ``report.html`` from result rows."""
    setup = dict(setup or {})
    rows = list(rows)
    groups = split_series(rows)
    stats = study_stats(rows, n_resamples=n_resamples, seed=seed)
    # The four presets first, in the order of SPEC's findings; then custom experiments.
    order = sorted(range(len(stats)), key=lambda i: (_finding_rank(stats[i].experiment), i))
    stats = [stats[i] for i in order]
    groups = [groups[i] for i in order]
    name = setup.get("title") or setup.get("name")
    title = "circuit-census study report" + (f": {name}" if name else "")

    blocks: list[Block] = [Heading(1, title)]
    blocks.append(
        Para(
            "When is a small network's behaviour explained by a unique circuit? This report "
            "tests the study's four published findings (SPEC, \"The question\") on this run's "
            "seeds. Counts are exact censuses of every admissible circuit; non-converged models "
            "are excluded from every statistic and counted below."
        )
    )

    # summary of the headline correlations
    sentences: dict[str, str] = {}
    verdicts: dict[str, Verdict] = {}
    for s in stats:
        sentences[s.name] = finding_sentence(s)
        f = published_for(s.experiment)
        if f is not None:
            verdicts[s.name] = f.judge(s.correlation(HEADLINE_MEASURE, HEADLINE_METHOD))
    blocks.append(Heading(2, "Summary", "summary"))
    summary_rows = []
    seen = {published_for(s.experiment).number for s in stats if published_for(s.experiment)}
    # Stats are in finding order; a preset that was not run gets its row in its place.
    entries: list[tuple[int, int, SeriesStats | str]] = [
        (_finding_rank(s.experiment), i, s) for i, s in enumerate(stats)
    ]
    entries += [(PUBLISHED[n].number, -1, n) for n in PRESETS if PUBLISHED[n].number not in seen]
    for _, _, s in sorted(entries, key=lambda e: (e[0], e[1])):
        if isinstance(s, str):
            f = PUBLISHED[s]
            summary_rows.append(
                (s, "–", "–", "–", "–", "–", "–", f"{f.number}. {f.text}", "not run")
            )
            continue
        c = s.correlation(HEADLINE_MEASURE, HEADLINE_METHOD)
        f = published_for(s.experiment)
        summary_rows.append(
            (
                s.name,
                factor_label(s.factor),
                f"{s.n_converged}/{s.n_models}",
                fmt_r(c.statistic),
                fmt_ci(c.ci_low, c.ci_high),
                fmt_p(c.p_value),
                strength(c.statistic) if c.defined else "–",
                f"{f.number}. {f.text}" if f else "(custom experiment: no published finding)",
                verdicts[s.name].word if s.name in verdicts else "–",
            )
        )
    blocks.append(
        Table(
            (
                "experiment",
                "factor",
                "converged / models",
                "Spearman ρ (valid circuits)",
                "95% CI",
                "p",
                "strength",
                "published finding",
                "this run",
            ),
            tuple(summary_rows),
            (False, False, True, True, True, True, False, False, False),
            caption="Headline: Spearman correlation of the number of valid circuits with the "
            "swept factor",
        )
    )
    blocks.append(
        Para(
            f"Strength: |ρ| < 0.3 weak, 0.3–0.6 moderate, ≥ 0.6 strong; significant when "
            f"p < {ALPHA}. 95% CI: paired bootstrap percentile interval "
            f"({n_resamples} resamples, seed {seed}).",
            css="note",
        )
    )

    blocks.append(Heading(2, "Setup", "setup"))
    blocks.append(_setup_table(rows, setup, stats))

    figures: dict[str, bytes] = {}
    for s, (_, _, _, group) in zip(stats, groups, strict=True):
        anchor = slug(s.name)
        heading = f"{s.name}: {factor_label(s.factor)}"
        blocks.append(Heading(2, heading, anchor))
        blocks.append(Para(f"**Found:** {sentences[s.name]}", css="finding"))
        f = published_for(s.experiment)
        if f is not None:
            text, _ = published_sentence(s, f)
            blocks.append(Para(text, css="published"))
        else:
            blocks.append(
                Para("Custom experiment: the study has no published finding to compare with.")
            )
        if s.factor == "task_complexity":
            blocks.append(Para(TASK_COMPLEXITY_DEFINITION, css="note"))
        name = f"{anchor}.png"
        figures[name] = figure_png(series_figure(s, group, _subtitle(s, setup), seed=seed))
        blocks.append(
            FigureBlock(
                name,
                f"{s.name}: valid and minimal circuit counts per converged model (points, "
                f"jittered; boxes: quartiles, whiskers 5–95%; line: median per level) and the "
                f"identifiable fraction with Wilson 95% intervals, against "
                f"{factor_label(s.factor)}.",
            )
        )
        blocks.append(_level_table(s))
        blocks.append(_correlation_table(s))
        blocks.append(_regression_para(s))
        for note in s.notes:
            blocks.append(Para(f"Note: {note}.", css="note"))

    blocks.append(Heading(2, "Definitions", "definitions"))
    multi_output = []
    if any(as_float(r.get("n_outputs")) > 1 for r in rows):
        multi_output.append(
            "Multi-output tasks: the census is taken per output (SPEC); a row's valid and "
            "minimal counts are the sums over its outputs, and it is identifiable when every "
            "output is."
        )
    blocks.append(
        Bullets(
            (
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
        )
    )

    markdown = render_markdown(blocks)
    page = render_html(blocks, figures, title)
    return Report(title, markdown, page, figures, stats, sentences)


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
