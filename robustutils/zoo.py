"""Trained models and their evaluations, cached by their full configuration.

A *recipe* is a plain dict naming everything that changes a model's weights: dataset and
training-set size, architecture, optimiser and schedule, the training attack, the loss, the seed.
:func:`get` trains a recipe once and loads it afterwards from ``$ROBUSTUTILS_CACHE``, under a file
name that carries a hash of the whole recipe; :func:`robustness` does the same for evaluations.
Chapters that follow reuse the models of earlier ones by asking for the same recipe.
"""

import functools
import hashlib
import json
import os
import time
from pathlib import Path

import torch

from . import attacks, data, evaluate, io, models, train, trades
from .runtime import pick_device, set_seed

# Bump when a change to the library changes what a recipe trains, so that old caches are not reused.
FORMAT = 1
DATASETS = ("mnist", "cifar10", "restricted_imagenet")

DEFAULTS = {
    "dataset": "mnist", "n_train": None, "arch": "mnist_cnn", "arch_kwargs": {},
    "epochs": 1, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
    "schedule": "onecycle", "attack": None, "eps_ramp": 0.0, "trades_beta": None,
    "monitor_n": 0, "seed": 0,
    # Restricted ImageNet only (read lazily from image folders): image side and training split.
    "image_size": 224, "train_split": "train",
}


def recipe(base: dict | None = None, **changes) -> dict:
    """Return :data:`DEFAULTS` updated by ``base`` then ``changes`` (a new dict).

    ``attack`` is ``None`` (standard training) or ``{"norm", "eps", "steps"}`` with optional
    ``"step_size"`` (pixel units; default ``2.5 * eps / steps``) and ``"random_start"``.
    """
    out = {**DEFAULTS, **(base or {}), **changes}
    unknown = set(out) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown recipe keys {sorted(unknown)}: a recipe has {sorted(DEFAULTS)}")
    if out["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {out['dataset']!r}: choose one of {DATASETS}")
    return out


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def key(rec: dict) -> str:
    """Return a 16-hex-digit hash of the complete recipe (and the cache :data:`FORMAT`)."""
    return hashlib.sha256(_canonical({"format": FORMAT, "recipe": recipe(rec)}).encode()).hexdigest()[:16]


def label(rec: dict) -> str:
    """Return a short human name: ``standard``, ``linf 0.3``, ``l2 2``, ``trades linf 0.3 b6``."""
    atk = rec.get("attack")
    if atk is None:
        return "standard"
    name = f"{atk['norm']} {atk['eps']:.4g}"
    return f"trades {name} b{rec['trades_beta']:g}" if rec.get("trades_beta") is not None else name


def path(rec: dict, root=None) -> Path:
    """Return where the model of ``rec`` is cached: ``<cache>/<dataset>-<arch>-<label>-<key>.pt``."""
    slug = label(rec).replace(" ", "-")
    return io.cache_dir(root) / f"{rec['dataset']}-{rec['arch']}-{slug}-{key(rec)}.pt"


