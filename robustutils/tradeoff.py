"""The accuracy–robustness trade-off on real data (chapter 3), by registry name at each profile.

- :func:`panels`: the models of the training-ε grids (:data:`robustutils.registry.TRAINING_EPS`),
  each attacked at its own ε, and the standard model at each panel's largest ε: Tsipras et al.
  (2019) Fig. 7, standard accuracy against the training ε.
- :func:`lowdata`: the low-data study (Tsipras et al. 2019, Fig. 1; Schmidt et al. 2018), standard
  accuracy of the ``mnist/*-n<N>`` models against the training-set size.
- :func:`trades_study`: TRADES (Zhang et al. 2019) beside Madry et al.'s MNIST ℓ∞ models, all at
  :data:`robustutils.registry.TRADES_EPS`, with the Pareto front.
- :func:`best_under_attack`: which model to deploy when a fraction q of the inputs is attacked (the
  upper envelope of the expected accuracies ``(1 - q) standard + q robust``), with its switch points.
- :func:`scale` and :func:`paper_table`: this run's numbers beside the papers'.
- :func:`published_study` (the ``colab`` and ``full`` profiles): the papers' own released CIFAR-10
  models (RobustBench's ``Standard`` and ``Engstrom2019Robustness``) under this run's evaluation,
  beside RobustBench's figures (:func:`published_table`).

Accuracies are fractions in [0, 1]; ε in pixel units; a robust accuracy is the worst case over the
profile's attacks (:func:`robustutils.zoo.eval_attacks`).
"""

import dataclasses
import math
import numbers
import warnings
from fractions import Fraction

import torch

from . import data, evaluate, independent, plots, profiles, published, registry, report, runtime, zoo

DATASET_TEXT = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
NORM_TEXT = {"linf": "ℓ∞", "l2": "ℓ2"}
#: The registry names of the low-data models (``mnist/standard-n250``, ``mnist/l2-0.5-n250``, ...).
LOWDATA_PATTERN = "mnist/*-n[0-9]*"
#: How far the PGD of the evaluation may overestimate the worst case before a row is flagged (pp).
GAP_FLAG_PP = 2.0


def eps_text(dataset: str, norm: str, eps: float) -> str:
    """Return ε as the book writes it: ``"8/255"`` for CIFAR-10 ℓ∞, else ``"0.3"``."""
    return f"{round(eps * 255):g}/255" if dataset == "cifar10" and norm == "linf" and eps else f"{eps:g}"


def threat_text(dataset: str, norm: str, eps: float) -> str:
    """Return a threat model as the book prints it: ``"ℓ∞ ε 8/255"``."""
    return f"{NORM_TEXT[norm]} ε {eps_text(dataset, norm, eps)}"


def pgd_key(profile: str) -> str:
    """Return the name of the profile's evaluation PGD in a result (``"pgd-40"`` at ``ci``)."""
    suite = profiles.config(profile, "eval")["suite"]
    return independent.pgd_key(suite["pgd_steps"], suite["pgd_restarts"])


def _progress(items: list, desc: str, progress: bool):
    return runtime.progress(items, desc) if progress else items


@dataclasses.dataclass(frozen=True)
class Panel:
    """One (dataset, norm) panel of Tsipras et al.'s Fig. 7: the models trained at each ε of
    ``eps`` (pixel units, 0 first: the standard model), ``results[i]`` the
    :func:`robustutils.evaluate.compare` result of ``names[i]`` attacked at ``eps[i]``, and
    ``standard_at_max`` that of the standard model attacked at ``eps[-1]``."""

    dataset: str
    norm: str
    eps: tuple[float, ...]
    names: tuple[str, ...]
    results: tuple[dict, ...]
    standard_at_max: dict

    @property
    def title(self) -> str:
        """``"MNIST ℓ∞"``."""
        return f"{data.title(self.dataset)} {NORM_TEXT[self.norm]}"

    @property
    def standard(self) -> list[float]:
        """Standard (clean) accuracy of each model, in the order of ``eps``."""
        return [r["clean_acc"] for r in self.results]

    @property
    def robust(self) -> list[float]:
        """Worst-case robust accuracy of each model at its own training ε."""
        return [r["worst_acc"] for r in self.results]

    @property
    def cost(self) -> float:
        """Standard accuracy lost at the largest ε against standard training (a fraction)."""
        return self.standard[0] - self.standard[-1]

    @property
    def bought(self) -> float:
        """Robust accuracy at the largest ε gained over the standard model (a fraction)."""
        return self.robust[-1] - self.standard_at_max["worst_acc"]

    def non_increasing(self, tolerance: float) -> bool:
        """Return whether standard accuracy never rises by more than ``tolerance`` (a fraction) between ε."""
        return report.is_non_increasing(self.standard, tolerance)


def panels(profile: str, datasets=("mnist", "cifar10"), *, progress: bool = False) -> dict[tuple[str, str], Panel]:
    """Return the :class:`Panel` of each dataset and norm of :data:`robustutils.registry.TRAINING_EPS`,
    keyed ``(dataset, norm)``, with the standard model at ε 0. Models come from
    :func:`robustutils.zoo.get` (trained when not cached), evaluations from
    :func:`robustutils.zoo.robustness` on the profile's ``eval`` ``n_test`` test images; ``progress``
    shows a bar over the models."""
    jobs = [(d, norm, eps) for d in datasets for norm, grid in registry.TRAINING_EPS[d].items() for eps in [0.0, *grid]]
    jobs += [(d, norm, None) for d in datasets for norm in registry.TRAINING_EPS[d]]
    results = {}
    for d, norm, eps in _progress(jobs, "models (train or load, then attack)", progress):
        if eps is None:  # the standard model at the panel's largest eps
            at = registry.TRAINING_EPS[d][norm][-1]
            results[d, norm, None] = zoo.robustness(registry.model_name(d), profile, at=(norm, at))
        else:
            results[d, norm, eps] = zoo.robustness(registry.model_name(d, norm, eps), profile, at=(norm, eps))
    out = {}
    for d in datasets:
        for norm, grid in registry.TRAINING_EPS[d].items():
            eps = (0.0, *grid)
            out[d, norm] = Panel(
                d,
                norm,
                eps,
                tuple(registry.model_name(d, norm, e) for e in eps),
                tuple(results[d, norm, e] for e in eps),
                results[d, norm, None],
            )
    return out


