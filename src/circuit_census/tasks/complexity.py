"""Effective rank (Roy & Vetterli, 2007): the exponential of the entropy of the
normalised singular values, a continuous measure of how many directions a matrix uses."""

from __future__ import annotations

import numpy as np


def effective_rank(matrix: np.ndarray) -> float:
    """``exp(-sum p_i log p_i)`` with ``p_i = s_i / sum(s)``; 0.0 for an all-zero matrix.

    A vector is treated as a one-column matrix.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise ValueError(f"effective_rank needs a matrix, got shape {m.shape}")
    if m.size == 0:
        return 0.0
    s = np.linalg.svd(m, compute_uv=False)
    total = s.sum()
    if total <= 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))
