"""Discovered circuits graded against the exact census: valid, minimal, which minimal
circuits they contain, their size against the smallest valid circuit, their Jaccard
index to the nearest minimal circuit; the faithfulness curve of ranking methods; and the
coverage of the minimal circuits across method seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from circuit_census.circuits.ablation import evaluate_circuit
from circuit_census.circuits.census import census
from circuit_census.circuits.settings import DEFAULT_MAX_CANDIDATES, CensusSettings, RunOptions
from circuit_census.circuits.space import CircuitSpace, popcount
from circuit_census.discovery.methods import (
    METHODS,
    RANKING_METHODS,
    Discovered,
    DiscoveryOptions,
    discover,
    top_k,
)
from circuit_census.discovery.patching import (
    Patching,
    circuit_mse,
    flags_to_bits,
    flags_to_masks,
    is_valid,
    patching,
)
from circuit_census.errors import InputError
from circuit_census.measures.uniqueness import minimal_circuits
from circuit_census.network import Network

#: What a grade cannot compute without the census.
CENSUS_PARTS = ("minimal", "contained minimal circuits", "size excess", "nearest minimal")


@dataclass(frozen=True)
class Truth:
    """What the census says: every valid circuit and the minimal ones, as bitsets."""

    space: CircuitSpace
    n_candidates: int
    valid: np.ndarray
    minimal: np.ndarray

    @property
    def smallest_valid(self) -> int | None:
        """Edges of the smallest valid circuit (``None``: no circuit is valid)."""
        return int(popcount(self.valid).min()) if len(self.valid) else None


def census_truth(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    progress: Callable[[int, int], None] | None = None,
) -> Truth | None:
    """The census's valid and minimal circuits (of all outputs jointly), or ``None`` when
    the census has more candidates than ``max_candidates``; ``progress`` as in
    :class:`RunOptions`."""
    space = CircuitSpace(network.sizes)
    if max_candidates is not None and space.count() > max_candidates:
        return None
    output = "joint" if network.sizes[-1] > 1 else None
    options = RunOptions(max_candidates=None, progress=progress)
    result = census(network, x, y, settings, options, output=output)
    return Truth(space, result.n_candidates, result.valid, minimal_circuits(result.valid))


@dataclass(frozen=True)
class Grade:
    """One discovered circuit against the census. Fields after ``mse`` are ``None`` when
    no census could be taken; ``not_computed`` then names them."""

    n_edges: int
    valid: bool
    mse: float
    minimal: bool | None = None
    contained_minimal: tuple[int, ...] | None = None  # indices into the census's minimal
    smallest_valid: int | None = None
    size_excess: int | None = None  # edges beyond the smallest valid circuit
    nearest_minimal: int | None = None
    jaccard: float | None = None  # to the nearest minimal circuit
    not_computed: tuple[str, ...] = ()


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two circuits given as bitsets."""
    inter = int(popcount((a & b)[None, :])[0])
    union = int(popcount((a | b)[None, :])[0])
    return inter / union if union else 1.0


def grade(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings,
    flags: np.ndarray,
    truth: Truth | None,
) -> Grade:
    """Grade the circuit ``flags`` (one boolean per edge): validity and mse by the plain
    evaluation of :func:`evaluate_circuit`, the rest against the census's ``truth``."""
    space = CircuitSpace(network.sizes)
    judged = evaluate_circuit(network, flags_to_masks(space, flags), x, y, settings)
    n_edges = int(np.count_nonzero(flags))
    if truth is None:
        return Grade(n_edges, judged.valid, judged.mse, not_computed=CENSUS_PARTS)
    bits = flags_to_bits(space, flags)
    inside = np.all((truth.minimal & ~bits[None, :]) == 0, axis=1)
    minimal = bool(np.any(np.all(truth.minimal == bits[None, :], axis=1)))
    smallest = truth.smallest_valid
    nearest, best = None, None
    if len(truth.minimal):
        scores = [jaccard(bits, m) for m in truth.minimal]
        nearest = int(np.argmax(scores))
        best = float(scores[nearest])
    return Grade(
        n_edges=n_edges,
        valid=judged.valid,
        mse=judged.mse,
        minimal=minimal,
        contained_minimal=tuple(int(i) for i in np.flatnonzero(inside)),
        smallest_valid=smallest,
        size_excess=None if smallest is None else n_edges - smallest,
        nearest_minimal=nearest,
        jaccard=best,
    )


# ----------------------------------------------------------------------------- faithfulness


@dataclass(frozen=True)
class CurvePoint:
    """The top-k circuit of a ranking (dangling edges removed): its edges, whether it is a
    circuit at all (every output keeps an edge), valid, and its mse."""

    k: int
    n_edges: int
    admissible: bool
    valid: bool
    mse: float


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Every k's top-k circuit, the smallest valid k (and its circuit's edges), and the
    census's smallest valid circuit (``None`` without a census)."""

    points: tuple[CurvePoint, ...]
    smallest_valid_k: int | None
    smallest_valid_k_edges: int | None
    census_smallest_valid: int | None