def robustness_rows(by_panel: dict[tuple[str, str], Panel], profile: str) -> list[dict]:
    """Return one :func:`robustutils.report.robustness_row` per model and panel (each at its own ε),
    then one per panel for the standard model at the panel's largest ε; ``model`` is the registry
    name, ``threat`` as :func:`threat_text`, ``gap`` PGD's overestimate in pp."""
    key = pgd_key(profile)
    rows = [
        report.robustness_row(name, threat_text(p.dataset, p.norm, e), r, key)
        for p in by_panel.values()
        for name, e, r in zip(p.names, p.eps, p.results)
    ]
    rows += [
        report.robustness_row(
            registry.model_name(p.dataset), threat_text(p.dataset, p.norm, p.eps[-1]), p.standard_at_max, key
        )
        for p in by_panel.values()
    ]
    return rows


def robustness_table(rows: list[dict], profile: str) -> str:
    """Return the Markdown table of :func:`robustness_rows` (or :meth:`TradesStudy.rows`): model,
    threat, clean, our PGD, each AutoAttack attack after it (the last is the worst case; percent), and
    PGD − worst case (pp) (:func:`robustutils.report.robustness_columns`)."""
    return report.markdown_table(rows, *report.robustness_columns(profiles.config(profile, "eval")["suite"]))


def flagged(rows: list[dict], threshold_pp: float = GAP_FLAG_PP) -> list[str]:
    """Return ``"<model> at <threat> (<gap> pp)"`` for each row where PGD overestimates the worst
    case by more than ``threshold_pp`` percentage points: there PGD's settings or the model's
    gradients mislead PGD, and the worst case is the number to quote."""
    return [f"{r['model']} at {r['threat']} ({r['gap']:.1f} pp)" for r in rows if r["gap"] > threshold_pp]


def figure(by_panel: dict[tuple[str, str], Panel]):
    """Return :func:`robustutils.plots.cost_and_gain` of the panels: standard accuracy against the
    training ε on each panel's own scale, and robust accuracy bought, with the standard model's."""
    return plots.cost_and_gain(
        {
            p.title: {
                "eps": list(p.eps),
                "ticks": [eps_text(p.dataset, p.norm, e) for e in p.eps],
                "standard": p.standard,
                "robust": p.robust,
                "baseline": p.standard_at_max["worst_acc"],
            }
            for p in by_panel.values()
        }
    )


def verdict_rows(by_panel: dict[tuple[str, str], Panel], tolerance: dict[str, float]) -> list[dict]:
    """Return one row per panel: standard accuracy along the grid (``"99.2 → 97.0"``, percent),
    whether it is non-increasing within ``tolerance[dataset]`` (a fraction), the ``cost`` and the
    robust accuracy ``bought`` at the largest ε (fractions)."""
    return [
        {
            "panel": p.title,
            "largest": eps_text(p.dataset, p.norm, p.eps[-1]),
            "standard": " → ".join(f"{100 * a:.1f}" for a in p.standard),
            "falls": "yes" if p.non_increasing(tolerance[p.dataset]) else "NO",
            "cost": p.cost,
            "bought": p.bought,
        }
        for p in by_panel.values()
    ]


def verdict_table(by_panel: dict[tuple[str, str], Panel], tolerance: dict[str, float]) -> str:
    """Return the Markdown table of :func:`verdict_rows`."""
    columns = {
        "panel": "panel",
        "standard": "standard accuracy (%) along ε_train",
        "falls": "non-increasing",
        "largest": "largest ε_train",
        "cost": "cost there",
        "bought": "robust accuracy bought",
    }
    return report.markdown_table(verdict_rows(by_panel, tolerance), columns, {"cost": ".1%", "bought": "+.1%"})


def _panels_of(by_panel: dict[tuple[str, str], Panel], dataset: str) -> list[Panel]:
    chosen = [p for (d, _), p in by_panel.items() if d == dataset]
    if not chosen:
        raise ValueError(f"no panel of {dataset!r}: panels(profile, datasets=...) must include it")
    return chosen


def tradeoff_verdict(
    by_panel: dict[tuple[str, str], Panel], dataset: str, *, tolerance: float, least_cost: float
) -> tuple[bool, str]:
    """Return ``(held, measured)`` for Tsipras et al.'s trade-off claim on ``dataset`` (Fig. 7): in
    every norm, standard accuracy is non-increasing within ``tolerance`` and at least ``least_cost``
    lower at the largest ε than without adversarial training (fractions). ``measured`` gives both
    ends per norm. Raises ``ValueError`` when ``by_panel`` has no panel of ``dataset``."""
    chosen = _panels_of(by_panel, dataset)
    held = all(p.non_increasing(tolerance) and p.cost >= least_cost for p in chosen)
    measured = "; ".join(
        f"{threat_text(p.dataset, p.norm, p.eps[-1])}: standard accuracy {p.standard[0]:.1%} → {p.standard[-1]:.1%}"
        for p in chosen
    )
    return held, measured


