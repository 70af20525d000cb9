"""Trained models and their evaluations by registry name, cached by their full recipe.

Chapters ask for a model by its name in :mod:`robustutils.registry` at their profile::

    model, meta = zoo.get("mnist/linf-0.3", PROFILE)
    result = zoo.robustness("mnist/linf-0.3", PROFILE, at=("linf", 0.3))

:func:`get` trains a recipe once and loads it afterwards from ``$ROBUSTUTILS_CACHE``, under a file
name that carries a hash of the whole recipe (:func:`key`); the model's metadata records a
fingerprint of the code that trained it (:func:`code_fingerprint`), and loading it under other code
warns. :func:`robustness` caches evaluations keyed by the entry it loaded, that fingerprint, the
attacks and the test size. Constructed datasets (:func:`constructed`) are cached the same way.
"""

import ast
import functools
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import torch

from . import attacks, data, evaluate, independent, io, models, profiles, registry, trades, train
from . import constructed as constructions
from .registry import Construction, Recipe
from .runtime import keep_random_state, pick_device, set_seed

#: The cache format, hashed into every cache key. Bump it when a change to the library changes what
#: a recipe trains, so that old caches are not reused.
FORMAT = 1
DATASETS = registry.DATASETS

#: Every recipe key with its default (:class:`robustutils.registry.Recipe`'s fields).
DEFAULTS = Recipe().as_dict()

#: Keys added to :data:`DEFAULTS` after models were cached, with the default that leaves them out of
#: :func:`key` (and :func:`data_path`): a recipe that keeps the default hashes as it did before the
#: key existed, so that the models cached then are still found; any other value changes the key.
LATE_KEYS = {"augment": None, "amp": False, "channels_last": False}


def recipe(base: dict | None = None, **changes) -> dict:
    """Return :data:`DEFAULTS` updated by ``base`` then ``changes`` (a new dict).

    ``attack`` is ``None`` (standard training) or ``{"norm", "eps", "steps"}`` with optional
    ``"step_size"`` (pixel units; default ``2.5 * eps / steps``) and ``"random_start"``.
    """
    if isinstance(base, Recipe):
        base = base.as_dict()
    changes = {k: v.as_dict() if isinstance(v, Construction) else v for k, v in changes.items()}
    out = {**DEFAULTS, **(base or {}), **changes}
    unknown = set(out) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown recipe keys {sorted(unknown)}: a recipe has {sorted(DEFAULTS)}")
    if out["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {out['dataset']!r}: choose one of {DATASETS}")
    if out["augment"] is not None and out["augment"] not in data.AUGMENTATIONS:
        raise ValueError(f"unknown augment {out['augment']!r}: choose None or one of {sorted(data.AUGMENTATIONS)}")
    if out["augment"] is not None and out["dataset"] == "restricted_imagenet":
        raise ValueError(
            "augment applies to the in-memory datasets; Restricted ImageNet augments in its image "
            "transform (data.imagenet_transform)"
        )
    return out


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _hashed(rec: dict) -> dict:
    """The complete recipe less the :data:`LATE_KEYS` at their default, recursively through
    ``train_data``'s source recipe: what :func:`key` hashes."""
    rec = recipe(rec)
    if isinstance(rec["train_data"], Construction):
        rec["train_data"] = rec["train_data"].as_dict()
    out = {name: value for name, value in rec.items() if name not in LATE_KEYS or value != LATE_KEYS[name]}
    if rec["dataset"] == "cifar10" and data.cifar10_copy() == "jpeg":
        out["data_copy"] = "jpeg"  # a model of the lossy copy is another model than one of the exact images
    if rec["train_data"] is not None:
        out["train_data"] = _hashed_spec(rec["train_data"])
    return out


def _hashed_spec(spec: dict) -> dict:
    """A constructed dataset's spec with its source recipe as :func:`_hashed` gives it."""
    spec = _spec(spec)
    return {**spec, "source": _hashed(spec["source"])}


def _spec(spec) -> dict:
    """A constructed dataset's spec as a plain dict (a :class:`Construction`'s :meth:`~Construction.as_dict`)."""
    return spec.as_dict() if isinstance(spec, Construction) else spec


