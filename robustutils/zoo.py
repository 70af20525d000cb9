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
import numbers
import os
import time
from pathlib import Path

import torch

from . import attacks, constructed as constructions, data, evaluate, io, models, train, trades
from .runtime import pick_device, set_seed

#: The cache format, hashed into every cache key. Bump it when a change to the library changes what
#: a recipe trains, so that old caches are not reused.
FORMAT = 1
DATASETS = ("mnist", "cifar10", "restricted_imagenet")

#: Every recipe key with its default (:func:`recipe` completes a recipe with them); ``n_train=None``
#: means the whole training set, ``attack=None`` standard training (see :func:`recipe`).
DEFAULTS = {
    "dataset": "mnist", "n_train": None, "arch": "mnist_cnn", "arch_kwargs": {},
    "epochs": 1, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
    "schedule": "onecycle", "attack": None, "eps_ramp": 0.0, "trades_beta": None,
    "monitor_n": 0, "seed": 0,
    # Train on a constructed dataset (a spec from :func:`construction`) instead of the real one.
    "train_data": None,
    # Restricted ImageNet only (read lazily from image folders): image side and training split.
    "image_size": 224, "train_split": "train",
    # A training-set augmentation of data.AUGMENTATIONS (in-memory datasets only), e.g. "crop-flip".
    "augment": None,
}

#: Keys added to :data:`DEFAULTS` after models were cached, with the default that leaves them out of
#: :func:`key` (and :func:`data_path`): a recipe that keeps the default hashes as it did before the
#: key existed, so that the models cached then are still found; any other value changes the key.
LATE_KEYS = {"augment": None}


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
    if out["augment"] is not None and out["augment"] not in data.AUGMENTATIONS:
        raise ValueError(f"unknown augment {out['augment']!r}: choose None or one of {sorted(data.AUGMENTATIONS)}")
    if out["augment"] is not None and out["dataset"] == "restricted_imagenet":
        raise ValueError("augment applies to the in-memory datasets; Restricted ImageNet augments in its image "
                         "transform (data.imagenet_transform)")
    return out


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _hashed(rec: dict) -> dict:
    """The complete recipe less the :data:`LATE_KEYS` at their default, recursively through
    ``train_data``'s source recipe: what :func:`key` hashes."""
    rec = recipe(rec)
    out = {name: value for name, value in rec.items() if name not in LATE_KEYS or value != LATE_KEYS[name]}
    if rec["train_data"] is not None:
        out["train_data"] = _hashed_spec(rec["train_data"])
    return out


def _hashed_spec(spec: dict) -> dict:
    """A constructed dataset's spec with its source recipe as :func:`_hashed` gives it."""
    return {**spec, "source": _hashed(spec["source"])}


def key(rec: dict) -> str:
    """Return a 16-hex-digit hash of the complete recipe (and the cache :data:`FORMAT`); a key of
    :data:`LATE_KEYS` at its default is left out, so that adding it kept the older models' keys."""
    return hashlib.sha256(_canonical({"format": FORMAT, "recipe": _hashed(rec)}).encode()).hexdigest()[:16]


def label(rec: dict) -> str:
    """Return a short human name: ``standard``, ``linf 0.3``, ``l2 2``, ``trades linf 0.3 b6``,
    ``standard on D_det``."""
    atk = rec.get("attack")
    if atk is None:
        name = "standard"
    else:
        name = f"{atk['norm']} {atk['eps']:.4g}"
        name = f"trades {name} b{rec['trades_beta']:g}" if rec.get("trades_beta") is not None else name
    return name if rec.get("train_data") is None else f"{name} on {data_label(rec['train_data'])}"


def path(rec: dict, root=None) -> Path:
    """Return where the model of ``rec`` is cached: ``<cache>/<dataset>-<arch>-<label>-<key>.pt``."""
    slug = label(rec).replace(" ", "-")
    return io.cache_dir(root) / f"{rec['dataset']}-{rec['arch']}-{slug}-{key(rec)}.pt"


#: The training and test sizes of the complete datasets, which tell a shortened copy by its size.
COMPLETE_SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "restricted_imagenet": "Restricted ImageNet"}


