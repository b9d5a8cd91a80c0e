"""PyTorch MLPs batched over seeds, and conversion to and from :class:`Network`.

A :class:`BatchedMLP` holds ``n_models`` independent MLPs of the same architecture. All
their parameters live in one leaf tensor ``theta`` of shape ``(n_models, n_params)``;
layer ``l``'s weight is the view ``(n_models, n_l, n_{l-1})`` (out x in)
and its bias ``(n_models, n_l)``. Every operation acts on each model separately (batched
matrix products, per-model reductions), so a model's outputs and gradients never depend
on which other models share the batch.

Initialisation matches ``torch.nn.Linear`` after ``torch.manual_seed(seed)``: for each
layer in order, weight then bias, each uniform on ``(-1/sqrt(n_in), 1/sqrt(n_in))``
(PyTorch's kaiming-uniform with ``a=sqrt(5)``), drawn from a generator seeded with the
model's own seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from circuit_census.activations import LEAKY_SLOPE, check_activation
from circuit_census.errors import InputError
from circuit_census.network import Network

ORTHOGONALITY_EPS = 1e-8


def torch_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The PyTorch function for activation ``name`` (same definitions as ``network.py``)."""
    check_activation(name)
    if name == "relu":
        return torch.relu
    if name == "leaky_relu":
        return lambda z: torch.nn.functional.leaky_relu(z, LEAKY_SLOPE)
    if name == "tanh":
        return torch.tanh
    if name == "sigmoid":
        return torch.sigmoid
    return lambda z: z


def torch_activation_module(name: str) -> torch.nn.Module:
    """An ``nn.Module`` for activation ``name`` (for plain ``nn.Sequential`` models)."""
    check_activation(name)
    return {
        "relu": torch.nn.ReLU,
        "leaky_relu": lambda: torch.nn.LeakyReLU(LEAKY_SLOPE),
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
        "identity": torch.nn.Identity,
    }[name]()


