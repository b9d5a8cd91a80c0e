"""Sweep files: a study described in TOML, expanded into conditions.

A study has experiments; each experiment sweeps exactly one factor over a list of levels
and holds everything else fixed. Every (experiment, level) is a :class:`Condition`: one
task, one architecture, one set of training and census settings, and the seeds to train.
``docs/study.md`` documents the format with a full example.

Parsing never imports PyTorch: a bad file is reported in a fraction of a second.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuit_census.activations import ACTIVATIONS
from circuit_census.errors import InputError
from circuit_census.tasks.boolean import make_task

if sys.version_info >= (3, 11):  # pragma: no cover - depends on the interpreter
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The factors an experiment may sweep. Regularizer strengths are training settings that are
# also study factors, so they sit beside task/hidden/activation rather than in [training].
FACTORS = ("task", "width", "activation", "l1", "l2", "orthogonality", "dropout")
# The name a row gives its factor: what its numeric ``factor_value`` measures.
ROW_FACTOR = {"task": "task_complexity"}
REGULARIZERS = ("l1", "l2", "orthogonality", "dropout")

# Training settings a sweep may give (TrainConfig's fields, less architecture, regularizers
# and device): name -> (kind, check, description of the check).
_POS = (lambda v: v > 0, "greater than 0")
_NONNEG = (lambda v: v >= 0, "at least 0")
_UNIT = (lambda v: 0 <= v <= 1, "between 0 and 1")
_POS_INT = (lambda v: v >= 1, "at least 1")
TRAINING_KEYS: dict[str, tuple[str, Any]] = {
    "output_activation": ("activation", None),
    "optimizer": ("choice", ("adam", "adamw", "sgd")),
    "lr": ("float", _POS),
    "epochs": ("int", _POS_INT),
    "batch_size": ("int", _POS_INT),
    "loss_target": ("float", _NONNEG),
    "patience": ("int", _POS_INT),
    "weight_decay": ("float", _NONNEG),
    "momentum": ("float", (lambda v: 0 <= v < 1, "at least 0 and below 1")),
    "min_accuracy": ("float", _UNIT),
    "repeats": ("int", _POS_INT),
    "val_repeats": ("int", _POS_INT),
    "noise": ("float", _NONNEG),
}
CENSUS_KEYS: dict[str, tuple[str, Any]] = {
    "ablation": ("choice", ("zero", "mean")),
    "criterion": ("choice", ("mse", "accuracy")),
    "threshold": ("float", _POS),
    "compat": ("choice", ("meloux2025",)),
}
DEFAULT_THRESHOLD = {"mse": 0.05, "accuracy": 0.99}  # SPEC, "Validity"
# Keys allowed in an experiment table and in [defaults] (the latter without factor/levels).
FIXED_KEYS = (
    "task",
    "hidden",
    "activation",
    *REGULARIZERS,
    "seeds",
    "seed_start",
    "training",
    "census",
)
EXPERIMENT_KEYS = ("description", "factor", "levels", *FIXED_KEYS)
STUDY_KEYS = ("name", "description", "valid_cap")
TOP_KEYS = ("study", "defaults", "experiments")
DEFAULT_VALID_CAP = 100_000
MAX_SEEDS = 1_000_000


@dataclass(frozen=True)
class Condition:
    """One level of one experiment: everything that determines its models, and its seeds.

    ``training`` holds TrainConfig's settings other than ``hidden`` and ``activation``
    (including the regularizer strengths), as given or defaulted by the sweep; ``census``
    holds ablation, criterion, threshold (resolved) and compat.
    """

    experiment: str
    factor: str  # the swept factor as the sweep names it (FACTORS)
    level: int  # index of the level within the experiment
    factor_value: float | None  # numeric reading of the level (see docs/study.md)
    factor_label: str  # the level as written ("0.001", "3,3", "xor+and")
    task: str  # canonical task name (make_task(...).name)
    hidden: tuple[int, ...]
    activation: str
    training: dict[str, Any] = field(hash=False)
    census: dict[str, Any] = field(hash=False)
    seeds: tuple[int, ...] = ()

    @property
    def row_factor(self) -> str:
        """The factor's name in result rows (``task`` sweeps are read as task_complexity)."""
        return ROW_FACTOR.get(self.factor, self.factor)

    @property
    def regularizers(self) -> dict[str, float]:
        return {name: float(self.training.get(name, 0.0)) for name in REGULARIZERS}


@dataclass(frozen=True)
class Experiment:
    name: str
    factor: str
    description: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file. ``raw`` is the validated TOML document (for dumping it back)."""

    name: str
    description: str
    experiments: tuple[Experiment, ...]
    valid_cap: int
    raw: dict[str, Any] = field(hash=False, repr=False)

    @property
    def conditions(self) -> list[Condition]:
        return [c for e in self.experiments for c in e.conditions]

    def n_runs(self) -> int:
        """Number of (condition, seed) rows the study makes."""
        return sum(len(c.seeds) for c in self.conditions)

    def to_toml(self) -> str:
        return dump_toml(self.raw)


# --------------------------------------------------------------------------- loading


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; :class:`InputError` names the offending field."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep file {str(path)!r} does not exist or is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sweep file {path.name}: {exc}") from None
    return parse_sweep(text, source=path.name)


def parse_sweep(text: str, source: str = "sweep") -> Sweep:
    """Parse TOML text into a :class:`Sweep`."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source} is not valid TOML: {exc}") from None
    return sweep_from_dict(doc, source=source)


