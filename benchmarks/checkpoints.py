"""Training with checkpoints vs without: what keeping every epoch's parameters costs.

Trains the same seeds of 2-4-1 relu XOR for a fixed number of epochs (early stopping
off, so both sides do the same updates) with ``checkpoints=0`` and ``checkpoints=K``,
alternating the two sides ``--rounds`` times, and prints the best wall time of each,
their ratio and the memory the snapshots take:

    python benchmarks/checkpoints.py [--seeds 100] [--epochs 2000] [--checkpoints 10]
"""

from __future__ import annotations

import argparse
import time

from circuit_census.tasks.boolean import make_task
from circuit_census.training.loop import TrainConfig, train_models
from circuit_census.training.models import n_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    task = make_task("xor")
    seeds = list(range(args.seeds))
    config = TrainConfig(epochs=args.epochs, loss_target=0.0, patience=args.epochs + 1)
    best = {0: float("inf"), args.checkpoints: float("inf")}
    for _ in range(args.rounds):
        for k in best:
            start = time.perf_counter()
            train_models(task, seeds, config, checkpoints=k)
            best[k] = min(best[k], time.perf_counter() - start)
    params = n_params((task.n_inputs, *config.hidden, task.n_outputs))
    snapshot_mb = (args.epochs + 1) * args.seeds * params * 4 / 1e6
    plain, kept = best[0], best[args.checkpoints]
    print(f"{args.seeds} models x {args.epochs} epochs, best of {args.rounds}")
    print(f"  checkpoints=0:  {plain:.2f} s")
    print(f"  checkpoints={args.checkpoints}: {kept:.2f} s  ({kept / plain:.2f}x)")
    print(f"  snapshots: {snapshot_mb:.1f} MB")


if __name__ == "__main__":
    main()