def layer_shapes(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``[(n_1, n_0), (n_2, n_1), ...]``: the weight shapes of an MLP with ``sizes``."""
    return [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]


def n_params(sizes: Sequence[int]) -> int:
    """Number of parameters (weights and biases) of one MLP with layer ``sizes``."""
    return sum(o * i + o for o, i in layer_shapes(sizes))


def init_params(sizes: Sequence[int], seed: int) -> torch.Tensor:
    """Flat float32 parameters of one MLP, initialised like ``nn.Linear`` from ``seed``.

    Equal to the parameters of ``nn.Sequential(nn.Linear(...), act, nn.Linear(...), ...)``
    built right after ``torch.manual_seed(seed)``, flattened weight then bias per layer.
    """
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for out, inp in layer_shapes(sizes):
        bound = 1.0 / math.sqrt(inp)
        parts.append(torch.empty(out * inp).uniform_(-bound, bound, generator=gen))
        parts.append(torch.empty(out).uniform_(-bound, bound, generator=gen))
    return torch.cat(parts)


class BatchedMLP:
    """``n_models`` MLPs with layer ``sizes``, parameters in one tensor ``theta``."""

    def __init__(
        self,
        sizes: Sequence[int],
        theta: torch.Tensor,
        activation: str = "relu",
        output_activation: str = "identity",
    ) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise InputError(f"an MLP needs at least two positive layer sizes, got {self.sizes}")
        if theta.ndim != 2 or theta.shape[1] != n_params(self.sizes):
            raise InputError(
                f"parameters of shape {tuple(theta.shape)} do not fit sizes {self.sizes}"
            )
        self.theta = theta
        self.activation = check_activation(activation)
        self.output_activation = check_activation(output_activation)
        self._act = torch_activation(activation)
        self._out_act = torch_activation(output_activation)
        self._slices = []
        offset = 0
        for out, inp in layer_shapes(self.sizes):
            self._slices.append((offset, out, inp))
            offset += out * inp + out

    @classmethod
    def from_seeds(
        cls,
        sizes: Sequence[int],
        seeds: Sequence[int],
        activation: str = "relu",
        output_activation: str = "identity",
        device: str | torch.device = "cpu",
    ) -> BatchedMLP:
        """One freshly initialised model per seed (see :func:`init_params`)."""
        theta = torch.stack([init_params(sizes, s) for s in seeds]).to(device)
        return cls(sizes, theta, activation, output_activation)

    @classmethod
    def from_networks(
        cls, networks: Sequence[Network], device: str | torch.device = "cpu"
    ) -> BatchedMLP:
        """Stack networks of one architecture and activations (as float32)."""
        if not networks:
            raise InputError("no networks to stack")
        first = networks[0]
        for net in networks:
            if (net.sizes, net.activation, net.output_activation) != (
                first.sizes,
                first.activation,
                first.output_activation,
            ):
                raise InputError("networks to stack must share sizes and activations")
        rows = [
            np.concatenate(
                [a for w, b in zip(n.weights, n.biases, strict=True) for a in (w.ravel(), b)]
            )
            for n in networks
        ]
        theta = torch.tensor(np.stack(rows), dtype=torch.float32, device=device)
        return cls(first.sizes, theta, first.activation, first.output_activation)

    @property
    def n_models(self) -> int:
        return int(self.theta.shape[0])

    @property
    def n_layers(self) -> int:
        return len(self._slices)

    def layers(self, theta: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(W_l, b_l)]`` views of ``theta``: ``W_l`` is ``(n_models, n_l, n_{l-1})``."""
        theta = self.theta if theta is None else theta
        n = theta.shape[0]
        out = []
        for offset, o, i in self._slices:
            w = theta[:, offset : offset + o * i].view(n, o, i)
            b = theta[:, offset + o * i : offset + o * i + o]
            out.append((w, b))
        return out

    def weights(self, theta: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The weight matrices only (no biases)."""
        return [w for w, _ in self.layers(theta)]

    def weight_mask(self) -> torch.Tensor:
        """``(n_params,)`` float mask: 1 on weight entries, 0 on biases."""
        mask = torch.zeros(self.theta.shape[1], dtype=self.theta.dtype, device=self.theta.device)
        for offset, o, i in self._slices:
            mask[offset : offset + o * i] = 1.0
        return mask

    def forward(
        self,
        x: torch.Tensor,
        theta: torch.Tensor | None = None,
        dropout_masks: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs ``(n_models, samples, n_L)`` and the hidden activations before dropout.

        ``x`` is ``(n_models, samples, n_0)`` (each model its own inputs) or
        ``(samples, n_0)`` (shared). ``dropout_masks[l]``, if given, multiplies hidden
        layer ``l``'s activations (already scaled by ``1/(1-p)``) before the next layer.
        """
        layers = self.layers(theta)
        n = layers[0][0].shape[0]
        h = x if x.ndim == 3 else x.unsqueeze(0).expand(n, -1, -1)
        hidden = []
        for layer, (w, b) in enumerate(layers):
            z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if layer == len(layers) - 1:
                return self._out_act(z), hidden
            h = self._act(z)
            hidden.append(h)
            if dropout_masks is not None:
                h = h * dropout_masks[layer]
        raise AssertionError("unreachable")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)[0]

    def to_networks(self) -> list[Network]:
        """float64 :class:`Network` copies of every model's float32 parameters."""
        theta = self.theta.detach().to("cpu", torch.float64).numpy()
        nets = []
        for m in range(theta.shape[0]):
            ws, bs = [], []
            for offset, o, i in self._slices:
                ws.append(theta[m, offset : offset + o * i].reshape(o, i).copy())
                bs.append(theta[m, offset + o * i : offset + o * i + o].copy())
            nets.append(Network(tuple(ws), tuple(bs), self.activation, self.output_activation))
        return nets


def orthogonality_penalty(hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-model penalty ``(n_models,)`` pushing each hidden layer's units to be orthogonal.

    For each hidden layer's activations ``H`` (``samples x units`` per model): centre each
    unit over the samples, divide by ``sqrt(sum of squares + eps)``, form the Gram matrix
    ``G = A^T A`` (the units' correlation matrix) and sum the squared off-diagonal entries;
    summed over hidden layers. A unit with constant activation contributes zero.
    """
    if not hidden:
        raise InputError("the orthogonality penalty needs at least one hidden layer")
    total = None
    for h in hidden:
        centred = h - h.mean(dim=1, keepdim=True)
        a = centred / torch.sqrt((centred * centred).sum(dim=1, keepdim=True) + ORTHOGONALITY_EPS)
        gram = torch.bmm(a.transpose(1, 2), a)
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        pen = (gram * gram).sum(dim=(1, 2)) - (diag * diag).sum(dim=1)
        total = pen if total is None else total + pen
    return total


def network_to_sequential(network: Network) -> torch.nn.Sequential:
    """A plain float32 ``nn.Sequential`` computing the same function as ``network``."""
    mods: list[torch.nn.Module] = []
    for layer, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(b))
        mods += [lin, torch_activation_module(network.layer_activation(layer))]
    return torch.nn.Sequential(*mods)


def sequential_mlp(sizes: Sequence[int], activation: str, output_activation: str):
    """A plain ``nn.Sequential`` MLP with ``sizes`` (initialised by the global generator)."""
    mods: list[torch.nn.Module] = []
    shapes = layer_shapes(sizes)
    for layer, (out, inp) in enumerate(shapes):
        mods.append(torch.nn.Linear(inp, out))
        last = layer == len(shapes) - 1
        mods.append(torch_activation_module(output_activation if last else activation))
    return torch.nn.Sequential(*mods)
