"""`circuit-census census` and `count`: a normal run, and every kind of bad input gets
one line on stderr, exit code 2 and no output file."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from circuit_census.circuits.census import census
from circuit_census.network import Network
from circuit_census.training.modelfiles import load_model, save_data, save_model


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "circuit_census", *args], capture_output=True, text=True, timeout=300
    )


def xor_network() -> Network:
    """Computes XOR exactly: relu(a + b) - 2 relu(a + b - 1)."""
    return Network(
        (np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[1.0, -2.0]])),
        (np.array([0.0, -1.0]), np.array([0.0])),
        "relu",
    )


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    x = np.repeat(corners, 10, axis=0) + rng.normal(0, 0.05, size=(40, 2))
    y = np.repeat(np.array([[0.0], [1.0], [1.0], [0.0]]), 10, axis=0)
    model = tmp_path / "xor.safetensors"
    save_model(model, xor_network(), {"task": "xor"})
    data = tmp_path / "xor.npz"
    save_data(data, x, y)
    return {"model": model, "data": data, "dir": tmp_path}


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\x1b" not in proc.stderr and "allow_pickle" not in proc.stderr  # no library text
    assert fragment.lower() in lines[0].lower()


def test_census_writes_json_with_the_circuits_of_the_engine(files):
    out = files["dir"] / "census.json"
    proc = run("census", "--model", str(files["model"]), "--data", str(files["data"]),
               "--output", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    network, _ = load_model(files["model"])
    x = np.load(files["data"])["x"].astype(float)
    expected = census(network, x)
    assert doc["n_candidates"] == 15 == expected.n_candidates
    assert doc["n_valid"] == expected.n_valid > 0
    assert doc["n_decided_by_bounds"] == expected.n_bounded
    listed = {json.dumps(c["edge_masks"]) for c in doc["valid_circuits"]}
    assert listed == {
        json.dumps([m.tolist() for m in expected.space.bits_to_masks(b)]) for b in expected.valid
    }
    assert doc["settings"]["criterion"] == "mse" and doc["settings"]["threshold"] == 0.05
    assert doc["n_minimal"] >= 1 and "measures" in doc
    assert "valid of 15 candidates" in proc.stdout


def test_census_accuracy_mean_ablation_and_compat(files):
    out = files["dir"] / "acc.json"
    proc = run("census", "--model", str(files["model"]), "--data", str(files["data"]),
               "--criterion", "accuracy", "--ablation", "mean", "--compat", "meloux2025",
               "--output", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["settings"]["threshold"] == 0.99 and doc["settings"]["compat"] == "meloux2025"
    assert doc["n_candidates"] == 2  # one hidden node kept, fed by both inputs


def test_census_resample_ablation_over_every_pair(files, cli):
    out = files["dir"] / "resample.json"
    code, stdout, err = cli(["census", "--model", str(files["model"]), "--data",
                             str(files["data"]), "--ablation", "resample", "--resample-pairs",
                             "all", "--output", str(out), "--quiet"])  # fmt: skip
    assert code == 0, err
    doc = json.loads(out.read_text())
    network, _ = load_model(files["model"])
    x = np.load(files["data"])["x"].astype(float)
    from circuit_census.circuits.settings import CensusSettings

    expected = census(
        network, x, settings=CensusSettings(ablation="resample", resample_pairs="all")
    )
    assert doc["settings"]["ablation"] == "resample" and doc["settings"]["resample_pairs"] == "all"
    assert doc["n_valid"] == expected.n_valid
    listed = {json.dumps(c["edge_masks"]) for c in doc["valid_circuits"]}
    assert listed == {
        json.dumps([m.tolist() for m in expected.space.bits_to_masks(b)]) for b in expected.valid
    }


def test_many_valid_circuits_go_to_a_compact_file_when_asked(files):
    out, path = files["dir"] / "many.json", files["dir"] / "all.circuits"
    proc = run("census", "--model", str(files["model"]), "--data", str(files["data"]),
               "--threshold", "10", "--max-listed", "3", "--circuits-file", str(path),
               "--output", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["n_valid"] == 15 and doc["n_listed"] == 3 and doc["n_left_out"] == 12
    from circuit_census.circuits.circuitfile import read_circuits

    assert doc["circuits_file"] == str(path)
    _, bits = read_circuits(path)
    assert len(bits) == 15


def test_state_dict_import_with_activation_flag(files):
    sd = {"layers.0.0.weight": torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
          "layers.0.0.bias": torch.tensor([0.0, -1.0]),
          "layers.1.weight": torch.tensor([[1.0, -2.0]]),
          "layers.1.bias": torch.tensor([0.0])}  # fmt: skip
    path = files["dir"] / "model.pt"
    torch.save(sd, path)
    proc = run("census", "--model", str(path), "--data", str(files["data"]), "--quiet")
    assert_one_line_error(proc, "--activation")
    proc = run("census", "--model", str(path), "--data", str(files["data"]),
               "--activation", "relu", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "of 15 candidates" in proc.stdout


def test_count_prints_exact_counts():
    proc = run("count", "--hidden", "16")
    assert proc.returncode == 0
    assert "4,294,967,295" in proc.stdout
    assert "999" in run("count", "--hidden", "3,2").stdout


def bad_files(tmp: Path) -> dict[str, Path]:
    made = {}
    made["text"] = tmp / "notes.safetensors"
    made["text"].write_text("not a model")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    made["pickle"] = tmp / "evil.pt"
    torch.save({"w": Evil()}, made["pickle"])
    made["unchained"] = tmp / "unchained.pt"
    torch.save({"0.weight": torch.ones(3, 2), "0.bias": torch.ones(3),
                "1.weight": torch.ones(1, 4), "1.bias": torch.ones(1)},
               made["unchained"])  # fmt: skip
    made["nan"] = tmp / "nan.pt"
    torch.save(
        {"0.weight": torch.tensor([[float("nan"), 1.0]]), "0.bias": torch.ones(1)}, made["nan"]
    )
    made["nan_x"] = tmp / "nan.npz"
    np.savez(made["nan_x"], x=np.array([[np.nan, 0.0]]), y=np.array([[1.0]]))
    made["wide_x"] = tmp / "wide.npz"
    np.savez(made["wide_x"], x=np.zeros((4, 3)), y=np.zeros((4, 1)))
    made["no_y"] = tmp / "noy.npz"
    np.savez(made["no_y"], x=np.zeros((4, 2)))
    made["pickled_npz"] = tmp / "objects.npz"
    np.savez(made["pickled_npz"], x=np.array([{"a": 1}], dtype=object))
    made["pickle_file"] = tmp / "plain.pkl"
    made["pickle_file"].write_bytes(pickle.dumps({"0.weight": [[1.0]]}))
    made["module"] = tmp / "module.pt"  # torch.save(model) rather than its state_dict
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()), made["module"])
    made["csv"] = tmp / "data.csv"
    made["csv"].write_text("x0,x1\n0,1\n")
    return made


@pytest.mark.parametrize(
    "override, fragment",
    [
        ({"--model": "missing.safetensors"}, "does not exist"),
        ({"--data": "missing.npz"}, "does not exist"),
        ({"--model": "@text"}, "cannot read model"),
        ({"--model": "@pickle", "--activation": "relu"}, "not a plain tensor"),
        ({"--model": "@pickle_file", "--activation": "relu"}, "not a plain tensor"),
        ({"--model": "@unchained", "--activation": "relu"}, "do not chain"),
        ({"--model": "@nan", "--activation": "relu"}, "nan"),
        ({"--data": "@nan_x"}, "nan"),
        ({"--data": "@wide_x"}, "input columns"),
        ({"--data": "@pickled_npz"}, "cannot read data"),
        ({"--data": "@pickled_npz"}, "pickled data is never loaded"),
        ({"--data": "@csv"}, "not an .npz archive"),
        ({"--model": "@module", "--activation": "relu"}, "save model.state_dict()"),
        ({"--activation": "gelu"}, "unknown activation"),
        ({"--output-activation": "softmax"}, "unknown activation"),
        ({"--ablation": "patch"}, "unknown ablation"),
        ({"--ablation": "resample", "--resample-pairs": "some"}, "unknown resample pairs"),
        ({"--ablation": "resample", "--resample-seed": "-2"}, "non-negative integer"),
        ({"--criterion": "kl"}, "unknown criterion"),
        ({"--threshold": "-1"}, "non-negative"),
        ({"--criterion": "accuracy", "--threshold": "1.5"}, "fraction"),
        ({"--criterion": "accuracy", "--data": "@no_y"}, "no array 'y'"),
        ({"--compat": "other"}, "compatibility mode"),
        ({"--max-candidates": "10"}, "exceed"),
        ({"--threshold": "abc"}, "threshold"),
    ],
)
def test_bad_input_one_line_exit_2_no_output(files, override, fragment):
    made = bad_files(files["dir"])
    args = {"--model": str(files["model"]), "--data": str(files["data"])}
    for key, value in override.items():
        if value.startswith("@"):
            value = str(made[value[1:]])
        elif value.startswith("missing"):
            value = str(files["dir"] / value)
        args[key] = value
    out = files["dir"] / "never.json"
    argv = ["census", *[part for kv in args.items() for part in kv], "--output", str(out)]
    proc = run(*argv)
    assert_one_line_error(proc, fragment)
    assert not out.exists()
    assert "pwned" not in proc.stdout
    assert not list(files["dir"].glob("never*"))


def test_unknown_command_and_option_are_one_line_errors():
    assert_one_line_error(run("censusx"), "no such command")
    assert_one_line_error(run("count", "--widths", "3"), "no such option")


def test_command_line_needs_no_click_package():
    # Typer bundles its own click; the base install must not rely on the click package.
    code = (
        "import sys; sys.modules['click'] = None\n"
        "from circuit_census.cli import main\n"
        "main(['count', '--hidden', '2'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "15 candidate circuits" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-c", code.replace("'--hidden', '2'", "'--hidden', '2', '--nope'")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_help_lists_every_command_in_order():
    import typer

    from circuit_census.cli.app import app

    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    study = group.get_command(ctx, "study")
    order = [
        "census",
        "count",
        "discover",
        "explain",
        "report",
        "export",
        "reproduce",
        "tasks",
        "train",
        "study",
    ]
    assert group.list_commands(ctx) == order
    assert study.list_commands(typer.Context(study, parent=ctx)) == ["run", "preset"]


def test_imports_flow_one_way_and_only_the_command_line_draws_bars():
    import ast

    import circuit_census

    src = Path(circuit_census.__file__).parent
    cli_modules = {p.stem for p in (src / "cli").glob("*.py")}
    for path in src.rglob("*.py"):
        where = path.relative_to(src)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                names = {a.name for a in node.names}
                if node.module == "circuit_census.cli" and where.parts[0] == "cli":
                    # command modules never import the package that composes them
                    assert str(where) in ("cli/__init__.py", "cli/app.py"), where
                    assert names <= cli_modules, where
                elif node.module == "circuit_census.cli":
                    assert names == {"main"}, where
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                if module.split(".")[0] == "rich":  # Rich only in the command line,
                    assert where.parts[0] == "cli", where
                if module == "rich.progress":  # and its bars only in cli/progress.py
                    assert str(where) == "cli/progress.py", where
