"""``circuit-census census`` and ``circuit-census count``: take (or size up) an exact census."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from circuit_census.circuits.census import CensusResult, census
from circuit_census.circuits.circuitfile import circuits_file_size, free_space
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace
from circuit_census.cli.progress import census_progress, format_duration, format_rate, show_bar
from circuit_census.errors import InputError
from circuit_census.files import atomic_write, format_size
from circuit_census.network import Network, check_inputs
from circuit_census.training.modelfiles import load_data, load_model

# Rough two-core rate of scoring pairs, for the estimate printed before a census starts;
# bounds on whole families of circuits usually settle most candidates far sooner.
ESTIMATED_RATE = 5e7
DEFAULT_MAX_LISTED = 10_000
DEFAULT_MAX_MEASURED = 5_000_000
DEFAULT_MAX_FILE_SIZE = "1G"
_SIZE_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str, flag: str = "--max-file-size") -> int:
    """Bytes of a size written like ``500M``, ``2G``, ``1.5T`` or ``4096`` (decimal units,
    as :func:`format_size` prints them; a trailing ``B`` is allowed)."""
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    if not found:
        raise InputError(f"{flag} must be a size like 500M or 2G, got {text!r}")
    return int(float(found.group(1)) * _SIZE_UNITS[found.group(2).upper()])


def estimate_seconds(n_candidates: int) -> float:
    """A rough duration for a census of ``n_candidates`` on two CPU cores if the pairs had
    to be scored (an upper estimate for trained networks, whose bounds settle most);
    ``inf`` when the count is too large for a float."""
    try:
        return n_candidates / ESTIMATED_RATE
    except OverflowError:
        return math.inf


def _circuit_entries(result: CensusResult, bits: np.ndarray, full_sizes, cap: int) -> list:
    return [
        {"edge_masks": [m.tolist() for m in result.edge_masks(b, full_sizes)]} for b in bits[:cap]
    ]


def _result_dict(
    result: CensusResult,
    full_sizes,
    max_listed: int,
    measures,
    minimal: np.ndarray | None,
    circuits_file: Path | None,
    note: str | None,
) -> dict[str, Any]:
    """The JSON entry of one census: counts, up to ``max_listed`` valid circuits (how many
    were left out, and where they all are), minimal circuits and measures."""
    listed = (
        []
        if result.valid is None
        else _circuit_entries(result, result.valid, full_sizes, max_listed)
    )
    out: dict[str, Any] = {
        "n_candidates": result.n_candidates,
        "n_valid": result.n_valid,
        "n_decided_by_bounds": result.n_bounded,
        "valid_circuits": listed,
        "n_listed": len(listed),
        "n_left_out": result.n_valid - len(listed),
        "circuits_file": None if circuits_file is None else str(circuits_file),
    }
    if out["n_left_out"] and circuits_file is None:
        out["left_out_note"] = _left_out_note(result, len(listed), max_listed)
    if result.output is not None:
        out = {"output": result.output, **out}
    if measures is not None:
        out["n_minimal"] = measures.n_minimal
        out["minimal_circuits"] = _circuit_entries(result, minimal, full_sizes, max_listed)
        out["n_minimal_left_out"] = max(0, len(minimal) - max_listed)
        out["measures"] = measures.to_dict()
    else:
        out["n_minimal"] = None
        out["minimal_circuits"] = None
        out["measures"] = None
        out["measures_note"] = note
    out["seconds"] = round(result.seconds, 6)
    out["compile_seconds"] = round(result.compile_seconds, 6)
    return out


_Model = Annotated[
    Path,
    typer.Option(
        "--model", help="Model: a circuit-census .safetensors file or a PyTorch state_dict."
    ),
]
_Data = Annotated[
    Path, typer.Option("--data", help=".npz evaluation set with x (and y for accuracy).")
]
_Activation = Annotated[
    str | None,
    typer.Option(
        "--activation", help="Hidden activation (a state_dict needs it; overrides the file's)."
    ),
]
_OutputActivation = Annotated[
    str | None,
    typer.Option(
        "--output-activation", help="Output activation (default: the file's, else identity)."
    ),
]
_Ablation = Annotated[str, typer.Option("--ablation", help="zero, mean or resample.")]
_ResamplePairs = Annotated[
    str,
    typer.Option(
        "--resample-pairs",
        help="Resample ablation: seeded (x' a seeded permutation of the data) or all pairs.",
    ),
]
_ResampleSeed = Annotated[
    int, typer.Option("--resample-seed", help="Resample ablation: seed of the permutation.")
]
_Criterion = Annotated[str, typer.Option("--criterion", help="mse or accuracy.")]
_Threshold = Annotated[
    float | None,
    typer.Option(
        "--threshold", help="mse: below it (default 0.05); accuracy: at least it (default 0.99)."
    ),
]
_Compat = Annotated[
    str | None,
    typer.Option("--compat", help="meloux2025: the reference code's circuit space and accuracy."),
]
_Output = Annotated[Path | None, typer.Option("--output", help="Write the census as JSON here.")]
_Joint = Annotated[
    bool,
    typer.Option("--joint", help="Multi-output model: also take the joint census of all outputs."),
]
_MaxCandidates = Annotated[int, typer.Option("--max-candidates", help="Refuse larger censuses.")]
_MaxListed = Annotated[
    int,
    typer.Option(
        "--max-listed",
        help="Most valid circuits listed in the JSON (the rest are counted; --circuits-file "
        "keeps them all).",
    ),
]
_CircuitsFile = Annotated[
    Path | None,
    typer.Option(
        "--circuits-file",
        help="Stream every valid circuit to this compact file (8 bytes per circuit per 64 "
        "edges; its largest possible size is printed first). Per output: "
        "NAME.outputK.circuits.",
    ),
]
_MaxFileSize = Annotated[
    str,
    typer.Option(
        "--max-file-size",
        help="Stop (exit 2, nothing written) if the circuits file would pass this size "
        "(500M, 2G, ...), or the free space on its disk.",
    ),
]
_MaxMeasured = Annotated[
    int,
    typer.Option(
        "--max-measured",
        help="Most valid circuits held in memory for minimal circuits and measures.",
    ),
]
_Workers = Annotated[int, typer.Option("--workers", help="Local processes sharing the census.")]
_Device = Annotated[
    str,
    typer.Option("--device", help="cpu (compiled kernels) or a PyTorch device such as cuda."),
]
_Figures = Annotated[
    Path | None,
    typer.Option(
        "--figures",
        help="Write circuit figures (PNG and SVG) into this folder; past --max-measured, "
        "sizes and frequencies are counted exactly and circuits drawn from a sample.",
    ),
]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
_Estimate = Annotated[
    int | None,
    typer.Option(
        "--estimate",
        help="Estimate instead of a census: draw N circuits uniformly from the admissible "
        "space, judge each exactly, and report the valid fraction and count with a 95% "
        "Wilson interval (for networks past the exact frontier; no circuits are listed).",
    ),
]
_EstimateSeed = Annotated[
    int, typer.Option("--estimate-seed", help="--estimate: seed of the uniform draws.")
]
_MaxSeconds = Annotated[
    float | None,
    typer.Option(
        "--max-seconds",
        help="Stop (exit 2, nothing written) once the census has run this long, saying "
        "how far it got and offering --estimate instead. Default: off.",
    ),
]


def census_command(
    model: _Model,
    data: _Data,
    activation: _Activation = None,
    output_activation: _OutputActivation = None,
    ablation: _Ablation = "zero",
    criterion: _Criterion = "mse",
    threshold: _Threshold = None,
    compat: _Compat = None,
    output: _Output = None,
    joint: _Joint = False,
    max_candidates: _MaxCandidates = DEFAULT_MAX_CANDIDATES,
    max_listed: _MaxListed = DEFAULT_MAX_LISTED,
    max_measured: _MaxMeasured = DEFAULT_MAX_MEASURED,
    workers: _Workers = 1,
    device: _Device = "cpu",
    figures: _Figures = None,
    circuits_file: _CircuitsFile = None,
    max_file_size: _MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    quiet: _Quiet = False,
    resample_pairs: _ResamplePairs = "seeded",
    resample_seed: _ResampleSeed = 0,
    estimate: _Estimate = None,
    estimate_seed: _EstimateSeed = 0,
    max_seconds: _MaxSeconds = None,
) -> None:
    """Take the exact census of every admissible circuit of a model (or, with --estimate,
    estimate it from circuits drawn uniformly)."""
    if max_listed < 0 or max_measured < 0:
        raise InputError("--max-listed and --max-measured must be non-negative")
    _check_estimate_flags(estimate, estimate_seed, max_seconds, circuits_file)
    settings = CensusSettings(criterion, threshold, ablation, compat, resample_pairs, resample_seed)
    run_options = RunOptions(
        workers=workers,
        device=device,
        collect=max_measured,
        max_candidates=max_candidates,
        max_file_bytes=parse_size(max_file_size),
    )
    for flag, path in (("--output", output), ("--circuits-file", circuits_file)):
        if path is not None and path.exists() and path.is_dir():
            raise InputError(f"{flag} {path} is a folder; give a file name")
    network, _ = load_model(model, activation, output_activation)
    x, y = load_data(data, need_y=settings.rule.needs_targets)
    check_inputs(network, x, y)
    run = _Run(
        network,
        x,
        y,
        settings,
        run_options,
        output,
        figures,
        circuits_file,
        quiet,
        max_listed,
        max_measured,
        max_seconds,
    )
    m = network.sizes[-1]
    targets: list[int | str | None] = [None] if m == 1 else list(range(m))
    if joint and m > 1:
        targets.append("joint")
    try:
        if estimate is not None:
            if figures is not None and not quiet:
                run.console.print("figures: not applicable to an estimate (it lists no circuits)")
            if workers > 1 and not quiet:
                run.console.print("workers: an estimate judges its draws in this process")
            entries = [_estimate_target(run, t, estimate, estimate_seed) for t in targets]
        else:
            for target in targets:  # refuse before any census starts, not after the first
                _check_census_size(run, target)
            entries = [_census_target(run, target) for target in targets]
        if output is not None:
            doc = _document(entries, targets, network, model, data, settings, len(x))
            if estimate is not None:
                doc = {"estimate": True, **doc}
            text = json.dumps(doc, indent=1, allow_nan=False)
            atomic_write(output, lambda tmp: tmp.write_text(text))
            run.written.append(output)
    except BaseException:
        for path in run.written:
            Path(path).unlink(missing_ok=True)
        raise
    if output is not None and not quiet:
        run.console.print(f"wrote {output}")


@dataclass
class _Run:
    """One ``census`` command: what to census, how, where results go and what was written
    (removed again if the command fails)."""

    network: Network
    x: np.ndarray
    y: np.ndarray | None
    settings: CensusSettings
    options: RunOptions
    output: Path | None
    figures: Path | None
    circuits_file: Path | None
    quiet: bool
    max_listed: int
    max_measured: int
    max_seconds: float | None = None
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    started: float = field(default_factory=time.monotonic)
    written: list[Path] = field(default_factory=list)

    @property
    def show(self) -> bool:
        """Whether census progress bars show (on stderr)."""
        return show_bar(self.quiet, sys.stderr)


# How many draws a refusal suggests: a valid fraction's 95% interval then spans at most
# about +-0.01 (1/sqrt(n)), in a few seconds to minutes.
SUGGESTED_DRAWS = 10_000
_OFFER_ESTIMATE = (
    f"add --estimate {SUGGESTED_DRAWS} to estimate it from {SUGGESTED_DRAWS:,} uniform draws "
    "instead"
)


def _check_estimate_flags(
    estimate: int | None, seed: int, max_seconds: float | None, circuits_file: Path | None
) -> None:
    """The flags of an estimate (and ``--max-seconds``), checked once as they come in."""
    if estimate is not None and estimate < 1:
        raise InputError(f"--estimate must be at least 1 (circuits to draw), got {estimate}")
    if seed < 0:
        raise InputError(f"--estimate-seed must be a non-negative integer, got {seed}")
    if max_seconds is not None and not max_seconds > 0:
        raise InputError(f"--max-seconds must be positive, got {max_seconds:g}")
    if estimate is not None and circuits_file is not None:
        raise InputError(
            "--circuits-file keeps the valid circuits of a census; an estimate (--estimate) "
            "lists none: leave out one of them"
        )


def _target_sizes(network: Network, target: int | str | None) -> tuple[int, ...]:
    """The layer sizes a census of ``target`` looks at (one output: the rest dropped)."""
    return network.sizes if target in (None, "joint") else network.sizes[:-1] + (1,)


def _label(target: int | str | None) -> str:
    return "" if target is None else "joint: " if target == "joint" else f"output {target}: "


def _check_census_size(run: _Run, target: int | str | None) -> None:
    """Refuse, in one line that offers ``--estimate``, a census with more candidates than
    ``--max-candidates``."""
    sizes = _target_sizes(run.network, target)
    total = CircuitSpace(sizes, run.settings.compat).count()
    label, arch = _label(target), "-".join(map(str, sizes))
    seconds = estimate_seconds(total)
    max_candidates = run.options.max_candidates
    if max_candidates is not None and total > max_candidates:
        raise InputError(
            f"{label}{total:,} candidate circuits exceed --max-candidates {max_candidates:,} "
            f"(a census of {arch} would take {format_duration(seconds)} if every pair is "
            f"scored); {_OFFER_ESTIMATE}, or raise --max-candidates to take it anyway"
        )


def _estimate_target(run: _Run, target: int | str | None, n: int, seed: int) -> dict[str, Any]:
    """The estimate of one output's census from ``n`` uniform draws, printed and returned
    as its JSON entry."""
    from circuit_census.circuits.estimate import estimate_census

    sizes = _target_sizes(run.network, target)
    label = _label(target)
    if not run.quiet:
        total = CircuitSpace(sizes, run.settings.compat).count()
        run.console.print(
            f"{label}{total:,} candidate circuits of {'-'.join(map(str, sizes))}; estimating "
            f"from {n:,} uniform draws (seed {seed}), each judged exactly"
        )
    started = time.perf_counter()
    with census_progress(run.show, n, label or "estimate: ", unit="draws") as tick:
        found = estimate_census(
            run.network, run.x, run.y, run.settings, n, seed, tick, output=target
        )
    seconds = time.perf_counter() - started
    run.console.print(label + estimate_summary(found, seconds))
    entry: dict[str, Any] = {**found.to_dict(), "seconds": round(seconds, 6)}
    if target is not None:
        entry = {"output": None if target == "joint" else target, **entry}
    return entry


def format_count_estimate(value: int) -> str:
    """An estimated count for a person: exact below a million (``12,345``), else three
    significant figures as a power of ten (``1.23e9``), at any size."""
    if value < 10**6:
        return f"{value:,}"
    digits = len(str(value))
    lead = round(value / 10 ** (digits - 3))  # int / int: correctly rounded at any size
    if lead >= 1000:  # rounding carried into another digit
        lead, digits = lead // 10, digits + 1
    mantissa = f"{lead / 100:.2f}".rstrip("0").rstrip(".")
    return f"{mantissa}e{digits - 1}"


def estimate_summary(found, seconds: float) -> str:
    """An estimate in one line, marked as one: the valid count and fraction with their
    95% intervals, and what they come from."""
    low, high = found.n_valid_interval
    return (
        f"[bold]estimated[/bold] valid circuits: about {format_count_estimate(found.n_valid)} "
        f"(95% CI {format_count_estimate(low)} to {format_count_estimate(high)}) of "
        f"{found.n_candidates:,} candidates, valid fraction {found.valid_fraction:.3g} "
        f"[{found.fraction_low:.3g}, {found.fraction_high:.3g}] from {found.n_sampled:,} "
        f"uniform draws ({found.n_valid_sampled:,} valid, seed {found.seed}) in "
        f"{seconds:.2f} s; an estimate, not a census"
    )


def _census_target(run: _Run, target: int | str | None) -> dict[str, Any]:
    """The census of one output (``None``: the only one; ``"joint"``: all at once), printed
    and returned as its JSON entry."""
    sizes = _target_sizes(run.network, target)
    total = CircuitSpace(sizes, run.settings.compat).count()
    label = _label(target)
    if not run.quiet:
        run.console.print(
            f"{label}{total:,} candidate circuits of {'-'.join(map(str, sizes))}; "
            f"{format_duration(estimate_seconds(total))} if every pair is scored, "
            "usually far less"
        )
    circuits_path = None
    if run.circuits_file is not None:
        circuits_path = run.circuits_file
        if target is not None:
            circuits_path = circuits_path.with_name(
                f"{circuits_path.stem}.output{target}{circuits_path.suffix or '.circuits'}"
            )
        space = CircuitSpace(sizes, run.settings.compat)
        most = circuits_file_size(space, total, {"output": target if target != "joint" else None})
        limit = run.options.max_file_bytes
        run.console.print(label + _expected_size_line(space, most, total, circuits_path, limit))
    tally = None
    if run.figures is not None:  # counts for the figures, should there be too many to hold
        from circuit_census.measures.tally import SAMPLE_SIZE, CircuitTally

        space = CircuitSpace(sizes, run.settings.compat)
        tally = CircuitTally(space, sample_size=min(SAMPLE_SIZE, run.max_measured))
    with census_progress(run.show and estimate_seconds(total) > 1.0, total, label) as tick:
        options = replace(
            run.options,
            circuits_file=circuits_path,
            progress=_time_limited(run, label, tick),
            stream=None if tally is None else tally.add,
        )
        result = census(run.network, run.x, run.y, run.settings, options, output=target)
    if circuits_path is not None:
        run.written.append(circuits_path)
        if not run.quiet:
            run.console.print(
                f"{label}wrote {result.n_valid:,} valid circuits to {circuits_path} "
                f"({format_size(circuits_path.stat().st_size)})"
            )
    from numba.core.event import install_timer

    compiled: list[float] = []  # the measures' kernels, on a first run
    with install_timer("numba:compile", compiled.append):
        measures, minimal, note = _measures(result, run.max_measured)
    entry = _result_dict(
        result, run.network.sizes, run.max_listed, measures, minimal, circuits_path, note
    )
    _print_summary(run.console, label, result, measures, note, sum(compiled))
    if run.figures is not None and measures is not None:
        from circuit_census.measures.figures import write_census_figures

        run.written += write_census_figures(result, measures, minimal, run.figures)
    elif tally is not None:
        from circuit_census.measures.figures import write_streamed_figures

        entry["streamed_counts"] = tally.to_dict()
        run.written += write_streamed_figures(result, tally, run.figures)
        run.console.print(f"  {label}{_streamed_figures_line(tally)}")
    return entry


def _time_limited(run: _Run, label: str, tick: Callable[[int, int], None] | None):
    """``tick``, stopping the census (an error: nothing is written) once the command has
    run ``--max-seconds``; checked as work units finish."""
    if run.max_seconds is None:
        return tick

    def limited(done: int, total: int) -> None:
        if tick is not None:
            tick(done, total)
        if done < total and time.monotonic() - run.started > run.max_seconds:
            raise InputError(
                f"{label}stopped at --max-seconds {run.max_seconds:g} with "
                f"{done * 100 // total}% of {total:,} candidates decided; nothing was "
                f"written; {_OFFER_ESTIMATE}"
            )

    return limited


def _streamed_figures_line(tally) -> str:
    """What the figures of a census too large to hold show, and from what."""
    n_sample = min(tally.sample_size, tally.n_valid)
    drawn = (
        f"minimal circuits drawn from a uniform sample of {n_sample:,} (seed {tally.seed})"
        if n_sample
        else "no circuit drawings (--max-measured 0 holds no sample)"
    )
    return (
        f"figures: sizes and edge and node frequencies counted exactly over all "
        f"{tally.n_valid:,} valid circuits; {drawn}"
    )


def _expected_size_line(
    space: CircuitSpace, most: int, total: int, path: Path, max_bytes: int | None
) -> str:
    """What the circuits file will take: at most ``most`` bytes, a bitset for each of the
    ``total`` candidates (how many are valid is known only as the census goes), and where
    the census would stop."""
    free = free_space(path)
    limit, why = (free, "the free space there")
    if max_bytes is not None and max_bytes <= free:
        limit, why = (max_bytes, "--max-file-size")
    line = (
        f"circuits file {path}: at most {format_size(most)} "
        f"({8 * space.n_words} bytes per valid circuit, {total:,} candidates)"
    )
    if most > limit:
        line += f"; the census stops, writing nothing, if it passes {format_size(limit)} ({why})"
    return line


def _left_out_note(result: CensusResult, n_listed: int, max_listed: int) -> str:
    """Why some valid circuits are not in the JSON, and how to keep them all."""
    why = (
        f"--max-listed {max_listed:,}"
        if result.valid is not None
        else "too many to hold (--max-measured)"
    )
    return (
        f"{result.n_valid - n_listed:,} of {result.n_valid:,} valid circuits are not listed "
        f"({why}); --circuits-file PATH keeps them all"
    )


def _measures(result: CensusResult, max_measured: int):
    if result.valid is None:
        return (
            None,
            None,
            (
                f"{result.n_valid:,} valid circuits exceed --max-measured {max_measured:,}: "
                "minimal circuits and measures were not computed"
            ),
        )
    from circuit_census.measures.uniqueness import census_measures

    measures, minimal = census_measures(result)
    return measures, minimal, None


def _document(entries, targets, network: Network, model, data, settings, n) -> dict:
    settings = {
        "model": str(model),
        "data": str(data),
        "sizes": list(network.sizes),
        "activation": network.activation,
        "output_activation": network.output_activation,
        "ablation": settings.ablation,
        "criterion": settings.criterion,
        "threshold": settings.threshold,
        "compat": settings.compat,
        **settings.to_dict(),
        "n_samples": n,
    }
    if targets == [None]:
        return {**entries[0], "settings": settings}
    per_output = [e for e, t in zip(entries, targets) if t != "joint"]
    doc: dict[str, Any] = {"outputs": per_output, "settings": settings}
    if "joint" in targets:
        doc["joint"] = entries[-1]
    return doc


def _share(part: int, whole: int) -> str:
    """A percentage that says 100% or 0% only when it is exactly so."""
    if whole == 0 or part == 0:
        return "0%"
    if part == whole:
        return "100%"
    return f"{min(max(100 * part / whole, 0.1), 99.9):.1f}%"


def _print_summary(
    console: Console, label: str, result: CensusResult, measures, note, compiled: float = 0.0
) -> None:
    """The census in a line or two; ``compiled``: seconds compiling the measures' kernels,
    said with the census's own (neither is counted in the rate)."""
    scoring = result.seconds - result.compile_seconds  # the rate never counts compiling
    rate = f"{format_rate(result.n_candidates / scoring)}; " if scoring > 0 else ""
    console.print(
        f"{label}[bold]{result.n_valid:,}[/bold] valid of {result.n_candidates:,} candidates "
        f"({result.settings['criterion']} {result.settings['threshold']:g}, "
        f"{result.settings['ablation']} ablation) in {result.seconds:.2f} s "
        f"({rate}{_share(result.n_bounded, result.n_candidates)} decided by bounds)"
    )
    if result.compile_seconds + compiled >= 0.01:
        console.print(
            f"  compiled kernels in {result.compile_seconds + compiled:.2f} s (first run "
            "only; not counted in the rate)"
        )
    if measures is not None:
        for line in measures.summary_lines():
            console.print(f"  {line}")
    elif note:
        console.print(f"  {note}")


