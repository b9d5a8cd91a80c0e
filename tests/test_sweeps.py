"""Sweep files: parsing, expansion, validation messages, presets, run keys."""

from __future__ import annotations

import pytest

from circuit_census.circuits.settings import CensusSettings
from circuit_census.errors import InputError
from circuit_census.experiments.presets import (
    PRESET_NAMES,
    QUICK_LEVELS,
    preset_document,
    preset_sweep,
    reproduction_sweep,
)
from circuit_census.experiments.sweepfile import dump_toml
from circuit_census.experiments.sweeps import parse_sweep
from circuit_census.experiments.work import condition_keys, run_description
from circuit_census.tasks.boolean import make_task
from circuit_census.training.config import TrainConfig

EXAMPLE = """
[study]
name = "example"
valid_cap = 500

[defaults]
task = "xor"
hidden = 4
activation = "relu"
seeds = 5
seed_start = 100

[defaults.training]
epochs = 500
lr = 0.01

[defaults.census]
criterion = "accuracy"

[experiments.sparsity]
factor = "l1"
levels = [0.0, 0.001, 0.01]
orthogonality = 0.002

[experiments.sparsity.training]
lr = 0.05

[experiments.width]
factor = "width"
levels = [2, 3, [2, 2], "3,3"]
seeds = [7, 9]

[experiments.gates]
factor = "task"
levels = ["and", "xor", "parity3", "xor+and"]
hidden = [3]
"""


def test_example_expands_into_conditions_with_merged_defaults():
    sweep = parse_sweep(EXAMPLE)
    assert sweep.name == "example" and sweep.valid_cap == 500
    assert [e.name for e in sweep.experiments] == ["sparsity", "width", "gates"]
    sparsity, width, gates = (e.conditions for e in sweep.experiments)

    assert [c.factor_value for c in sparsity] == [0.0, 0.001, 0.01]
    c = sparsity[1]
    assert c.training.l1 == 0.001 and c.training.orthogonality == 0.002
    assert c.training.lr == 0.05 and c.training.epochs == 500  # experiment over defaults
    assert c.census.to_dict() == {
        "ablation": "zero",
        "criterion": "accuracy",
        "threshold": 0.99,
        "compat": None,
    }
    assert c.seeds == (100, 101, 102, 103, 104)
    assert c.hidden == (4,) and c.task == "xor" and c.row_factor == "l1"

    assert [c.hidden for c in width] == [(2,), (3,), (2, 2), (3, 3)]
    assert [c.factor_value for c in width] == [2.0, 3.0, 2.0, 3.0]
    assert [c.factor_label for c in width] == ["2", "3", "2,2", "3,3"]
    assert width[0].seeds == (7, 9) and width[0].training.lr == 0.01

    assert [c.task for c in gates] == ["and", "xor", "parity3", "xor+and"]
    assert [c.factor_label for c in gates] == ["and", "xor", "parity3", "xor+and"]
    assert gates[0].row_factor == "task_complexity"
    assert gates[0].factor_value == pytest.approx(1.0)
    assert gates[1].factor_value == pytest.approx(2.0)
    assert all(c.hidden == (3,) for c in gates)
    assert sweep.n_runs() == 3 * 5 + 4 * 2 + 4 * 5


def test_dumped_toml_reads_back_to_the_same_study():
    sweep = parse_sweep(EXAMPLE)
    again = parse_sweep(sweep.to_toml())
    assert again.raw == sweep.raw
    assert again.conditions == sweep.conditions


def test_a_sweep_takes_resample_ablation_with_its_pairs_and_seed():
    text = (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.census]\n"
        "ablation='resample'\nresample_pairs='all'\nresample_seed=2\n"
    )
    sweep = parse_sweep(text)
    census = sweep.conditions[0].census
    assert (census.ablation, census.resample_pairs, census.resample_seed) == ("resample", "all", 2)
    assert parse_sweep(sweep.to_toml()).conditions == sweep.conditions


