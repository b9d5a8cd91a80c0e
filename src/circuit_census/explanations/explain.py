"""All four levels of explanation of one model, the public API: its valid circuits (the
census), each circuit's interpretations, the candidate algorithms (formulas) and their
mappings onto neurons (SPEC, "Explanations beyond circuits").
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from circuit_census.circuits.ablation import layer_means
from circuit_census.circuits.census import CensusResult, census
from circuit_census.circuits.settings import CensusSettings, RunOptions
from circuit_census.circuits.space import MELOUX2025 as MELOUX
from circuit_census.errors import InputError
from circuit_census.explanations.formulas import candidate_formulas
from circuit_census.explanations.interpretations import (
    NeuronChoice,
    circuit_tables,
    count_interpretations,
    list_interpretations,
)
from circuit_census.explanations.mappings import (
    FormulaMappings,
    corner_pairs,
    formula_mappings,
    intervention_outputs,
)
from circuit_census.network import Network
from circuit_census.tasks.boolean import corners as all_corners


@dataclass(frozen=True)
class CircuitExplanation:
    """One valid circuit: its edge masks (``W_l`` orientation), its exact number of
    interpretations and, if asked for, some of them."""

    edge_masks: list[np.ndarray]
    n_interpretations: int
    interpretations: list[tuple[NeuronChoice, ...]]


@dataclass(frozen=True)
class ExplanationSummary:
    """One model's four levels in a few numbers, for tables of many models: valid circuits;
    interpretations over all valid circuits (total, median and maximum per circuit, and how
    many circuits have exactly one); formulas with a valid mapping; minimal mappings over
    those formulas (total)."""

    n_valid_circuits: int
    interpretations_total: int
    interpretations_median: float | None
    interpretations_max: int
    n_single_interpretation: int
    n_formulas: int
    minimal_mappings_total: int

    def to_dict(self) -> dict[str, int | float | None]:
        return asdict(self)


@dataclass
class Explanation:
    """The four levels for one model. ``circuits``: every valid circuit of the census with the
    same settings (less, in meloux2025 mode, those the reference's sparsity filter drops:
    ``n_dropped_by_sparsity``). ``formulas``: the candidate formulas that have at least one
    valid mapping, of ``n_candidate_formulas``."""

    settings: CensusSettings
    n_candidates: int
    circuits: list[CircuitExplanation]
    n_dropped_by_sparsity: int
    n_candidate_formulas: int
    formulas: list[FormulaMappings]
    table: np.ndarray
    seconds: float = 0.0

    @property
    def n_formulas(self) -> int:
        """Formulas with at least one valid mapping."""
        return len(self.formulas)

    def summary(self) -> ExplanationSummary:
        counts = [c.n_interpretations for c in self.circuits]
        return ExplanationSummary(
            n_valid_circuits=len(counts),
            interpretations_total=sum(counts),
            interpretations_median=float(statistics.median(counts)) if counts else None,
            interpretations_max=max(counts, default=0),
            n_single_interpretation=sum(1 for n in counts if n == 1),
            n_formulas=self.n_formulas,
            minimal_mappings_total=sum(f.n_minimal_mappings for f in self.formulas),
        )


def reference_sparsity_floor(sizes: Sequence[int]) -> float | None:
    """The reference script's floor on hidden-node sparsity for hidden width ``k`` (the
    widest hidden layer): above 0.2 for ``k > 3``, above 0.3 for ``k > 4``; none otherwise."""
    k = max(sizes[1:-1], default=0)
    return 0.3 if k > 4 else 0.2 if k > 3 else None


def hidden_sparsity(masks: Sequence[np.ndarray]) -> float:
    """The fraction of hidden nodes a circuit leaves out (a hidden node is in the circuit
    when it receives an edge)."""
    kept = [np.asarray(m).any(axis=1) for m in masks[:-1]]
    return float(np.mean(~np.concatenate(kept)))


def task_table(x: np.ndarray, y: np.ndarray, n_inputs: int) -> np.ndarray:
    """The one-output task's bit at each corner (in :func:`corners` order), read from data:
    each sample belongs to its nearest corner, and a corner's bit is its samples' majority
    target bit. Every corner needs a sample."""
    if y is None:
        raise InputError("explaining a model needs targets y (the task's truth table)")
    bits = (np.asarray(x) >= 0.5).astype(np.int64)
    k = bits @ (1 << np.arange(n_inputs - 1, -1, -1))
    target = (np.asarray(y).reshape(len(x), -1)[:, 0] >= 0.5).astype(np.int64)
    n = 1 << n_inputs
    ones = np.bincount(k, weights=target, minlength=n)
    seen = np.bincount(k, minlength=n)
    if (seen == 0).any():
        missing = int(np.flatnonzero(seen == 0)[0])
        raise InputError(f"the data has no sample near corner {missing:0{n_inputs}b}")
    return (2 * ones > seen).astype(np.int64)


def explain(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
    *,
    table: np.ndarray | None = None,
    listed: int = 100,
    interpretations_listed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    result: CensusResult | None = None,
) -> Explanation:
    """Explain a one-output ``network`` at all four levels. The census runs on ``x`` (and
    ``y``) with ``settings``; interpretations and mappings are taken on the clean corners.
    ``table``: the task's bit per corner (default: read from ``x``, ``y``). ``listed``: most
    minimal mappings listed per formula; ``interpretations_listed``: most interpretations
    listed per circuit. ``progress(done, total)`` is called as circuits are interpreted.
    ``result``: that census, already taken with every valid circuit held (it is not taken
    again)."""
    started = time.perf_counter()
    if network.sizes[-1] != 1:
        raise InputError(
            f"explain takes a one-output model; this one has {network.sizes[-1]} outputs"
        )
    if listed < 0 or interpretations_listed < 0:
        raise InputError("listing limits must be non-negative")
    if settings.ablation == "resample":
        raise InputError(
            "explanations read each neuron's values on the clean corners, one input at a "
            "time; resample ablation pairs inputs: use zero or mean ablation"
        )
    n_inputs = network.sizes[0]
    corners = all_corners(n_inputs)
    table = task_table(x, y, n_inputs) if table is None else np.asarray(table).reshape(-1)
    if table.shape != (len(corners),):
        raise InputError(f"a truth table of {n_inputs} inputs has {len(corners)} bits")
    if result is None or result.valid is None:
        result = census(network, x, y, settings, replace(options, collect=True))
    compat = settings.compat
    floor = reference_sparsity_floor(network.sizes) if compat == MELOUX else None
    means = layer_means(network, x) if settings.ablation == "mean" else None
    circuits: list[CircuitExplanation] = []
    dropped = 0
    total = len(result.valid)
    for done, bits in enumerate(result.valid, start=1):
        if progress is not None:
            progress(done, total)
        masks = result.edge_masks(bits)
        if floor is not None and hidden_sparsity(masks) <= floor:
            dropped += 1
            continue
        layers = circuit_tables(network, masks, corners, compat, settings.ablation, means)
        n = count_interpretations(layers, compat)
        shown = (
            list_interpretations(layers, compat, interpretations_listed)
            if interpretations_listed
            else []
        )
        circuits.append(CircuitExplanation(masks, n, shown))
    pairs = corner_pairs(n_inputs, compat)
    interventions = intervention_outputs(network, corners, pairs)
    formulas = candidate_formulas(table, corners, network.n_layers, compat)
    hidden = network.sizes[1:-1]
    mapped = [formula_mappings(f, interventions, corners, pairs, hidden, listed) for f in formulas]
    return Explanation(
        settings=settings,
        n_candidates=result.n_candidates,
        circuits=circuits,
        n_dropped_by_sparsity=dropped,
        n_candidate_formulas=len(formulas),
        formulas=[m for m in mapped if m.n_valid_mappings > 0],
        table=table,
        seconds=time.perf_counter() - started,
    )


def explain_summary(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: RunOptions = RunOptions(),
    result: CensusResult | None = None,
) -> ExplanationSummary:
    """The :class:`ExplanationSummary` of :func:`explain` (nothing listed; ``result`` as
    there)."""
    return explain(network, x, y, settings, options, listed=0, result=result).summary()
