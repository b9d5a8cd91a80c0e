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
    python benchmarks/census.py --deep --before /path/to/old/checkout --timeout 600
        # deep networks, this code and an older checkout's census side by side
    python benchmarks/census.py --frontier --no-plain --timeout 1800   # the deep and wide
        # targets (2-4-4-4-1 ... 2-8-8-1, 2-20-1, 2-24-1); add --untrained for random weights
    python benchmarks/census.py --no-plain --only 2-16-1 2-18-1 2-20-1 2-24-1 --timeout 900 \
        --before /path/to/old/checkout --before-timeout 300    # wide one-hidden-layer networks
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

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
DEEP = ["2-4-4-1", "2-5-5-1", "2-4-4-4-1", "2-6-6-1", "2-5-5-5-1", "2-8-8-1"]
# The exact frontier's targets: deep and wide networks (minutes to half an hour).
FRONTIER = ["2-4-4-4-1", "2-6-6-1", "2-5-5-5-1", "2-8-8-1", "2-20-1", "2-24-1"]


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


class Run(NamedTuple):
    """One census command's measurements (``None`` where it ran past the timeout)."""

    seconds: float
    candidates: int | None
    valid: int | None
    bounded: str
    peak_mib: float


def run_command(
    model: Path, data: Path, ablation: str = "zero", source: Path | None = None,
    timeout: float | None = None,
) -> Run:  # fmt: skip
    """Seconds, candidates, valid, share decided by bounds and peak memory (MiB) of the
    census command under ``ablation`` (with the package of ``source``'s ``src`` folder
    when given), stopped after ``timeout`` seconds."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source / "src")
    command = [sys.executable, "-m", "circuit_census", "census", "--model", str(model),
               "--data", str(data), "--quiet", "--max-measured", "0",
               "--max-candidates", str(10**30), "--ablation", ablation]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        stop = threading.Timer(timeout, proc.kill) if timeout else None
        if stop is not None:
            stop.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        seconds = time.perf_counter() - started
        if stop is not None:
            stop.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timeout and proc.returncode < 0:
            return Run(seconds, None, None, "-", float("nan"))
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"census failed: {err.read()}")
        line = next(ln for ln in out.read().splitlines() if " valid of " in ln)
    words = line.replace(",", "").split()
    n_valid, n_cand = int(words[0]), int(words[3])
    bounded = line.split("; ")[-1].split()[0]
    return Run(seconds, n_cand, n_valid, bounded, usage.ru_maxrss / 1024)


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
    parser.add_argument("--deep", action="store_true", help=f"only {', '.join(DEEP)}")
    parser.add_argument("--frontier", action="store_true", help=f"only {', '.join(FRONTIER)}")
    parser.add_argument(
        "--before", type=Path, help="an older checkout whose census runs side by side"
    )
    parser.add_argument("--timeout", type=float, help="stop a census after this many seconds")
    parser.add_argument(
        "--before-timeout",
        type=float,
        help="stop the older checkout's census sooner than --timeout",
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the plain loop")
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
    named = FRONTIER if args.frontier else DEEP if args.deep else None
    archs = args.only or named or DEFAULT + (LARGE if args.large else [])
    outs = list(ACTIVATIONS) if args.output_activation == ["all"] else args.output_activation
    print(f"census benchmark: {'untrained' if args.untrained else 'trained XOR'} models, "
          "relu hidden, 200 noisy XOR validation points, mse < 0.05; "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    columns = [("arch", 9), ("output", 10), ("ablation", 9), ("candidates", 26),
               ("valid", 26), ("bounds", 7), ("seconds", 8), ("cand/s", 10),
               ("plain cand/s", 12), ("ratio", 9), ("peak MiB", 8)]  # fmt: skip
    if args.before:
        columns += [("before s", 9), ("before MiB", 10), ("speed-up", 9)]
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
                plain = float("nan") if args.no_plain else plain_loop_rate(network, x)
                for ablation in args.ablation:
                    now = run_command(model, data, ablation, timeout=args.timeout)
                    print(_row(arch, out, ablation, now, plain), end="")
                    if args.before:
                        old = run_command(
                            model, data, ablation, args.before, args.before_timeout or args.timeout
                        )
                        print(" " + _before(now, old), end="")
                    print(flush=True)
    print("bounds = share of candidates decided by bounds on whole families; ratio = the "
          "command's candidates/s (start-up included) over the plain loop's, both measured "
          "above (the plain loop is a zero-ablation forward pass per circuit; a mean or "
          "resample one costs about the same); peak MiB is the census process's own")  # fmt: skip


def _row(arch: str, out: str, ablation: str, run: Run, plain: float) -> str:
    """One table row; a census stopped by the timeout shows its seconds as '> T'."""
    if run.candidates is None:
        return (f"{arch:>9} {out:>10} {ablation:>9} {'-':>26} {'-':>26} {'-':>7} "
                f"{'>' + format(run.seconds, '.0f'):>8} {'-':>10} {plain:>12.3g} {'-':>9} "
                f"{'-':>8}")  # fmt: skip
    rate = run.candidates / run.seconds
    ratio = "-" if math.isnan(plain) else f"{rate / plain:.0f}x"  # --no-plain: no ratio
    return (f"{arch:>9} {out:>10} {ablation:>9} {run.candidates:>26,} {run.valid:>26,} "
            f"{run.bounded:>7} {run.seconds:>8.2f} {rate:>10.3g} {plain:>12.3g} "
            f"{ratio:>9} {run.peak_mib:>8.0f}")  # fmt: skip


def _before(now: Run, old: Run) -> str:
    """The older checkout's seconds and memory, and how many times faster this code is;
    their counts must agree."""
    if old.candidates is None:
        speed_up = f">{old.seconds / now.seconds:.1f}x"
        return f"{'>' + format(old.seconds, '.0f'):>9} {'-':>10} {speed_up:>9}"
    if now.candidates is not None and (now.candidates, now.valid) != (old.candidates, old.valid):
        raise SystemExit(f"counts differ: now {now}, before {old}")
    return f"{old.seconds:>9.2f} {old.peak_mib:>10.0f} {old.seconds / now.seconds:>8.1f}x"


if __name__ == "__main__":
    main()
