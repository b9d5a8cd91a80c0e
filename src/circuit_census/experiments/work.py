"""What a study's workers compute: train a batch of seeds, take a census (or one shard of
it), and turn a model's census results into its measures and stored row.

The task functions (:func:`train_task`, :func:`shard_task`, :func:`evaluate_task`,
:func:`finish_task`) are top-level so that process pools and Dask can pickle them by
name; :mod:`circuit_census.experiments.runner` decides what runs where and stores rows.

Rows for a multi-output task: the census is taken per output and every measure is
averaged over the outputs (``identifiable``: the fraction of identifiable outputs), so
that adding outputs does not raise a count by construction; ``measures`` lists each
output's measures under ``outputs``. The joint census of all outputs together is kept
beside them in the ``*_joint`` columns where its space is small enough
(:data:`JOINT_MAX_CANDIDATES`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuit_census import __version__
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.experiments.rows import CircuitSet, Row
from circuit_census.experiments.store import run_key
from circuit_census.experiments.sweeps import PROGRESS_STEPS, Condition
from circuit_census.network import Network

# Largest joint census (all outputs of a multi-output model together) a study takes.
JOINT_MAX_CANDIDATES = 20_000_000


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
        **({} if cond.progress is None else {"progress": cond.progress}),
        **({"discovery_seeds": cond.discovery_seeds} if cond.discovery_seeds else {}),
        **({"explanations": True} if cond.explanations else {}),
        **({"estimate": cond.estimate_draws} if is_estimated(cond) else {}),
    }


def condition_keys(cond: Condition) -> dict[int, str]:
    """``seed -> key`` for every seed of a condition."""
    return {seed: run_key(run_description(cond, seed)) for seed in cond.seeds}


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


def is_estimated(cond: Condition) -> bool:
    """Whether a condition's censuses are estimated: past the exact limit, with
    ``estimate = N`` (draws) declared; without it such a condition is refused."""
    return cond.estimate_draws > 0 and census_size(cond) > DEFAULT_MAX_CANDIDATES


def census_outputs(n_outputs: int) -> list[int | None]:
    """The outputs censused one by one (``None``: the single output of the network)."""
    return [None] if n_outputs == 1 else list(range(n_outputs))


# --------------------------------------------------------------------------- tasks


def train_task(cond: Condition, seeds: list[int]) -> list[TrainedRun]:
    """Train ``seeds`` of a condition together (one batched call)."""
    from circuit_census.tasks.boolean import make_task
    from circuit_census.training.loop import train_models

    start = time.perf_counter()
    steps = 0 if cond.progress is None else min(PROGRESS_STEPS, cond.training.epochs)
    models = train_models(make_task(cond.task), seeds, cond.training, checkpoints=steps)
    each = (time.perf_counter() - start) / max(1, len(models))
    out = []
    for m in models:
        # A progress level is the model's checkpoint at that fraction of its own run; its
        # convergence is the whole run's (did the model it becomes converge?).
        at = m.final_checkpoint
        if cond.progress is not None and cond.progress < 1.0:
            at = m.checkpoints[min(steps - 1, round(cond.progress * steps))]
        out.append(
            TrainedRun(
                seed=int(m.seed),
                network=at.network,
                x=m.val.x,
                y=m.val.y,
                converged=bool(m.converged),
                final_loss=float(at.train_loss),
                val_accuracy=float(at.val_accuracy),
                epochs=int(at.epoch),
                train_seconds=each,
            )
        )
    return out


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
    if is_estimated(cond):
        return estimate_task(cond, run, key, outputs)
    results = [_census(run, cond.census, o) for o in outputs]
    return finish_task(cond, run, key, results, valid_cap)


def finish_task(
    cond: Condition, run: TrainedRun, key: str, results: list, valid_cap: int
) -> FinishedRow:
    """Measures and the stored row of a model from its per-output census results
    (combined shards or whole censuses)."""
    from circuit_census.measures.uniqueness import census_measures

    per_output, circuits, minimals = [], [], []
    for o, result in enumerate(results):
        measures, minimal = census_measures(result)
        minimals.append(minimal)
        d = measures.to_dict()
        d["n_candidates"] = int(result.n_candidates)
        d["valid_fraction"] = int(result.n_valid) / max(1, int(result.n_candidates))
        per_output.append(d)
        circuits.append(CircuitSet(o, "minimal", int(minimal.shape[0]), minimal))
        circuits.append(CircuitSet(o, "valid", int(result.n_valid), result.valid[:valid_cap]))
    joint = per_output[0] if len(per_output) == 1 else _joint_measures(cond, run)
    # Explanations (one output: checked by the sweep) reuse the census just taken.
    explained = _explanations(cond, run, results[0]) if cond.explanations else {}

    def mean(name: str) -> float:
        return float(np.mean([float(d[name]) for d in per_output]))

    row = Row(
        **_model_columns(cond, run, key),
        n_candidates=int(results[0].n_candidates),
        n_valid=mean("n_valid"),
        n_minimal=mean("n_minimal"),
        valid_fraction=mean("valid_fraction"),
        identifiable=mean("identifiable"),
        estimated=False,
        valid_fraction_low=None,
        valid_fraction_high=None,
        n_candidates_joint=None if joint is None else int(joint["n_candidates"]),
        n_valid_joint=None if joint is None else int(joint["n_valid"]),
        n_minimal_joint=None if joint is None else int(joint["n_minimal"]),
        identifiable_joint=None if joint is None else bool(joint["identifiable"]),
        interpretations_total=explained.get("interpretations_total"),
        interpretations_median=explained.get("interpretations_median"),
        n_formulas=explained.get("n_formulas"),
        minimal_mappings_total=explained.get("minimal_mappings_total"),
        measures={
            **_measures_json(per_output),
            **(
                {"discovery": _discovery(cond, run, results, minimals)}
                if cond.discovery_seeds
                else {}
            ),
        },
        valid_stored=sum(min(int(r.n_valid), valid_cap) for r in results),
        census_seconds=sum(float(r.seconds) for r in results),
    )
    return FinishedRow(row, circuits)


def _model_columns(cond: Condition, run: TrainedRun, key: str) -> dict[str, Any]:
    """A row's columns that say which model it is: its condition, task and training."""
    from circuit_census.tasks.boolean import make_task

    task = make_task(cond.task)
    reg = cond.regularizers
    return dict(
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
        settings=run_description(cond, run.seed),
        train_seconds=run.train_seconds,
    )


