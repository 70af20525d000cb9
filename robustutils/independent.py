"""The independent check of every robust accuracy: Croce & Hein's own AutoAttack.

Our PGD and the models are written by the same people; an attack written by others catches what
our PGD misses: gradient masking, a too-large step, a bug. The yardstick of the field is
AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML, arXiv 2003.01690), whose *standard* version runs
APGD-CE, APGD-T (targeted, DLR loss), FAB-T and Square as a cascade, each on the points still
robust, after sanity checks of the model (its output is deterministic, not a probability, its
forward pass computes no gradients, there are enough classes for the targeted attacks).
RobustBench's numbers come from it. :class:`AutoAttack` runs that code, the ``pyautoattack``
package (fra31/auto-attack), with the standard version's settings, as an
:class:`robustutils.attacks.Attack`; the sanity checks' warnings are raised as
:class:`AutoAttackFlag` warnings, never silenced.

:func:`suite` is the book's evaluation: our PGD first, then AutoAttack's attacks one by one, each
on the points every earlier one left robust (:func:`robustutils.evaluate.cascade`), so the last
stage is the per-example worst case over all of them.
"""

import contextlib
import dataclasses
import logging
import warnings
from importlib.metadata import PackageNotFoundError, version

import torch

from .attacks import PGD, check_inputs, check_radius, check_settings, step_size
from .runtime import keep_random_state

#: The standard version's attacks, in the order AutoAttack runs them.
STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
#: How the book names each attack in its tables (Croce & Hein's names).
TITLES = {"apgd-ce": "APGD-CE", "apgd-t": "APGD-T", "fab-t": "FAB-T", "square": "Square"}
#: The standard version's settings (``AutoAttack._set_version('standard')`` for l_inf and l_2).
STANDARD_SETTINGS = {"n_iter": 100, "n_target_classes": 9, "n_queries": 5000}
_NORMS = {"linf": "Linf", "l2": "L2"}
_TARGETED = ("apgd-t", "fab-t")


class AutoAttackFlag(UserWarning):
    """A warning of AutoAttack's sanity checks (fra31/auto-attack ``flags_doc.md``): the model may
    be randomised, output probabilities, compute gradients in its forward pass, have too few classes
    for the targeted attacks, or give zero gradients at some points; Square may have found points the
    gradient attacks missed. Each says the evaluation of that model may be unreliable."""


def _pyautoattack():
    try:
        import pyautoattack
    except ImportError as err:
        raise ImportError(
            "the independent check needs Croce & Hein's AutoAttack: run `pip install pyautoattack` "
            "(the PyPI name of fra31/auto-attack; `make install` does)"
        ) from err
    return pyautoattack


def package_version() -> str:
    """Return the installed ``pyautoattack`` version (recorded with every evaluation)."""
    try:
        return version("pyautoattack")
    except PackageNotFoundError:
        _pyautoattack()  # raises the ImportError that names the fix
        raise


