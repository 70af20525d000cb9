"""Ilyas et al. (2019)'s constructed datasets: robust, non-robust and adversarially relabelled.

- **D_R / D_NR** (their section 3.1): each training image ``x`` is replaced by an image ``x_r``
  whose penultimate-layer representation matches that of ``x``, found by normalised l_2
  gradient descent from a *different*, randomly chosen training image. Through a robust model
  ``x_r`` keeps only the features that model uses (D_R); through a standard model it also carries
  the non-robust ones (D_NR). The label stays ``y``. See :func:`invert`.
- **D_rand / D_det** (their section 3.2): each image is pushed by a small targeted l_2 PGD on a
  standard model toward a target ``t``, uniformly random (D_rand) or ``(y + 1) mod C`` (D_det),
  and relabelled ``t``. See :func:`relabel`.

Every function works in large batches on the model's device and returns CPU tensors in [0, 1].
:func:`robustutils.zoo.constructed` caches the datasets like the models.
"""

import dataclasses
import math

import numpy as np
import torch

from . import data, profiles, registry
from .attacks import L2, pgd
from .evaluate import eps_sweep, evaluate
from .perception import target_rate
from .report import markdown_table
from .runtime import progress as progress_bar

MODES = ("rand", "det")


def representation_distance(model: torch.nn.Module, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """Return ``||model.representation(x) - goal||_2`` per example [N] (units of the representation)."""
    return (model.representation(x) - goal).flatten(1).norm(dim=1)


@torch.no_grad()
def representation(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the eval-mode penultimate-layer features [N, D] of ``x`` (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        return model.representation(x)
    finally:
        model.train(was_training)


def relative_distance(model: torch.nn.Module, x: torch.Tensor, x_goal: torch.Tensor) -> torch.Tensor:
    """Return ``||g(x) - g(x_goal)||_2 / ||g(x_goal)||_2`` per example [N] on the CPU, g being the
    eval-mode ``model.representation``: 0 when the representations match."""
    device = _device(model)
    g, goal = representation(model, x.to(device)), representation(model, x_goal.to(device))
    return ((g - goal).norm(dim=1) / goal.norm(dim=1).clamp_min(1e-12)).cpu()


def other_indices(n: int, generator: torch.Generator) -> torch.Tensor:
    """Return, for each of ``n`` examples, the index [n] of a different example chosen uniformly."""
    if n < 2:
        raise ValueError(f"each image needs a different starting image: got a dataset of {n}")
    return (torch.arange(n) + torch.randint(1, n, (n,), generator=generator)) % n


def start_images(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Return the images :func:`invert` starts from with ``seed``: for each image of ``x``, another one."""
    return x[other_indices(len(x), torch.Generator().manual_seed(seed))]


def targets(y: torch.Tensor, mode: str, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return the new labels [N]: uniform over the classes (``"rand"``) or ``(y + 1) mod C`` (``"det"``)."""
    if mode == "det":
        return (y + 1) % num_classes
    if mode == "rand":
        return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)
    raise ValueError(f"unknown mode {mode!r}: choose one of {MODES}")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _in_batches(
    fn, tensors: tuple, batch_size: int | None, device: torch.device, desc: str, show: bool
) -> torch.Tensor:
    """Apply ``fn`` to aligned slices of ``tensors`` (moved to the device by ``fn``); return the
    results concatenated on the CPU. ``batch_size=None``: 1000 on a GPU, 250 on a CPU."""
    batch_size = batch_size or (1000 if device.type == "cuda" else 250)
    n = len(tensors[0])
    starts = range(0, n, batch_size)
    starts = progress_bar(starts, desc, total=len(starts)) if show else starts
    return torch.cat([fn(*(t[i : i + batch_size] for t in tensors)).cpu() for i in starts])


def invert_representation(
    model: torch.nn.Module, x_goal: torch.Tensor, x_start: torch.Tensor, *, steps: int, step_size: float
) -> torch.Tensor:
    """Return images in [0, 1] found by ``steps`` normalised l_2 gradient steps of ``step_size``
    (pixel units) from ``x_start`` that minimise ``||g(x_r) - g(x_goal)||_2``, g being
    ``model.representation``; per example the iterate with the smallest distance is kept.

    No ball constrains the search (its radius is the diagonal of the pixel cube); only [0, 1] does.
    """
    device = _device(model)
    x_goal, x_start = x_goal.to(device), x_start.to(device)
    diagonal = math.sqrt(x_start[0].numel())
    return pgd(
        model,
        x_start,
        representation(model, x_goal),
        eps=diagonal,
        steps=steps,
        step_size=step_size,
        norm="l2",
        random_start=False,
        targeted=True,
        loss_fn=representation_distance,
        use_best=True,
    )


def invert(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 1000,
    step_size: float = 0.1,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x_r, y)``: every image of ``x`` re-synthesised through ``model``'s representation
    (:func:`invert_representation`), each from another image of ``x`` picked with ``seed``.

    Through a robust model this is Ilyas et al.'s D_R, through a standard one D_NR; their CIFAR-10
    settings are the defaults (step 0.1, 1000 steps).
    """
    x_r = _in_batches(
        lambda g, s: invert_representation(model, g, s, steps=steps, step_size=step_size),
        (x, start_images(x, seed)),
        batch_size,
        _device(model),
        "inverting representations",
        progress,
    )
    return x_r, y.clone()


def relabel(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mode: str,
    eps: float = 0.5,
    steps: int = 100,
    step_size: float = 0.1,
    num_classes: int = 10,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x_adv, t)``: each image moved by targeted l_2 PGD on ``model`` (``steps`` steps of
    ``step_size``, within ``eps``, pixel units, no random start) toward its new label ``t``, from
    :func:`targets` with ``mode`` ``"rand"`` (D_rand) or ``"det"`` (D_det).

    Ilyas et al.'s CIFAR-10 settings are the defaults (eps 0.5, step 0.1, 100 steps).
    """
    t = targets(y, mode, num_classes, torch.Generator().manual_seed(seed))
    device = _device(model)

    def push(xb, tb):
        return pgd(
            model,
            xb.to(device),
            tb.to(device),
            eps=eps,
            steps=steps,
            step_size=step_size,
            norm="l2",
            random_start=False,
            targeted=True,
            use_best=False,
        )

    return _in_batches(push, (x, t), batch_size, device, f"relabelling ({mode})", progress), t


# --- The study of chapter 6: names, measurements, tables and verdicts ------------------------
# These functions take models and datasets already loaded (robustutils.zoo loads them by name);
# they measure and tabulate, and train or build nothing.

#: Ilyas et al.'s (2019) CIFAR-10 numbers at full scale, as (test accuracy, robust accuracy at l2
#: eps 0.25): Table 7 for D, D_R and D_NR (D: 95.25% and 4.49%; its Table 1 rounds D's test accuracy
#: to 95.3%), Table 1 for D_rand and D_det, which the paper does not attack (None).
PAPER = {
    "D": (0.9525, 0.0449),
    "D_R": (0.854, 0.482),
    "D_NR": (0.877, 0.008),
    "D_rand": (0.633, None),
    "D_det": (0.437, None),
}


def short(name: str) -> str:
    """Return a registry name without its dataset: ``"mnist/D_R(l2-2)"`` -> ``"D_R(l2-2)"``."""
    return name.split("/", 1)[1]


def _kind(set_name: str) -> str:
    """Ilyas et al.'s name of a set: ``"D_R(l2-2)"`` -> ``"D_R"``."""
    return set_name.split("(", 1)[0]


@dataclasses.dataclass(frozen=True)
class Study:
    """The registry names of Ilyas et al.'s study on one dataset at one profile (:func:`study`).

    ``inversions`` and ``relabellings`` map each constructed dataset (``"mnist/D_R(l2-2)"``, ...) to
    its source model's name; ``sources`` lists the source models, the standard one first and the
    most robust last; ``trained`` maps a set's short name (``"D"`` for the real images,
    ``"D_R(l2-2)"``, ...) to the standard model trained on it; ``transfer`` maps an architecture to
    its models trained on ``D`` and on ``D_det``; ``specs`` maps each constructed dataset to its
    :class:`~robustutils.registry.Construction`; ``observer`` (:data:`OBSERVERS`) is the robust model
    that stands in for a person's eye, trained apart from every source and at another radius than
    the relabelling ε. ``eval_eps`` and ``sweep`` (l2, pixel units) and
    ``asserted`` (whether the study's claims and checks stop the chapter when they fail, or are only
    reported) come from ``profiles.config(profile, "constructed")["eval"]``."""

    dataset: str
    profile: str
    specs: dict
    inversions: dict
    relabellings: dict
    sources: list
    trained: dict
    transfer: dict
    eval_eps: float
    sweep: list
    asserted: bool = True
    observer: str = ""

    @property
    def title(self) -> str:
        """The dataset's name in the text, e.g. ``"MNIST"`` or ``"CIFAR-10 (JPEG copy)"``
        (:func:`robustutils.data.title`)."""
        return data.title(self.dataset)

    @property
    def judge(self) -> str:
        """The most robust source model (its D_R is :attr:`best_r`)."""
        return self.sources[-1]

    @property
    def best_r(self) -> str:
        """The short name of the D_R built through :attr:`judge` (``"D_R(l2-3)"``)."""
        return next(short(n) for n, source in self.inversions.items() if source == self.judge)

    @property
    def datasets(self) -> list[str]:
        """The names of the constructed datasets (the inversions, then the relabellings)."""
        return [*self.inversions, *self.relabellings]

    @property
    def seed(self) -> int:
        """The constructions' seed (it picks each inversion's start image, :func:`start_images`)."""
        return self.specs[next(iter(self.inversions))].seed

    @property
    def robust_models(self) -> list[str]:
        """The models whose robust accuracy the chapter measures (the sources and the models
        trained on ``D``, D_R and D_NR)."""
        return [*self.sources, *(self.trained[k] for k in ["D", *map(short, self.inversions)])]

    def real_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the real training images ``(x, y)`` the constructions start from (CPU, [0, 1]):
        the first ``n`` of their source's seeded training subset, which ``D`` is too."""
        spec = self.specs[next(iter(self.inversions))]
        source = spec.source
        x, y = data.subset(
            *data.split(source.dataset, True), source.n_train, generator=torch.Generator().manual_seed(source.seed)
        )
        return x[: spec.n], y[: spec.n]

    def describe(self) -> str:
        """Return two short lines: the images and source models, then the construction settings."""
        inv, det = self.specs[next(iter(self.inversions))], self.specs[f"{self.dataset}/D_det"]
        return (
            f"{self.title}: {inv.n or 'all'} training images, sources {', '.join(map(short, self.sources))}\n"
            f"{self.title}: inversion {inv.steps} steps of {inv.step_size:g}; relabelling ℓ2 ε {det.eps:g}, "
            f"{det.steps} steps of {det.step_size:g}"
        )


def study(dataset: str, profile: str) -> Study:
    """Return the :class:`Study` of ``dataset`` (one of :func:`robustutils.registry.constructed_datasets`)
    at ``profile``: the constructed datasets ``registry.names(profile, f"{dataset}/D_*")``, their source
    models, the models trained on them and the transfer architectures. Raises ``ValueError`` for a
    dataset the profile does not construct."""
    if dataset not in registry.constructed_datasets(profile):
        raise ValueError(
            f"profile {profile!r} builds no constructed datasets of {dataset!r}: "
            f"choose one of {registry.constructed_datasets(profile)}"
        )
    specs = {n: registry.construction(n, profile) for n in registry.names(profile, f"{dataset}/D_*")}
    source = {n: registry.name_of(spec.source, profile) for n, spec in specs.items()}
    inversions = {n: s for n, s in source.items() if specs[n].kind == "invert"}
    standard = registry.model_name(dataset)
    robust = [s for s in inversions.values() if s != standard]
    trained = {k: f"{dataset}/standard-on-{k}" for k in ["D", *map(short, specs)]}
    transfer = {
        a: (f"{dataset}/{a}-on-D", f"{dataset}/{a}-on-D_det") for a in registry.transfer_archs(dataset, profile)
    }
    ev = profiles.config(profile, "constructed")["eval"][dataset]
    return Study(
        dataset,
        profile,
        specs,
        inversions,
        {n: s for n, s in source.items() if n not in inversions},
        [standard, *robust],
        trained,
        transfer,
        ev["eval_eps"],
        list(ev["sweep"]),
        ev.get("asserted", True),
        _observer(dataset, profile, specs, source),
    )


#: Per dataset, the registry name of the robust model that judges whether constructed images still
#: show their class: not a source of any construction, and trained against another ℓ2 radius than the
#: relabelling ε (a model trained at that very radius would be the one observer the relabelling
#: perturbation is sized to leave unmoved). MNIST: chapter 4's robust judge (ℓ2 2, seed 1; the MNIST
#: relabelling radius is 3); CIFAR-10: chapter 3's ℓ2 ε 1 model (relabelling radius 0.5).
OBSERVERS = {"mnist": "mnist/l2-2-seed1", "cifar10": "cifar10/l2-1"}


def _observer(dataset: str, profile: str, specs: dict, source: dict) -> str:
    name = OBSERVERS[dataset]
    attack = registry.recipe(name, profile).attack
    radii = {spec.eps for spec in specs.values() if spec.kind != "invert"}
    if name in source.values() or attack is None or attack["norm"] != "l2" or attack["eps"] in radii:
        raise ValueError(
            f"{name} cannot observe {dataset}'s constructed datasets at profile {profile!r}: it must be an ℓ2-robust "
            f"model that is no construction's source and not trained at the relabelling radius {sorted(radii)}"
        )
    return name


def _check(key: str, text: str, measured: str, held: bool) -> dict:
    return {"key": key, "text": text, "measured": measured, "held": bool(held)}


def record(page, verdict: dict, s: "Study | None" = None) -> None:
    """Print a verdict's ``lines`` and record its ``claims`` and ``checks`` on ``page`` (a
    :class:`robustutils.report.Chapter`): the verdict functions below return such dicts, and a
    claim or check that is asserted and does not hold stops the chapter there. With the
    :class:`Study` ``s`` of a study that is not ``asserted``, they are reported only."""
    reported = {} if s is None or s.asserted else {"checked": False}
    if verdict.get("lines"):
        print(*verdict["lines"], sep="\n")
    for claim in verdict.get("claims", ()):
        page.claim(**{**claim, **reported})
    for check in verdict.get("checks", ()):
        page.check(**{**check, **reported})


def inversion_rows(s: Study, models: dict, sets: dict, x: torch.Tensor, y: torch.Tensor, built: dict) -> list[dict]:
    """Return one row per inversion of ``s`` (D_R's, D_NR): ``set``, ``built`` (build seconds,
    ``built[name]``), ``before`` and ``after`` (median :func:`relative_distance` through the source
    model from the start images, and from the result, to the real images ``x``), ``source`` and
    ``observer`` (the fraction of the results the source model, and ``s.observer``, classify as ``y``),
    and ``observer_real`` (the fraction of the real images ``x`` that ``s.observer`` classifies as ``y``).

    ``models`` maps names to loaded models, ``sets`` names to ``(x_r, y)`` as
    :func:`robustutils.zoo.constructed` returns them."""
    rows, observer_real = [], target_rate(models[s.observer], x, y)
    for name, source_name in s.inversions.items():
        source, x_r = models[source_name], sets[name][0]
        start = start_images(x, s.specs[name].seed)
        rows.append(
            {
                "set": short(name),
                "built": built[name],
                "before": relative_distance(source, start, x).median().item(),
                "after": relative_distance(source, x_r, x).median().item(),
                "source": target_rate(source, x_r, y),
                "observer": target_rate(models[s.observer], x_r, y),
                "observer_real": observer_real,
            }
        )
    return rows


def inversion_verdicts(s: Study, rows: list[dict]) -> dict:
    """Return ``{"checks": [...]}`` for :func:`record`: the checks of :func:`inversion_rows` (keyword
    arguments of :meth:`robustutils.report.Chapter.check`): every inversion closes over half of the
    distance; ``s.observer`` reads every D_R's images as ``y`` at least 80% as often as the real images
    (Ilyas et al. 2019, Fig. 2: D_R's images show their class); and it reads D_NR's less often than
    every D_R's (their D_NR images look like the start images, not like ``y``)."""
    listed = ", ".join(f"{r['set']} {r['before']:.2f} → {r['after']:.2f}" for r in rows)
    judged = {r["set"]: r["observer"] for r in rows}
    real = rows[0]["observer_real"]
    shown = ", ".join(f"{k} {v:.1%}" for k, v in judged.items()) + f" (real images: {real:.1%})"
    return {
        "checks": [
            _check(
                f"ch06-{s.dataset}-inversion-converges",
                f"On {s.title}, every inversion closes over half of the representation distance (median).",
                listed,
                all(r["after"] < 0.5 * r["before"] for r in rows),
            ),
            _check(
                f"ch06-{s.dataset}-inversion-shows-y",
                f"On {s.title}, an independent robust model ({short(s.observer)}) reads every D_R's images as their "
                "label y at least 80% as often as it reads the real images.",
                shown,
                all(v >= 0.8 * real for k, v in judged.items() if _kind(k) == "D_R"),
            ),
            _check(
                f"ch06-{s.dataset}-dnr-noisier",
                f"On {s.title}, D_NR's images are read as y less often than D_R's.",
                shown,
                all(v > judged["D_NR"] for k, v in judged.items() if _kind(k) == "D_R"),
            ),
        ]
    }


def relabel_rows(s: Study, models: dict, sets: dict, x: torch.Tensor, y: torch.Tensor, built: dict) -> list[dict]:
    """Return one row per relabelled set of ``s`` (D_rand, D_det): ``set``, ``eps`` (the l2 radius),
    ``built`` (seconds), ``mean`` and ``max`` (l2 distance of the images to the real ``x``, pixel
    units), ``changed`` (fraction of new labels other than ``y``), ``source`` (fraction the source
    model classifies as the new label), ``observer`` (fraction ``s.observer`` still classifies as ``y``)
    and ``observer_real`` (fraction of the real images ``x`` it classifies as ``y``)."""
    rows, observer_real = [], target_rate(models[s.observer], x, y)
    for name, source_name in s.relabellings.items():
        x_adv, t = sets[name]
        moved = L2.norm(x_adv - x)
        rows.append(
            {
                "set": short(name),
                "eps": s.specs[name].eps,
                "built": built[name],
                "mean": moved.mean().item(),
                "max": moved.max().item(),
                "changed": (t != y).float().mean().item(),
                "source": target_rate(models[source_name], x_adv, t),
                "observer": target_rate(models[s.observer], x_adv, y),
                "observer_real": observer_real,
            }
        )
    return rows


def relabel_verdicts(s: Study, rows: list[dict]) -> dict:
    """Return ``{"checks": [...]}`` of :func:`relabel_rows` for :func:`record`: the images stay
    within eps, the source model takes the new label on most of them, and ``s.observer`` still reads
    the original class on at least 80% as many of them as of the real images (Ilyas et al. 2019,
    section 3.2: to a person the relabelled images still show their original class)."""

    def listed(key):
        return ", ".join(f"{r['set']} {r[key]:.1%}" for r in rows)

    return {
        "checks": [
            _check(
                f"ch06-{s.dataset}-relabel-in-ball",
                f"On {s.title}, every relabelled image stays within ε.",
                ", ".join(f"{r['set']} max {r['max']:.2f} ≤ {r['eps']:g}" for r in rows),
                all(r["max"] <= r["eps"] + 1e-4 for r in rows),
            ),
            _check(
                f"ch06-{s.dataset}-relabel-takes-t",
                f"On {s.title}, the standard model reads most relabelled images as their new label t.",
                listed("source"),
                all(r["source"] >= 0.5 for r in rows),
            ),
            _check(
                f"ch06-{s.dataset}-relabel-shows-y",
                f"On {s.title}, an independent robust model ({short(s.observer)}, not trained at the relabelling "
                "radius) still reads the relabelled images as their original y at least 80% as often as the real "
                "images.",
                listed("observer") + f" (real images: {rows[0]['observer_real']:.1%})",
                all(r["observer"] >= 0.8 * r["observer_real"] for r in rows),
            ),
        ]
    }


def training_rows(s: Study, models: dict, x_test: torch.Tensor, y_test: torch.Tensor, robust: dict) -> list[dict]:
    """Return one row per model of ``s.trained`` (D, then each constructed set): ``set``, ``clean``
    (accuracy on the real test images), and for D, D_R and D_NR ``worst`` (the worst-case robust
    accuracy of ``robust[name]``, a :func:`robustutils.evaluate.compare` result) with ``eps``; the
    paper's CIFAR-10 numbers ``paper_clean`` and ``paper_robust`` (:data:`PAPER`)."""
    rows = []
    for set_name, name in s.trained.items():
        attacked = name in robust
        rows.append(
            {
                "set": set_name,
                "clean": evaluate(models[name], x_test, y_test)["clean_acc"],
                "worst": robust[name]["worst_acc"] if attacked else None,
                "eps": s.eval_eps if attacked else None,
                "paper_clean": PAPER[_kind(set_name)][0],
                "paper_robust": PAPER[_kind(set_name)][1],
            }
        )
    return rows


def sweep_curves(s: Study, models: dict, x: torch.Tensor, y: torch.Tensor, steps: int) -> dict:
    """Return ``{set: (eps values, accuracies)}``: l2 PGD-``steps`` accuracy over ``s.sweep`` (pixel
    units) of the models trained on D, D_R and D_NR, on ``(x, y)``."""
    sets = ["D", *map(short, s.inversions)]
    return {k: (s.sweep, eps_sweep(models[s.trained[k]], x, y, s.sweep, norm="l2", steps=steps)) for k in sets}


def mislabel_diagnosis(s: Study, relabelled: list[dict], trained: list[dict], least: float = 0.3) -> list[str]:
    """Return lines that say, with section 2's measurements, why a model trained on D_rand or D_det
    reaches less than ``least`` (a fraction) on the real test set: how often the standard source
    model reads each relabelled set as its new label (``source`` of :func:`relabel_rows`), and what
    the model trained on the real images D reaches (:func:`training_rows`). Empty when both models
    reach ``least``."""
    acc = {r["set"]: r["clean"] for r in trained}
    weak = [r for r in relabelled if acc[r["set"]] < least]
    if not weak:
        return []
    took = ", ".join(f"{r['set']} {r['source']:.1%}" for r in relabelled)
    return [
        f"{s.title}: trained on {' and '.join(r['set'] for r in weak)}, below {least:.0%} on real test images: "
        f"the standard source model reads the relabelled images as their new label t only on {took} "
        f"(section 2), so many of them carry no feature of t; the same training on the real images D "
        f"reaches {acc['D']:.1%}."
    ]


def _degree(pp: float) -> str:
    return "markedly" if pp >= 10 else "only slightly" if pp > 0 else "NOT"


def training_verdicts(s: Study, rows: list[dict], curves: dict) -> dict:
    """Return the numbers the claims of section 3 rest on, from :func:`training_rows` and
    :func:`sweep_curves`: ``acc`` (test accuracy by set), ``worst`` (robust accuracy by set),
    ``d_r`` (the D_R sets, least robust source first), ``best_r``, ``over_d`` and ``over_nr``
    (how much more robust the ``best_r`` model is than the D and D_NR models, percentage points),
    ``d_at_half`` (the D model's sweep accuracy at the sweep eps nearest half of ``eval_eps``, at
    ``half_eps``), ``rising`` (whether D_R's robustness
    rises with its source's), ``lines``, a short report to print, and ``claims`` and ``checks``
    (:func:`training_claims`, :func:`training_checks`) for :func:`record`."""
    acc = {r["set"]: r["clean"] for r in rows}
    worst = {r["set"]: r["worst"] for r in rows if r["worst"] is not None}
    best_r, eps, chance = s.best_r, s.eval_eps, 1 / registry.NUM_CLASSES[s.dataset]
    over_d, over_nr = 100 * (worst[best_r] - worst["D"]), 100 * (worst[best_r] - worst["D_NR"])
    sweep, d_curve = curves["D"]
    half = sweep.index(min(sweep, key=lambda e: abs(e - eps / 2)))
    d_r = [k for k in worst if _kind(k) == "D_R"]  # least robust source first
    by_source = [worst[k] for k in d_r]
    rising = all(b > a for a, b in zip(by_source, by_source[1:]))
    t = s.title
    lines = [
        f"{t}: the {k} model: {acc[k]:.1%} on the real test set ({acc[k] / chance:.1f} x chance)"
        for k in ("D_rand", "D_det")
    ]
    lines += [f"{t}: the {k} model: {worst[k]:.1%} robust at ℓ2 {eps:g}" for k in worst if k != "D"]
    lines += [
        *(
            f"{t}: {k} over {base}: {gap:+.1f} pp ({_degree(gap)} more robust)"
            for k in d_r
            for base in ("D", "D_NR")
            for gap in [100 * (worst[k] - worst[base])]
        ),
        f"{t}: the D model keeps {d_curve[half]:.1%} under PGD at ℓ2 {sweep[half]:g}, half the table's ε",
        f"{t}: D_R models, least robust source first: "
        + ", ".join(f"{v:.1%}" for v in by_source)
        + (" (rising)" if rising else " (NOT rising)"),
    ]
    v = {
        "acc": acc,
        "worst": worst,
        "best_r": best_r,
        "d_r": d_r,
        "over_d": over_d,
        "over_nr": over_nr,
        "d_at_half": d_curve[half],
        "half_eps": sweep[half],
        "rising": rising,
        "lines": lines,
    }
    return {**v, "claims": training_claims(s, v), "checks": training_checks(s, v)}


def training_claims(s: Study, v: dict) -> list[dict]:
    """Return Ilyas et al.'s claims of section 3 as this run tested them (keyword arguments of
    :meth:`robustutils.report.Chapter.claim`), from :func:`training_verdicts`: D_rand and D_det
    generalise, D_det less than D_rand, every D_R beats D_NR by 10 pp and beats D (each D_R row is
    quoted), D_NR is less robust than D."""
    d, t, eps, acc, worst = s.dataset, s.title, s.eval_eps, v["acc"], v["worst"]
    table1 = "test accuracy on CIFAR-10 (Ilyas et al. 2019, Table 1)"

    def every_r(base: str) -> str:  # every D_R row against ``base``, least robust source first
        shown = [f"{worst[k]:.1%} ({k}, {100 * (worst[k] - worst[base]):+.1f} pp)" for k in v["d_r"]]
        return f"{', '.join(shown)} vs {worst[base]:.1%} ({base})"

    return [
        {
            "key": f"ch06-{d}-drand-generalises",
            "text": f"On {t}, standard training on D_rand (images nudged toward a random class and relabelled with it) "
            f"gives a model that classifies the real test set well above chance (10%).",
            "paper": f"D_rand: 63.3% {table1}",
            "measured": f"{acc['D_rand']:.1%} test accuracy",
            "held": acc["D_rand"] >= 0.3,
        },
        {
            "key": f"ch06-{d}-ddet-generalises",
            "text": f"On {t}, standard training on D_det (images nudged toward class y + 1 and relabelled y + 1) "
            f"gives a model that classifies the real test set well above chance (10%).",
            "paper": f"D_det: 43.7% {table1}",
            "measured": f"{acc['D_det']:.1%} test accuracy",
            "held": acc["D_det"] >= 0.3,
        },
        {
            "key": f"ch06-{d}-ddet-harder",
            "text": f"On {t}, D_det, whose robust features point to the wrong class, gives a lower real test accuracy "
            f"than D_rand.",
            "paper": f"63.3% (D_rand) vs 43.7% (D_det) {table1}",
            "measured": f"{acc['D_rand']:.1%} (D_rand) vs {acc['D_det']:.1%} (D_det)",
            "held": acc["D_rand"] > acc["D_det"],
        },
        {
            "key": f"ch06-{d}-dr-beats-dnr",
            "text": f"On {t}, standard training on D_R gives a markedly (at least 10 pp) more robust model than "
            f"standard training on D_NR.",
            "paper": "48.2% (D_R) vs 0.8% (D_NR) robust accuracy at l2 eps 0.25 on CIFAR-10 "
            "(Ilyas et al. 2019, Table 7)",
            "measured": f"{every_r('D_NR')} at l2 eps {eps:g}",
            "held": all(100 * (worst[k] - worst["D_NR"]) >= 10 for k in v["d_r"]),
        },
        {
            "key": f"ch06-{d}-dr-beats-d",
            "text": f"On {t}, standard training on D_R gives a more robust model than standard training on the real "
            f"data D.",
            "paper": "standard training on D_R gives a robust model, standard training on D does not: 48.2% vs 4.5% "
            "robust accuracy at l2 eps 0.25 on CIFAR-10 (Ilyas et al. 2019, section 3.1, Table 7)",
            "measured": f"{every_r('D')} at l2 eps {eps:g}",
            "held": all(worst[k] > worst["D"] for k in v["d_r"]),
        },
        {
            "key": f"ch06-{d}-dnr-not-robust",
            "text": f"On {t}, standard training on D_NR gives a model that is less robust than the model trained on "
            f"the real data D.",
            "paper": "D_NR: 87.7% test accuracy, 0.8% robust accuracy at l2 eps 0.25 on CIFAR-10, D: 4.5% "
            "(Ilyas et al. 2019, Table 7)",
            "measured": f"{acc['D_NR']:.1%} test accuracy; {worst['D_NR']:.1%} (D_NR) vs {worst['D']:.1%} (D) "
            f"robust at l2 eps {eps:g}",
            "held": worst["D_NR"] < worst["D"],
        },
    ]


def training_checks(s: Study, v: dict) -> list[dict]:
    """Return the check of section 3 that is not a paper's claim: on MNIST a standard model keeps at
    least half of the test images under PGD at half the table's eps (none on other datasets)."""
    if s.dataset != "mnist":
        return []
    return [
        _check(
            "ch06-mnist-d-robust-at-half-eps",
            "On MNIST, a standard model is fairly robust at small ℓ2 radii.",
            f"{v['d_at_half']:.1%} at ℓ2 {v['half_eps']:g}",
            v["d_at_half"] >= 0.5,
        )
    ]


def transfer_study(s: Study, models: dict, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Return Ilyas et al.'s transferability study on the real test images ``(x, y)``: section 3.3,
    Fig. 3, measured with targeted examples as in their Appendix D.9, Fig. 13. The D_det attack
    (:func:`relabel` with D_det's settings) is applied to the images through the standard source
    model; for each architecture of ``s.transfer``, ``points[arch] = (rate, accuracy)``: the targeted
    transfer rate, the fraction of those examples its model trained on D classifies as the target,
    and its D_det model's test accuracy. Also ``rows`` (a table, with the D model's test accuracy),
    ``corr`` (Pearson r of the points), ``top`` (the two most-fooled and the two best-learning
    architectures), ``same_top``, ``below`` (architectures below chance on D_det), and for
    :func:`record` ``lines``, ``claims`` and ``checks`` (:func:`transfer_claims`)."""
    det = s.specs[f"{s.dataset}/D_det"]
    x_adv, t_adv = relabel(
        models[s.relabellings[f"{s.dataset}/D_det"]],
        x,
        y,
        mode="det",
        eps=det.eps,
        steps=det.steps,
        step_size=det.step_size,
        seed=det.seed,
        num_classes=registry.NUM_CLASSES[s.dataset],
        progress=False,
    )
    points, rows = {}, []
    for arch, (on_real, on_det) in s.transfer.items():
        points[arch] = (target_rate(models[on_real], x_adv, t_adv), evaluate(models[on_det], x, y)["clean_acc"])
        rows.append(
            {
                "arch": arch,
                "clean": evaluate(models[on_real], x, y)["clean_acc"],
                "rate": points[arch][0],
                "det": points[arch][1],
            }
        )
    corr = float(np.corrcoef(*zip(*points.values()))[0, 1])
    top = [sorted(sorted(points, key=lambda a: -points[a][k])[:2]) for k in (0, 1)]
    below = [a for a, (_, acc) in points.items() if acc < 1 / registry.NUM_CLASSES[s.dataset]]
    lines = [
        f"{s.title}: Pearson r of transfer rate and D_det accuracy: {corr:+.2f} ({len(points)} architectures)",
        f"{s.title}: fooled most often: {', '.join(top[0])}; learn most from D_det: {', '.join(top[1])}",
        f"{s.title}: below chance when trained on D_det: {', '.join(below) or 'none'}",
    ]
    result = {
        "points": points,
        "rows": rows,
        "corr": corr,
        "top": top,
        "same_top": top[0] == top[1],
        "below": below,
        "lines": lines,
    }
    claim, check = transfer_claims(s, result)
    return {**result, "claims": [claim], "checks": [check]}


def transfer_claims(s: Study, result: dict) -> tuple[dict, dict]:
    """Return ``(claim, check)`` of :func:`transfer_study`: the targeted transfer rate rises with the
    D_det accuracy (Pearson r > 0.5; Ilyas et al.'s Fig. 3, and Fig. 13 of their Appendix D.9 for
    targeted examples), and the architectures fooled most often are the two that learn most from D_det."""
    claim = {
        "key": f"ch06-{s.dataset}-transfer",
        "text": f"On {s.title}, across architectures, the rate at which the standard model's targeted adversarial "
        f"examples fool an architecture into the target class rises with the real test accuracy it reaches when "
        f"trained on D_det (Pearson r > 0.5).",
        "paper": "transfer success rate rises with the accuracy learnt from D_det across architectures on "
        "CIFAR-10 (Ilyas et al. 2019, section 3.3, Fig. 3; with targeted examples, Appendix D.9, Fig. 13)",
        "measured": f"r = {result['corr']:+.2f} over {len(result['points'])} architectures",
        "held": result["corr"] > 0.5,
    }
    check = _check(
        f"ch06-{s.dataset}-transfer-same-top",
        f"On {s.title}, the two architectures fooled most often are the two that learn most from D_det.",
        f"{', '.join(result['top'][0])} vs {', '.join(result['top'][1])}",
        result["same_top"],
    )
    return claim, check


def cost_rows(
    s: Study,
    models: dict,
    meta: dict,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    robust: dict,
    built: dict,
    trained: list[dict],
) -> list[dict]:
    """Return the cost table of section 5: per source model and per model trained on D_R, D_NR and
    D, its ``model`` label, ``clean`` (test accuracy), ``worst`` (robust accuracy, ``robust[name]``)
    and ``time``, the seconds to make it as recorded in ``meta[name]["train_time_s"]`` and
    ``built``: for a model trained on a constructed set, its source's training, the set's build and
    its own training. ``trained`` is :func:`training_rows`' result (its test accuracies are reused)."""
    clean = {r["set"]: r["clean"] for r in trained}
    rows = [
        {
            "model": f"source: {short(n)}",
            "clean": evaluate(models[n], x_test, y_test)["clean_acc"],
            "worst": robust[n]["worst_acc"],
            "time": meta[n]["train_time_s"],
        }
        for n in s.sources
    ]
    for name, source in s.inversions.items():
        model = s.trained[short(name)]
        rows.append(
            {
                "model": f"standard on {short(name)}",
                "clean": clean[short(name)],
                "worst": robust[model]["worst_acc"],
                "time": meta[source]["train_time_s"] + built[name] + meta[model]["train_time_s"],
            }
        )
    rows.append(
        {
            "model": "standard on D",
            "clean": clean["D"],
            "worst": robust[s.trained["D"]]["worst_acc"],
            "time": meta[s.trained["D"]]["train_time_s"],
        }
    )
    return rows


def cost_verdicts(s: Study, rows: list[dict]) -> dict:
    """Return ``lines`` and ``checks`` of section 5's cost table (:func:`cost_rows`) for
    :func:`record`: the D_R model built through the most robust source keeps part of its source's
    robust accuracy (checked: less than all of it) at a multiple of its time to make."""
    by = {r["model"]: r for r in rows}
    made, source, t = by[f"standard on {s.best_r}"], by[f"source: {short(s.judge)}"], s.title
    lines = [
        f"{t}: the {s.best_r} model keeps {made['worst'] / max(source['worst'], 1e-9):.0%} of its source's "
        f"robust accuracy ({made['worst']:.1%} vs {source['worst']:.1%})",
        f"{t}: it takes {made['time'] / max(source['time'], 1e-9):.1f}x its source's time to make",
    ]
    return {
        "lines": lines,
        "checks": [
            _check(
                f"ch06-{s.dataset}-dr-below-source",
                f"On {t}, the D_R model is less robust than the robust model it was made from.",
                f"{made['worst']:.1%} vs {source['worst']:.1%}",
                made["worst"] < source["worst"],
            )
        ],
    }


def robustness_costs(s: Study, rows: list[dict], trained: list[dict]) -> dict:
    """Return ``lines`` and ``checks`` for :func:`record`: each robust source's cost in test accuracy
    and gain in robust accuracy over the standard source (:func:`cost_rows`; on MNIST, checked: at
    most 5 pp for at least 30 pp), the D_det model's test accuracy (:func:`training_rows`), and
    ``cost``, the most robust source's cost (a fraction)."""
    by = {r["model"]: r for r in rows}
    std, t, lines, checks = by["source: standard"], s.title, [], []
    for name in s.sources[1:]:
        rob = by[f"source: {short(name)}"]
        cost, gain = std["clean"] - rob["clean"], rob["worst"] - std["worst"]
        lines.append(
            f"{t}: {short(name)} costs {100 * cost:.1f} pp of test accuracy ({std['clean']:.1%} → "
            f"{rob['clean']:.1%}), buys {100 * gain:+.1f} pp robust at ℓ2 {s.eval_eps:g}"
        )
        if s.dataset == "mnist":
            checks.append(
                _check(
                    f"ch06-mnist-{short(name)}-cheap",
                    f"On MNIST, the {short(name)} model gives up "
                    "little test accuracy (≤ 5 pp) for a large gain in robustness (≥ 30 pp).",
                    f"{100 * cost:.1f} pp for {100 * gain:+.1f} pp",
                    cost <= 0.05 and gain >= 0.3,
                )
            )
    det_acc = {r["set"]: r["clean"] for r in trained}["D_det"]
    lines.append(f"{t}: non-robust features alone (the D_det model): {det_acc:.1%} test accuracy, chance 10%")
    return {"lines": lines, "checks": checks, "cost": std["clean"] - by[f"source: {short(s.judge)}"]["clean"]}


def tradeoff_verdicts(mnist_cost: float, cifar_clean: dict, n_test: int) -> dict:
    """Return ``lines`` and ``checks`` comparing the cost of robustness on MNIST (``mnist_cost``,
    the most robust MNIST source's loss of test accuracy, a fraction) with CIFAR-10's:
    ``cifar_clean`` maps ``"cifar10/standard"`` and a robust CIFAR-10 model's name to their test
    accuracy on ``n_test`` images. Checked: MNIST's cost is above 0, CIFAR-10's is larger."""
    (std_name, std), (rob_name, rob) = cifar_clean.items()
    cost = std - rob
    lines = [
        f"CIFAR-10: {short(rob_name)} costs {100 * cost:.1f} pp of test accuracy ({std:.1%} → {rob:.1%}, "
        f"{n_test} test images)",
        f"CIFAR-10's cost is {'LARGER' if cost > mnist_cost else 'NOT larger'} than MNIST's "
        f"({100 * cost:.1f} vs {100 * mnist_cost:.1f} pp)",
    ]
    checks = [
        _check(
            "ch06-mnist-cost-not-zero",
            "On MNIST, the most robust model's cost in test accuracy is small but not zero.",
            f"{100 * mnist_cost:.1f} pp",
            mnist_cost > 0,
        ),
        _check(
            "ch06-cifar10-costs-more",
            "Robustness costs more test accuracy on CIFAR-10 than on MNIST.",
            f"{100 * cost:.1f} vs {100 * mnist_cost:.1f} pp",
            cost > mnist_cost,
        ),
    ]
    return {"lines": lines, "checks": checks, "cost": cost}


#: The columns of the chapter's tables (row key -> header) and their formats (key -> format spec).
TABLES = {
    "inversion": (
        {
            "set": "dataset",
            "built": "built (s)",
            "before": "distance from start",
            "after": "after inversion",
            "source": "source reads y",
            "observer": "independent robust model reads y",
            "observer_real": "… and on the real images",
        },
        {"built": ".0f", "before": ".3f", "after": ".3f", "source": ".1%", "observer": ".1%", "observer_real": ".1%"},
    ),
    "relabel": (
        {
            "set": "dataset",
            "eps": "ℓ2 ε",
            "built": "built (s)",
            "mean": "mean ℓ2 change",
            "max": "largest",
            "changed": "label changed",
            "source": "standard reads t",
            "observer": "independent robust model reads y",
            "observer_real": "… and on the real images",
        },
        {
            "eps": "g",
            "built": ".0f",
            "mean": ".2f",
            "max": ".2f",
            "changed": ".1%",
            "source": ".1%",
            "observer": ".1%",
            "observer_real": ".1%",
        },
    ),
    "training": (
        {
            "set": "trained on",
            "clean": "test accuracy",
            "eps": "ℓ2 ε",
            "worst": "robust (worst case)",
            "paper_clean": "paper: test",
            "paper_robust": "paper: robust at 0.25",
        },
        {"clean": ".1%", "worst": ".1%", "eps": "g", "paper_clean": ".1%", "paper_robust": ".1%"},
    ),
    "transfer": (
        {
            "arch": "architecture",
            "clean": "accuracy trained on D",
            "rate": "transfer rate",
            "det": "accuracy trained on D_det",
        },
        {"clean": ".1%", "rate": ".1%", "det": ".1%"},
    ),
    "cost": (
        {"model": "model", "clean": "test accuracy", "worst": "robust (worst case)", "time": "seconds to make"},
        {"clean": ".1%", "worst": ".1%", "time": ".0f"},
    ),
}


def table(kind: str, rows: list[dict]) -> str:
    """Return the Markdown table of ``rows`` with the columns of :data:`TABLES` ``[kind]``
    (``"inversion"``, ``"relabel"``, ``"training"``, ``"transfer"`` or ``"cost"``)."""
    if kind not in TABLES:
        raise ValueError(f"unknown table {kind!r}: choose one of {sorted(TABLES)}")
    return markdown_table(rows, *TABLES[kind])
