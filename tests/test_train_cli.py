"""``circuit-census train``: the files it writes, and bad input that writes nothing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from rich.filesize import decimal

from circuit_census.circuits.census import census
from circuit_census.cli.train_cmd import checkpoint_file_name
from circuit_census.tasks.boolean import make_task
from circuit_census.training.loop import CONFIG_FIELDS, TrainConfig, accuracy, train_models
from circuit_census.training.modelfiles import load_data, load_model, read_metadata


def test_train_writes_models_validation_sets_and_summary(tmp_path, cli):
    out = tmp_path / "models"
    code, stdout, stderr = cli(
        [
            "train",
            "--task", "xor",
            "--hidden", "4",
            "--seeds", "0-2,5",
            "--epochs", "400",
            "--l1", "0.0001",
            "--out", str(out),
            "--quiet",
        ])  # fmt: skip
    assert code == 0, stderr
    assert "converged" in stdout
    seeds = [0, 1, 2, 5]
    expected = {f"seed-{s}.{ext}" for s in seeds for ext in ("safetensors", "npz")}
    assert {p.name for p in out.iterdir()} == expected | {"summary.csv"}

    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["seed"]) for r in rows] == seeds
    assert list(rows[0]) == ["seed", "converged", "final_loss", "val_accuracy", "epochs"]

    for row in rows:
        seed = int(row["seed"])
        path = out / f"seed-{seed}.safetensors"
        meta = read_metadata(path)
        assert meta["task"] == "xor"
        assert int(meta["seed"]) == seed
        # every config field; the maximum epochs as max_epochs, "epochs" is the outcome
        assert (set(CONFIG_FIELDS) - {"epochs"}) | {"max_epochs"} <= set(meta)
        assert int(meta["max_epochs"]) == 400
        assert json.loads(meta["hidden"]) == [4]
        assert float(meta["l1"]) == 0.0001
        assert int(meta["epochs"]) == int(row["epochs"]) <= 400
        assert meta["converged"] == row["converged"] and row["converged"] in ("true", "false")
        assert float(meta["final_loss"]) == pytest.approx(float(row["final_loss"]))
        assert float(meta["val_accuracy"]) == pytest.approx(float(row["val_accuracy"]))

        net, _ = load_model(path)
        assert net.sizes == (2, 4, 1)
        assert (net.activation, net.output_activation) == ("relu", "identity")
        x, y = load_data(out / f"seed-{seed}.npz", need_y=True)
        assert x.shape == (200, 2) and y.shape == (200, 1)
        # the stored validation accuracy is that of the stored model on the stored data
        assert accuracy(net.forward(x), y) == pytest.approx(float(row["val_accuracy"]))
        converged = float(row["val_accuracy"]) >= 0.99 and float(row["final_loss"]) <= 0.02
        assert (row["converged"] == "true") == converged


def test_train_options_reach_the_models(tmp_path, cli):
    out = tmp_path / "deep"
    code, stdout, stderr = cli(
        [
            "train",
            "--task", "xor+and",
            "--hidden", "3,3",
            "--seeds", "4",
            "--activation", "tanh",
            "--output-activation", "sigmoid",
            "--optimizer", "sgd",
            "--lr", "0.1",
            "--epochs", "20",
            "--batch-size", "32",
            "--dropout", "0.1",
            "--orthogonality", "0.01",
            "--noise", "0.0",
            "--repeats", "10",
            "--val-repeats", "5",
            "--out", str(out),
        ])  # fmt: skip
    assert code == 0, stderr
    assert "converged 0/1" in stdout  # 20 epochs is too few
    net, meta = load_model(out / "seed-4.safetensors")
    assert net.sizes == (2, 3, 3, 2)
    assert (net.activation, net.output_activation) == ("tanh", "sigmoid")
    assert meta["optimizer"] == "sgd" and json.loads(meta["batch_size"]) == 32
    assert meta["task"] == "xor+and" and float(meta["dropout"]) == 0.1
    x, y = load_data(out / "seed-4.npz", need_y=True)
    assert x.shape == (20, 2) and y.shape == (20, 2)
    assert set(np.unique(x)) <= {0.0, 1.0}  # no noise


BAD_INPUTS = {
    "unknown task": ["--task", "xyzzy"],
    "hidden zero": ["--hidden", "0"],
    "hidden not a list": ["--hidden", "3;3"],
    "hidden empty part": ["--hidden", "3,"],
    "seeds empty": ["--seeds", ""],
    "seeds reversed range": ["--seeds", "9-2"],
    "seeds negative": ["--seeds", "-1"],
    "seeds garbage": ["--seeds", "a-b"],
    "negative l1": ["--l1", "-0.1"],
    "negative l2": ["--l2", "-0.1"],
    "negative orthogonality": ["--orthogonality", "-1"],
    "dropout one": ["--dropout", "1"],
    "dropout negative": ["--dropout", "-0.2"],
    "unknown optimizer": ["--optimizer", "rmsprop"],
    "unknown activation": ["--activation", "gelu"],
    "unknown output activation": ["--output-activation", "softmax"],
    "zero lr": ["--lr", "0"],
    "negative lr": ["--lr", "-0.01"],
    "zero epochs": ["--epochs", "0"],
    "negative epochs": ["--epochs", "-5"],
    "zero batch size": ["--batch-size", "0"],
    "zero patience": ["--patience", "0"],
    "min accuracy above one": ["--min-accuracy", "1.5"],
    "negative noise": ["--noise", "-0.1"],
    "unknown device": ["--device", "tpu"],
    "negative checkpoints": ["--checkpoints", "-1"],
    "more checkpoints than epochs": ["--checkpoints", "6"],
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, cli):
    out = tmp_path / "out"
    code, stdout, stderr = cli(["train", "--out", str(out), "--epochs", "5", *BAD_INPUTS[case]])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_non_numeric_value_exits_2_with_one_line(tmp_path, cli):
    out = tmp_path / "out"
    code, _, stderr = cli(["train", "--out", str(out), "--lr", "fast"])
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_out_that_is_a_file_exits_2(tmp_path, cli):
    out = tmp_path / "taken"
    out.write_text("not a folder")
    code, _, stderr = cli(["train", "--out", str(out), "--epochs", "5"])
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert out.read_text() == "not a folder"


def test_training_bar_is_a_callback_that_leaves_nothing_behind(capsys):
    from circuit_census.cli.progress import training_progress

    with training_progress(False, 3, 100) as progress:
        assert progress is None
    with training_progress(True, 3, 100) as progress:
        progress(1, 100, 3)
        progress(51, 100, 1)
    assert capsys.readouterr().out.strip() == ""  # transient: gone once training ends


def test_the_same_training_command_writes_byte_identical_files(tmp_path, cli):
    runs = []
    for name in ("first", "second"):
        out = tmp_path / name
        argv = ["train", "--task", "xor", "--hidden", "3", "--seeds", "0-2", "--epochs", "50"]
        code, _, stderr = cli([*argv, "--checkpoints", "2", "--out", str(out), "--quiet"])
        assert code == 0, stderr
        runs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(runs[0]) == sorted(runs[1])
    # three models, three validation sets, two checkpoints of each model, summary.csv
    assert len(runs[0]) == 13
    assert "seed-2.checkpoint-01.safetensors" in runs[0]
    for name, data in runs[0].items():
        assert runs[1][name] == data, name


def test_train_writes_each_models_checkpoints_that_census_can_read(tmp_path, cli):
    out = tmp_path / "models"
    argv = ["train", "--task", "xor", "--hidden", "2", "--seeds", "0,4", "--epochs", "300"]
    code, stdout, stderr = cli([*argv, "--checkpoints", "3", "--out", str(out), "--quiet"])
    assert code == 0, stderr
    config = TrainConfig(hidden=(2,), epochs=300)
    models = train_models(make_task("xor"), [0, 4], config, checkpoints=3)
    names = []
    for m in models:
        for k, point in enumerate(m.checkpoints):
            name = f"seed-{m.seed}.checkpoint-{k:02d}.safetensors"
            assert checkpoint_file_name(m.seed, k, 3) == name
            names.append(name)
            net, meta = load_model(out / name)
            # the same weights as the API gives (stored as float32, as trained)
            for got, want in zip(
                net.weights + net.biases, point.network.weights + point.network.biases
            ):
                np.testing.assert_array_equal(got, want)
            assert (meta["task"], int(meta["seed"])) == ("xor", m.seed)
            assert (int(meta["checkpoint"]), int(meta["checkpoints"])) == (k, 3)
            assert int(meta["epoch"]) == point.epoch
            assert (
                int(meta["total_epochs"])
                == m.epochs
                == int(read_metadata(out / f"seed-{m.seed}.safetensors")["epochs"])
            )
            assert float(meta["progress"]) == point.progress
            assert float(meta["train_loss"]) == point.train_loss
            assert float(meta["val_accuracy"]) == point.val_accuracy
            assert int(meta["max_epochs"]) == 300
    assert {p.name for p in out.glob("*.checkpoint-*")} == set(names)
    size = sum((out / name).stat().st_size for name in names)
    assert f"wrote 6 checkpoint files ({decimal(size)}) to {out}\n" in stdout

    # the census command takes a checkpoint like any model file
    report = tmp_path / "census.json"
    code, _, stderr = cli(
        [
            "census",
            "--model", str(out / names[1]),
            "--data", str(out / "seed-0.npz"),
            "--output", str(report),
            "--quiet",
        ])  # fmt: skip
    assert code == 0, stderr
    doc = json.loads(report.read_text())
    x, _ = load_data(out / "seed-0.npz")
    expected = census(models[0].checkpoints[1].network, x)
    assert doc["n_candidates"] == expected.n_candidates > 0
    assert doc["n_valid"] == expected.n_valid


def test_checkpoint_file_names_sort_in_checkpoint_order():
    assert checkpoint_file_name(3, 5, 10) == "seed-3.checkpoint-05.safetensors"
    assert checkpoint_file_name(3, 7, 150) == "seed-3.checkpoint-007.safetensors"
    names = [checkpoint_file_name(0, k, 120) for k in range(120)]
    assert sorted(names) == names


def test_without_checkpoints_no_checkpoint_files_and_no_line(tmp_path, cli):
    out = tmp_path / "models"
    code, stdout, _ = cli(["train", "--seeds", "1", "--epochs", "20", "--out", str(out), "-q"])
    assert code == 0
    assert not list(out.glob("*checkpoint*")) and "checkpoint files" not in stdout
