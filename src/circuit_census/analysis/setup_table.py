"""The report's Setup table: what was trained, on which tasks, levels and seeds, with which
settings, compute time and software, gathered from the result rows and the study's setup.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from collections.abc import Mapping, Sequence

from circuit_census.analysis.document import Table
from circuit_census.analysis.formatting import fmt_num
from circuit_census.analysis.rows import (
    architecture_of,
    as_float,
    is_estimated,
    is_included,
    natural_key,
)
from circuit_census.analysis.series import SeriesStats
from circuit_census.analysis.study_figures import factor_label

Rows = Sequence[Mapping[str, object]]
Entry = tuple[str, str]

# Settings that are study factors: the levels say them, so the settings leave them out.
_FACTOR_SETTINGS = {"l1", "l2", "orthogonality", "dropout", "hidden", "activation", "task"}


def setup_table(rows: Rows, setup: Mapping[str, object], stats: Sequence[SeriesStats]) -> Table:
    """A key/value table (no header row) describing how the study was run."""
    entries = [
        *_model_entries(rows),
        *_level_entries(stats),
        *_training_entries(rows),
        *_settings_entries(rows, setup),
        ("Software", _software(setup)),
        ("Date", str(setup.get("date") or _dt.datetime.now().strftime("%Y-%m-%d %H:%M"))),
    ]
    return Table(("", ""), tuple(entries), (False, False))


def _model_entries(rows: Rows) -> list[Entry]:
    """Models trained and converged, tasks with their complexity, architectures, seeds."""
    n = len(rows)
    n_used = sum(1 for r in rows if is_included(r))
    n_estimated = sum(1 for r in rows if is_estimated(r))
    tasks: dict[str, float] = {}
    for r in rows:
        if r.get("task") is not None:
            tasks[str(r["task"])] = as_float(r.get("task_complexity"))
    task_text = ", ".join(
        f"{t} ({fmt_num(c)})" if not math.isnan(c) else t
        for t, c in sorted(tasks.items(), key=lambda tc: (tc[1], tc[0]))
    )
    archs = sorted({architecture_of(r) for r in rows}, key=natural_key)
    seeds = sorted({int(s) for r in rows if (s := r.get("seed")) is not None})
    return [
        ("Models", _models_text(n, n_used, n_estimated)),
        ("Tasks (complexity)", task_text or "–"),
        ("Hidden layer sizes, activation", ", ".join(archs) or "–"),
        ("Seeds", _seed_text(seeds)),
    ]


def _models_text(n: int, n_used: int, n_estimated: int) -> str:
    text = f"{n} trained; {n_used} converged and in the statistics"
    if n_estimated:
        text += f"; {n_estimated} estimated, reported apart"
    return text + f"; {n - n_used - n_estimated} excluded"


def _level_entries(stats: Sequence[SeriesStats]) -> list[Entry]:
    """Each series' levels of its factor and how many seeds each level has."""
    entries = []
    for s in stats:
        levels = ", ".join(lv.label for lv in s.levels)
        per = sorted({lv.n_models for lv in s.levels})
        per_text = str(per[0]) if len(per) == 1 else f"{per[0]}–{per[-1]}"
        entries.append(
            (f"Levels: {s.name}", f"{factor_label(s.factor)} ∈ {{{levels}}}; {per_text} seeds each")
        )
    return entries


def _training_entries(rows: Rows) -> list[Entry]:
    """L2, dropout and epochs (a value or a range) and the compute time summed over rows."""
    entries = []
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
    return entries


def _settings_entries(rows: Rows, setup: Mapping[str, object]) -> list[Entry]:
    """The rows' settings sections the setup does not give, then the setup's own entries."""
    entries = []
    for section, values in _settings_of(rows).items():
        if section not in setup:
            entries.append((section.replace("_", " ").capitalize(), values))
    for key, value in setup.items():
        if key in {"title", "name", "date", "version"}:
            continue
        entries.append((key.replace("_", " ").capitalize(), value_text(value)))
    return entries


def _settings_of(rows: Rows) -> dict[str, str]:
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
                        section.setdefault(str(k), set()).add(value_text(v))
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


def value_text(value: object) -> str:
    """A setting's value in words: mappings as ``k = v, ...``, sequences comma-separated;
    an unset value (None) as "none"."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {value_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, float):
        return fmt_num(value)
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
