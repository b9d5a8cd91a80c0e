"""The exact census, the public API: every admissible circuit of a model scored against the
full model, by the engine in :mod:`circuit_census.circuits.engine` (see docs/census.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from circuit_census.circuits.circuitfile import CircuitFileWriter
from circuit_census.circuits.engine import parallel
from circuit_census.circuits.engine.blocks import Totals
from circuit_census.circuits.engine.problem import select_output
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace, sort_circuits
from circuit_census.errors import InputError
from circuit_census.network import Network


@dataclass
class CensusResult:
    """The outcome of a census: counts, and the valid circuits as bitsets when collected.

    ``valid`` holds every valid circuit, in the canonical order of :func:`sort_circuits`,
    unless more than the ``collect`` limit were found; then it is ``None`` and ``n_valid``
    still counts them all.
    """

    space: CircuitSpace
    network: Network
    n_candidates: int
    n_valid: int
    valid: np.ndarray | None
    settings: dict
    output: int | None = None
    seconds: float = 0.0
    shard: tuple[int, int] | None = None
    n_bounded: int = 0  # candidates decided by bounds on a whole family, not pair by pair
    compile_seconds: float = 0.0  # of ``seconds``, compiling kernels (first run only)

    def edge_masks(self, bits: np.ndarray, full_sizes: Sequence[int] | None = None) -> list:
        """Per-layer 0/1 masks of one circuit; for a per-output census, in the orientation
        of the full model's ``W_l`` when ``full_sizes`` is given (other outputs' rows 0)."""
        masks = self.space.bits_to_masks(bits)
        if full_sizes is not None and self.output is not None:
            last = np.zeros((full_sizes[-1], full_sizes[-2]), dtype=np.uint8)
            last[self.output] = masks[-1][0]
            masks[-1] = last
        return masks


def census(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
    *,
    output: int | str | None = None,
) -> CensusResult:
    """Exact census of ``network`` on evaluation inputs ``x`` (targets ``y`` for accuracy).

    ``settings`` says what is computed (criterion, threshold, ablation, compat mode),
    ``options`` how the work runs (shards, workers, device, what is kept; see
    :class:`RunOptions`). ``output``: an output index for a per-output census of a
    multi-output model, or ``"joint"``.
    """
    started = time.perf_counter()
    net, x, y, out = select_output(network, x, y, output, settings.rule)
    if settings.compat and net.n_layers < 2:
        raise InputError("the meloux2025 mode needs at least one hidden layer")
    space = CircuitSpace(net.sizes, settings.compat)
    total = space.count()
    if options.max_candidates is not None and total > options.max_candidates:
        raise InputError(
            f"{total:,} candidate circuits exceed the limit of {options.max_candidates:,}; "
            "raise it (--max-candidates) if you mean it"
        )
    path, writer = options.circuits_file, None
    try:
        if path:
            writer = CircuitFileWriter(path, space, {"output": out}, options.max_file_bytes)
        sinks = [sink for sink in (writer and writer.add, options.stream) if sink is not None]
        if sinks or not _count_first(net, options):
            totals = parallel.run(net, x, y, settings, options, _fan_out(sinks), total)
        else:
            totals = _counted_then_listed(net, x, y, settings, options, total)
        if writer:
            writer.close()
    except BaseException:
        if writer:
            writer.discard()
        raise
    if options.shard is None and totals.candidates != total:
        raise RuntimeError(f"engine scored {totals.candidates} candidates, expected {total}")
    valid = None
    if options.collect is not False and not totals.overflow:
        chunks = totals.chunks or [np.zeros((0, space.n_words), dtype=np.uint64)]
        valid = sort_circuits(np.concatenate(chunks))
    return CensusResult(
        space=space,
        network=net,
        n_candidates=int(totals.candidates),  # Python ints: exact at any size, and JSON
        n_valid=int(totals.valid),
        valid=valid,
        settings=_settings_record(settings, options, output, out, x),
        output=out,
        seconds=time.perf_counter() - started,
        shard=options.shard,
        n_bounded=int(totals.bounded),
        compile_seconds=totals.compile_seconds,
    )


def _count_first(net: Network, options: RunOptions) -> bool:
    """Whether to count before listing: a deep network's census counts in compiled code
    but lists valid circuits in a far slower pass, which is wasted when there are more
    of them than ``collect`` holds."""
    return net.n_layers > 2 and options.collect is not True and options.collect is not False


def _counted_then_listed(
    net: Network, x, y, settings: CensusSettings, options: RunOptions, total: int
) -> Totals:
    """Count the valid circuits, then list them only if they fit what is held (progress
    reports the two passes as halves of one)."""
    progress = options.progress
    first = second = None
    if progress is not None:

        def first(done: int, of: int) -> None:
            progress(done // 2, of)

        def second(done: int, of: int) -> None:
            progress(of // 2 + (done - done // 2), of)

    counted = parallel.run(
        net, x, y, settings, replace(options, collect=False, progress=first), None, total
    )
    if counted.valid > options.limit_held:
        counted.overflow = True  # too many to hold: the counts are the census
        if progress is not None:
            progress(total, total)
        return counted
    listed = parallel.run(net, x, y, settings, replace(options, progress=second), None, total)
    listed.compile_seconds += counted.compile_seconds
    return listed


def _fan_out(sinks: list) -> parallel.Sink | None:
    """One sink handing each block of valid circuits to every one of ``sinks``."""
    if len(sinks) <= 1:
        return sinks[0] if sinks else None

    def sink(bits: np.ndarray) -> None:
        for each in sinks:
            each(bits)

    return sink


def _settings_record(
    settings: CensusSettings, options: RunOptions, output, out: int | None, x: np.ndarray
) -> dict:
    """What a census computed, as its result's ``settings``."""
    return {
        **settings.to_dict(),  # under resample ablation, also its pairs and seed
        "ablation": settings.ablation,
        "criterion": settings.rule.name,
        "threshold": settings.rule.threshold,
        "compat": settings.compat,
        "output": "joint" if output == "joint" else out,
        "n_samples": int(len(x)),
        "device": options.device,
        "n_unique_points": int(len(np.unique(x, axis=0))),
    }


def combine_results(parts: Sequence[CensusResult]) -> CensusResult:
    """Join the shards of one census into exactly the whole census."""
    if not parts:
        raise InputError("no census shards to combine")
    first = parts[0]
    shards = sorted(p.shard or (0, 1) for p in parts)
    n = shards[0][1]
    if shards != [(i, n) for i in range(n)]:
        raise InputError(f"shards {shards} are not exactly 0..{n - 1} of {n}")
    valid = None
    if all(p.valid is not None for p in parts):
        valid = sort_circuits(np.concatenate([p.valid for p in parts]))
    return replace(
        first,
        n_candidates=sum(p.n_candidates for p in parts),
        n_valid=sum(p.n_valid for p in parts),
        n_bounded=sum(p.n_bounded for p in parts),
        valid=valid,
        seconds=sum(p.seconds for p in parts),
        compile_seconds=sum(p.compile_seconds for p in parts),
        shard=None,
    )


def census_outputs(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
) -> list[CensusResult]:
    """One census per output of a (multi-output) model."""
    return [census(network, x, y, settings, options, output=o) for o in range(network.sizes[-1])]
