"""Sweep files: a study described in TOML, expanded into conditions.

A study has experiments; each experiment sweeps exactly one factor over a list of levels
and holds everything else fixed. Every (experiment, level) is a :class:`Condition`: one
task, one architecture, one set of training and census settings, and the seeds to train.
``docs/study.md`` documents the format with a full example.

Parsing never imports PyTorch: a bad file is reported in a fraction of a second.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from circuit_census.circuits.settings import CensusSettings
from circuit_census.errors import InputError
from circuit_census.tasks.boolean import Task, make_task
from circuit_census.training.config import TrainConfig, _check_seeds, parse_hidden

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

# [training] takes TrainConfig's fields but the architecture, the regularizers (given
# beside the task, since they may be swept) and the device (results must not depend on
# it); [census] takes CensusSettings' fields. Both are checked by those classes.
TRAINING_KEYS = tuple(
    f.name
    for f in fields(TrainConfig)
    if f.name not in ("hidden", "activation", *REGULARIZERS, "device")
)
CENSUS_KEYS = tuple(f.name for f in fields(CensusSettings))
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
DEFAULT_TASK = "xor"  # hidden, activation and strengths default to TrainConfig's
DEFAULT_SEEDS = 30
DEFAULT_VALID_CAP = 100_000
MAX_SEEDS = 1_000_000
_S = TypeVar("_S", TrainConfig, CensusSettings)


@dataclass(frozen=True)
class Condition:
    """One level of one experiment: everything that determines its models, and its seeds.

    ``training`` is the checked training configuration of its models (architecture and
    regularizer strengths included; unset fields are TrainConfig's defaults); ``census``
    the checked census settings (threshold resolved).
    """

    experiment: str
    factor: str  # the swept factor as the sweep names it (FACTORS)
    level: int  # index of the level within the experiment
    factor_value: float | None  # numeric reading of the level (see docs/study.md)
    factor_label: str  # the level as written ("0.001", "3,3", "xor+and")
    task: str  # canonical task name (make_task(...).name)
    training: TrainConfig
    census: CensusSettings
    seeds: tuple[int, ...] = ()

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.training.hidden

    @property
    def activation(self) -> str:
        return self.training.activation

    @property
    def row_factor(self) -> str:
        """The factor's name in result rows (``task`` sweeps are read as task_complexity)."""
        return ROW_FACTOR.get(self.factor, self.factor)

    @property
    def regularizers(self) -> dict[str, float]:
        return {name: float(getattr(self.training, name)) for name in REGULARIZERS}


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
    factor, levels = _factor_and_levels(exp, where)
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
    training = _settings(TrainConfig, "training", TRAINING_KEYS, defaults, exp, where)
    census = _settings(CensusSettings, "census", CENSUS_KEYS, defaults, exp, where)
    for table, at in ((exp, where), (defaults, "defaults")):
        if isinstance(table.get("seeds"), list) and "seed_start" in table:
            raise InputError(f"{at}.seed_start only applies when {at}.seeds is a count")
    seeds = _seeds(merged, where)
    task, training = _fixed(merged, factor, training, where)

    conditions = []
    seen: set[str] = set()
    for i, level in enumerate(levels):
        lw = f"{where}.levels[{i}]"
        cond = _condition(name, factor, i, level, lw, task, training, census, seeds)
        if cond.factor_label in seen:
            raise InputError(f"{lw}: level {cond.factor_label!r} appears twice in {where}.levels")
        seen.add(cond.factor_label)
        conditions.append(cond)
    return Experiment(name, factor, description, tuple(conditions))


def _factor_and_levels(exp: Mapping[str, Any], where: str) -> tuple[str, list[Any]]:
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
    return factor, levels


def _settings(
    cls: type[_S],
    table: str,
    keys: tuple[str, ...],
    defaults: Mapping[str, Any],
    exp: Mapping[str, Any],
    where: str,
) -> _S:
    """The ``[training]`` or ``[census]`` table of an experiment (its keys over those of
    ``[defaults]``) as a checked ``cls`` (TrainConfig or CensusSettings)."""
    values = {**_table(defaults.get(table, {}), f"defaults.{table}", keys)}
    values.update(_table(exp.get(table, {}), f"{where}.{table}", keys))
    return _build(cls, values, f"{where}.{table}")


def _fixed(
    merged: Mapping[str, Any], factor: str, training: TrainConfig, where: str
) -> tuple[str | None, TrainConfig]:
    """The experiment's task (``None`` when swept) and its training configuration with
    the architecture and strengths it fixes (those not given stay TrainConfig's)."""
    task = None
    if factor != "task":
        task = _task(merged.get("task", DEFAULT_TASK), f"{where}.task").name
    if factor != "width" and "hidden" in merged:
        at = f"{where}.hidden"
        training = _set(training, at, hidden=_hidden(merged["hidden"], at))
    if factor != "activation" and "activation" in merged:
        at = f"{where}.activation"
        training = _set(training, at, activation=_string(merged["activation"], at))
    for reg in REGULARIZERS:
        if reg != factor and reg in merged:
            at = f"{where}.{reg}"
            training = _set(training, at, **{reg: _number(merged[reg], at)})
    return task, training


def _condition(
    experiment: str,
    factor: str,
    index: int,
    level: Any,
    where: str,
    task: str | None,
    training: TrainConfig,
    census: CensusSettings,
    seeds: tuple[int, ...],
) -> Condition:
    """The condition of one level (at ``where``) of an experiment."""
    value: float | None
    if factor == "task":
        swept = _task(level, where)
        task, value, label = swept.name, swept.complexity, swept.name
    elif factor == "width":
        hidden = _hidden(level, where)
        training = _set(training, where, hidden=hidden)
        value, label = float(max(hidden)), ",".join(map(str, hidden))
    elif factor == "activation":
        label = _string(level, where)
        training, value = _set(training, where, activation=label), None
    else:
        value = _number(level, where)
        training, label = _set(training, where, **{factor: value}), _number_label(value)
    assert task is not None
    return Condition(experiment, factor, index, value, label, task, training, census, seeds)


_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


# --------------------------------------------------------------------------- field checks


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Prefix an :class:`InputError` raised inside with where in the sweep it arose: the
    checks are the settings' own, their messages say what is wrong."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def _build(cls: type[_S], values: Mapping[str, Any], where: str) -> _S:
    """``cls(**values)``, each value read as its field's type and checked by ``cls``
    itself. The fields are given one at a time, in the class's order, so that a refusal
    names the field that caused it (an accuracy threshold above 1 names the threshold)."""
    kinds = _field_types(cls)
    given: dict[str, Any] = {}
    built = cls()
    for name in (f.name for f in fields(cls)):
        if name in values:
            at = f"{where}.{name}"
            given[name] = _read(values[name], at, kinds[name])
            with _at(at):
                built = cls(**given)
    return built


def _set(config: TrainConfig, where: str, **change: Any) -> TrainConfig:
    """``config`` with ``change``, checked by TrainConfig."""
    with _at(where):
        return replace(config, **change)


@functools.cache
def _field_types(cls: type) -> dict[str, type]:
    """Each field's type as a sweep gives it: ``int | None`` is read as ``int``."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        if isinstance(hint, types.UnionType):
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = hint
    return out


def _read(value: Any, where: str, kind: type) -> Any:
    """A TOML value as a setting of type ``kind`` (an integer is a float's value too)."""
    if kind is int:
        return _integer(value, where)
    if kind is float:
        return _number(value, where)
    if kind is str:
        return _string(value, where)
    raise TypeError(f"a sweep cannot give a setting of type {kind}")  # pragma: no cover


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


def _task(value: Any, where: str) -> Task:
    text = _string(value, where)
    with _at(where):
        return make_task(text)


def _hidden(value: Any, where: str) -> tuple[int, ...]:
    """Hidden layer widths, ``4``, ``[3, 3]`` or ``"3,3"``, checked by ``parse_hidden``."""
    if isinstance(value, list):
        spec = ",".join(str(_integer(v, f"{where}[{j}]")) for j, v in enumerate(value))
    elif isinstance(value, str):
        spec = value
    else:
        spec = str(_integer(value, where))
    with _at(where):
        return parse_hidden(spec)


def _seeds(merged: Mapping[str, Any], where: str) -> tuple[int, ...]:
    """A count (from ``seed_start``) or a list of seeds, checked as the trainer does."""
    value = merged.get("seeds", DEFAULT_SEEDS)
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
    with _at(f"{where}.seeds"):
        return tuple(_check_seeds(seeds))


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
