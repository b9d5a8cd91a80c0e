"""Boolean tasks ``{0,1}^n -> {0,1}^m`` and the data sets sampled from them.

A task is named by a spec string: a gate (``xor``), an n-input family (``parity3``,
``majority5``), a truth table (``0110`` or ``tt:01101001``), or several of these on the
same inputs joined by ``+`` (``xor+and``). Corners are indexed most-significant-input
first: corner ``k`` has input ``i`` equal to bit ``n-1-i`` of ``k``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from circuit_census.errors import InputError
from circuit_census.tasks.complexity import effective_rank

# Truth tables of the sixteen two-input gates over corners (a, b) = 00, 01, 10, 11.
GATES: dict[str, str] = {
    "FALSE": "0000",
    "AND": "0001",
    "NIMP": "0010",  # a AND NOT b
    "A": "0011",
    "CNIMP": "0100",  # NOT a AND b
    "B": "0101",
    "XOR": "0110",
    "OR": "0111",
    "NOR": "1000",
    "XNOR": "1001",
    "NOT_B": "1010",
    "CIMP": "1011",  # b implies a
    "NOT_A": "1100",
    "IMP": "1101",  # a implies b
    "NAND": "1110",
    "TRUE": "1111",
}
FAMILIES = ("PARITY", "MAJORITY")
_FAMILY = re.compile(r"^(PARITY|MAJORITY)[-_:]?(\d+)$")
_TABLE = re.compile(r"^(?:TT:)?([01]+)$")


def corners(n_inputs: int) -> np.ndarray:
    """All ``2^n`` corners of ``{0,1}^n`` as a float matrix, most significant input first."""
    k = np.arange(2**n_inputs)
    shifts = np.arange(n_inputs - 1, -1, -1)
    return ((k[:, None] >> shifts[None, :]) & 1).astype(np.float64)


@dataclass(frozen=True)
class Task:
    """A Boolean function by its truth table: ``table[k, o]`` is output ``o`` at corner ``k``."""

    name: str
    table: np.ndarray  # (2^n, m) of 0/1

    @property
    def n_inputs(self) -> int:
        return int(np.log2(self.table.shape[0]))

    @property
    def n_outputs(self) -> int:
        return int(self.table.shape[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Targets for binary inputs ``x`` (rounded to the nearest corner)."""
        bits = (np.asarray(x) >= 0.5).astype(np.int64)
        k = bits @ (1 << np.arange(self.n_inputs - 1, -1, -1))
        return self.table[k].astype(np.float64)

    @property
    def complexity(self) -> float:
        """Effective rank of the truth table (docs/definitions.md, "Task complexity")."""
        return task_complexity(self.table)


def task_complexity(table: np.ndarray) -> float:
    """Task complexity: erank of the ``2^n x m`` target matrix for m > 1, else of the single
    truth table laid out as ``2^floor(n/2) x 2^ceil(n/2)``."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim == 1:
        table = table[:, None]
    if table.shape[1] > 1:
        return effective_rank(table)
    n = int(np.log2(table.shape[0]))
    return effective_rank(table[:, 0].reshape(2 ** (n // 2), 2 ** (n - n // 2)))


def _single_table(part: str, n_inputs: int | None) -> tuple[str, str]:
    key = part.strip().upper()
    if key in GATES:
        return key, GATES[key]
    fam = _FAMILY.match(key)
    if fam:
        family, n = fam.group(1), int(fam.group(2))
        if not 1 <= n <= 16:
            raise InputError(f"task {part!r}: {family.lower()} needs 1 to 16 inputs")
        ones = corners(n).sum(axis=1)
        bits = (ones % 2 == 1) if family == "PARITY" else (ones > n / 2)
        return f"{family}{n}", "".join("1" if b else "0" for b in bits)
    table = _TABLE.match(key)
    if table:
        bits = table.group(1)
        n = len(bits).bit_length() - 1
        if len(bits) < 2 or 2**n != len(bits):
            raise InputError(
                f"truth table {part!r} has {len(bits)} bits; it needs a power of two (>= 2)"
            )
        return bits, bits
    raise InputError(
        f"unknown task {part!r}: use a gate ({', '.join(g.lower() for g in GATES)}), "
        "parityN, majorityN, a truth table like 0110, or several joined by '+'"
    )


def make_task(spec: str) -> Task:
    """Parse a task spec (see module doc) into a :class:`Task`."""
    if not spec or not spec.strip():
        raise InputError("empty task name")
    parts = [p for p in spec.split("+")]
    if any(not p.strip() for p in parts):
        raise InputError(f"task {spec!r} has an empty part")
    named = [_single_table(p, None) for p in parts]
    lengths = {len(bits) for _, bits in named}
    if len(lengths) != 1:
        raise InputError(f"task {spec!r} mixes outputs with different numbers of inputs")
    table = np.array([[int(c) for c in bits] for _, bits in named], dtype=np.int64).T
    name = "+".join(n.lower() if not set(n) <= {"0", "1"} else n for n, _ in named)
    return Task(name=name, table=table)


def builtin_tasks() -> list[Task]:
    """The tasks listed by ``circuit-census tasks``: all gates, parity and majority of 2-5."""
    tasks = [make_task(g) for g in GATES]
    tasks += [make_task(f"{f}{n}") for f in FAMILIES for n in range(2, 6)]
    return tasks


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` (samples x n) and exact targets ``y`` (samples x m)."""

    x: np.ndarray
    y: np.ndarray


def corner_counts(n_corners: int, repeats: int, weights: Sequence[float] | None) -> np.ndarray:
    """Copies of each corner: ``repeats`` each, or ``repeats * n_corners`` split by ``weights``
    (largest remainder, so the total is exact)."""
    if repeats < 1:
        raise InputError("repeats must be at least 1")
    if weights is None:
        return np.full(n_corners, repeats, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_corners,) or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise InputError(f"corner weights must be {n_corners} non-negative numbers, not all zero")
    total = repeats * n_corners
    exact = w / w.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def sample(
    task: Task,
    repeats: int,
    noise: float,
    rng: np.random.Generator,
    weights: Sequence[float] | None = None,
) -> Dataset:
    """Every corner repeated (or split by ``weights``), Gaussian input noise of std ``noise``."""
    if noise < 0 or not np.isfinite(noise):
        raise InputError("noise std must be a non-negative number")
    counts = corner_counts(2**task.n_inputs, repeats, weights)
    idx = np.repeat(np.arange(2**task.n_inputs), counts)
    x = corners(task.n_inputs)[idx]
    if noise > 0:
        x = x + rng.normal(0.0, noise, size=x.shape)
    x = x.astype(np.float32).astype(np.float64)  # what a float32 model and .npz file hold
    y = task.table[idx].astype(np.float64)
    perm = rng.permutation(len(idx))
    return Dataset(x=x[perm], y=y[perm])


def train_validation(
    task: Task,
    seed: int,
    repeats: int = 50,
    val_repeats: int = 50,
    noise: float = 0.1,
    weights: Sequence[float] | None = None,
) -> tuple[Dataset, Dataset]:
    """Separate training and validation sets drawn from independent streams of ``seed``."""
    train_rng, val_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (
        sample(task, repeats, noise, train_rng, weights),
        sample(task, val_repeats, noise, val_rng, weights),
    )