class _Collect(logging.Handler):
    """Keep the warnings AutoAttack logs (its sanity checks report through its logger)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _collected(logger_name: str):
    """Gather the warnings logged to ``logger_name`` whatever the caller's logging configuration (a
    root level above WARNING or ``logging.disable`` would drop them): AutoAttack's sanity checks are
    shown, never silenced."""
    logger, collected = logging.getLogger(logger_name), _Collect()
    level, disabled = logger.level, logging.root.manager.disable
    logger.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    logger.addHandler(collected)
    try:
        yield collected
    finally:
        logger.removeHandler(collected)
        logger.setLevel(level)
        logging.disable(disabled)


def _positive_int(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an integer >= 1 or None (the standard version's value); got {value!r}")


@dataclasses.dataclass(frozen=True)
class AutoAttack:
    """Croce & Hein's AutoAttack (``pyautoattack``) with its standard version's settings;
    ``attack(model, x, y)`` returns adversarial inputs in [0, 1].

    ``x`` [N, C, H, W] holds images in [0, 1], ``y`` [N] integer class indices; ``eps`` is in pixel
    units of inputs in [0, 1], ``norm`` ``"linf"`` or ``"l2"``. ``attacks`` is the standard version's
    four (:data:`STANDARD`) or a subset of them, run as AutoAttack runs them: in that order, each on
    the points the ones before left robust. ``n_iter`` (APGD and FAB iterations), ``n_target_classes``
    (APGD-T's and FAB-T's targets) and ``n_queries`` (Square) default to None, the standard values
    (:data:`STANDARD_SETTINGS`); a value given is part of :attr:`name`, so every table says what ran.
    The result depends on ``seed`` alone (AutoAttack re-seeds the global generators; the call runs
    under :func:`robustutils.runtime.keep_random_state`). The model runs in eval mode; its mode is
    restored. Warnings of AutoAttack's sanity checks are raised as :class:`AutoAttackFlag`.

    Raises ``ValueError`` naming the fix for bad settings (:func:`robustutils.attacks.check_settings`,
    e.g. l_inf ``eps=8``: use ``8/255``), an unknown attack name, inputs or labels
    (:func:`robustutils.attacks.check_inputs`), an l_2 eps beyond the inputs' diameter, inputs not
    shaped [N, C, H, W], and a model with too few classes for APGD-T or FAB-T (they need at least 4,
    and ``n_target_classes`` + 1).

    Examples::

        aa = AutoAttack(eps=8 / 255)                              # the standard version
        x_adv = AutoAttack(eps=0.3, attacks=("apgd-ce", "apgd-t"))(model, x, y)
    """

    eps: float
    norm: str = "linf"
    attacks: tuple[str, ...] = STANDARD
    n_iter: int | None = None
    n_target_classes: int | None = None
    n_queries: int | None = None
    seed: int = 0

    def __post_init__(self):
        check_settings(self.eps, 1, None, self.norm, 1)
        if isinstance(self.attacks, str):
            raise ValueError(f"attacks is a tuple of names; got one name {self.attacks!r}: use ({self.attacks!r},)")
        attacks = tuple(self.attacks)
        unknown = [a for a in attacks if a not in STANDARD]
        if unknown or not attacks or len(set(attacks)) != len(attacks):
            raise ValueError(f"attacks must be distinct names among the standard version's {STANDARD}; got {attacks!r}")
        object.__setattr__(self, "attacks", tuple(a for a in STANDARD if a in attacks))
        for name in STANDARD_SETTINGS:
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(
                f"seed must be an integer >= 0 (the result depends on it alone); got {self.seed!r}: e.g. seed=0"
            )

    def _used(self, name: str) -> bool:
        """Whether setting ``name`` applies to one of the attacks run."""
        uses = {"n_iter": ("apgd-ce", "apgd-t", "fab-t"), "n_target_classes": _TARGETED, "n_queries": ("square",)}
        return any(a in uses[name] for a in self.attacks)

    def _value(self, name: str) -> int:
        given = getattr(self, name)
        return STANDARD_SETTINGS[name] if given is None else given

    @property
    def name(self) -> str:
        """The attack as the tables name it, e.g. ``"AutoAttack (standard)"`` or
        ``"AutoAttack APGD-CE, APGD-T (10 iterations)"``."""
        changed = [
            f"{getattr(self, key)} {label}"
            for key, label in (
                ("n_iter", "iterations"),
                ("n_target_classes", "target classes"),
                ("n_queries", "queries"),
            )
            if getattr(self, key) is not None and getattr(self, key) != STANDARD_SETTINGS[key] and self._used(key)
        ]
        standard = self.attacks == STANDARD and not changed
        what = "(standard)" if standard else ", ".join(TITLES[a] for a in self.attacks)
        return f"AutoAttack {what}" + (f" ({', '.join(changed)})" if changed else "")

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() != 4:  # AutoAttack indexes images as [N, C, H, W]
            raise ValueError(
                f"AutoAttack takes images shaped [N, C, H, W]; got {tuple(x.shape)}: "
                "reshape, e.g. x.view(-1, 1, 28, 28) for MNIST"
            )
        check_inputs(x, y, model=model)
        check_radius(x, self.eps, self.norm)
        if self.eps == 0 or len(x) == 0:
            return x.clone()
        was_training = model.training
        model.eval()
        try:
            self._check_classes(model, x)
            attack = self._build(model, x.device)
            # AutoAttack counts gradient calls in a module-level dict that it never resets: without
            # this, one model flagged as a dynamic defence would flag every model after it.
            checks = _pyautoattack().checks
            checks.funcs.update(dict.fromkeys(checks.funcs, 0))
            with _collected("auto-attack") as collected, keep_random_state(x.device):  # AutoAttack calls manual_seed
                x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
            for message in dict.fromkeys(collected.messages):
                warnings.warn(AutoAttackFlag(f"{self.name}: {message}"), stacklevel=2)
            return x_adv.detach()
        finally:
            model.train(was_training)

    def _build(self, model: torch.nn.Module, device: torch.device):
        attack = _pyautoattack().AutoAttack(
            model, norm=_NORMS[self.norm], eps=self.eps, version="standard", device=device, seed=self.seed
        )
        attack.attacks_to_run = list(self.attacks)
        iters, targets = self._value("n_iter"), self._value("n_target_classes")
        attack.fab.n_iter = iters
        for apgd in (attack.apgd, attack.apgd_targeted):
            # APGD's step-size checkpoints follow from n_iter in its __init__; set them as it does.
            apgd.n_iter = apgd.n_iter_orig = iters
            apgd.n_iter_2, apgd.n_iter_min = max(int(0.22 * iters), 1), max(int(0.06 * iters), 1)
            apgd.size_decr = max(int(0.03 * iters), 1)
        attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = targets
        attack.square.n_queries = self._value("n_queries")
        return attack

    def _check_classes(self, model: torch.nn.Module, x: torch.Tensor) -> None:
        targeted = [a for a in self.attacks if a in _TARGETED]
        if not targeted:
            return
        with torch.no_grad():
            classes = model(x[:1]).shape[-1]
        targets = self._value("n_target_classes")
        if classes < 4 or targets + 1 > classes:
            raise ValueError(
                f"{', '.join(TITLES[a] for a in targeted)} need(s) at least 4 classes and n_target_classes + 1 "
                f"(here {targets + 1}); this model has {classes}: "
                + (
                    f"use n_target_classes={classes - 1}"
                    if classes >= 4
                    else "leave them out, e.g. attacks=('apgd-ce', 'square')"
                )
            )

    def settings(self) -> dict:
        """Return the settings as plain values, to print and to key cached results by: the attack's
        :attr:`name`, ``eps`` (pixel units), ``norm``, the attacks run, the resolved ``n_iter``,
        ``n_target_classes`` and ``n_queries`` of the attacks that use them, ``seed`` and the
        ``pyautoattack`` version."""
        return {
            "attack": self.name,
            "eps": self.eps,
            "norm": self.norm,
            "attacks": list(self.attacks),
            **{key: self._value(key) for key in STANDARD_SETTINGS if self._used(key)},
            "seed": self.seed,
            "pyautoattack": package_version(),
        }

    def with_loss(self, loss_fn) -> "AutoAttack":
        """Never returns: raise ``NotImplementedError``, since AutoAttack's attacks keep their own
        losses (cross-entropy, targeted DLR, FAB's minimal perturbation, Square's margin); for
        another loss use :class:`robustutils.attacks.PGD`, e.g. ``PGD(eps=..., steps=...).with_loss(loss_fn)``."""
        raise NotImplementedError(
            f"AutoAttack keeps its attacks' own losses, not {getattr(loss_fn, '__name__', loss_fn)!r}: "
            f"for another loss use attacks.PGD(eps={self.eps!r}, norm={self.norm!r}, ...).with_loss(loss_fn)"
        )


def square_flags(robust_acc: dict) -> list[str]:
    """Return the warning of AutoAttack's own Square check (``checks.check_square_sr``) for the
    cumulative accuracies ``robust_acc`` of a :func:`suite` run as a cascade (fractions, stages in
    order), or ``[]``: Square, a black-box attack, should not find points that the gradient attacks
    before it missed; when it lowers the accuracy by more than 0.2 points, the gradients may be
    masked. AutoAttack runs the check itself only when one call runs several attacks; :func:`suite`
    runs one per call, so the evaluation calls this on the whole cascade."""
    square = stage_key("square")
    if square not in robust_acc:
        return []
    before = {k: v for k, v in robust_acc.items() if k != square}
    with _collected("auto-attack.square-check") as collected:
        logger = logging.getLogger("auto-attack.square-check")
        _pyautoattack().checks.check_square_sr({**before, "square": robust_acc[square]}, logger=logger)
    return [f"AutoAttack Square: {m}" for m in collected.messages]


def pgd_key(steps: int, restarts: int = 1) -> str:
    """Return the name :func:`suite` gives our PGD: ``pgd-40``, or ``pgd-100x20`` with 20 restarts."""
    return f"pgd-{steps}" + (f"x{restarts}" if restarts > 1 else "")


def order(attacks) -> tuple[str, ...]:
    """Return AutoAttack ``attacks`` (a list or tuple of names of :data:`STANDARD`) in the order
    AutoAttack runs them; ``ValueError`` for anything else."""
    if not isinstance(attacks, (list, tuple)):
        raise ValueError(f"attacks is a list of names among {STANDARD}, e.g. ['apgd-ce', 'apgd-t']; got {attacks!r}")
    return AutoAttack(eps=0.0, attacks=tuple(attacks)).attacks


def stage_key(attack: str) -> str:
    """Return the name :func:`suite` gives AutoAttack's ``attack`` stage, e.g. ``aa-apgd-t``."""
    return f"aa-{attack}"