def faithfulness_curve(
    problem: Patching, ranking: np.ndarray, truth: Truth | None
) -> FaithfulnessCurve:
    """The top-k circuit of ``ranking`` for every k, judged under ``problem``'s settings."""
    points = []
    for k in range(1, problem.n_edges + 1):
        flags = top_k(problem, ranking, k)
        ok = problem.space.is_admissible(flags_to_masks(problem.space, flags))
        valid = ok and is_valid(problem, flags)
        mse = circuit_mse(problem, flags)
        points.append(CurvePoint(k, int(np.count_nonzero(flags)), ok, valid, mse))
    first = next((p for p in points if p.valid), None)
    return FaithfulnessCurve(
        points=tuple(points),
        smallest_valid_k=None if first is None else first.k,
        smallest_valid_k_edges=None if first is None else first.n_edges,
        census_smallest_valid=None if truth is None else truth.smallest_valid,
    )


# ----------------------------------------------------------------------------- across seeds


@dataclass(frozen=True)
class Coverage:
    """Distinct minimal circuits a method returned across seeds (``returned``), and those
    contained in some returned circuit (``contained``), out of ``n_minimal``."""

    n_runs: int
    returned: int
    contained: int
    n_minimal: int


def coverage(grades: Sequence[Grade], truth: Truth) -> Coverage:
    """Coverage of the census's minimal circuits by the circuits graded in ``grades``."""
    returned = {g.nearest_minimal for g in grades if g.minimal}
    contained = {i for g in grades for i in (g.contained_minimal or ())}
    return Coverage(len(grades), len(returned), len(contained), len(truth.minimal))


@dataclass(frozen=True)
class Run:
    """One seed of one method: what it returned, its grade, and (ranking methods) its
    faithfulness curve."""

    discovered: Discovered
    grade: Grade
    curve: FaithfulnessCurve | None = None


@dataclass(frozen=True)
class DiscoveryReport:
    """Every seed's run of one method, graded; coverage when a census was taken."""

    method: str
    settings: CensusSettings
    options: DiscoveryOptions
    runs: tuple[Run, ...]
    n_candidates: int | None
    n_valid: int | None
    n_minimal: int | None
    coverage: Coverage | None
    not_computed: tuple[str, ...] = field(default=())


def discover_and_grade(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    options: DiscoveryOptions = DiscoveryOptions(),
    seeds: int = 1,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    truth: Truth | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DiscoveryReport:
    """Run ``options.method`` with seeds ``0..seeds-1`` and grade every circuit against
    the census (taken here unless ``truth`` is given and skipped when larger than
    ``max_candidates``). ``progress(done, total)`` is called after each seed."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InputError(f"seeds must be at least 1, got {seeds!r}")
    if truth is None:
        truth = census_truth(network, x, y, settings, max_candidates)
    graded = patching(network, x, y, settings)
    runs = []
    for seed in range(seeds):
        found = discover(network, x, y, settings, options, seed)
        curve = None
        if options.method in RANKING_METHODS:
            curve = faithfulness_curve(graded, found.ranking, truth)
        runs.append(Run(found, grade(network, x, y, settings, found.flags, truth), curve))
        if progress is not None:
            progress(seed + 1, seeds)
    return DiscoveryReport(
        method=options.method,
        settings=settings,
        options=options,
        runs=tuple(runs),
        n_candidates=None if truth is None else truth.n_candidates,
        n_valid=None if truth is None else len(truth.valid),
        n_minimal=None if truth is None else len(truth.minimal),
        coverage=None if truth is None else coverage([r.grade for r in runs], truth),
        not_computed=CENSUS_PARTS + ("coverage",) if truth is None else (),
    )


# ----------------------------------------------------------------------------- study rows


@dataclass(frozen=True)
class MethodSummary:
    """One method over seeds on one network: the row the discovery study stores."""

    method: str
    n: int
    fraction_valid: float
    fraction_minimal: float | None
    median_size_excess: float | None
    coverage: int | None  # distinct minimal circuits returned
    n_minimal: int | None


def summarize(report: DiscoveryReport) -> MethodSummary:
    """The summary row of one method's graded runs."""
    grades = [r.grade for r in report.runs]
    excess = [g.size_excess for g in grades if g.size_excess is not None]
    known = report.coverage is not None
    return MethodSummary(
        method=report.method,
        n=len(grades),
        fraction_valid=float(np.mean([g.valid for g in grades])),
        fraction_minimal=float(np.mean([bool(g.minimal) for g in grades])) if known else None,
        median_size_excess=float(np.median(excess)) if excess else None,
        coverage=report.coverage.returned if known else None,
        n_minimal=report.n_minimal,
    )


def method_summaries(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None = None,
    settings: CensusSettings = CensusSettings(),
    seeds: int = 30,
    methods: Sequence[str] = METHODS,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
) -> list[MethodSummary]:
    """For one trained network: every method (default options) over ``seeds`` seeds,
    graded against one census, one summary row per method."""
    truth = census_truth(network, x, y, settings, max_candidates)
    return [
        summarize(
            discover_and_grade(
                network, x, y, settings, DiscoveryOptions(method), seeds, max_candidates, truth
            )
        )
        for method in methods
    ]
