"""An independent check of every robust accuracy: APGD (Croce & Hein 2020) from ``torchattacks``.

Our PGD and the models are written by the same people; an attack written by others, with a
different step-size rule (APGD halves its step when progress stalls and uses momentum) and a
different loss (DLR, insensitive to the scale of the logits), catches what our PGD misses:
gradient masking, a too-large step, a bug. :class:`APGD` wraps ``torchattacks.APGD`` as an
``attack(model, x, y) -> x_adv`` so that :func:`robustutils.evaluate.compare` can run it beside PGD.

``torchattacks`` pins an old ``requests`` that conflicts with Sphinx, which it never imports:
install it with ``pip install --no-deps torchattacks`` (``make`` does).
"""

import dataclasses

import torch

from .attacks import PGD, check_inputs, check_settings

LOSSES = ("ce", "dlr")
_NORM_NAMES = {"linf": "Linf", "l2": "L2"}


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError("the independent attack needs torchattacks: run "
                          "`pip install --no-deps torchattacks scipy` (its pinned `requests` clashes with Sphinx)") from err
    return torchattacks


@dataclasses.dataclass(frozen=True)
class APGD:
    """``torchattacks.APGD`` settings; ``attack(model, x, y)`` returns adversarial inputs in [0, 1].

    ``eps`` is in pixel units of inputs in [0, 1]; ``loss`` is ``"ce"`` (cross-entropy) or
    ``"dlr"`` (difference of logits ratio); ``restarts`` random starts keep the first success.
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
        check_inputs(x, y)
        if self.eps == 0:
            return x.clone()
        was_training = model.training
        attack = _torchattacks().APGD(model, norm=_NORM_NAMES[self.norm], eps=self.eps, steps=self.steps,
                                      n_restarts=self.restarts, seed=self.seed, loss=self.loss)
        try:
            return attack(x, y).detach()
        finally:
            model.train(was_training)  # torchattacks leaves the model in eval mode

    def settings(self) -> dict:
        """Return the settings as plain values, to print beside results."""
        return {"attack": f"apgd-{self.loss} (torchattacks)", **dataclasses.asdict(self)}


def apgd_pair(eps: float, norm: str, steps: int = 100, restarts: int = 1) -> dict[str, APGD]:
    """Return AutoAttack's two white-box members, APGD-CE and APGD-DLR at ``eps`` (pixel units),
    keyed ``apgd-ce`` and ``apgd-dlr``."""
    return {f"apgd-{loss}": APGD(eps=eps, norm=norm, steps=steps, restarts=restarts, loss=loss) for loss in LOSSES}


def pgd_key(steps: int, restarts: int = 1) -> str:
    """Return the name :func:`suite` gives our PGD: ``pgd-40``, or ``pgd-100x20`` with 20 restarts."""
    return f"pgd-{steps}" + (f"x{restarts}" if restarts > 1 else "")


def suite(eps: float, norm: str, pgd_steps: int, apgd_steps: int, pgd_restarts: int = 1,
          pgd_step_factor: float | None = None) -> dict:
    """Return the book's standard evaluation at ``eps`` (pixel units), a dict of attacks for
    :func:`robustutils.evaluate.compare`: our PGD (``pgd_steps`` steps, ``pgd_restarts`` random
    starts, step ``pgd_step_factor * eps`` or by default ``2.5 * eps / pgd_steps``) beside the
    independent APGD-CE and APGD-DLR (``apgd_steps`` steps, one start each), keyed by
    :func:`pgd_key`, ``apgd-ce`` and ``apgd-dlr``."""
    step = None if pgd_step_factor is None else pgd_step_factor * eps
    pgd = PGD(eps=eps, steps=pgd_steps, step_size=step, norm=norm, restarts=pgd_restarts)
    return {pgd_key(pgd_steps, pgd_restarts): pgd, **apgd_pair(eps, norm, apgd_steps)}
