"""Projected gradient descent (Madry et al. 2018) in l_inf and l_2, inputs and eps in pixel units.

A threat model is a small stateless object per norm with ``random_start``, ``step`` and
``project`` (the split of MadryLab/robustness). :func:`pgd` runs on top of it: restarts batched
along the batch dimension, targeted mode, a custom per-example loss, keep-the-best, input
gradients via ``torch.autograd.grad`` only and no host synchronisation inside the loop; with
``amp`` the model runs under bf16 autocast while the perturbation, its steps and projections stay
in float32 (measured by ``python -m robustutils.bench``: where it helps, and that it keeps strength).
:class:`PGD` holds one attack's settings, is called like ``attack(model, x, y)`` and records
its settings next to the numbers it produces: it implements :class:`Attack`, the contract the
training loop, the evaluation and the checkpoints rely on. :func:`step_size` is the one rule
that turns a step given as a factor of eps (or none) into pixel units.
"""

import dataclasses
import math
import numbers
import typing
from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@typing.runtime_checkable
class Attack(typing.Protocol):
    """The contract of an attack, which :class:`PGD` and :class:`robustutils.independent.AutoAttack` fulfil.

    ``attack(model, x, y)`` returns adversarial inputs in [0, 1] shaped like ``x`` [N, ...]
    (images in [0, 1], pixel units) for labels ``y`` [N]; ``settings()`` describes the attack in
    plain values, recorded beside every number it produces and in training checkpoints;
    ``with_loss(loss_fn)`` is the same attack maximising another per-example loss (how TRADES
    attacks its KL term). The library checks the contract with ``isinstance(attack, Attack)``; a
    plain function ``attack(model, x, y)`` is accepted wherever only the call is needed, and is
    then recorded by its ``repr``.
    """

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def settings(self) -> dict:
        """Return the attack's settings as plain JSON-able values; ``"eps"`` (pixel units) among
        them, and ``"restarts"`` when the attack restarts."""
        ...

    def with_loss(self, loss_fn: LossFn) -> "Attack":
        """Return the same attack maximising ``loss_fn(model, x_adv, y)``, one loss per example [N]."""
        ...


@typing.runtime_checkable
class ScalableAttack(Attack, typing.Protocol):
    """An :class:`Attack` whose radius can be scaled, which an eps ramp in
    :func:`robustutils.train.fit` needs (:class:`PGD` is one)."""

    def scaled(self, factor: float) -> "ScalableAttack":
        """Return the same attack with ``eps`` (pixel units) multiplied by ``factor``."""
        ...


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


def step_size(eps: float, steps: int, factor: float | None = None) -> float:
    """Return the step size in pixel units: ``factor * eps``, or with ``factor=None`` Madry et al.'s
    rule of thumb ``2.5 * eps / steps`` (enough steps of it cross the ball and back).

    The one conversion between the ways a step is given (a factor of ``eps``, or the default),
    used by :class:`PGD`, :func:`robustutils.independent.suite` and the evaluations. ``eps`` is in
    pixel units of inputs in [0, 1]. Raises ``ValueError`` for ``steps`` not an integer >= 1 or a
    ``factor`` that is not a finite number >= 0.

    Examples::

        step_size(0.3, 40)              # 0.01875: 2.5 * 0.3 / 40
        step_size(8 / 255, 1, 1.25)     # FGSM with random start (Wong et al. 2020): 1.25 * eps
    """
    check_count("steps", steps)
    if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps is a radius in pixel units of inputs in [0, 1], a finite number >= 0; got {eps!r}")
    if factor is None:
        return 2.5 * eps / steps
    if isinstance(factor, bool) or not (isinstance(factor, numbers.Real) and math.isfinite(factor) and factor >= 0):
        raise ValueError(
            f"a step factor multiplies eps and must be a finite number >= 0 (or None for "
            f"2.5 * eps / steps); got {factor!r}"
        )
    return factor * eps


def resolved_step_size(eps: float, steps: int, given: float | None) -> float:
    """Return ``given`` (a step size in pixel units), or when it is None the default of
    :func:`step_size`, ``2.5 * eps / steps``."""
    return step_size(eps, steps) if given is None else given


def _suggest_255(name: str, value: float, limit: float | None = None) -> str:
    if limit is not None and value / 255 > limit:
        return f"give it in pixel units, at most {limit:.4g}"
    return f"did you mean {name}={value:g}/255 = {value / 255:.4f}?"


