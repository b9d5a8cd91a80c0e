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

Rows for a multi-output task (SPEC: the census is taken per output): ``n_candidates``,
``n_valid`` and ``n_minimal`` are summed over the outputs, ``identifiable`` means every
output is identifiable, and ``measures`` lists each output's measures under ``outputs``.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from circuit_census import __version__
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.errors import InputError
from circuit_census.experiments.executors import make_executor
from circuit_census.experiments.store import STORE_NAME, Store, canonical_json, run_key
from circuit_census.experiments.sweeps import Condition, Sweep, load_sweep, sweep_from_dict
from circuit_census.network import Network

# Censuses with at least this many candidates (per output) are sharded across workers.
SHARD_MIN_CANDIDATES = 2_000_000
# Largest census a study attempts (the engine's own guard uses the same figure).
# At most this many seeds of a condition are trained in one batched call.
TRAIN_CHUNK = 64
SWEEP_COPY = "sweep.toml"


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


def train_config(cond: Condition):
    """The :class:`~circuit_census.training.loop.TrainConfig` of a condition."""
    from circuit_census.training.loop import TrainConfig

    return TrainConfig(hidden=cond.hidden, activation=cond.activation, **cond.training)


def run_description(cond: Condition, seed: int) -> dict[str, Any]:
    """Everything that determines a (condition, seed) row; its hash is the row's key.

    The full, resolved training configuration (defaults included, device excluded: the
    study's results are meant not to depend on it), the task's truth table, the census
    settings, the seed, the experiment it belongs to and the package version.
    """
    from circuit_census.tasks.boolean import make_task

    config = train_config(cond).as_metadata()
    config.pop("device", None)
    task = make_task(cond.task)
    return {
        "version": __version__,
        "experiment": cond.experiment,
        "factor": cond.row_factor,
        "task": task.name,
        "table": task.table.tolist(),
        "training": config,
        "census": dict(cond.census),
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


# --------------------------------------------------------------------------- tasks


def train_task(cond: Condition, seeds: list[int]) -> list[TrainedRun]:
    """Train ``seeds`` of a condition together (one batched call)."""
    from circuit_census.tasks.boolean import make_task
    from circuit_census.training.loop import train_models

    start = time.perf_counter()
    models = train_models(make_task(cond.task), seeds, train_config(cond), progress=False)
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


def _census(run: TrainedRun, census_settings: Mapping[str, Any], output: int | None, shard=None):
    from circuit_census.circuits.census import census

    settings = CensusSettings(**census_settings)
    options = RunOptions(shard=shard, max_candidates=DEFAULT_MAX_CANDIDATES)
    return census(run.network, run.x, run.y, settings, options, output=output)


def shard_task(run: TrainedRun, census_settings: dict, output: int | None, shard: tuple[int, int]):
    """One shard of one output's census."""
    return _census(run, census_settings, output, shard)


def evaluate_task(cond: Condition, run: TrainedRun, key: str, valid_cap: int):
    """The whole census of one model (every output), its measures and its row."""
    n_outputs = run.network.sizes[-1]
    outputs = [None] if n_outputs == 1 else list(range(n_outputs))
    results = [_census(run, cond.census, o) for o in outputs]
    return finish_task(cond, run, key, results, valid_cap)


def finish_task(cond: Condition, run: TrainedRun, key: str, results: list, valid_cap: int):
    """Measures and the stored row of a model from its per-output census results
    (combined shards or whole censuses). Returns ``(row, circuits)`` for :meth:`Store.put`."""
    from circuit_census.measures.uniqueness import census_measures
    from circuit_census.tasks.boolean import make_task

    task = make_task(cond.task)
    per_output, circuits = [], []
    for o, result in enumerate(results):
        measures, minimal = census_measures(result)
        d = measures.to_dict()
        d["n_candidates"] = int(result.n_candidates)
        per_output.append(d)
        circuits.append((o, "minimal", int(minimal.shape[0]), minimal))
        circuits.append((o, "valid", int(result.n_valid), result.valid[:valid_cap]))
    if len(per_output) == 1:
        measures_json: dict[str, Any] = dict(per_output[0])
        measures_json["n_outputs"] = 1
    else:
        measures_json = {
            "n_outputs": len(per_output),
            "aggregation": "per-output censuses; counts summed, identifiable = every output",
            "n_candidates": sum(d["n_candidates"] for d in per_output),
            "n_valid": sum(d["n_valid"] for d in per_output),
            "n_minimal": sum(d["n_minimal"] for d in per_output),
            "identifiable": all(d["identifiable"] for d in per_output),
            "outputs": per_output,
        }
    reg = cond.regularizers
    row = {
        "key": key,
        "experiment": cond.experiment,
        "factor": cond.row_factor,
        "factor_value": cond.factor_value,
        "factor_label": cond.factor_label,
        "level": cond.level,
        "task": task.name,
        "task_complexity": float(task.complexity),
        "n_inputs": task.n_inputs,
        "n_outputs": task.n_outputs,
        "hidden": ",".join(str(h) for h in cond.hidden),
        "width": max(cond.hidden),
        "depth": len(cond.hidden),
        "activation": cond.activation,
        "l1": reg["l1"],
        "l2": reg["l2"],
        "orthogonality": reg["orthogonality"],
        "dropout": reg["dropout"],
        "seed": run.seed,
        "converged": run.converged,
        "final_loss": _finite_or_none(run.final_loss),
        "val_accuracy": run.val_accuracy,
        "epochs": run.epochs,
        "n_candidates": sum(int(r.n_candidates) for r in results),
        "n_valid": sum(int(r.n_valid) for r in results),
        "n_minimal": sum(d["n_minimal"] for d in per_output),
        "identifiable": all(d["identifiable"] for d in per_output),
        "measures": measures_json,
        "settings": run_description(cond, run.seed),
        "valid_stored": sum(min(int(r.n_valid), valid_cap) for r in results),
        "train_seconds": run.train_seconds,
        "census_seconds": sum(float(r.seconds) for r in results),
    }
    return row, circuits


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- the study


def as_sweep(sweep: Sweep | Mapping[str, Any] | str | Path) -> Sweep:
    if isinstance(sweep, Sweep):
        return sweep
    if isinstance(sweep, Mapping):
        return sweep_from_dict(sweep)
    return load_sweep(sweep)


def check_sizes(sweep: Sweep) -> None:
    """Refuse, before any training, a condition whose census is beyond the engine's limit."""
    from circuit_census.circuits.space import CircuitSpace
    from circuit_census.tasks.boolean import make_task

    for cond in sweep.conditions:
        task = make_task(cond.task)
        sizes = output_sizes(cond, task.n_inputs, task.n_outputs)
        count = CircuitSpace(sizes, cond.census.get("compat")).count()
        if count > DEFAULT_MAX_CANDIDATES:
            raise InputError(
                f"experiments.{cond.experiment}: hidden {','.join(map(str, cond.hidden))} "
                f"gives {count:,} candidate circuits per census, beyond the limit of "
                f"{DEFAULT_MAX_CANDIDATES:,}"
            )


def study_setup(sweep: Sweep, executor: str) -> dict[str, Any]:
    """What the store records about the study (read by the report)."""
    census = {canonical_json(c.census) for c in sweep.conditions}
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


def run_study(
    sweep: Sweep | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    workers: int | None = 1,
    scheduler: str | None = None,
    progress: bool = True,
    shard_min_candidates: int = SHARD_MIN_CANDIDATES,
) -> StudySummary:
    """Run (or resume) a study into ``out_dir``; see the module documentation."""
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


def _run(sweep, out_dir, store, executor, progress, shard_min, started) -> StudySummary:
    from circuit_census.circuits.space import CircuitSpace
    from circuit_census.files import atomic_write
    from circuit_census.tasks.boolean import make_task

    text = sweep.to_toml()
    atomic_write(out_dir / SWEEP_COPY, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    existing = store.keys()
    jobs: deque[tuple[Condition, list[int], dict[int, str]]] = deque()
    total = skipped = 0
    for cond in sweep.conditions:
        keys = condition_keys(cond)
        missing = {s: keys[s] for s in cond.seeds if keys[s] not in existing}
        total += len(cond.seeds)
        skipped += len(cond.seeds) - len(missing)
        for batch in training_batches(cond.seeds):
            if any(s in missing for s in batch):
                jobs.append((cond, batch, missing))

    describe = executor.describe()
    store.set_meta("setup", canonical_json(study_setup(sweep, describe)))
    computed = 0
    bar = _Progress(total, skipped, progress)
    pending: dict[Any, tuple] = {}
    shards: dict[str, dict[str, Any]] = {}
    window = 1 if executor.workers == 1 else 2 * executor.workers
    try:
        while jobs or pending:
            while jobs and len(pending) < window:
                cond, seeds, missing = jobs.popleft()
                pending[executor.submit(train_task, cond, seeds)] = ("train", cond, missing)
            done, _ = executor.wait(list(pending))
            for fut in [f for f in pending if f in done]:
                what = pending.pop(fut)
                kind, cond = what[0], what[1]
                if kind == "train":
                    missing = what[2]
                    task = make_task(cond.task)
                    sizes = output_sizes(cond, task.n_inputs, task.n_outputs)
                    count = CircuitSpace(sizes, cond.census.get("compat")).count()
                    for run in fut.result():
                        if run.seed not in missing:  # stored; trained for its batch-mates
                            continue
                        key = missing[run.seed]
                        if executor.workers > 1 and count >= shard_min:
                            n = executor.workers
                            outputs = [None] if task.n_outputs == 1 else list(range(task.n_outputs))
                            shards[key] = {
                                "cond": cond,
                                "run": run,
                                "parts": {o: [None] * n for o in outputs},
                                "left": n * len(outputs),
                            }
                            for o in outputs:
                                for i in range(n):
                                    f = executor.submit(shard_task, run, cond.census, o, (i, n))
                                    pending[f] = ("shard", cond, key, o, i)
                        else:
                            f = executor.submit(evaluate_task, cond, run, key, sweep.valid_cap)
                            pending[f] = ("row", cond)
                elif kind == "shard":
                    _, _, key, o, i = what
                    entry = shards[key]
                    entry["parts"][o][i] = fut.result()
                    entry["left"] -= 1
                    if entry["left"] == 0:
                        from circuit_census.circuits.census import combine_results

                        del shards[key]
                        results = [combine_results(p) for p in entry["parts"].values()]
                        f = executor.submit(
                            finish_task, entry["cond"], entry["run"], key, results, sweep.valid_cap
                        )
                        pending[f] = ("row", entry["cond"])
                else:
                    row, circuits = fut.result()
                    store.put(row, circuits)
                    computed += 1
                    bar.advance(cond.experiment)
    finally:
        bar.close()
    return StudySummary(out_dir, total, skipped, computed, time.perf_counter() - started, describe)


class _Progress:
    """A Rich progress bar over the study's (condition, seed) rows."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self._progress = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("models"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("study", total=total, completed=done)

    def advance(self, experiment: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=experiment[:22])

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
