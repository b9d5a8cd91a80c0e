"""Census speed: the `circuit-census census` command against a plain per-circuit loop.

For each architecture it trains one XOR model (relu hidden layers, identity output unless
--output-activation says otherwise), writes it and its 200-point noisy validation set, then
measures in the same run:
  * the whole command, start-up included, as a subprocess
    (`circuit-census census --model M --data D --quiet --max-measured 0`: count every
    valid circuit, skip the minimal-circuit measures so that only the census is timed);
  * a plain loop doing one masked PyTorch forward pass per candidate circuit (the
    reference code's approach), timed on a sample of candidates.
It prints candidates, valid, seconds, candidates per second, the ratio of the rates and
the command's peak memory. Ratios are what to compare: absolute times vary with load.

    python benchmarks/census.py                 # 2-8-1, 2-12-1, 2-14-1, 2-3-3-1, 2-4-4-1
    python benchmarks/census.py --large         # adds 2-16-1 and 2-5-4-1 (minutes)
    python benchmarks/census.py --output-activation sigmoid --only 2-16-1
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from circuit_census.circuits.space import CircuitSpace
from circuit_census.modelio import save_data, save_model
from circuit_census.network import Network
from circuit_census.tasks import make_task
from circuit_census.training import TrainConfig, train_models

DEFAULT = ["2-8-1", "2-12-1", "2-14-1", "2-3-3-1", "2-4-4-1"]
LARGE = ["2-16-1", "2-5-4-1"]


def trained_model(hidden: tuple[int, ...], output_activation: str) -> tuple[Network, np.ndarray]:
    """A trained XOR model (the first seed that converges) and its validation inputs."""
    config = TrainConfig(hidden=hidden, output_activation=output_activation, epochs=2000)
    models = train_models(make_task("xor"), range(8), config)
    best = next((m for m in models if m.converged), models[0])
    return best.network, best.val.x


def random_candidates(space: CircuitSpace, n: int, rng: np.random.Generator) -> list:
    """Admissible circuits drawn by rejection (edges kept with probability 0.7)."""
    found = []
    while len(found) < n:
        masks = [rng.random(shape) < 0.7 for shape in space.layer_shapes]
        if space.is_admissible(masks):
            found.append([torch.tensor(m, dtype=torch.float32) for m in masks])
    return found


def plain_loop_rate(network: Network, x: np.ndarray, seconds: float = 3.0) -> float:
    """Candidates per second of one masked forward pass per circuit, mse against the model."""
    ws = [torch.tensor(w, dtype=torch.float32) for w in network.weights]
    bs = [torch.tensor(b, dtype=torch.float32) for b in network.biases]
    xt = torch.tensor(x, dtype=torch.float32)
    acts = {"relu": torch.relu, "identity": lambda z: z, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "leaky_relu": torch.nn.functional.leaky_relu}  # fmt: skip

    def forward(masks=None):
        h = xt
        for layer, (w, b) in enumerate(zip(ws, bs)):
            weight = w if masks is None else w * masks[layer]
            last = layer == len(ws) - 1
            h = acts[network.output_activation if last else network.activation](h @ weight.T + b)
        return h

    with torch.no_grad():
        full = forward()
        candidates = random_candidates(CircuitSpace(network.sizes), 500, np.random.default_rng(0))
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for masks in candidates:
                bool(torch.mean((forward(masks) - full) ** 2) < 0.05)
            done += len(candidates)
        return done / (time.perf_counter() - started)


def run_command(model: Path, data: Path) -> tuple[float, int, int, float]:
    """Seconds, candidates, valid and peak memory (MiB) of the census command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "circuit_census", "census", "--model", str(model),
         "--data", str(data), "--quiet", "--max-measured", "0",
         "--max-candidates", str(10**11)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = next(ln for ln in proc.stdout.splitlines() if " valid of " in ln)
    words = line.replace(",", "").split()
    n_valid, n_cand = int(words[0]), int(words[3])
    return seconds, n_cand, n_valid, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 2-16-1 and 2-5-4-1")
    parser.add_argument("--only", nargs="*", help="architectures like 2-16-1")
    parser.add_argument("--output-activation", default="identity")
    args = parser.parse_args()
    archs = args.only or DEFAULT + (LARGE if args.large else [])
    print(f"census benchmark: trained XOR models, relu hidden, {args.output_activation} output, "
          "200 noisy validation points, mse < 0.05, zero ablation; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    header = f"{'arch':>8} {'candidates':>14} {'valid':>14} {'seconds':>8} {'cand/s':>12} " \
             f"{'plain cand/s':>12} {'ratio':>9} {'peak MiB':>8}"  # fmt: skip
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            sizes = tuple(int(s) for s in arch.split("-"))
            network, x = trained_model(sizes[1:-1], args.output_activation)
            model, data = Path(tmp) / f"{arch}.safetensors", Path(tmp) / f"{arch}.npz"
            save_model(model, network)
            save_data(data, x, np.zeros((len(x), 1)))
            plain = plain_loop_rate(network, x)
            seconds, n_cand, n_valid, peak = run_command(model, data)
            rate = n_cand / seconds
            print(f"{arch:>8} {n_cand:>14,} {n_valid:>14,} {seconds:>8.2f} {rate:>12.3g} "
                  f"{plain:>12.3g} {rate / plain:>8.0f}x {peak:>8.0f}", flush=True)  # fmt: skip
    print("ratio = the command's candidates/s (start-up included) over the plain loop's, "
          "both measured above; peak MiB is the largest census process so far")  # fmt: skip


if __name__ == "__main__":
    main()