def check_request(rec: dict, n: int | None, available: int, train_split: bool, held_by: str | None = None,
                  setting: str | None = None, fix: str | None = None) -> None:
    """Raise ``ValueError`` when ``n`` examples (``None``: all) of the recipe's training set
    (``train_split``) or test set cannot be given from the ``available`` ones: below 1, or more than
    there are. The message names both sizes, what holds the data (``held_by``, default the folder
    ``$ROBUSTUTILS_DATA``; a copy smaller than the complete dataset is called shortened) and the fix:
    a smaller ``setting`` (default ``n_train`` or the test sizes) in :mod:`robustutils.profiles`, or
    ``fix`` (default, unless the data is already complete: point ``$ROBUSTUTILS_DATA`` at the
    complete dataset). Nothing is shrunk silently."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
        data.check_size(n, available, "images")  # raises: a size is a whole number
    if n is None or 1 <= n <= available:
        return
    if n < 1:
        data.check_size(n, available)
    name, split = _NAMES[rec["dataset"]], "training" if train_split else "test"
    complete = COMPLETE_SIZES.get(rec["dataset"], (None, None))[0 if train_split else 1]
    held = f"{held_by or f'the data under {data.data_root()}'} has {available:,}"
    if held_by is None and complete is not None and available < complete:
        held += f" (a shortened copy: the complete {name} has {complete:,})"
    setting = setting or ("n_train" if train_split else "the test size (n_test, n_sweep, n_measure, monitor_n, ...)")
    if fix is None and (complete is None or available < complete):
        fix = f"point {data.DATA_ENV} at the complete {name}"
    raise ValueError(f"asked for {n:,} {name} {split} images but {held}: lower {setting} in "
                     f"robustutils/profiles.py" + (f", or {fix}" if fix else ""))


@functools.lru_cache(maxsize=4)
def _split(dataset: str, train_split: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return data.mnist(train_split) if dataset == "mnist" else data.cifar10(train_split)


def _imagenet(rec: dict, train_split: bool, n: int | None):
    """Restricted ImageNet: a shuffling DataLoader over the training folder, or the first ``n``
    validation images stacked into tensors."""
    split = rec["train_split"] if train_split else "val"
    folder = data.restricted_imagenet(split, size=rec["image_size"], transform=None if train_split else
                                      data.imagenet_transform(False, rec["image_size"]))
    check_request(rec, n if not train_split else rec["n_train"], len(folder), train_split,
                  held_by=f"the folder {folder.root}")
    if not train_split:
        items = [folder[i] for i in range(n or len(folder))]
        return torch.stack([im for im, _ in items]), torch.tensor([label for _, label in items])
    generator = torch.Generator().manual_seed(rec["seed"])
    if rec["n_train"] is not None:
        pick = torch.randperm(len(folder), generator=generator)[: rec["n_train"]].tolist()
        folder = torch.utils.data.Subset(folder, pick)
    workers = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
    return torch.utils.data.DataLoader(folder, batch_size=rec["batch_size"], shuffle=True, generator=generator,
                                       num_workers=workers, pin_memory=torch.cuda.is_available(), drop_last=False)


def dataset(rec: dict, train_split: bool = True, n: int | None = None, device=None, root=None):
    """Return the recipe's data: the training set (a seeded random subset of ``n_train``) or the
    first ``n`` test examples (``None``: all), as ``(x, y)`` tensors in [0, 1] on the CPU.
    Restricted ImageNet's training set is a DataLoader instead (it does not fit in memory). A recipe
    with ``train_data`` trains on that constructed dataset (:func:`constructed`, from the cache under
    ``root`` or built on ``device``) and is tested on the real test set. A size the data cannot meet
    (``n_train`` or ``n`` above what is on disk, e.g. 10,000 CIFAR-10 test images from the 1,017 of a
    shortened copy, or below 1) raises ``ValueError`` (:func:`check_request`) instead of shrinking."""
    if rec["dataset"] == "restricted_imagenet":
        return _imagenet(rec, train_split, n)
    if train_split and rec["train_data"] is not None:
        x, y = constructed(rec["train_data"], device, root=root)
        check_request(rec, rec["n_train"], len(y), True, held_by=f"the constructed {data_label(rec['train_data'])}",
                      fix="construct it from more images (the spec's n)")
        return data.subset(x, y, rec["n_train"], generator=torch.Generator().manual_seed(rec["seed"]))
    x, y = _split(rec["dataset"], train_split)
    check_request(rec, rec["n_train"] if train_split else n, len(y), train_split)
    if train_split:
        return data.subset(x, y, rec["n_train"], generator=torch.Generator().manual_seed(rec["seed"]))
    return x[:n], y[:n]


def training_attack(rec: dict) -> attacks.PGD | None:
    """Return the recipe's training attack as :class:`robustutils.attacks.PGD`, or ``None``."""
    atk = rec["attack"]
    return None if atk is None else attacks.PGD(**atk)


