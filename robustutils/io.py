"""Checkpoints as plain state_dicts, loaded with ``weights_only=True`` on CPU or GPU.

A checkpoint is ``{"arch", "kwargs", "state_dict", "meta"}``: the architecture name and
arguments of :func:`robustutils.models.build`, the weights without any ``module.`` (DDP) or
``_orig_mod.`` (torch.compile) prefix, and plain-data metadata (history, settings).
"""

import hashlib
import os
from pathlib import Path
from typing import Callable

import torch

from . import models

CACHE_ENV = "ROBUSTUTILS_CACHE"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message says what to do."""


def cache_dir(root=None) -> Path:
    """Return ``root`` if given, else ``$ROBUSTUTILS_CACHE``, else ``./.cache/robustutils``."""
    return Path(root if root is not None else os.environ.get(CACHE_ENV, ".cache/robustutils")).expanduser()


def _clean_state_dict(model: torch.nn.Module) -> dict:
    module = getattr(model, "module", model)  # DistributedDataParallel
    module = getattr(module, "_orig_mod", module)  # torch.compile
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def _plain(value):
    """Return ``value`` as data ``weights_only`` loading accepts: NumPy and torch scalars become
    Python numbers, tensors lists; raise ``TypeError`` for anything else that is not plain."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if hasattr(value, "tolist"):  # before the plain types: np.float64 is a float subclass
        return value.tolist()
    if value is None or isinstance(value, bool):
        return value
    for base in (int, float, str):  # subclasses too, e.g. torch.__version__ (a str subclass)
        if isinstance(value, base):
            return base(value)
    raise TypeError(
        f"checkpoint metadata must be plain data (numbers, strings, lists, dicts); got {type(value).__name__}"
    )


def save(model: torch.nn.Module, path, meta: dict | None = None) -> Path:
    """Write ``model`` (built by :func:`robustutils.models.build`) and plain-data ``meta`` to ``path``
    atomically; return the path."""
    spec = getattr(getattr(model, "module", model), "spec", None)
    if spec is None:
        raise ValueError("save needs a model made by robustutils.models.build(arch, ...), which records its spec")
    payload = {
        "arch": spec["arch"],
        "kwargs": spec["kwargs"],
        "state_dict": _clean_state_dict(model),
        "meta": _plain(meta or {}),
    }
    return _atomic_save(payload, path)


def _atomic_save(payload: dict, path) -> Path:
    """Write ``payload`` with ``torch.save`` to ``path`` atomically; return the path.

    The bytes go to ``<path>.tmp`` in the same folder, are flushed to the disk, and the file is
    renamed over ``path`` (``os.replace``, atomic on one file system): a reader, or a process
    killed at any moment, finds the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())  # else a power cut after the rename could leave an empty file
    os.replace(tmp, path)
    return path


def save_data(path, x: torch.Tensor, y: torch.Tensor, meta: dict | None = None) -> Path:
    """Write a dataset ``(x, y)`` (kept on the CPU) and plain-data ``meta`` to ``path``; return the path."""
    return _atomic_save({"x": x.detach().cpu(), "y": y.detach().cpu(), "meta": _plain(meta or {})}, path)


def load_data(path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Return ``(x, y, meta)`` written by :func:`save_data`, on the CPU."""
    payload = read(path, required=("x", "y"), what="dataset")
    return payload["x"], payload["y"], payload.get("meta", {})


def read(path, map_location="cpu", required=("arch", "kwargs", "state_dict"), what: str = "checkpoint") -> dict:
    """Return the checkpoint dict stored at ``path`` (tensors on ``map_location``); it must hold
    the ``required`` keys (a dataset of :func:`save_data`: ``x`` and ``y``, ``what="dataset"``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a corrupt file can make the unpickler raise almost anything
        # (UnpicklingError, EOFError, IndexError, KeyError, ...): all mean "not a readable checkpoint"
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({err}); delete it and train or save again"
        ) from err
    if not isinstance(payload, dict) or not set(required) <= payload.keys():
        raise CheckpointError(f"{path} is not a robustutils {what} (expected keys {', '.join(required)})")
    return payload


def load_weights(model: torch.nn.Module, state_dict: dict, source: str = "checkpoint") -> torch.nn.Module:
    """Load ``state_dict`` into ``model`` strictly and return ``model``; raise :class:`CheckpointError`
    naming the mismatch."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        arch = getattr(model, "spec", {}).get("arch", type(model).__name__)
        raise CheckpointError(
            f"{source} does not fit a {arch} model: {str(err).splitlines()[0]} "
            f"- check the architecture and its arguments"
        ) from err
    return model


def load(path, device=None) -> tuple[torch.nn.Module, dict]:
    """Return ``(model, meta)`` rebuilt from the checkpoint at ``path``, on ``device`` (default CPU)."""
    payload = read(path)
    model = models.build(payload["arch"], **payload["kwargs"])
    load_weights(model, payload["state_dict"], source=str(path))
    return model.to(device or "cpu"), payload.get("meta", {})


def load_or_train(
    path, build: Callable[[], torch.nn.Module], train: Callable[[torch.nn.Module], dict], device=None
) -> tuple[torch.nn.Module, dict]:
    """Return ``(model, meta)`` from ``path`` when it exists; else build, ``train(model) -> meta``, save.

    The cache key is the path: name it after everything that changes the weights (profile, eps, seed).
    """
    path = Path(path)
    if path.is_file():
        return load(path, device)
    model = build().to(device or "cpu")
    meta = train(model)
    save(model, path, meta)
    return model, meta


def tensor_digest(*tensors: torch.Tensor, names=None) -> str:
    """Return a 16-hex-digit hash of the tensors' shapes, dtypes and values (on any device), each
    prefixed by its name in ``names`` when given (e.g. a state dict's keys): the key under which
    results computed from exactly these tensors are cached."""
    digest = hashlib.sha256()
    for i, t in enumerate(tensors):
        t = t.detach().cpu().contiguous()
        prefix = "" if names is None else f"{names[i]}:"
        digest.update(f"{prefix}{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]
