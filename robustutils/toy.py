"""The toy model of Tsipras et al. (2019), section 2.1, where robustness and accuracy conflict.

The distribution, with ``d`` weak features and one robust feature::

    y  ~ uniform{-1, +1}
    x1 = +y with probability p, else -y          (robust: a +-1 value moves by < 1 only)
    x2, ..., x_{d+1} ~ N(eta * y, 1) i.i.d.      (weak: each barely correlated with y)

An input is a float tensor ``x`` of shape ``[n, d + 1]``: column 0 is ``x1``, columns ``1:`` are
the weak features. Labels ``y`` are floats in ``{-1, +1}`` so that ``y * score`` is a margin.
The threat model is l_inf with radius ``eps`` on *all* ``d + 1`` coordinates (the paper's
Theorem 2.1 uses ``eps >= 2 * eta``). Unlike the image attacks, ``eps`` here is not in pixel units:
the inputs are not images, and ``eps`` is measured in the units of the features themselves (as
``eta`` is). Accuracies are fractions in ``[0, 1]``.

Three kinds of functions: sampling and classifiers, exact closed forms (population values), and
Monte Carlo estimates with their statistical tolerance.
"""

import math

import torch
import torch.nn.functional as F


def _check(
    d: int | None = None,
    eta: float | None = None,
    p: float | None = None,
    eps: float | None = None,
    n: int | None = None,
) -> None:
    """Raise ``ValueError`` for a parameter outside the model's domain; return nothing."""
    if d is not None and (int(d) != d or d < 1):
        raise ValueError(f"d (number of weak features) must be an integer >= 1, got {d}")
    if eta is not None and not eta > 0:
        raise ValueError(f"eta (weak-feature mean) must be > 0, got {eta}")
    if p is not None and not 0.5 < p < 1:
        raise ValueError(f"p (probability that x1 = y) must lie in (0.5, 1), got {p}")
    if eps is not None and not eps >= 0:
        raise ValueError(f"eps (l_inf radius) must be >= 0, got {eps}")
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"n (number of samples) must be an integer >= 1, got {n}")


def _phi(z: float) -> float:
    """Return the standard normal CDF at ``z`` (a probability)."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# --- the distribution --------------------------------------------------------------------------


def eta_for(d: int, c: float = 3.0) -> float:
    """Return the weak-feature mean ``eta = c / sqrt(d)``; ``c >= 3`` gives ``f_avg`` > 99% accuracy."""
    _check(d=d)
    return c / math.sqrt(d)


def sample(
    n: int, d: int, eta: float, p: float = 0.95, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points; return ``x`` (float ``[n, d + 1]``, column 0 = ``x1``) and ``y`` (``[n]``, +-1)."""
    _check(d=d, eta=eta, p=p, n=n)
    y = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    agree = torch.rand(n, generator=generator) < p
    x1 = torch.where(agree, y, -y)
    weak = eta * y[:, None] + torch.randn(n, d, generator=generator)
    return torch.cat([x1[:, None], weak], dim=1), y


# --- classifiers: functions of x returning predictions in {-1, +1} (0 only on an exact tie) ---