def initial_model(rec: dict) -> torch.nn.Module:
    """Return the recipe's untrained model on the CPU, its initial weights drawn from ``rec["seed"]``."""
    set_seed(rec["seed"])  # the initial weights are part of the recipe
    return models.build(rec["arch"], **rec["arch_kwargs"])


def fit_settings(rec: dict) -> dict:
    """Return the keyword arguments of :func:`robustutils.train.fit` that train ``rec`` (all but the
    training data, ``amp``, ``progress`` and ``checkpoint``): its schedule, the training attack,
    the loss (TRADES when ``trades_beta`` is set), the training-set augmentation (``augment``) and,
    with ``monitor_n``, that many test examples checked each epoch under PGD-20 at the training eps."""
    attack = training_attack(rec)
    loss = train.madry_loss if rec["trades_beta"] is None else trades.TradesLoss(rec["trades_beta"])
    monitor = dataset(rec, train_split=False, n=rec["monitor_n"]) if rec["monitor_n"] else None
    eval_attack = None if attack is None else attacks.PGD(eps=attack.eps, steps=20, norm=attack.norm)
    return {"epochs": rec["epochs"], "batch_size": rec["batch_size"], "attack": attack, "optimizer": rec["optimizer"],
            "lr": rec["lr"], "weight_decay": rec["weight_decay"], "schedule": rec["schedule"],
            "eps_ramp": rec["eps_ramp"], "loss": loss, "test_data": monitor, "eval_attack": eval_attack,
            "seed": rec["seed"], "augment": rec["augment"]}


def _fit(model: torch.nn.Module, rec: dict, progress: bool, root=None) -> dict:
    start = time.perf_counter()
    history = train.fit(model, dataset(rec, device=next(model.parameters()).device, root=root),
                        **fit_settings(rec), progress=progress)
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

    return io.load_or_train(target, lambda: initial_model(rec), lambda model: _fit(model, rec, progress, root),
                            device=device)


def robustness(rec: dict, model: torch.nn.Module, attacks_by_name: dict, n_test: int, root=None) -> dict:
    """Return :func:`robustutils.evaluate.compare` of ``model`` (the model of ``rec``) on the first
    ``n_test`` test examples under ``attacks_by_name`` (accuracies as fractions in [0, 1]); cached
    as JSON beside the model, keyed by the recipe, the attacks' settings and ``n_test``. An ``n_test``
    the test set cannot meet raises ``ValueError`` (:func:`check_request`), even when cached."""
    if rec["dataset"] in NUM_CLASSES:  # in memory: check the size before trusting a cached file
        check_request(rec, n_test, len(_split(rec["dataset"], False)[1]), False)
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


def standard_on(base: dict, train_data: dict | None = None, n_train: int | None = None, **changes) -> dict:
    """Return the recipe of a standard model like ``base`` (no attack, no monitoring) trained on all
    of the constructed dataset ``train_data`` or, when it is None, on ``n_train`` real images: the
    same images a construction with ``n = n_train`` starts from (the seeded subsets are nested).

    The model keeps ``base``'s ``augment`` except on D_det (a ``"det"`` construction), which Ilyas et
    al. 2019 trained without data augmentation, unless ``changes`` sets it."""
    if train_data is not None and train_data["kind"] == "det":
        changes = {"augment": None, **changes}
    return recipe(base, train_data=train_data, n_train=n_train, attack=None, eps_ramp=0.0, trades_beta=None,
                  monitor_n=0, **changes)