def sweep_from_dict(doc: Mapping[str, Any], source: str = "sweep") -> Sweep:
    """Validate a sweep given as nested dicts (the TOML document) and expand it."""
    _table(doc, source, TOP_KEYS)
    study = _table(doc.get("study", {}), "study", STUDY_KEYS)
    name = _string(study.get("name", "study"), "study.name")
    description = _string(study.get("description", ""), "study.description")
    valid_cap = _integer(study.get("valid_cap", DEFAULT_VALID_CAP), "study.valid_cap")
    if valid_cap < 0:
        raise InputError("study.valid_cap must be at least 0")
    defaults = _table(doc.get("defaults", {}), "defaults", FIXED_KEYS)
    exps = doc.get("experiments")
    if exps is None:
        raise InputError(f"{source} has no [experiments.NAME] table: a study needs one")
    if not isinstance(exps, Mapping) or not exps:
        raise InputError("experiments must be a table of [experiments.NAME] tables, not empty")
    experiments = tuple(_experiment(str(exp_name), exp, defaults) for exp_name, exp in exps.items())
    raw = json.loads(json.dumps(doc))  # plain, detached copy
    return Sweep(name, description, experiments, valid_cap, raw)


def _experiment(name: str, exp: Any, defaults: Mapping[str, Any]) -> Experiment:
    where = f"experiments.{name}"
    if not name or any(c not in _NAME_CHARS for c in name):
        raise InputError(f"{where}: an experiment name uses letters, digits, '-' and '_' only")
    exp = _table(exp, where, EXPERIMENT_KEYS)
    if "factor" not in exp:
        raise InputError(f"{where}.factor is missing: name the swept factor ({', '.join(FACTORS)})")
    factor = _string(exp["factor"], f"{where}.factor")
    if factor not in FACTORS:
        raise InputError(
            f"{where}.factor: unknown factor {factor!r}; choose one of {', '.join(FACTORS)}"
        )
    if "levels" not in exp:
        raise InputError(f"{where}.levels is missing: list the values of {factor!r} to sweep")
    levels = exp["levels"]
    if not isinstance(levels, list):
        raise InputError(f"{where}.levels must be a list, got {_kind(levels)}")
    if not levels:
        raise InputError(f"{where}.levels is empty: give at least one value of {factor!r}")
    own = "hidden" if factor == "width" else factor
    if own in exp:
        raise InputError(
            f"{where}.{own}: {factor!r} is the swept factor; give its values in {where}.levels only"
        )
    description = _string(exp.get("description", ""), f"{where}.description")

    # Merge [defaults] under the experiment (sub-tables key by key). The swept factor's
    # default is ignored: levels replace it.
    merged: dict[str, Any] = {k: v for k, v in defaults.items() if k not in ("training", "census")}
    merged.update({k: v for k, v in exp.items() if k not in ("training", "census")})
    merged.pop(own, None)
    training_raw = {
        **_table(defaults.get("training", {}), "defaults.training", tuple(TRAINING_KEYS))
    }
    training_raw.update(_table(exp.get("training", {}), f"{where}.training", tuple(TRAINING_KEYS)))
    census_raw = {**_table(defaults.get("census", {}), "defaults.census", tuple(CENSUS_KEYS))}
    census_raw.update(_table(exp.get("census", {}), f"{where}.census", tuple(CENSUS_KEYS)))

    training = {
        k: _setting(v, f"{where}.training.{k}", TRAINING_KEYS[k]) for k, v in training_raw.items()
    }
    census = {k: _setting(v, f"{where}.census.{k}", CENSUS_KEYS[k]) for k, v in census_raw.items()}
    census.setdefault("ablation", "zero")
    census.setdefault("criterion", "mse")
    census.setdefault("threshold", DEFAULT_THRESHOLD[census["criterion"]])
    census.setdefault("compat", None)
    if census["criterion"] == "accuracy" and census["threshold"] > 1:
        raise InputError(f"{where}.census.threshold: an accuracy threshold is between 0 and 1")

    for table, at in ((exp, where), (defaults, "defaults")):
        if isinstance(table.get("seeds"), list) and "seed_start" in table:
            raise InputError(f"{at}.seed_start only applies when {at}.seeds is a count")
    seeds = _seeds(merged, where)

    fixed: dict[str, Any] = {
        "task": _task(merged.get("task", "xor"), f"{where}.task") if factor != "task" else None,
        "hidden": _hidden(merged.get("hidden", [4]), f"{where}.hidden")
        if factor != "width"
        else None,
        "activation": _activation(merged.get("activation", "relu"), f"{where}.activation")
        if factor != "activation"
        else None,
    }
    for reg in REGULARIZERS:
        if reg != factor:
            fixed[reg] = _strength(merged.get(reg, 0.0), f"{where}.{reg}", reg)

    conditions = []
    seen: set[str] = set()
    for i, level in enumerate(levels):
        lw = f"{where}.levels[{i}]"
        values = dict(fixed)
        if factor == "task":
            task = _task(level, lw)
            values["task"] = task.name
            value, label = task.complexity, task.name
        elif factor == "width":
            hidden = _hidden(level, lw)
            values["hidden"] = hidden
            value, label = float(max(hidden)), ",".join(map(str, hidden))
        elif factor == "activation":
            values["activation"] = _activation(level, lw)
            value, label = None, values["activation"]
        else:
            values[factor] = _strength(level, lw, factor)
            value, label = values[factor], _number_label(values[factor])
        if label in seen:
            raise InputError(f"{lw}: level {label!r} appears twice in {where}.levels")
        seen.add(label)
        task_name = values["task"] if factor == "task" else values["task"].name
        conditions.append(
            Condition(
                experiment=name,
                factor=factor,
                level=i,
                factor_value=value,
                factor_label=label,
                task=task_name,
                hidden=values["hidden"],
                activation=values["activation"],
                training={**training, **{r: values[r] for r in REGULARIZERS}},
                census=dict(census),
                seeds=seeds,
            )
        )
    return Experiment(name, factor, description, tuple(conditions))


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