def suite(
    eps: float,
    norm: str,
    pgd_steps: int,
    autoattack: dict,
    pgd_restarts: int = 1,
    pgd_step_factor: float | None = None,
) -> dict:
    """Return the book's evaluation at ``eps`` (pixel units), an ordered dict of attacks for
    :func:`robustutils.evaluate.cascade`: our PGD (``pgd_steps`` steps, ``pgd_restarts`` random
    starts, step ``pgd_step_factor * eps`` or by default ``2.5 * eps / pgd_steps``, as
    :func:`robustutils.attacks.step_size` converts it), keyed by :func:`pgd_key`, then each of
    AutoAttack's ``autoattack["attacks"]`` as its own stage (:class:`AutoAttack` with that one
    attack and ``autoattack``'s other settings), keyed by :func:`stage_key`.

    Run as a cascade, each stage attacks only the points every earlier stage left robust, as
    AutoAttack itself does, so the last stage's accuracy is the per-example worst case and the
    first is our PGD's own. Raises ``ValueError`` for out-of-range settings
    (:func:`robustutils.attacks.check_settings`) and unknown AutoAttack settings or names."""
    check_autoattack(autoattack)
    step = None if pgd_step_factor is None else step_size(eps, pgd_steps, pgd_step_factor)  # None: PGD's default
    stages = {
        pgd_key(pgd_steps, pgd_restarts): PGD(
            eps=eps, steps=pgd_steps, step_size=step, norm=norm, restarts=pgd_restarts
        )
    }
    settings = {k: v for k, v in autoattack.items() if k != "attacks"}
    AutoAttack(eps=eps, norm=norm, attacks=order(autoattack["attacks"]), **settings)  # checks the settings
    for attack in order(autoattack["attacks"]):
        stages[stage_key(attack)] = AutoAttack(eps=eps, norm=norm, attacks=(attack,), **settings)
    return stages


def describe(autoattack: dict) -> str:
    """Return how the tables name a profile's AutoAttack settings ``autoattack`` (the ``eval``
    section's), e.g. ``"AutoAttack APGD-CE, APGD-T"``."""
    check_autoattack(autoattack)
    settings = {k: v for k, v in autoattack.items() if k != "attacks"}
    return AutoAttack(eps=0.0, attacks=order(autoattack["attacks"]), **settings).name


def check_autoattack(autoattack) -> None:
    """Raise ``ValueError`` naming the fix unless ``autoattack`` is a profile's AutoAttack settings: a
    dict with ``attacks`` (names of :data:`STANDARD`) and optionally ``n_iter``, ``n_target_classes``,
    ``n_queries``."""
    if not isinstance(autoattack, dict) or "attacks" not in autoattack:
        raise ValueError(
            "autoattack is a dict with at least 'attacks', e.g. {'attacks': ['apgd-ce', 'apgd-t']}; "
            f"got {autoattack!r}"
        )
    extra = set(autoattack) - {"attacks", *STANDARD_SETTINGS}
    if extra:
        raise ValueError(f"unknown AutoAttack settings {sorted(extra)}: use {['attacks', *STANDARD_SETTINGS]}")
    order(autoattack["attacks"])
