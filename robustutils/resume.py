"""Crash-resume for :func:`robustutils.train.fit`: one checkpoint file per run, rewritten
atomically (a new file written beside it, then renamed over it, as :func:`robustutils.io.save`
does) at the end of every epoch.

The file holds everything the next epoch depends on: the weights, the optimizer's and the
scheduler's state, the epoch and the global step (the eps ramp and the schedule follow the step),
the history so far, and every random state of every rank: torch's CPU generator (attacks' random
starts), the CUDA generator of the device in use, NumPy's, Python's and the generators that
shuffle the data. Restored, a run killed at any moment ends with the weights of a run never
interrupted, bit for bit, on the same device with the same number of threads.

A fingerprint of the settings that change the weights (:func:`fingerprint`) is stored beside
them, so that a checkpoint of another run is refused instead of silently continued.
"""

import dataclasses
import hashlib
import json
import random
from pathlib import Path

import numpy as np
import torch

from . import io
from .attacks import Attack
from .distributed import Group

FORMAT = "robustutils.fit-checkpoint/1"
KEYS = ("format", "fingerprint", "epoch", "step", "history", "model", "optimizer", "scheduler", "rng")


def describe(obj):
    """Return plain data naming an attack or a loss: an :class:`~robustutils.attacks.Attack`'s
    ``settings()``, a dataclass's repr (e.g. ``TradesLoss(beta=6.0)``), a function's qualified
    name, or ``None``."""
    if obj is None:
        return None
    if isinstance(obj, Attack):
        return obj.settings()
    if dataclasses.is_dataclass(obj):
        return repr(obj)
    name = getattr(obj, "__qualname__", type(obj).__qualname__)
    return f"{getattr(obj, '__module__', '?')}.{name}"


def labels_digest(y: torch.Tensor) -> str:
    """Return a 16-hex-digit hash of the labels ``y`` (their order included): which examples a run
    trains on, without hashing the images."""
    return hashlib.sha256(y.detach().cpu().to(torch.int64).numpy().tobytes()).hexdigest()[:16]


def fingerprint(**settings) -> dict:
    """Return ``settings`` as plain JSON data (tuples become lists), the form compared on resume."""
    return json.loads(json.dumps(io._plain(settings)))


def rng_state(generators, device: torch.device) -> dict:
    """Return this process's random states: torch CPU, CUDA of ``device`` (only the device in use,
    so that no other GPU is touched; ``None`` on the CPU), NumPy, Python and each of ``generators``."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
        "generators": [g.get_state() for g in generators],
    }


def set_rng_state(state: dict, generators, device: torch.device) -> None:
    """Restore the random states :func:`rng_state` returned (CUDA's only when both runs used a GPU)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["key"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    random.setstate(_tuples(state["python"]))
    if len(state["generators"]) != len(generators):
        raise io.CheckpointError(
            f"the checkpoint holds {len(state['generators'])} data generators, this run has "
            f"{len(generators)}: it comes from another kind of training data"
        )
    for generator, saved in zip(generators, state["generators"]):
        generator.set_state(saved)


def _tuples(value):
    """Python's ``random.setstate`` wants the nested tuples of ``getstate``."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save(
    path,
    *,
    fingerprint: dict,
    epoch: int,
    step: int,
    history: list,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    rng: list,
) -> Path:
    """Write the state after ``epoch`` (1-based; ``step`` optimizer steps so far) to ``path``
    atomically; ``rng`` holds each rank's :func:`rng_state`, by rank. Return the path."""
    payload = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "epoch": epoch,
        "step": step,
        "history": io._plain(history),
        "model": io._clean_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
    }
    return io._atomic_save(payload, path)


def read(path) -> dict:
    """Return the checkpoint at ``path`` (tensors on the CPU); raise :class:`robustutils.io.CheckpointError`
    when it is not a training checkpoint of :func:`save`."""
    payload = io.read(path, required=KEYS, what="training checkpoint (of robustutils.train.fit)")
    if payload["format"] != FORMAT:
        raise io.CheckpointError(
            f"{path} has format {payload['format']!r}, this library writes {FORMAT!r}: delete it to train afresh"
        )
    return payload


def check(payload: dict, fingerprint: dict, path) -> None:
    """Raise :class:`robustutils.io.CheckpointError` naming every setting in which the checkpoint's run
    differs from ``fingerprint``; return nothing when they agree."""
    saved = payload["fingerprint"]
    differences = [
        f"{name}: {saved.get(name)!r} in the checkpoint, {fingerprint.get(name)!r} now"
        for name in sorted(set(saved) | set(fingerprint))
        if saved.get(name) != fingerprint.get(name)
    ]
    if differences:
        raise io.CheckpointError(
            f"{path} was written by a different run ({'; '.join(differences)}): "
            f"delete it, or give this run another checkpoint path, to train afresh"
        )


def restore(
    path,
    *,
    fingerprint: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generators,
    group: Group,
) -> tuple[list, int] | None:
    """Load the checkpoint at ``path`` into ``model``, ``optimizer``, ``scheduler``, this rank's
    random states and ``generators``; return ``(history so far, global step)``, or ``None`` when
    there is no file at ``path`` yet. Refuse a checkpoint whose fingerprint differs."""
    if not Path(path).is_file():
        return None
    payload = read(path)
    check(payload, fingerprint, path)
    io.load_weights(model, payload["model"], source=str(path))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    set_rng_state(payload["rng"][group.rank], generators, next(model.parameters()).device)
    return payload["history"], payload["step"]
