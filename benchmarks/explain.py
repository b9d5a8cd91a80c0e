"""Explanation speed: interpretations and mappings against the reference code, and a whole
explanation of a 2-8-1 XOR network.

Measured side by side in one run:
  * the shipped network of Méloux et al. (`../shared/fixtures/meloux2025-xor.npz`, or
    --fixture), on its four clean corners in the meloux2025 mode: the reference code's
    grounding (`Circuit.ground`, every valid circuit) and mapping code
    (`get_formula_dataset` and `find_minimal_mappings`, every formula) against this
    package's interpretations and mappings of the same circuits and formulas; both sides'
    numbers are printed and checked equal. The reference is a checkout of
    gwherb/MI-identifiability (commit c08b08d) given by --reference; it needs pandas,
    tqdm and networkx. Without it only our side is timed.
  * a 2-8-1 XOR network trained here: the whole explanation (census, interpretations of
    every valid circuit, formulas, mappings) in both modes; the target is under 10 s.
Ratios are what to compare: absolute times vary with load.

    python benchmarks/explain.py --reference /path/to/MI-identifiability
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from circuit_census.circuits.census import census
from circuit_census.circuits.settings import CensusSettings
from circuit_census.explanations.explain import explain
from circuit_census.explanations.formulas import candidate_formulas
from circuit_census.explanations.interpretations import circuit_tables, count_interpretations
from circuit_census.explanations.mappings import (
    corner_pairs,
    formula_mappings,
    intervention_outputs,
)
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners, make_task
from circuit_census.training.loop import TrainConfig, train_models

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meloux2025-xor.npz"
MELOUX = CensusSettings("accuracy", 0.99, compat="meloux2025")
XOR = np.array([[0.0], [1.0], [1.0], [0.0]])


def shipped_network(path: Path) -> Network:
    d = np.load(path)
    ws = tuple(d[f"W{i}"] for i in range(3))
    return Network(ws, tuple(d[f"b{i}"] for i in range(3)), "leaky_relu", "leaky_relu")


def ours(network: Network) -> tuple[float, list[int], list[tuple[str, int]]]:
    """Seconds for interpretations of every valid circuit plus every formula's mappings
    (the census itself not included), and the numbers."""
    x = corners(2)
    result = census(network, x, XOR, MELOUX)
    masks = [result.edge_masks(bits) for bits in result.valid]
    started = time.perf_counter()
    counts = [
        count_interpretations(circuit_tables(network, m, x, "meloux2025"), "meloux2025")
        for m in masks
    ]
    pairs = corner_pairs(2, "meloux2025")
    layers = intervention_outputs(network, x, pairs)
    formulas = []
    for f in candidate_formulas(XOR[:, 0], x, network.n_layers, "meloux2025"):
        found = formula_mappings(f, layers, x, pairs, network.sizes[1:-1], limit=0)
        if found.n_minimal_mappings:
            formulas.append((f.text, found.n_minimal_mappings))
    return time.perf_counter() - started, sorted(counts), formulas


def reference(path: Path, network: Network):
    """Seconds for the reference's grounding and mapping code on the same network, and its
    numbers; None if it cannot be imported."""
    sys.path.insert(0, str(path))
    try:
        import torch
        from mi_identifiability.circuit import find_circuits
        from mi_identifiability.logic_gates import ALL_LOGIC_GATES, get_formula_dataset
        from mi_identifiability.mappings import find_minimal_mappings
        from mi_identifiability.neural_model import MLP
    except ImportError as exc:
        print(f"reference code not importable from {path}: {exc}")
        return None
    model = MLP(hidden_sizes=[3, 3], input_size=2, output_size=1, device="cpu")
    for i, (w, b) in enumerate(zip(network.weights, network.biases)):
        model.layers[i][0].weight.data = torch.tensor(w, dtype=torch.float32)
        model.layers[i][0].bias.data = torch.tensor(b, dtype=torch.float32)
    model.layers[-1][1] = torch.nn.LeakyReLU()  # the shipped network has it on the output
    x = torch.tensor(corners(2), dtype=torch.float32)
    y = torch.tensor(XOR, dtype=torch.float32)
    circuits, _, _ = find_circuits(model, x, y, accuracy_threshold=0.99)
    started = time.perf_counter()
    counts = [len(c.ground(model(x, circuit=c, return_activations=True))) for c in circuits]
    grounding = time.perf_counter() - started
    started = time.perf_counter()
    formulas = []
    for data in get_formula_dataset([ALL_LOGIC_GATES["XOR"]], max_depth=3, device="cpu")["XOR"]:
        found = find_minimal_mappings(model, *data)
        if found:
            formulas.append((str(data[0]), len(found)))
    mapping = time.perf_counter() - started
    return grounding, mapping, sorted(counts), formulas


def trained_281() -> tuple[Network, np.ndarray, np.ndarray]:
    """A trained 2-8-1 XOR network (the first seed that converges) and its validation set."""
    config = TrainConfig(hidden=(8,), epochs=2000)
    models = train_models(make_task("xor"), range(8), config)
    best = next((m for m in models if m.converged), models[0])
    return best.network, best.val.x, best.val.y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=FIXTURE, help="the shipped network")
    parser.add_argument("--reference", type=Path, help="a checkout of MI-identifiability")
    args = parser.parse_args()

    if args.fixture.is_file():
        network = shipped_network(args.fixture)
        explain(network, corners(2), XOR, MELOUX)  # compile the census kernels first
        runs = [ours(network) for _ in range(3)]
        mine = min(r[0] for r in runs)
        _, counts, formulas = runs[0]
        print(f"shipped 2-3-3-1 network, meloux2025 mode, {len(counts)} valid circuits")
        print(
            f"  ours:      {mine:8.3f} s  interpretations {sum(counts):,} "
            f"(max {max(counts):,}), {len(formulas)} formulas, "
            f"{sum(n for _, n in formulas)} minimal mappings"
        )
        ref = reference(args.reference, network) if args.reference else None
        if ref is None and not args.reference:
            print("  reference: not given (--reference PATH); only ours was timed")
        if ref is not None:
            grounding, mapping, ref_counts, ref_formulas = ref
            same = ref_counts == counts and ref_formulas == formulas
            print(
                f"  reference: {grounding + mapping:8.3f} s  (grounding {grounding:.2f} s, "
                f"mappings {mapping:.2f} s); same numbers: {'yes' if same else 'NO'}"
            )
            print(f"  ratio: ours is {(grounding + mapping) / mine:,.0f}x faster (target >= 100x)")
    else:
        print(f"no shipped network at {args.fixture}; skipping the comparison")

    network, x, y = trained_281()
    for settings in (CensusSettings(), MELOUX):
        started = time.perf_counter()
        found = explain(network, x, y, settings)
        seconds = time.perf_counter() - started
        s = found.summary()
        mode = settings.compat or "default"
        print(
            f"2-8-1 XOR, {mode} mode: whole explanation in {seconds:.2f} s (target < 10 s): "
            f"{s.n_valid_circuits:,} circuits, {s.interpretations_total:,} interpretations, "
            f"{s.n_formulas} of {found.n_candidate_formulas:,} formulas, "
            f"{s.minimal_mappings_total:,} minimal mappings"
        )


if __name__ == "__main__":
    main()
