"""An independent check of every robust accuracy: APGD (Croce & Hein 2020) from ``torchattacks``.

Our PGD and the models are written by the same people; an attack written by others, with a
different step-size rule (APGD halves its step when progress stalls and uses momentum) and a
different loss (DLR, insensitive to the scale of the logits), catches what our PGD misses:
gradient masking, a too-large step, a bug. :class:`APGD` wraps ``torchattacks.APGD`` as an
:class:`robustutils.attacks.Attack` (its ``with_loss`` refuses: APGD keeps its own loss) so
that :func:`robustutils.evaluate.compare` can run it beside PGD.

``torchattacks`` pins an old ``requests`` that conflicts with Sphinx, which it never imports:
install it with ``pip install --no-deps torchattacks`` (``make`` does).
"""

import dataclasses

import torch

from .attacks import PGD, check_inputs, check_radius, check_settings, step_size
from .runtime import keep_random_state

LOSSES = ("ce", "dlr")
_NORM_NAMES = {"linf": "Linf", "l2": "L2"}


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError(
            "the independent attack needs torchattacks: run "
            "`pip install --no-deps torchattacks scipy` (its pinned `requests` clashes with "
            "Sphinx)"
        ) from err
    return torchattacks


@dataclasses.dataclass(frozen=True)
class APGD:
    """``torchattacks.APGD`` settings; ``attack(model, x, y)`` returns adversarial inputs in [0, 1].

    APGD is Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks" (arXiv 2003.01690). ``x`` [N, C, H, W] holds images in [0, 1],
    ``y`` [N] integer class indices; ``eps`` is in pixel units of inputs in [0, 1]; ``loss`` is
    ``"ce"`` (cross-entropy) or ``"dlr"`` (difference of logits ratio, which needs at least three
    classes); ``restarts`` random starts keep the first success. The result depends on ``seed``
    alone: torchattacks re-seeds the global generators inside, so the call runs under
    :func:`robustutils.runtime.keep_random_state` and leaves the caller's random state as it found it.

    Raises ``ValueError`` naming the fix for bad settings (:func:`robustutils.attacks.check_settings`,
    e.g. l_inf ``eps=8``: use ``8/255``), inputs or labels (:func:`robustutils.attacks.check_inputs`),
    an l_2 eps beyond the inputs' diameter, inputs not shaped [N, C, H, W], and ``loss="dlr"`` on a
    model with fewer than three classes (use ``loss="ce"``).

    Examples::

        apgd = APGD(eps=8 / 255, steps=100, loss="dlr")
        x_adv = apgd(model, x, y)
    """

    eps: float
    norm: str = "linf"
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    seed: int = 0

    def __post_init__(self):
        check_settings(self.eps, self.steps, None, self.norm, self.restarts)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown APGD loss {self.loss!r}: use one of {LOSSES}")

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() != 4:  # torchattacks would add a batch dimension
            raise ValueError(
                f"APGD (torchattacks) takes images shaped [N, C, H, W]; got {tuple(x.shape)}: "
                "reshape, e.g. x.view(-1, 1, 28, 28) for MNIST"
            )
        check_inputs(x, y, model=model)
        check_radius(x, self.eps, self.norm)
        if self.eps == 0:
            return x.clone()
        was_training = model.training
        try:
            if self.loss == "dlr":
                self._check_classes(model, x)
            attack = _torchattacks().APGD(
                model,
                norm=_NORM_NAMES[self.norm],
                eps=self.eps,
                steps=self.steps,
                n_restarts=self.restarts,
                seed=self.seed,
                loss=self.loss,
            )
            with keep_random_state(x.device):  # torchattacks calls manual_seed
                return attack(x, y).detach()
        finally:
            model.train(was_training)  # torchattacks leaves the model in eval mode

    @staticmethod
    def _check_classes(model: torch.nn.Module, x: torch.Tensor) -> None:
        """DLR divides by the gap between the largest and the third-largest logit."""
        model.eval()
        with torch.no_grad():
            classes = model(x[:1]).shape[-1]
        if classes < 3:
            raise ValueError(
                f"APGD with loss='dlr' needs a model with at least 3 classes (the DLR loss uses the "
                f"third-largest logit); this model has {classes}: use loss='ce'"
            )

    def settings(self) -> dict:
        """Return the settings as plain values, to print beside results."""
        return {"attack": f"apgd-{self.loss} (torchattacks)", **dataclasses.asdict(self)}

    def with_loss(self, loss_fn) -> "APGD":
        """Never returns: raise ``NotImplementedError``, since torchattacks' APGD maximises only its
        own ``"ce"`` or ``"dlr"`` loss (choose with ``loss=``); for another loss use
        :class:`robustutils.attacks.PGD`, e.g. ``PGD(eps=..., steps=...).with_loss(loss_fn)``."""
        raise NotImplementedError(
            f"APGD (torchattacks) maximises only its own 'ce' or 'dlr' loss, not "
            f"{getattr(loss_fn, '__name__', loss_fn)!r}: use loss='ce' or 'dlr', or for another "
            f"loss attacks.PGD(eps={self.eps!r}, norm={self.norm!r}, ...).with_loss(loss_fn)"
        )


def apgd_pair(eps: float, norm: str, steps: int = 100, restarts: int = 1) -> dict[str, APGD]:
    """Return AutoAttack's two white-box members (Croce & Hein 2020), APGD-CE and APGD-DLR at
    ``eps`` (pixel units), keyed ``apgd-ce`` and ``apgd-dlr``. Raises ``ValueError`` as :class:`APGD`
    (e.g. l_inf ``eps=8``: use ``8/255``); APGD-DLR refuses, when called, a model with fewer than
    three classes."""
    return {f"apgd-{loss}": APGD(eps=eps, norm=norm, steps=steps, restarts=restarts, loss=loss) for loss in LOSSES}


def pgd_key(steps: int, restarts: int = 1) -> str:
    """Return the name :func:`suite` gives our PGD: ``pgd-40``, or ``pgd-100x20`` with 20 restarts."""
    return f"pgd-{steps}" + (f"x{restarts}" if restarts > 1 else "")


def suite(
    eps: float, norm: str, pgd_steps: int, apgd_steps: int, pgd_restarts: int = 1, pgd_step_factor: float | None = None
) -> dict:
    """Return the book's standard evaluation at ``eps`` (pixel units), a dict of attacks for
    :func:`robustutils.evaluate.compare`: our PGD (``pgd_steps`` steps, ``pgd_restarts`` random
    starts, step ``pgd_step_factor * eps`` or by default ``2.5 * eps / pgd_steps``, as
    :func:`robustutils.attacks.step_size` converts it) beside the independent APGD-CE and APGD-DLR
    (``apgd_steps`` steps, one start each), keyed by
    :func:`pgd_key`, ``apgd-ce`` and ``apgd-dlr``. Raises ``ValueError`` for out-of-range settings
    (:func:`robustutils.attacks.check_settings`); on a model with fewer than three classes
    APGD-DLR raises when called: build the dict without it, e.g. drop ``"apgd-dlr"``."""
    step = None if pgd_step_factor is None else step_size(eps, pgd_steps, pgd_step_factor)  # None: PGD's default
    pgd = PGD(eps=eps, steps=pgd_steps, step_size=step, norm=norm, restarts=pgd_restarts)
    return {pgd_key(pgd_steps, pgd_restarts): pgd, **apgd_pair(eps, norm, apgd_steps)}
