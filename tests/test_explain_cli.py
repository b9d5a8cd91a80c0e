"""``circuit-census explain``: the four levels printed, the JSON it writes, and bad input
as one line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from circuit_census.circuits.settings import CensusSettings
from circuit_census.explanations.explain import explain
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners
from circuit_census.training.modelfiles import save_data, save_model

XOR = np.array([[0.0], [1.0], [1.0], [0.0]])


def xor_231() -> Network:
    """h1 = A + B, h2 = relu(A + B - 1), o = h1 - 2 h2 (XOR), and a third neuron that
    barely reaches the output."""
    w0 = np.array([[1.0, 1.0], [1.0, 1.0], [0.7, -0.4]])
    w1 = np.array([[1.0, -2.0, 0.03]])
    return Network((w0, w1), (np.array([0.0, -1.0, 0.2]), np.zeros(1)), "relu", "identity")


@pytest.fixture
def files(tmp_path):
    model, data = tmp_path / "m.safetensors", tmp_path / "d.npz"
    save_model(model, xor_231())
    save_data(data, corners(2), XOR)
    return model, data, tmp_path


@pytest.mark.parametrize("compat", [None, "meloux2025"])
def test_explain_writes_every_level(cli, files, compat):
    model, data, tmp = files
    out = tmp / "explanation.json"
    argv = ["explain", "--model", str(model), "--data", str(data), "--output", str(out)]
    code, stdout, stderr = cli(argv + (["--compat", compat] if compat else []))
    assert code == 0, stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    settings = CensusSettings("accuracy" if compat else "mse", compat=compat)
    api = explain(xor_231(), corners(2), XOR, settings)
    assert [c["n_interpretations"] for c in doc["circuits"]] == [
        c.n_interpretations for c in api.circuits
    ]
    assert [c["edge_masks"] for c in doc["circuits"]] == [
        [m.tolist() for m in c.edge_masks] for c in api.circuits
    ]
    assert doc["n_formulas"] == len(doc["formulas"]) == api.n_formulas > 0
    for entry, f in zip(doc["formulas"], api.formulas):
        assert entry["formula"] == f.formula.text
        assert entry["n_minimal_mappings"] == f.n_minimal_mappings == len(entry["minimal_mappings"])
        for mapping in entry["minimal_mappings"]:
            assert len(mapping) == len(f.formula.intermediate)
            assert all(n["layer"] == 1 and n["neurons"] for n in mapping)
    assert doc["summary"] == api.summary().to_dict()
    assert f"circuits: {len(api.circuits)} valid" in stdout
    assert f"algorithms: {api.n_formulas} of {api.n_candidate_formulas}" in stdout
    assert "interpretations:" in stdout and "mappings:" in stdout


def test_explain_matches_the_census_json_masks(cli, files):
    model, data, tmp = files
    code, _, _ = cli(
        ["census", "--model", str(model), "--data", str(data), "--output", str(tmp / "c.json")]
    )
    assert code == 0
    code, _, _ = cli(
        ["explain", "--model", str(model), "--data", str(data), "--output", str(tmp / "e.json")]
    )
    assert code == 0
    census = json.loads((tmp / "c.json").read_text())
    explained = json.loads((tmp / "e.json").read_text())
    assert [c["edge_masks"] for c in explained["circuits"]] == [
        c["edge_masks"] for c in census["valid_circuits"]
    ]


def test_explain_lists_interpretations_on_request(cli, files):
    model, data, tmp = files
    out = tmp / "e.json"
    argv = ["explain", "--model", str(model), "--data", str(data), "--output", str(out)]
    assert cli(argv + ["--interpretations", "1"])[0] == 0
    doc = json.loads(out.read_text())
    for circuit in doc["circuits"]:
        listed = circuit.get("interpretations", [])
        assert len(listed) == min(1, circuit["n_interpretations"])
        for neuron in (n for i in listed for n in i):
            assert set(neuron["table"]) <= {"0", "1"} and len(neuron["table"]) == 4


def test_bad_input_is_one_line_and_exit_code_2(cli, files, tmp_path):
    model, data, tmp = files
    no_y = tmp / "x_only.npz"
    np.savez(no_y, x=corners(2))
    two_outputs = tmp / "two.safetensors"
    net = xor_231()
    save_model(
        two_outputs,
        Network(
            net.weights[:1] + (np.vstack([net.weights[1]] * 2),),
            net.biases[:1] + (np.zeros(2),),
            "relu",
        ),
    )
    base = ["explain", "--model", str(model), "--data", str(data)]
    cases = [
        (["explain", "--model", str(tmp / "nope.pt"), "--data", str(data)], "does not exist"),
        (["explain", "--model", str(model), "--data", str(no_y)], "y"),
        (["explain", "--model", str(two_outputs), "--data", str(data)], "one-output"),
        (base + ["--compat", "other"], "compatibility mode"),
        (base + ["--output", str(tmp)], "folder"),
        (base + ["--max-listed", "-1"], "non-negative"),
        (base + ["--ablation", "resample"], "use zero or mean ablation"),
    ]
    for argv, words in cases:
        code, _, stderr = cli(argv)
        assert code == 2, argv
        assert len(stderr.strip().splitlines()) == 1 and words in stderr, stderr
        assert "Traceback" not in stderr
