"""``circuit-census explain``: all four levels of explanation of one model (circuits,
interpretations, algorithms, mappings), printed and optionally written as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.cli.census_cmd import (
    _Ablation,
    _Activation,
    _Compat,
    _Data,
    _MaxCandidates,
    _Model,
    _OutputActivation,
    _Quiet,
    _Threshold,
)
from circuit_census.cli.progress import census_progress, show_bar
from circuit_census.errors import InputError
from circuit_census.explanations.explain import Explanation, explain
from circuit_census.files import atomic_write
from circuit_census.network import check_inputs
from circuit_census.training.modelfiles import load_data, load_model

_Criterion = Annotated[
    str | None,
    typer.Option(
        "--criterion", help="mse or accuracy (default: accuracy with --compat, else mse)."
    ),
]
_Output = Annotated[
    Path | None, typer.Option("--output", help="Write the explanation as JSON here.")
]
_Listed = Annotated[
    int, typer.Option("--max-listed", help="Most minimal mappings listed per formula.")
]
_Interpretations = Annotated[
    int,
    typer.Option(
        "--interpretations", help="List up to this many interpretations per circuit in the JSON."
    ),
]


def explain_command(
    model: _Model,
    data: _Data,
    activation: _Activation = None,
    output_activation: _OutputActivation = None,
    compat: _Compat = None,
    criterion: _Criterion = None,
    threshold: _Threshold = None,
    ablation: _Ablation = "zero",
    output: _Output = None,
    max_listed: _Listed = 100,
    interpretations: _Interpretations = 0,
    max_candidates: _MaxCandidates = DEFAULT_MAX_CANDIDATES,
    quiet: _Quiet = False,
) -> None:
    """Explain a one-output model at four levels: its valid circuits, each circuit's
    interpretations, the algorithms (formulas) that align with it, and their mappings."""
    if max_listed < 0 or interpretations < 0:
        raise InputError("--max-listed and --interpretations must be non-negative")
    if output is not None and output.exists() and output.is_dir():
        raise InputError(f"--output {output} is a folder; give a file name")
    criterion = criterion or ("accuracy" if compat else "mse")
    settings = CensusSettings(criterion, threshold, ablation, compat)
    network, _ = load_model(model, activation, output_activation)
    if network.sizes[-1] != 1:
        raise InputError(
            f"explain takes a one-output model; {model.name} has {network.sizes[-1]} outputs"
        )
    x, y = load_data(data, need_y=True)
    check_inputs(network, x, y)
    with census_progress(show_bar(quiet, sys.stderr), 0, "interpretations") as tick:
        found = explain(
            network,
            x,
            y,
            settings,
            RunOptions(max_candidates=max_candidates),
            listed=max_listed,
            interpretations_listed=interpretations,
            progress=tick,
        )
    console = Console(highlight=False, soft_wrap=True)
    for line in summary_lines(found):
        console.print(line)
    if output is not None:
        doc = explanation_document(found, network.sizes, str(model), str(data))
        text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
        atomic_write(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        if not quiet:
            console.print(f"wrote {output}")


def summary_lines(found: Explanation) -> list[str]:
    """The four levels in a few lines."""
    s = found.summary()
    rule = found.settings.rule
    mode = f", {found.settings.compat}" if found.settings.compat else ""
    dropped = (
        f"; {found.n_dropped_by_sparsity:,} left out by the reference's sparsity filter"
        if found.n_dropped_by_sparsity
        else ""
    )
    median = "-" if s.interpretations_median is None else f"{s.interpretations_median:g}"
    lines = [
        f"circuits: [bold]{s.n_valid_circuits:,}[/bold] valid of {found.n_candidates:,} "
        f"candidates ({rule.name} {rule.threshold:g}, {found.settings.ablation} ablation"
        f"{mode}){dropped}",
        f"interpretations: [bold]{s.interpretations_total:,}[/bold] over the valid circuits "
        f"(median {median} per circuit, max {s.interpretations_max:,}; "
        f"{s.n_single_interpretation:,} with exactly one)",
        f"algorithms: [bold]{s.n_formulas:,}[/bold] of {found.n_candidate_formulas:,} "
        "candidate formulas have a valid mapping",
        f"mappings: [bold]{s.minimal_mappings_total:,}[/bold] minimal in all "
        f"({sum(f.n_valid_mappings for f in found.formulas):,} valid)",
    ]
    for f in found.formulas:
        lines.append(
            f"  {f.formula.text}: {f.n_minimal_mappings:,} minimal of {f.n_valid_mappings:,} valid"
        )
    return lines


def explanation_document(found: Explanation, sizes, model: str, data: str) -> dict[str, Any]:
    """The explanation as plain JSON values (edge masks as in the census JSON)."""
    settings = found.settings
    return {
        "settings": {
            "model": model,
            "data": data,
            "sizes": list(sizes),
            "criterion": settings.criterion,
            "threshold": settings.threshold,
            "ablation": settings.ablation,
            "compat": settings.compat,
            "task_table": found.table.tolist(),
        },
        "n_candidates": found.n_candidates,
        "n_valid": len(found.circuits),
        "n_dropped_by_sparsity": found.n_dropped_by_sparsity,
        "circuits": [
            {
                "edge_masks": [m.tolist() for m in c.edge_masks],
                "n_interpretations": c.n_interpretations,
                **(
                    {
                        "interpretations": [
                            [
                                {
                                    "layer": n.layer,
                                    "neuron": n.index,
                                    "table": n.table,
                                    "gate": n.gate,
                                }
                                for n in interpretation
                            ]
                            for interpretation in c.interpretations
                        ]
                    }
                    if c.interpretations
                    else {}
                ),
            }
            for c in found.circuits
        ],
        "n_candidate_formulas": found.n_candidate_formulas,
        "n_formulas": found.n_formulas,
        "formulas": [
            {
                "formula": f.formula.text,
                "n_valid_mappings": f.n_valid_mappings,
                "n_minimal_mappings": f.n_minimal_mappings,
                "minimal_mappings": [
                    [
                        {
                            "node": n.node,
                            "formula": n.formula,
                            "layer": n.layer,
                            "neurons": list(n.neurons),
                        }
                        for n in mapping
                    ]
                    for mapping in f.minimal_mappings
                ],
                "n_minimal_left_out": f.n_minimal_mappings - len(f.minimal_mappings),
            }
            for f in found.formulas
        ],
        "summary": found.summary().to_dict(),
        "seconds": round(found.seconds, 6),
    }
