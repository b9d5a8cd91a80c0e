"""The field's circuit-discovery methods, run on the tool's networks.

Each method searches the edges of a :class:`Network` under an ablation (zero, mean or
resample) with the metric the census uses, the mse of the ablated model against the full
model, and returns an admissible circuit (dangling edges removed):

- ``acdc`` (Conmy et al., 2023): receivers from the output backwards; each incoming edge
  is removed for good when the metric rises by less than ``tau``;
- ``eap`` (Syed et al., 2023): every edge scored at once by its sender's activation
  difference (clean minus ablated) times the metric's gradient at its receiver; the top
  ``k`` edges are kept;
- ``eap-ig`` (Hanna et al., 2024): the same with the gradient averaged over ``steps``
  points on the path from the ablated model to the full one (integrated gradients);
- ``magnitude``: edges dropped in order of ``|W[j, i] x mean h_i|`` whenever the circuit
  stays valid.

The scores follow the papers' product form (activation difference x gradient at the
receiver, the gradient from the corrupted run; eap-ig averages it over runs on inputs
interpolated from corrupted to clean, as Hanna et al. do). They are written here with
PyTorch autograd on the tool's float64 network rather than taken from a library: the
maintained implementations (Hanna et al.'s EAP-IG code, auto-circuit) expect
TransformerLens-style transformer models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from circuit_census.circuits.settings import CensusSettings
from circuit_census.discovery.patching import (
    Patching,
    circuit_mse,
    edge_scores,
    flags_to_masks,
    is_valid,
    patching,
    remove_dangling,
)
from circuit_census.errors import InputError
from circuit_census.network import Network

METHODS = ("acdc", "eap", "eap-ig", "magnitude")
RANKING_METHODS = ("eap", "eap-ig")  # methods that score every edge and keep the top k
DEFAULT_TAU = 0.01
DEFAULT_STEPS = 20


@dataclass(frozen=True)
class DiscoveryOptions:
    """Which method runs, and its settings: ``tau`` (acdc's largest accepted rise of the
    metric), ``k`` or ``score_threshold`` (eap and eap-ig: keep the top ``k`` edges, or
    those whose absolute score is at least the threshold; neither: the smallest top-k
    circuit that is valid), ``steps`` (eap-ig's points on the path). Checked when made."""

    method: str = "acdc"
    tau: float = DEFAULT_TAU
    k: int | None = None
    score_threshold: float | None = None
    steps: int = DEFAULT_STEPS

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"unknown discovery method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau < 0:
            raise InputError(f"tau must be a non-negative number, got {self.tau!r}")
        if self.k is not None and (isinstance(self.k, bool) or not isinstance(self.k, int)):
            raise InputError(f"k must be a positive integer, got {self.k!r}")
        if self.k is not None and self.k < 1:
            raise InputError(f"k must be a positive integer, got {self.k!r}")
        if self.score_threshold is not None:
            if not math.isfinite(self.score_threshold) or self.score_threshold < 0:
                raise InputError(
                    f"score threshold must be a non-negative number, got {self.score_threshold}"
                )
            if self.k is not None:
                raise InputError("give k or a score threshold, not both")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps!r}")
        if self.method not in RANKING_METHODS and (
            self.k is not None or self.score_threshold is not None
        ):
            raise InputError(
                f"k and the score threshold apply to eap and eap-ig, not {self.method}"
            )


@dataclass(frozen=True)
class Discovered:
    """What one method returned: the circuit as one boolean per edge (the space's edge
    order; admissible), and for ranking methods every edge's score, the edges by
    decreasing absolute score, and the ``k`` whose top-k circuit was returned."""

    method: str
    seed: int
    flags: np.ndarray
    scores: np.ndarray | None = None
    ranking: np.ndarray | None = None
    k: int | None = None

    @property
    def n_edges(self) -> int:
        return int(np.count_nonzero(self.flags))


def method_settings(settings: CensusSettings, seed: int) -> CensusSettings:
    """The settings a method runs under with seed ``seed``: under resample ablation its
    corrupted samples are drawn from ``resample_seed + seed`` (other ablations: unchanged)."""
    if settings.ablation != "resample":
        return settings
    return replace(settings, resample_seed=settings.resample_seed + int(seed))


def discover(
    network: Network,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: CensusSettings = CensusSettings(),
    options: DiscoveryOptions = DiscoveryOptions(),
    seed: int = 0,
) -> Discovered:
    """Run ``options.method`` on ``network`` with evaluation data ``x`` (targets ``y``
    for the accuracy criterion). ``seed`` shuffles acdc's edge order (0: receivers and
    senders in index order) and draws the corrupted samples under resample ablation."""
    problem = patching(network, x, y, method_settings(settings, seed))
    if options.method == "acdc":
        return Discovered("acdc", seed, acdc(problem, options.tau, seed))
    if options.method == "magnitude":
        return Discovered("magnitude", seed, magnitude(problem))
    if options.method == "eap":
        scores = eap_scores(problem)
    else:
        scores = eap_ig_scores(problem, options.steps)
    ranking = rank_edges(scores)
    k, flags = select_top(problem, ranking, scores, options)
    return Discovered(options.method, seed, flags, scores, ranking, k)


