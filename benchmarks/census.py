"""Census speed: the `circuit-census census` command against a plain per-circuit loop.

For each architecture it trains one XOR model (relu hidden layers, identity output unless
--output-activation says otherwise; random weights with --untrained), writes it and its
200-point noisy validation set, then measures in the same run:
  * the whole command, start-up included, as a subprocess
    (`circuit-census census --model M --data D --quiet --max-measured 0`: count every
    valid circuit, skip the minimal-circuit measures so that only the census is timed);
  * a plain loop doing one masked PyTorch forward pass per candidate circuit (the
    reference code's approach), timed on a sample of candidates.
It prints candidates, valid, the share decided by bounds, seconds, candidates per second,
the ratio of the rates and the command's peak memory. Ratios are what to compare: absolute
times vary with load.

    python benchmarks/census.py                 # 2-8-1, 2-12-1, 2-14-1, 2-3-3-1, 2-4-4-1
    python benchmarks/census.py --large         # adds 2-16-1 and 2-5-4-1 (minutes)
    python benchmarks/census.py --output-activation all --only 2-16-1    # every activation
    python benchmarks/census.py --untrained --output-activation sigmoid  # random weights
    python benchmarks/census.py --ablation zero resample --only 2-12-1   # ablations side by side
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

from circuit_census.activations import ACTIVATIONS
from circuit_census.circuits.space import CircuitSpace
from circuit_census.network import Network
from circuit_census.tasks.boolean import make_task
from circuit_census.training.loop import TrainConfig, train_models
from circuit_census.training.modelfiles import save_data, save_model

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


def run_command(
    model: Path, data: Path, ablation: str = "zero"
) -> tuple[float, int, int, str, float]:
    """Seconds, candidates, valid, share decided by bounds and peak memory (MiB) of the
    census command under ``ablation``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "circuit_census", "census", "--model", str(model),
         "--data", str(data), "--quiet", "--max-measured", "0",
         "--max-candidates", str(10**11), "--ablation", ablation],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = next(ln for ln in proc.stdout.splitlines() if " valid of " in ln)
    words = line.replace(",", "").split()
    n_valid, n_cand = int(words[0]), int(words[3])
    bounded = line.split("; ")[-1].split()[0]
    return seconds, n_cand, n_valid, bounded, max(peak, before) / 1024


def random_model(hidden: tuple[int, ...], output_activation: str, x: np.ndarray) -> Network:
    """An untrained network (weights N(0, 1.2^2), biases N(0, 0.5^2)): a harder case for
    the bounds than a trained one, whose small nodes they bound tightly."""
    rng = np.random.default_rng(0)
    sizes = (x.shape[1], *hidden, 1)
    ws = tuple(rng.normal(0, 1.2, (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1))
    bs = tuple(rng.normal(0, 0.5, sizes[i + 1]) for i in range(len(sizes) - 1))
    return Network(ws, bs, "relu", output_activation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also 2-16-1 and 2-5-4-1")
    parser.add_argument("--only", nargs="*", help="architectures like 2-16-1")
    parser.add_argument(
        "--output-activation", nargs="+", default=["identity"],
        help=f"one or more of {', '.join(ACTIVATIONS)}, or all",
    )  # fmt: skip
    parser.add_argument("--untrained", action="store_true", help="random weights, not trained")
    parser.add_argument(
        "--ablation", nargs="+", default=["zero"], help="one or more of zero, mean, resample"
    )
    args = parser.parse_args()
    archs = args.only or DEFAULT + (LARGE if args.large else [])
    outs = list(ACTIVATIONS) if args.output_activation == ["all"] else args.output_activation
    print(f"census benchmark: {'untrained' if args.untrained else 'trained XOR'} models, "
          "relu hidden, 200 noisy XOR validation points, mse < 0.05; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    columns = [("arch", 8), ("output", 10), ("ablation", 9), ("candidates", 14),
               ("valid", 14), ("bounds", 7), ("seconds", 8), ("cand/s", 10),
               ("plain cand/s", 12), ("ratio", 9), ("peak MiB", 8)]  # fmt: skip
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for out in outs:
            for arch in archs:
                sizes = tuple(int(s) for s in arch.split("-"))
                network, x = trained_model(sizes[1:-1], out)
                if args.untrained:
                    network = random_model(sizes[1:-1], out, x)
                model, data = Path(tmp) / f"{arch}.safetensors", Path(tmp) / f"{arch}.npz"
                save_model(model, network)
                save_data(data, x, np.zeros((len(x), 1)))
                plain = plain_loop_rate(network, x)
                for ablation in args.ablation:
                    seconds, n_cand, n_valid, bounded, peak = run_command(model, data, ablation)
                    rate = n_cand / seconds
                    print(f"{arch:>8} {out:>10} {ablation:>9} {n_cand:>14,} {n_valid:>14,} "
                          f"{bounded:>7} {seconds:>8.2f} {rate:>10.3g} {plain:>12.3g} "
                          f"{rate / plain:>8.0f}x {peak:>8.0f}", flush=True)  # fmt: skip
    print("bounds = share of candidates decided by bounds on whole families; ratio = the "
          "command's candidates/s (start-up included) over the plain loop's, both measured "
          "above (the plain loop is a zero-ablation forward pass per circuit; a mean or "
          "resample one costs about the same); peak MiB is the largest census process "
          "so far")  # fmt: skip


if __name__ == "__main__":
    main()