def key(rec: dict) -> str:
    """Return a 16-hex-digit hash of the complete recipe (and the cache :data:`FORMAT`); a key of
    :data:`LATE_KEYS` at its default is left out, so that adding it kept the older models' keys."""
    return hashlib.sha256(_canonical({"format": FORMAT, "recipe": _hashed(rec)}).encode()).hexdigest()[:16]


def label(rec: dict) -> str:
    """Return a short human name: ``standard``, ``linf 0.3``, ``l2 2``, ``trades linf 0.3 b6``,
    ``standard on D_det``."""
    rec = recipe(rec)
    atk = rec.get("attack")
    if atk is None:
        name = "standard"
    else:
        name = f"{atk['norm']} {atk['eps']:.4g}"
        name = f"trades {name} b{rec['trades_beta']:g}" if rec.get("trades_beta") is not None else name
    return name if rec.get("train_data") is None else f"{name} on {data_label(rec['train_data'])}"


def path(rec: dict, root=None) -> Path:
    """Return where the model of ``rec`` is cached: ``<cache>/<dataset>-<arch>-<label>-<key>.pt``."""
    rec = recipe(rec)
    slug = label(rec).replace(" ", "-")
    return io.cache_dir(root) / f"{rec['dataset']}-{rec['arch']}-{slug}-{key(rec)}.pt"


COMPLETE_SIZES = data.COMPLETE_SIZES


_split = data.split


def _imagenet(rec: dict, train_split: bool, n: int | None):
    """Restricted ImageNet: a shuffling DataLoader over the training folder, or the first ``n``
    validation images stacked into tensors."""
    split = rec["train_split"] if train_split else "val"
    folder = data.restricted_imagenet(
        split,
        size=rec["image_size"],
        transform=None if train_split else data.imagenet_transform(False, rec["image_size"]),
    )
    data.check_request(
        rec["dataset"],
        n if not train_split else rec["n_train"],
        len(folder),
        train_split,
        held_by=f"the folder {folder.root}",
    )
    if not train_split:
        return data.test_set("restricted_imagenet", n, image_size=rec["image_size"])
    generator = torch.Generator().manual_seed(rec["seed"])
    if rec["n_train"] is not None:
        pick = torch.randperm(len(folder), generator=generator)[: rec["n_train"]].tolist()
        folder = torch.utils.data.Subset(folder, pick)
    workers = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
    return torch.utils.data.DataLoader(
        folder,
        batch_size=rec["batch_size"],
        shuffle=True,
        generator=generator,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )


def dataset(rec: dict, train_split: bool = True, n: int | None = None, device=None, root=None):
    """Return the recipe's data: the training set (a seeded random subset of ``n_train``) or the
    first ``n`` test examples (``None``: all), as ``(x, y)`` tensors in [0, 1] on the CPU.
    Restricted ImageNet's training set is a DataLoader instead (it does not fit in memory). A recipe
    with ``train_data`` trains on that constructed dataset (:func:`constructed`, from the cache under
    ``root`` or built on ``device``) and is tested on the real test set. A size the data cannot meet
    (``n_train`` or ``n`` above what is on disk, e.g. 10,000 CIFAR-10 test images from the 1,017 of a
    shortened copy, or below 1) raises ``ValueError`` (:func:`robustutils.data.check_request`) instead of shrinking."""
    if rec["dataset"] == "restricted_imagenet":
        return _imagenet(rec, train_split, n)
    if train_split and rec["train_data"] is not None:
        x, y = constructed(rec["train_data"], device=device, root=root)
        data.check_request(
            rec["dataset"],
            rec["n_train"],
            len(y),
            True,
            held_by=f"the constructed {data_label(rec['train_data'])}",
            fix="construct it from more images (the spec's n)",
        )
        return data.subset(x, y, rec["n_train"], generator=torch.Generator().manual_seed(rec["seed"]))
    if not train_split:
        return data.test_set(rec["dataset"], n)
    x, y = _split(rec["dataset"], train_split)
    data.check_request(rec["dataset"], rec["n_train"], len(y), train_split)
    return data.subset(x, y, rec["n_train"], generator=torch.Generator().manual_seed(rec["seed"]))


def training_attack(rec: dict) -> attacks.PGD | None:
    """Return the recipe's training attack as :class:`robustutils.attacks.PGD`, or ``None``."""
    atk = rec["attack"]
    return None if atk is None else attacks.PGD(**atk)


