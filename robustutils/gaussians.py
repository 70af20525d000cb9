"""The theoretical model of Ilyas et al. (2019), section 4 and appendix E: maximum-likelihood
classification between two Gaussians, with and without an l_2 adversary.

The distribution (their eq. 10)::

    y ~ uniform{-1, +1}
    x ~ N(y * mu_star, sigma_star)

The learner fits Gaussian parameters ``(mu, sigma)`` by maximum likelihood (eq. 11) and classifies
by the likelihood test ``sign(x^T sigma^-1 mu)``. The learnt ``sigma`` defines the metric
``<a, b> = a^T sigma^-1 b`` (the Mahalanobis distance) in which the classifier sees changes of its
input; the adversary is bounded in the l_2 metric instead. Robust maximum likelihood (eq. 12)
minimises the expected negative log-likelihood (NLL) of the worst perturbed point.

Conventions. Inputs ``x`` are float tensors of shape ``[n, d]`` and labels ``y`` are floats in
``{-1, +1}``, shape ``[n]``. Means are ``[d]`` and covariances ``[d, d]`` symmetric positive definite
tensors with a condition number of at most 1e12. Computations are in float64 on the device of the
inputs. Numbers and counts may be Python or numpy scalars or 0-d tensors (not bools). ``eps`` is an
l_2 radius in the units of the features (there are no images here, so it is not in pixel units); the
penalty ``C`` of Theorem 1 is in inverse squared feature units. NLLs are in nats. Randomness comes
only from the CPU ``torch.Generator`` (or None, torch's global one) a function takes.

Appendix E works in the eigenbasis of ``sigma_star`` and restricts the learnt covariance and the
adversary's operator to diagonal matrices there: the closed forms below accept any positive-definite
``sigma_star`` and apply in its eigenbasis, while :func:`fit_robust_ml` learns a diagonal covariance in
the coordinates of its data (:func:`sample` with a diagonal ``sigma_star`` gives such data).

The functions come in groups: the distribution and the standard ML fit; Theorem 1 (vulnerability of
the ML classifier from the misalignment of the two metrics); Theorem 2 (the robust ML parameters, in
closed form and by numerical adversarial training); Theorem 3 (gradient alignment); the exact
accuracy of a linear classifier; and the sweeps, tables and verdicts of chapter 1's section on this
model. The numerical solvers run with one torch CPU thread (restored afterwards): their tensors are
small, and waking more threads costs more than it saves.
"""

import collections.abc
import contextlib
import dataclasses
import math
import numbers

import torch

from .toy import _phi, _verdict

# --- input checks -------------------------------------------------------------------------------------

# The largest condition number accepted for a covariance: beyond it float64 solves lose most of their digits.
_MAX_CONDITION = 1e12


def _as_tensor(name: str, value, dims: int, shape: str | None = None, hint: str = "") -> torch.Tensor:
    """Return ``value`` as a finite float64 tensor with ``dims`` dimensions, or raise.

    ``shape`` names the expected shape in the message (default ``[d]`` or ``[n, d]``) and ``hint``
    is appended to the message on a wrong number of dimensions.
    """
    if isinstance(value, bool) or value is None:
        raise TypeError(f"{name} must be a tensor of numbers (or a list of them), got {value!r}")
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        kind = type(value).__name__
        raise TypeError(f"{name} must be a tensor of numbers (or a list of them), got {kind}") from error
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float64)
    if tensor.dim() != dims:
        shape = shape or {1: "[d]", 2: "[n, d]"}[dims]
        raise ValueError(f"{name} must have shape {shape}, got shape {list(tensor.shape)}{hint}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty: give at least one sample and one feature")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has NaN or infinite entries: pass finite values")
    return tensor


def _mean(name: str, mu) -> torch.Tensor:
    return _as_tensor(name, mu, 1)


def _covariance(name: str, sigma, d: int | None = None, against: str = "the mean") -> torch.Tensor:
    """Return ``sigma`` as a float64 ``[d, d]`` symmetric positive-definite tensor, or raise ValueError.

    The condition number must be at most ``_MAX_CONDITION``; ``against`` names the ``[d]``
    tensor whose size ``d`` the covariance must match.
    """
    sigma = _as_tensor(name, sigma, 2, "[d, d]", "; for diagonal variances v pass torch.diag(v)")
    if sigma.shape[0] != sigma.shape[1]:
        raise ValueError(
            f"{name} must be a square [d, d] covariance, got shape {list(sigma.shape)} "
            "(for diagonal variances v, pass torch.diag(v))"
        )
    if d is not None and sigma.shape[0] != d:
        raise ValueError(f"{name} is {sigma.shape[0]} x {sigma.shape[0]} but {against} has d = {d} entries")
    scale = sigma.abs().max().clamp_min(1e-300)
    if (sigma - sigma.T).abs().max() > 1e-10 * scale:
        raise ValueError(f"{name} must be symmetric: pass (sigma + sigma.T) / 2 if it is only off by rounding")
    eigenvalues = torch.linalg.eigvalsh(sigma)
    smallest, largest = eigenvalues.min().item(), eigenvalues.max().item()
    if not smallest > 0:
        raise ValueError(
            f"{name} must be positive definite (smallest eigenvalue {smallest:.3g}): a Gaussian with a singular "
            "covariance has no likelihood; add a small multiple of the identity"
        )
    if not largest <= _MAX_CONDITION * smallest:
        raise ValueError(
            f"{name} has condition number {largest / smallest:.3g} (eigenvalues {smallest:.3g} to {largest:.3g}), "
            f"above the {_MAX_CONDITION:.0e} accepted here: float64 solves with it lose most of their digits. "
            "Measure the features in comparable units, or add a small multiple of the identity"
        )
    return (sigma + sigma.T) / 2


def _scalar(value):
    """Return a 0-d real tensor or array as a Python number; leave anything else as it is."""
    if (torch.is_tensor(value) or hasattr(value, "__array__")) and not isinstance(value, numbers.Number):
        shape = tuple(value.shape)
        if shape == () and not (str(value.dtype).endswith("bool") or "complex" in str(value.dtype)):
            return value.item()
    return value


def _not_a_number(name: str, value, kind: str) -> TypeError:
    if hasattr(value, "shape") and not isinstance(value, numbers.Number):
        what = f"a {type(value).__name__} of shape {list(value.shape)} and dtype {value.dtype}"
        fix = f"; pass one value, e.g. float({name}) for a one-element tensor"
        return TypeError(f"{name} must be {kind}, got {what}{fix}")
    return TypeError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")


