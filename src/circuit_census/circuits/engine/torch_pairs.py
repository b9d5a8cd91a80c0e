"""The census engine's pair scoring in PyTorch, for GPUs (``census(..., device="cuda")``).

It computes exactly what the Numba kernels compute, in float64 on the device: the same
additive cross terms, the same rounding band re-summed directly, the same Lipschitz
certificate and the same per-point criteria. So a decision can differ from the CPU's only
through the order of float64 additions (about 1e-15 relative), as between CPU threads.
"""

from __future__ import annotations

import numpy as np
import torch

PAIR_CHUNK = 1 << 22  # pair-point values materialised at once


def _activate(z: torch.Tensor, code: int) -> torch.Tensor:
    if code == 0:
        return torch.clamp_min(z, 0.0)
    if code == 1:
        return torch.where(z >= 0, z, 0.01 * z)
    if code == 2:
        return torch.tanh(z)
    if code == 3:
        return 0.5 * (1.0 + torch.tanh(0.5 * z))
    return z


class TorchScorer:
    """Holds one prefix's arrays on ``device`` and scores blocks of pairs."""

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

    def admissible(self, cover_a, present_a, cover_b, present_b, required, excluded):
        ca, pa = (
            torch.as_tensor(cover_a, device=self.device),
            torch.as_tensor(present_a, device=self.device),
        )
        cb, pb = self.t(cover_b), self.t(present_b)
        return ((ca[:, None] | cb[None, :]) == required) & ((pa[:, None] + pb[None, :]) != excluded)

    def additive(
        self, add, per_outer, a0: int, a1: int, cover_a, present_a, cover_b, present_b,
        required: int, excluded: int, limit: float, band: float, act: int, lipschitz_sq: float,
    ) -> torch.Tensor:  # fmt: skip
        """Valid mask (a1 - a0, n_b) of the mse criterion, as ``score_pairs_additive``."""
        cz, E0, norm_a, scale_a = per_outer
        idx = np.arange(a0, a1)
        cross = torch.as_tensor(E0, device=self.device)[None, :].expand(a1 - a0, -1).clone()
        E = self.t(add.E)
        stride = 1
        for j in range(len(add.radix) - 1, -1, -1):
            rows = add.offset[j] + (idx // stride) % add.radix[j]
            cross += E[torch.as_tensor(rows, device=self.device)]
            stride *= int(add.radix[j])
        na = torch.as_tensor(norm_a[a0:a1], device=self.device)
        total = na[:, None] + self.t(add.norm_b)[None, :] + 2.0 * cross
        tol = band * (
            na + float(add.norm_b.max()) + torch.as_tensor(scale_a[a0:a1], device=self.device)
            * float(add.root_b.max())
        )[:, None]  # fmt: skip
        ok = self.admissible(
            cover_a[a0:a1], present_a[a0:a1], cover_b, present_b, required, excluded
        )
        if act == 4:
            unsure = ok & (total >= limit - tol) & (total < limit + tol)
            ok = ok & (total < limit - tol)
        else:
            certified = lipschitz_sq * (total + tol) < limit
            unsure = ok & ~certified
            ok = ok & certified
        rows, cols = torch.nonzero(unsure, as_tuple=True)
        if len(rows):
            Z_a, Z_b = self.t(add.Z_a), self.t(add.Z_b)
            czt = torch.as_tensor(cz, device=self.device)
            target, weight = self.t(add.target), self.t(add.weight)
            step = max(1, PAIR_CHUNK // Z_b.shape[1])
            for s in range(0, len(rows), step):
                r, c = rows[s : s + step], cols[s : s + step]
                z = Z_a[r + a0] + czt + Z_b[c]
                err = ((_activate(z, act) - target) ** 2 * weight).sum(dim=1)
                ok[r, c] = err < limit
        return ok

    def general(
        self, U: np.ndarray, Vc: np.ndarray, cover_a, present_a, cover_b, present_b,
        required: int, excluded: int, weight, reference, act: int, criterion: int, limit: float,
    ) -> torch.Tensor:  # fmt: skip
        """Valid mask of the accuracy criterion, as ``score_pairs_general``."""
        from circuit_census.circuits.engine.kernels import ACCURACY

        Ut = torch.as_tensor(U, device=self.device)
        V, w, ref = self.t(Vc), self.t(weight), self.t(reference)
        adm = self.admissible(cover_a, present_a, cover_b, present_b, required, excluded)
        ok = torch.zeros_like(adm)
        per_row = V.numel()
        step = max(1, PAIR_CHUNK // max(per_row, 1))
        for s in range(0, Ut.shape[0], step):
            g = _activate(Ut[s : s + step, None] + V[None], act)  # (r, n_b, P, m)
            bits = (g >= 0.5).to(g.dtype) if criterion == ACCURACY else torch.round(g)
            wrong = (~(bits == ref).all(dim=3)).to(g.dtype) @ w
            ok[s : s + step] = (wrong <= limit) & adm[s : s + step]
        return ok
