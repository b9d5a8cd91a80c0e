"""Running a study: train every condition's seeds, take each model's census, store rows.

:func:`run_study` expands a sweep into conditions and, for every (condition, seed) whose
key is not yet in the store, trains the condition's seeds in fixed batches (a batch
with any missing seed is trained whole), takes the census of each missing model (per
output for a multi-output task), computes the uniqueness measures and writes one row.
The work runs through an executor (:mod:`circuit_census.experiments.executors`): this
process, local worker processes or a Dask cluster; censuses with at least
:data:`SHARD_MIN_CANDIDATES` candidates are split into the engine's shards across the
workers and combined exactly. Only this process writes to the store, one row per
transaction, as results arrive. What the workers compute, and the rows they return, is
in :mod:`circuit_census.experiments.work`.

The work units in flight are typed: a :class:`TrainingBatch` (seeds of a condition
trained together), a :class:`CensusShard` (one shard of a :class:`ShardedCensus`) and a
:class:`RowTask` (a model's census and measures, or the measures of combined shards),
whose result is a :class:`~circuit_census.experiments.work.FinishedRow`.

One run at a time: :func:`run_study` holds the study directory's lock
(:class:`~circuit_census.experiments.store.StudyLock`) while it runs, and a second run
on the same directory is refused at once (:class:`~circuit_census.experiments.store.
StudyBusy`). Interrupted (Ctrl-C, SIGTERM, an error), it drops the work in flight, stops
its workers and closes the store: every row stored so far is whole and kept, and
:func:`study_status` says how many; running the study again resumes it. A task that
fails because its worker died is resubmitted as the executor allows (``resubmit_lost``:
once for local processes; never on Dask, whose scheduler has rerun it already), then
the study stops with :class:`~circuit_census.experiments.executors.WorkerLost`. A row is
stored when its result arrives, once (its key is the store's primary key in any case).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuit_census import __version__
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES
from circuit_census.errors import InputError
from circuit_census.experiments.executors import WorkerLost, make_executor
from circuit_census.experiments.store import STORE_NAME, Store, StudyLock, canonical_json
from circuit_census.experiments.sweeps import Condition, Sweep, load_sweep, sweep_from_dict
from circuit_census.experiments.work import (
    FinishedRow,
    TrainedRun,
    census_outputs,
    census_size,
    condition_keys,
    evaluate_task,
    finish_task,
    is_estimated,
    shard_task,
    train_task,
)

# Censuses with at least this many candidates (per output) are sharded across workers.
SHARD_MIN_CANDIDATES = 2_000_000
# At most this many seeds of a condition are trained in one batched call.
TRAIN_CHUNK = 64
SWEEP_COPY = "sweep.toml"

# ``progress(done, total, experiment)``: rows stored of the study's total, and the
# experiment of the row just stored ("study" for the first call, before any row).
ProgressCallback = Callable[[int, int, str], None]


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


def training_batches(seeds: Sequence[int]) -> list[list[int]]:
    """The seeds of a condition in the batches they are trained in: fixed by the sweep
    alone, so that a resumed study trains every model with the batch-mates of an
    uninterrupted run (batched training agrees across batch sizes only to float
    rounding, and a row must not depend on when the study was interrupted)."""
    return [list(seeds[i : i + TRAIN_CHUNK]) for i in range(0, len(seeds), TRAIN_CHUNK)]


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


@dataclass(frozen=True)
class _Job:
    """A submitted work unit and the call that computes it (to resubmit it)."""

    unit: Unit
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    retries: int = 0

    def describe(self) -> str:
        unit = self.unit
        if isinstance(unit, TrainingBatch):
            c, seeds = unit.condition, unit.seeds
            return f"the training of {c.experiment} {c.factor_label}, seeds {seeds[0]}-{seeds[-1]}"
        if isinstance(unit, CensusShard):
            c, seed = unit.census.condition, unit.census.run.seed
            return f"a census shard of {c.experiment} {c.factor_label}, seed {seed}"
        c, seed = self.args[0], self.args[1].seed  # (condition, trained run, key, ...)
        return f"the census of {c.experiment} {c.factor_label}, seed {seed}"


# --------------------------------------------------------------------------- the study


def as_sweep(sweep: Sweep | Mapping[str, Any] | str | Path) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, Mapping):
        return sweep_from_dict(sweep)
    return load_sweep(sweep)


def check_sizes(sweep: Sweep) -> None:
    """Refuse, before any training, a condition whose census is beyond the engine's limit
    unless its experiment estimates such censuses (``estimate = N``), and an estimated
    one that asks for what only a whole census gives (explanations, discovery)."""
    for cond in sweep.conditions:
        count = census_size(cond)
        if count <= DEFAULT_MAX_CANDIDATES:
            continue
        where = f"experiments.{cond.experiment}: hidden {','.join(map(str, cond.hidden))}"
        if not is_estimated(cond):
            raise InputError(
                f"{where} gives {count:,} candidate circuits per census, beyond the limit of "
                f"{DEFAULT_MAX_CANDIDATES:,}; set estimate = N in the experiment to estimate "
                "such censuses from N uniformly drawn circuits"
            )
        if cond.explanations or cond.discovery_seeds:
            raise InputError(
                f"{where} is estimated ({count:,} candidates); explanations and discovery "
                "need its whole census"
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
        "findings": {e.name: e.finding for e in sweep.experiments if e.finding is not None},
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
        with StudyLock(out_dir):  # refuses at once if another run works on out_dir
            store = Store(out_dir / STORE_NAME)
            try:
                summary = _run(
                    sweep, out_dir, store, executor, progress, shard_min_candidates, started
                )
            finally:
                store.close()
        ok = True
        return summary
    finally:
        executor.close(cancel=not ok)


def study_status(
    sweep: Sweep | Mapping[str, Any] | str | Path, out_dir: str | Path
) -> tuple[int, int]:
    """``(stored, total)``: how many of the sweep's (condition, seed) rows the store in
    ``out_dir`` holds, and how many the sweep asks for (read only; safe while a run
    writes, and after one was interrupted)."""
    sweep = as_sweep(sweep)
    wanted = {k for cond in sweep.conditions for k in condition_keys(cond).values()}
    path = Path(out_dir) / STORE_NAME
    if not path.is_file():
        return 0, len(wanted)
    with Store(path) as store:
        return len(wanted & store.keys()), len(wanted)


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
    pending: dict[Any, _Job] = field(default_factory=dict)  # future -> its job

    def run(self, batches: deque[TrainingBatch]) -> None:
        """Train the batches (a few at a time) and follow each result to its row."""
        window = 1 if self.executor.workers == 1 else 2 * self.executor.workers
        while batches or self.pending:
            while batches and len(self.pending) < window:
                batch = batches.popleft()
                self.submit(batch, train_task, batch.condition, list(batch.seeds))
            done, _ = self.executor.wait(list(self.pending))
            for future in [f for f in self.pending if f in done]:
                job = self.pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    if not self.executor.lost_worker(exc):
                        raise
                    self.resubmit(job, exc)
                    continue
                unit = job.unit
                if isinstance(unit, TrainingBatch):
                    self.trained(unit, result)
                elif isinstance(unit, CensusShard):
                    self.shard_done(unit, result)
                else:
                    self.store_row(result)

    def submit(self, unit: Unit, fn: Callable[..., Any], *args: Any) -> None:
        job = _Job(unit, fn, args)
        self.pending[self.executor.submit(fn, *args)] = job

    def resubmit(self, job: _Job, exc: BaseException) -> None:
        """Run a job again whose worker died under it (its result never arrived, so
        nothing of it is stored), or give up once the executor's retries are spent."""
        if job.retries >= self.executor.resubmit_lost:
            raise WorkerLost(
                f"workers died while running {job.describe()} "
                f"({type(exc).__name__}; out of memory?)"
            ) from exc
        again = _Job(job.unit, job.fn, job.args, job.retries + 1)
        self.pending[self.executor.submit(job.fn, *job.args)] = again

    def trained(self, batch: TrainingBatch, runs: list[TrainedRun]) -> None:
        """Start the census of each trained model whose row is missing."""
        cond = batch.condition
        n = self.executor.workers
        sharded = n > 1 and census_size(cond) >= self.shard_min and not is_estimated(cond)
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