def _number(name: str, value, low: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` (a real number: int, float, numpy scalar or 0-d tensor; not a bool) as a float >= ``low``
    (> ``low`` if ``strict``), or raise."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _not_a_number(name, value, "a number")
    value = float(value)
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value}")
    return value


def _count(name: str, value, low: int = 1) -> int:
    """Return ``value`` (an integer: int, numpy integer or 0-d integer tensor; not a bool) as an int >= ``low``,
    or raise."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _not_a_number(name, value, f"an integer >= {low}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _generator(generator) -> torch.Generator | None:
    """Return ``generator`` if it is None or a CPU ``torch.Generator``, or raise."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        kind = f"{type(generator).__module__}.{type(generator).__qualname__}".removeprefix("builtins.")
        raise TypeError(
            f"generator must be a torch.Generator or None, got {kind}: for a seed s pass "
            "torch.Generator().manual_seed(s)"
        )
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator (the draws are made on the CPU), got one on {generator.device}"
        )
    return generator


def _sequence(name: str, value, example: str) -> list:
    """Return the values of a list, tuple, range, 1-D tensor or array as a non-empty list, or raise."""
    if hasattr(value, "tolist") and not isinstance(value, numbers.Number):
        value = value.tolist()
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, collections.abc.Iterable):
        raise TypeError(
            f"{name} must be a sequence such as {example}, got {value!r} ({type(value).__name__}): "
            "put a single value in a list"
        )
    values = list(value)
    if not values:
        raise ValueError(f"{name} is empty: give at least one value, such as {example}")
    return values


def _data(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``x`` ``[n, d]`` and ``y`` ``[n]`` (values +-1) as float64, or raise."""
    x = _as_tensor("x", x, 2, hint="; for one feature pass x[:, None], for one point x[None]")
    y = _as_tensor("y", y, 1, "[n]", "; for a column of labels pass y.view(-1)").to(x.device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]} labels: give one label per row")
    if not ((y == 1) | (y == -1)).all():
        raise ValueError("y must hold labels -1 and +1 only (as floats); map 0/1 labels with 2 * y - 1")
    return x, y


def _same_d(x: torch.Tensor, vector: torch.Tensor, what: str = "x", against: str = "the mean") -> None:
    if x.shape[-1] != vector.shape[0]:
        raise ValueError(f"{what} has d = {x.shape[-1]} features but {against} has {vector.shape[0]} entries")


def _unit(name: str, vector: torch.Tensor) -> torch.Tensor:
    """Return ``vector / ||vector||`` computed without under- or overflow, or raise for a zero vector."""
    largest = vector.abs().max()
    if not largest > 0:
        raise ValueError(f"{name} must be non-zero")
    vector = vector / largest
    return vector / vector.norm()


def _check_variances(variances: torch.Tensor, where: str) -> None:
    """Raise if a feature's variance about its class means is 0 or below ``1 / _MAX_CONDITION`` of the largest."""
    flat = (variances <= variances.max() / _MAX_CONDITION).nonzero().flatten().tolist()
    if flat:
        k = flat[0]
        raise ValueError(
            f"{where}: feature {k} (x[:, {k}]) has variance {variances[k].item():.3g} about its class means, against "
            f"{variances.max().item():.3g} for the largest feature (features too flat: {flat}). A feature equal to "
            "y * mu in every row (such as a constant 0) has no likelihood, and a variance below "
            f"1/{_MAX_CONDITION:.0e} of the largest makes the covariance too ill-conditioned for float64: drop the "
            "feature or rescale it"
        )


@contextlib.contextmanager
def _one_thread():
    """Run the block with one torch CPU thread (then restore the count): on these small tensors, waking
    the intra-op threads costs an order of magnitude more than the arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- the distribution and the standard ML fit (section 4, eqs. 10-11; appendix E.1) ----------------


def sample(n: int, mu_star, sigma_star, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points of Ilyas et al.'s eq. 10: ``y`` uniform in ``{-1, +1}``, ``x ~ N(y mu_star, sigma_star)``.

    Args:
        n: number of points, an integer >= 1.
        mu_star: the class mean, ``[d]``; class ``-1`` is centred at ``-mu_star``.
        sigma_star: the shared covariance, ``[d, d]`` symmetric positive definite.
        generator: the source of randomness (a CPU ``torch.Generator``); None uses torch's global one.

    Returns:
        The pair ``(x, y)``, float64 tensors of shapes ``[n, d]`` and ``[n]`` (labels +-1), on the CPU.

    Raises:
        ValueError: for a non-positive ``n``, a covariance that is not symmetric positive definite
            (or has a condition number above 1e12), or shapes that disagree.
        TypeError: for inputs that are not numbers, or a ``generator`` that is not a ``torch.Generator``.
    """
    n = _count("n", n)
    mu_star = _mean("mu_star", mu_star).cpu()
    sigma_star = _covariance("sigma_star", sigma_star, mu_star.shape[0], "mu_star").cpu()
    generator = _generator(generator)
    y = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * 2 - 1
    noise = torch.randn(n, mu_star.shape[0], generator=generator, dtype=torch.float64)
    return y[:, None] * mu_star + noise @ torch.linalg.cholesky(sigma_star).T, y


def fit_ml(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the maximum-likelihood estimate ``(mu, sigma)`` of eq. 11 on labelled data.

    Appendix E.1 reduces the two-class problem to one Gaussian: ``y x ~ N(mu_star, sigma_star)``
    (for a symmetric noise), so ``mu = mean(y x)`` and ``sigma`` is the (biased, 1/n) covariance of
    ``x - y mu``. With enough data this is ``(mu_star, sigma_star)`` (the paper's "Theta = Theta*").

    Args:
        x: inputs, ``[n, d]``.
        y: labels in ``{-1, +1}``, ``[n]``.

    Returns:
        The pair ``(mu, sigma)``, float64 tensors ``[d]`` and ``[d, d]``.

    Raises:
        ValueError: for mismatched shapes, labels other than +-1, or data whose covariance would be
            singular or have a condition number above 1e12: fewer than ``d + 1`` points (or distinct
            points), a feature without variance about its class means (such as a constant 0), or
            features that are (nearly) linear combinations of each other. The message says which.
    """
    x, y = _data(x, y)
    n, d = x.shape
    if n <= d:
        raise ValueError(f"fit_ml needs more points than features (got n = {n}, d = {d})")
    mu = (y[:, None] * x).mean(0)
    v = x - y[:, None] * mu
    sigma = v.T @ v / n
    _check_variances(sigma.diagonal(), "fit_ml")
    distinct = torch.unique(torch.cat([x, y[:, None]], 1), dim=0).shape[0]
    if distinct <= d:
        raise ValueError(
            f"fit_ml: x has only {distinct} distinct rows (with their labels) among its {n} for d = {d} features, "
            "so the covariance is singular: remove the duplicated rows and give more than d distinct points"
        )
    values, vectors = torch.linalg.eigh(sigma)
    if not values[-1] <= _MAX_CONDITION * values[0]:
        weights = vectors[:, 0] / vectors[:, 0].abs().max()
        terms = [
            f"{'-' if w < 0 else '+'} {abs(w):.3g} x[:, {k}]" for k, w in enumerate(weights.tolist()) if abs(w) > 1e-6
        ]
        combination = " ".join(terms).removeprefix("+ ").replace("- ", "-", 1 if terms[0][0] == "-" else 0)
        spread = (weights @ sigma @ weights).clamp_min(0).sqrt().item()
        kappa = values[-1].item() / max(values[0].item(), 1e-300)
        raise ValueError(
            f"fit_ml: the features are (nearly) linearly dependent: {combination} has standard deviation "
            f"{spread:.3g} about the class means, against {sigma.diagonal().max().sqrt().item():.3g} for the "
            f"widest feature, so the covariance has condition number {kappa:.3g} (at most {_MAX_CONDITION:.0e} "
            "accepted). Drop one of the dependent features or combine them"
        )
    return mu, sigma


def ml_weights(mu, sigma) -> torch.Tensor:
    """Return ``sigma^-1 mu`` (``[d]``): the weights of the ML classifier ``sign(x^T sigma^-1 mu)`` (section 4).

    It is also the direction of the classifier's input gradient, the quantity of Theorem 3.

    Raises:
        ValueError: for a covariance that is not symmetric positive definite or shapes that disagree.
    """
    mu = _mean("mu", mu)
    sigma = _covariance("sigma", sigma, mu.shape[0]).to(mu.device)
    return torch.linalg.solve(sigma, mu)


def nll(x, y, mu, sigma) -> torch.Tensor:
    """Return the Gaussian negative log-likelihood ``l(x; y mu, sigma)`` of every point, in nats, ``[n]``.

    ``l = (d log(2 pi) + log det sigma + (x - y mu)^T sigma^-1 (x - y mu)) / 2``, computed by
    ``torch.distributions.MultivariateNormal``.

    Raises:
        ValueError: for mismatched shapes, labels other than +-1, or a covariance that is not
            symmetric positive definite.
    """
    x, y = _data(x, y)
    mu = _mean("mu", mu).to(x.device)
    _same_d(x, mu)
    sigma = _covariance("sigma", sigma, mu.shape[0]).to(x.device)
    return -torch.distributions.MultivariateNormal(torch.zeros_like(mu), sigma).log_prob(x - y[:, None] * mu)


# --- Theorem 1: vulnerability from metric misalignment (appendix E.3.1-E.3.2) ----------------------


def _check_penalty(C, sigma: torch.Tensor) -> float:
    C = _number("C", C, strict=True)
    floor = 1 / torch.linalg.eigvalsh(sigma).min().item()
    if not C > floor:
        raise ValueError(
            f"C must exceed 1 / sigma_min = {floor:.6g} (the smallest eigenvalue of the covariance is "
            f"{1 / floor:.6g}); below it the adversary's penalised problem is unbounded, and at it Theorem 1's "
            f"loss is infinite. Got C = {C:g}"
        )
    return C


def lagrangian_perturbation(x, y, mu, sigma, C) -> torch.Tensor:
    """Return the closed-form maximiser ``delta* = (C sigma - I)^-1 (x - y mu)`` (``[n, d]``) of Theorem 1's adversary.

    The adversary maximises ``l(x + delta; y mu, sigma) - (C / 2) ||delta||_2^2``. Its stationarity
    condition is Lemma 1's (appendix E.3.1, eq. 16) with the Lagrange multiplier fixed at ``C``
    (E.3.2). The paper writes the penalty as ``C ||delta||``; with the NLL's factor 1/2 this is the
    reading under which its ``delta*`` and its condition ``C >= 1 / sigma_min`` (concavity) hold.

    Args:
        x: inputs, ``[n, d]``; y: labels +-1, ``[n]``; mu: ``[d]``; sigma: ``[d, d]``.
        C: the penalty, a number ``> 1 / sigma_min(sigma)`` (inverse squared feature units).

    Returns:
        The perturbations, float64 ``[n, d]``.

    Raises:
        ValueError: for ``C <= 1 / sigma_min(sigma)``, mismatched shapes or labels other than +-1.
    """
    x, y = _data(x, y)
    mu = _mean("mu", mu).to(x.device)
    _same_d(x, mu)
    sigma = _covariance("sigma", sigma, mu.shape[0]).to(x.device)
    C = _check_penalty(C, sigma)
    eye = torch.eye(mu.shape[0], dtype=torch.float64, device=x.device)
    return torch.linalg.solve(C * sigma - eye, (x - y[:, None] * mu).T).T


_MAX_ASCENT_STEPS = 1_000_000  # the most steps lagrangian_attack takes on its own (steps=None)


def _ascent_steps(kappa: float, tol: float) -> int:
    """Return the steps :func:`lagrangian_attack` needs at curvature ratio ``kappa`` for precision ``tol``.

    With the step ``2 / (h_max + h_min)`` the error ``delta - delta*`` shrinks by at least ``rate =
    (kappa - 1) / (kappa + 1)`` per step; since ``||g|| <= h_max ||delta - delta*||``, the stopping
    test ``||g|| <= tol h_min ||delta||`` holds once the error is below ``tol / (2 kappa)`` of
    ``||delta*||``. Two steps are added for rounding.
    """
    if kappa <= 1:
        return 2  # one step lands on the maximiser
    return math.ceil(math.log(tol / (2 * kappa)) / math.log1p(-2 / (kappa + 1))) + 2


def _step_budget(steps, needed: int, kappa: float, C: float, floor: float) -> int:
    """Return the steps :func:`lagrangian_attack` takes: ``steps`` if given, else ``needed`` (or raise if too many)."""
    if steps is not None:
        return _count("steps", steps)
    if needed > _MAX_ASCENT_STEPS:
        raise ValueError(
            f"C = {C:.6g} is so close to 1 / sigma_min = {floor:.6g} that the curvature ratio kappa = {kappa:.4g} "
            f"needs about {needed} gradient-ascent steps: pass steps={needed} to take them, or a larger C"
        )
    return needed


def _ascent_error(steps: int, needed: int, error: float, tol: float, kappa: float, C: float, floor: float):
    """Return the error :func:`lagrangian_attack` raises when it has not converged."""
    state = (
        f"after {steps} gradient-ascent steps a perturbation is still {error:.3g} of its norm from the maximiser "
        f"(tol = {tol:g}); the curvature ratio kappa = h_max / h_min is {kappa:.6g} (C = {C:.6g}, 1 / sigma_min = "
        f"{floor:.6g})"
    )
    if steps < needed:
        return RuntimeError(
            f"lagrangian_attack did not converge: {state}, which needs about {needed} steps. Pass steps=None "
            f"(as many as kappa needs) or steps >= {needed}, or a larger C"
        )
    return RuntimeError(
        f"lagrangian_attack stalled: {state}, and the {needed} steps that kappa needs are done: rounding stops the "
        "ascent short of tol (a tol near float64's precision, or C close to 1 / sigma_min). Pass a larger tol or a "
        "larger C"
    )


@_one_thread()
def lagrangian_attack(x, y, mu, sigma, C, steps: int | None = None, tol: float = 1e-9) -> torch.Tensor:
    """Return Theorem 1's adversarial perturbations found numerically (``[n, d]``), without the closed form.

    Gradient ascent on ``l(x + delta; y mu, sigma) - (C / 2) ||delta||_2^2`` from ``delta = 0``,
    with the NLL and its gradient from ``torch.distributions.MultivariateNormal`` and autograd. The
    objective is a concave quadratic when ``C > 1 / sigma_min``, with curvatures ``h = C - 1 / sigma_i``
    (the eigenvalues of minus its Hessian), so the constant step ``2 / (h_max + h_min)`` converges
    geometrically: the error shrinks by ``(kappa - 1) / (kappa + 1)`` per step, ``kappa = h_max /
    h_min``, so the steps needed grow like ``kappa``, which is large when ``C`` is close to
    ``1 / sigma_min``. The ascent stops when every perturbation is within ``tol`` of the maximiser
    relative to its norm, which the gradient ``g`` bounds (``||delta - delta*|| <= ||g|| / h_min``).
    It never returns a perturbation short of that, which would under-report the vulnerability: it
    raises instead. This is the Monte Carlo side of the chapter's check of :func:`vulnerability`.

    Args:
        x, y, mu, sigma, C: as for :func:`lagrangian_perturbation`.
        steps: gradient-ascent steps at most, an integer >= 1, or None (the default) for as many as
            ``kappa`` needs for ``tol`` (at most 1,000,000).
        tol: the precision required of every perturbation, relative to its norm, a number in ``(0, 1)``.

    Returns:
        The perturbations, float64 ``[n, d]`` (detached).

    Raises:
        ValueError: as :func:`lagrangian_perturbation`, for ``steps < 1`` or ``tol`` outside ``(0, 1)``,
            or when ``steps`` is None and ``kappa`` needs more than 1,000,000 steps (pass ``steps``
            to take them, or a larger ``C``).
        RuntimeError: when the perturbations are not within ``tol`` after ``steps`` steps (too few
            steps for ``kappa``, or rounding at a very large ``kappa``); the message says which.
    """
    x, y = _data(x, y)
    mu = _mean("mu", mu).to(x.device)
    _same_d(x, mu)
    sigma = _covariance("sigma", sigma, mu.shape[0]).to(x.device)
    C = _check_penalty(C, sigma)
    tol = _number("tol", tol, strict=True)
    if not tol < 1:
        raise ValueError(f"tol must be below 1 (a relative precision, such as 1e-9), got {tol:g}")
    curvature = C - 1 / torch.linalg.eigvalsh(sigma)
    h_min, h_max = curvature.min().item(), curvature.max().item()
    step = 2 / (h_max + h_min)
    needed = _ascent_steps(h_max / h_min, tol)
    steps = _step_budget(steps, needed, h_max / h_min, C, C - h_min)
    gaussian = torch.distributions.MultivariateNormal(torch.zeros_like(mu), sigma)
    centred = x - y[:, None] * mu
    delta = torch.zeros_like(x, requires_grad=True)
    for done in range(steps + 1):
        objective = (-gaussian.log_prob(centred + delta) - C / 2 * delta.square().sum(1)).sum()
        (grad,) = torch.autograd.grad(objective, delta)
        with torch.no_grad():
            bound = grad.norm(dim=1) / h_min  # >= ||delta - delta*|| for every point (strong concavity)
            converged = bound <= tol * delta.norm(dim=1)
            if converged.all():
                return delta.detach()
            if done < steps:
                delta += step * grad
    error = (bound / delta.detach().norm(dim=1))[~converged].nan_to_num(nan=math.inf).max().item()
    raise _ascent_error(steps, needed, error, tol, h_max / h_min, C, C - h_min)


def vulnerability(sigma_star, C) -> float:
    """Return Theorem 1's adversarial vulnerability of the ML classifier, ``tr[(I + (C sigma_star - I)^-1)^2] - d``.

    Ilyas et al., section 4 and appendix E.3.2, Theorem 1: at the ML parameters ``(mu_star,
    sigma_star)``, the adversary of :func:`lagrangian_perturbation` raises the expected squared
    Mahalanobis distance ``(x - y mu)^T sigma^-1 (x - y mu)`` by this amount, i.e. the expected
    NLL by half of it, in nats (the paper's ``L_adv - L`` drops the NLL's factor 1/2). In terms of
    the eigenvalues ``s_i`` of ``sigma_star`` it is ``sum_i (C s_i / (C s_i - 1))^2 - d``; for a
    fixed trace ``k`` it is smallest at ``sigma_star = (k / d) I``, where the data's metric is the
    adversary's up to scale.

    Args:
        sigma_star: the covariance, ``[d, d]`` symmetric positive definite.
        C: the adversary's penalty, a number ``> 1 / sigma_min(sigma_star)``.

    Returns:
        The vulnerability, a float ``>= 0``.

    Raises:
        ValueError: for ``C <= 1 / sigma_min(sigma_star)`` or a covariance that is not positive definite.
    """
    sigma_star = _covariance("sigma_star", sigma_star)
    C = _check_penalty(C, sigma_star)
    s = torch.linalg.eigvalsh(sigma_star)
    return ((C * s / (C * s - 1)).square().sum() - s.numel()).item()


def vulnerability_monte_carlo(x, y, mu, sigma, C, steps: int | None = None, tol: float = 1e-9) -> tuple[float, float]:
    """Return a Monte Carlo estimate of Theorem 1's vulnerability and its standard error, ``(mean, se)``.

    Each point's contribution is the rise of its squared Mahalanobis distance under the numerical
    adversary of :func:`lagrangian_attack`, ``2 (l(x + delta) - l(x))`` with ``l`` from
    :func:`nll`; the estimate is their mean over the ``n`` points and ``se`` their standard
    deviation over ``sqrt(n)``. At ``(mu, sigma) = (mu_star, sigma_star)`` and data from
    :func:`sample` it estimates :func:`vulnerability`.

    Args:
        x, y, mu, sigma, C, steps, tol: as for :func:`lagrangian_attack`.

    Returns:
        ``(mean, se)``, floats.

    Raises:
        ValueError: as :func:`lagrangian_attack`, or for fewer than 2 points.
        RuntimeError: as :func:`lagrangian_attack`, when its ascent has not converged (the estimate
            would be too small).
    """
    x, y = _data(x, y)
    if x.shape[0] < 2:
        raise ValueError("a standard error needs at least 2 points")
    delta = lagrangian_attack(x, y, mu, sigma, C, steps, tol)
    rise = 2 * (nll(x + delta, y, mu, sigma) - nll(x, y, mu, sigma))
    return rise.mean().item(), (rise.std() / math.sqrt(x.shape[0])).item()


# --- Theorem 2: robust maximum likelihood (appendix E.3.3-E.3.7) -----------------------------------


def _blend(s: torch.Tensor, c: float) -> torch.Tensor:
    """Return Lemma 4's robust variances ``c + s / 2 + sqrt(c s + s^2 / 4)``, ``s`` eigenvalues, ``c = 1 / lambda``."""
    return c + s / 2 + torch.sqrt(c * s + s.square() / 4)


def _expected_norm(s: torch.Tensor, c: float) -> float:
    """Return ``sqrt(E ||M v||^2) = sqrt(sum_i s_i m_i^2)`` at the fixed point, ``m_i = 1 / (lambda sigma_i - 1)``.

    At Lemma 4's solution ``1 + m_i = 1/2 + sqrt(1/4 + c / s_i)``, so ``m_i = u / (sqrt(1/4 + u) + 1/2)``
    with ``u = c / s_i``, and ``s_i m_i^2 = c^2 / (s_i (sqrt(1/4 + u) + 1/2)^2)``: written so, ``c`` is not
    squared (no under- or overflow at extreme radii) and ``m_i`` keeps its precision when ``u`` is small.
    """
    u = c / s
    return c * (1 / (s * (torch.sqrt(0.25 + u) + 0.5).square())).sum().sqrt().item()


def _radius_in_units(eps: float, unit: float) -> float:
    """Return ``eps / sqrt(unit)``, the radius in units of the largest standard deviation, or raise if too large."""
    e = eps / math.sqrt(unit)
    if not (eps <= 1e150 and e <= 1e100):
        raise ValueError(
            f"eps = {eps:g} is too large to compute with: it is {e:.3g} times the largest standard deviation of "
            "sigma_star, and the robust covariance, about (eps^2 / d) I, would leave float64's range or lose "
            "sigma_star in its rounding. Measure the features in larger units (eps and sigma_star shrink "
            "together), or take a smaller eps"
        )
    return e


def robust_covariance(sigma_star, eps) -> tuple[torch.Tensor, float]:
    """Return the robust ML covariance of Theorem 2 and its multiplier, ``(sigma_r, lambda)``.

    Ilyas et al., section 4 and appendix E.3.5, Lemma 4 (eq. 26) and Theorem 2: the robust ML
    problem with the adversary of eq. 14 (``x -> x + M (x - mu)``, ``M`` diagonal in the eigenbasis of
    ``sigma_star``, ``E ||M (x - mu)||^2 = eps^2``) learns ``mu_r = mu_star`` and::

        sigma_r = sigma_star / 2 + I / lambda + sqrt(sigma_star / lambda + sigma_star^2 / 4)

    The paper leaves ``lambda`` implicit ("set so that M is in the constraint set"; its bounds are
    asymptotic). Here it is solved for: with Lemma 2's adversary ``M = (lambda sigma_r - I)^-1``,
    the fixed point gives ``1 + m_i = 1/2 + sqrt(1/4 + 1 / (lambda s_i))`` (so ``sigma_r = sigma_star
    (I + M)^2``, eq. 25), and ``lambda`` is the unique root of ``sum_i s_i m_i^2 = eps^2`` (eq. 27
    writes the budget of this sum as ``eps``; we keep ``eps`` a radius, so the sum is ``eps^2``). The
    root is found by bisection on ``log(1 / lambda)``; ``sum_i s_i m_i^2`` grows strictly with
    ``1 / lambda``. The computation runs in units where the largest variance is 1 (``sigma_r / s_max``
    depends only on ``sigma_star / s_max`` and ``eps / sqrt(s_max)``). The theorem is stated for ``eps``
    below some ``eps_0``; the formula is used at every ``eps`` here, and :func:`fit_robust_ml` checks it
    numerically.

    Args:
        sigma_star: the data covariance, ``[d, d]`` symmetric positive definite.
        eps: the adversary's l_2 radius (root mean square norm of its perturbation), a number >= 0, at
            most ``1e150`` and ``1e100`` times the largest standard deviation of ``sigma_star``.

    Returns:
        The pair ``(sigma_r, lambda)``, the float64 ``[d, d]`` covariance (``sigma_star`` itself at
        ``eps = 0``) and the multiplier, a float (``inf`` at ``eps = 0``, and where it exceeds
        float64's range at a tiny ``eps``: there ``sigma_r`` is ``sigma_star`` to rounding).

    Raises:
        ValueError: for a negative, non-finite or too large ``eps``, or a covariance that is not
            positive definite (or has a condition number above 1e12).
    """
    sigma_star = _covariance("sigma_star", sigma_star)
    eps = _number("eps", eps)
    if eps == 0:
        return sigma_star.clone(), math.inf
    s, q = torch.linalg.eigh(sigma_star)
    unit = s.max().item()  # the variances in units of the largest: s in [1e-12, 1]
    s, e = s / unit, _radius_in_units(eps, unit)
    lo = e / (1 / s).sum().sqrt().item()  # E ||M v|| <= c sqrt(sum_i 1 / s_i): the root is at least this
    if lo == 0:  # eps below float64's range relative to sigma_star: sigma_r is sigma_star to rounding
        return sigma_star.clone(), math.inf
    hi = lo
    while _expected_norm(s, hi) < e:
        hi *= 2
    for _ in range(200):
        mid = math.sqrt(lo) * math.sqrt(hi)
        lo, hi = (mid, hi) if _expected_norm(s, mid) < e else (lo, mid)
        if hi <= lo * (1 + 1e-15):
            break
    c = math.sqrt(lo) * math.sqrt(hi)
    return unit * ((q * _blend(s, c)) @ q.T), 1 / (c * unit) if c * unit > 0 else math.inf


def robust_covariance_se(variances, eps, n: int) -> torch.Tensor:
    """Return the standard errors of the diagonal of :func:`robust_covariance` when the data covariance is estimated.

    For a diagonal ``sigma_star = diag(variances)`` estimated from ``n`` points by :func:`fit_ml`,
    each estimated variance has standard error ``variance * sqrt(2 / n)`` (Gaussian data,
    independent coordinates). The delta method carries these through :func:`robust_covariance`,
    whose derivatives are taken by central finite differences. This sets the tolerance when a
    covariance learnt from a sample is compared with the closed form at ``sigma_star``.

    Args:
        variances: the diagonal of ``sigma_star``, ``[d]``, all > 0.
        eps: the l_2 radius, a number >= 0.
        n: the number of training points, an integer >= 2.

    Returns:
        A float64 tensor ``[d]`` of standard errors, one per diagonal entry of ``sigma_r``.

    Raises:
        ValueError: for non-positive variances (or a largest above 1e12 times the smallest), an
            ``eps`` that :func:`robust_covariance` refuses, or ``n < 2``.
    """
    variances = _mean("variances", variances)
    if not (variances > 0).all():
        raise ValueError("variances must all be > 0 (the diagonal of a positive-definite covariance)")
    limit = _MAX_CONDITION / (1 + 1e-4)  # room for the finite differences' steps
    if not variances.max() <= limit * variances.min():
        raise ValueError(
            f"variances range from {variances.min().item():.3g} to {variances.max().item():.3g}, a ratio above "
            f"{limit:.6g}: with the finite differences' steps the covariance would exceed the condition number "
            f"{_MAX_CONDITION:.0e} accepted. Measure the features in comparable units"
        )
    eps = _number("eps", eps)
    n = _count("n", n, 2)
    try:
        robust_covariance(torch.diag(variances), eps)
    except ValueError as error:
        raise ValueError(f"robust_covariance_se at these variances: {error}") from None
    rows = []
    for k in range(variances.numel()):
        h = 1e-5 * variances[k].item()
        up, down = variances.clone(), variances.clone()
        up[k] += h
        down[k] -= h
        above, below = (robust_covariance(torch.diag(v), eps)[0].diagonal() for v in (up, down))
        rows.append((above - below) / (2 * h))
    jacobian = torch.stack(rows, 1)  # [i, k] = d sigma_r[i] / d variance[k]
    return torch.sqrt((jacobian.square() * (2 * variances.square() / n)).sum(1))


def _adversary_scales(weights: torch.Tensor, variances: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the exact l_2 adversary against a diagonal Gaussian, ``(m, lambda)``.

    Maximises ``sum_k (1 + m_k)^2 w_k / v_k`` subject to ``sum_k m_k^2 w_k = eps^2`` for each row of
    ``weights`` (``w``, ``[..., d]``, squared distances to the mean) and ``variances`` (``v``, ``[d]``).
    The maximum of this convex function on the ellipsoid has ``m_k = 1 / (lambda v_k - 1)`` with
    ``lambda > 1 / min v`` (the trust-region condition for a global maximum; Lemmas 1-2), where the
    constraint falls strictly with ``lambda``. With ``t = lambda min v - 1`` the root of
    ``1 / sqrt(sum_k m_k^2 w_k) = 1 / eps``, nearly linear in ``t``, is found by Newton's method
    (Moré and Sorensen's secular equation), safeguarded by bisection inside the bracket
    ``sqrt(w at min v) / eps <= t <= sqrt(sum w) / eps``.
    """
    vmin = variances.min()
    ratio = variances / vmin  # >= 1; lambda v_k - 1 = t ratio_k + (ratio_k - 1)
    excess = ratio - 1  # kept apart from t ratio: t can be tiny, and (t + 1) - 1 would lose it
    hi = weights.sum(-1).sqrt() / eps
    lo = torch.maximum((weights * (ratio <= 1 + 1e-12)).sum(-1).sqrt() / eps, hi * 1e-12)
    lo, hi = torch.minimum(lo, hi).clamp_min(1e-300), hi.clamp_min(1e-300)
    t = lo.clone()
    for _ in range(100):
        denominator = t[..., None] * ratio + excess
        norm2 = (weights / denominator.square()).sum(-1)
        above = norm2 > eps**2  # the root lies to the right of t
        lo, hi = torch.where(above, t, lo), torch.where(above, hi, t)
        slope = -2 * (weights * ratio / denominator**3).sum(-1)  # d norm2 / dt
        # Newton on psi(t) = norm2^(-1/2) - 1/eps, psi' = -norm2^(-3/2) slope / 2
        step = (norm2.rsqrt() - 1 / eps) / (-0.5 * norm2.pow(-1.5) * slope)
        newton = t - step
        inside = (newton >= lo) & (newton <= hi)  # at the root, rounding can put t on an end of the bracket
        new = torch.where(inside, newton, torch.sqrt(lo * hi))
        converged = ((new - t).abs() <= 1e-10 * t).all()
        t = new
        if converged:  # quadratic convergence: one more step takes t to rounding
            denominator = t[..., None] * ratio + excess
            norm2 = (weights / denominator.square()).sum(-1)
            slope = -2 * (weights * ratio / denominator**3).sum(-1)
            t = t - (norm2.rsqrt() - 1 / eps) / (-0.5 * norm2.pow(-1.5) * slope)
            break
    return 1 / (t[..., None] * ratio + excess), (t + 1) / vmin


ADVERSARIES = ("linear", "l2")


@dataclasses.dataclass(frozen=True)
class RobustFit:
    """The result of :func:`fit_robust_ml`.

    ``mu`` is the learnt mean (float64 ``[d]``) and ``sigma`` the learnt covariance (float64
    ``[d, d]``, diagonal); ``loss`` is the robust objective at the solution, the mean worst-case NLL
    in nats; ``grad_norm`` the norm of its (Danskin) gradient in the learnt parameters there, 0 at
    the optimum; ``iterations`` the L-BFGS iterations used; ``lam`` the adversary's multiplier
    ``lambda`` at the solution for ``adversary="linear"`` (``inf`` at ``eps = 0``), NaN for ``"l2"``
    (which has one multiplier per point).
    """

    mu: torch.Tensor
    sigma: torch.Tensor
    loss: float
    grad_norm: float
    iterations: int
    lam: float


@_one_thread()
def fit_robust_ml(x, y, eps, adversary: str = "linear", max_iter: int = 500, tol: float = 1e-6) -> RobustFit:
    """Fit ``(mu, sigma)``, ``sigma`` diagonal, by robust maximum likelihood with an exact inner maximisation.

    Minimises ``mean_i max_delta l(x_i + delta_i; y_i mu, sigma)`` (Ilyas et al. eq. 12) by L-BFGS on
    ``(mu, log diag sigma)``. By Danskin's theorem (appendix E.3.4) the gradient of the max is the
    gradient of the loss at the maximiser, so the maximiser is recomputed exactly at every
    evaluation and then held fixed for the gradient; nothing of Theorem 2's closed form is used.

    Two adversaries, both with the l_2 radius ``eps``:

    - ``"linear"``: appendix E's relaxation (eq. 14), under which Theorem 2 is proved:
      ``delta_i = M (x_i - y_i mu)`` with one diagonal ``M`` for all points and
      ``mean_i ||delta_i||^2 = eps^2``.
    - ``"l2"``: the per-point ball of eq. 12, ``||delta_i||_2 <= eps`` (the maximum is on the sphere).
      The paper's footnote 15: the relaxation approaches it as ``d`` grows.

    Both maximisers are ``(lambda sigma - I)^-1 (x - y mu)`` (Lemmas 1 and 2), with ``lambda > 1 /
    sigma_min`` (the global maximum) found by a safeguarded Newton iteration so that the constraint
    holds. With ``"linear"`` the
    fit learns ``mu`` and the variances. With ``"l2"`` it learns the variances only and holds ``mu``
    at the ML mean ``mean(y x)``: that objective has a kink in ``mu`` at every point whose maximiser
    jumps sides (``x_k = y mu_k`` along the smallest variance), where L-BFGS stalls, and in the
    population its minimiser is ``mu_star`` as for ``"linear"`` (the maximisation is unchanged when
    ``x - y mu`` changes sign, so the objective is symmetric about ``mu_star`` and convex).

    Args:
        x: inputs, ``[n, d]``, in the coordinates where the covariance is to be diagonal.
        y: labels in ``{-1, +1}``, ``[n]``.
        eps: the l_2 radius, in feature units, a number >= 0 (0: the standard ML fit, diagonal).
        adversary: ``"linear"`` or ``"l2"``.
        max_iter: L-BFGS iterations at most, an integer >= 1.
        tol: the largest gradient norm accepted at the solution, a number > 0.

    Returns:
        A :class:`RobustFit`.

    Raises:
        ValueError: for bad data, a negative ``eps``, an unknown ``adversary``, fewer than 2 points,
            or a feature without variance about its class means (such as a constant 0; or one with a
            variance below 1e-12 of the largest).
        RuntimeError: when L-BFGS stops with a gradient norm above ``tol`` (raise ``max_iter``), or
            the objective is not finite.
    """
    x, y = _data(x, y)
    eps = _number("eps", eps)
    if adversary not in ADVERSARIES:
        raise ValueError(f"adversary must be one of {ADVERSARIES}, got {adversary!r}")
    max_iter = _count("max_iter", max_iter)
    tol = _number("tol", tol, strict=True)
    if x.shape[0] < 2:
        raise ValueError("fit_robust_ml needs at least 2 points")
    d = x.shape[1]
    mu = (y[:, None] * x).mean(0)
    variances = (x - y[:, None] * mu).square().mean(0)
    _check_variances(variances, "fit_robust_ml")  # a zero variance: the likelihood has no maximum
    log_var = variances.log()
    mu, log_var = mu.clone().requires_grad_(), log_var.clone().requires_grad_()
    state = {"lam": math.inf}

    def objective():
        var = log_var.exp()
        v = x - y[:, None] * mu
        spread = v.square().mean(0)  # E (x_k - y mu_k)^2, per coordinate
        with torch.no_grad():
            if eps == 0:
                perturbation, state["lam"] = torch.zeros_like(v), math.inf
            elif adversary == "linear":
                m, lam = _adversary_scales(spread, var, eps)
                # The set of feasible M moves with mu; n = M sqrt(spread), with ||n|| = eps, does not.
                perturbation, state["lam"] = m * spread.sqrt(), lam.item()
            else:
                m, _ = _adversary_scales(v.square(), var, eps)
                perturbation, state["lam"] = m * v, math.nan
        if adversary == "linear" and eps > 0:
            perturbed = v * (1 + perturbation / spread.sqrt())  # x + M (x - y mu), Danskin holding n
        else:
            perturbed = v + perturbation  # x + delta, Danskin holding each delta
        return 0.5 * ((perturbed.square() / var).sum(1).mean() + log_var.sum() + d * math.log(2 * math.pi))

    learnt = [log_var] if adversary == "l2" else [mu, log_var]  # "l2": mu's kinks stall L-BFGS (docstring)
    iterations = _lbfgs(learnt, objective, max_iter, tol)
    loss = objective()
    loss.backward()
    grad_norm = torch.cat([p.grad for p in learnt]).norm().item()
    if not (math.isfinite(loss.item()) and math.isfinite(grad_norm)):
        raise RuntimeError(
            f"robust ML failed: the objective ({loss.item():g}) or its gradient ({grad_norm:g}) is not finite after "
            f"{iterations} L-BFGS iterations; rescale the features so that their variances and eps are not extreme"
        )
    if not grad_norm <= tol:
        raise RuntimeError(
            f"robust ML did not converge: gradient norm {grad_norm:.3g} > tol = {tol:g} after {iterations} L-BFGS "
            f"iterations; raise max_iter (now {max_iter}) or tol"
        )
    return RobustFit(mu.detach(), torch.diag(log_var.detach().exp()), loss.item(), grad_norm, iterations, state["lam"])


def _lbfgs(params: list[torch.Tensor], objective, max_iter: int, tol: float) -> int:
    """Minimise ``objective()`` over ``params`` by L-BFGS with a strong-Wolfe line search; return the iterations."""
    optimiser = torch.optim.LBFGS(
        params,
        lr=1,
        max_iter=max_iter,
        tolerance_grad=tol / 10,
        tolerance_change=0,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimiser.step(closure)
    optimiser.zero_grad()
    return int(optimiser.state[params[0]].get("n_iter", 0))


# --- Theorem 3: gradient alignment (appendix E.3.7, Lemmas 6-8) ------------------------------------


def condition_number(sigma) -> float:
    """Return ``kappa = lambda_max / lambda_min`` of a covariance (``>= 1``; 1 for a multiple of the identity).

    Raises:
        ValueError: for a covariance that is not symmetric positive definite.
    """
    s = torch.linalg.eigvalsh(_covariance("sigma", sigma))
    return (s.max() / s.min()).item()


def gradient_cosine(mu, sigma, direction=None) -> float:
    """Return the cosine of the angle between ``direction`` (default ``mu``) and the ML classifier's input
    gradient ``sigma^-1 mu``.

    Theorem 3 measures alignment so: a classifier that is a monotone function of ``x^T sigma^-1 mu``
    has its gradient along ``sigma^-1 mu``, and ``mu`` (or the true ``mu_star``, passed as
    ``direction`` for a learnt ``(mu, sigma)``) is half the vector between the class means. 1 means
    aligned (``sigma`` a multiple of the identity, or ``mu`` an eigenvector of it).

    The cosine does not depend on the lengths of ``mu`` and ``direction``: both are scaled to unit
    length first, so that tiny or huge vectors neither under- nor overflow.

    Raises:
        ValueError: for a zero ``mu`` or ``direction``, mismatched shapes, or a covariance that is
            not symmetric positive definite.
    """
    mu = _mean("mu", mu)
    direction = mu if direction is None else _mean("direction", direction).to(mu.device)
    _same_d(direction, mu, "direction", "mu")
    if not (mu.abs().max() > 0 and direction.abs().max() > 0):
        raise ValueError("mu and direction must be non-zero: the angle to a zero vector is undefined")
    w = _unit("the gradient sigma^-1 mu", ml_weights(_unit("mu", mu), sigma))
    return (_unit("direction", direction) @ w).item()


def worst_gradient_cosine(sigma) -> float:
    """Return the worst-case gradient cosine ``min_mu cos(mu, sigma^-1 mu) = 2 sqrt(kappa) / (1 + kappa)`` (Lemma 8).

    ``kappa`` is :func:`condition_number`; the formula is eq. 30 of Ilyas et al.'s appendix E.3.7.

    Theorem 3 compares this worst case over the mean for the standard and the robust ML covariance:
    it falls strictly with ``kappa``, and Theorem 2's ``sigma_r`` has a smaller ``kappa`` than
    ``sigma_star``.

    Returns:
        The cosine, a float in ``(0, 1]``.

    Raises:
        ValueError: for a covariance that is not symmetric positive definite.
    """
    kappa = condition_number(sigma)
    return 2 * math.sqrt(kappa) / (1 + kappa)


@_one_thread()
def worst_gradient_cosine_search(
    sigma, restarts: int = 32, steps: int = 300, generator: torch.Generator | None = None
) -> float:
    """Return the smallest ``cos(mu, sigma^-1 mu)`` found by numerical search over ``mu``: a check of Lemma 8.

    ``restarts`` directions drawn from ``N(0, I)`` descend the cosine by Adam (autograd), renormalised
    to the unit sphere after each step; the smallest cosine reached is returned. It can only be at or
    above the true minimum :func:`worst_gradient_cosine`.

    Args:
        sigma: a covariance, ``[d, d]`` symmetric positive definite.
        restarts: starting directions, an integer >= 1.
        steps: Adam steps, an integer >= 1.
        generator: the source of the starting directions (CPU); None uses torch's global one.

    Returns:
        The smallest cosine found, a float.

    Raises:
        ValueError: for a covariance that is not positive definite or counts below 1.
        TypeError: for a ``generator`` that is not a ``torch.Generator`` (or None).
    """
    sigma = _covariance("sigma", sigma)
    restarts, steps = _count("restarts", restarts), _count("steps", steps)
    generator = _generator(generator)
    start = torch.randn(restarts, sigma.shape[0], generator=generator, dtype=torch.float64).to(sigma.device)
    mu = (start / start.norm(dim=1, keepdim=True)).requires_grad_()
    precision = torch.linalg.inv(sigma)

    def cosines(m):
        w = m @ precision
        return (m * w).sum(1) / (m.norm(dim=1) * w.norm(dim=1))

    optimiser = torch.optim.Adam([mu], lr=0.05)
    best = cosines(mu).min().item()
    for _ in range(steps):
        optimiser.zero_grad()
        values = cosines(mu)
        best = min(best, values.min().item())
        values.sum().backward()
        optimiser.step()
        with torch.no_grad():
            mu /= mu.norm(dim=1, keepdim=True)
    return min(best, cosines(mu).min().item())


# --- accuracy of a linear classifier on the two Gaussians ------------------------------------------


def linear_accuracy(w, mu_star, sigma_star, eps=0.0) -> float:
    """Return the exact accuracy of ``sign(w.x)`` on eq. 10's distribution under the worst l_2 attack of radius ``eps``.

    The worst perturbation of a linear classifier is ``-eps y w / ||w||``, which lowers the margin
    ``y w.x ~ N(w.mu_star, w^T sigma_star w)`` by ``eps ||w||``: the accuracy is
    ``Phi((w.mu_star - eps ||w||) / sqrt(w^T sigma_star w))`` (the same for both classes).
    ``eps = 0`` gives the standard accuracy. The accuracy does not depend on the length of ``w``,
    which is scaled to unit length first (tiny or huge weights neither under- nor overflow).

    Args:
        w: weights, ``[d]``, not all zero (e.g. :func:`ml_weights`).
        mu_star: ``[d]``; sigma_star: ``[d, d]``.
        eps: the l_2 radius, in feature units, a number >= 0.

    Returns:
        The accuracy, a fraction in ``[0, 1]``.

    Raises:
        ValueError: for a zero ``w``, a negative ``eps``, or mismatched shapes.
    """
    w = _mean("w", w)
    mu_star = _mean("mu_star", mu_star).to(w.device)
    _same_d(w, mu_star, "w", "mu_star")
    sigma_star = _covariance("sigma_star", sigma_star, mu_star.shape[0], "mu_star").to(w.device)
    eps = _number("eps", eps)
    if not w.abs().max() > 0:
        raise ValueError("w must be non-zero: sign(0) classifies nothing")
    w = _unit("w", w)
    return _phi(((w @ mu_star - eps) / torch.sqrt(w @ sigma_star @ w)).item())


def robust_accuracy(w, x, y, eps=0.0) -> float:
    """Return the fraction of the points ``(x, y)`` that ``sign(w.x)`` classifies correctly under every l_2
    perturbation of radius ``eps`` (in feature units): those with margin ``y w.x - eps ||w|| > 0``.
    As in :func:`linear_accuracy`, ``w`` is scaled to unit length first.

    Raises:
        ValueError: for a zero ``w`` (as :func:`linear_accuracy`), mismatched shapes, labels other
            than +-1 or a negative ``eps``.
    """
    x, y = _data(x, y)
    w = _mean("w", w).to(x.device)
    _same_d(x, w, against="w")
    eps = _number("eps", eps)
    if not w.abs().max() > 0:
        raise ValueError("w must be non-zero: sign(0) classifies nothing")
    w = _unit("w", w)
    return (y * (x @ w) - eps > 0).double().mean().item()


# --- the chapter's sweeps, tables and verdicts ------------------------------------------------------


def vulnerability_rows(mu_star, covariances: dict, C, n: int, generator: torch.Generator | None = None) -> list[dict]:
    """Return Theorem 1 at each covariance of ``covariances`` (label -> ``[d, d]``): closed form and Monte Carlo.

    Each row has ``label``, ``eigenvalues`` (a string), ``kappa`` (:func:`condition_number`) and
    ``trace`` of the covariance, ``closed_form`` (:func:`vulnerability`), ``monte_carlo`` and ``se``
    (:func:`vulnerability_monte_carlo` on ``n`` fresh points of :func:`sample` at ``(mu_star,
    covariance)``) and ``z``, the gap in standard errors.

    Raises:
        ValueError: for an empty ``covariances``, ``n < 2``, and as :func:`vulnerability` and :func:`sample`.
        TypeError: for a ``covariances`` that is not a dict, or a ``generator`` that is not a ``torch.Generator``.
        RuntimeError: as :func:`lagrangian_attack`, when its ascent has not converged.
    """
    if not isinstance(covariances, dict):
        raise TypeError(f"covariances must be a dict of label -> [d, d] covariance, got {type(covariances).__name__}")
    if not covariances:
        raise ValueError("covariances is empty: give at least one label -> [d, d] covariance")
    mu_star = _mean("mu_star", mu_star)
    checked = {
        label: _covariance(f"covariances[{label!r}]", s, mu_star.shape[0], "mu_star")
        for label, s in covariances.items()
    }
    for sigma in checked.values():
        _check_penalty(C, sigma)
    n, generator = _count("n", n, 2), _generator(generator)
    rows = []
    for label, sigma in checked.items():
        x, y = sample(n, mu_star, sigma, generator)
        mean, se = vulnerability_monte_carlo(x, y, mu_star, sigma, C)
        exact = vulnerability(sigma, C)
        eigenvalues = torch.linalg.eigvalsh(sigma)
        rows.append(
            {"label": label, "eigenvalues": ", ".join(f"{v:.4g}" for v in eigenvalues.tolist()[::-1])}
            | {"kappa": (eigenvalues.max() / eigenvalues.min()).item(), "trace": eigenvalues.sum().item()}
            | {"closed_form": exact, "monte_carlo": mean, "se": se, "z": (mean - exact) / se}
        )
    return rows


def robust_rows(
    x, y, mu_star, sigma_star, eps_grid, restarts: int = 32, generator: torch.Generator | None = None
) -> list[dict]:
    """Return Theorems 2 and 3 at each radius of ``eps_grid``: closed forms and numerical robust training.

    ``(x, y)`` is the training sample (:func:`sample` at ``(mu_star, sigma_star)``, ``sigma_star``
    diagonal). Each row (one per ``eps``) has the tensors ``closed_form`` (:func:`robust_covariance`
    at ``sigma_star``), ``same_sample`` (the same at the sample's ML variances, which the
    ``"linear"`` fit should match to the optimiser's precision), and the fits ``linear`` and ``l2``
    (:class:`RobustFit` of :func:`fit_robust_ml`); and the numbers

    - ``eps``, ``lam`` (closed form) and ``lam_fit`` (the ``"linear"`` fit's multiplier);
    - ``z``: the largest gap between the ``"linear"`` fit's variances and the closed form, in
      standard errors of :func:`robust_covariance_se`; ``gap_same``: its largest relative gap to
      ``same_sample``;
    - ``mu_gap``: the largest gap between the ``"linear"`` fit's mean and the ML mean ``mean(y x)``,
      and ``mu_z``: between it and ``mu_star``, in standard errors ``sqrt(variance / n)``;
    - ``kappa`` (:func:`condition_number`) and ``cosine`` (:func:`gradient_cosine` between
      ``mu_star`` and the classifier's gradient) of the closed form, and of each fit (suffixes
      ``_linear`` and ``_l2``, with the fit's own mean);
    - ``worst`` and ``worst_search``: Lemma 8's worst-case cosine of the closed form, exact and by
      :func:`worst_gradient_cosine_search` with ``restarts`` starts from ``generator``.

    Raises:
        ValueError: for a ``sigma_star`` that is not diagonal, an empty ``eps_grid`` or a radius in it
            that :func:`robust_covariance` refuses, and as :func:`fit_robust_ml`.
        TypeError: for an ``eps_grid`` that is not a sequence of numbers, or a ``generator`` that is
            not a ``torch.Generator``.
    """
    x, y = _data(x, y)
    mu_star = _mean("mu_star", mu_star).to(x.device)
    _same_d(x, mu_star, against="mu_star")
    sigma_star = _covariance("sigma_star", sigma_star, x.shape[1], "each row of x").to(x.device)
    if (sigma_star - torch.diag(sigma_star.diagonal())).abs().max() > 0:
        raise ValueError("robust_rows compares with diagonal fits: pass a diagonal sigma_star (data in its eigenbasis)")
    eps_grid = [_number(f"eps_grid[{i}]", e) for i, e in enumerate(_sequence("eps_grid", eps_grid, "[0.0, 0.5, 2.0]"))]
    restarts, generator = _count("restarts", restarts), _generator(generator)
    n = x.shape[0]
    mu_ml, sigma_ml = fit_ml(x, y)
    rows = []
    for eps in eps_grid:
        closed, lam = robust_covariance(sigma_star, eps)
        same = robust_covariance(torch.diag(sigma_ml.diagonal()), eps)[0]
        fits = {adversary: fit_robust_ml(x, y, eps, adversary) for adversary in ADVERSARIES}
        se = robust_covariance_se(sigma_star.diagonal(), eps, n)
        learnt = fits["linear"]
        row = {"eps": float(eps), "closed_form": closed, "same_sample": same, **fits, "lam": lam, "lam_fit": learnt.lam}
        row["z"] = ((learnt.sigma.diagonal() - closed.diagonal()) / se).abs().max().item()
        row["gap_same"] = (learnt.sigma.diagonal() / same.diagonal() - 1).abs().max().item()
        row["mu_gap"] = (learnt.mu - mu_ml).abs().max().item()
        row["mu_z"] = ((learnt.mu - mu_star).abs() / (sigma_star.diagonal() / n).sqrt()).max().item()
        row["kappa"], row["cosine"] = condition_number(closed), gradient_cosine(mu_star, closed)
        for adversary, fit in fits.items():
            row[f"kappa_{adversary}"] = condition_number(fit.sigma)
            row[f"cosine_{adversary}"] = gradient_cosine(fit.mu, fit.sigma, direction=mu_star)
        row["worst"] = worst_gradient_cosine(closed)
        row["worst_search"] = worst_gradient_cosine_search(closed, restarts, generator=generator)
        rows.append(row)
    return rows


def spectrum(d: int, low: float, high: float) -> torch.Tensor:
    """Return ``d`` variances evenly spaced in log scale from ``low`` to ``high``, float64 ``[d]`` (``[low]`` at d = 1).

    Raises:
        ValueError: for ``d < 1`` or variances that are not ``0 < low <= high``.
    """
    d = _count("d", d)
    low, high = _number("low", low, strict=True), _number("high", high, strict=True)
    if low > high:
        raise ValueError(f"low must be <= high, got low = {low:g} > high = {high:g}")
    return torch.logspace(math.log10(low), math.log10(high), d, dtype=torch.float64)


def relaxation_rows(
    dims, low: float, high: float, eps_per_dim, n: int, generator: torch.Generator | None = None
) -> list[dict]:
    """Return, per dimension ``d`` of ``dims``, how far l_2 adversarial training is from Theorem 2's closed form.

    At each ``d`` the variances are :func:`spectrum` ``(d, low, high)``, ``mu_star`` is their square
    root (every feature separates the classes equally well) and the radius is
    ``eps = eps_per_dim * sqrt(d)`` (the same budget per feature). On ``n`` points of :func:`sample`
    the row has ``d``, ``eps``, ``gap_l2`` (the largest relative gap between the variances learnt by
    :func:`fit_robust_ml` with ``adversary="l2"`` and :func:`robust_covariance` at the sample's ML
    variances) and ``gap_linear`` (the same for ``adversary="linear"``, the problem the closed form
    solves: 0 up to the optimiser's precision).

    Raises:
        ValueError: for an empty ``dims``, and as :func:`spectrum`, :func:`sample` and :func:`fit_robust_ml`.
        TypeError: for a ``dims`` that is not a sequence of integers, or a ``generator`` that is not a
            ``torch.Generator``.
    """
    dims = [_count(f"dims[{i}]", d) for i, d in enumerate(_sequence("dims", dims, "[2, 8, 32]"))]
    spectrum(1, low, high)  # checks low and high
    eps_per_dim = _number("eps_per_dim", eps_per_dim)
    n, generator = _count("n", n), _generator(generator)
    rows = []
    for d in dims:
        variances = spectrum(d, low, high)
        x, y = sample(n, variances.sqrt(), torch.diag(variances), generator)
        eps = eps_per_dim * math.sqrt(d)
        closed = robust_covariance(torch.diag(fit_ml(x, y)[1].diagonal()), eps)[0].diagonal()
        gaps = {
            f"gap_{adversary}": (fit_robust_ml(x, y, eps, adversary).sigma.diagonal() / closed - 1).abs().max().item()
            for adversary in ADVERSARIES
        }
        rows.append({"d": d, "eps": eps, **gaps})
    return rows


def _values(t: torch.Tensor) -> str:
    return ", ".join(f"{v:.4g}" for v in t.diagonal().tolist())


def vulnerability_table(rows: list[dict]) -> str:
    """Return a Markdown table of :func:`vulnerability_rows`: covariance, eigenvalues, closed form, Monte Carlo, gap."""
    from .report import markdown_table

    columns = {
        "label": "Σ*",
        "eigenvalues": "eigenvalues of Σ*",
        "closed_form": "Theorem 1",
        "monte_carlo": "Monte Carlo",
        "se": "standard error",
        "z": "gap (SE)",
    }
    formats = {"closed_form": ".4f", "monte_carlo": ".4f", "se": ".4f", "z": "+.2f"}
    return markdown_table(rows, columns, formats)


def robust_table(rows: list[dict]) -> str:
    """Return a Markdown table of :func:`robust_rows` for Theorem 2: per ``eps`` the multiplier and the learnt
    variances, closed form against the two numerical fits, with the gaps the chapter checks."""
    from .report import markdown_table

    table = [
        row
        | {
            "closed": _values(row["closed_form"]),
            "linear_var": _values(row["linear"].sigma),
            "l2_var": _values(row["l2"].sigma),
        }
        for row in rows
    ]
    columns = {
        "eps": "ε",
        "lam": "λ, closed form",
        "lam_fit": "λ, fit",
        "closed": "Σ_r, closed form",
        "linear_var": "Σ_r, relaxed fit",
        "z": "gap (SE)",
        "gap_same": "gap, same sample",
        "l2_var": "Σ, ℓ2 fit",
        "kappa": "κ, closed form",
        "kappa_l2": "κ, ℓ2 fit",
    }
    formats = {"lam": ".4g", "lam_fit": ".4g", "z": ".2f", "gap_same": ".1e", "kappa": ".3f", "kappa_l2": ".3f"}
    return markdown_table(table, columns, formats)


def alignment_table(rows: list[dict]) -> str:
    """Return a Markdown table of :func:`robust_rows` for Theorem 3: per ``eps`` the condition number, the
    worst-case cosine (Lemma 8 and numerical search) and the cosine for the chapter's ``mu_star``."""
    from .report import markdown_table

    columns = {
        "eps": "ε",
        "kappa": "κ(Σ_r)",
        "worst": "worst case, Lemma 8",
        "worst_search": "worst case, search",
        "cosine": "μ*, closed form",
        "cosine_linear": "μ*, relaxed fit",
        "cosine_l2": "μ*, ℓ2 fit",
    }
    formats = dict.fromkeys(list(columns)[2:], ".5f") | {"kappa": ".3f"}
    return markdown_table(rows, columns, formats)


def relaxation_table(rows: list[dict]) -> str:
    """Return a Markdown table of :func:`relaxation_rows`: per dimension the radius and the two fits' gaps."""
    from .report import markdown_table

    columns = {"d": "d", "eps": "ε", "gap_l2": "ℓ2 fit vs closed form", "gap_linear": "relaxed fit vs closed form"}
    return markdown_table(rows, columns, {"eps": ".3g", "gap_l2": ".2%", "gap_linear": ".1e"})


# --- verdicts: each claim of the chapter's section on this model as this run measured it -------------
# Each returns, per statement, {"measured": a display string, "held": bool}: the keyword arguments
# of report.Chapter.claim / .check besides the statement's text and source.


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def _rows(where: str, rows, keys: tuple[str, ...], source: str) -> list[dict]:
    """Return ``rows`` as a non-empty list of dicts that have ``keys``, or raise naming the rows ``where`` expects."""
    if isinstance(rows, dict) or not isinstance(rows, (list, tuple)):
        raise TypeError(f"{where} expects the list of rows of {source}, got {type(rows).__name__}")
    if not rows:
        raise ValueError(f"{where} got no rows: pass the rows of {source}, at least one")
    for i, row in enumerate(rows):
        missing = [key for key in keys if key not in row] if isinstance(row, dict) else list(keys)
        if missing:
            has = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"{where} expects the rows of {source}: row {i} lacks {missing} (it has {has})")
    return list(rows)


def ml_verdict(mu, sigma, mu_star, sigma_star, n: int, z: float = 5.0) -> dict:
    """Return whether the ML estimate ``(mu, sigma)`` from ``n`` points is within ``z`` standard errors of the truth.

    The standard errors of Gaussian data: ``sqrt(s_i / n)`` for a mean, ``sqrt((s_ii s_jj + s_ij^2) / n)``
    for a covariance entry (``s = sigma_star``). Measured: the largest gap, in standard errors.

    Raises:
        ValueError: for shapes that disagree, covariances that are not positive definite, ``n < 2``
            (:func:`fit_ml` needs more points than features) or ``z <= 0``.
        TypeError: for an ``n`` that is not an integer or a ``z`` that is not a number.
    """
    mu = _mean("mu", mu)
    mu_star = _mean("mu_star", mu_star).to(mu.device)
    _same_d(mu, mu_star, "mu", "mu_star")
    sigma = _covariance("sigma", sigma, mu.shape[0], "mu").to(mu.device)
    sigma_star = _covariance("sigma_star", sigma_star, mu.shape[0], "mu").to(mu.device)
    n, z = _count("n", n, 2), _number("z", z, strict=True)
    s = sigma_star.diagonal()
    gap_mu = ((mu - mu_star).abs() / (s / n).sqrt()).max().item()
    gap_sigma = ((sigma - sigma_star).abs() / ((s[:, None] * s[None, :] + sigma_star.square()) / n).sqrt()).max().item()
    gap = max(gap_mu, gap_sigma)
    return _verdict(f"largest gap {gap:.2f} standard errors (mean {gap_mu:.2f}, covariance {gap_sigma:.2f})", gap <= z)


def theorem_1_verdicts(rows: list[dict], z: float = 5.0) -> dict[str, dict]:
    """Return the verdicts of Theorem 1 on :func:`vulnerability_rows`, whose covariances share one trace and
    grow more anisotropic row by row, the first isotropic.

    ``"formula"``: every Monte Carlo estimate lies within ``z`` standard errors of the closed form;
    ``"isotropic"``: the first covariance is isotropic and all share its trace, the closed form is
    smallest there and grows with the anisotropy, and the Monte Carlo estimate there is below the
    last row's. The measured text names the first row by its label when it is not isotropic.

    Raises:
        ValueError: for no rows, rows that are not :func:`vulnerability_rows`'s, or ``z <= 0``.
    """
    keys = ("label", "kappa", "trace", "closed_form", "monte_carlo", "se", "z")
    rows = _rows("theorem_1_verdicts", rows, keys, "vulnerability_rows")
    z = _number("z", z, strict=True)
    worst = max(abs(r["z"]) for r in rows)
    exact = [r["closed_form"] for r in rows]
    first, last = rows[0], rows[-1]
    isotropic = first["kappa"] <= 1 + 1e-9
    same_trace = all(abs(r["trace"] - first["trace"]) <= 1e-9 * abs(first["trace"]) for r in rows)
    where = "Σ* = (k/d) I" if isotropic else f"{first['label']} (not isotropic: κ = {first['kappa']:.4g})"
    caveat = "" if same_trace else "; the covariances do not share one trace"
    return {
        "formula": _verdict(
            f"{sum(abs(r['z']) <= z for r in rows)} of {len(rows)} covariances agree; largest gap {worst:.2f} SE",
            worst <= z,
        ),
        "isotropic": _verdict(
            f"{exact[0]:.4f} at {where}, rising to {exact[-1]:.4f} ({last['label']}); Monte Carlo "
            f"{first['monte_carlo']:.4f} and {last['monte_carlo']:.4f}{caveat}",
            isotropic
            and same_trace
            and _increasing(exact)
            and first["monte_carlo"] + z * first["se"] < last["monte_carlo"] - z * last["se"],
        ),
    }


def theorem_2_verdicts(rows: list[dict], z: float = 5.0, rel_tol: float = 1e-5) -> dict[str, dict]:
    """Return the verdicts of Theorem 2 on :func:`robust_rows`.

    ``"mean"``: the relaxed fit's mean is the ML mean (to ``rel_tol``, scaled) and within ``z``
    standard errors of ``mu_star``; ``"covariance"``: its variances are the closed form at the
    sample's ML variances (relative gap ``<= rel_tol``) and within ``z`` standard errors of the closed
    form at ``sigma_star``; ``"identity"``: the condition number falls strictly with ``eps`` for the
    closed form and for both fits.

    Raises:
        ValueError: for no rows, rows that are not :func:`robust_rows`'s, or ``z`` or ``rel_tol`` not > 0.
    """
    keys = ("eps", "mu_gap", "mu_z", "gap_same", "z", "kappa", "kappa_linear", "kappa_l2")
    rows = _rows("theorem_2_verdicts", rows, keys, "robust_rows")
    z, rel_tol = _number("z", z, strict=True), _number("rel_tol", rel_tol, strict=True)
    mu_gap, mu_z = max(r["mu_gap"] for r in rows), max(r["mu_z"] for r in rows)
    gap, worst = max(r["gap_same"] for r in rows), max(r["z"] for r in rows)
    kappas = {key: [r[key] for r in rows] for key in ("kappa", "kappa_linear", "kappa_l2")}
    return {
        "mean": _verdict(
            f"largest gap to the ML mean {mu_gap:.1e}; to μ* {mu_z:.2f} SE", mu_gap <= rel_tol and mu_z <= z
        ),
        "covariance": _verdict(
            f"largest relative gap {gap:.1e} on the same sample; {worst:.2f} SE from the closed form at Σ*",
            gap <= rel_tol and worst <= z,
        ),
        "identity": _verdict(
            f"κ from {kappas['kappa'][0]:.1f} to {kappas['kappa'][-1]:.2f} (closed form), to "
            f"{kappas['kappa_l2'][-1]:.2f} (ℓ2 fit) as ε grows from {rows[0]['eps']:g} to {rows[-1]['eps']:g}",
            all(_increasing([-k for k in ks]) for ks in kappas.values()),
        ),
    }


def relaxation_verdict(rows: list[dict], rel_tol: float = 1e-5) -> dict:
    """Return whether l_2 adversarial training comes closer to the relaxed closed form as ``d`` grows
    (:func:`relaxation_rows`: ``gap_l2`` falls strictly with ``d``), the relaxed fit matching it to ``rel_tol``.

    Raises:
        ValueError: for no rows, rows that are not :func:`relaxation_rows`'s, or ``rel_tol <= 0``.
    """
    rows = _rows("relaxation_verdict", rows, ("d", "gap_l2", "gap_linear"), "relaxation_rows")
    rel_tol = _number("rel_tol", rel_tol, strict=True)
    gaps = [r["gap_l2"] for r in rows]
    measured = ", ".join(f"{g:.2%} at d = {r['d']}" for g, r in zip(gaps, rows))
    return _verdict(measured, _increasing([-g for g in gaps]) and max(r["gap_linear"] for r in rows) <= rel_tol)


def _at(row: dict) -> str:
    return f"ε = {row['eps']:g}" + (" (standard ML)" if row["eps"] == 0 else "")


def theorem_3_verdicts(rows: list[dict], search_tol: float = 1e-6) -> dict[str, dict]:
    """Return the verdicts of Theorem 3 on :func:`robust_rows` (in increasing ``eps``; Theorem 3 compares
    with standard ML, a first row at ``eps = 0``). Each row is labelled by its own ``eps``.

    ``"worst_case"``: the worst-case cosine of Lemma 8 rises strictly with ``eps``, and the numerical
    search agrees with it within ``search_tol``; ``"mu_star"``: the cosine between ``mu_star`` and
    the gradient rises strictly with ``eps`` for the closed form and for both fits.

    Raises:
        ValueError: for no rows, rows that are not :func:`robust_rows`'s, or ``search_tol <= 0``.
    """
    keys = ("eps", "worst", "worst_search", "cosine", "cosine_linear", "cosine_l2")
    rows = _rows("theorem_3_verdicts", rows, keys, "robust_rows")
    search_tol = _number("search_tol", search_tol, strict=True)
    worst = [r["worst"] for r in rows]
    search = max(abs(r["worst_search"] - r["worst"]) for r in rows)
    cosines = {key: [r[key] for r in rows] for key in ("cosine", "cosine_linear", "cosine_l2")}
    return {
        "worst_case": _verdict(
            f"{worst[0]:.4f} at {_at(rows[0])}, {worst[-1]:.4f} at {_at(rows[-1])}; the search is "
            f"within {search:.1e} of Lemma 8",
            _increasing(worst) and search <= search_tol,
        ),
        "mu_star": _verdict(
            f"cosine {cosines['cosine'][0]:.3f} at ε = {rows[0]['eps']:g}, {cosines['cosine'][-1]:.3f} at "
            f"ε = {rows[-1]['eps']:g} (closed form; ℓ2 fit {cosines['cosine_l2'][-1]:.3f})",
            all(_increasing(c) for c in cosines.values()),
        ),
    }