# Ilyas et al.'s constructed datasets (robustutils.constructed), cached like the models.
CONSTRUCTIONS = ("invert", "rand", "det")
NUM_CLASSES = {"mnist": 10, "cifar10": 10}


def construction(kind: str, source: dict, *, n: int | None, steps: int, step_size: float,
                 eps: float | None = None, seed: int = 0) -> dict:
    """Return the spec (a plain dict) of a constructed dataset: ``kind`` ``"invert"`` (D_R through a
    robust ``source`` recipe, D_NR through a standard one), ``"rand"`` or ``"det"`` (targeted l_2
    PGD within ``eps`` on ``source``), made from the first ``n`` images of the source's training
    set (``None``: all) with ``steps`` steps of ``step_size`` (pixel units)."""
    if kind not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction {kind!r}: choose one of {CONSTRUCTIONS}")
    source = recipe(source)
    if source["dataset"] not in NUM_CLASSES:
        raise ValueError(f"constructions need an in-memory dataset ({sorted(NUM_CLASSES)}); got {source['dataset']!r}")
    if (eps is None) != (kind == "invert"):
        raise ValueError("eps bounds the relabelling attacks only: give it for 'rand' and 'det', not for 'invert'")
    return {"kind": kind, "source": source, "n": n, "steps": steps, "step_size": step_size, "eps": eps, "seed": seed}


def data_label(spec: dict) -> str:
    """Return Ilyas et al.'s name of a constructed dataset: ``D_R``, ``D_NR``, ``D_rand`` or ``D_det``."""
    if spec["kind"] == "invert":
        return "D_NR" if spec["source"]["attack"] is None else "D_R"
    return f"D_{spec['kind']}"


def data_path(spec: dict, root=None) -> Path:
    """Return where the dataset of ``spec`` is cached: ``<cache>/datasets/<dataset>-<name>-<key>.pt``."""
    digest = hashlib.sha256(_canonical({"format": FORMAT, "spec": _hashed_spec(spec)}).encode()).hexdigest()[:16]
    return io.cache_dir(root) / "datasets" / f"{spec['source']['dataset']}-{data_label(spec)}-{digest}.pt"


def _construct(spec: dict, device, progress: bool, root) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset(spec["source"])
    check_request(spec["source"], spec["n"], len(y), True, held_by="the source recipe's training set",
                  setting="the construction's n", fix="train the source on more images (its n_train)")
    x, y = x[: spec["n"]], y[: spec["n"]]
    model, _ = get(spec["source"], device, progress=progress, root=root)
    settings = {"steps": spec["steps"], "step_size": spec["step_size"], "seed": spec["seed"], "progress": progress}
    if spec["kind"] == "invert":
        return constructions.invert(model, x, y, **settings)
    return constructions.relabel(model, x, y, mode=spec["kind"], eps=spec["eps"],
                                 num_classes=NUM_CLASSES[spec["source"]["dataset"]], **settings)


@functools.lru_cache(maxsize=8)
def _read_constructed(target: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    # Files are named after the hash of their spec and never rewritten: one read per process.
    return io.load_data(target)


def constructed(spec: dict, device=None, progress: bool = True, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``(x, y)`` CPU tensors of the constructed dataset ``spec`` (:func:`construction`),
    built on ``device`` (default: the GPU when present) the first time and cached; the source model
    comes from :func:`get`. The build time in seconds is kept in the cache file's ``meta``."""
    target = data_path(spec, root)
    if target.is_file():
        return _read_constructed(target)[:2]
    if progress:
        print(f"building {data_label(spec)} from {label(spec['source'])} (not in the cache {target.parent})", flush=True)
    device = pick_device(device)
    start = time.perf_counter()
    x, y = _construct(spec, device, progress, root)
    io.save_data(target, x, y, {"spec": spec, "build_time_s": time.perf_counter() - start, "device": str(device)})
    return x, y


def constructed_meta(spec: dict, root=None) -> dict:
    """Return the metadata of a cached constructed dataset: its spec, ``build_time_s`` and device."""
    return _read_constructed(data_path(spec, root))[2]
