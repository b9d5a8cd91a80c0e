"""Figures whenever asked: past --max-measured, sizes and edge and node frequencies are
counted exactly as the census streams its valid circuits (checked against brute force),
and the circuits drawn come from a seeded uniform sample, said so in their titles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from brute_force import admissible_edge_flags

from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.census import census
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace
from circuit_census.measures.tally import CircuitTally
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model

CORNERS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)


def random_network(sizes: tuple[int, ...], seed: int) -> Network:
    rng = np.random.default_rng(seed)
    weights = tuple(rng.normal(size=(m, n)) for n, m in zip(sizes, sizes[1:]))
    biases = tuple(rng.normal(size=m) for m in sizes[1:])
    return Network(weights, biases, "relu")


def brute_force_counts(net: Network, x: np.ndarray, settings: CensusSettings) -> dict:
    """Sizes, edge counts and node counts over the valid circuits, one circuit at a time."""
    space = CircuitSpace(net.sizes)
    sizes = np.zeros(space.n_edges + 1, dtype=int)
    edges = [np.zeros(shape, dtype=int) for shape in space.layer_shapes]
    nodes = [np.zeros(n, dtype=int) for n in net.sizes]
    fewest_nodes = None
    for flags, masks in admissible_edge_flags(space):
        if not evaluate_circuit(net, masks, x, settings=settings).valid:
            continue
        sizes[flags.sum()] += 1
        touched_total = 0
        for layer, n in enumerate(net.sizes):
            touched = np.zeros(n, dtype=bool)
            if layer > 0:
                touched |= masks[layer - 1].any(axis=1)  # receives
            if layer < len(masks):
                touched |= masks[layer].any(axis=0)  # sends
            nodes[layer] += touched
            touched_total += int(touched.sum())
        for layer, m in enumerate(masks):
            edges[layer] += m
        fewest_nodes = touched_total if fewest_nodes is None else min(fewest_nodes, touched_total)
    return {"sizes": sizes, "edges": edges, "nodes": nodes, "min_nodes": fewest_nodes}


def median_mse(net: Network, x: np.ndarray) -> float:
    """The median mse of the admissible circuits of ``net`` on ``x``."""
    space = CircuitSpace(net.sizes)
    return float(
        np.median([evaluate_circuit(net, m, x).mse for _, m in admissible_edge_flags(space)])
    )


@pytest.mark.parametrize("sizes, seed", [((2, 3, 1), 0), ((2, 2, 2, 1), 1), ((3, 2, 1), 2)])
@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_counts_are_exact(sizes, seed, workers):
    net = random_network(sizes, seed)
    x = np.random.default_rng(seed).normal(size=(12, sizes[0]))
    settings = CensusSettings(threshold=median_mse(net, x))  # about half valid
    expected = brute_force_counts(net, x, settings)
    assert 3 < expected["sizes"].sum() < CircuitSpace(sizes).count()  # some valid, not all
    tally = CircuitTally(CircuitSpace(sizes), sample_size=4)
    # hold at most 2: the census gives up holding, as past --max-measured
    options = RunOptions(collect=2, stream=tally.add, workers=workers)
    result = census(net, x, settings=settings, options=options)
    assert result.valid is None and result.n_valid == tally.n_valid == expected["sizes"].sum()
    assert tally.size_counts.tolist() == expected["sizes"].tolist()
    for got, want in zip(
        tally.edge_counts + tally.node_counts, expected["edges"] + expected["nodes"]
    ):
        assert got.tolist() == want.tolist()
    assert tally.min_nodes == expected["min_nodes"]
    assert tally.min_edges == int(np.flatnonzero(expected["sizes"])[0])
    assert len(tally.sample) == 4


def test_the_sample_is_uniform_seeded_and_made_of_the_streamed_circuits():
    space = CircuitSpace((2, 3, 1))
    everything = census(random_network((2, 3, 1), 0), CORNERS,
                        settings=CensusSettings(threshold=100)).valid  # fmt: skip
    n = len(everything)
    assert n == 63
    blocks = np.array_split(everything, [5, 6, 20, 40])

    def sample(seed: int, k: int = 10) -> np.ndarray:
        tally = CircuitTally(space, sample_size=k, seed=seed)
        for block in blocks:
            tally.add(block)
        return tally.sample

    assert np.array_equal(sample(7), sample(7))  # the same seed, the same sample
    assert not np.array_equal(sample(7), sample(8))
    assert np.array_equal(sample(0, k=100), everything)  # room for all: all of them
    rows = {row.tobytes(): i for i, row in enumerate(everything)}
    seen = np.zeros(n)
    trials = 2000
    for seed in range(trials):
        picked = sample(seed)
        assert len({r.tobytes() for r in picked}) == 10  # without replacement
        for row in picked:
            seen[rows[row.tobytes()]] += 1  # (a KeyError: not a streamed circuit)
    # each circuit is picked with probability 10/63 (std of the rate about 0.008)
    assert np.abs(seen / trials - 10 / n).max() < 0.05


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    save_model(tmp_path / "m.safetensors", random_network((2, 3, 1), 0))
    x = CORNERS.repeat(3, 0) + np.random.default_rng(1).normal(scale=0.05, size=(12, 2))
    save_data(tmp_path / "d.npz", x, np.zeros((12, 1)))
    return {"model": tmp_path / "m.safetensors", "data": tmp_path / "d.npz", "dir": tmp_path}


def test_census_figures_past_max_measured_are_written_from_streamed_counts(files, cli):
    out, figures = files["dir"] / "c.json", files["dir"] / "figs"
    argv = ["census", "--model", str(files["model"]), "--data", str(files["data"]),
            "--threshold", "0.3", "--max-measured", "3",
            "--output", str(out), "--figures", str(figures), "--quiet"]  # fmt: skip
    code, stdout, err = cli(argv)
    assert code == 0, err
    names = sorted(p.name for p in figures.iterdir())
    kinds = ["circuit", "frequency", "minimal_circuits", "sizes"]
    assert names == sorted(f"{k}.{ext}" for k in kinds for ext in ("png", "svg"))
    doc = json.loads(out.read_text())
    assert doc["measures"] is None
    counts = doc["streamed_counts"]
    net = random_network((2, 3, 1), 0)
    expected = brute_force_counts(net, np.load(files["data"])["x"], CensusSettings(threshold=0.3))
    n_valid = int(expected["sizes"].sum())
    assert counts["n_valid"] == doc["n_valid"] == n_valid > 3
    assert counts["size_counts"] == expected["sizes"].tolist()
    for got, want in zip(counts["edge_frequency"], expected["edges"]):
        assert np.allclose(got, want / n_valid)
    assert counts["n_sampled"] == 3 and counts["min_nodes"] == expected["min_nodes"]
    assert f"counted exactly over all {n_valid:,} valid circuits" in stdout
    assert "uniform sample of 3" in stdout


def test_streamed_figures_say_they_draw_from_a_sample(monkeypatch, tmp_path):
    import circuit_census.measures.figures as figures

    net = random_network((2, 3, 1), 0)
    settings = CensusSettings(threshold=100)
    tally = CircuitTally(CircuitSpace((2, 3, 1)), sample_size=5)
    result = census(
        net, CORNERS, settings=settings, options=RunOptions(collect=1, stream=tally.add)
    )
    drawn = {}
    monkeypatch.setattr(figures, "save_figures", lambda figs, out, prefix: drawn.update(figs))
    figures.write_streamed_figures(result, tally, tmp_path)
    assert sorted(drawn) == ["circuit", "frequency", "minimal_circuits", "sizes"]
    sample = "a sample of 5 of 63 valid circuits"
    assert sample in drawn["minimal_circuits"].get_suptitle()
    assert sample in drawn["circuit"].axes[0].get_title()
    assert "63 valid circuits (counted exactly" in drawn["frequency"].get_suptitle()
    assert "63 valid (exact counts)" in drawn["sizes"].axes[0].get_title()