def linear_predict(w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``sign(x @ w + b)``, shape ``[n]``; ``w`` has one weight per coordinate (``d + 1``)."""
    return torch.sign(x @ w + b)


def averaging_weights(d: int) -> tuple[torch.Tensor, float]:
    """Return ``(w, b)`` of ``f_avg``: weight ``1/d`` on each weak feature, 0 on ``x1``, bias 0."""
    _check(d=d)
    return torch.cat([torch.zeros(1), torch.full((d,), 1.0 / d)]), 0.0


def robust_weights(d: int) -> tuple[torch.Tensor, float]:
    """Return ``(w, b)`` of ``f_robust``: weight 1 on ``x1``, 0 on every weak feature, bias 0."""
    _check(d=d)
    return torch.cat([torch.ones(1), torch.zeros(d)]), 0.0


def f_avg(x: torch.Tensor) -> torch.Tensor:
    """Return ``sign(mean(x2, ..., x_{d+1}))``, the paper's accurate but brittle classifier."""
    return torch.sign(x[:, 1:].mean(dim=1))


def f_robust(x: torch.Tensor) -> torch.Tensor:
    """Return ``sign(x1)``, the classifier that uses only the robust feature (accuracy ``p``)."""
    return torch.sign(x[:, 0])


def mixture_predict(x: torch.Tensor, q: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return, per point, ``f_avg(x)`` with probability ``q`` and ``f_robust(x)`` otherwise (a fresh coin each)."""
    if not 0 <= q <= 1:
        raise ValueError(f"q (probability of using f_avg) must lie in [0, 1], got {q}")
    coin = torch.rand(x.shape[0], generator=generator) < q
    return torch.where(coin, f_avg(x), f_robust(x))


# --- adversaries ---------------------------------------------------------------------------------


def adversary(x: torch.Tensor, y: torch.Tensor, eta: float) -> torch.Tensor:
    """Return ``x`` with every weak feature moved by ``-2 * eta * y`` and ``x1`` untouched.

    The perturbation has l_inf norm exactly ``2 * eta``. It maps the weak features of class
    ``y`` onto those of class ``-y`` (``N(eta y, 1) -> N(-eta y, 1)``): the adversary in the
    proof of Theorem 2.1, which needs no change of ``x1``. The threat model would allow moving
    ``x1`` by ``2 * eta`` as well, but while ``2 * eta < 1`` that cannot change its sign.
    :func:`linear_attack` is the exact worst case for a linear classifier and moves ``x1`` too.
    """
    _check(eta=eta)
    shift = torch.zeros_like(x)
    shift[:, 1:] = -2 * eta * y[:, None]
    return x + shift


def linear_attack(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Return the worst-case l_inf perturbation of ``x`` for ``sign(w.x + b)``: ``x - eps * y * sign(w)``.

    Every coordinate, ``x1`` included, moves by ``eps`` against the label (coordinates with zero
    weight stay). It attains the minimum margin of :func:`linear_robust_margin`.
    """
    _check(eps=eps)
    return x - eps * y[:, None] * torch.sign(w)


def linear_robust_margin(
    w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float
) -> torch.Tensor:
    """Return ``y (w.x + b) - eps ||w||_1``, shape ``[n]``: the smallest margin over the l_inf ball.

    For a linear score the minimum over ``||delta||_inf <= eps`` is closed form (Hoelder),
    taken over all ``d + 1`` coordinates. The point is robustly correct iff this is ``> 0``.
    """
    _check(eps=eps)
    return y * (x @ w + b) - eps * w.abs().sum()


# --- exact closed forms (population values, fractions in [0, 1]) ---------------------------------


def avg_accuracy(d: int, eta: float) -> float:
    """Return ``f_avg``'s standard accuracy ``P[N(eta, 1/d) > 0] = Phi(eta sqrt(d))``."""
    _check(d=d, eta=eta)
    return _phi(eta * math.sqrt(d))


def avg_robust_accuracy(d: int, eta: float, eps: float | None = None) -> float:
    """Return ``f_avg``'s accuracy under its worst l_inf attack of radius ``eps`` (default ``2 eta``).

    The attack shifts the weak-feature mean to ``eta - eps``: ``Phi((eta - eps) sqrt(d))``,
    which is ``Phi(-eta sqrt(d))`` at ``eps = 2 eta``.
    """
    eps = 2 * eta if eps is None else eps
    _check(d=d, eta=eta, eps=eps)
    return _phi((eta - eps) * math.sqrt(d))


def robust_accuracy_bound(delta: float, p: float = 0.95) -> float:
    """Return Theorem 2.1's ceiling ``min(1, p / (1 - p) * delta)`` on robust accuracy at ``eps >= 2 eta``.

    ``delta`` is the classifier's standard error rate (``1 - accuracy``). At ``p = 0.95`` the
    ceiling is ``19 delta``; it is attained by ``f_robust`` at ``delta = 1 - p``.
    """
    _check(p=p)
    if not 0 <= delta <= 1:
        raise ValueError(f"delta (standard error rate) must lie in [0, 1], got {delta}")
    return min(1.0, p / (1 - p) * delta)


def linear_accuracy(w: torch.Tensor, b: float | torch.Tensor, eta: float, p: float = 0.95, eps: float = 0.0) -> float:
    """Return the exact accuracy of ``sign(w.x + b)`` under the worst l_inf attack of radius ``eps``.

    Given ``y`` and ``s = y x1``, the robust margin is normal with mean
    ``w1 s + y b + eta sum(w_weak) - eps ||w||_1`` and variance ``||w_weak||^2``; the result
    averages ``P[margin > 0]`` over ``y = +-1`` (1/2 each) and ``s = +1`` (prob. ``p``) or ``-1``.
    ``eps = 0`` gives the standard accuracy.
    """
    _check(eta=eta, p=p, eps=eps)
    w = w.detach().double()
    b = float(b)
    spread = w[1:].norm().item()
    total = 0.0
    for y, s, weight in [(1, 1, p / 2), (1, -1, (1 - p) / 2), (-1, 1, p / 2), (-1, -1, (1 - p) / 2)]:
        mean = w[0].item() * s + y * b + eta * w[1:].sum().item() - eps * w.abs().sum().item()
        total += weight * (_phi(mean / spread) if spread > 0 else float(mean > 0))
    return total


def mixture_accuracy(q: float, d: int, eta: float, p: float = 0.95, eps: float = 0.0) -> float:
    """Return the exact expected accuracy of the ``q``-mixture of ``f_avg`` and ``f_robust`` at radius ``eps``.

    Both parts have non-negative weights on disjoint coordinates, so the single perturbation
    ``-eps * y`` on every coordinate is worst for both at once and the accuracies mix linearly.
    """
    accs = [linear_accuracy(*weights(d), eta, p, eps) for weights in (averaging_weights, robust_weights)]
    return q * accs[0] + (1 - q) * accs[1]


# --- Monte Carlo estimates ---------------------------------------------------------------------


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of predictions equal to the label (a tie, prediction 0, counts as wrong)."""
    return (pred == y).float().mean().item()


def robust_accuracy(w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """Return the fraction of points that ``sign(w.x + b)`` classifies correctly under every l_inf attack
    of radius ``eps``."""
    return (linear_robust_margin(w, b, x, y, eps) > 0).float().mean().item()


def mc_tolerance(prob: float, n: int, z: float = 5.0) -> float:
    """Return the allowed gap between a Monte Carlo fraction over ``n`` samples and its true value ``prob``.

    That is ``z`` standard errors, ``z sqrt(prob (1 - prob) / n)``, plus ``z / n`` (``z`` counts)
    of slack, which covers the skew of a count of rare events when ``prob`` is near 0 or 1.
    """
    _check(n=n)
    return z * math.sqrt(prob * (1 - prob) / n) + z / n


def avg_monte_carlo(
    n: int, d: int, eta: float, p: float = 0.95, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Return ``f_avg``'s Monte Carlo (standard, robust) accuracy on ``n`` fresh points, robust under
    :func:`adversary`."""
    x, y = sample(n, d, eta, p, generator)
    return accuracy(f_avg(x), y), accuracy(f_avg(adversary(x, y, eta)), y)


def linear_report(
    w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor, eta: float, p: float = 0.95
) -> dict[str, float]:
    """Return ``sign(w.x + b)``'s standard and robust (``eps = 2 eta``) accuracy: Monte Carlo on ``(x, y)``
    and exact."""
    eps = 2 * eta
    return {
        "standard": accuracy(linear_predict(w, b, x), y),
        "robust": robust_accuracy(w, b, x, y, eps),
        "standard_exact": linear_accuracy(w, b, eta, p),
        "robust_exact": linear_accuracy(w, b, eta, p, eps),
    }


def mixture_report(
    q: float, x: torch.Tensor, y: torch.Tensor, eta: float, p: float = 0.95, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Return the ``q``-mixture's standard and robust (``eps = 2 eta``) accuracy: Monte Carlo on ``(x, y)`` and exact.

    The Monte Carlo robust value attacks with :func:`adversary`, which is the worst case for both
    parts while ``2 eta < 1``.
    """
    d = x.shape[1] - 1
    return {
        "standard": accuracy(mixture_predict(x, q, generator), y),
        "robust": accuracy(mixture_predict(adversary(x, y, eta), q, generator), y),
        "standard_exact": mixture_accuracy(q, d, eta, p),
        "robust_exact": mixture_accuracy(q, d, eta, p, 2 * eta),
    }


# --- Theorem 2.2: standard versus adversarial training of a linear classifier --------------------


def fit_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 0.0,
    steps: int = 300,
    lr: float = 0.05,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``sign(w.x + b)`` by full-batch Adam on the logistic loss of the worst-case margin; return ``(w, b)``.

    The loss is ``mean softplus(-(y (w.x + b) - eps ||w||_1)) + weight_decay / 2 ||w||^2``:
    ``eps = 0`` is standard training, ``eps > 0`` is adversarial training with the exact inner
    maximisation (:func:`linear_robust_margin`). The learning rate decays to 0 on a cosine so
    that weights the l_1 term pushes to zero settle there. ``w`` starts at ``N(0, 0.01^2)`` drawn
    from ``generator``; the returned tensors are detached.
    """
    _check(eps=eps)
    w = (0.01 * torch.randn(x.shape[1], generator=generator)).requires_grad_()
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(steps):
        loss = F.softplus(-linear_robust_margin(w, b, x, y, eps)).mean() + weight_decay / 2 * w.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return w.detach(), b.detach()


# --- the chapter's bookkeeping: sets of classifiers, agreement and the bound ---------------------


def avg_sweep_misses(
    by_d: dict[int, tuple[float, float]],
    eta: float,
    by_eta: dict[float, tuple[float, float]],
    d: int,
    n: int,
    z: float = 5.0,
) -> list[tuple[int, float]]:
    """Return the ``(d, eta)`` grid points where a Monte Carlo accuracy of ``f_avg`` misses its closed form.

    ``by_d`` maps a number of weak features to ``(standard, robust)`` estimates at ``eta``, and
    ``by_eta`` maps a weak-feature mean to the same at ``d``, each over ``n`` samples (as
    :func:`avg_monte_carlo` returns them). A point misses when either estimate lies farther than
    :func:`mc_tolerance` from :func:`avg_accuracy` or :func:`avg_robust_accuracy`. Empty: all agree.
    """
    grid = [(k, eta, mc) for k, mc in by_d.items()] + [(d, e, mc) for e, mc in by_eta.items()]
    return [
        (k, e)
        for k, e, (std, rob) in grid
        if abs(std - avg_accuracy(k, e)) > mc_tolerance(avg_accuracy(k, e), n, z)
        or abs(rob - avg_robust_accuracy(k, e)) > mc_tolerance(avg_robust_accuracy(k, e), n, z)
    ]


def classifier_reports(
    trained: dict[str, tuple[torch.Tensor, float | torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    p: float = 0.95,
    mixture_q=(),
    generator: torch.Generator | None = None,
) -> dict[str, dict[str, float]]:
    """Return the reports of ``f_avg``, ``f_robust``, the linear classifiers ``trained`` and the mixtures, in order.

    ``trained`` maps a name to ``(w, b)``; ``(x, y)`` is the test sample (``[n, d + 1]``, ``[n]``).
    Each report is :func:`linear_report`'s (or :func:`mixture_report`'s, named ``"mixture, q = <q>"``,
    one per ``q`` in ``mixture_q``, drawing their coins from ``generator``): Monte Carlo and exact
    standard and robust (``eps = 2 eta``) accuracy, fractions in ``[0, 1]``.
    """
    d = x.shape[1] - 1
    linear = {"f_avg": averaging_weights(d), "f_robust = sign(x1)": robust_weights(d), **trained}
    reports = {name: linear_report(w, b, x, y, eta, p) for name, (w, b) in linear.items()}
    return reports | {f"mixture, q = {q}": mixture_report(q, x, y, eta, p, generator) for q in mixture_q}


def reports_table(reports: dict[str, dict[str, float]], p: float = 0.95) -> str:
    """Return a Markdown table of ``reports`` (:func:`classifier_reports`): per classifier its standard
    and robust accuracy, Monte Carlo and exact, and Theorem 2.1's bound at its exact standard accuracy."""
    from .report import markdown_table

    rows = [
        {"name": name, **r, "bound": robust_accuracy_bound(1 - r["standard_exact"], p)} for name, r in reports.items()
    ]
    columns = {
        "name": "classifier",
        "standard": "standard",
        "standard_exact": "exact",
        "robust": "robust",
        "robust_exact": "exact",
        "bound": "bound",
    }
    return markdown_table(rows, columns, dict.fromkeys(list(columns)[1:], ".4f"))


def monte_carlo_misses(reports: dict[str, dict[str, float]], n: int, z: float = 5.0) -> list[str]:
    """Return the names of the ``reports`` whose Monte Carlo standard or robust accuracy (over ``n``
    test points) lies farther than :func:`mc_tolerance` from its exact value. Empty: all agree."""
    return [
        name
        for name, r in reports.items()
        if any(abs(r[k] - r[f"{k}_exact"]) > mc_tolerance(r[f"{k}_exact"], n, z) for k in ("standard", "robust"))
    ]


def bound_gaps(
    reports: dict[str, dict[str, float]], n: int, p: float = 0.95, z: float = 5.0
) -> dict[str, tuple[float, bool]]:
    """Return, per classifier of ``reports``, ``(robust - bound, under)`` for Theorem 2.1's bound.

    ``robust - bound`` uses the exact values (``<= 0`` under the bound). ``under`` holds when the
    exact point is under the bound and the Monte Carlo point (``n`` test points) is too, within its
    sampling error: ``z`` standard errors of the robust accuracy plus ``p / (1 - p)`` times those of
    the standard one, which the bound multiplies.
    """
    out = {}
    for name, r in reports.items():
        tol_std, tol_rob = mc_tolerance(r["standard_exact"], n, z), mc_tolerance(r["robust_exact"], n, z)
        over = r["robust_exact"] - robust_accuracy_bound(1 - r["standard_exact"], p)
        mc_under = r["robust"] <= robust_accuracy_bound(1 - r["standard"], p) + tol_rob + p / (1 - p) * tol_std
        out[name] = (over, over <= 1e-9 and mc_under)
    return out


def accurate_and_brittle(report: dict[str, float], accurate: float = 0.99, brittle: float = 0.01) -> bool:
    """Return whether a report (:func:`linear_report`) is above ``accurate`` standard and below
    ``brittle`` robust accuracy, by both its Monte Carlo and its exact values (Theorem 2.2's standard training)."""
    return all(
        report[s] > accurate and report[r] < brittle
        for s, r in (("standard", "robust"), ("standard_exact", "robust_exact"))
    )


def matches_p(report: dict[str, float], p: float, n: int, z: float = 5.0, exact_tol: float = 0.005) -> bool:
    """Return whether a report's standard and robust accuracy both equal ``p`` (Theorem 2.2's adversarial
    training): the Monte Carlo values over ``n`` points within :func:`mc_tolerance`, the exact ones
    within ``exact_tol``."""
    tol = mc_tolerance(p, n, z)
    return all(abs(report[k] - p) <= tol and abs(report[f"{k}_exact"] - p) < exact_tol for k in ("standard", "robust"))


def weight_share(w: torch.Tensor) -> float:
    """Return the share of ``||w||_1`` on the robust feature ``x1`` (``w[0]``), a fraction in ``[0, 1]``."""
    return (w[0].abs() / w.abs().sum()).item()


def compare_training(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    eta: float,
    p: float,
    eps: float,
    **fit,
) -> dict[str, dict[str, float]]:
    """Fit a linear classifier to ``train`` by standard (``eps = 0``) and then adversarial training
    (radius ``eps``, :func:`fit_linear` with the keyword arguments ``fit``); return, for ``"standard"``
    and ``"adversarial"``, :func:`linear_report` on ``test`` plus ``"l1"`` (``||w||_1``) and
    ``"share"`` (:func:`weight_share`)."""
    out = {}
    for kind, train_eps in (("standard", 0.0), ("adversarial", eps)):
        w, b = fit_linear(*train, eps=train_eps, **fit)
        out[kind] = {**linear_report(w, b, *test, eta, p), "l1": w.abs().sum().item(), "share": weight_share(w)}
    return out


# --- verdicts: each claim of the chapter as this run measured it ---------------------------------
# Each returns, per statement, {"measured": a display string, "held": bool}: the keyword arguments
# of report.Chapter.claim / .check besides the statement's text and source.


def _verdict(measured: str, held: bool) -> dict:
    return {"measured": measured, "held": bool(held)}


def avg_verdicts(
    by_d: dict[int, tuple[float, float]],
    eta_fixed: float,
    by_eta: dict[float, tuple[float, float]],
    d: int,
    eta: float,
    n: int,
    z: float = 5.0,
) -> dict[str, dict]:
    """Return the verdicts of section 2.1 of Tsipras et al. on ``f_avg``.

    ``"sweep"``: every Monte Carlo point of the two sweeps (``by_d`` at ``eta_fixed``, ``by_eta`` at
    ``d``, ``n`` samples each) agrees with the closed forms (:func:`avg_sweep_misses`);
    ``"accurate_brittle"``: at ``(d, eta)`` the closed forms give more than 99% standard and less
    than 1% robust accuracy at ``eps = 2 eta``.
    """
    misses = avg_sweep_misses(by_d, eta_fixed, by_eta, d, n, z)
    points = len(by_d) + len(by_eta)
    std, rob = avg_accuracy(d, eta), avg_robust_accuracy(d, eta)
    return {
        "sweep": _verdict(f"{points - len(misses)} of {points} grid points agree", not misses),
        "accurate_brittle": _verdict(
            f"{std:.2%} standard, {rob:.2%} robust (closed form, d = {d}, η = {eta * math.sqrt(d):g}/√d)",
            std > 0.99 and rob < 0.01,
        ),
    }


def theorem_2_1_verdicts(
    reports: dict[str, dict[str, float]], n: int, p: float = 0.95, z: float = 5.0
) -> dict[str, dict]:
    """Return the verdicts of Theorem 2.1 on ``reports`` (:func:`classifier_reports` on ``n`` test points).

    ``"monte_carlo"``: every Monte Carlo accuracy agrees with its exact value (:func:`monte_carlo_misses`);
    ``"bound"``: every classifier is under the bound (:func:`bound_gaps`), measured as the count and
    the largest exact robust accuracy minus bound; ``"unmoved"``: the adversary changes none of
    ``f_robust``'s answers (equal Monte Carlo accuracies); ``"tight"``: ``f_robust``'s exact robust
    accuracy equals ``p`` and the bound at ``delta = 1 - p``.
    """
    misses = monte_carlo_misses(reports, n, z)
    gaps = bound_gaps(reports, n, p, z)
    under = sum(ok for _, ok in gaps.values())
    tight, bound = reports["f_robust = sign(x1)"], robust_accuracy_bound(1 - p, p)
    return {
        "monte_carlo": _verdict(f"{len(reports) - len(misses)} of {len(reports)} classifiers agree", not misses),
        "bound": _verdict(
            f"{under} of {len(reports)} classifiers under the bound; largest robust − bound "
            f"{max(over for over, _ in gaps.values()):+.4f} (exact)",
            under == len(reports),
        ),
        "unmoved": _verdict(
            f"{tight['standard']:.4f} standard, {tight['robust']:.4f} robust", tight["robust"] == tight["standard"]
        ),
        "tight": _verdict(
            f"{tight['standard']:.4f} standard and robust (Monte Carlo); exact "
            f"{tight['robust_exact']:.4f}, bound {bound:.4f}",
            abs(tight["robust_exact"] - bound) < 1e-9 and abs(tight["robust_exact"] - p) < 1e-9,
        ),
    }


def theorem_2_2_verdicts(
    standard: dict[str, float],
    adversarial: dict[str, float],
    w_std: torch.Tensor,
    w_adv: torch.Tensor,
    eta: float,
    n: int,
    p: float = 0.95,
    z: float = 5.0,
) -> dict[str, dict]:
    """Return the verdicts of Theorem 2.2 on a standard and an adversarially trained linear classifier.

    ``standard`` and ``adversarial`` are their :func:`linear_report` on ``n`` test points, ``w_std``
    and ``w_adv`` their weights (``[d + 1]``), ``eta`` the weak-feature mean they were trained at.
    ``"standard"``: :func:`accurate_and_brittle`; ``"adversarial"``: :func:`matches_p`;
    ``"feature"``: the share of ``||w||_1`` on ``x1`` (:func:`weight_share`) is
    below 10% for standard and above 90% for adversarial training.
    """
    share_std, share_adv = weight_share(w_std), weight_share(w_adv)
    c = eta * math.sqrt(w_std.numel() - 1)
    return {
        "standard": _verdict(
            f"{standard['standard']:.2%} standard, {standard['robust']:.2%} robust (Monte Carlo; "
            f"exact {standard['standard_exact']:.2%} / {standard['robust_exact']:.2%}) "
            f"at η = {c:g}/√d, logistic loss",
            accurate_and_brittle(standard),
        ),
        "adversarial": _verdict(
            f"{adversarial['standard']:.4f} standard, {adversarial['robust']:.4f} robust "
            f"(Monte Carlo; exact {adversarial['standard_exact']:.4f} / "
            f"{adversarial['robust_exact']:.4f})",
            matches_p(adversarial, p, n, z),
        ),
        "feature": _verdict(
            f"share of ‖w‖₁ on x1: {share_adv:.1%} adversarial, {share_std:.1%} standard training",
            share_std < 0.1 < 0.9 < share_adv,
        ),
    }