def estimate_task(
    cond: Condition, run: TrainedRun, key: str, outputs: list[int | None]
) -> FinishedRow:
    """The row of a model whose census is past the exact limit: each output's valid count
    and fraction estimated from ``cond.estimate_draws`` uniform draws (seeded by the
    model's seed), marked ``estimated``. Minimal circuits need the whole census, so a
    row holds none of them, nor identifiability."""
    from circuit_census.circuits.estimate import estimate_census

    started = time.perf_counter()
    draws = cond.estimate_draws
    found = [
        estimate_census(run.network, run.x, run.y, cond.census, draws, run.seed, output=o)
        for o in outputs
    ]
    per_output = [e.to_dict() for e in found]

    def mean(values) -> float:
        return float(np.mean([float(v) for v in values]))

    row = Row(
        **_model_columns(cond, run, key),
        n_candidates=found[0].n_candidates,
        n_valid=mean(e.n_valid for e in found),
        n_minimal=None,
        valid_fraction=mean(e.valid_fraction for e in found),
        identifiable=None,
        estimated=True,
        valid_fraction_low=mean(e.fraction_low for e in found),
        valid_fraction_high=mean(e.fraction_high for e in found),
        n_candidates_joint=None,
        n_valid_joint=None,
        n_minimal_joint=None,
        identifiable_joint=None,
        interpretations_total=None,
        interpretations_median=None,
        n_formulas=None,
        minimal_mappings_total=None,
        measures={"estimate": per_output[0]} if len(found) == 1 else {"estimate": per_output},
        valid_stored=0,
        census_seconds=time.perf_counter() - started,
    )
    return FinishedRow(row, [])