@functools.lru_cache(maxsize=4)
def _split(dataset: str, train_split: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return data.mnist(train_split) if dataset == "mnist" else data.cifar10(train_split)


def _imagenet(rec: dict, train_split: bool, n: int | None):
    """Restricted ImageNet: a shuffling DataLoader over the training folder, or the first ``n``
    validation images stacked into tensors."""
    split = rec["train_split"] if train_split else "val"
    folder = data.restricted_imagenet(split, size=rec["image_size"], transform=None if train_split else
                                      data.imagenet_transform(False, rec["image_size"]))
    if not train_split:
        items = [folder[i] for i in range(min(n or len(folder), len(folder)))]
        return torch.stack([im for im, _ in items]), torch.tensor([label for _, label in items])
    generator = torch.Generator().manual_seed(rec["seed"])
    if rec["n_train"] is not None:
        pick = torch.randperm(len(folder), generator=generator)[: rec["n_train"]].tolist()
        folder = torch.utils.data.Subset(folder, pick)
    workers = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
    return torch.utils.data.DataLoader(folder, batch_size=rec["batch_size"], shuffle=True, generator=generator,
                                       num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=False)


def dataset(rec: dict, train_split: bool = True, n: int | None = None):
    """Return the recipe's data: the training set (a seeded random subset of ``n_train``) or the
    first ``n`` test examples, as ``(x, y)`` tensors in [0, 1] on the CPU. Restricted ImageNet's
    training set is a DataLoader instead (it does not fit in memory)."""
    if rec["dataset"] == "restricted_imagenet":
        return _imagenet(rec, train_split, n)
    x, y = _split(rec["dataset"], train_split)
    if train_split:
        return data.subset(x, y, rec["n_train"], generator=torch.Generator().manual_seed(rec["seed"]))
    return x[:n], y[:n]


def training_attack(rec: dict) -> attacks.PGD | None:
    """Return the recipe's training attack as :class:`robustutils.attacks.PGD`, or ``None``."""
    atk = rec["attack"]
    return None if atk is None else attacks.PGD(**atk)


def _fit(model: torch.nn.Module, rec: dict, progress: bool) -> dict:
    attack = training_attack(rec)
    loss = train.madry_loss if rec["trades_beta"] is None else trades.TradesLoss(rec["trades_beta"])
    monitor = None
    if rec["monitor_n"]:
        monitor = dataset(rec, train_split=False, n=rec["monitor_n"])
    eval_attack = None if attack is None else attacks.PGD(eps=attack.eps, steps=20, norm=attack.norm)
    start = time.perf_counter()
    history = train.fit(model, dataset(rec), epochs=rec["epochs"], batch_size=rec["batch_size"], attack=attack,
                        optimizer=rec["optimizer"], lr=rec["lr"], weight_decay=rec["weight_decay"],
                        schedule=rec["schedule"], eps_ramp=rec["eps_ramp"], loss=loss, test_data=monitor,
                        eval_attack=eval_attack, seed=rec["seed"], progress=progress)
    return {"recipe": rec, "history": history, "train_time_s": time.perf_counter() - start,
            "device": str(next(model.parameters()).device), "torch": torch.__version__}


def get(rec: dict, device=None, progress: bool = True, root=None) -> tuple[torch.nn.Module, dict]:
    """Return ``(model, meta)`` for ``rec``: loaded from the cache, or trained now and cached.

    ``meta`` holds the recipe, the per-epoch history of :func:`robustutils.train.fit` and the
    training time in seconds. The model is on ``device`` (default: the GPU when present).
    """
    rec = recipe(rec)
    device = pick_device(device)
    target = path(rec, root)
    if progress and not target.is_file():
        print(f"training {rec['dataset']} {label(rec)} (not in the cache {target.parent})", flush=True)

    def build():
        set_seed(rec["seed"])  # the initial weights are part of the recipe
        return models.build(rec["arch"], **rec["arch_kwargs"])

    return io.load_or_train(target, build, lambda model: _fit(model, rec, progress), device=device)


def robustness(rec: dict, model: torch.nn.Module, attacks_by_name: dict, n_test: int, root=None) -> dict:
    """Return :func:`robustutils.evaluate.compare` of ``model`` (the model of ``rec``) on the first
    ``n_test`` test examples under ``attacks_by_name``; cached beside the model, keyed by the recipe,
    the attacks' settings and ``n_test``."""
    settings = {name: a.settings() for name, a in attacks_by_name.items()}
    digest = hashlib.sha256(_canonical({"model": key(rec), "attacks": settings, "n": n_test}).encode()).hexdigest()[:16]
    target = io.cache_dir(root) / "evaluations" / f"{key(rec)}-{digest}.json"
    if target.is_file():
        return json.loads(target.read_text())
    result = evaluate.compare(model, *dataset(rec, train_split=False, n=n_test), attacks_by_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1))
    return result


def adversarial(base: dict, norm: str, eps: float, steps: int, step_factor: float | None = None) -> dict:
    """Return ``base`` trained against PGD-``steps`` in ``norm`` at ``eps`` (``eps == 0``: standard).

    The step size is ``step_factor * eps`` (pixel units), or with ``None`` ``2.5 * eps / steps``;
    ``steps=1, step_factor=1.25`` is Wong et al.'s FGSM with random start.
    """
    if eps == 0:
        return recipe(base, attack=None, eps_ramp=0.0, trades_beta=None)
    step_size = None if step_factor is None else step_factor * eps
    return recipe(base, attack={"norm": norm, "eps": eps, "steps": steps, "step_size": step_size})