def initial_model(rec: dict) -> torch.nn.Module:
    """Return the recipe's untrained model on the CPU, its initial weights drawn from ``rec["seed"]``."""
    set_seed(rec["seed"])  # the initial weights are part of the recipe
    model = models.build(rec["arch"], **rec["arch_kwargs"])
    return model.to(memory_format=torch.channels_last) if rec["channels_last"] else model


def fit_settings(rec: dict) -> dict:
    """Return the keyword arguments of :func:`robustutils.train.fit` that train ``rec`` (all but the
    training data and ``callbacks``): its schedule, the training attack, the loss (TRADES when
    ``trades_beta`` is set), the training-set augmentation (``augment``) and bf16 autocast (``amp``)."""
    loss = train.madry_loss if rec["trades_beta"] is None else trades.TradesLoss(rec["trades_beta"])
    return {
        "epochs": rec["epochs"],
        "batch_size": rec["batch_size"],
        "attack": training_attack(rec),
        "optimizer": rec["optimizer"],
        "lr": rec["lr"],
        "weight_decay": rec["weight_decay"],
        "schedule": rec["schedule"],
        "eps_ramp": rec["eps_ramp"],
        "loss": loss,
        "seed": rec["seed"],
        "augment": rec["augment"],
        "amp": rec["amp"],
    }


def fit_callbacks(rec: dict, progress: bool) -> list:
    """Return the :func:`robustutils.train.fit` callbacks of ``rec``: with ``monitor_n``, a
    :class:`~robustutils.train.Monitor` of that many test examples under PGD-20 at the training eps
    (clean accuracy only for standard training); with ``progress``, a :class:`~robustutils.train.Progress`."""
    callbacks = []
    if rec["monitor_n"]:
        attack = training_attack(rec)
        eval_attack = None if attack is None else attacks.PGD(eps=attack.eps, steps=20, norm=attack.norm)
        callbacks.append(train.Monitor(*dataset(rec, train_split=False, n=rec["monitor_n"]), eval_attack))
    if progress:
        callbacks.append(train.Progress())
    return callbacks


#: The modules whose code decides what a recipe trains, hashed by :func:`code_fingerprint`.
TRAINING_CODE = ("attacks", "constructed", "data", "models", "train", "trades")


def _without_docstrings(source: str) -> str:
    """The syntax tree of Python ``source`` without its docstrings, dumped as text."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Return a 12-hex-digit hash of the code that trains a model: the syntax trees of the modules
    of :data:`TRAINING_CODE` without their docstrings, so that editing a comment or a docstring keeps
    it and any change to the code changes it. Recorded in every model's metadata by :func:`get`."""
    digest = hashlib.sha256()
    for module in TRAINING_CODE:
        digest.update(_without_docstrings((Path(__file__).parent / f"{module}.py").read_text()).encode())
    return digest.hexdigest()[:12]


def fit_recorded(model: torch.nn.Module, rec: dict, train_data, callbacks: list) -> dict:
    """Train ``model`` by recipe dict ``rec`` on ``train_data`` (:func:`robustutils.train.fit`'s
    ``data``) and return the metadata a cached model keeps: recipe, the dataset's title
    (:func:`robustutils.data.title`, e.g. "CIFAR-10 (JPEG copy)"), history, ``train_time_s``
    (seconds), device, torch version and :func:`code_fingerprint`."""
    start = time.perf_counter()
    history = train.fit(model, train_data, **fit_settings(rec), callbacks=callbacks)
    return {
        "recipe": rec,
        "data": data.title(rec["dataset"]),
        "history": history,
        "train_time_s": time.perf_counter() - start,
        "device": str(next(model.parameters()).device),
        "torch": torch.__version__,
        "code": code_fingerprint(),
    }


def _fit(model: torch.nn.Module, rec: dict, progress: bool, root=None) -> dict:
    train_data = dataset(rec, device=next(model.parameters()).device, root=root)
    return fit_recorded(model, rec, train_data, fit_callbacks(rec, progress))


def _show_progress(progress: bool | None) -> bool:
    """``progress``, or by default on unless the environment sets ``TQDM_DISABLE`` (to anything but 0)."""
    return progress if progress is not None else os.environ.get("TQDM_DISABLE", "0") in ("", "0")