def _explanations(cond: Condition, run: TrainedRun, result) -> dict[str, Any]:
    """The model's interpretations, formulas and mappings (one output) in a few numbers,
    from its census ``result``."""
    from circuit_census.explanations.explain import explain_summary

    options = RunOptions(max_candidates=DEFAULT_MAX_CANDIDATES)
    summary = explain_summary(run.network, run.x, run.y, cond.census, options, result)
    return summary.to_dict()


def _discovery(
    cond: Condition, run: TrainedRun, results: list, minimals: list[np.ndarray]
) -> dict[str, Any]:
    """Every discovery method over the condition's discovery seeds on this model, graded
    against one census (a one-output model's census ``results[0]`` with its minimal
    circuits ``minimals[0]``; the joint census, taken here, for several outputs): each
    method's summary and, for ranking methods, seed 0's faithfulness curve as
    ``[k, edges, valid]`` points."""
    from circuit_census.discovery.grading import (
        Truth,
        census_truth,
        discover_and_grade,
        summarize,
    )
    from circuit_census.discovery.methods import METHODS, DiscoveryOptions

    if len(results) == 1:
        (r,) = results
        truth = Truth(r.space, int(r.n_candidates), r.valid, minimals[0])
    else:
        truth = census_truth(run.network, run.x, run.y, cond.census, DEFAULT_MAX_CANDIDATES)
    out: dict[str, Any] = {
        "seeds": cond.discovery_seeds,
        "census_smallest_valid": None,
        "methods": {},
    }
    for method in METHODS:
        report = discover_and_grade(
            run.network,
            run.x,
            run.y,
            cond.census,
            DiscoveryOptions(method),
            cond.discovery_seeds,
            DEFAULT_MAX_CANDIDATES,
            truth,
        )
        entry = summarize(report).__dict__.copy()
        curve = report.runs[0].curve
        if curve is not None:
            entry["curve"] = [[p.k, p.n_edges, bool(p.valid)] for p in curve.points]
            out["census_smallest_valid"] = curve.census_smallest_valid
        out["methods"][method] = entry
    return out


def _joint_measures(cond: Condition, run: TrainedRun) -> dict[str, Any] | None:
    """The joint census's counts of a multi-output model (None: its space is too large)."""
    from circuit_census.circuits.census import census
    from circuit_census.circuits.space import CircuitSpace
    from circuit_census.measures.uniqueness import minimal_circuits

    if CircuitSpace(run.network.sizes, cond.census.compat).count() > JOINT_MAX_CANDIDATES:
        return None
    options = RunOptions(max_candidates=JOINT_MAX_CANDIDATES)
    result = census(run.network, run.x, run.y, cond.census, options, output="joint")
    n_minimal = int(minimal_circuits(result.valid).shape[0])
    return {
        "n_candidates": int(result.n_candidates),
        "n_valid": int(result.n_valid),
        "n_minimal": n_minimal,
        "identifiable": n_minimal == 1,
    }


def _measures_json(per_output: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``measures`` column: one output's measures, or the averages and each output's."""
    if len(per_output) == 1:
        return {**per_output[0], "n_outputs": 1}
    return {
        "n_outputs": len(per_output),
        "aggregation": "per-output censuses; every measure averaged over the outputs",
        **{
            name: float(np.mean([float(d[name]) for d in per_output]))
            for name in ("n_valid", "n_minimal", "valid_fraction", "identifiable")
        },
        "outputs": per_output,
    }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None
