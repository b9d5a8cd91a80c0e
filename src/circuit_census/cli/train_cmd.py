"""``circuit-census train``: train one model per seed (all at once) and write them out."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuit_census.cli.progress import show_bar, training_progress
from circuit_census.errors import InputError
from circuit_census.files import atomic_write
from circuit_census.tasks.boolean import make_task
from circuit_census.training.config import TrainConfig, parse_hidden, parse_seeds
from circuit_census.training.modelfiles import save_data, save_model

if TYPE_CHECKING:
    from circuit_census.training.loop import TrainedModel

_D = TrainConfig()
SUMMARY_FIELDS = ("seed", "converged", "final_loss", "val_accuracy", "epochs")
MAX_TABLE_ROWS = 20


_Out = Annotated[
    Path, typer.Option("--out", help="Folder for seed-N.safetensors/.npz and summary.csv.")
]
_Task = Annotated[
    str,
    typer.Option(
        "--task",
        help="Task: a gate, parityN, majorityN, a truth table like 0110, or several joined by '+'.",
    ),
]
_Hidden = Annotated[str, typer.Option("--hidden", help="Hidden widths: 4 or 3,3.")]
_Seeds = Annotated[str, typer.Option("--seeds", help="Seeds: 0-9, 3, 1,4,7 or 0-4,9.")]
_Activation = Annotated[
    str,
    typer.Option(
        "--activation", help="Hidden activation: relu, leaky_relu, tanh, sigmoid, identity."
    ),
]
_OutputActivation = Annotated[str, typer.Option("--output-activation", help="Output activation.")]
_Optimizer = Annotated[str, typer.Option("--optimizer", help="adam, adamw or sgd.")]
_Lr = Annotated[float, typer.Option("--lr", help="Learning rate.")]
_Epochs = Annotated[int, typer.Option("--epochs", help="Maximum epochs.")]
_BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Mini-batch size (default: full batch).")
]
_L1 = Annotated[float, typer.Option("--l1", help="L1 strength: sum of |weights| (not biases).")]
_L2 = Annotated[
    float, typer.Option("--l2", help="L2 strength: sum of squared weights (not biases).")
]
_Orthogonality = Annotated[
    float,
    typer.Option(
        "--orthogonality", help="Strength of the hidden-activation orthogonality penalty."
    ),
]
_Dropout = Annotated[
    float,
    typer.Option("--dropout", help="Dropout probability on hidden activations, in [0, 1)."),
]
_WeightDecay = Annotated[
    float,
    typer.Option("--weight-decay", help="AdamW's decoupled weight decay (adamw only)."),
]
_Momentum = Annotated[float, typer.Option("--momentum", help="SGD momentum (sgd only).")]
_LossTarget = Annotated[
    float,
    typer.Option("--loss-target", help="Stop a model once its training MSE is at most this."),
]
_Patience = Annotated[
    int,
    typer.Option("--patience", help="Stop a model after this many epochs without improvement."),
]
_MinAccuracy = Annotated[
    float,
    typer.Option("--min-accuracy", help="Validation accuracy needed to count as converged."),
]
_Noise = Annotated[float, typer.Option("--noise", help="Std of the Gaussian noise on inputs.")]
_Repeats = Annotated[int, typer.Option("--repeats", help="Training copies of each corner.")]
_ValRepeats = Annotated[
    int, typer.Option("--val-repeats", help="Validation copies of each corner.")
]
_Device = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
_Checkpoints = Annotated[
    int,
    typer.Option(
        "--checkpoints",
        help="Also write each model at K evenly spaced epochs of its own run "
        "(seed-N.checkpoint-KK.safetensors; 0 for none).",
    ),
]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table.")]


def train(
    out: _Out,
    task: _Task = "xor",
    hidden: _Hidden = "4",
    seeds: _Seeds = "0-9",
    activation: _Activation = _D.activation,
    output_activation: _OutputActivation = _D.output_activation,
    optimizer: _Optimizer = _D.optimizer,
    lr: _Lr = _D.lr,
    epochs: _Epochs = _D.epochs,
    batch_size: _BatchSize = None,
    l1: _L1 = _D.l1,
    l2: _L2 = _D.l2,
    orthogonality: _Orthogonality = _D.orthogonality,
    dropout: _Dropout = _D.dropout,
    weight_decay: _WeightDecay = _D.weight_decay,
    momentum: _Momentum = _D.momentum,
    loss_target: _LossTarget = _D.loss_target,
    patience: _Patience = _D.patience,
    min_accuracy: _MinAccuracy = _D.min_accuracy,
    noise: _Noise = _D.noise,
    repeats: _Repeats = _D.repeats,
    val_repeats: _ValRepeats = _D.val_repeats,
    device: _Device = _D.device,
    checkpoints: _Checkpoints = 0,
    quiet: _Quiet = False,
) -> None:
    """Train one model per seed, all seeds at once, and write them to --out."""
    # Check every input before doing anything: bad input writes nothing.
    the_task = make_task(task)
    seed_list = parse_seeds(seeds)
    config = TrainConfig(
        hidden=parse_hidden(hidden),
        activation=activation,
        output_activation=output_activation,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        l1=l1,
        l2=l2,
        orthogonality=orthogonality,
        dropout=dropout,
        loss_target=loss_target,
        patience=patience,
        min_accuracy=min_accuracy,
        repeats=repeats,
        val_repeats=val_repeats,
        noise=noise,
        device=device,
        weight_decay=weight_decay,
        momentum=momentum,
    )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder")

    from circuit_census.training.loop import train_models

    show = show_bar(quiet, sys.stdout)
    try:
        with training_progress(show, len(seed_list), config.epochs) as progress:
            models = train_models(
                the_task, seed_list, config, progress=progress, checkpoints=checkpoints
            )
    except (Exception, SystemExit):
        raise
    except BaseException as exc:  # an interrupt (SIGINT, SIGTERM): say what was kept
        exc.kept = f"training stopped; nothing was written to {out}"
        raise
    write_models(out, the_task.name, models, config)
    _report(models, the_task.name, config, out, quiet)
    if checkpoints:
        _report_checkpoints(models, out)


def model_metadata(task_name: str, model: TrainedModel, config: TrainConfig) -> dict[str, object]:
    """Metadata stored with a trained model: task, seed, outcome and every config field.

    The outcome's ``epochs`` is the number of epochs trained (as in summary.csv); the
    config's ``epochs`` (the maximum) is stored as ``max_epochs``.
    """
    config_meta = config.as_metadata()
    config_meta["max_epochs"] = config_meta.pop("epochs")
    meta: dict[str, object] = {
        "task": task_name,
        "seed": model.seed,
        "converged": model.converged,
        "final_loss": model.final_loss,
        "val_accuracy": model.val_accuracy,
        "epochs": model.epochs,
    }
    meta.update(config_meta)
    return meta


def checkpoint_metadata(
    task_name: str, model: TrainedModel, index: int, config: TrainConfig
) -> dict[str, object]:
    """Metadata stored with checkpoint ``index`` of a model: task, seed, which checkpoint
    (``checkpoint`` of ``checkpoints``), its ``epoch``, ``progress``, ``train_loss`` and
    ``val_accuracy``, the model's own epochs (``total_epochs``) and every config field."""
    point = model.checkpoints[index]
    config_meta = config.as_metadata()
    config_meta["max_epochs"] = config_meta.pop("epochs")
    meta: dict[str, object] = {
        "task": task_name,
        "seed": model.seed,
        "checkpoint": index,
        "checkpoints": len(model.checkpoints),
        "epoch": point.epoch,
        "progress": point.progress,
        "train_loss": point.train_loss,
        "val_accuracy": point.val_accuracy,
        "total_epochs": model.epochs,
    }
    meta.update(config_meta)
    return meta


