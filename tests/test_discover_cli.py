"""`circuit-census discover`: a run prints the circuit and its grade and writes JSON and
figures that agree with the Python API; bad input gets one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from circuit_census.circuits.settings import CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.discovery.grading import discover_and_grade
from circuit_census.discovery.methods import DiscoveryOptions
from circuit_census.discovery.patching import flags_to_masks
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model


def two_pathways() -> Network:
    """out = sigmoid(10 relu(x0) + 10 relu(x0) - 5): two disjoint minimal circuits."""
    return Network(
        (np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[10.0, 10.0]])),
        (np.zeros(2), np.array([-5.0])),
        "relu",
        "sigmoid",
    )


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    x = np.repeat(corners, 5, axis=0)
    model, data = tmp_path / "two.safetensors", tmp_path / "two.npz"
    save_model(model, two_pathways(), {"task": "x0"})
    save_data(data, x, x[:, :1].copy())
    return {"model": model, "data": data, "dir": tmp_path, "x": x}


def test_discover_prints_and_writes_what_the_api_returns(files, cli):
    out, figs = files["dir"] / "acdc.json", files["dir"] / "figs"
    code, stdout, err = cli(["discover", "--model", str(files["model"]), "--data",
                             str(files["data"]), "--method", "acdc", "--seeds", "6",
                             "--output", str(out), "--figures", str(figs), "-q"])  # fmt: skip
    assert code == 0, err
    expected = discover_and_grade(
        two_pathways(), files["x"], None, CensusSettings(), DiscoveryOptions("acdc"), seeds=6
    )
    doc = json.loads(out.read_text())
    assert doc["n_valid"] == expected.n_valid and doc["n_minimal"] == 2
    assert [r["edge_masks"] for r in doc["runs"]] == [
        [m.astype(int).tolist() for m in _masks(r.discovered.flags)] for r in expected.runs
    ]
    assert doc["coverage"]["returned"] == expected.coverage.returned == 2
    assert all(r["grade"]["minimal"] for r in doc["runs"])
    assert "census: 12 valid of 15 candidates, 2 minimal" in stdout
    assert "returned 2 of 2 minimal circuits" in stdout
    assert "x0->h1.0 h1.0->y0" in stdout or "x0->h1.1 h1.1->y0" in stdout
    assert (figs / "discovered_circuit.png").is_file()
    assert not (figs / "faithfulness.png").exists()  # acdc ranks no edges


def test_discover_eap_ig_writes_its_faithfulness_curve(files, cli):
    out, figs = files["dir"] / "ig.json", files["dir"] / "figs"
    code, stdout, err = cli(["discover", "--model", str(files["model"]), "--data",
                             str(files["data"]), "--method", "eap-ig", "--steps", "8",
                             "--ablation", "resample", "--output", str(out),
                             "--figures", str(figs), "-q"])  # fmt: skip
    assert code == 0, err
    doc = json.loads(out.read_text())
    curve = doc["runs"][0]["faithfulness"]
    assert len(curve["points"]) == 6 and curve["points"][-1]["valid"]
    assert curve["census_smallest_valid"] == 4  # resample: both pathways are needed
    assert doc["settings"]["resample_pairs"] == "seeded"
    assert (figs / "faithfulness.png").is_file() and (figs / "faithfulness.svg").is_file()
    assert "faithfulness: smallest valid top-k circuit" in stdout


def test_discover_without_a_census_says_what_it_could_not_grade(files, cli):
    code, stdout, err = cli(["discover", "--model", str(files["model"]), "--data",
                             str(files["data"]), "--method", "magnitude",
                             "--max-candidates", "5", "-q"])  # fmt: skip
    assert code == 0, err
    assert "census:" not in stdout
    assert "not computed (census over --max-candidates): minimal" in stdout


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--method", "sae"], "unknown discovery method"),
        (["--method", "acdc", "--k", "3"], "not acdc"),
        (["--method", "eap", "--k", "0"], "positive integer"),
        (["--method", "acdc", "--tau", "-1"], "tau"),
        (["--method", "acdc", "--seeds", "0"], "seeds"),
        (["--method", "acdc", "--ablation", "patch"], "unknown ablation"),
        (["--method", "acdc", "--resample-pairs", "x"], "resample pairs"),
        ([], "--method"),
    ],
)
def test_bad_input_one_line_exit_2(files, cli, extra, fragment):
    out = files["dir"] / "never.json"
    code, stdout, err = cli(["discover", "--model", str(files["model"]), "--data",
                             str(files["data"]), *extra, "--output", str(out)])  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert fragment.lower() in err.lower()
    assert not out.exists()


def _masks(flags):
    return flags_to_masks(CircuitSpace((2, 2, 1)), flags)