def bought_verdict(by_panel: dict[tuple[str, str], Panel], dataset: str, *, least_bought: float) -> tuple[bool, str]:
    """Return ``(held, measured)`` for the robustness adversarial training buys on ``dataset``: in every
    norm, the model of the largest ε has at least ``least_bought`` (a fraction) more worst-case robust
    accuracy there than the standard model. ``measured`` gives the robust accuracy bought per norm and
    PGD's own figure beside it, which shows how much of it the stronger evaluation took back."""
    chosen = _panels_of(by_panel, dataset)
    key = next(iter(chosen[0].results[-1]["robust_acc"]))  # the evaluation's PGD, the cascade's first stage

    def by_pgd(p: Panel) -> float:
        return p.results[-1]["robust_acc"][key] - p.standard_at_max["robust_acc"][key]

    measured = "; ".join(
        f"{threat_text(p.dataset, p.norm, p.eps[-1])}: {100 * p.bought:+.1f} pp ({key.upper()} alone: "
        f"{100 * by_pgd(p):+.1f} pp)"
        for p in chosen
    )
    return all(p.bought >= least_bought for p in chosen), measured


# --- The low-data study ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LowData:
    """Standard test accuracy ``accuracy[eps][i]`` (a fraction) of the MNIST model trained with ℓ2
    adversarial training at ``eps`` (pixel units; 0: standard training) on ``sizes[i]`` training
    digits, and ``se[i]``: the paired standard error (a fraction) of the largest ε's difference from
    standard training at ``sizes[i]``, both models scored on the same test digits (empty if unknown).
    Tsipras et al. 2019, Fig. 1."""

    sizes: tuple[int, ...]
    accuracy: dict[float, list[float]]
    se: tuple[float, ...] = ()

    @property
    def robust_eps(self) -> list[float]:
        """The training ε above 0, ascending."""
        return sorted(e for e in self.accuracy if e > 0)

    @property
    def best_small(self) -> tuple[float, float]:
        """``(accuracy, eps)`` of the most accurate adversarially trained model on the fewest digits."""
        return max((self.accuracy[e][0], e) for e in self.robust_eps)

    @property
    def helps_small(self) -> float:
        """How much the best adversarially trained model beats standard training on the fewest digits."""
        return self.best_small[0] - self.accuracy[0.0][0]

    @property
    def gains(self) -> list[float]:
        """How much the largest ε beats standard training at each size; a negative gain is a cost."""
        return [a - s for a, s in zip(self.accuracy[self.robust_eps[-1]], self.accuracy[0.0])]

    @property
    def costs_large(self) -> float:
        """How much the largest ε loses against standard training on the most digits (if negative, it gains)."""
        return -self.gains[-1]

    @property
    def starts_to_cost(self) -> int | None:
        """The fewest training digits from which on the largest ε is below standard training at every
        larger size too, or None if it is not below at the largest size."""
        first = None
        for n, gain in zip(self.sizes, self.gains):
            first = (first or n) if gain < 0 else None
        return first

    def table(self) -> str:
        """Return the Markdown table: one row per training-set size, one column per training ε, and
        the largest ε's difference from standard training (± its paired standard error when known)."""
        top = self.robust_eps[-1]
        columns = {"n": "training digits"} | {e: f"ε {e:g}" + (" (standard)" if e == 0 else "") for e in self.accuracy}
        columns["gain"] = f"ε {top:g} − standard"
        rows = [
            {
                "n": f"{n:,}",
                **{e: acc[i] for e, acc in self.accuracy.items()},
                "gain": f"{100 * self.gains[i]:+.2f} pp" + (f" ± {100 * self.se[i]:.2f}" if self.se else ""),
            }
            for i, n in enumerate(self.sizes)
        ]
        return report.markdown_table(rows, columns, {e: ".2%" for e in self.accuracy})


def lowdata(profile: str, *, n_test: int | None = None, progress: bool = False) -> LowData:
    """Return the :class:`LowData` of the registry's ``mnist/*-n<N>`` models at ``profile``: each
    one's clean accuracy on the first ``n_test`` MNIST test digits (default: the profile's
    ``tradeoff`` ``lowdata_n_test``). The sizes and ε are read from the recipes."""
    if n_test is None:
        n_test = profiles.config(profile, "tradeoff")["lowdata_n_test"]
    names = registry.names(profile, LOWDATA_PATTERN)
    if not names:
        raise ValueError(f"the registry has no low-data models at profile {profile!r} (names 'mnist/<model>-n<N>')")
    x, y = data.test_set("mnist", n_test)
    correct = {}
    for name in _progress(names, "low-data models", progress):
        rec = registry.recipe(name, profile)
        model, _ = zoo.get(name, profile, progress=progress)
        eps = 0.0 if rec.attack is None else rec.attack["eps"]
        correct[rec.n_train, eps] = (evaluate.predict(model, x).cpu() == y.cpu()).float()
    sizes = sorted({n for n, _ in correct})
    eps_all = sorted({e for _, e in correct})
    accuracy = {e: [correct[n, e].mean().item() for n in sizes] for e in eps_all}
    diffs = [correct[n, eps_all[-1]] - correct[n, 0.0] for n in sizes]
    se = tuple((d.std() / len(d) ** 0.5).item() for d in diffs)
    return LowData(tuple(sizes), accuracy, se)