BAD = [
    # (TOML, words the message must contain)
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\nbogus=1\n",
        ["experiments.a.bogus", "unknown key"],
    ),
    ("[study]\ntitle='x'\n[experiments.a]\nfactor='l1'\nlevels=[0.0]\n", ["study.title"]),
    ("[oops]\n[experiments.a]\nfactor='l1'\nlevels=[0.0]\n", ["oops"]),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.training]\nlearning_rate=1\n",
        ["experiments.a.training.learning_rate"],
    ),
    (
        "[defaults.census]\nmethod='x'\n[experiments.a]\nfactor='l1'\nlevels=[0.0]\n",
        ["defaults.census.method"],
    ),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.training]\nlr='fast'\n",
        ["experiments.a.training.lr", "number", "string"],
    ),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.training]\nepochs=1.5\n",
        ["experiments.a.training.epochs", "integer"],
    ),
    ("[experiments.a]\nfactor='l1'\nlevels=[]\n", ["experiments.a.levels", "empty"]),
    ("[experiments.a]\nfactor='l1'\nlevels=0.1\n", ["experiments.a.levels", "list"]),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0, -0.1]\n", ["experiments.a.levels[1]", "negative"]),
    ("[experiments.a]\nfactor='l2'\nlevels=[0.0]\nl1=-1\n", ["experiments.a.l1", "negative"]),
    ("[experiments.a]\nfactor='l1'\nlevels=['big']\n", ["experiments.a.levels[0]", "number"]),
    (
        "[experiments.a]\nfactor='task'\nlevels=['xor', 'frobnicate']\n",
        ["experiments.a.levels[1]", "frobnicate"],
    ),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0]\ntask='nope'\n", ["experiments.a.task", "nope"]),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\nactivation='swish'\n",
        ["experiments.a.activation", "swish"],
    ),
    (
        "[experiments.a]\nfactor='activation'\nlevels=['relu', 'gelu']\n",
        ["experiments.a.levels[1]", "gelu"],
    ),
    ("[experiments.a]\nfactor='depth'\nlevels=[1]\n", ["experiments.a.factor", "depth"]),
    ("[experiments.a]\nlevels=[1]\n", ["experiments.a.factor", "missing"]),
    ("[experiments.a]\nfactor='l1'\n", ["experiments.a.levels", "missing"]),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0]\nl1=0.5\n", ["experiments.a.l1", "swept factor"]),
    (
        "[experiments.a]\nfactor='width'\nlevels=[2]\nhidden=3\n",
        ["experiments.a.hidden", "swept factor"],
    ),
    ("[experiments.a]\nfactor='width'\nlevels=[2, 0]\n", ["experiments.a.levels[1]", "at least 1"]),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0]\nseeds=0\n", ["experiments.a.seeds"]),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0]\nseeds=[]\n", ["experiments.a.seeds", "empty"]),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\nseeds='many'\n",
        ["experiments.a.seeds", "integer"],
    ),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0, 0.0]\n", ["experiments.a.levels[1]", "twice"]),
    (
        "[experiments.a]\nfactor='dropout'\nlevels=[0.0, 1.0]\n",
        ["experiments.a.levels[1]", "dropout"],
    ),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.census]\nablation='patch'\n",
        ["experiments.a.census.ablation", "patch"],
    ),
    (
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.training]\noptimizer='lbfgs'\n",
        ["experiments.a.training.optimizer"],
    ),
    ("[study]\nname='x'\n", ["experiments"]),
    ("[experiments]\n", ["experiments", "empty"]),
    ("experiments = 3\n", ["experiments", "table"]),
    ("[experiments.a]\nfactor='l1'\nlevels=[0.0\n", ["not valid TOML"]),
]


@pytest.mark.parametrize("text,words", BAD)
def test_bad_sweeps_get_a_clear_error_naming_the_field(text, words):
    with pytest.raises(InputError) as info:
        parse_sweep(text)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message


def test_conditions_carry_the_checked_settings_objects():
    c = parse_sweep(EXAMPLE).experiments[0].conditions[1]
    assert c.training == TrainConfig(
        hidden=(4,), epochs=500, lr=0.05, l1=0.001, orthogonality=0.002
    )
    assert c.census == CensusSettings(criterion="accuracy")
    assert isinstance(c.training.lr, float) and isinstance(c.training.epochs, int)
    whole = parse_sweep(EXAMPLE.replace("lr = 0.05", "lr = 1"))
    lr = whole.experiments[0].conditions[1].training.lr
    assert lr == 1.0 and isinstance(lr, float)  # an integer reads as a number


SHARED = [
    # (census or training table, the same settings as keyword arguments of their class)
    ("[experiments.a.census]\ncriterion='median'\n", CensusSettings, {"criterion": "median"}),
    ("[experiments.a.census]\nthreshold=-0.5\n", CensusSettings, {"threshold": -0.5}),
    (
        "[experiments.a.census]\ncriterion='accuracy'\nthreshold=1.5\n",
        CensusSettings,
        {"criterion": "accuracy", "threshold": 1.5},
    ),
    ("[experiments.a.census]\ncompat='other'\n", CensusSettings, {"compat": "other"}),
    ("[experiments.a.training]\nlr=-1\n", TrainConfig, {"lr": -1.0}),
    ("[experiments.a.training]\nmomentum=1\n", TrainConfig, {"momentum": 1.0}),
    ("[experiments.a.training]\nmin_accuracy=2\n", TrainConfig, {"min_accuracy": 2.0}),
    ("[experiments.a.training]\noutput_activation='x'\n", TrainConfig, {"output_activation": "x"}),
]


