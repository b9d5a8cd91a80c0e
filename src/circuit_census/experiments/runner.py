"""Running a study: train every condition's seeds, take each model's census, store rows.

:func:`run_study` expands a sweep into conditions and, for every (condition, seed) whose
key is not yet in the store, trains the condition's seeds in fixed batches (a batch
with any missing seed is trained whole), takes the census of each missing model (per
output for a multi-output task), computes the uniqueness measures and writes one row.
The work runs through an executor (:mod:`circuit_census.experiments.executors`): this
process, local worker processes or a Dask cluster; censuses with at least
:data:`SHARD_MIN_CANDIDATES` candidates are split into the engine's shards across the
workers and combined exactly. Only this process writes to the store, one row per
transaction, as results arrive.

The work units in flight are typed: a :class:`TrainingBatch` (seeds of a condition
trained together), a :class:`CensusShard` (one shard of a :class:`ShardedCensus`) and a
:class:`RowTask` (a model's census and measures, or the measures of combined shards),
whose result is a :class:`FinishedRow`.

Rows for a multi-output task (SPEC: the census is taken per output): ``n_candidates``,
``n_valid`` and ``n_minimal`` are summed over the outputs, ``identifiable`` means every
output is identifiable, and ``measures`` lists each output's measures under ``outputs``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuit_census import __version__
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.errors import InputError
from circuit_census.experiments.executors import make_executor
from circuit_census.experiments.rows import CircuitSet, Row
from circuit_census.experiments.store import STORE_NAME, Store, canonical_json, run_key
from circuit_census.experiments.sweeps import Condition, Sweep, load_sweep, sweep_from_dict
from circuit_census.network import Network

# Censuses with at least this many candidates (per output) are sharded across workers.
SHARD_MIN_CANDIDATES = 2_000_000
# At most this many seeds of a condition are trained in one batched call.
TRAIN_CHUNK = 64
SWEEP_COPY = "sweep.toml"

# ``progress(done, total, experiment)``: rows stored of the study's total, and the
# experiment of the row just stored ("study" for the first call, before any row).
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class TrainedRun:
    """What the census needs from one trained model (small, cheap to send to a worker)."""

    seed: int
    network: Network
    x: np.ndarray  # validation inputs: the evaluation set of the census
    y: np.ndarray
    converged: bool
    final_loss: float
    val_accuracy: float
    epochs: int
    train_seconds: float  # the batched training time divided by the models in the batch


@dataclass
class FinishedRow:
    """A model's stored row and its circuits, as a worker returns them."""

    row: Row
    circuits: list[CircuitSet]


@dataclass
class StudySummary:
    out_dir: Path
    total: int  # (condition, seed) rows the sweep asks for
    skipped: int  # already in the store
    computed: int  # written by this run
    seconds: float
    executor: str

    def line(self) -> str:
        return (
            f"{self.computed} rows computed, {self.skipped} already stored "
            f"({self.total} in the study) in {self.seconds:.1f} s on {self.executor}; "
            f"results in {self.out_dir / STORE_NAME}"
        )


# --------------------------------------------------------------------------- keys


def run_description(cond: Condition, seed: int) -> dict[str, Any]:
    """Everything that determines a (condition, seed) row; its hash is the row's key.

    The full, resolved training configuration (defaults included, device excluded: the
    study's results are meant not to depend on it), the task's truth table, the census
    settings, the seed, the experiment it belongs to and the package version.
    """
    from circuit_census.tasks.boolean import make_task

    config = cond.training.as_metadata()
    config.pop("device", None)
    task = make_task(cond.task)
    return {
        "version": __version__,
        "experiment": cond.experiment,
        "factor": cond.row_factor,
        "task": task.name,
        "table": task.table.tolist(),
        "training": config,
        "census": cond.census.to_dict(),
        "seed": int(seed),
    }


def condition_keys(cond: Condition) -> dict[int, str]:
    """``seed -> key`` for every seed of a condition."""
    return {seed: run_key(run_description(cond, seed)) for seed in cond.seeds}


def training_batches(seeds: Sequence[int]) -> list[list[int]]:
    """The seeds of a condition in the batches they are trained in: fixed by the sweep
    alone, so that a resumed study trains every model with the batch-mates of an
    uninterrupted run (batched training agrees across batch sizes only to float
    rounding, and a row must not depend on when the study was interrupted)."""
    return [list(seeds[i : i + TRAIN_CHUNK]) for i in range(0, len(seeds), TRAIN_CHUNK)]