def checkpoint_file_name(seed: int, index: int, count: int) -> str:
    """``seed-N.checkpoint-KK.safetensors``: checkpoint ``index`` of ``count``, numbered
    from 0 with at least two digits (as many as ``count - 1`` needs), so names sort."""
    width = max(2, len(str(count - 1)))
    return f"seed-{seed}.checkpoint-{index:0{width}d}.safetensors"


def write_models(out: Path, task_name: str, models: list[TrainedModel], config: TrainConfig):
    """``seed-N.safetensors`` and ``seed-N.npz`` (validation set) per model, and its
    checkpoints (:func:`checkpoint_file_name`) if it has any, then ``summary.csv``, each
    written atomically (interrupted, the files written are whole)."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        for m in models:
            save_model(
                out / f"seed-{m.seed}.safetensors", m.network, model_metadata(task_name, m, config)
            )
            save_data(out / f"seed-{m.seed}.npz", m.val.x, m.val.y)
            for k, point in enumerate(m.checkpoints):
                save_model(
                    out / checkpoint_file_name(m.seed, k, len(m.checkpoints)),
                    point.network,
                    checkpoint_metadata(task_name, m, k, config),
                )
            written += 1
    except (Exception, SystemExit):
        raise
    except BaseException as exc:  # an interrupt while writing
        exc.kept = (
            f"{written} of {len(models)} models were written to {out} (no summary.csv); "
            "run the same command again to write them all"
        )
        raise
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_FIELDS)
    for m in models:
        writer.writerow(
            [
                m.seed,
                "true" if m.converged else "false",
                repr(m.final_loss),
                repr(m.val_accuracy),
                m.epochs,
            ]
        )
    atomic_write(out / "summary.csv", lambda tmp: tmp.write_text(buf.getvalue()))


def _report(models, task_name, config, out, quiet) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    n_conv = sum(m.converged for m in models)
    if not quiet:
        sizes = "-".join(str(s) for s in models[0].network.sizes)
        table = Table(title=f"{task_name} {sizes} {config.activation}")
        for col in ("seed", "converged", "final loss", "val accuracy", "epochs"):
            table.add_column(col, justify="right")
        shown = models if len(models) <= MAX_TABLE_ROWS else [m for m in models if not m.converged]
        for m in shown[:MAX_TABLE_ROWS]:
            table.add_row(
                str(m.seed),
                "yes" if m.converged else "[red]no[/red]",
                f"{m.final_loss:.4g}",
                f"{m.val_accuracy:.3f}",
                str(m.epochs),
            )
        if shown:
            if len(models) > MAX_TABLE_ROWS:
                table.caption = "models that did not converge" + (
                    f" (first {MAX_TABLE_ROWS} of {len(shown)})"
                    if len(shown) > MAX_TABLE_ROWS
                    else ""
                )
            console.print(table)
    failed = [m.seed for m in models if not m.converged]
    tail = f"; not converged: {_seed_list(failed)}" if failed else ""
    console.print(f"converged {n_conv}/{len(models)}{tail}; wrote {out}", highlight=False)


def _report_checkpoints(models: list[TrainedModel], out: Path) -> None:
    """One line: how many checkpoint files were written and their total size."""
    from rich.console import Console
    from rich.filesize import decimal

    paths = [
        out / checkpoint_file_name(m.seed, k, len(m.checkpoints))
        for m in models
        for k in range(len(m.checkpoints))
    ]
    size = sum(p.stat().st_size for p in paths)
    Console().print(
        f"wrote {len(paths)} checkpoint files ({decimal(size)}) to {out}",
        highlight=False,
        soft_wrap=True,
    )


def _seed_list(seeds: list[int], limit: int = 20) -> str:
    text = ", ".join(str(s) for s in seeds[:limit])
    return text + (f", ... ({len(seeds)} in all)" if len(seeds) > limit else "")