def _resolve(model, profile: str | None, want=Recipe) -> tuple[str, dict]:
    """``(name, plain dict)`` of a registry name (at ``profile``), a :class:`Recipe` or a recipe dict
    (:class:`Construction` or spec dict with ``want=Construction``)."""
    if isinstance(model, str):
        if profile is None:
            raise ValueError(f"{model!r} is a registry name: give the profile too, e.g. zoo.get({model!r}, PROFILE)")
        found = registry.recipe(model, profile) if want is Recipe else registry.construction(model, profile)
        return model, found.as_dict()
    if want is Recipe:
        rec = recipe(model)
        return label(rec), rec
    spec = _spec(model)
    return data_label(spec), spec


def _check_code(name: str, meta: dict, target: Path) -> None:
    trained_by, now = meta.get("code"), code_fingerprint()
    if trained_by != now:
        warnings.warn(
            f"{name}: the cached model was trained by other code (fingerprint {trained_by or 'not recorded'}, "
            f"now {now}: robustutils/{{{','.join(TRAINING_CODE)}}}.py changed since); a retrain may give "
            f"other numbers. Delete {target.name} from the cache folder ($ROBUSTUTILS_CACHE) to retrain it.",
            UserWarning,
            stacklevel=3,
        )


def get(
    model, profile: str | None = None, *, device=None, progress: bool | None = None, root=None
) -> tuple[torch.nn.Module, dict]:
    """Return ``(model, meta)`` for a registry name: loaded from the cache, or trained now and cached.

    Args:
        model: a name of :mod:`robustutils.registry` (``"mnist/linf-0.3"``), or a
            :class:`~robustutils.registry.Recipe` (or recipe dict, :func:`recipe`).
        profile: the profile whose registry ``model`` names (``"ci"``; needed for a name).
        device: where the model is returned (default: the GPU when present).
        progress: print a line before training and show training progress; by default on, unless
            ``TQDM_DISABLE`` is set (as ``make book`` does: the rendered page does not depend on
            whether a model was in the cache).
        root: the cache folder (default ``$ROBUSTUTILS_CACHE``).

    Returns:
        The model in eval mode, and ``meta``: the recipe, the per-epoch ``history`` of
        :func:`robustutils.train.fit`, ``train_time_s`` (seconds), the device and torch version it
        trained on and ``code``, the :func:`code_fingerprint` of the code that trained it.

    Raises:
        KeyError: an unknown name (the message lists the closest ones).
        ValueError: a dataset's name, a name without a profile, or a training size the data on disk
            cannot meet (:func:`robustutils.data.check_request`).

    A cached model trained by other code than this (its ``code`` differs) is loaded with a
    ``UserWarning`` that says how to retrain it. The caller's random state is left as it was, so
    that what follows does not depend on whether the model came from the cache.

    Examples::

        model, meta = zoo.get("mnist/linf-0.3", "ci")
        meta["history"][-1]["test_robust_acc"]     # PGD-20 accuracy after the last epoch
    """
    name, rec = _resolve(model, profile)
    device = pick_device(device)
    target = path(rec, root)
    progress = _show_progress(progress)
    if progress and not target.is_file():
        print(f"training {name} (not in the cache)", flush=True)
    fresh = not target.is_file()
    # Loading or training leaves the caller's random state as it was: a chapter's numbers do not
    # depend on whether its models came from the cache.
    with keep_random_state(device):
        net, meta = io.load_or_train(
            target, lambda: initial_model(rec), lambda m: _fit(m, rec, progress, root), device=device
        )
    if not fresh:
        _check_code(name, meta, target)
    return laid_out(net, rec), meta


#: Architectures whose attacks run faster on a CPU with their weights in channels-last memory
#: format (the input gradients of these small CNNs, about 1.2-1.4x in float32); :func:`get` returns
#: them so laid out there. The values are the same; only the order of the arithmetic differs.
CHANNELS_LAST_ON_CPU = ("mnist_cnn", "cifar_cnn")


