"""The census engine's pair scoring in PyTorch, for GPUs (``census(..., device="cuda")``):
the same float64 arithmetic, rounding band, certificate and criteria as the Numba kernels.
"""

from __future__ import annotations

import numpy as np
import torch

from circuit_census.activations import LEAKY_SLOPE
from circuit_census.circuits.engine.kernels import IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH
from circuit_census.circuits.engine.structures import (
    ACCURACY,
    Admissible,
    Block,
    OuterTerms,
    PairTerms,
    Rule,
)

PAIR_CHUNK = 1 << 22  # pair-point values materialised at once


def _activate(z: torch.Tensor, code: int) -> torch.Tensor:
    if code == RELU:
        return torch.clamp_min(z, 0.0)
    if code == LEAKY_RELU:
        return torch.where(z >= 0, z, LEAKY_SLOPE * z)
    if code == TANH:
        return torch.tanh(z)
    if code == SIGMOID:
        return 0.5 * (1.0 + torch.tanh(0.5 * z))
    return z


class TorchScorer:
    """Holds one prefix's arrays on ``device`` and scores blocks of pairs; it reads the
    same structures as the Numba kernels (``block.out_valid`` aside: it returns masks).
    A decision can differ from the CPU's only through the order of float64 additions
    (about 1e-15 relative), as between CPU threads."""

    def __init__(self, device: str):
        try:
            self.device = torch.device(device)
            torch.zeros(1, device=self.device)
        except (RuntimeError, AssertionError) as exc:
            from circuit_census.errors import InputError

            raise InputError(f"device {device!r} is not available to PyTorch: {exc}") from None
        self._cache: dict[int, torch.Tensor] = {}

    def t(self, array: np.ndarray) -> torch.Tensor:
        """``array`` on the device, uploaded once per array object while one prefix's
        arrays live (:meth:`forget` is called at each new prefix)."""
        key = id(array)
        hit = self._cache.get(key)
        if hit is None or hit.shape != tuple(np.shape(array)):
            hit = torch.as_tensor(np.ascontiguousarray(array), device=self.device)
            self._cache[key] = hit
        return hit

    def forget(self) -> None:
        self._cache.clear()

    def admissible(self, pairs: Admissible) -> torch.Tensor:
        """Which pairs of the block's rows of half A with half B are candidates."""
        cover_a = torch.as_tensor(pairs.cover_a, device=self.device)
        present_a = torch.as_tensor(pairs.present_a, device=self.device)
        cover_b, present_b = self.t(pairs.cover_b), self.t(pairs.present_b)
        covered = (cover_a[:, None] | cover_b[None, :]) == pairs.required
        return covered & ((present_a[:, None] + present_b[None, :]) != pairs.excluded)

    def _cross(self, terms: PairTerms, outer: OuterTerms, a0: int, a1: int) -> torch.Tensor:
        """The cross terms of rows ``a0 <= a < a1`` of half A with every combination of B."""
        idx = np.arange(a0, a1)
        cross = torch.as_tensor(outer.cross_constant, device=self.device)
        cross = cross[None, :].expand(a1 - a0, -1).clone()
        table = self.t(terms.cross)
        stride = 1
        for j in range(len(terms.radix) - 1, -1, -1):
            rows = terms.unit_offset[j] + (idx // stride) % terms.radix[j]
            cross += table[torch.as_tensor(rows, device=self.device)]
            stride *= int(terms.radix[j])
        return cross

    def additive(
        self, terms: PairTerms, outer: OuterTerms, pairs: Admissible, block: Block, rule: Rule
    ) -> torch.Tensor:
        """Valid mask (rows, n_b) of the mse criterion, as ``score_pairs_additive``."""
        a0, a1, budget = block.a0, block.a1, rule.budget
        na = torch.as_tensor(outer.norm_a[a0:a1], device=self.device)
        total = (
            na[:, None] + self.t(terms.norm_b)[None, :] + 2.0 * self._cross(terms, outer, a0, a1)
        )
        scale_a = torch.as_tensor(outer.scale_a[a0:a1], device=self.device)
        max_norm_b, max_root_b = float(terms.norm_b.max()), float(terms.root_b.max())
        tol = terms.band * (na + max_norm_b + scale_a * max_root_b)[:, None]
        ok = self.admissible(pairs)
        if rule.activation == IDENTITY:
            unsure = ok & (total >= budget - tol) & (total < budget + tol)
            ok = ok & (total < budget - tol)
        else:
            certified = terms.lipschitz_sq * (total + tol) < budget
            unsure = ok & ~certified
            ok = ok & certified
        rows, cols = torch.nonzero(unsure, as_tuple=True)
        if len(rows):
            z_a, z_b = self.t(terms.z_a), self.t(terms.z_b)
            constant = torch.as_tensor(outer.constant, device=self.device)
            target, weight = self.t(terms.target), self.t(terms.weight)
            step = max(1, PAIR_CHUNK // z_b.shape[1])
            for s in range(0, len(rows), step):
                r, c = rows[s : s + step], cols[s : s + step]
                z = z_a[r + a0] + constant + z_b[c]
                err = ((_activate(z, rule.activation) - target) ** 2 * weight).sum(dim=1)
                ok[r, c] = err < budget
        return ok

    def general(self, u: np.ndarray, v: np.ndarray, pairs: Admissible, rule: Rule) -> torch.Tensor:
        """Valid mask of the accuracy criterion, as ``score_pairs_general`` (``u``: the
        block's rows of half A, bias and outer combination included; ``v``: half B)."""
        ut = torch.as_tensor(u, device=self.device)
        vt, w = self.t(v), self.t(rule.weight)
        ref = self.t(rule.target).reshape(-1, rule.n_out)
        adm = self.admissible(pairs)
        ok = torch.zeros_like(adm)
        per_row = vt.numel()
        step = max(1, PAIR_CHUNK // max(per_row, 1))
        for s in range(0, ut.shape[0], step):
            g = _activate(ut[s : s + step, None] + vt[None], rule.activation)  # (r, n_b, P, m)
            bits = (g >= 0.5).to(g.dtype) if rule.criterion == ACCURACY else torch.round(g)
            wrong = (~(bits == ref).all(dim=3)).to(g.dtype) @ w
            ok[s : s + step] = (wrong <= rule.budget) & adm[s : s + step]
        return ok
