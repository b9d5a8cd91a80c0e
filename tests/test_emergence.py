"""Emergence: a study factor that takes the census of a model at points of its training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuit_census.analysis.emergence import first_valid
from circuit_census.errors import InputError
from circuit_census.experiments.sweeps import PROGRESS_STEPS, sweep_from_dict
from circuit_census.experiments.work import run_description, train_task
from circuit_census.tasks.boolean import make_task
from circuit_census.training.loop import train_models


def _sweep(levels, **extra):
    exp = {"factor": "progress", "levels": levels, "task": "xor", "hidden": 3, **extra}
    return sweep_from_dict({"defaults": {"seeds": [0, 1, 2]}, "experiments": {"em": exp}})


def test_progress_levels_are_fractions_in_steps():
    assert [c.progress for c in _sweep([0.0, 0.5, 1.0]).conditions] == [0.0, 0.5, 1.0]
    for bad in (-0.1, 1.5, 0.123):
        with pytest.raises(InputError, match="training progress is a fraction"):
            _sweep([bad])


def test_each_level_is_the_checkpoint_at_that_fraction_of_the_models_own_run():
    sweep = _sweep([0.0, 0.5, 1.0])
    task = make_task("xor")
    reference = train_models(task, [0, 1, 2], sweep.conditions[0].training, checkpoints=100)
    for cond in sweep.conditions:
        runs = train_task(cond, [0, 1, 2])
        for run, m in zip(runs, reference, strict=True):
            want = (
                m.final_checkpoint
                if cond.progress == 1.0
                else m.checkpoints[round(cond.progress * PROGRESS_STEPS)]
            )
            assert run.epochs == want.epoch
            for a, b in zip(run.network.weights, want.network.weights, strict=True):
                assert np.array_equal(a, b)
            for a, b in zip(run.network.biases, want.network.biases, strict=True):
                assert np.array_equal(a, b)
            assert run.converged == m.converged  # the whole run's convergence
    keys = {run_description(c, 0)["progress"] for c in sweep.conditions}
    assert keys == {0.0, 0.5, 1.0}  # each level is its own row


def test_first_valid_circuit_per_model():
    rows = []
    for seed, first in ((0, 0.2), (1, 0.4), (2, 0.4), (3, None)):
        for p in (0.0, 0.2, 0.4, 1.0):
            has = first is not None and p >= first
            rows.append(
                {"seed": seed, "factor_value": p, "converged": True, "n_valid": 4 if has else 0}
            )
    f = first_valid(rows)
    assert (f.n_models, f.n_with) == (4, 3)
    assert f.median == pytest.approx(0.4) and f.q25 == pytest.approx(0.3)
    none = first_valid([dict(r, n_valid=0) for r in rows])
    assert none.n_with == 0 and math.isnan(none.median)