def output_sizes(cond: Condition, n_inputs: int, n_outputs: int) -> tuple[int, ...]:
    """Layer sizes of the (per-output) network a census of this condition sees."""
    return (n_inputs, *cond.hidden, 1 if n_outputs > 1 else n_outputs)


def census_size(cond: Condition) -> int:
    """Candidate circuits of one (per-output) census of a condition's models."""
    from circuit_census.circuits.space import CircuitSpace
    from circuit_census.tasks.boolean import make_task

    task = make_task(cond.task)
    sizes = output_sizes(cond, task.n_inputs, task.n_outputs)
    return CircuitSpace(sizes, cond.census.compat).count()


def census_outputs(n_outputs: int) -> list[int | None]:
    """The outputs censused one by one (``None``: the single output of the network)."""
    return [None] if n_outputs == 1 else list(range(n_outputs))


# --------------------------------------------------------------------------- tasks


def train_task(cond: Condition, seeds: list[int]) -> list[TrainedRun]:
    """Train ``seeds`` of a condition together (one batched call)."""
    from circuit_census.tasks.boolean import make_task
    from circuit_census.training.loop import train_models

    start = time.perf_counter()
    models = train_models(make_task(cond.task), seeds, cond.training)
    each = (time.perf_counter() - start) / max(1, len(models))
    return [
        TrainedRun(
            seed=int(m.seed),
            network=m.network,
            x=m.val.x,
            y=m.val.y,
            converged=bool(m.converged),
            final_loss=float(m.final_loss),
            val_accuracy=float(m.val_accuracy),
            epochs=int(m.epochs),
            train_seconds=each,
        )
        for m in models
    ]


def _census(run: TrainedRun, settings: CensusSettings, output: int | None, shard=None):
    from circuit_census.circuits.census import census

    options = RunOptions(shard=shard, max_candidates=DEFAULT_MAX_CANDIDATES)
    return census(run.network, run.x, run.y, settings, options, output=output)


def shard_task(
    run: TrainedRun, settings: CensusSettings, output: int | None, shard: tuple[int, int]
):
    """One shard of one output's census."""
    return _census(run, settings, output, shard)


def evaluate_task(cond: Condition, run: TrainedRun, key: str, valid_cap: int) -> FinishedRow:
    """The whole census of one model (every output), its measures and its row."""
    outputs = census_outputs(run.network.sizes[-1])
    results = [_census(run, cond.census, o) for o in outputs]
    return finish_task(cond, run, key, results, valid_cap)


def finish_task(
    cond: Condition, run: TrainedRun, key: str, results: list, valid_cap: int
) -> FinishedRow:
    """Measures and the stored row of a model from its per-output census results
    (combined shards or whole censuses)."""
    from circuit_census.measures.uniqueness import census_measures
    from circuit_census.tasks.boolean import make_task

    per_output, circuits = [], []
    for o, result in enumerate(results):
        measures, minimal = census_measures(result)
        d = measures.to_dict()
        d["n_candidates"] = int(result.n_candidates)
        per_output.append(d)
        circuits.append(CircuitSet(o, "minimal", int(minimal.shape[0]), minimal))
        circuits.append(CircuitSet(o, "valid", int(result.n_valid), result.valid[:valid_cap]))
    task = make_task(cond.task)
    reg = cond.regularizers
    row = Row(
        key=key,
        experiment=cond.experiment,
        factor=cond.row_factor,
        factor_value=cond.factor_value,
        factor_label=cond.factor_label,
        level=cond.level,
        task=task.name,
        task_complexity=float(task.complexity),
        n_inputs=task.n_inputs,
        n_outputs=task.n_outputs,
        hidden=",".join(str(h) for h in cond.hidden),
        width=max(cond.hidden),
        depth=len(cond.hidden),
        activation=cond.activation,
        l1=reg["l1"],
        l2=reg["l2"],
        orthogonality=reg["orthogonality"],
        dropout=reg["dropout"],
        seed=run.seed,
        converged=run.converged,
        final_loss=_finite_or_none(run.final_loss),
        val_accuracy=run.val_accuracy,
        epochs=run.epochs,
        n_candidates=sum(int(r.n_candidates) for r in results),
        n_valid=sum(int(r.n_valid) for r in results),
        n_minimal=sum(d["n_minimal"] for d in per_output),
        identifiable=all(d["identifiable"] for d in per_output),
        measures=_measures_json(per_output),
        settings=run_description(cond, run.seed),
        valid_stored=sum(min(int(r.n_valid), valid_cap) for r in results),
        train_seconds=run.train_seconds,
        census_seconds=sum(float(r.seconds) for r in results),
    )
    return FinishedRow(row, circuits)