# ----------------------------------------------------------------------------- acdc


def _admissible(problem: Patching, flags: np.ndarray) -> bool:
    return problem.space.is_admissible(flags_to_masks(problem.space, flags))


def acdc(problem: Patching, tau: float, seed: int = 0) -> np.ndarray:
    """ACDC's greedy pruning: visit receivers from the output layer backwards; remove each
    incoming edge (with the edges it leaves dangling) and keep it removed when the mse
    rises by less than ``tau`` and the rest is still a circuit."""
    space = problem.space
    rng = np.random.default_rng(seed)
    flags = np.ones(space.n_edges, dtype=bool)
    current = circuit_mse(problem, flags)
    for layer in reversed(range(space.n_layers)):
        n_recv, n_send = space.layer_shapes[layer]
        receivers = rng.permutation(n_recv) if seed else np.arange(n_recv)
        for j in receivers:
            senders = rng.permutation(n_send) if seed else np.arange(n_send)
            for i in senders:
                e = space.edge_index(layer, int(j), int(i))
                if not flags[e]:
                    continue
                trial = flags.copy()
                trial[e] = False
                trial = remove_dangling(space, trial)
                if not _admissible(problem, trial):
                    continue
                value = circuit_mse(problem, trial)
                if value - current < tau:
                    flags, current = trial, value
    return flags


# ----------------------------------------------------------------------------- magnitude


def magnitude_scores(problem: Patching) -> np.ndarray:
    """``|W[j, i] x mean_x h_i(x)|`` of every edge, the mean over the full model's
    activations on the clean inputs."""
    means = [h.mean(axis=0) for h in problem.clean[:-1]]
    return np.concatenate(
        [np.abs(w * mu[None, :]).reshape(-1) for w, mu in zip(problem.network.weights, means)]
    )


def magnitude(problem: Patching) -> np.ndarray:
    """Drop edges from the smallest ``|W x mean activation|`` up, each (with the edges it
    leaves dangling) only when what remains is still a valid circuit."""
    flags = np.ones(problem.n_edges, dtype=bool)
    for e in np.argsort(magnitude_scores(problem), kind="stable"):
        if not flags[e]:
            continue
        trial = flags.copy()
        trial[e] = False
        trial = remove_dangling(problem.space, trial)
        if _admissible(problem, trial) and is_valid(problem, trial):
            flags = trial
    return flags


# ----------------------------------------------------------------------------- eap, eap-ig


def eap_scores(problem: Patching) -> np.ndarray:
    """Edge attribution patching: per edge ``i -> j``, the sender's activation difference
    (full model minus ablated) times ``W[j, i]`` times the metric's gradient at ``j``,
    summed over samples. The gradient is taken in the corrupted run (the full model on
    ``x'``; see :func:`patching.corrupted_inputs`): in the clean run the mse against the
    full model is at its minimum and every gradient is zero."""
    return edge_scores(problem, [0.0])


def eap_ig_scores(problem: Patching, steps: int = DEFAULT_STEPS) -> np.ndarray:
    """EAP with integrated gradients: the same product with the gradient averaged over
    full-model runs on the midpoints of ``steps`` equal parts of the input path from the
    corrupted ``x'`` to the clean ``x``."""
    return edge_scores(problem, ((np.arange(steps) + 0.5) / steps).tolist())


def rank_edges(scores: np.ndarray) -> np.ndarray:
    """Edges by decreasing absolute score (ties: lower edge index first)."""
    return np.argsort(-np.abs(scores), kind="stable")


def top_k(problem: Patching, ranking: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` edges of ``ranking`` with the edges they leave dangling removed
    (admissible unless some output is left without an edge)."""
    flags = np.zeros(problem.n_edges, dtype=bool)
    flags[ranking[:k]] = True
    return remove_dangling(problem.space, flags)


def select_top(
    problem: Patching, ranking: np.ndarray, scores: np.ndarray, options: DiscoveryOptions
) -> tuple[int, np.ndarray]:
    """The ``k`` a ranking method keeps and its circuit: the smallest top-k circuit that
    is admissible with ``k`` at least ``options.k`` (or the number of scores at or above
    the threshold); with neither, the smallest top-k circuit that is valid."""
    n = problem.n_edges
    if options.k is not None:
        start = min(options.k, n)
    elif options.score_threshold is not None:
        start = max(1, int(np.count_nonzero(np.abs(scores) >= options.score_threshold)))
    else:
        start = None
    for k in range(start or 1, n + 1):
        flags = top_k(problem, ranking, k)
        if not _admissible(problem, flags):
            continue
        if start is not None or is_valid(problem, flags):
            return k, flags
    return n, np.ones(n, dtype=bool)
