"""The first run: kernels compile lazily into the cache, the time spent compiling is said
apart and never counted in the census rate, and what a small census needs has nothing to
compile (NumPy paths that agree with the kernels). Timings: benchmarks/first_run.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuit_census.circuits.space import popcount
from circuit_census.measures import uniqueness
from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model


def census_process(tmp: Path, cache: Path) -> tuple[str, dict]:
    """A 2-4-1 census in a fresh interpreter with the Numba cache in ``cache``."""
    rng = np.random.default_rng(0)
    net = Network(
        (rng.normal(size=(4, 2)), rng.normal(size=(1, 4))),
        (rng.normal(size=4), rng.normal(size=1)),
    )
    save_model(tmp / "m.safetensors", net)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float).repeat(3, 0)
    save_data(tmp / "d.npz", x, x[:, :1])
    argv = [sys.executable, "-m", "circuit_census", "census", "--model", str(tmp / "m.safetensors"),
            "--data", str(tmp / "d.npz"), "--output", str(tmp / "c.json")]  # fmt: skip
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads((tmp / "c.json").read_text())


def test_compiling_is_said_apart_and_not_counted_in_the_rate(tmp_path):
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    first, doc = census_process(tmp_path, cache)
    compiled = re.search(r"compiled kernels in ([0-9.]+) s \(first run only", first)
    assert compiled, first
    assert doc["compile_seconds"] > 0 and doc["compile_seconds"] < doc["seconds"]
    rate = re.search(r"in [0-9.]+ s \(([0-9,.]+) candidates/s", first)
    scoring = doc["seconds"] - doc["compile_seconds"]
    expected = doc["n_candidates"] / scoring
    assert float(rate.group(1).replace(",", "")) == pytest.approx(expected, rel=0.02, abs=0.06)
    assert any(cache.rglob("*.nbi"))  # compiled into the cache ...
    later, doc = census_process(tmp_path, cache)
    assert "compiled kernels" not in later  # ... and read from it the next time
    assert doc["compile_seconds"] == 0


def test_importing_the_package_compiles_nothing():
    code = (
        "from numba.core.event import install_timer\n"
        "times = []\n"
        "with install_timer('numba:compile', times.append):\n"
        "    import circuit_census.cli, circuit_census.circuits.census, "
        "circuit_census.measures.uniqueness, circuit_census.measures.figures\n"
        "print(len(times))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


@pytest.mark.parametrize("seed", range(4))
def test_small_set_paths_agree_with_the_kernels(seed):
    rng = np.random.default_rng(seed)
    n, n_words = int(rng.integers(2, 300)), int(rng.integers(1, 3))
    # rows of few possible edges, so that many contain one another
    bits = rng.integers(0, 2**6, size=(n, n_words)).astype(np.uint64)
    pc = popcount(bits)
    order = np.argsort(pc, kind="stable")
    bits, pc = np.ascontiguousarray(bits[order]), np.ascontiguousarray(pc[order])
    small = uniqueness._minimal_flags_small(bits, pc)
    assert small.tolist() == uniqueness._minimal_flags(bits, pc).tolist()
    assert 0 < small.sum() < n
    jac, nested, disjoint = uniqueness._all_pairs_small(bits, pc)
    k_jac, k_nested, k_disjoint = uniqueness._all_pairs(bits, pc)
    assert jac == pytest.approx(k_jac, rel=1e-12) and (nested, disjoint) == (k_nested, k_disjoint)
