"""First-run cost: the first census after install (an empty Numba cache) against later ones.

Writes a random 2-4-1 network and its 40-point data set, then runs the same
`circuit-census census` command in fresh interpreters, side by side in one run:
  * cold: ``NUMBA_CACHE_DIR`` set to a new, empty folder (as just after install), so
    every kernel the census needs is compiled and cached there;
  * warm: the same command again with that folder, now filled (every later run);
  * warm again, for the noise.
It prints each wall-clock time (start-up included), the CPU seconds the interpreter used
(less sensitive to a busy machine than wall-clock time), the census's own reported rate
and its "compiled kernels in X s" line, and the cold-minus-warm differences, which the
tool keeps under 3 s on a 2-4-1 network.

    python benchmarks/first_run.py
    python benchmarks/first_run.py --hidden 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from circuit_census.network import Network
from circuit_census.training.modelfiles import save_data, save_model


def write_problem(folder: Path, hidden: int, seed: int) -> tuple[Path, Path]:
    """A random 2-HIDDEN-1 relu network and noisy XOR corners, as the CLI's files."""
    rng = np.random.default_rng(seed)
    net = Network(
        (rng.normal(size=(hidden, 2)), rng.normal(size=(1, hidden))),
        (rng.normal(size=hidden), rng.normal(size=1)),
        "relu",
    )
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float).repeat(10, 0)
    y = np.array([[0.0], [1.0], [1.0], [0.0]]).repeat(10, 0)
    model, data = folder / "model.safetensors", folder / "data.npz"
    save_model(model, net)
    save_data(data, corners + rng.normal(scale=0.05, size=corners.shape), y)
    return model, data


def timed_census(model: Path, data: Path, cache_dir: Path) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds of one census command in a fresh interpreter, and its
    output."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    argv = [sys.executable, "-m", "circuit_census", "census", "--model", str(model)]
    argv += ["--data", str(data), "--threshold", "0.5"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"census failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return seconds, cpu, proc.stdout


def reported(stdout: str) -> str:
    """The census's rate and compile lines, as it printed them."""
    rate = re.search(r"\(([^;()]*candidates/s)", stdout)
    compiled = re.search(r"compiled kernels in [0-9.]+ s", stdout)
    parts = [rate.group(1) if rate else "no rate", compiled.group(0) if compiled else ""]
    return "; ".join(p for p in parts if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=4, help="hidden width (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="warm runs (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model, data = write_problem(folder, args.hidden, args.seed)
        cache_dir = folder / "numba-cache"
        cache_dir.mkdir()
        cold, cold_cpu, out = timed_census(model, data, cache_dir)
        print(f"2-{args.hidden}-1 census, fresh interpreter each time (wall, CPU)")
        print(f"  cold (empty Numba cache): {cold:6.2f} s {cold_cpu:6.2f} s   [{reported(out)}]")
        warm = []
        for k in range(args.repeats):
            seconds, cpu, out = timed_census(model, data, cache_dir)
            warm.append((seconds, cpu))
            print(
                f"  warm #{k + 1} (cache filled):   {seconds:6.2f} s {cpu:6.2f} s   "
                f"[{reported(out)}]"
            )
        best, best_cpu = min(w for w, _ in warm), min(c for _, c in warm)
        print(
            f"  cold - warm: {cold - best:+.2f} s wall, {cold_cpu - best_cpu:+.2f} s CPU "
            "(target: at most +3.00 s)"
        )


if __name__ == "__main__":
    main()
