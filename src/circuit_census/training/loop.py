"""Training many independent MLPs at once, with the regularizers the study varies.

:func:`train_models` trains one model per seed, all seeds as one batched tensor program
(see :mod:`circuit_census.training.models`). A model's result depends only on its own seed and the
:class:`TrainConfig`, never on which other seeds share its batch:

- initial weights come from a generator seeded with the model's seed (as ``nn.Linear``
  after ``torch.manual_seed(seed)``); its data from ``tasks.train_validation(task, seed)``;
- mini-batch order and dropout masks come from a second per-model generator;
- the objective is the SUM over models of each model's own objective, so the gradient of
  model ``i`` is the gradient of its own objective; the optimizers are elementwise;
- early stopping is per model: a stopped model is frozen (no further updates) and keeps
  its epoch count.

With ``checkpoints=K``, each model also carries its weights at ``K`` evenly spaced epochs of
its own run (:class:`Checkpoint`, :func:`checkpoint_epochs`). The run keeps every epoch's
parameters (CPU float32) until each model's own number of epochs is known, then picks them.

Per model, the objective minimised is (``W_l`` weights only, biases are not penalised)::

    mse + l1 * sum_l sum |W_l| + l2 * sum_l sum W_l^2 + orthogonality * sum_hidden offdiag

where ``mse`` is the mean over samples and outputs of ``(f(x) - y)^2`` and ``offdiag`` is
:func:`circuit_census.training.models.orthogonality_penalty` of each hidden layer's activations.
See ``docs/training.md`` for the full description, stopping rules and defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from circuit_census.errors import InputError
from circuit_census.network import Network
from circuit_census.tasks.boolean import Dataset, Task, train_validation
from circuit_census.training.config import (  # noqa: F401  (re-exported)
    CONFIG_FIELDS,
    OPTIMIZERS,
    TrainConfig,
    _check_seeds,
    parse_hidden,
    parse_seeds,
)
from circuit_census.training.models import BatchedMLP, n_params, orthogonality_penalty

# Patience: an epoch "improves" when the objective falls below best * (1 - PATIENCE_REL_TOL).
PATIENCE_REL_TOL = 1e-4
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# CPU training of models this small is dominated by per-operation overhead, which extra
# intra-op threads only add to (and, on a busy machine, multiply): up to this many elements
# in the largest per-step tensor, train_models runs with one PyTorch thread.
SINGLE_THREAD_MAX_ELEMENTS = 4_000_000
# How often (in epochs) a CUDA run checks whether every model has stopped (a device sync).
_CUDA_CHECK_EVERY = 25
# Most progress reports per run (each counts the models still training: a device sync).
_PROGRESS_REPORTS = 200
# Most memory the per-epoch parameter snapshots of a run with checkpoints may take.
MAX_SNAPSHOT_BYTES = 2**30


@dataclass(frozen=True)
class Checkpoint:
    """A model's weights part-way through its own run, and how well they did then."""

    epoch: int  # epochs of updates done before these weights (0: the initial weights)
    progress: float  # epoch / the model's own epochs (0.0 also when it trained none)
    network: Network  # float64 copy of the float32 weights at that epoch
    train_loss: float  # training MSE (data term only, no dropout) of these weights
    val_accuracy: float  # accuracy (docs/definitions.md) on the model's validation set


@dataclass
class TrainedModel:
    """One trained model: its network (float64 copy of the float32 weights) and outcome."""

    seed: int
    network: Network
    train: Dataset
    val: Dataset
    converged: bool
    final_loss: float  # training MSE (data term only, no dropout) of the final weights
    val_accuracy: float  # accuracy (docs/definitions.md) on the validation set
    epochs: int  # epochs of updates performed before the model stopped
    # with train_models(checkpoints=K): K checkpoints, at epochs checkpoint_epochs(epochs, K);
    # the final weights are not among them (see final_checkpoint)
    checkpoints: tuple[Checkpoint, ...] = ()

    @property
    def final_checkpoint(self) -> Checkpoint:
        """The final model as a checkpoint at progress 1.0 (to follow ``checkpoints``)."""
        return Checkpoint(
            epoch=self.epochs,
            progress=1.0,
            network=self.network,
            train_loss=self.final_loss,
            val_accuracy=self.val_accuracy,
        )


def checkpoint_epochs(epochs: int, count: int) -> tuple[int, ...]:
    """The epochs of ``count`` checkpoints evenly spaced over a run of ``epochs`` epochs:
    ``round(k * epochs / count)`` for ``k = 0 .. count - 1`` (0 is the initial weights).

    The end of the run (the final model) is not among them; a run shorter than ``count``
    epochs repeats epochs."""
    return tuple(round(k * epochs / count) for k in range(count))