def _measures_json(per_output: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``measures`` column: one output's measures, or the sums and each output's."""
    if len(per_output) == 1:
        return {**per_output[0], "n_outputs": 1}
    return {
        "n_outputs": len(per_output),
        "aggregation": "per-output censuses; counts summed, identifiable = every output",
        "n_candidates": sum(d["n_candidates"] for d in per_output),
        "n_valid": sum(d["n_valid"] for d in per_output),
        "n_minimal": sum(d["n_minimal"] for d in per_output),
        "identifiable": all(d["identifiable"] for d in per_output),
        "outputs": per_output,
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- work units


@dataclass(frozen=True)
class TrainingBatch:
    """Seeds of one condition trained in one call. ``missing`` maps the seeds whose rows
    are not stored yet to their keys; the others are trained for their batch-mates only."""

    condition: Condition
    seeds: tuple[int, ...]
    missing: Mapping[int, str]


@dataclass
class ShardedCensus:
    """A model whose census runs in shards: ``parts[output][i]`` fill in as they finish."""

    condition: Condition
    run: TrainedRun
    key: str
    parts: dict[int | None, list[Any]]
    left: int  # shards not finished yet

    @classmethod
    def start(cls, condition: Condition, run: TrainedRun, key: str, n: int) -> ShardedCensus:
        outputs = census_outputs(run.network.sizes[-1])
        return cls(condition, run, key, {o: [None] * n for o in outputs}, n * len(outputs))

    def add(self, output: int | None, index: int, result: Any) -> bool:
        """Record a finished shard; ``True`` when it was the last one."""
        self.parts[output][index] = result
        self.left -= 1
        return self.left == 0

    def results(self) -> list:
        """The whole census of each output, joined exactly from its shards."""
        from circuit_census.circuits.census import combine_results

        return [combine_results(parts) for parts in self.parts.values()]


@dataclass(frozen=True)
class CensusShard:
    """Shard ``index`` of one output's census of a sharded model."""

    census: ShardedCensus
    output: int | None
    index: int


@dataclass(frozen=True)
class RowTask:
    """A model's census and measures (or the measures of its combined shards): its
    result is the :class:`FinishedRow` to store."""

    key: str


Unit = TrainingBatch | CensusShard | RowTask


# --------------------------------------------------------------------------- the study


def as_sweep(sweep: Sweep | Mapping[str, Any] | str | Path) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, Mapping):
        return sweep_from_dict(sweep)
    return load_sweep(sweep)


def check_sizes(sweep: Sweep) -> None:
    """Refuse, before any training, a condition whose census is beyond the engine's limit."""
    for cond in sweep.conditions:
        count = census_size(cond)
        if count > DEFAULT_MAX_CANDIDATES:
            raise InputError(
                f"experiments.{cond.experiment}: hidden {','.join(map(str, cond.hidden))} "
                f"gives {count:,} candidate circuits per census, beyond the limit of "
                f"{DEFAULT_MAX_CANDIDATES:,}"
            )


def study_setup(sweep: Sweep, executor: str) -> dict[str, Any]:
    """What the store records about the study (read by the report)."""
    census = {canonical_json(c.census.to_dict()) for c in sweep.conditions}
    setup: dict[str, Any] = {
        "title": sweep.name,
        "description": sweep.description,
        "version": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "executor": executor,
        "experiments": [e.name for e in sweep.experiments],
        "valid_cap": sweep.valid_cap,
    }
    if len(census) == 1:
        setup["census"] = json.loads(census.pop())
    return setup


def plan(sweep: Sweep, stored: set[str]) -> tuple[deque[TrainingBatch], int, int]:
    """The training batches that hold a row not in ``stored`` (keys), in the sweep's
    order; and the study's total rows and how many of them are stored."""
    batches: deque[TrainingBatch] = deque()
    total = skipped = 0
    for cond in sweep.conditions:
        keys = condition_keys(cond)
        missing = {s: keys[s] for s in cond.seeds if keys[s] not in stored}
        total += len(cond.seeds)
        skipped += len(cond.seeds) - len(missing)
        for seeds in training_batches(cond.seeds):
            batch_missing = {s: missing[s] for s in seeds if s in missing}
            if batch_missing:
                batches.append(TrainingBatch(cond, tuple(seeds), batch_missing))
    return batches, total, skipped