# --------------------------------------------------------------------------- field checks


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _table(value: Any, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a table, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            raise InputError(
                f"{where}.{key}: unknown key {key!r}; allowed here: {', '.join(allowed)}"
            )
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, got {_kind(value)}")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where} must be an integer, got {_kind(value)}")
    return int(value)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} must be a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise InputError(f"{where} must be a finite number")
    return float(value)


def _setting(value: Any, where: str, spec: tuple[str, Any]) -> Any:
    kind, check = spec
    if kind == "activation":
        return _activation(value, where)
    if kind == "choice":
        text = _string(value, where)
        if text not in check:
            raise InputError(f"{where}: unknown value {text!r}; choose one of {', '.join(check)}")
        return text
    number = _integer(value, where) if kind == "int" else _number(value, where)
    ok, text = check
    if not ok(number):
        raise InputError(f"{where} must be {text}, got {number}")
    return number


def _strength(value: Any, where: str, name: str) -> float:
    number = _number(value, where)
    if number < 0:
        raise InputError(f"{where}: a {name} strength cannot be negative, got {number}")
    if name == "dropout" and number >= 1:
        raise InputError(f"{where}: dropout is a probability below 1, got {number}")
    return number


def _task(value: Any, where: str):
    text = _string(value, where)
    try:
        return make_task(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _activation(value: Any, where: str) -> str:
    text = _string(value, where)
    if text not in ACTIVATIONS:
        raise InputError(
            f"{where}: unknown activation {text!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return text


def _hidden(value: Any, where: str) -> tuple[int, ...]:
    """A hidden architecture: ``4``, ``[3, 3]`` or ``"3,3"``."""
    if isinstance(value, str):
        try:
            sizes = [int(p) for p in value.split(",")]
        except ValueError:
            raise InputError(
                f'{where}: hidden sizes {value!r} must be integers like "4" or "3,3"'
            ) from None
    elif isinstance(value, list):
        sizes = [_integer(v, f"{where}[{j}]") for j, v in enumerate(value)]
    else:
        sizes = [_integer(value, where)]
    if not sizes:
        raise InputError(f"{where}: give at least one hidden layer size")
    if any(s < 1 for s in sizes):
        raise InputError(f"{where}: hidden layer sizes must be at least 1, got {sizes}")
    return tuple(sizes)


def _seeds(merged: Mapping[str, Any], where: str) -> tuple[int, ...]:
    value = merged.get("seeds", 30)
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}.seeds is empty: give a count or a list of seeds")
        seeds = [_integer(s, f"{where}.seeds[{j}]") for j, s in enumerate(value)]
        if len(set(seeds)) != len(seeds):
            raise InputError(f"{where}.seeds lists a seed twice")
    else:
        count = _integer(value, f"{where}.seeds")
        start = _integer(merged.get("seed_start", 0), f"{where}.seed_start")
        if not 1 <= count <= MAX_SEEDS:
            raise InputError(f"{where}.seeds must be between 1 and {MAX_SEEDS}, got {count}")
        seeds = list(range(start, start + count))
    if any(s < 0 for s in seeds):
        raise InputError(f"{where}.seeds must not be negative")
    return tuple(seeds)


def _number_label(x: float) -> str:
    return repr(float(x))


# --------------------------------------------------------------------------- TOML output


def dump_toml(doc: Mapping[str, Any]) -> str:
    """Write a sweep document (nested dicts of strings, numbers, booleans and lists) as
    TOML that :func:`parse_sweep` reads back to the same document."""
    lines: list[str] = []
    _dump_table(doc, [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _dump_table(value, [*path, key], lines)


def _key(key: str) -> str:
    return key if key and all(c in _NAME_CHARS for c in key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML output of non-finite numbers is not supported")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