def check_checkpoints(checkpoints: int, config: TrainConfig, n_models: int, n_params: int) -> int:
    """``checkpoints`` as an int, if it is a whole number from 0 to ``config.epochs`` and
    the snapshots it needs (every model's parameters at every epoch, float32) fit in
    :data:`MAX_SNAPSHOT_BYTES`; else :class:`InputError`."""
    if (
        isinstance(checkpoints, bool)
        or not isinstance(checkpoints, (int, np.integer))
        or not 0 <= checkpoints <= config.epochs
    ):
        raise InputError(
            f"checkpoints must be a whole number from 0 to the epochs ({config.epochs}), "
            f"got {checkpoints!r}"
        )
    need = (config.epochs + 1) * n_models * n_params * 4
    if checkpoints and need > MAX_SNAPSHOT_BYTES:
        raise InputError(
            f"checkpoints need every model's parameters at every epoch: {n_models} models x "
            f"{n_params} parameters x {config.epochs + 1} epochs x 4 bytes = "
            f"{need / 2**30:.2f} GiB, above the limit of {MAX_SNAPSHOT_BYTES / 2**30:g} GiB; "
            "train fewer seeds at once or fewer epochs"
        )
    return int(checkpoints)


def _resolve_device(name: str) -> torch.device:
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r} requested but CUDA is not available; use cpu")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device {name!r} does not exist")
        return device
    return torch.device("cpu")


def stream_seed(seed: int) -> int:
    """Seed of a model's training-randomness generator (mini-batch order, dropout masks),
    derived from its seed and distinct from the initialisation stream."""
    return int(np.random.SeedSequence([seed, 0x7472]).generate_state(1, dtype=np.uint64)[0])