def laid_out(net: torch.nn.Module, rec: dict) -> torch.nn.Module:
    """Return ``net`` (in place) with channels-last weights when its recipe asks for them
    (``channels_last``) or when it is one of :data:`CHANNELS_LAST_ON_CPU` on a CPU; else as it is."""
    device = next(net.parameters()).device
    if rec["channels_last"] or (device.type == "cpu" and rec["arch"] in CHANNELS_LAST_ON_CPU):
        return net.to(memory_format=torch.channels_last)
    return net


def get_all(names, profile: str, *, label=None, device=None, progress: bool = False) -> dict[str, torch.nn.Module]:
    """Return ``{name: model}`` for registry ``names`` at ``profile`` (:func:`get`, in order), keyed by
    ``label(name)`` when ``label`` is given (e.g. :func:`robustutils.perception.label`)."""
    return {(label or str)(name): get(name, profile, device=device, progress=progress)[0] for name in names}


def eval_attacks(profile: str, norm: str, eps: float) -> dict:
    """Return the evaluation attacks of ``profile`` at ``norm`` and ``eps`` (pixel units), in the
    order they run: our PGD with the profile's steps and restarts, then each of the profile's
    AutoAttack attacks (:func:`robustutils.independent.suite`)."""
    return independent.suite(eps, norm, **profiles.config(profile, "eval")["suite"])


def cached_cascade(
    model,
    x,
    y,
    attacks_by_name: dict,
    key: dict,
    *,
    name: str,
    stem: str | None = None,
    batch_size: int = 500,
    root=None,
) -> dict:
    """Return :func:`robustutils.evaluate.cascade` of ``model`` on ``(x, y)`` (images in [0, 1]
    [N, C, H, W], labels [N]) under ``attacks_by_name``, with ``worst_acc`` (the last stage) and
    ``flags`` (AutoAttack's sanity-check warnings, :class:`robustutils.independent.AutoAttackFlag`),
    cached as :func:`robustutils.zoo.robustness` caches its results: JSON under
    ``<cache>/evaluations/<stem>-<digest>.json`` (``stem`` defaults to ``name``; ``name`` prefixes the
    flags), the digest a hash of ``key`` (plain data naming the model and its weights or training code)
    with the attacks' settings and a hash of the images and labels. The attacks' random
    starts are seeded from the digest and the caller's random state is left as it was, so the number
    does not depend on what ran before. Flags are shown again when the result comes from the cache.
    ``batch_size``: images per forward pass (the attacks' restarts included). Raises ``ValueError`` for
    attacks that are not :class:`robustutils.attacks.Attack` values, and as the cascade does for bad
    inputs."""
    if not isinstance(attacks_by_name, dict) or not all(
        isinstance(a, attacks.Attack) for a in attacks_by_name.values()
    ):
        raise ValueError(
            "attacks_by_name maps a name to an attack with settings() (robustutils.attacks.Attack), e.g. "
            f"zoo.eval_attacks(profile, 'linf', 8 / 255); got {type(attacks_by_name).__name__}"
        )
    if not attacks_by_name:
        raise ValueError(
            "attacks_by_name is empty: give at least one attack, e.g. zoo.eval_attacks(profile, 'linf', 0.3)"
        )
    settings = {label: attack.settings() for label, attack in attacks_by_name.items()}
    images = io.tensor_digest(x, y)  # the result holds for these images only
    digest = hashlib.sha256(_canonical({"key": key, "attacks": settings, "images": images}).encode()).hexdigest()[:16]
    target = io.cache_dir(root) / "evaluations" / f"{(stem or name).replace('/', '-')}-{digest}.json"
    if target.is_file():
        result = json.loads(target.read_text())
        for flag in result["flags"]:
            warnings.warn(independent.AutoAttackFlag(f"{name}: {flag}"), stacklevel=2)
        return result
    device = next(model.parameters()).device
    with keep_random_state(device), warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always", independent.AutoAttackFlag)
        torch.manual_seed(int(digest, 16) % 2**63)
        result = evaluate.cascade(model, x, y, attacks_by_name, batch_size=batch_size)
    flags = list(dict.fromkeys(str(w.message) for w in raised if issubclass(w.category, independent.AutoAttackFlag)))
    for w in raised:  # shown, never swallowed: catch_warnings only gathered them
        if issubclass(w.category, independent.AutoAttackFlag):
            warnings.warn(independent.AutoAttackFlag(f"{name}: {w.message}"), stacklevel=2)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for flag in independent.square_flags(result["robust_acc"]):
        flags.append(flag)
        warnings.warn(independent.AutoAttackFlag(f"{name}: {flag}"), stacklevel=2)
    result = {k: v for k, v in result.items() if k != "robust"}  # the cache keeps the accuracies, not the mask
    result = {**result, "worst_acc": list(result["robust_acc"].values())[-1], "flags": flags}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1))
    return result


