"""Model files: the same model always gives the same bytes, and reads back as written."""

from __future__ import annotations

import hashlib

import numpy as np

from circuit_census.network import Network
from circuit_census.training.modelfiles import load_model, read_metadata, save_model

METADATA = {"task": "xor", "seed": 3, "converged": True, "final_loss": 0.0123, "lr": 0.01}


def _network() -> Network:
    rng = np.random.default_rng(0)
    ws = (rng.normal(size=(4, 2)), rng.normal(size=(1, 4)))
    bs = (rng.normal(size=4), rng.normal(size=1))
    return Network(ws, bs, "relu", "identity")


def test_the_same_model_always_writes_the_same_bytes(tmp_path):
    digests = set()
    for i in range(8):  # safetensors orders metadata by hash, differently from map to map
        path = tmp_path / f"m{i}.safetensors"
        order = list(METADATA.items())[i % len(METADATA) :] + list(METADATA.items())[: i % 5]
        save_model(path, _network(), dict(order))
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_a_model_file_reads_back_as_written(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, _network(), {**METADATA, "note": "é ü"})
    network, meta = load_model(path)
    for got, want in zip(network.weights, _network().weights):
        assert np.array_equal(got, want.astype(np.float32))
    assert meta == read_metadata(path)
    assert meta["task"] == "xor" and meta["seed"] == "3" and meta["note"] == "é ü"
    assert (network.activation, network.output_activation) == ("relu", "identity")
