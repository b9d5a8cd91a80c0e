"""Training settings and the parsing of seed and width specs: plain data, no PyTorch,
so that the command line and sweep files can check them before any heavy import."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from circuit_census.activations import check_activation
from circuit_census.errors import InputError

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Everything but the task and the seed that decides a trained model."""

    hidden: tuple[int, ...] = (4,)
    activation: str = "relu"
    output_activation: str = "identity"
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 0.02
    epochs: int = 3000
    batch_size: int | None = None  # None = full batch
    l1: float = 0.0
    l2: float = 0.0
    orthogonality: float = 0.0
    dropout: float = 0.0
    loss_target: float = 0.02
    patience: int = 300
    min_accuracy: float = 0.99
    repeats: int = 50
    val_repeats: int = 50
    noise: float = 0.1
    device: str = "cpu"
    weight_decay: float = 0.01  # AdamW's decoupled weight decay (all parameters), adamw only
    momentum: float = 0.0  # SGD momentum, sgd only

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, int):
            hidden = (hidden,)
        try:
            hidden = tuple(int(h) for h in hidden)
        except (TypeError, ValueError):
            raise InputError(f"hidden sizes must be integers, got {self.hidden!r}") from None
        if not hidden or min(hidden) < 1:
            raise InputError(f"need at least one hidden layer of positive width, got {hidden}")
        object.__setattr__(self, "hidden", hidden)
        check_activation(self.activation)
        check_activation(self.output_activation)
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        _positive("learning rate", self.lr)
        _positive_int("epochs", self.epochs)
        if self.batch_size is not None:
            _positive_int("batch size", self.batch_size)
        for name in ("l1", "l2", "orthogonality", "weight_decay", "loss_target", "noise"):
            _non_negative(name.replace("_", " "), getattr(self, name))
        if not (0.0 <= self.dropout < 1.0):
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (0.0 <= self.momentum < 1.0):
            raise InputError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (0.0 <= self.min_accuracy <= 1.0):
            raise InputError(f"min accuracy must be in [0, 1], got {self.min_accuracy}")
        _positive_int("patience", self.patience)
        _positive_int("repeats", self.repeats)
        _positive_int("validation repeats", self.val_repeats)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", str(self.device)):
            raise InputError(f"unknown device {self.device!r}; use cpu, cuda or cuda:N")

    def as_metadata(self) -> dict[str, object]:
        """All fields as JSON-friendly values (``hidden`` as a list)."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value}")


def _non_negative(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise InputError(f"{name} must be a non-negative number, got {value}")


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value}")


CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig))


def parse_seeds(spec: str) -> list[int]:
    """``"0-9"``, ``"3"``, ``"1,4,7"`` or mixes like ``"0-4,9"`` -> a list of distinct seeds."""
    text = (spec or "").strip()
    if not text:
        raise InputError("empty seeds; use e.g. 0-9, 3, 1,4,7 or 0-4,9")
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise InputError(
                f"bad seeds {spec!r}: {part!r} is not a non-negative seed or range like 0-9"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise InputError(f"bad seeds {spec!r}: range {part!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise InputError(f"bad seeds {spec!r}: a seed is listed twice")
    if max(seeds) >= 2**63:
        raise InputError(f"bad seeds {spec!r}: seeds must be below 2^63")
    return seeds


def parse_hidden(spec: str) -> tuple[int, ...]:
    """``"4"`` or ``"3,3"`` -> hidden layer widths."""
    text = (spec or "").strip()
    parts = [p.strip() for p in text.split(",")]
    if not text or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise InputError(
            f"bad hidden sizes {spec!r}: use positive widths separated by commas, like 4 or 3,3"
        )
    widths = tuple(int(p) for p in parts)
    if min(widths) < 1:
        raise InputError(f"bad hidden sizes {spec!r}: every width must be at least 1")
    return widths


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 or s >= 2**63:
            raise InputError(f"seeds must be non-negative integers below 2^63, got {s!r}")
        out.append(int(s))
    if not out:
        raise InputError("no seeds to train")
    return out