def run_study(
    sweep: Sweep | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    workers: int | None = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    shard_min_candidates: int = SHARD_MIN_CANDIDATES,
) -> StudySummary:
    """Run (or resume) a study into ``out_dir``; see the module documentation.

    ``progress(done, total, experiment)``, if given, is called once at the start (the
    rows already stored as done, experiment ``"study"``) and after each stored row.
    """
    if progress is not None and not callable(progress):
        raise TypeError("progress must be None or a callable (done, total, experiment)")
    sweep = as_sweep(sweep)
    check_sizes(sweep)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a directory")
    started = time.perf_counter()
    executor = make_executor(workers, scheduler)  # bad options fail before anything is written
    ok = False
    try:
        store = Store(out_dir / STORE_NAME)
        try:
            summary = _run(sweep, out_dir, store, executor, progress, shard_min_candidates, started)
        finally:
            store.close()
        ok = True
        return summary
    finally:
        executor.close(cancel=not ok)


def _run(
    sweep: Sweep,
    out_dir: Path,
    store: Store,
    executor: Any,
    progress: ProgressCallback | None,
    shard_min: int,
    started: float,
) -> StudySummary:
    """Copy the sweep into the study directory, then compute and store its missing rows."""
    from circuit_census.files import atomic_write

    text = sweep.to_toml()
    atomic_write(out_dir / SWEEP_COPY, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    batches, total, skipped = plan(sweep, store.keys())
    describe = executor.describe()
    store.set_meta("setup", canonical_json(study_setup(sweep, describe)))
    study = _Study(sweep.valid_cap, store, executor, shard_min, progress, total, skipped)
    study.report("study")
    study.run(batches)
    seconds = time.perf_counter() - started
    return StudySummary(out_dir, total, skipped, study.computed, seconds, describe)


@dataclass
class _Study:
    """A running study: the work in flight, and the rows stored so far."""

    valid_cap: int
    store: Store
    executor: Any
    shard_min: int
    progress: ProgressCallback | None
    total: int
    skipped: int
    computed: int = 0
    pending: dict[Any, Unit] = field(default_factory=dict)  # future -> its work unit

    def run(self, batches: deque[TrainingBatch]) -> None:
        """Train the batches (a few at a time) and follow each result to its row."""
        window = 1 if self.executor.workers == 1 else 2 * self.executor.workers
        while batches or self.pending:
            while batches and len(self.pending) < window:
                batch = batches.popleft()
                self.submit(batch, train_task, batch.condition, list(batch.seeds))
            done, _ = self.executor.wait(list(self.pending))
            for future in [f for f in self.pending if f in done]:
                unit = self.pending.pop(future)
                if isinstance(unit, TrainingBatch):
                    self.trained(unit, future.result())
                elif isinstance(unit, CensusShard):
                    self.shard_done(unit, future.result())
                else:
                    self.store_row(future.result())

    def submit(self, unit: Unit, fn: Callable[..., Any], *args: Any) -> None:
        self.pending[self.executor.submit(fn, *args)] = unit

    def trained(self, batch: TrainingBatch, runs: list[TrainedRun]) -> None:
        """Start the census of each trained model whose row is missing."""
        cond = batch.condition
        n = self.executor.workers
        sharded = n > 1 and census_size(cond) >= self.shard_min
        for run in runs:
            key = batch.missing.get(run.seed)
            if key is None:  # stored; trained for its batch-mates
                continue
            if not sharded:
                self.submit(RowTask(key), evaluate_task, cond, run, key, self.valid_cap)
                continue
            census = ShardedCensus.start(cond, run, key, n)
            for output in census.parts:
                for i in range(n):
                    shard = CensusShard(census, output, i)
                    self.submit(shard, shard_task, run, cond.census, output, (i, n))

    def shard_done(self, shard: CensusShard, result: Any) -> None:
        """Record a shard; once a model's shards are all in, compute its row."""
        census = shard.census
        if census.add(shard.output, shard.index, result):
            args = (census.condition, census.run, census.key, census.results(), self.valid_cap)
            self.submit(RowTask(census.key), finish_task, *args)

    def store_row(self, finished: FinishedRow) -> None:
        self.store.put(finished.row, finished.circuits)
        self.computed += 1
        self.report(finished.row.experiment)

    def report(self, experiment: str) -> None:
        if self.progress is not None:
            self.progress(self.skipped + self.computed, self.total, experiment)
