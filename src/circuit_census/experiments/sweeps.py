"""Sweep files: a study described in TOML, expanded into conditions.

A study has experiments; each experiment sweeps exactly one factor over a list of levels
and holds everything else fixed. Every (experiment, level) is a :class:`Condition`: one
task, one architecture, one set of training and census settings, and the seeds to train.
``docs/study.md`` documents the format with a full example.

Reading TOML and checking its values is :mod:`circuit_census.experiments.sweepfile`;
parsing never imports PyTorch: a bad file is reported in a fraction of a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from circuit_census.circuits.settings import CensusSettings
from circuit_census.errors import InputError
from circuit_census.experiments.sweepfile import (
    NAME_CHARS,
    changed,
    dump_toml,
    kind_of,
    number_label,
    read_hidden,
    read_integer,
    read_number,
    read_seeds,
    read_settings,
    read_string,
    read_table,
    read_task,
    read_toml,
)
from circuit_census.training.config import TrainConfig

# The factors an experiment may sweep. Regularizer strengths are training settings that are
# also study factors, so they sit beside task/hidden/activation rather than in [training].
FACTORS = ("task", "width", "activation", "l1", "l2", "orthogonality", "dropout", "progress")
# Training progress levels (a model's checkpoint at this fraction of its own run) are taken
# from this many evenly spaced checkpoints, so a level is a multiple of 1 / this.
PROGRESS_STEPS = 100
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
EXPERIMENT_KEYS = (
    "description",
    "factor",
    "levels",
    "finding",
    "discovery",
    "explanations",
    "estimate",
    *FIXED_KEYS,
)
# The findings an experiment may declare that it tests (analysis.findings.FINDINGS).
FINDING_NUMBERS = (1, 2, 3, 4)
STUDY_KEYS = ("name", "description", "valid_cap")
TOP_KEYS = ("study", "defaults", "experiments")
DEFAULT_TASK = "xor"  # hidden, activation and strengths default to TrainConfig's
DEFAULT_VALID_CAP = 100_000


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
    progress: float | None = None  # a checkpoint's place in training (factor "progress")
    discovery_seeds: int = 0  # > 0: run every discovery method with this many seeds
    explanations: bool = False  # count interpretations, formulas and mappings too
    # > 0: a census past the exact limit is estimated from this many uniform draws
    estimate_draws: int = 0

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
    finding: int | None = None  # the study finding it declares it tests, if any


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
    return sweep_from_dict(read_toml(text, source), source=source)


def sweep_from_dict(doc: Mapping[str, Any], source: str = "sweep") -> Sweep:
    """Validate a sweep given as nested dicts (the TOML document) and expand it."""
    read_table(doc, source, TOP_KEYS)
    study = read_table(doc.get("study", {}), "study", STUDY_KEYS)
    name = read_string(study.get("name", "study"), "study.name")
    description = read_string(study.get("description", ""), "study.description")
    valid_cap = read_integer(study.get("valid_cap", DEFAULT_VALID_CAP), "study.valid_cap")
    if valid_cap < 0:
        raise InputError("study.valid_cap must be at least 0")
    defaults = read_table(doc.get("defaults", {}), "defaults", FIXED_KEYS)
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
    if not name or any(c not in NAME_CHARS for c in name):
        raise InputError(f"{where}: an experiment name uses letters, digits, '-' and '_' only")
    exp = read_table(exp, where, EXPERIMENT_KEYS)
    factor, levels = _factor_and_levels(exp, where)
    own = "hidden" if factor == "width" else factor
    if own in exp:
        raise InputError(
            f"{where}.{own}: {factor!r} is the swept factor; give its values in {where}.levels only"
        )
    description = read_string(exp.get("description", ""), f"{where}.description")
    finding = _finding(exp, where)
    discovery = read_integer(exp.get("discovery", 0), f"{where}.discovery")
    if discovery < 0:
        raise InputError(f"{where}.discovery: seeds of each discovery method, at least 0")
    explanations = exp.get("explanations", False)
    if not isinstance(explanations, bool):
        raise InputError(f"{where}.explanations must be true or false, got {kind_of(explanations)}")
    estimate = read_integer(exp.get("estimate", 0), f"{where}.estimate")
    if estimate < 0:
        raise InputError(
            f"{where}.estimate: circuits drawn per estimated census, a positive integer "
            "(0: never estimate)"
        )

    # Merge [defaults] under the experiment (sub-tables key by key). The swept factor's
    # default is ignored: levels replace it.
    merged: dict[str, Any] = {k: v for k, v in defaults.items() if k not in ("training", "census")}
    merged.update({k: v for k, v in exp.items() if k not in ("training", "census")})
    merged.pop(own, None)
    training = read_settings(TrainConfig, "training", TRAINING_KEYS, defaults, exp, where)
    census = read_settings(CensusSettings, "census", CENSUS_KEYS, defaults, exp, where)
    for table, at in ((exp, where), (defaults, "defaults")):
        if isinstance(table.get("seeds"), list) and "seed_start" in table:
            raise InputError(f"{at}.seed_start only applies when {at}.seeds is a count")
    seeds = read_seeds(merged, where)
    task, training = _fixed(merged, factor, training, where)

    conditions = []
    seen: set[str] = set()
    for i, level in enumerate(levels):
        lw = f"{where}.levels[{i}]"
        cond = _condition(name, factor, i, level, lw, task, training, census, seeds)
        cond = replace(
            cond, discovery_seeds=discovery, explanations=explanations, estimate_draws=estimate
        )
        if explanations and read_task(cond.task, lw).n_outputs > 1:
            raise InputError(f"{lw}: explanations take one-output tasks; {cond.task} has more")
        if cond.factor_label in seen:
            raise InputError(f"{lw}: level {cond.factor_label!r} appears twice in {where}.levels")
        seen.add(cond.factor_label)
        conditions.append(cond)
    return Experiment(name, factor, description, tuple(conditions), finding)


def _finding(exp: Mapping[str, Any], where: str) -> int | None:
    """The finding an experiment declares (``finding = N``), or None."""
    if "finding" not in exp:
        return None
    number = read_integer(exp["finding"], f"{where}.finding")
    if number not in FINDING_NUMBERS:
        raise InputError(
            f"{where}.finding: no finding {number}; the study's findings are numbered "
            f"{', '.join(map(str, FINDING_NUMBERS))} (docs/definitions.md, Findings)"
        )
    return number


def _factor_and_levels(exp: Mapping[str, Any], where: str) -> tuple[str, list[Any]]:
    if "factor" not in exp:
        raise InputError(f"{where}.factor is missing: name the swept factor ({', '.join(FACTORS)})")
    factor = read_string(exp["factor"], f"{where}.factor")
    if factor not in FACTORS:
        raise InputError(
            f"{where}.factor: unknown factor {factor!r}; choose one of {', '.join(FACTORS)}"
        )
    if "levels" not in exp:
        raise InputError(f"{where}.levels is missing: list the values of {factor!r} to sweep")
    levels = exp["levels"]
    if not isinstance(levels, list):
        raise InputError(f"{where}.levels must be a list, got {kind_of(levels)}")
    if not levels:
        raise InputError(f"{where}.levels is empty: give at least one value of {factor!r}")
    return factor, levels


def _fixed(
    merged: Mapping[str, Any], factor: str, training: TrainConfig, where: str
) -> tuple[str | None, TrainConfig]:
    """The experiment's task (``None`` when swept) and its training configuration with
    the architecture and strengths it fixes (those not given stay TrainConfig's)."""
    task = None
    if factor != "task":
        task = read_task(merged.get("task", DEFAULT_TASK), f"{where}.task").name
    if factor != "width" and "hidden" in merged:
        at = f"{where}.hidden"
        training = changed(training, at, hidden=read_hidden(merged["hidden"], at))
    if factor != "activation" and "activation" in merged:
        at = f"{where}.activation"
        training = changed(training, at, activation=read_string(merged["activation"], at))
    for reg in REGULARIZERS:
        if reg != factor and reg in merged:
            at = f"{where}.{reg}"
            training = changed(training, at, **{reg: read_number(merged[reg], at)})
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
        swept = read_task(level, where)
        task, value, label = swept.name, swept.complexity, swept.name
    elif factor == "width":
        hidden = read_hidden(level, where)
        training = changed(training, where, hidden=hidden)
        value, label = float(max(hidden)), ",".join(map(str, hidden))
    elif factor == "activation":
        label = read_string(level, where)
        training, value = changed(training, where, activation=label), None
    elif factor == "progress":
        value = read_number(level, where)
        steps = value * PROGRESS_STEPS
        if not 0.0 <= value <= 1.0 or abs(steps - round(steps)) > 1e-9:
            raise InputError(
                f"{where}: training progress is a fraction from 0 to 1 in steps of "
                f"{1 / PROGRESS_STEPS:g}, got {value:g}"
            )
        label = number_label(value)
    else:
        value = read_number(level, where)
        training, label = changed(training, where, **{factor: value}), number_label(value)
    assert task is not None
    progress = value if factor == "progress" else None
    return Condition(
        experiment, factor, index, value, label, task, training, census, seeds, progress
    )
