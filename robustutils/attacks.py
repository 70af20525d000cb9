"""Projected gradient descent (Madry et al. 2018) in l_inf and l_2, inputs and eps in pixel units.

A threat model is a small stateless object per norm with ``random_start``, ``step`` and
``project`` (the split of MadryLab/robustness). :func:`pgd` runs on top of it: restarts batched
along the batch dimension, targeted mode, a custom per-example loss, keep-the-best, input
gradients via ``torch.autograd.grad`` only and no host synchronisation inside the loop; with
``amp`` the model runs under bf16 autocast while the perturbation, its steps and projections stay
in float32 (measured by ``python -m robustutils.bench``: where it helps, and that it keeps strength).
:class:`PGD` holds one attack's settings, is called like ``attack(model, x, y)`` and records
its settings next to the numbers it produces.
"""

import dataclasses
import math
import numbers
from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _per_example_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    """The ``p``-norm of each example of ``t``, shaped [N, 1, ..., 1] to broadcast against ``t``."""
    return t.flatten(1).norm(p=p, dim=1).view(-1, *[1] * (t.dim() - 1))


class Linf:
    """The l_inf ball: signed-gradient steps, projection by clamping each pixel."""

    name = "linf"

    @staticmethod
    def random_start(x: torch.Tensor, eps: float) -> torch.Tensor:
        """Return a perturbation shaped like ``x``, uniform in [-eps, eps] per pixel."""
        return (2 * torch.rand_like(x) - 1) * eps

    @staticmethod
    def step(grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Return the ascent step ``step_size * sign(grad)`` (each pixel moves by ``step_size``)."""
        return step_size * grad.sign()

    @staticmethod
    def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
        """Return ``delta`` clamped to [-eps, eps] per pixel."""
        return delta.clamp(-eps, eps)

    @staticmethod
    def norm(delta: torch.Tensor) -> torch.Tensor:
        """Return the l_inf norm [N] of each example's perturbation (pixel units)."""
        return _per_example_norm(delta, math.inf).flatten()


class L2:
    """The l_2 ball: normalised-gradient steps, projection by rescaling onto the ball."""

    name = "l2"

    @staticmethod
    def random_start(x: torch.Tensor, eps: float) -> torch.Tensor:
        """Return a perturbation shaped like ``x`` of l_2 norm ``eps`` per example, in a uniformly
        random direction (on the sphere, not inside the ball)."""
        noise = torch.randn_like(x)
        return eps * noise / (_per_example_norm(noise, 2) + 1e-12)

    @staticmethod
    def step(grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Return the ascent step ``step_size * grad / ||grad||_2`` (l_2 length ``step_size`` per example)."""
        return step_size * grad / (_per_example_norm(grad, 2) + 1e-12)

    @staticmethod
    def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
        """Return ``delta`` rescaled onto the l_2 ball of radius ``eps`` where it lies outside, else unchanged."""
        return delta * (eps / (_per_example_norm(delta, 2) + 1e-12)).clamp(max=1.0)

    @staticmethod
    def norm(delta: torch.Tensor) -> torch.Tensor:
        """Return the l_2 norm [N] of each example's perturbation (pixel units)."""
        return _per_example_norm(delta, 2).flatten()


THREATS = {"linf": Linf, "l2": L2}


def cross_entropy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return the default attack loss: per-example cross-entropy [N] of ``model(x)`` against labels ``y`` (nats)."""
    return F.cross_entropy(model(x), y, reduction="none")


def threat(norm: str):
    """Return the threat model (the class :class:`Linf` or :class:`L2`) named ``norm`` (``"linf"`` or ``"l2"``)."""
    if norm not in THREATS:
        raise ValueError(f"unknown norm {norm!r}: use one of {sorted(THREATS)}")
    return THREATS[norm]


def resolved_step_size(eps: float, steps: int, step_size: float | None) -> float:
    """Return ``step_size``, or when it is None Madry et al.'s rule of thumb ``2.5 * eps / steps`` (pixel units)."""
    return 2.5 * eps / steps if step_size is None else step_size


def check_settings(eps, steps, step_size, norm, restarts) -> None:
    """Raise ``ValueError`` with the fix when an attack setting is out of range; return nothing.

    ``eps`` must be finite and >= 0, ``step_size`` None or finite and >= 0 (both in pixel units),
    ``steps`` and ``restarts`` integers >= 1, ``norm`` ``"linf"`` or ``"l2"``.
    """
    threat(norm)
    for name, value in (("eps", eps), ("step_size", 0.0 if step_size is None else step_size)):
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 in pixel units (inputs in [0,1]); got {value!r}")
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not (isinstance(value, numbers.Integral) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` lies in [0, 1] and ``y`` has one row per input (syncs once)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch size mismatch: {x.shape[0]} inputs but {y.shape[0]} labels/targets")
    lo, hi = torch.aminmax(x.detach())
    if not (lo >= 0 and hi <= 1):  # written so that NaN pixels fail too
        raise ValueError(f"inputs must lie in [0,1] (normalisation belongs inside the model); "
                         f"got values in [{lo.item():.3g}, {hi.item():.3g}]")


def _in_box(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Shrink ``delta`` so that ``x + delta`` stays in [0, 1]; never grows any pixel's change."""
    return (x + delta).clamp(0, 1) - x


def _keep_best(best_x, best_obj, x_now, obj_now):
    better = obj_now > best_obj
    return torch.where(better.view(-1, *[1] * (x_now.dim() - 1)), x_now, best_x), torch.where(better, obj_now, best_obj)


def _best_restart(x_adv: torch.Tensor, obj: torch.Tensor, restarts: int) -> torch.Tensor:
    """From [restarts * B, ...] candidates keep, per example, the one with the highest objective."""
    batch = x_adv.shape[0] // restarts
    pick = obj.view(restarts, batch).argmax(dim=0)
    return x_adv.view(restarts, batch, *x_adv.shape[1:])[pick, torch.arange(batch, device=x_adv.device)]


def _repeat(t: torch.Tensor, restarts: int) -> torch.Tensor:
    return t.detach().repeat(restarts, *[1] * (t.dim() - 1))


def _start(ball, x: torch.Tensor, eps: float, restarts: int, random_start: bool) -> torch.Tensor:
    """First perturbation of ``x`` (``restarts`` copies stacked): a fresh random draw per copy, or zero."""
    if not random_start:
        return torch.zeros_like(x)
    one_copy = x[: len(x) // restarts]
    return _in_box(x, torch.cat([ball.random_start(one_copy, eps) for _ in range(restarts)]))


def _ascend(objective, x, y, delta, ball, eps: float, step_size: float, steps: int, use_best: bool,
            final_objective: bool):
    """Run ``steps`` projected ascent steps on ``objective`` from ``x + delta``.

    Return ``(x_adv, objective at x_adv)``: the last iterate, or with ``use_best`` the best one
    seen (the start included). The objective is ``None`` when neither ``use_best`` nor
    ``final_objective`` asks for it (one forward pass saved, which matters for FGSM).
    """
    best_x, best_obj = x, torch.full((len(x),), -math.inf, device=x.device)
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            obj = objective(x + delta, y)
            (grad,) = torch.autograd.grad(obj.sum(), delta)
            delta = delta.detach()
            if use_best:
                best_x, best_obj = _keep_best(best_x, best_obj, x + delta, obj.detach())
            delta = _in_box(x, ball.project(delta + ball.step(grad, step_size), eps))
    x_adv = x + delta
    if not (use_best or final_objective):
        return x_adv, None
    with torch.no_grad():
        obj = objective(x_adv, y)
    return _keep_best(best_x, best_obj, x_adv, obj) if use_best else (x_adv, obj)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 10,
        step_size: float | None = None, norm: str = "linf", random_start: bool = True, restarts: int = 1,
        targeted: bool = False, loss_fn: LossFn | None = None, use_best: bool = True,
        amp: bool = False) -> torch.Tensor:
    """Return adversarial inputs in [0, 1], shaped like ``x``, within ``eps`` of ``x`` in ``norm``.

    Maximises ``loss_fn(model, x_adv, y)`` (per-example; default cross-entropy), or minimises it
    when ``targeted`` (then ``y`` holds the targets, or any per-example tensor the loss needs).
    ``eps`` and ``step_size`` are in pixel units; ``step_size`` defaults to ``2.5 * eps / steps``.
    ``restarts`` random starts run in one batch; per example the best one is returned (the highest
    loss; the lowest when ``targeted``). ``use_best`` returns the best iterate seen (the start
    included) rather than the last. ``amp`` runs the model (and loss) under bf16 autocast on ``x``'s
    device; ``x_adv`` stays float32. The model runs in eval mode; its mode is restored.
    """
    check_settings(eps, steps, step_size, norm, restarts)
    check_inputs(x, y)
    ball, loss_fn = threat(norm), loss_fn or cross_entropy
    step_size = resolved_step_size(eps, steps, step_size)
    sign = -1.0 if targeted else 1.0

    def objective(x_in, y_in):
        with torch.autocast(x_in.device.type, dtype=torch.bfloat16, enabled=amp):
            obj = sign * loss_fn(model, x_in, y_in).float()
        if obj.shape != (len(x_in),):
            raise ValueError(f"loss_fn must return one loss per example, shape ({len(x_in)},); got {tuple(obj.shape)}")
        return obj

    x, y = _repeat(x, restarts), _repeat(y, restarts)
    delta = _start(ball, x, eps, restarts, random_start)
    was_training = model.training
    model.eval()
    try:
        x_adv, obj = _ascend(objective, x, y, delta, ball, eps, step_size, steps, use_best, restarts > 1)
    finally:
        model.train(was_training)
    return _best_restart(x_adv, obj, restarts) if restarts > 1 else x_adv


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf",
         random_start: bool = False, step_size: float | None = None) -> torch.Tensor:
    """Return single-step adversarial inputs in [0, 1]: FGSM (Goodfellow et al.), or with
    ``random_start`` and ``step_size=1.25 * eps`` the "fast" variant of Wong et al. (2020)."""
    step_size = eps if step_size is None else step_size
    return pgd(model, x, y, eps=eps, steps=1, step_size=step_size, norm=norm,
               random_start=random_start, use_best=False)


@dataclasses.dataclass(frozen=True)
class PGD:
    """One PGD attack's settings; ``attack(model, x, y)`` returns adversarial inputs in [0, 1].

    ``eps`` and ``step_size`` are in pixel units of inputs in [0, 1]; ``step_size=None`` means
    ``2.5 * eps / steps``; ``amp`` runs the model under bf16 autocast (see :func:`pgd`).
    """

    eps: float
    steps: int = 10
    step_size: float | None = None
    norm: str = "linf"
    random_start: bool = True
    restarts: int = 1
    targeted: bool = False
    loss_fn: LossFn | None = None
    use_best: bool = True
    amp: bool = False

    def __post_init__(self):
        check_settings(self.eps, self.steps, self.step_size, self.norm, self.restarts)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def scaled(self, factor: float) -> "PGD":
        """Return this attack with ``eps`` (and an explicit ``step_size``) multiplied by ``factor``."""
        step = None if self.step_size is None else self.step_size * factor
        return dataclasses.replace(self, eps=self.eps * factor, step_size=step)

    def settings(self) -> dict:
        """Return the settings as plain values (the step size resolved), to print beside results."""
        out = dataclasses.asdict(self)
        out["step_size"] = resolved_step_size(self.eps, self.steps, self.step_size)
        out["loss_fn"] = getattr(self.loss_fn or cross_entropy, "__name__", repr(self.loss_fn))
        return {"attack": "pgd", **out}
