"""Where the computation runs, and how it is made repeatable."""

import random
import sys

import numpy as np
import torch
from tqdm import tqdm


def pick_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given, else the first CUDA GPU when present, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and all GPUs); return a CPU ``torch.Generator`` seeded alike."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def keep_random_state(device: torch.device | str = "cpu"):
    """Return a context manager that saves the random state of the CPU and of ``device`` (and the
    current device of its kind, which some libraries re-seed) and restores it on exit
    (``torch.random.fork_rng``): what runs inside draws without changing what the caller draws next."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    backend = getattr(torch, device.type, None)
    current = backend.current_device() if backend is not None and hasattr(backend, "current_device") else 0
    index = device.index if device.index is not None else current
    return torch.random.fork_rng(devices=sorted({index, current}), device_type=device.type)


def progress(iterable, desc: str, total: int | None = None):
    """Return ``iterable`` wrapped in a tqdm bar written to stdout, so that it shows in a chapter's
    output when run by hand (``make book`` sets ``TQDM_DISABLE=1``: no bars on the rendered page)."""
    return tqdm(iterable, desc=desc, total=total, file=sys.stdout)