# --- TRADES beside Madry et al. -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TradesStudy:
    """MNIST models at ℓ∞ ``eps``: ``results[label]`` the :func:`robustutils.evaluate.compare`
    result of each (labels are registry names without ``mnist/``: ``standard``, ``linf-0.1`` for
    Madry et al.'s training, ``trades-6`` for TRADES with β 6)."""

    eps: float
    results: dict[str, dict]

    @property
    def points(self) -> dict[str, tuple[float, float]]:
        """``label -> (standard accuracy, worst-case robust accuracy)``."""
        return {label: (r["clean_acc"], r["worst_acc"]) for label, r in self.results.items()}

    @property
    def frontier(self) -> list[str]:
        """The labels no other model beats on both accuracies (:func:`robustutils.report.pareto_front`)."""
        return report.pareto_front(self.points)

    @property
    def by_beta(self) -> list[tuple[float, float, float]]:
        """``(beta, standard, robust)`` of each TRADES model, by ascending β."""
        betas = sorted(float(label.removeprefix("trades-")) for label in self.results if label.startswith("trades-"))
        return [(b, *self.points[f"trades-{b:g}"]) for b in betas]

    def rows(self, profile: str) -> list[dict]:
        """Return one :func:`robustutils.report.robustness_row` per model (for :func:`robustness_table`)."""
        threat = threat_text("mnist", "linf", self.eps)
        return [report.robustness_row(label, threat, r, pgd_key(profile)) for label, r in self.results.items()]


def trades_study(profile: str, *, progress: bool = False) -> TradesStudy:
    """Return the :class:`TradesStudy` of ``profile``: the MNIST standard model, the ℓ∞ models of
    :data:`robustutils.registry.TRAINING_EPS` (Madry et al.'s training) and the ``mnist/trades-*``
    models, all attacked at ℓ∞ :data:`robustutils.registry.TRADES_EPS` by the profile's attacks."""
    eps = registry.TRADES_EPS
    names = [registry.model_name("mnist", "linf", e) for e in [0.0, *registry.TRAINING_EPS["mnist"]["linf"]]]
    names += registry.names(profile, "mnist/trades-*")
    results = {
        name.removeprefix("mnist/"): zoo.robustness(name, profile, at=("linf", eps))
        for name in _progress(names, "TRADES and Madry models", progress)
    }
    return TradesStudy(eps, results)


# --- Which model to deploy when a fraction q of the inputs is attacked ---------------------


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One piece of the upper envelope of :func:`best_under_attack`: for every fraction ``q`` of
    attacked inputs in ``[q_from, q_to]``, the models ``models`` have the highest expected accuracy
    (several only when their accuracies are equal). ``standard`` and ``robust`` are their standard
    and robust accuracy (fractions in [0, 1])."""

    q_from: float
    q_to: float
    models: tuple[str, ...]
    standard: float
    robust: float

    @property
    def model(self) -> str:
        """The models' names as the tables print them, ``"standard"`` or ``"standard or linf-0.1"`` for a tie."""
        return " or ".join(self.models)

    def expected(self, q: float) -> float:
        """Return the expected accuracy (a fraction) of these models when a fraction ``q`` of the inputs
        is attacked (:func:`expected_accuracy`)."""
        return expected_accuracy(self.standard, self.robust, q)