class BatchedOptimizer:
    """Adam / AdamW / SGD over the stacked parameters ``theta`` (n_models x n_params).

    Elementwise, so each model's update depends on its own gradients only; ``active``
    (one bool per model) freezes the models that have stopped. Same update rules as
    ``torch.optim.Adam``/``AdamW``/``SGD`` (AdamW decays all parameters).
    """

    def __init__(
        self,
        kind: str,
        theta: torch.Tensor,
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ) -> None:
        self.kind, self.lr, self.weight_decay, self.momentum = kind, lr, weight_decay, momentum
        self.t = 0
        self.m = torch.zeros_like(theta)
        self.v = torch.zeros_like(theta) if kind in ("adam", "adamw") else None

    @torch.no_grad()
    def step(self, theta: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        self.t += 1
        mask = active.to(theta.dtype).unsqueeze(1)
        if self.kind == "sgd":
            if self.momentum:
                if self.t == 1:
                    self.m.copy_(grad)
                else:
                    self.m.mul_(self.momentum).add_(grad)
                direction = self.m
            else:
                direction = grad
            theta.sub_(direction * (self.lr * mask))
            return
        b1, b2 = ADAM_BETAS
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        step_size = self.lr / (1 - b1**self.t)
        denom = (self.v.sqrt() / math.sqrt(1 - b2**self.t)).add_(ADAM_EPS)
        update = (self.m / denom) * step_size
        if self.kind == "adamw" and self.weight_decay:
            update = update + theta * (self.lr * self.weight_decay)
        theta.sub_(update * mask)


def accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy: the fraction of samples whose every output, read as ``>= 0.5``, is right."""
    right = np.all((outputs >= 0.5) == (targets >= 0.5), axis=1)
    return float(np.mean(right))


class _Objective:
    """Per-model data loss and regularised objective for a :class:`BatchedMLP`."""

    def __init__(self, model: BatchedMLP, config: TrainConfig) -> None:
        self.model, self.config = model, config
        self.wmask = model.weight_mask()

    def __call__(self, theta, x, y, masks=None) -> tuple[torch.Tensor, torch.Tensor]:
        out, hidden = self.model.forward(x, theta, masks)
        diff = out - y
        mse = (diff * diff).mean(dim=(1, 2))
        obj = mse
        c = self.config
        if c.l1:
            obj = obj + c.l1 * (theta.abs() * self.wmask).sum(dim=1)
        if c.l2:
            obj = obj + c.l2 * (theta * theta * self.wmask).sum(dim=1)
        if c.orthogonality:
            obj = obj + c.orthogonality * orthogonality_penalty(hidden)
        return mse, obj


def train_models(
    task: Task,
    seeds: Sequence[int],
    config: TrainConfig | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    checkpoints: int = 0,
) -> list[TrainedModel]:
    """Train one model per seed, all at once; returns them in the order of ``seeds``.

    Every model runs until it stops: its training MSE reaches ``loss_target``, its
    objective has not improved (by a relative ``PATIENCE_REL_TOL``) for ``patience``
    epochs, or ``epochs`` is reached. ``converged`` means validation accuracy
    ``>= min_accuracy`` and final training MSE ``<= loss_target``; models that did not
    converge are returned too, flagged.

    ``progress(epoch, epochs, n_still_training)``, if given, is called on epochs 1, 1 + k,
    1 + 2k, ... (``k = max(1, epochs // 200)``) once the stopping rules have been applied:
    the epoch's number (from 1), the maximum epochs and how many models still train.

    ``checkpoints=K`` (0 to ``config.epochs``) gives each model ``K`` :class:`Checkpoint`s
    at the epochs :func:`checkpoint_epochs` of its own run; it keeps every epoch's
    parameters until the end, so it is refused (:class:`InputError`) above
    :data:`MAX_SNAPSHOT_BYTES`. With ``K = 0`` nothing is kept.
    """
    config = config or TrainConfig()
    seeds = _check_seeds(seeds)
    sizes = (task.n_inputs, *config.hidden, task.n_outputs)
    checkpoints = check_checkpoints(checkpoints, config, len(seeds), n_params(sizes))
    device = _resolve_device(config.device)
    data = [
        train_validation(task, s, config.repeats, config.val_repeats, config.noise) for s in seeds
    ]
    x = torch.tensor(np.stack([t.x for t, _ in data]), dtype=torch.float32, device=device)
    y = torch.tensor(np.stack([t.y for t, _ in data]), dtype=torch.float32, device=device)
    n_models, n_samples = x.shape[0], x.shape[1]

    model = BatchedMLP.from_seeds(
        sizes, seeds, config.activation, config.output_activation, device=device
    )
    theta = model.theta.requires_grad_(True)
    objective = _Objective(model, config)
    opt = BatchedOptimizer(config.optimizer, theta, config.lr, config.weight_decay, config.momentum)

    full_batch = config.batch_size is None or config.batch_size >= n_samples
    fast = full_batch and config.dropout == 0.0  # one forward serves measure and update
    gens = [torch.Generator().manual_seed(stream_seed(s)) for s in seeds]

    active = torch.ones(n_models, dtype=torch.bool, device=device)
    best = torch.full((n_models,), math.inf, device=device)
    since = torch.zeros(n_models, dtype=torch.long, device=device)
    epochs_done = torch.zeros(n_models, dtype=torch.long, device=device)
    check_every = _CUDA_CHECK_EVERY if device.type == "cuda" else 1
    snapshots = _Snapshots(config.epochs, theta) if checkpoints else None

    report_every = max(1, config.epochs // _PROGRESS_REPORTS)
    threads = torch.get_num_threads()
    if device.type == "cpu" and n_models * n_samples * max(sizes) <= SINGLE_THREAD_MAX_ELEMENTS:
        torch.set_num_threads(1)
    try:
        for epoch in range(config.epochs):
            if snapshots is not None:
                snapshots.add(theta, flush=epoch % check_every == 0)
            if fast:
                mse, obj = objective(theta, x, y)
            else:
                with torch.no_grad():
                    mse, obj = objective(theta, x, y)
            with torch.no_grad():
                obj_d = obj.detach()
                improved = obj_d < best * (1 - PATIENCE_REL_TOL)
                best = torch.where(improved & active, obj_d, best)
                since = torch.where(improved, torch.zeros_like(since), since + 1)
                reached = mse.detach().double() <= config.loss_target  # as `converged`
                stop = reached | (since >= config.patience)
                active = active & ~stop
                epochs_done += active
            if progress and epoch % report_every == 0:
                progress(epoch + 1, config.epochs, int(active.sum()))
            if epoch % check_every == 0 and not bool(active.any()):
                break
            if fast:
                theta.grad = None
                obj.sum().backward()
                opt.step(theta, theta.grad, active)
            else:
                _minibatch_epoch(
                    objective, opt, theta, x, y, active, gens, config, model, full_batch
                )
        if snapshots is not None:
            snapshots.add(theta, flush=True)
    finally:
        torch.set_num_threads(threads)

    with torch.no_grad():
        final_mse, _ = objective(theta, x, y)
    final_mse = final_mse.cpu().numpy().astype(np.float64)
    epochs_done = epochs_done.cpu().numpy()
    networks = model.to_networks()
    picked = [()] * n_models
    if snapshots is not None:
        picked = _pick_checkpoints(snapshots, objective, x, y, data, epochs_done, checkpoints)
    results = []
    for i, seed in enumerate(seeds):
        train_set, val_set = data[i]
        acc = accuracy(networks[i].forward(val_set.x), val_set.y)
        loss = float(final_mse[i])
        results.append(
            TrainedModel(
                seed=seed,
                network=networks[i],
                train=train_set,
                val=val_set,
                converged=bool(acc >= config.min_accuracy and loss <= config.loss_target),
                final_loss=loss,
                val_accuracy=acc,
                epochs=int(epochs_done[i]),
                checkpoints=picked[i],
            )
        )
    return results


class _Snapshots:
    """Every model's parameters at the start of every epoch (CPU float32), kept until each
    model's own number of epochs is known. On a GPU they wait on the device and move to
    the CPU together at the run's existing sync points (``flush``)."""

    def __init__(self, epochs: int, theta: torch.Tensor) -> None:
        self.store = torch.empty((epochs + 1, *theta.shape), dtype=torch.float32)
        self.count = 0
        self.pending: list[torch.Tensor] = []

    @torch.no_grad()
    def add(self, theta: torch.Tensor, flush: bool) -> None:
        """Keep ``theta`` as the next epoch's snapshot; ``flush`` also moves every snapshot
        still waiting on the device into the store (a device sync)."""
        if flush and not self.pending:  # straight into the store (always so on a CPU)
            self.store[self.count].copy_(theta)
            self.count += 1
            return
        self.pending.append(theta.detach().clone())
        if flush:
            block = torch.stack(self.pending)
            self.store[self.count : self.count + len(block)].copy_(block)
            self.count += len(block)
            self.pending = []

    def at(self, epochs: Sequence[int]) -> torch.Tensor:
        """``(n_models, n_params)``: model ``i``'s parameters after ``epochs[i]`` epochs."""
        if self.pending or max(epochs) >= self.count:
            raise AssertionError("a checkpoint epoch the run did not snapshot")
        return self.store[torch.as_tensor(epochs), torch.arange(len(epochs))]


def _pick_checkpoints(
    snapshots: _Snapshots,
    objective: _Objective,
    x: torch.Tensor,
    y: torch.Tensor,
    data: list[tuple[Dataset, Dataset]],
    epochs_done: np.ndarray,
    count: int,
) -> list[tuple[Checkpoint, ...]]:
    """Each model's ``count`` checkpoints over its own ``epochs_done[i]`` epochs, measured
    as the final model is (training MSE in PyTorch, accuracy on the float64 network)."""
    model = objective.model
    per_model = [checkpoint_epochs(int(e), count) for e in epochs_done]
    out: list[list[Checkpoint]] = [[] for _ in per_model]
    for k in range(count):
        epochs = [e[k] for e in per_model]
        theta = snapshots.at(epochs).to(x.device)
        with torch.no_grad():
            mse, _ = objective(theta, x, y)
        mse = mse.cpu().numpy().astype(np.float64)
        networks = BatchedMLP(
            model.sizes, theta, model.activation, model.output_activation
        ).to_networks()
        for i, (net, (_, val_set)) in enumerate(zip(networks, data, strict=True)):
            total = int(epochs_done[i])
            out[i].append(
                Checkpoint(
                    epoch=epochs[i],
                    progress=epochs[i] / total if total else 0.0,
                    network=net,
                    train_loss=float(mse[i]),
                    val_accuracy=accuracy(net.forward(val_set.x), val_set.y),
                )
            )
    return [tuple(c) for c in out]


def _minibatch_epoch(objective, opt, theta, x, y, active, gens, config, model, full_batch):
    """One epoch of mini-batch (or dropout) updates; randomness from per-model generators."""
    n_samples = x.shape[1]
    device = x.device
    if full_batch:
        batches = [None]
    else:
        perm = torch.stack([torch.randperm(n_samples, generator=g) for g in gens]).to(device)
        bs = config.batch_size
        batches = [perm[:, start : start + bs] for start in range(0, n_samples, bs)]
    keep = 1.0 - config.dropout
    for idx in batches:
        if idx is None:
            xb, yb = x, y
        else:
            xb = x.gather(1, idx.unsqueeze(2).expand(-1, -1, x.shape[2]))
            yb = y.gather(1, idx.unsqueeze(2).expand(-1, -1, y.shape[2]))
        masks = None
        if config.dropout:
            n_b = xb.shape[1]
            masks = [
                torch.stack([torch.rand((n_b, width), generator=g) for g in gens])
                .lt(keep)
                .to(device=device, dtype=x.dtype)
                .div_(keep)
                for width in model.sizes[1:-1]
            ]
        theta.grad = None
        _, obj = objective(theta, xb, yb, masks)
        obj.sum().backward()
        opt.step(theta, theta.grad, active)
