"""Sweep files as TOML: reading a document and checking its values (each refusal names
the field at fault), and writing a document back as TOML (:func:`dump_toml`).

Nothing here imports PyTorch: a bad file is reported in a fraction of a second.
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
from dataclasses import fields, replace
from typing import Any, TypeVar

from circuit_census.circuits.settings import CensusSettings
from circuit_census.errors import InputError
from circuit_census.tasks.boolean import Task, make_task
from circuit_census.training.config import TrainConfig, _check_seeds, parse_hidden

if sys.version_info >= (3, 11):  # pragma: no cover - depends on the interpreter
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_SEEDS = 30
MAX_SEEDS = 1_000_000
# Letters of an experiment name, and of a TOML key written bare.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_S = TypeVar("_S", TrainConfig, CensusSettings)


def read_toml(text: str, source: str) -> dict[str, Any]:
    """The document of TOML text (``source`` names it in the error)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source} is not valid TOML: {exc}") from None


# --------------------------------------------------------------------------- field checks


@contextmanager
def _located(where: str) -> Iterator[None]:
    """Prefix an :class:`InputError` raised inside with where in the sweep it arose: the
    checks are the settings' own, their messages say what is wrong."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def read_settings(
    cls: type[_S],
    table: str,
    keys: tuple[str, ...],
    defaults: Mapping[str, Any],
    exp: Mapping[str, Any],
    where: str,
) -> _S:
    """The ``[training]`` or ``[census]`` table of an experiment (its keys over those of
    ``[defaults]``) as a checked ``cls`` (TrainConfig or CensusSettings)."""
    values = {**read_table(defaults.get(table, {}), f"defaults.{table}", keys)}
    values.update(read_table(exp.get(table, {}), f"{where}.{table}", keys))
    return _build_settings(cls, values, f"{where}.{table}")


def _build_settings(cls: type[_S], values: Mapping[str, Any], where: str) -> _S:
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
            with _located(at):
                built = cls(**given)
    return built


def changed(config: TrainConfig, where: str, **change: Any) -> TrainConfig:
    """``config`` with ``change``, checked by TrainConfig."""
    with _located(where):
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
        return read_integer(value, where)
    if kind is float:
        return read_number(value, where)
    if kind is str:
        return read_string(value, where)
    raise TypeError(f"a sweep cannot give a setting of type {kind}")  # pragma: no cover


def kind_of(value: Any) -> str:
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


def read_table(value: Any, where: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a table, got {kind_of(value)}")
    for key in value:
        if key not in allowed:
            raise InputError(
                f"{where}.{key}: unknown key {key!r}; allowed here: {', '.join(allowed)}"
            )
    return value


def read_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, got {kind_of(value)}")
    return value


def read_integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where} must be an integer, got {kind_of(value)}")
    return int(value)


def read_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} must be a number, got {kind_of(value)}")
    if not math.isfinite(value):
        raise InputError(f"{where} must be a finite number")
    return float(value)


def read_task(value: Any, where: str) -> Task:
    text = read_string(value, where)
    with _located(where):
        return make_task(text)


def read_hidden(value: Any, where: str) -> tuple[int, ...]:
    """Hidden layer widths, ``4``, ``[3, 3]`` or ``"3,3"``, checked by ``parse_hidden``."""
    if isinstance(value, list):
        spec = ",".join(str(read_integer(v, f"{where}[{j}]")) for j, v in enumerate(value))
    elif isinstance(value, str):
        spec = value
    else:
        spec = str(read_integer(value, where))
    with _located(where):
        return parse_hidden(spec)


def read_seeds(merged: Mapping[str, Any], where: str) -> tuple[int, ...]:
    """A count (from ``seed_start``) or a list of seeds, checked as the trainer does."""
    value = merged.get("seeds", DEFAULT_SEEDS)
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}.seeds is empty: give a count or a list of seeds")
        seeds = [read_integer(s, f"{where}.seeds[{j}]") for j, s in enumerate(value)]
        if len(set(seeds)) != len(seeds):
            raise InputError(f"{where}.seeds lists a seed twice")
    else:
        count = read_integer(value, f"{where}.seeds")
        start = read_integer(merged.get("seed_start", 0), f"{where}.seed_start")
        if not 1 <= count <= MAX_SEEDS:
            raise InputError(f"{where}.seeds must be between 1 and {MAX_SEEDS}, got {count}")
        seeds = list(range(start, start + count))
    with _located(f"{where}.seeds"):
        return tuple(_check_seeds(seeds))


def number_label(x: float) -> str:
    return repr(float(x))


# --------------------------------------------------------------------------- TOML output


def dump_toml(doc: Mapping[str, Any]) -> str:
    """Write a sweep document (nested dicts of strings, numbers, booleans and lists) as
    TOML that :func:`~circuit_census.experiments.sweeps.parse_sweep` reads back to the
    same document."""
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
    return key if key and all(c in NAME_CHARS for c in key) else json.dumps(key)


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