def _fraction(value, what: str) -> float:
    """Return ``value`` as a float after checking it is a finite number in [0, 1]."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        raise ValueError(f"{what} is a tensor: pass a Python number, e.g. value.item(); got {value!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number in [0, 1] (a fraction, not a percentage); got {value!r}")
    if not 0 <= value <= 1:
        hint = " (divide a percentage by 100)" if 1 < value <= 100 else ""
        raise ValueError(f"{what} must be a fraction in [0, 1]{hint}; got {value!r}")
    return float(value)


def _check_points(points) -> dict[str, tuple[float, float]]:
    if not isinstance(points, dict) or not points:
        raise ValueError(
            "points must be a non-empty dict name -> (standard accuracy, robust accuracy), e.g. "
            f"TradesStudy.points; got {points!r}"
        )
    checked = {}
    for name, pair in points.items():
        if not isinstance(name, str):
            raise ValueError(f"the names of points must be strings (model names); got {name!r}: use str(name)")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"points[{name!r}] must be a pair (standard accuracy, robust accuracy); got {pair!r}")
        checked[name] = (
            _fraction(pair[0], f"the standard accuracy of {name!r}"),
            _fraction(pair[1], f"the robust accuracy of {name!r}"),
        )
        if checked[name][1] > checked[name][0]:
            warnings.warn(
                f"{name!r} has a robust accuracy above its standard accuracy {pair!r}: are the two swapped? "
                "The pair is (standard, robust).",
                stacklevel=3,
            )
    return checked


def _check_pieces(pieces) -> list[Deployment]:
    """Return ``pieces`` after checking it is :func:`best_under_attack`'s output: a non-empty list of
    :class:`Deployment` in increasing q that covers [0, 1] without gaps."""
    if not isinstance(pieces, (list, tuple)) or not pieces or not all(isinstance(p, Deployment) for p in pieces):
        raise ValueError(
            f"pieces must be the non-empty list of Deployment that best_under_attack(points) returns; got {pieces!r}"
        )
    ends = [(p.q_from, p.q_to) for p in pieces]
    if ends[0][0] != 0 or ends[-1][1] != 1 or any(a[1] != b[0] for a, b in zip(ends, ends[1:])):
        raise ValueError(f"pieces must run from q = 0 to q = 1 in order, as best_under_attack returns them; got {ends}")
    return list(pieces)


def expected_accuracy(standard: float, robust: float, q: float) -> float:
    """Return ``(1 - q) * standard + q * robust``: the accuracy of a model with standard accuracy
    ``standard`` and robust accuracy ``robust`` (fractions in [0, 1]) on inputs of which a fraction ``q``
    (in [0, 1]) is attacked by the threat model the robust accuracy was measured in, and the rest are
    left clean. Raises ``ValueError`` when an argument is not a finite number in [0, 1]."""
    standard, robust = _fraction(standard, "standard"), _fraction(robust, "robust")
    q = _fraction(q, "q, the fraction of attacked inputs,")
    return (1 - q) * standard + q * robust


def best_under_attack(points: dict[str, tuple[float, float]]) -> list[Deployment]:
    """Return the model to deploy for each fraction ``q`` of attacked inputs, ``q`` from 0 to 1.

    A model of standard accuracy ``s`` and robust accuracy ``r`` is right on a fraction
    ``(1 - q) s + q r`` of the inputs when a fraction ``q`` of them is attacked (its expected
    accuracy, a line in ``q``). The best model at each ``q`` is therefore the upper envelope of these
    lines, computed exactly: starting from the most accurate model at ``q = 0``, the next model is the
    one whose line, rising faster (larger ``r - s``), crosses the current one first, at
    ``q* = (s_a - s_b) / ((s_a - s_b) + (r_b - r_a))``. The crossings are compared as exact fractions
    of the given floats, so ties are ties: models with equal accuracies share a piece, and of several
    lines that cross at one ``q*`` the one rising fastest takes over. A model some other model beats on
    both accuracies is never chosen, nor is a model of the Pareto frontier that lies below the segment
    joining two others (a mix of their accuracies would beat it): only the vertices of the convex hull
    of the points that face up and to the right can be the best. Tsipras et al. (2019) show that
    standard and robust accuracy can be at odds; this picks the point of the trade-off that a known
    share of attacks makes best.

    Args:
        points: ``name -> (standard accuracy, robust accuracy)``, fractions in [0, 1], e.g.
            :attr:`TradesStudy.points`; the robust accuracy is in the threat model the attacked inputs
            face.

    Returns:
        The :class:`Deployment` pieces in order of ``q``. The first starts at 0, each starts where the
        one before ends (a switch point, where the two are equally good), and the last ends at 1. A
        model that is best only at a single ``q`` (a tie at 0 or at 1) has no piece.

    Raises:
        ValueError: ``points`` is empty or not a dict of pairs of finite fractions in [0, 1].
    """
    points = _check_points(points)
    tied = {}  # models with the same two accuracies are one line
    for name, pair in points.items():
        tied.setdefault(tuple(Fraction(a) for a in pair), []).append(name)
    s, r = max(tied)  # the most accurate line at q = 0, and of those the one that rises fastest
    q, pieces = Fraction(0), []
    while True:
        crossings = [
            ((s - s_b) / ((s - s_b) + (r_b - r)), r_b - s_b, (s_b, r_b))
            for s_b, r_b in tied
            if (r_b - s_b) > (r - s)  # only a line that rises faster can overtake
        ]
        q_next, _, nxt = min(crossings, key=lambda c: (c[0], -c[1]), default=(Fraction(1), None, None))
        if q_next >= 1:
            q_next, nxt = Fraction(1), None
        names = tuple(tied[s, r])
        pieces.append(Deployment(float(q), float(q_next), names, *points[names[0]]))
        if nxt is None:
            return pieces
        q, (s, r) = q_next, nxt


def deployment_sentence(pieces: list[Deployment]) -> str:
    """Return the pieces of :func:`best_under_attack` as one sentence, e.g. ``"below q = 0.0304 deploy
    standard; from q = 0.0304 to 0.238 linf-0.3; from q = 0.238 on trades-6"`` (q to three significant
    digits, tied models joined by ``" or "``). Raises ``ValueError`` for anything but that list."""
    pieces = _check_pieces(pieces)
    if len(pieces) == 1:
        return f"at every q deploy {pieces[0].model}"
    words = [f"below q = {pieces[0].q_to:.3g} deploy {pieces[0].model}"]
    words += [f"from q = {p.q_from:.3g} to {p.q_to:.3g} {p.model}" for p in pieces[1:-1]]
    words.append(f"from q = {pieces[-1].q_from:.3g} on {pieces[-1].model}")
    return "; ".join(words)


def deployment_table(pieces: list[Deployment]) -> str:
    """Return the Markdown table of :func:`best_under_attack`: one row per piece with its range of q
    (the fraction of attacked inputs), the best model, its standard and robust accuracy, and its
    expected accuracy at both ends of the range (percent). Raises ``ValueError`` for anything but that list."""
    pieces = _check_pieces(pieces)
    rows = [
        {
            "q_from": p.q_from,
            "q_to": p.q_to,
            "model": p.model,
            "standard": p.standard,
            "robust": p.robust,
            "at_from": p.expected(p.q_from),
            "at_to": p.expected(p.q_to),
        }
        for p in pieces
    ]
    columns = {
        "q_from": "q from",
        "q_to": "q to",
        "model": "best model",
        "standard": "its standard accuracy",
        "robust": "its robust accuracy",
        "at_from": "expected accuracy at q from",
        "at_to": "expected accuracy at q to",
    }
    formats = {"q_from": ".3g", "q_to": ".3g"} | {k: ".1%" for k in ("standard", "robust", "at_from", "at_to")}
    return report.markdown_table(rows, columns, formats)


def deployment_figure(points: dict[str, tuple[float, float]], pieces: list[Deployment]):
    """Return :func:`robustutils.plots.expected_accuracy` of ``points`` (name -> (standard, robust),
    fractions) with the upper envelope ``pieces`` of :func:`best_under_attack`. Raises ``ValueError``
    when ``points`` is not such a dict or ``pieces`` is not its envelope."""
    points, pieces = _check_points(points), _check_pieces(pieces)
    missing = sorted({name for p in pieces for name in p.models} - set(points))
    if missing:
        raise ValueError(f"pieces name models that points lacks ({missing}): pass the points best_under_attack got")
    return plots.expected_accuracy(points, [(p.q_from, p.q_to, p.standard, p.robust, p.model) for p in pieces])


# --- This run beside the papers ---------------------------------------------------------------


def scale(name: str, profile: str) -> str:
    """Return the scale of the model ``name`` at ``profile``: ``"ci: mnist_cnn, 10,000 images, 3 epochs"``
    (the training-set size on disk when the recipe takes all of it; for CIFAR-10 the copy it was read
    from, :func:`robustutils.data.title`, and the augmentation, e.g. ``", crop-flip"``)."""
    rec = registry.recipe(name, profile)
    n = rec.n_train if rec.n_train is not None else len(data.split(rec.dataset, True)[1])
    copy = f" of {data.title(rec.dataset)}" if rec.dataset == "cifar10" else ""
    augment = f", {rec.augment}" if rec.augment else ""
    return f"{profile}: {rec.arch}, {n:,} images{copy}, {rec.epochs} epochs{augment}"


def training_summary(name: str, profile: str) -> str:
    """Return how the model ``name`` was trained: its :func:`scale` and training attack, e.g.
    ``"ci: mnist_cnn, 10,000 images, 3 epochs; PGD-4"`` or ``"...; FGSM, random start, step 1.25 ε"``."""
    atk = registry.recipe(name, profile).attack
    if atk is None:
        how = "standard training"
    elif atk["steps"] == 1 and atk["step_size"] is not None:
        how = f"FGSM, random start, step {atk['step_size'] / atk['eps']:g} ε"
    else:
        how = f"PGD-{atk['steps']}"
    return f"{scale(name, profile)}; {how}"


#: The papers' numbers this chapter sets beside its own, as (dataset, norm, eps, model, the paper's clean /
#: robust, AutoAttack's clean / robust on the authors' released model). AutoAttack's figures: Croce & Hein
#: (2020), the MNIST ℓ∞ and CIFAR-10 ℓ2 tables of fra31/auto-attack's README, and RobustBench's leaderboard
#: (Engstrom2019Robustness), which reports the same evaluation.
PAPER_NUMBERS = [
    (
        "mnist",
        "linf",
        0.3,
        "MNIST ℓ∞ 0.3 (Madry et al. 2018)",
        "98.8% / 89.3% (PGD-100, 20 restarts)",
        "98.53% / 88.50% (Croce & Hein 2020)",
    ),
    (
        "cifar10",
        "l2",
        0.5,
        "CIFAR-10 ℓ2 0.5 (Ilyas et al. 2019, Table 7)",
        "90.8% / 70.9%",
        "90.83% / 69.24% (RobustBench Engstrom2019Robustness)",
    ),
    (
        "cifar10",
        "linf",
        8 / 255,
        "CIFAR-10 ℓ∞ 8/255 (Engstrom et al. 2019, robustness library)",
        "87.03% / 53.29% (PGD)",
        "87.03% / 49.25% (RobustBench Engstrom2019Robustness)",
    ),
]


def paper_table(by_panel: dict[tuple[str, str], Panel], profile: str) -> str:
    """Return the Markdown table of :data:`PAPER_NUMBERS` (the paper's figure and AutoAttack's on the
    authors' released model) beside this run's clean / worst-case accuracy of the same threat model
    (from ``by_panel``; a dash where the grid lacks the ε) and its :func:`scale`."""
    rows = []
    for d, norm, eps, model, paper, autoattack in PAPER_NUMBERS:
        p = by_panel.get((d, norm))
        r = None if p is None or eps not in p.eps else p.results[p.eps.index(eps)]
        rows.append(
            {
                "model": model,
                "paper": paper,
                "autoattack": autoattack,
                "scale": scale(registry.model_name(d, norm, eps), profile),
                "ours": None if r is None else f"{r['clean_acc']:.1%} / {r['worst_acc']:.1%}",
            }
        )
    return report.markdown_table(
        rows,
        {
            "model": "model",
            "paper": "paper: clean / robust",
            "autoattack": "AutoAttack on the released model",
            "ours": "this run: clean / worst case",
            "scale": "this run's scale",
        },
    )


#: The least standard accuracy the book aims its CIFAR-10 models at, by name (80% for the standard
#: model, 60% for the ℓ2 ε 0.5 model, the robust source of Ilyas et al.'s D_R, 90.8% in their Table 7).
CIFAR_TARGETS = {"cifar10/standard": 0.80, "cifar10/l2-0.5": 0.60}


def target_rows(by_panel: dict[tuple[str, str], Panel], profile: str, targets=None) -> list[dict]:
    """Return, for each model of ``targets`` (default :data:`CIFAR_TARGETS`, name -> least standard
    accuracy), its standard accuracy (from ``by_panel``), the target, whether it is met, and what the
    model cost to train: dicts ``{"model", "clean", "target", "met", "scale", "train_s", "epoch_s"}``
    (fractions; seconds as recorded when the model was trained, on the device it was trained on)."""
    rows = []
    for name, target in (CIFAR_TARGETS if targets is None else targets).items():
        found = [(p, i) for p in by_panel.values() for i, n in enumerate(p.names) if n == name]
        if not found:
            held = [p.names for p in by_panel.values()]
            raise ValueError(f"{name!r} is in none of the panels: the panels hold {held}")
        p, i = found[0]
        meta = zoo.get(name, profile, progress=False)[1]
        epochs = registry.recipe(name, profile).epochs
        rows.append(
            {
                "model": name,
                "clean": p.standard[i],
                "target": target,
                "met": p.standard[i] >= target,
                "scale": scale(name, profile),
                "train_s": meta["train_time_s"],
                "epoch_s": meta["train_time_s"] / epochs,
            }
        )
    return rows


def target_table(rows: list[dict]) -> str:
    """Return :func:`target_rows` as a Markdown table."""
    shown = [{**r, "met": "yes" if r["met"] else "no"} for r in rows]
    return report.markdown_table(
        shown,
        {
            "model": "model",
            "clean": "standard accuracy",
            "target": "target",
            "met": "met",
            "train_s": "training (s)",
            "epoch_s": "s per epoch",
            "scale": "scale",
        },
        {"clean": ".1%", "target": ".0%", "train_s": ",.0f", "epoch_s": ",.1f"},
    )


# --- What the JPEG copy of CIFAR-10 changes -------------------------------------------------------

#: The registry names of the CIFAR-10 models that :func:`jpeg_copy_rows` measures on the exact images
#: and on their JPEG copies.
JPEG_COPY_MODELS = ("cifar10/standard", "cifar10/l2-0.5", "cifar10/linf-8/255")


def jpeg_copy_rows(profile: str, names=JPEG_COPY_MODELS, *, root=None) -> list[dict] | None:
    """Return, for each model ``name`` of ``profile`` (trained on the CIFAR-10 JPEG copy), its standard
    accuracy on the exact CIFAR-10 test images of the shortened copy and on their JPEG copies, image for
    image (:func:`robustutils.data.cifar10_jpeg_twins`): dicts ``{"model", "n", "exact", "jpeg",
    "difference_pp"}`` (fractions in [0, 1]; ``difference_pp``: JPEG minus exact, percentage points).
    Return None when the models are not trained on the JPEG copy (the original CIFAR-10 is there, e.g.
    on Colab: nothing to compare) or the exact images are missing."""
    if data.cifar10_copy(root) != "jpeg":
        return None
    try:
        exact, jpeg, y = data.cifar10_jpeg_twins(root)
    except data.DataMissingError:
        return None
    rows = []
    for name in names:
        model, _ = zoo.get(name, profile, progress=False)
        a = evaluate.evaluate(model, exact, y)["clean_acc"]
        b = evaluate.evaluate(model, jpeg, y)["clean_acc"]
        rows.append({"model": name, "n": len(y), "exact": a, "jpeg": b, "difference_pp": 100 * (b - a)})
    return rows


def jpeg_copy_table(rows: list[dict]) -> str:
    """Return :func:`jpeg_copy_rows` as a Markdown table."""
    return report.markdown_table(
        rows,
        {
            "model": "model (trained on the JPEG copy)",
            "n": "test images",
            "exact": "exact images",
            "jpeg": "their JPEG copies",
            "difference_pp": "JPEG − exact (pp)",
        },
        {"n": ",", "exact": ".1%", "jpeg": ".1%", "difference_pp": "+.1f"},
    )


# --- The papers' own published models (the colab and full profiles) ----------------------------


def published_robustness(
    model, profile: str, *, at: tuple[str, float], n_test: int, batch_size: int = 500, root=None
) -> dict:
    """Return the robust accuracy of a published model (:func:`robustutils.published.load`)
    on the first ``n_test`` CIFAR-10 test images under ``profile``'s evaluation at ``at = (norm, eps)``
    (pixel units): our PGD, then AutoAttack's attacks as a cascade (:func:`robustutils.zoo.eval_attacks`),
    ``batch_size`` images per forward pass.
    The result is :func:`robustutils.zoo.robustness`'s dict, cached by :func:`robustutils.zoo.cached_cascade` under the
    model's source and the :func:`robustutils.published.weights_fingerprint` of its weights. Raises
    ``ValueError`` for a model that is not a CIFAR-10 published model, a bad ``at`` or an ``n_test``
    the test set cannot meet (:func:`robustutils.data.check_request`)."""
    found = getattr(model, "entry", None)
    if found is None or found.dataset != "cifar10":
        raise ValueError(
            "published_robustness takes a CIFAR-10 model of robustutils.published.load (e.g. "
            f"published.load('Standard')); got {type(model).__name__}"
        )
    if not (isinstance(at, (tuple, list)) and len(at) == 2 and isinstance(at[0], str)):
        raise ValueError(f"at is the threat model as a pair (norm, eps), e.g. at=('linf', 8 / 255); got {at!r}")
    x, y = data.test_set("cifar10", n_test)
    key = {"model": model.source, "weights": published.weights_fingerprint(model)}
    name = f"published-cifar10-{found.threat_model}-{found.name}"
    attacks_by_name = zoo.eval_attacks(profile, *at)
    return zoo.cached_cascade(model, x, y, attacks_by_name, key, name=name, batch_size=batch_size, root=root)


#: The rows chapter 3 adds at the colab and full profiles, as ``(RobustBench name, its threat model, the
#: threat model it is attacked in (norm, eps in pixel units))``. RobustBench lists the standard model on
#: its ℓ∞ and its ℓ2 leaderboards, 94.78% clean and 0% robust on both (its model_info/cifar10/L2/Standard.json).
PUBLISHED_ROWS = (
    ("Standard", "Linf", ("linf", 8 / 255)),
    ("Standard", "Linf", ("l2", 0.5)),
    ("Engstrom2019Robustness", "Linf", ("linf", 8 / 255)),
    ("Engstrom2019Robustness", "L2", ("l2", 0.5)),
)


@dataclasses.dataclass(frozen=True)
class PublishedRow:
    """One published CIFAR-10 model attacked in one threat model: its RobustBench ``entry``
    (:class:`robustutils.published.Entry`, with RobustBench's clean and AutoAttack figures),
    ``norm`` and ``eps`` (pixel units), and this run's ``result`` (:func:`published_robustness`)."""

    entry: published.Entry
    norm: str
    eps: float
    result: dict

    @property
    def model(self) -> str:
        """Return the model's name in the tables, e.g. ``"Standard"`` or
        ``"Engstrom2019Robustness (ℓ∞ 8/255)"`` (with the threat model it was trained against)."""
        if self.entry.name == "Standard":
            return self.entry.name
        norm = self.entry.threat_model.lower()
        return f"{self.entry.name} ({NORM_TEXT[norm]} {eps_text('cifar10', norm, self.entry.eps)})"

    @property
    def threat(self) -> str:
        """The threat model it is attacked in, as :func:`threat_text` writes it."""
        return threat_text("cifar10", self.norm, self.eps)


def published_study(profile: str, *, device=None, progress: bool = False) -> list[PublishedRow]:
    """Return one :class:`PublishedRow` per row of :data:`PUBLISHED_ROWS`, each model loaded once
    (:func:`robustutils.published.load`) and evaluated on ``profile``'s ``tradeoff``
    ``published`` ``n_test`` test images, ``batch_size`` at a time (:func:`published_robustness`).
    Raises ``ValueError`` at a profile that does not load the published models (no ``published``
    setting: smoke and ci)."""
    settings = profiles.config(profile, "tradeoff").get("published")
    if not settings:
        raise ValueError(
            f"profile {profile!r} does not load the published models (they need a download and a GPU): "
            "use 'colab' or 'full'"
        )
    loaded, rows = {}, []
    for name, threat_model, (norm, eps) in _progress(list(PUBLISHED_ROWS), "published models", progress):
        if (name, threat_model) not in loaded:
            loaded[name, threat_model] = published.load(name, threat_model=threat_model, device=device)
        model = loaded[name, threat_model]
        result = published_robustness(
            model, profile, at=(norm, eps), n_test=settings["n_test"], batch_size=settings["batch_size"]
        )
        rows.append(PublishedRow(model.entry, norm, eps, result))
    return rows


def published_rows(rows: list[PublishedRow], profile: str) -> list[dict]:
    """Return one :func:`robustutils.report.robustness_row` per :class:`PublishedRow` (for
    :func:`robustness_table`)."""
    return [report.robustness_row(r.model, r.threat, r.result, pgd_key(profile)) for r in rows]


def published_table(rows: list[PublishedRow]) -> str:
    """Return the Markdown table of the published models beside RobustBench's figures: the model and
    the threat it is attacked in, RobustBench's clean / AutoAttack accuracy (Croce et al. 2021, on all
    10,000 test images) and this run's clean / worst case of our PGD and AutoAttack, with the number
    of test images."""
    table = [
        {
            "model": r.model,
            "threat": r.threat,
            "robustbench": f"{r.entry.clean:.2f}% / {r.entry.autoattack:.2f}%",
            "ours": f"{r.result['clean_acc']:.1%} / {r.result['worst_acc']:.1%}",
            "n": f"{r.result['n']:,}",
        }
        for r in rows
    ]
    columns = {
        "model": "published model",
        "threat": "attack",
        "robustbench": "RobustBench: clean / AutoAttack",
        "ours": "this run: clean / worst case",
        "n": "test images",
    }
    return report.markdown_table(table, columns)


def published_claims(rows: list[PublishedRow]) -> list[dict]:
    """Return chapter 3's claims on the published models (keyword arguments of
    :meth:`robustutils.report.Chapter.claim`): the standard model is brittle at ℓ∞ 8/255 (worst case
    below 1%), both robust models are less accurate than it (Tsipras et al.'s trade-off), and, not
    asserted, this run's worst case of each robust model is within two standard errors (at least one
    point) of RobustBench's AutoAttack figure."""
    by = {(r.entry.name, r.entry.threat_model, r.norm): r for r in rows}
    standard, robust = by["Standard", "Linf", "linf"], [r for r in rows if r.entry.name != "Standard"]
    clean = ", ".join(f"{r.model} {r.result['clean_acc']:.1%}" for r in [standard, *robust])

    def close(r: PublishedRow) -> bool:
        p, n = r.entry.autoattack / 100, r.result["n"]
        return abs(r.result["worst_acc"] - p) <= max(2 * (p * (1 - p) / n) ** 0.5, 0.01)

    return [
        {
            "key": "ch03-published-standard-brittle",
            "text": "RobustBench's standard CIFAR-10 model keeps less than 1% of the test images at ℓ∞ ε 8/255.",
            "paper": "0.00% under AutoAttack (RobustBench, Standard)",
            "measured": f"{standard.result['worst_acc']:.1%} worst case on {standard.result['n']:,} images",
            "held": standard.result["worst_acc"] < 0.01,
        },
        {
            "key": "ch03-published-robust-less-accurate",
            "text": "The released robust CIFAR-10 models are less accurate on clean test images than the standard one.",
            "paper": "94.78% (Standard) vs 87.03% (ℓ∞ 8/255) and 90.83% (ℓ2 0.5) clean (RobustBench; the "
            "trade-off of Tsipras et al. 2019)",
            "measured": clean,
            "held": all(r.result["clean_acc"] < standard.result["clean_acc"] for r in robust),
        },
        {
            "key": "ch03-published-matches-robustbench",
            "text": "This run's worst case of our PGD and AutoAttack on each released robust model is within two "
            "standard errors of its test sample (at least 1 point) of RobustBench's AutoAttack figure (not "
            "asserted: a smaller sample and another AutoAttack seed).",
            "paper": ", ".join(f"{r.model} {r.entry.autoattack:.2f}%" for r in robust) + " (RobustBench, AutoAttack)",
            "measured": ", ".join(f"{r.model} {r.result['worst_acc']:.1%} on {r.result['n']:,}" for r in robust),
            "held": all(close(r) for r in robust),
            "checked": False,
        },
    ]
