"""Batched training vs one model at a time: 100 seeds of 2-4-1 relu XOR.

Both ways train the same models (same data from ``tasks.train_validation``, same
``nn.Linear`` initialisation from each seed, Adam, MSE, full batch) for the same fixed
number of epochs, with early stopping OFF on both sides so that they do the same work:

    python benchmarks/training.py [--seeds 100] [--epochs 2000] [--threads 1]

The one-at-a-time side is a plain PyTorch loop (``nn.Sequential``, ``torch.optim.Adam``).
It prints both wall times, the ratio, and how far apart the two sides' final weights are.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from circuit_census.tasks.boolean import make_task, train_validation
from circuit_census.training.loop import TrainConfig, train_models
from circuit_census.training.models import sequential_mlp


def plain_loop(task, seeds, config: TrainConfig) -> list[np.ndarray]:
    """One model per seed with a textbook PyTorch loop; returns flat final parameters."""
    sizes = (task.n_inputs, *config.hidden, task.n_outputs)
    params = []
    for seed in seeds:
        train, _ = train_validation(task, seed, config.repeats, config.val_repeats, config.noise)
        x = torch.tensor(train.x, dtype=torch.float32)
        y = torch.tensor(train.y, dtype=torch.float32)
        torch.manual_seed(seed)
        model = sequential_mlp(sizes, config.activation, config.output_activation)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        loss_fn = torch.nn.MSELoss()
        for _ in range(config.epochs):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        params.append(
            np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]).astype(
                np.float64
            )
        )
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = make_task("xor")
    seeds = list(range(args.seeds))
    # No early stopping: an unreachable loss target and patience beyond the last epoch.
    config = TrainConfig(hidden=(4,), epochs=args.epochs, loss_target=0.0, patience=args.epochs + 1)

    print(
        f"2-4-1 relu XOR, {len(seeds)} seeds, {args.epochs} epochs each, full batch "
        f"({config.repeats * 4} points), Adam lr {config.lr}, torch threads {args.threads}"
    )
    print("early stopping OFF on both sides: every model runs exactly the same epochs")

    t0, c0 = time.perf_counter(), time.process_time()
    batched = train_models(task, seeds, config)
    t_batched, c_batched = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    loop = plain_loop(task, seeds, config)
    t_loop, c_loop = time.perf_counter() - t0, time.process_time() - c0

    diffs = []
    for trained, ref in zip(batched, loop, strict=True):
        net = trained.network
        flat = np.concatenate(
            [a.ravel() for w, b in zip(net.weights, net.biases, strict=True) for a in (w, b)]
        )
        diffs.append(np.max(np.abs(flat - ref)))
    assert all(m.epochs == args.epochs for m in batched)

    print("                               wall       CPU")
    print(f"batched (train_models):      {t_batched:8.2f} s {c_batched:8.2f} s")
    print(f"one at a time (plain loop):  {t_loop:8.2f} s {c_loop:8.2f} s")
    print(
        f"speed-up:                    {t_loop / t_batched:8.1f}x {c_loop / c_batched:8.1f}x"
        "  (target >= 20x; CPU time is less disturbed by other load on the machine)"
    )
    print(
        "max |weight difference| batched vs plain loop per seed: "
        f"median {np.median(diffs):.2e}, max {np.max(diffs):.2e} "
        "(same computation; rounding alone can separate a trajectory over 2000 epochs)"
    )


if __name__ == "__main__":
    main()
