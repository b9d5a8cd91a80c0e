"""Model and data files: the tool's own safetensors format, plain PyTorch state_dicts
(loaded with ``weights_only=True``) and ``.npz`` evaluation sets.

A safetensors model stores ``layers.{l}.weight`` (out x in) and ``layers.{l}.bias`` with
metadata ``format=circuit-census``, ``activation``, ``output_activation`` and any extra
string fields (task, seed, training outcome). No pickle is ever loaded.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from circuit_census.activations import check_activation
from circuit_census.errors import InputError
from circuit_census.files import atomic_write
from circuit_census.network import Network

FORMAT = "circuit-census"


def save_model(path: Path, network: Network, metadata: Mapping[str, object] | None = None) -> None:
    """Write ``network`` as a safetensors file with its architecture in the metadata."""
    from safetensors.numpy import save_file

    tensors = {}
    for layer, (w, b) in enumerate(zip(network.weights, network.biases)):
        tensors[f"layers.{layer}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        tensors[f"layers.{layer}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    meta = {
        "format": FORMAT,
        "sizes": json.dumps(list(network.sizes)),
        "activation": network.activation,
        "output_activation": network.output_activation,
    }
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata=meta)
        _sort_header(tmp)

    atomic_write(Path(path), write)


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with its keys sorted, so that one model
    always gives the same bytes (safetensors writes metadata in hash order). The sorted
    header is the same compact JSON, so it fits the same length; the spec allows the
    trailing spaces that pad it."""
    with open(path, "r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        blob = text.encode()
        if len(blob) > length:  # not the compact form this was written for: leave it
            return
        fh.seek(8)
        fh.write(blob.ljust(length))


def read_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors model file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return dict(f.metadata() or {})


def load_model(
    path: Path, activation: str | None = None, output_activation: str | None = None
) -> tuple[Network, dict[str, str]]:
    """Load a model file and its metadata.

    A safetensors file of this tool carries its activations; ``activation`` and
    ``output_activation`` override them. A PyTorch state_dict (``.pt``/``.pth``/any other
    file torch can read with ``weights_only=True``) needs ``activation`` (output defaults
    to identity).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {str(path)!r} does not exist or is not a file")
    if activation is not None:
        check_activation(activation)
    if output_activation is not None:
        check_activation(output_activation)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        tensors, meta = _read_state_dict(path), {}
    else:
        tensors, meta = _read_safetensors(path)
    if meta.get("format") == FORMAT:
        activation = activation or meta.get("activation")
        output_activation = output_activation or meta.get("output_activation")
    if activation is None:
        raise InputError(
            f"{path.name} does not say its hidden activation; pass --activation "
            "(relu, leaky_relu, tanh, sigmoid or identity)"
        )
    layers = chain_layers(tensors, path.name)
    return (
        Network(
            tuple(w for w, _ in layers),
            tuple(b for _, b in layers),
            activation,
            output_activation or "identity",
        ),
        meta,
    )


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(
            f"cannot read model file {path.name}: not a safetensors file or a PyTorch "
            f"state_dict ({_first_line(exc)})"
        ) from None


# What to save instead of a pickle, for messages about model files.
_SAVE_STATE_DICT = (
    "save model.state_dict() with torch.save (or use a circuit-census .safetensors file)"
)


def _read_state_dict(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # torch warns on stderr about pickle protocols
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch refuses anything but tensors and plain containers
        raise InputError(
            f"refusing to load {path.name}: not a plain tensor state_dict but pickled Python "
            f"objects (a whole model saved with torch.save(model)?), and pickles are never "
            f"loaded; {_SAVE_STATE_DICT}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError):
        if _is_npz(path):
            raise InputError(
                f"{path.name} is an .npz data file, not a model: pass it as --data; a model is "
                "a circuit-census .safetensors file or a PyTorch state_dict"
            ) from None
        raise InputError(
            f"cannot read model file {path.name}: not a PyTorch state_dict that torch.load "
            "can read (perhaps truncated or damaged)"
        ) from None
    if not isinstance(obj, Mapping):
        raise InputError(
            f"{path.name} holds a {type(obj).__name__}, not a state_dict of tensors; "
            f"{_SAVE_STATE_DICT}"
        )
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(
                f"{path.name} is not a state_dict of tensors: entry {str(key)!r} is a "
                f"{type(value).__name__}; {_SAVE_STATE_DICT}"
            )
    return {str(k): v.detach().to(torch.float64).numpy() for k, v in obj.items()}


def _is_npz(path: Path) -> bool:
    """Whether ``path`` is a zip archive of ``.npy`` arrays (NumPy's ``.npz``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, EOFError):
        return False
    return bool(names) and all(name.endswith(".npy") for name in names)


_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")  # terminal escape sequences


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's text for a one-line message: terminal escapes
    removed, and at most ``limit`` characters, cut between words (marked by "...")."""
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    if not text:
        return type(exc).__name__
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.") + "..."


_WEIGHT = re.compile(r"^(.*)weight$")


def chain_layers(
    tensors: Mapping[str, np.ndarray], name: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 2-D ``*.weight`` tensors in key order, each with its ``*.bias``, checked to chain."""
    layers = []
    for key, value in tensors.items():
        match = _WEIGHT.match(key)
        if not match or np.ndim(value) != 2:
            continue
        bias_key = match.group(1) + "bias"
        if bias_key not in tensors:
            raise InputError(f"{name}: weight {key!r} has no matching {bias_key!r}")
        layers.append((np.asarray(value, dtype=np.float64), np.asarray(tensors[bias_key])))
    if not layers:
        raise InputError(f"{name} holds no 2-D '*.weight' tensors")
    for i, (w, b) in enumerate(layers):
        if b.ndim != 1 or b.shape[0] != w.shape[0]:
            raise InputError(f"{name}: layer {i} bias has shape {b.shape}, weight {w.shape}")
        if i and w.shape[1] != layers[i - 1][0].shape[0]:
            raise InputError(
                f"{name}: weights do not chain: layer {i} takes {w.shape[1]} inputs but "
                f"layer {i - 1} gives {layers[i - 1][0].shape[0]}"
            )
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise InputError(f"{name}: layer {i} has NaN or infinite weights")
    return layers


# What a data file must be, for messages about data files.
_DATA_NEEDS = (
    "a data file must be an .npz archive (numpy.savez) with a numeric array 'x' and, for "
    "the accuracy criterion, 'y'; pickled data is never loaded"
)
# What reading a damaged .npz archive can raise (NumPy, zipfile, zlib, the system).
_ARCHIVE_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
)


def _data_kind(path: Path) -> str | None:
    """What a data file that is not an ``.npz`` archive is, from its first bytes (``None``
    for a zip archive, which may be one)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head[:2] == b"PK":
        return None
    if not head:
        return "it is empty"
    if head == b"\x93NUMPY":
        return "it is a single .npy array, not an .npz archive"
    if head[:1] == b"\x80":
        return "it is a pickle, not an .npz archive"
    return "it is not an .npz archive"


def load_data(path: Path, need_y: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x`` (and ``y``) from an ``.npz`` file, without pickles."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file {str(path)!r} does not exist or is not a file")
    try:
        kind = _data_kind(path)
        if kind is not None:
            raise InputError(f"cannot read data file {path.name}: {kind}; {_DATA_NEEDS}")
        with np.load(path, allow_pickle=False) as data:
            arrays = {}
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" not in str(exc):
                        raise
                    raise InputError(
                        f"cannot read data file {path.name}: array {key!r} holds Python "
                        f"objects; {_DATA_NEEDS}"
                    ) from None
    except InputError:
        raise
    except _ARCHIVE_ERRORS as exc:
        # the system's reason (such as "permission denied"), else a damaged archive
        reason = getattr(exc, "strerror", None)
        detail = reason.lower() if reason else f"it is damaged or truncated; {_DATA_NEEDS}"
        raise InputError(f"cannot read data file {path.name}: {detail}") from None
    if "x" not in arrays:
        raise InputError(f"data file {path.name} has no array 'x'; {_DATA_NEEDS}")
    y = arrays.get("y")
    if need_y and y is None:
        raise InputError(f"the accuracy criterion needs targets: {path.name} has no array 'y'")
    for key, value in (("x", arrays["x"]), ("y", y)):
        if value is not None and (
            not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf"
        ):
            what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else "not an array"
            raise InputError(
                f"cannot read data file {path.name}: array {key!r} is not numeric ({what}); "
                f"{_DATA_NEEDS}"
            )
    x = np.asarray(arrays["x"], dtype=np.float64)
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
    return x, y


def save_data(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write an evaluation set as ``.npz`` with arrays ``x`` and ``y``."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, x=np.asarray(x, dtype=np.float32), y=np.asarray(y, dtype=np.float32))

    atomic_write(Path(path), write)