def robustness(
    model,
    profile: str | None = None,
    *,
    at: tuple[str, float] | None = None,
    attacks_by_name: dict | None = None,
    n_test: int | None = None,
    device=None,
    root=None,
) -> dict:
    """Return the robust accuracy of a registry model on its first ``n_test`` test examples under
    attacks run as a cascade (:func:`robustutils.evaluate.cascade`): ``{"n", "clean_acc",
    "robust_acc": {name: fraction}, "worst_acc", "attacks": {name: settings}, "flags": [str]}``.
    Each attack runs on the points every earlier one left robust, so ``robust_acc`` of the first is
    its own accuracy and of each later one the worst case over it and all before it; ``worst_acc``
    is the last. ``flags`` are the warnings the attacks raised (AutoAttack's sanity checks,
    :class:`robustutils.independent.AutoAttackFlag`); they are raised again when the result comes
    from the cache.

    ``at=(norm, eps)`` evaluates with the profile's attacks (:func:`eval_attacks`: our PGD, then
    AutoAttack), or ``attacks_by_name`` gives them in order; ``n_test`` defaults to the profile's
    ``eval`` ``n_test``. The
    model is loaded by :func:`get`. The result is cached as JSON, keyed by the entry's recipe, the
    fingerprint of the code that trained the model, the attacks' settings and ``n_test``; the
    attacks' random starts are seeded from that key, so the result does not depend on what ran
    before, and the caller's random state is left as it was. An ``n_test`` the test set cannot meet
    raises ``ValueError`` (:func:`robustutils.data.check_request`), even when cached.
    """
    if (at is None) == (attacks_by_name is None):
        raise ValueError("give the threat model as at=(norm, eps) or the attacks as attacks_by_name, not both")
    if at is not None:
        if not (isinstance(at, (tuple, list)) and len(at) == 2 and isinstance(at[0], str)):
            raise ValueError(f"at is the threat model as a pair (norm, eps), e.g. at=('linf', 0.3); got {at!r}")
        if profile is None:
            raise ValueError("at=(norm, eps) uses the profile's evaluation attacks: give the profile")
        attacks_by_name = eval_attacks(profile, *at)
    if n_test is None:
        if profile is None:
            raise ValueError("give n_test, or the profile whose eval n_test applies")
        n_test = profiles.config(profile, "eval")["n_test"]
    if not isinstance(attacks_by_name, dict) or not all(
        isinstance(a, attacks.Attack) for a in attacks_by_name.values()
    ):
        raise ValueError(
            "attacks_by_name maps a name to an attack with settings() (robustutils.attacks.Attack), "
            "e.g. {'pgd': attacks.PGD(eps=0.3, steps=40)}; "
            f"got {type(attacks_by_name).__name__}"
        )
    name, rec = _resolve(model, profile)
    if rec["dataset"] in NUM_CLASSES:  # in memory: check the size before trusting a cached file
        data.check_request(rec["dataset"], n_test, len(_split(rec["dataset"], False)[1]), False)
    net, meta = get(model if isinstance(model, str) else rec, profile, device=device, root=root)
    x, y = dataset(rec, train_split=False, n=n_test)
    key_ = {"model": key(rec), "code": meta.get("code")}
    return cached_cascade(net, x, y, attacks_by_name, key_, name=name, stem=key(rec), root=root)


def adversarial(base: dict, norm: str, eps: float, steps: int, step_factor: float | None = None) -> dict:
    """Return the recipe dict of :func:`robustutils.registry.adversarial` (``eps`` in pixel units)."""
    return registry.adversarial(Recipe.from_dict(recipe(base)), norm, eps, steps, step_factor).as_dict()