@pytest.mark.parametrize("table,cls,kwargs", SHARED)
def test_settings_are_checked_by_their_own_classes_and_the_field_is_named(table, cls, kwargs):
    with pytest.raises(InputError) as expected:
        cls(**kwargs)
    with pytest.raises(InputError) as info:
        parse_sweep("[experiments.a]\nfactor='l1'\nlevels=[0.0]\n" + table)
    field = list(kwargs)[-1]  # the field that makes the settings fail
    section = "census" if cls is CensusSettings else "training"
    assert str(info.value) == f"experiments.a.{section}.{field}: {expected.value}"


def test_a_sweep_accepts_what_the_criterion_accepts():
    sweep = parse_sweep(
        "[experiments.a]\nfactor='l1'\nlevels=[0.0]\n[experiments.a.census]\nthreshold=0\n"
    )
    assert sweep.conditions[0].census.threshold == 0.0


def test_dump_toml_writes_what_tomllib_reads():
    doc = {
        "study": {"name": 'quote " and \\ backslash'},
        "experiments": {"a-b": {"factor": "l1", "levels": [0.0, 1e-05, 2], "seeds": [1, 2]}},
    }
    assert parse_sweep(dump_toml(doc)).raw == doc


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_presets_are_valid_sweeps_and_dump_to_toml(name):
    for scale in ("default", "quick"):
        sweep = preset_sweep(name, scale)
        assert parse_sweep(sweep.to_toml()).conditions == sweep.conditions


def test_default_presets_meet_the_issue():
    sweep = reproduction_sweep(quick=False)
    exps = {e.name: e for e in sweep.experiments}
    assert all(len(c.seeds) >= 30 for c in sweep.conditions)
    for name in ("l1", "orthogonality"):
        values = [c.factor_value for c in exps[name].conditions]
        assert len(values) >= 6 and values[0] == 0.0 and values == sorted(values)
        assert all(c.task == "xor" and c.hidden == (4,) for c in exps[name].conditions)
    hidden = [c.hidden for c in exps["capacity"].conditions]
    assert [(w,) for w in range(2, 13)] == [h for h in hidden if len(h) == 1]
    assert sum(len(h) == 2 for h in hidden) >= 2
    single = exps["task-complexity"].conditions
    assert {make_task(c.task).n_inputs for c in single} == {2, 3}
    assert all(make_task(c.task).n_outputs == 1 for c in single)
    assert len({c.hidden for c in single}) == 1
    stacks = exps["task-complexity-stacks"].conditions
    assert [c.task.count("+") + 1 for c in stacks] == [1, 2, 3, 4, 5, 6]
    assert len({c.hidden for c in stacks}) == 1


def test_quick_conditions_are_default_conditions_with_fewer_seeds():
    default = {(c.experiment, c.factor_label): c for c in reproduction_sweep(False).conditions}
    quick = reproduction_sweep(True).conditions
    assert len(quick) < len(default)
    for c in quick:
        d = default[(c.experiment, c.factor_label)]
        assert set(c.seeds) < set(d.seeds)
        assert (c.task, c.hidden, c.activation, c.training, c.census) == (
            d.task,
            d.hidden,
            d.activation,
            d.training,
            d.census,
        )
        # so a default run after a quick one reuses its rows
        assert condition_keys(c).items() <= condition_keys(d).items()
    every = preset_sweep(list(PRESET_NAMES), "quick").experiments
    assert set(QUICK_LEVELS) == {e.name for e in every}


def test_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="unknown preset"):
        preset_document("dropout")


# ---------------------------------------------------------------- keys


def test_run_keys_depend_on_everything_that_determines_a_row():
    base = parse_sweep(EXAMPLE).experiments[0].conditions[1]
    keys = condition_keys(base)
    assert len(set(keys.values())) == len(base.seeds)  # seed matters
    assert condition_keys(base) == keys  # and nothing random
    desc = run_description(base, 100)
    assert desc["training"]["l1"] == 0.001 and desc["training"]["patience"] >= 1  # resolved
    assert "device" not in desc["training"]
    changed = (
        parse_sweep(EXAMPLE.replace("epochs = 500", "epochs = 501")).experiments[0].conditions[1]
    )
    assert condition_keys(changed)[100] != keys[100]
    thr = parse_sweep(
        EXAMPLE.replace('criterion = "accuracy"', 'criterion = "accuracy"\nthreshold = 0.9')
    )
    assert condition_keys(thr.experiments[0].conditions[1])[100] != keys[100]
    renamed = parse_sweep(EXAMPLE.replace("experiments.sparsity", "experiments.sparse"))
    assert condition_keys(renamed.experiments[0].conditions[1])[100] != keys[100]