def check_settings(eps, steps, step_size, norm, restarts) -> None:
    """Raise ``ValueError`` with the fix when an attack setting is out of range; return nothing.

    ``eps`` must be finite and >= 0, ``step_size`` None or finite and >= 0 (both in pixel units of
    inputs in [0, 1]), ``steps`` and ``restarts`` integers >= 1, ``norm`` ``"linf"`` or ``"l2"``.
    In l_inf, ``eps`` and ``step_size`` must be at most 1: a larger l_inf ball contains the whole
    [0, 1] box, so the value was almost certainly given in 0-255 units (the error suggests
    ``eps/255``). The l_2 radius is bounded by the inputs' size, checked by :func:`check_radius`.
    """
    threat(norm)
    for name, value in (("eps", eps), ("step_size", 0.0 if step_size is None else step_size)):
        if isinstance(value, torch.Tensor):
            shape = tuple(value.shape)
            raise ValueError(
                f"{name} must be a Python number (one radius for the whole batch); got a tensor: use float({name})"
                if value.numel() == 1
                else f"{name} must be one number for the whole batch; got a tensor of shape {shape}"
            )
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0 in pixel units (inputs in [0,1]); got {value!r}")
        if norm == "linf" and value > 1:
            raise ValueError(
                f"l_inf {name}={value:g} is above 1: {name} is in pixel units of inputs in [0,1], where "
                f"an l_inf ball of radius 1 already covers every image; {_suggest_255(name, value)}"
            )
    for name, value in (("steps", steps), ("restarts", restarts)):
        check_count(name, value)