_Hidden = Annotated[str, typer.Option("--hidden", help="Hidden widths: 16 or 4,4.")]
_Inputs = Annotated[int, typer.Option("--inputs", help="Number of inputs.")]
_Outputs = Annotated[int, typer.Option("--outputs", help="Number of outputs (counted per output).")]
_CountCompat = Annotated[
    str | None, typer.Option("--compat", help="meloux2025: the reference code's space.")
]
_CountJoint = Annotated[
    bool, typer.Option("--joint", help="Count the joint space of all outputs instead.")
]


def count_command(
    hidden: _Hidden = "4",
    inputs: _Inputs = 2,
    outputs: _Outputs = 1,
    compat: _CountCompat = None,
    joint: _CountJoint = False,
) -> None:
    """Count the admissible circuits of an architecture exactly, without enumerating."""
    from circuit_census.training.config import parse_hidden

    widths = parse_hidden(hidden)
    if inputs < 1 or outputs < 1:
        raise InputError("--inputs and --outputs must be at least 1")
    sizes = (inputs, *widths, outputs if joint else 1)
    n = CircuitSpace(sizes, compat).count()
    what = "" if outputs == 1 else "jointly" if joint else f"per output (x{outputs:,})"
    refused = (
        f"; a census would be refused above {DEFAULT_MAX_CANDIDATES:,} candidates unless "
        f"--max-candidates is raised; --estimate {SUGGESTED_DRAWS} estimates it from "
        f"{SUGGESTED_DRAWS:,} uniform draws instead"
        if n > DEFAULT_MAX_CANDIDATES
        else ""
    )
    typer.echo(
        f"{'-'.join(map(str, sizes))}: {n:,} candidate circuits{' ' + what if what else ''}; "
        f"census time {format_duration(estimate_seconds(n))} if every pair is scored, "
        f"usually far less{refused}"
    )
