"""The network as plain arrays: weights (out x in), biases and activations.

Everything downstream of training (census, measures, figures) works on this frozen,
framework-free description, computed in float64 so that decisions do not depend on
PyTorch's kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_census.activations import apply_activation, check_activation
from circuit_census.errors import InputError


@dataclass(frozen=True)
class Network:
    """A feed-forward MLP: ``h_l = act_l(W_l h_{l-1} + b_l)``; ``W_l`` is ``n_l x n_{l-1}``."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activation: str = "relu"
    output_activation: str = "identity"

    def __post_init__(self) -> None:
        ws = tuple(np.ascontiguousarray(w, dtype=np.float64) for w in self.weights)
        bs = tuple(np.ascontiguousarray(b, dtype=np.float64).reshape(-1) for b in self.biases)
        object.__setattr__(self, "weights", ws)
        object.__setattr__(self, "biases", bs)
        check_activation(self.activation)
        check_activation(self.output_activation)
        if not ws or len(ws) != len(bs):
            raise InputError("a network needs one bias per weight matrix and at least one layer")
        for layer, (w, b) in enumerate(zip(ws, bs)):
            if w.ndim != 2:
                raise InputError(f"layer {layer}: weight must be a matrix, got shape {w.shape}")
            if b.shape[0] != w.shape[0]:
                raise InputError(
                    f"layer {layer}: bias has {b.shape[0]} entries for {w.shape[0]} outputs"
                )
            if layer and w.shape[1] != ws[layer - 1].shape[0]:
                raise InputError(
                    f"weights do not chain: layer {layer} takes {w.shape[1]} inputs but "
                    f"layer {layer - 1} has {ws[layer - 1].shape[0]} outputs"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise InputError(f"layer {layer}: weights or biases are NaN or infinite")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer sizes ``(n_0, ..., n_L)``."""
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @property
    def n_layers(self) -> int:
        """Number of weight layers ``L``."""
        return len(self.weights)

    def layer_activation(self, layer: int) -> str:
        """Activation after weight layer ``layer`` (0-based)."""
        return self.output_activation if layer == self.n_layers - 1 else self.activation

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """All layer values ``[h_0 = x, h_1, ..., h_L]`` for inputs ``x`` (samples x n_0)."""
        h = [np.asarray(x, dtype=np.float64)]
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h.append(apply_activation(self.layer_activation(layer), h[-1] @ w.T + b))
        return h

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs ``f(x)`` (samples x n_L)."""
        return self.activations(x)[-1]

    def output_subnetwork(self, output: int) -> Network:
        """The sub-network feeding output ``output`` alone (a census is taken per output)."""
        ws = self.weights[:-1] + (self.weights[-1][output : output + 1],)
        bs = self.biases[:-1] + (self.biases[-1][output : output + 1],)
        return Network(ws, bs, self.activation, self.output_activation)


def check_inputs(network: Network, x: np.ndarray, y: np.ndarray | None = None) -> None:
    """Raise :class:`InputError` unless ``x`` (and ``y``) fit ``network`` and are finite."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"inputs x must be a non-empty samples x features matrix, got {x.shape}")
    if x.shape[1] != network.sizes[0]:
        raise InputError(
            f"data has {x.shape[1]} input columns but the model takes {network.sizes[0]}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError("inputs x contain NaN or infinite values")
    if y is not None:
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise InputError(f"targets y must be {x.shape[0]} x {network.sizes[-1]}, got {y.shape}")
        if y.shape[1] != network.sizes[-1]:
            raise InputError(
                f"targets y have {y.shape[1]} columns but the model has {network.sizes[-1]} outputs"
            )
        if not np.all(np.isfinite(y)):
            raise InputError("targets y contain NaN or infinite values")