def check_count(name: str, value, what: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 1 (not a bool); ``what`` says in the
    message what it counts. Return nothing."""
    if isinstance(value, bool) or not (isinstance(value, numbers.Integral) and value >= 1):
        raise ValueError(f"{name} must be an integer >= 1{what}; got {value!r}")


def check_radius(x: torch.Tensor, eps: float, norm: str, step_size: float | None = None) -> None:
    """Raise ``ValueError`` when an l_2 ``eps`` or ``step_size`` (pixel units) exceeds the diameter of
    the [0, 1] box of inputs shaped like ``x`` [N, ...]: ``sqrt(D)``, D the number of pixel values per
    example (28.0 for MNIST, 55.4 for CIFAR-10, 388 for 224-px ImageNet). No two images are further
    apart, so a larger radius is meaningless, usually eps given in 0-255 units. Return nothing;
    no host sync (only ``x``'s shape is read). l_inf settings are checked by :func:`check_settings`.
    """
    if norm != "l2" or not isinstance(x, torch.Tensor) or x.dim() < 1:
        return  # a non-tensor x is refused by check_inputs
    diameter = math.sqrt(x[0].numel()) if len(x) else math.inf
    for name, value in (("eps", eps), ("step_size", step_size)):
        if value is not None and value > diameter * (1 + 1e-6):
            raise ValueError(
                f"l_2 {name}={value:g} exceeds {diameter:.4g}, the diameter sqrt({x[0].numel()}) of the "
                f"[0,1] box of these inputs ({x[0].numel()} pixel values each): no two images are further "
                f"apart; {name} is in pixel units of inputs in [0,1], "
                f"{_suggest_255(name, value, diameter)}"
            )


def _image_form(x, name: str = "inputs") -> None:
    """Raise ``ValueError`` unless ``x`` is a floating tensor [N, ...] (no host sync)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor of images in [0,1], shaped [N, ...]; got {type(x).__name__}: "
            "convert with torch.as_tensor(x, dtype=torch.float32) (and / 255 if in 0..255)"
        )
    if x.dtype == torch.uint8:
        raise ValueError(
            f"{name} are uint8 (pixel values 0..255); the library takes floats in [0,1]: convert with x.float() / 255"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be floating point in [0,1]; got dtype {x.dtype}: convert with x.float() "
            "(and / 255 if the values are 0..255)"
        )
    if x.dim() < 2:
        raise ValueError(
            f"{name} must be a batch shaped [N, ...] (N examples); got shape {tuple(x.shape)}: "
            "add the batch dimension with x.unsqueeze(0)"
        )
    if len(x) == 0:
        raise ValueError(f"{name} hold no examples (shape {tuple(x.shape)})")


def _label_form(y, n: int, name: str = "labels") -> None:
    """Raise ``ValueError`` unless ``y`` is a 1-D integer tensor [n] of class indices (no host sync)."""
    if not isinstance(y, torch.Tensor):
        raise ValueError(
            f"{name} must be a 1-D integer torch.Tensor [N] of class indices; got {type(y).__name__}: "
            "convert with torch.as_tensor(y, dtype=torch.long)"
        )
    if y.dim() != 1:
        if y.numel() == n and n > 0:
            fix = "use y.view(-1)"
        elif y.dim() == 2 and y.shape[0] == n:
            fix = "one-hot or probability rows? use y.argmax(1)"
        else:
            fix = "pass one class index per input"
        raise ValueError(f"{name} must be a 1-D integer tensor [N] of class indices; got shape {tuple(y.shape)}: {fix}")
    if len(y) != n:
        raise ValueError(f"batch size mismatch: {n} inputs but {len(y)} {name}")
    if y.dtype != torch.long:
        raise ValueError(
            f"{name} must be int64 class indices (torch.long, what cross-entropy takes); "
            f"got dtype {y.dtype}: use y.long()"
        )


def _is_label_vector(y) -> bool:
    return (
        isinstance(y, torch.Tensor)
        and y.dim() == 1
        and y.dtype != torch.bool
        and not y.is_floating_point()
        and not y.is_complex()
    )


def check_inputs(
    x: torch.Tensor, y: torch.Tensor | None = None, *, labels: bool = True, model: torch.nn.Module | None = None
) -> None:
    """Raise ``ValueError`` naming the fix unless ``x`` is a float batch [N, ...] of images in [0, 1]
    (pixel units; normalisation belongs inside the model) and ``y`` fits it; return nothing.

    With ``labels`` (the default) ``y`` must be a 1-D int64 tensor [N] of class indices >= 0 (not
    [N, 1]: use ``y.view(-1)``); with ``labels=False`` it may be any tensor of targets whose first
    dimension is N (e.g. representation targets [N, D] for a custom ``loss_fn``). ``y=None`` checks
    ``x`` alone. uint8 images are refused (convert with ``x.float() / 255``), and so are NaN pixels.

    With ``model``, also what only the model can tell: ``x``'s dtype must be that of its weights
    (float64 images for a float32 model: ``x.float()``), two examples of ``x`` must go through it
    (else the error gives the shape seen, e.g. channels last [N, H, W, C]: ``x.permute(0, 3, 1, 2)``;
    no channel axis [N, H, W]: ``x.unsqueeze(1)``), and every label must be below its number of
    classes (a label 10 on a 10-class model would otherwise count as a miss). That costs one
    forward pass of two examples, in eval mode without gradients (the model's mode is restored).

    One host sync (a single read-back of the ranges), however many checks.
    """
    _image_form(x)
    if y is not None:
        if labels:
            _label_form(y, x.shape[0])
        elif not isinstance(y, torch.Tensor) or y.dim() == 0 or y.shape[0] != x.shape[0]:
            got = y.shape[0] if isinstance(y, torch.Tensor) and y.dim() else f"a {type(y).__name__}"
            raise ValueError(f"batch size mismatch: {x.shape[0]} inputs but {got} labels/targets")
    classes = None if model is None else _model_classes(model, x)
    lo, hi = torch.aminmax(x.detach())
    ranges = [lo.float(), hi.float()]
    if y is not None and labels:
        y_lo, y_hi = torch.aminmax(y.detach())
        ranges += [y_lo.to(lo.device, torch.float32), y_hi.to(lo.device, torch.float32)]
    ranges = torch.stack(ranges).tolist()  # the one host sync
    if not (ranges[0] >= 0 and ranges[1] <= 1):  # written so that NaN pixels fail too
        hint = " (0..255? divide by 255)" if ranges[1] > 1.5 and ranges[0] >= 0 else ""
        raise ValueError(
            f"inputs must lie in [0,1] (normalisation belongs inside the model); "
            f"got values in [{ranges[0]:.3g}, {ranges[1]:.3g}]{hint}"
        )
    if len(ranges) == 4 and ranges[2] < 0:
        raise ValueError(f"labels must be class indices >= 0; got {ranges[2]:g}")
    if len(ranges) == 4 and classes is not None and ranges[3] >= classes:
        raise ValueError(f"labels must be class indices below the model's {classes} classes; got {ranges[3]:g}")


def _model_classes(model: torch.nn.Module, x: torch.Tensor) -> int | None:
    """Raise ``ValueError`` unless ``model`` reads ``x`` (its dtype, its layout); return the number
    of classes it outputs (None for an output that is not [N, classes]). No host sync."""
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weight is not None and x.dtype != weight.dtype:
        raise ValueError(
            f"inputs are {x.dtype} but the model's weights are {weight.dtype}: convert with x.to({weight.dtype})"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # two examples, not one: a model would read a lone [1, H, W] image as one unbatched [C, H, W]
            logits = model(x[:2].to(weight.device if weight is not None else x.device))
    except RuntimeError as err:
        hint = ""
        if x.dim() == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            hint = " They look channels-last [N, H, W, C]: use x.permute(0, 3, 1, 2)."
        elif x.dim() == 3:
            hint = " They have no channel axis: use x.unsqueeze(1) for [N, 1, H, W]."
        raise ValueError(
            f"the model cannot read inputs shaped {tuple(x.shape)} (images are [N, C, H, W] in "
            f"[0,1]).{hint} The model said: {str(err).splitlines()[0]}"
        ) from err
    finally:
        model.train(was_training)
    return logits.shape[1] if logits.dim() == 2 else None


def _in_box(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Shrink ``delta`` so that ``x + delta`` stays in [0, 1]; never grows any pixel's change."""
    return (x + delta).clamp(0, 1) - x


def _better(obj_now, hit_now, obj_best, hit_best) -> torch.Tensor:
    """Per example, whether the candidate beats the best so far: a success beats a failure, and
    among equals the higher objective wins (``hit_*`` None: the objective alone)."""
    if hit_now is None:
        return obj_now > obj_best
    return (hit_now & ~hit_best) | ((hit_now == hit_best) & (obj_now > obj_best))


def _keep_best(best, now):
    """Merge the candidates ``now = (x, obj, hit)`` into ``best`` example by example (:func:`_better`)."""
    (best_x, best_obj, best_hit), (x_now, obj_now, hit_now) = best, now
    better = _better(obj_now, hit_now, best_obj, best_hit)
    hit = None if hit_now is None else torch.where(better, hit_now, best_hit)
    return (
        torch.where(better.view(-1, *[1] * (x_now.dim() - 1)), x_now, best_x),
        torch.where(better, obj_now, best_obj),
        hit,
    )


def _best_restart(x_adv: torch.Tensor, obj: torch.Tensor, hit, restarts: int) -> torch.Tensor:
    """From [restarts * B, ...] candidates keep, per example, a successful one if any restart
    succeeded, and among those (or among all, when none did or ``hit`` is None) the highest objective."""
    batch = x_adv.shape[0] // restarts
    obj = obj.view(restarts, batch)
    if hit is not None:
        hit = hit.view(restarts, batch)
        eligible = hit | ~hit.any(dim=0, keepdim=True)
        pick = torch.where(eligible, obj, -math.inf).argmax(dim=0)
        # an objective of -inf (or NaN) everywhere must not pick an ineligible restart
        first_eligible = eligible.to(torch.uint8).argmax(dim=0)
        pick = torch.where(eligible.gather(0, pick.view(1, -1)).view(-1), pick, first_eligible)
    else:
        pick = obj.argmax(dim=0)
    return x_adv.view(restarts, batch, *x_adv.shape[1:])[pick, torch.arange(batch, device=x_adv.device)]


def _repeat(t: torch.Tensor, restarts: int) -> torch.Tensor:
    return t.detach().repeat(restarts, *[1] * (t.dim() - 1))


def _start(ball, x: torch.Tensor, eps: float, restarts: int, random_start: bool) -> torch.Tensor:
    """First perturbation of ``x`` (``restarts`` copies stacked): a fresh random draw per copy, or zero."""
    if not random_start:
        return torch.zeros_like(x)
    one_copy = x[: len(x) // restarts]
    return _in_box(x, torch.cat([ball.random_start(one_copy, eps) for _ in range(restarts)]))


def _ascend(
    objective, x, y, delta, ball, eps: float, step_size: float, steps: int, use_best: bool, final_objective: bool
):
    """Run ``steps`` projected ascent steps on ``objective`` from ``x + delta``.

    ``objective(x_in, y, need_hit)`` returns ``(objective [N], success [N] bool or None)``.
    Return ``(x_adv, objective at x_adv, success at x_adv)``: the last iterate, or with ``use_best``
    the best one seen (the start included; a success first, then the highest objective). The
    objective and success are ``None`` when neither ``use_best`` nor ``final_objective`` asks for
    them (one forward pass saved, which matters for FGSM). No host sync.
    """
    best = (x, torch.full((len(x),), -math.inf, device=x.device), None)
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            obj, hit = objective(x + delta, y, use_best)
            (grad,) = torch.autograd.grad(obj.sum(), delta)
            delta = delta.detach()
            if use_best:
                if hit is not None and best[2] is None:
                    best = (*best[:2], torch.zeros_like(hit))
                best = _keep_best(best, (x + delta, obj.detach(), hit))
            delta = _in_box(x, ball.project(delta + ball.step(grad, step_size), eps))
    x_adv = x + delta
    if not (use_best or final_objective):
        return x_adv, None, None
    with torch.no_grad():
        obj, hit = objective(x_adv, y, True)
    if not use_best:
        return x_adv, obj, hit
    if hit is not None and best[2] is None:  # steps == 0 cannot happen, but keep the types straight
        best = (*best[:2], torch.zeros_like(hit))
    return _keep_best(best, (x_adv, obj, hit))


def pgd(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    restarts: int = 1,
    targeted: bool = False,
    loss_fn: LossFn | None = None,
    use_best: bool = True,
    amp: bool = False,
) -> torch.Tensor:
    """Return adversarial inputs in [0, 1], shaped like ``x``, within ``eps`` of ``x`` in ``norm``.

    Madry et al. (2018), "Towards Deep Learning Models Resistant to Adversarial Attacks" (arXiv
    1706.06083): ``steps`` projected ascent steps on ``loss_fn(model, x_adv, y)`` (per example,
    shape [N]; default cross-entropy), or descent when ``targeted``, from a random start (or ``x``)
    inside the ``norm`` ball of radius ``eps``, clipped to the [0, 1] box after every step.

    *Best* puts success first, so that an attack never reports more robustness than what it tried
    shows: an iterate (with ``use_best``) or restart that is misclassified (``targeted``: classified
    as the target) beats one that is not, and among equals the highest objective wins. With the
    default loss, success is read from the logits of the forward pass that computes the loss (no
    extra pass). With a custom ``loss_fn`` and ``y`` a 1-D integer label vector, success costs one
    extra no-grad forward pass per step where it is needed (each step with ``use_best``, the last
    iterate with ``restarts > 1``); with any other ``y`` (not labels) only the objective decides.
    Under ``amp`` success is judged on the bf16 forward pass the attack ran.

    The model runs in eval mode; its mode is restored. No host sync inside the step loop (the
    input checks read back once, before it).

    Args:
        model: The classifier; it takes images in [0, 1] (normalisation belongs inside it).
        x: Images [N, ...] in [0, 1] (float, pixel units).
        y: Class indices [N] (int64): the true labels, or the targets when ``targeted``. With a
            custom ``loss_fn``, any tensor whose first dimension is N that the loss needs (e.g.
            representation targets [N, D], or clean probabilities for TRADES).
        eps: The radius of the threat model, in pixel units.
        steps: The number of ascent steps, an integer >= 1.
        step_size: The length of one step in pixel units; ``None`` means ``2.5 * eps / steps``
            (:func:`step_size`).
        norm: The threat model, ``"linf"`` or ``"l2"`` (:func:`threat`).
        random_start: Start from a random point of the ball (see :class:`Linf`, :class:`L2`)
            rather than from ``x``.
        restarts: Random starts, run in one batch; per example the best one is returned.
        targeted: Minimise the loss towards the labels ``y`` instead of maximising it.
        loss_fn: The objective ``loss_fn(model, x_adv, y) -> [N]``; ``None``: :func:`cross_entropy`.
        use_best: Return per example the best iterate seen (the start included) rather than the last.
        amp: Run the model (and loss) under bf16 autocast on ``x``'s device; the perturbation, its
            steps and projections stay in float32.

    Returns:
        The adversarial inputs, float32, in [0, 1], shaped like ``x``.

    Raises:
        ValueError: Naming the fix, for a bad setting (:func:`check_settings`; l_inf ``eps`` or
            ``step_size`` above 1: in 0-255 units?), an l_2 radius beyond the inputs' diameter
            (:func:`check_radius`), inputs outside [0, 1], NaN or uint8, labels that are not [N]
            integers, inputs of a dtype or layout the model cannot read and labels at or above its
            number of classes (:func:`check_inputs` with the model), and a ``loss_fn`` that does
            not return one loss per example.

    Examples::

        x_adv = pgd(model, x, y, eps=0.3, steps=40)                      # MNIST, l_inf
        x_adv = pgd(model, x, y, eps=0.5, norm="l2", steps=20, restarts=5)
        x_adv = pgd(model, x, y, eps=0.3, steps=40, step_size=attacks.step_size(0.3, 40, 0.1))
    """
    check_settings(eps, steps, step_size, norm, restarts)
    labels = loss_fn is None
    check_inputs(x, y, labels=labels, model=model)
    check_radius(x, eps, norm, step_size)
    ball = threat(norm)
    step_size = resolved_step_size(eps, steps, step_size)
    sign = -1.0 if targeted else 1.0
    success_aware = labels or _is_label_vector(y)

    def success(logits, y_in):
        pred = logits.argmax(dim=1)
        return (pred == y_in) if targeted else (pred != y_in)

    def objective(x_in, y_in, need_hit: bool):
        with torch.autocast(x_in.device.type, dtype=torch.bfloat16, enabled=amp):
            if loss_fn is None:  # cross_entropy, spelled out to keep its logits
                logits = model(x_in)
                obj = sign * F.cross_entropy(logits, y_in, reduction="none").float()
                hit = success(logits.detach(), y_in) if need_hit else None
            else:
                obj = sign * loss_fn(model, x_in, y_in).float()
                hit = None
                if need_hit and success_aware:
                    with torch.no_grad():
                        hit = success(model(x_in), y_in)
        if obj.shape != (len(x_in),):
            raise ValueError(f"loss_fn must return one loss per example, shape ({len(x_in)},); got {tuple(obj.shape)}")
        return obj, hit

    x, y = _repeat(x, restarts), _repeat(y, restarts)
    delta = _start(ball, x, eps, restarts, random_start)
    was_training = model.training
    model.eval()
    try:
        x_adv, obj, hit = _ascend(objective, x, y, delta, ball, eps, step_size, steps, use_best, restarts > 1)
    finally:
        model.train(was_training)
    return _best_restart(x_adv, obj, hit, restarts) if restarts > 1 else x_adv


def fgsm(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    random_start: bool = False,
    step_size: float | None = None,
) -> torch.Tensor:
    """Return single-step adversarial inputs in [0, 1], shaped like ``x``: FGSM (Goodfellow et al.
    2015, arXiv 1412.6572), or with ``random_start`` and ``step_size=1.25 * eps`` the "fast"
    variant of Wong et al. (2020, arXiv 2001.03994).

    ``x`` [N, ...] holds images in [0, 1], ``y`` [N] integer class indices; ``eps`` and
    ``step_size`` (default ``eps``) are in pixel units. Raises ``ValueError`` as :func:`pgd` does
    (e.g. an l_inf ``eps`` above 1, labels shaped [N, 1]).
    """
    step_size = eps if step_size is None else step_size
    return pgd(model, x, y, eps=eps, steps=1, step_size=step_size, norm=norm, random_start=random_start, use_best=False)


@dataclasses.dataclass(frozen=True)
class PGD:
    """One PGD attack's settings; ``attack(model, x, y)`` returns adversarial inputs in [0, 1]
    shaped like ``x`` [N, ...] (:func:`pgd`, Madry et al. 2018, arXiv 1706.06083).

    It implements :class:`Attack` (and :class:`ScalableAttack`). ``eps`` and ``step_size`` are in
    pixel units of inputs in [0, 1]; ``step_size=None`` means ``2.5 * eps / steps``, and a step
    given as a factor of eps is ``step_size(eps, steps, factor)`` (:func:`step_size`); ``amp`` runs
    the model under bf16 autocast (see :func:`pgd`). Bad
    settings raise ``ValueError`` when the object is made (:func:`check_settings`: e.g. l_inf
    ``eps=8`` suggests ``8/255``), bad inputs when it is called (as :func:`pgd`).

    Examples::

        attack = PGD(eps=8 / 255, steps=10)          # CIFAR-10, l_inf
        x_adv = attack(model, x, y)
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
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise ValueError(
                f"loss_fn must be a function loss_fn(model, x_adv, y) -> [N] losses, or None for "
                f"cross-entropy; got {type(self.loss_fn).__name__} {self.loss_fn!r}"
            )

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def with_loss(self, loss_fn: LossFn) -> "PGD":
        """Return this attack maximising ``loss_fn(model, x_adv, y)`` (one loss per example, [N]) instead of its own."""
        return dataclasses.replace(self, loss_fn=loss_fn)

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
