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


def _check(d: int | None = None, eta: float | None = None, p: float | None = None,
           eps: float | None = None, n: int | None = None) -> None:
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


def sample(n: int, d: int, eta: float, p: float = 0.95,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


def linear_robust_margin(w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         eps: float) -> torch.Tensor:
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


def linear_accuracy(w: torch.Tensor, b: float | torch.Tensor, eta: float, p: float = 0.95,
                    eps: float = 0.0) -> float:
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


def robust_accuracy(w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    eps: float) -> float:
    """Return the fraction of points that ``sign(w.x + b)`` classifies correctly under every l_inf attack of radius ``eps``."""
    return (linear_robust_margin(w, b, x, y, eps) > 0).float().mean().item()


def mc_tolerance(prob: float, n: int, z: float = 5.0) -> float:
    """Return the allowed gap between a Monte Carlo fraction over ``n`` samples and its true value ``prob``.

    That is ``z`` standard errors, ``z sqrt(prob (1 - prob) / n)``, plus ``z / n`` (``z`` counts)
    of slack, which covers the skew of a count of rare events when ``prob`` is near 0 or 1.
    """
    _check(n=n)
    return z * math.sqrt(prob * (1 - prob) / n) + z / n


def avg_monte_carlo(n: int, d: int, eta: float, p: float = 0.95,
                    generator: torch.Generator | None = None) -> tuple[float, float]:
    """Return ``f_avg``'s Monte Carlo (standard, robust) accuracy on ``n`` fresh points, robust under :func:`adversary`."""
    x, y = sample(n, d, eta, p, generator)
    return accuracy(f_avg(x), y), accuracy(f_avg(adversary(x, y, eta)), y)


def linear_report(w: torch.Tensor, b: float | torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  eta: float, p: float = 0.95) -> dict[str, float]:
    """Return ``sign(w.x + b)``'s standard and robust (``eps = 2 eta``) accuracy: Monte Carlo on ``(x, y)`` and exact."""
    eps = 2 * eta
    return {"standard": accuracy(linear_predict(w, b, x), y),
            "robust": robust_accuracy(w, b, x, y, eps),
            "standard_exact": linear_accuracy(w, b, eta, p),
            "robust_exact": linear_accuracy(w, b, eta, p, eps)}


def mixture_report(q: float, x: torch.Tensor, y: torch.Tensor, eta: float, p: float = 0.95,
                   generator: torch.Generator | None = None) -> dict[str, float]:
    """Return the ``q``-mixture's standard and robust (``eps = 2 eta``) accuracy: Monte Carlo on ``(x, y)`` and exact.

    The Monte Carlo robust value attacks with :func:`adversary`, which is the worst case for both
    parts while ``2 eta < 1``.
    """
    d = x.shape[1] - 1
    return {"standard": accuracy(mixture_predict(x, q, generator), y),
            "robust": accuracy(mixture_predict(adversary(x, y, eta), q, generator), y),
            "standard_exact": mixture_accuracy(q, d, eta, p),
            "robust_exact": mixture_accuracy(q, d, eta, p, 2 * eta)}


# --- Theorem 2.2: standard versus adversarial training of a linear classifier --------------------

def fit_linear(x: torch.Tensor, y: torch.Tensor, eps: float = 0.0, steps: int = 300, lr: float = 0.05,
               weight_decay: float = 0.0,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
