"""``circuit-census discover``: run a circuit-discovery method and grade what it returns
against the exact census."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings
from circuit_census.circuits.space import CircuitSpace
from circuit_census.cli.census_cmd import (
    _Ablation,
    _Activation,
    _Criterion,
    _Data,
    _MaxCandidates,
    _Model,
    _OutputActivation,
    _Quiet,
    _ResamplePairs,
    _ResampleSeed,
    _Threshold,
)
from circuit_census.cli.progress import census_progress, show_bar
from circuit_census.discovery.grading import DiscoveryReport, Grade, Run, census_truth
from circuit_census.discovery.grading import discover_and_grade as run_discovery
from circuit_census.discovery.methods import DEFAULT_STEPS, DEFAULT_TAU, DiscoveryOptions
from circuit_census.discovery.patching import flags_to_masks
from circuit_census.errors import InputError
from circuit_census.files import atomic_write
from circuit_census.network import Network, check_inputs
from circuit_census.training.modelfiles import load_data, load_model

_Method = Annotated[
    str, typer.Option("--method", help="acdc, eap, eap-ig or magnitude.", show_default=False)
]
_Tau = Annotated[float, typer.Option("--tau", help="acdc: largest accepted rise of the mse.")]
_K = Annotated[
    int | None,
    typer.Option("--k", help="eap, eap-ig: keep the top k edges (default: smallest valid k)."),
]
_ScoreThreshold = Annotated[
    float | None,
    typer.Option("--score-threshold", help="eap, eap-ig: keep edges scoring at least this."),
]
_Steps = Annotated[int, typer.Option("--steps", help="eap-ig: points on the path.")]
_Seeds = Annotated[
    int, typer.Option("--seeds", help="Method seeds 0..S-1 (acdc edge order, resample pairs).")
]
_Output = Annotated[
    Path | None, typer.Option("--output", help="Write the circuits and grades as JSON here.")
]
_Figures = Annotated[
    Path | None,
    typer.Option("--figures", help="Write the circuit and faithfulness figures (PNG, SVG) here."),
]


def discover_command(
    model: _Model,
    data: _Data,
    method: _Method,
    tau: _Tau = DEFAULT_TAU,
    k: _K = None,
    score_threshold: _ScoreThreshold = None,
    steps: _Steps = DEFAULT_STEPS,
    ablation: _Ablation = "zero",
    resample_pairs: _ResamplePairs = "seeded",
    resample_seed: _ResampleSeed = 0,
    criterion: _Criterion = "mse",
    threshold: _Threshold = None,
    seeds: _Seeds = 1,
    activation: _Activation = None,
    output_activation: _OutputActivation = None,
    max_candidates: _MaxCandidates = DEFAULT_MAX_CANDIDATES,
    output: _Output = None,
    figures: _Figures = None,
    quiet: _Quiet = False,
) -> None:
    """Run a circuit-discovery method and grade its circuit against the exact census."""
    options = DiscoveryOptions(method, tau, k, score_threshold, steps)
    settings = CensusSettings(
        criterion, threshold, ablation, resample_pairs=resample_pairs, resample_seed=resample_seed
    )
    if seeds < 1:  # checked before the census is taken; discover_and_grade checks it too
        raise InputError(f"seeds must be at least 1, got {seeds}")
    if output is not None and output.is_dir():
        raise InputError(f"--output {output} is a folder; give a file name")
    if figures is not None and figures.exists() and not figures.is_dir():
        raise InputError(f"--figures {figures} is a file; give a folder")
    network, _ = load_model(model, activation, output_activation)
    x, y = load_data(data, need_y=settings.rule.needs_targets)
    check_inputs(network, x, y)
    console = Console()
    show = show_bar(quiet, Console(stderr=True).file)
    truth = None
    if CircuitSpace(network.sizes).count() <= max_candidates:
        with census_progress(show, CircuitSpace(network.sizes).count(), "census") as tick:
            truth = census_truth(network, x, y, settings, max_candidates, tick)
    with census_progress(show, seeds, method) as tick:
        report = run_discovery(
            network, x, y, settings, options, seeds, max_candidates, truth, progress=tick
        )
    for line in report_lines(report, network):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    written: list[Path] = []
    try:
        if figures is not None:
            from circuit_census.discovery.figures import write_discovery_figures

            written += write_discovery_figures(report, network, figures)
        if output is not None:
            text = json.dumps(report_document(report, network, model, data), indent=1)
            atomic_write(output, lambda tmp: tmp.write_text(text))
            written.append(output)
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise
    if written:
        console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)


def edge_names(network: Network, flags: np.ndarray) -> list[str]:
    """The circuit's edges as ``sender->receiver`` with nodes named by layer (x: inputs,
    h1.., y: outputs) and index."""
    n_layers = network.n_layers
    names = []
    for layer, mask in enumerate(flags_to_masks(CircuitSpace(network.sizes), flags)):
        send = "x" if layer == 0 else f"h{layer}."
        recv = "y" if layer == n_layers - 1 else f"h{layer + 1}."
        for j, i in zip(*np.nonzero(mask)):
            names.append(f"{send}{i}->{recv}{j}")
    return names


def _grade_line(g: Grade) -> str:
    parts = [f"{g.n_edges} edges", "valid" if g.valid else "NOT valid", f"mse {g.mse:.4g}"]
    if g.minimal is not None:
        parts.append("minimal" if g.minimal else "not minimal")
        parts.append(f"contains {len(g.contained_minimal)} minimal circuit(s)")
        if g.size_excess is not None:
            parts.append(f"{g.size_excess:+d} edges vs the smallest valid ({g.smallest_valid})")
        if g.jaccard is not None:
            parts.append(f"Jaccard {g.jaccard:.2f} to minimal #{g.nearest_minimal}")
    return ", ".join(parts)


def _run_lines(run: Run, network: Network) -> list[str]:
    found = run.discovered
    head = f"seed {found.seed}" + (f" (k = {found.k})" if found.k is not None else "")
    lines = [f"{head}: {_grade_line(run.grade)}"]
    lines.append("  edges: " + " ".join(edge_names(network, found.flags)))
    if run.curve is not None:
        c = run.curve
        first = "none"
        if c.smallest_valid_k is not None:
            first = f"k = {c.smallest_valid_k} ({c.smallest_valid_k_edges} edges)"
        census = ""
        if c.census_smallest_valid is not None:
            census = f"; smallest valid circuit: {c.census_smallest_valid} edges"
        lines.append(f"  faithfulness: smallest valid top-k circuit: {first}{census}")
    return lines


def report_lines(report: DiscoveryReport, network: Network) -> list[str]:
    """What ``discover`` prints: the census's counts, each seed's circuit and grade, the
    coverage, and what could not be computed."""
    s = report.settings
    rule = f"{s.criterion} {'<' if s.criterion == 'mse' else '>='} {s.threshold:g}"
    sizes = "-".join(map(str, network.sizes))
    lines = [f"{report.method} on {sizes} ({s.ablation} ablation, valid: {rule})"]
    if report.n_candidates is not None:
        lines.append(
            f"census: {report.n_valid:,} valid of {report.n_candidates:,} candidates, "
            f"{report.n_minimal:,} minimal"
        )
    for run in report.runs:
        lines += _run_lines(run, network)
    if report.coverage is not None:
        c = report.coverage
        lines.append(
            f"coverage over {c.n_runs} seed(s): returned {c.returned} of {c.n_minimal} minimal "
            f"circuits; contained {c.contained}"
        )
    if report.not_computed:
        lines.append(
            "not computed (census over --max-candidates): " + ", ".join(report.not_computed)
        )
    return lines


def report_document(report: DiscoveryReport, network: Network, model, data) -> dict[str, Any]:
    """The JSON file of ``discover``: settings, census counts, every seed's circuit (edge
    masks in ``W_l`` orientation), grade and faithfulness curve, and the coverage."""
    space = CircuitSpace(network.sizes)
    runs = []
    for run in report.runs:
        found = run.discovered
        entry: dict[str, Any] = {
            "seed": found.seed,
            "edge_masks": [m.astype(int).tolist() for m in flags_to_masks(space, found.flags)],
            "edges": edge_names(network, found.flags),
            "grade": _plain(vars(run.grade)),
        }
        if found.k is not None:
            entry["k"] = found.k
            entry["scores"] = found.scores.tolist()
        if run.curve is not None:
            entry["faithfulness"] = {
                "points": [_plain(vars(p)) for p in run.curve.points],
                "smallest_valid_k": run.curve.smallest_valid_k,
                "smallest_valid_k_edges": run.curve.smallest_valid_k_edges,
                "census_smallest_valid": run.curve.census_smallest_valid,
            }
        runs.append(entry)
    return {
        "model": str(model),
        "data": str(data),
        "sizes": list(network.sizes),
        "method": report.method,
        "options": _plain(vars(report.options)),
        "settings": report.settings.to_dict(),
        "n_candidates": report.n_candidates,
        "n_valid": report.n_valid,
        "n_minimal": report.n_minimal,
        "runs": runs,
        "coverage": None if report.coverage is None else _plain(vars(report.coverage)),
        "not_computed": list(report.not_computed),
    }


def _plain(d: dict) -> dict:
    """A dataclass's fields as JSON values (tuples as lists, NumPy scalars as Python)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out
