"""Ilyas et al.'s D_R and D_NR built from the papers' own published CIFAR-10 models (chapter 6 at the
``colab`` and ``full`` profiles), and a standard model trained on each.

The constructions are :mod:`robustutils.constructed`'s (:func:`~robustutils.constructed.invert`); the
models are RobustBench's releases of the Madry lab's ResNet-50s (:mod:`robustutils.published`). The
datasets, the models trained on them and their evaluations are cached like the book's own
(:mod:`robustutils.zoo`), keyed by a hash of the published weights, so stand-in checkpoints never
pass for the real ones.
"""

import dataclasses
import hashlib
import json
import time

import torch

from . import data, io, profiles, published, registry, train, zoo
from .constructed import PAPER, invert, start_images
from .evaluate import evaluate
from .runtime import keep_random_state, pick_device

#: The published CIFAR-10 models that D_R and D_NR are built from, as ``(RobustBench name, threat model)``.
#: Ilyas et al. (2019, Appendix) inverted a ResNet-50 adversarially trained at ℓ2 ε 0.5 (RobustBench's
#: ``Engstrom2019Robustness`` ℓ2 is the robustness library's release of it) and a standard ResNet-50;
#: RobustBench's ``Standard`` is a WideResNet-28-10.
PUBLISHED_SOURCES = {"D_R": ("Engstrom2019Robustness", "L2"), "D_NR": ("Standard", "Linf")}
_NORMS = {"Linf": "ℓ∞", "L2": "ℓ2"}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def published_inversion(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    label: str,
    steps: int,
    step_size: float,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
    root=None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return ``(x_r, y, seconds)``: :func:`robustutils.constructed.invert` of the images ``x`` [N, 3, 32, 32] in [0, 1]
    through a published model (:func:`robustutils.published.load`), and the seconds the
    build took. The dataset is cached under ``<cache>/datasets/cifar10-published-<label>-<key>.pt``
    (``label``: ``"D_R"`` or ``"D_NR"``), keyed by the model's source and
    :func:`robustutils.published.weights_fingerprint`, a hash of ``(x, y)`` and the settings
    (``steps`` steps of ``step_size``, pixel units; ``seed`` picks each start image)."""
    key = {
        "source": getattr(model, "source", type(model).__name__),
        "weights": published.weights_fingerprint(model),
        "images": io.tensor_digest(x, y),
        "steps": steps,
        "step_size": step_size,
        "seed": seed,
    }
    target = io.cache_dir(root) / "datasets" / f"cifar10-published-{label}-{_digest(key)}.pt"
    if target.is_file():
        x_r, y_r, meta = io.load_data(target)
        return x_r, y_r, meta["build_time_s"]
    start = time.perf_counter()
    with keep_random_state(_device(model)):
        x_r, y_r = invert(
            model, x, y, steps=steps, step_size=step_size, seed=seed, batch_size=batch_size, progress=progress
        )
    seconds = time.perf_counter() - start
    io.save_data(target, x_r, y_r, {"key": key, "build_time_s": seconds, "device": str(_device(model))})
    return x_r, y_r, seconds


def published_recipe(profile: str, n: int):
    """Return the :class:`~robustutils.registry.Recipe` that trains a standard model on ``n``
    constructed images: the book's standard CIFAR-10 recipe at ``profile`` (``cifar10/standard``), with
    its epochs multiplied by how many times fewer images it has than that recipe trains on, so that it
    takes about as many gradient steps (as chapter 3's low-data models do)."""
    base = registry.recipe(registry.model_name("cifar10"), profile)
    full = base.n_train if base.n_train is not None else len(data.split("cifar10", True)[1])
    return registry.standard_on(base).replace(epochs=base.epochs * max(1, full // n))


def train_published(
    profile: str, x: torch.Tensor, y: torch.Tensor, *, label: str, device=None, progress: bool = False, root=None
) -> tuple[torch.nn.Module, dict]:
    """Return ``(model, meta)``: a fresh model trained by :func:`published_recipe` on ``(x, y)`` (images
    in [0, 1], labels [N]), loaded from the cache when it was trained before (the file is named after
    ``label`` and a hash of the recipe and of ``(x, y)``). ``meta`` is :func:`robustutils.zoo.get`'s:
    recipe, history, ``train_time_s``, device, torch version and code fingerprint."""
    rec = published_recipe(profile, len(y)).as_dict()
    digest = _digest({"recipe": zoo.key(rec), "data": io.tensor_digest(x, y)})
    target = io.cache_dir(root) / f"cifar10-{rec['arch']}-standard-on-published-{label}-{digest}.pt"

    def fit(model):
        return zoo.fit_recorded(model, rec, (x, y), [train.Progress()] if progress else [])

    device = pick_device(device)
    with keep_random_state(device):
        return io.load_or_train(target, lambda: zoo.initial_model(rec), fit, device=device)


@dataclasses.dataclass(frozen=True)
class PublishedStudy:
    """Ilyas et al.'s D_R and D_NR built from the published CIFAR-10 models (:data:`PUBLISHED_SOURCES`)
    at one profile, and a standard model trained on each (:func:`published_study`).

    ``real`` is ``(x, y)``, the first ``n`` CIFAR-10 training images (also the baseline ``D``),
    ``start`` the images the inversions start from; ``sets[label]`` is ``(x, y)`` of ``"D"``, ``"D_R"``
    and ``"D_NR"``, ``built[label]`` the seconds each construction took, ``trained[label]`` the
    :func:`train_published` model's ``meta``; ``rows`` the ``constructed.TABLES`` ``"training"`` rows and
    ``robust[label]`` ``(threat, result)`` of :func:`robustutils.zoo.cached_cascade`, for
    :func:`robustutils.report.robustness_report`."""

    profile: str
    settings: dict
    real: tuple
    start: torch.Tensor
    sets: dict
    built: dict
    trained: dict
    rows: list
    robust: dict

    def describe(self) -> str:
        """Return what was built (with the seconds each build took) and trained, in four short lines."""
        s, rec = self.settings, self.trained["D"]["recipe"]
        lines = []
        for label, (name, threat_model) in PUBLISHED_SOURCES.items():
            e = published.entry(name, threat_model=threat_model)
            radius = f"{round(e.eps * 255)}/255" if threat_model == "Linf" else f"{e.eps:g}"
            trained = "standard" if name == "Standard" else f"{_NORMS[threat_model]} {radius}"
            lines.append(f"{label}: through {name} ({e.architecture}, {trained}), built in {self.built[label]:.0f} s")
        return "\n".join(
            [
                f"CIFAR-10, the first {len(self.real[1]):,} training images, {s['steps']} steps of {s['step_size']:g}",
                *lines,
                f"trained on each: the book's standard recipe at {self.profile}, {rec['arch']}, {rec['epochs']} epochs",
            ]
        )

    def figure_rows(self, k: int = 10) -> dict[str, torch.Tensor]:
        """Return the rows of the figure: ``k`` real images, their start images and their D_R and D_NR images."""
        return {
            "image x": self.real[0][:k],
            "start x_0": self.start[:k],
            **{label: self.sets[label][0][:k] for label in PUBLISHED_SOURCES},
        }

    def verdicts(self) -> dict:
        """Return Ilyas et al.'s two claims on these sets for :func:`robustutils.constructed.record`, not asserted: the
        D_R model is more robust than the D_NR model and than the D model (worst case at the table's ε)."""
        worst = {r["set"]: r["worst"] for r in self.rows}
        eps = self.rows[0]["eps"]
        scale = f"{len(self.real[1]):,} images, {self.settings['steps']} steps"
        claims = [
            {
                "key": "ch06-published-dr-beats-dnr",
                "text": "On CIFAR-10, standard training on the D_R built through the published ℓ2-robust ResNet-50 "
                "gives a more robust model than standard training on the D_NR built through the published standard "
                f"model ({scale}; not asserted: no run with the published weights has checked it).",
                "paper": "48.2% (D_R) vs 0.8% (D_NR) robust accuracy at ℓ2 ε 0.25 (Ilyas et al. 2019, Table 7)",
                "measured": f"{worst['D_R']:.1%} (D_R) vs {worst['D_NR']:.1%} (D_NR) at ℓ2 ε {eps:g}",
                "held": worst["D_R"] > worst["D_NR"],
                "checked": False,
            },
            {
                "key": "ch06-published-dr-beats-d",
                "text": "On CIFAR-10, standard training on that D_R gives a more robust model than standard training "
                f"on the real images it was made from ({scale}; not asserted).",
                "paper": "standard training on D_R gives a robust model, on D it does not (Ilyas et al. 2019, "
                "section 3.1, Table 7)",
                "measured": f"{worst['D_R']:.1%} (D_R) vs {worst['D']:.1%} (D) at ℓ2 ε {eps:g}",
                "held": worst["D_R"] > worst["D"],
                "checked": False,
            },
        ]
        return {"claims": claims}


def published_study(profile: str, *, device=None, progress: bool = False, root=None) -> PublishedStudy:
    """Return the :class:`PublishedStudy` of ``profile``'s ``constructed`` ``published`` settings
    (``n`` training images, ``None``: all; ``steps``, ``step_size``, ``seed``, ``batch_size``): D_R and
    D_NR by :func:`published_inversion` through the models of :data:`PUBLISHED_SOURCES`
    (:func:`robustutils.published.load`), a standard model on each and on the real images
    (:func:`train_published`), its clean accuracy on the profile's ``n_measure`` test images and its
    worst case of our PGD and AutoAttack at ℓ2 ``eval_eps`` (Ilyas et al.'s 0.25) on the ``eval``
    ``n_test`` test images, cached. Raises ``ValueError`` at a profile without ``published`` settings
    (smoke and ci) or an ``n`` the training set cannot meet."""
    cfg = profiles.config(profile, "constructed")
    s = cfg.get("published")
    if not s:
        raise ValueError(
            f"profile {profile!r} does not build datasets from the published models (they need a download and a GPU): "
            "use 'colab' or 'full'"
        )
    x_all, y_all = data.split("cifar10", True)
    data.check_request("cifar10", s["n"], len(y_all), True, setting="constructed.published.n")
    x, y = x_all[: s["n"]], y_all[: s["n"]]
    sets, built = {"D": (x, y)}, {"D": 0.0}
    for label, (name, threat_model) in PUBLISHED_SOURCES.items():
        source = published.load(name, threat_model=threat_model, device=device)
        x_r, y_r, built[label] = published_inversion(
            source,
            x,
            y,
            label=label,
            steps=s["steps"],
            step_size=s["step_size"],
            seed=s["seed"],
            batch_size=s["batch_size"],
            progress=progress,
            root=root,
        )
        sets[label] = (x_r, y_r)
        del source
    eps = cfg["eval"]["cifar10"]["eval_eps"]
    x_test, y_test = data.test_set("cifar10", cfg["n_measure"])
    x_eval, y_eval = data.test_set("cifar10", profiles.config(profile, "eval")["n_test"])
    trained, rows, robust = {}, [], {}
    for label, (xs, ys) in sets.items():
        model, meta = train_published(profile, xs, ys, label=label, device=device, progress=progress, root=root)
        key = {"model": f"standard on published {label}", "weights": published.weights_fingerprint(model)}
        result = zoo.cached_cascade(
            model, x_eval, y_eval, zoo.eval_attacks(profile, "l2", eps), key, name=f"published-{label}", root=root
        )
        trained[label], robust[f"standard on {label}"] = meta, (f"ℓ2 ε {eps:g}", result)
        paper_clean, paper_robust = PAPER[label]
        rows.append(
            {
                "set": label,
                "clean": evaluate(model, x_test, y_test)["clean_acc"],
                "eps": eps,
                "worst": result["worst_acc"],
                "paper_clean": paper_clean,
                "paper_robust": paper_robust,
            }
        )
    start = start_images(x, s["seed"])
    return PublishedStudy(profile, dict(s), (x, y), start, sets, built, trained, rows, robust)