def standard_on(base: dict, train_data: dict | None = None, n_train: int | None = None, **changes) -> dict:
    """Return the recipe dict of :func:`robustutils.registry.standard_on`."""
    spec = None if train_data is None else Construction.from_dict(_spec(train_data))
    return registry.standard_on(Recipe.from_dict(recipe(base)), spec, n_train, **changes).as_dict()


# Ilyas et al.'s constructed datasets (robustutils.constructed), cached like the models.
CONSTRUCTIONS = registry.CONSTRUCTIONS
NUM_CLASSES = registry.NUM_CLASSES


def construction(
    kind: str, source: dict, *, n: int | None, steps: int, step_size: float, eps: float | None = None, seed: int = 0
) -> dict:
    """Return the spec dict of a :class:`robustutils.registry.Construction` (which checks it;
    ``eps`` and ``step_size`` in pixel units)."""
    return Construction(kind, Recipe.from_dict(recipe(source)), n, steps, step_size, eps, seed).as_dict()


def data_label(spec: dict) -> str:
    """Return Ilyas et al.'s name of a constructed dataset: ``D_R``, ``D_NR``, ``D_rand`` or ``D_det``."""
    spec = _spec(spec)
    if spec["kind"] == "invert":
        return "D_NR" if spec["source"]["attack"] is None else "D_R"
    return f"D_{spec['kind']}"


def data_path(spec: dict, root=None) -> Path:
    """Return where the dataset of ``spec`` is cached: ``<cache>/datasets/<dataset>-<name>-<key>.pt``."""
    spec = _spec(spec)
    digest = hashlib.sha256(_canonical({"format": FORMAT, "spec": _hashed_spec(spec)}).encode()).hexdigest()[:16]
    return io.cache_dir(root) / "datasets" / f"{spec['source']['dataset']}-{data_label(spec)}-{digest}.pt"


def _construct(spec: dict, device, progress: bool, root) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset(recipe(spec["source"]))
    data.check_request(
        spec["source"]["dataset"],
        spec["n"],
        len(y),
        True,
        held_by="the source recipe's training set",
        setting="the construction's n",
        fix="train the source on more images (its n_train)",
    )
    x, y = x[: spec["n"]], y[: spec["n"]]
    model, _ = get(spec["source"], device=device, progress=progress, root=root)
    settings = {"steps": spec["steps"], "step_size": spec["step_size"], "seed": spec["seed"], "progress": progress}
    if spec["kind"] == "invert":
        return constructions.invert(model, x, y, **settings)
    return constructions.relabel(
        model, x, y, mode=spec["kind"], eps=spec["eps"], num_classes=NUM_CLASSES[spec["source"]["dataset"]], **settings
    )


@functools.lru_cache(maxsize=8)
def _read_constructed(target: Path) -> tuple[torch.Tensor, torch.Tensor, dict]:
    # Files are named after the hash of their spec and never rewritten: one read per process.
    return io.load_data(target)


def constructed(
    spec, profile: str | None = None, *, device=None, progress: bool | None = None, root=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ``(x, y)`` CPU tensors (images in [0, 1], int64 labels) of a constructed dataset:
    a registry name at ``profile`` (``"mnist/D_R(l2-2)"``) or a :class:`~robustutils.registry.Construction` (or its spec
    dict). It is built on ``device`` (default: the GPU when present) the first time and cached; the
    source model comes from :func:`get`. The build time in seconds is kept in the cache file's meta."""
    name, spec = _resolve(spec, profile, want=Construction)
    target = data_path(spec, root)
    if target.is_file():
        return _read_constructed(target)[:2]
    progress = _show_progress(progress)
    if progress:
        print(f"building {name} from {label(spec['source'])} (not in the cache)", flush=True)
    device = pick_device(device)
    start = time.perf_counter()
    with keep_random_state(device):
        x, y = _construct(spec, device, progress, root)
    io.save_data(
        target,
        x,
        y,
        {"spec": spec, "build_time_s": time.perf_counter() - start, "device": str(device), "code": code_fingerprint()},
    )
    return x, y


def constructed_meta(spec, profile: str | None = None, root=None) -> dict:
    """Return the metadata of a cached constructed dataset (a registry name at ``profile``, or a
    spec): its spec, ``build_time_s``, device and code fingerprint."""
    return _read_constructed(data_path(_resolve(spec, profile, want=Construction)[1], root))[2]
