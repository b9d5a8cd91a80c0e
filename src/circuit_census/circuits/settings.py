"""What a census computes (:class:`CensusSettings`) and how it runs (:class:`RunOptions`).

Both are checked once, when made, and passed down unchanged: the CLI, sweep files and the
Python API build these objects instead of checking settings themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from circuit_census.circuits.criteria import Criterion
from circuit_census.errors import InputError

ABLATIONS = ("zero", "mean", "resample")
RESAMPLE_PAIRS = ("seeded", "all")  # x' a seeded permutation of X, or every ordered pair
BACKENDS = ("auto", "numba", "torch")
DEFAULT_MAX_CANDIDATES = 10**10  # larger censuses are refused unless the limit is raised


@dataclass(frozen=True)
class CensusSettings:
    """What a census computes: the validity criterion and its threshold (``None``: the
    criterion's default), the ablation of edges outside a circuit, and the compat mode.

    Under resample ablation the evaluation set becomes pairs ``(x, x')``: ``x'`` is ``X``
    under the permutation ``resample_seed`` draws (``resample_pairs="seeded"``) or every
    sample of ``X`` (``"all"``: every ordered pair). Both are ignored by other ablations.
    """

    criterion: str = "mse"
    threshold: float | None = None
    ablation: str = "zero"
    compat: str | None = None
    resample_pairs: str = "seeded"
    resample_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", self.rule.threshold)
        if self.ablation not in ABLATIONS:
            raise InputError(
                f"unknown ablation {self.ablation!r}; choose one of {', '.join(ABLATIONS)}"
            )
        if self.resample_pairs not in RESAMPLE_PAIRS:
            raise InputError(
                f"unknown resample pairs {self.resample_pairs!r}; "
                f"choose one of {', '.join(RESAMPLE_PAIRS)}"
            )
        seed = self.resample_seed
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"resample seed must be a non-negative integer, got {seed!r}")
        object.__setattr__(self, "resample_seed", int(seed))

    @functools.cached_property
    def rule(self) -> Criterion:
        """The validity criterion as a checked :class:`Criterion`."""
        return Criterion(self.criterion, self.threshold, self.compat)

    def to_dict(self) -> dict[str, object]:
        """``criterion``, ``threshold``, ``ablation`` and ``compat`` as plain values, and
        the resample pairs and seed under resample ablation only (so that the record, and
        the keys of stored runs made from it, of other ablations stay as they were)."""
        record = asdict(self)
        if self.ablation != "resample":
            del record["resample_pairs"], record["resample_seed"]
        return record

    def resample_indices(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The pairs ``(x, x')`` of resample ablation as sample indices ``(clean,
        corrupted)`` into ``X``: ``(arange(n), default_rng(seed).permutation(n))``, or every
        ordered pair (clean index slowest)."""
        n = int(n_samples)
        if self.resample_pairs == "all":
            clean, corrupted = np.divmod(np.arange(n * n), n)
            return clean, corrupted
        return np.arange(n), np.random.default_rng(self.resample_seed).permutation(n)


@dataclass(frozen=True)
class RunOptions:
    """How a census runs; none of these changes which circuits are valid.

    ``collect``: keep the valid circuits in memory (``True``), not at all (``False``), or up
    to that many (an int; the result's ``valid`` is ``None`` if more were found).
    ``circuits_file``: stream every valid circuit to a compact file (see ``circuitfile``);
    ``max_file_bytes``: stop the census (``InputError``, no file) if that file would pass
    this size (``None``: no limit but the free space of its file system).
    ``shard=(i, n)``: only shard ``i`` of ``n`` (``combine_results`` joins shards).
    ``workers``: local processes sharing the shards. ``device``: ``"cpu"`` (compiled
    kernels) or a PyTorch device such as ``"cuda"``; ``backend="torch"`` forces the PyTorch
    pair scorer on the CPU too (decisions are float64 either way). ``prune``: decide whole
    families of circuits by interval bounds where they agree (``False`` scores every pair,
    for checking). ``max_candidates``: refuse a larger census (``None``: no limit).
    ``progress(done, total)`` is called as candidates are scored. ``stream(bits)`` is
    handed every valid circuit, in blocks of ``(n, n_words)`` bitsets as they are found
    (for counts over more circuits than can be held; see ``measures.tally``).
    """

    workers: int = 1
    device: str = "cpu"
    backend: str = "auto"
    shard: tuple[int, int] | None = None
    collect: bool | int = True
    circuits_file: Path | None = None
    max_file_bytes: int | None = None
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES
    prune: bool = True
    progress: Callable[[int, int], None] | None = None
    stream: Callable[[np.ndarray], None] | None = None

    def __post_init__(self) -> None:
        if self.shard is not None:
            i, n = self.shard
            if not (isinstance(n, int) and n >= 1 and isinstance(i, int) and 0 <= i < n):
                raise InputError(f"shard must be (i, n) with 0 <= i < n, got {self.shard}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise InputError("workers must be at least 1")
        if self.backend not in BACKENDS:
            raise InputError(
                f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.use_torch and self.workers > 1:
            raise InputError("--workers splits CPU work; use one worker with a GPU device")
        if self.max_file_bytes is not None and self.max_file_bytes < 0:
            raise InputError("the circuits file's size limit must be non-negative")
        if self.collect is not True and self.collect is not False and int(self.collect) <= 0:
            object.__setattr__(self, "collect", False)  # holding at most none is not holding

    @property
    def use_torch(self) -> bool:
        """Whether pairs are scored by PyTorch (a non-CPU device, or ``backend="torch"``)."""
        return self.backend == "torch" or (self.backend == "auto" and self.device != "cpu")

    @property
    def limit_held(self) -> int | None:
        """Most valid circuits held in memory (``None``: all of them)."""
        return None if self.collect is True else (0 if self.collect is False else int(self.collect))
