"""Clean and robust accuracy, with the attack settings recorded beside the numbers.

Every entry point takes images ``x`` [N, ...] in [0, 1] (pixel units; float, normalisation inside
the model) and labels ``y``, a 1-D integer tensor [N] of class indices, and refuses anything else
with a ``ValueError`` that names the fix (:func:`robustutils.attacks.check_inputs`): ``x * 255``,
NaN pixels, uint8 images, labels shaped [N, 1] (which would broadcast into an N x N comparison),
inputs of a dtype or shape the model cannot read, labels at or above the model's number of
classes; ``batch_size`` must be an integer >= 1.
"""

import dataclasses
import numbers
import time

import torch

from .attacks import PGD, Attack, check_count, check_inputs, check_radius, step_size
from .data import batches
from .runtime import progress as progress_bar


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Return the predicted labels [N] (int64, on the model's device) of inputs ``x`` [N, ...] in [0, 1].

    Raises ``ValueError`` (:func:`robustutils.attacks.check_inputs`) when ``x`` is not a float batch
    in [0, 1]: values in 0..255 (divide by 255), normalised inputs, NaN pixels, uint8 (use
    ``x.float() / 255``). One host sync for the check.
    """
    check_inputs(x, model=model)
    _check_batch_size(batch_size)
    return _predict(model, x, batch_size)


def _check_batch_size(batch_size) -> None:
    check_count("batch_size", batch_size, " (examples per forward pass)")


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """:func:`predict` without the input check (for inputs checked once by the caller)."""
    was_training = model.training
    model.eval()
    device = _model_device(model)
    try:
        return torch.cat([model(x[i : i + batch_size].to(device)).argmax(1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def _settings(attack):
    """An :class:`~robustutils.attacks.Attack`'s settings; a plain function ``attack(model, x, y)`` by its repr."""
    return attack.settings() if isinstance(attack, Attack) else repr(attack)


def _restarts(attack) -> int:
    """How many copies of each input the attack runs at once (1 for a plain function)."""
    return attack.settings().get("restarts", 1) if isinstance(attack, Attack) else 1


def _count(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: dict, batch_size: int):
    """Return (clean accuracy, {name: robust accuracy}, worst-case accuracy), fractions in [0, 1].

    Clean predictions are made once per batch for all attacks; counts accumulate on the device
    and are read back at the end, not per batch.
    """
    check_inputs(x, y, model=model)
    _check_batch_size(batch_size)
    device = _model_device(model)
    clean = torch.zeros((), dtype=torch.long, device=device)
    worst = torch.zeros((), dtype=torch.long, device=device)
    robust = {name: torch.zeros((), dtype=torch.long, device=device) for name in attacks}
    for xb, yb in batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        ok = _predict(model, xb, batch_size) == yb
        clean += ok.sum()
        survived = ok.clone()
        for name, attack in attacks.items():
            ok_adv = ok & (_predict(model, attack(model, xb, yb), batch_size) == yb)
            robust[name] += ok_adv.sum()
            survived &= ok_adv
        worst += survived.sum()
    n = len(y)
    return clean.item() / n, {k: v.item() / n for k, v in robust.items()}, worst.item() / n


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack=None, batch_size: int = 500) -> dict:
    """Return clean and robust accuracy on ``(x, y)``, with the attack's settings beside them.

    An example counts as robust when it is classified correctly both clean and after ``attack``
    (the clean input is itself in the threat model's ball), so ``robust_acc <= clean_acc``.
    Counts accumulate on the device and are read back once, at the end.

    Args:
        model: The classifier; it takes images in [0, 1] (normalisation inside it). Run in eval
            mode; its mode is restored.
        x: Images [N, ...] in [0, 1] (float, pixel units).
        y: Class indices [N] (int64).
        attack: An :class:`~robustutils.attacks.Attack` such as :class:`~robustutils.attacks.PGD`,
            or any function ``attack(model, x, y) -> x_adv``; ``None`` measures clean accuracy only.
        batch_size: Examples per forward pass (and per attack call), an integer >= 1.

    Returns:
        A dict with the number of examples ``n``, the accuracies ``clean_acc`` and ``robust_acc``
        as fractions in [0, 1] and the ``attack``'s ``settings()`` (a plain function's repr);
        ``robust_acc`` and ``attack`` are None without an attack.

    Raises:
        ValueError: Naming the fix, for inputs outside [0, 1], NaN or uint8, labels that are not a
            1-D integer tensor of length N (e.g. [N, 1]: use ``y.view(-1)``) and a bad
            ``batch_size``; the attack raises its own (e.g. :class:`~robustutils.attacks.PGD` with
            l_inf ``eps=8``: use ``8/255``).

    Examples::

        result = evaluate(model, x_test, y_test, attack=attacks.PGD(eps=0.3, steps=40))
        result["robust_acc"], result["attack"]["steps"]     # e.g. (0.89, 40)
    """
    clean, robust, _ = _count(model, x, y, {} if attack is None else {"attack": attack}, batch_size)
    return {
        "n": len(y),
        "clean_acc": clean,
        "robust_acc": robust.get("attack"),
        "attack": None if attack is None else _settings(attack),
    }


def compare(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: dict, *, batch_size: int = 500) -> dict:
    """Run several attacks on the same examples; return each one's robust accuracy and the worst case.

    Returns ``{"n", "clean_acc", "robust_acc": {name: fraction}, "worst_acc", "attacks": {name: settings}}``:
    an example counts towards ``worst_acc`` only when it is correct clean and under *every* attack,
    the per-example minimum that AutoAttack reports (Croce & Hein 2020, arXiv 2003.01690). All
    accuracies are fractions in [0, 1]. ``x`` [N, ...] in [0, 1], ``y`` [N] integer class indices;
    ``ValueError`` as :func:`evaluate`, and when ``attacks`` is empty.
    """
    if not isinstance(attacks, dict):
        raise ValueError(
            f"attacks must be a dict {{name: attack}}; got {type(attacks).__name__}: "
            "e.g. {'pgd-40': attacks.PGD(eps=0.3, steps=40)}"
        )
    if not attacks:
        raise ValueError("compare needs at least one attack, e.g. {'pgd-40': attacks.PGD(eps=0.3, steps=40)}")
    clean, robust, worst = _count(model, x, y, attacks, batch_size)
    return {
        "n": len(y),
        "clean_acc": clean,
        "robust_acc": robust,
        "worst_acc": worst,
        "attacks": {k: _settings(a) for k, a in attacks.items()},
    }


def overestimate_pp(result: dict, name: str) -> float:
    """Return how far attack ``name`` overestimates robust accuracy in a :func:`compare` result:
    its robust accuracy minus the worst case over all attacks, in percentage points (>= 0)."""
    return 100 * (result["robust_acc"][name] - result["worst_acc"])


def eps_sweep(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_values,
    *,
    norm: str,
    steps: int,
    batch_size: int = 500,
) -> list[float]:
    """Return robust accuracy (fractions in [0, 1]) under PGD-``steps`` in ``norm`` at each eps of
    ``eps_values`` (pixel units), in that order, measured on the same examples ``x`` [N, ...] in
    [0, 1] with labels ``y`` [N].

    Raises ``ValueError`` before any attack runs when an eps is out of range (an l_inf eps above 1,
    e.g. ``8`` for ``8/255``; an l_2 eps beyond the inputs' diameter), and as :func:`evaluate`.
    """
    if isinstance(eps_values, (numbers.Real, torch.Tensor)):
        raise ValueError(f"eps_values is a list of radii; got one value {eps_values!r}: use [eps]")
    attacks = {i: PGD(eps=eps, steps=steps, norm=norm) for i, eps in enumerate(eps_values)}
    for attack in attacks.values():
        check_radius(x, attack.eps, norm)
    _, robust, _ = _count(model, x, y, attacks, batch_size)
    return [robust[i] for i in attacks]


def attack_strength(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    steps: list[int],
    restarts: list[int],
    step_factors=(0.25, 4.0),
    batch_size: int = 500,
) -> list[dict]:
    """Return robust accuracy under attacks of growing strength at ``eps`` (pixel units), one dict per
    attack: FGSM; PGD-k for each k in ``steps``; PGD-10 with the step size times each of
    ``step_factors``; PGD-10 with each number of ``restarts`` above 1. Keys: attack (a name), steps,
    step_size (pixel units), restarts, robust_acc (a fraction in [0, 1]). ``x`` [N, ...] in [0, 1],
    ``y`` [N] integer class indices; ``ValueError`` as :func:`eps_sweep`, before any attack runs."""
    for name, values in (("steps", steps), ("restarts", restarts)):
        if isinstance(values, (numbers.Real, torch.Tensor)):
            raise ValueError(f"{name} is a list of values to try; got one value {values!r}: use [{values!r}]")
    tried = {"FGSM": dict(steps=1, step_size=eps, random_start=False, use_best=False)}
    tried |= {f"PGD-{k}": dict(steps=k) for k in steps}
    tried |= {f"PGD-10, step x{f:g}": dict(steps=10, step_size=f * step_size(eps, 10)) for f in step_factors}
    tried |= {f"PGD-10, {r} restarts": dict(steps=10, restarts=r) for r in restarts if r > 1}
    attacks = {name: PGD(eps=eps, norm=norm, **kw) for name, kw in tried.items()}
    for attack in attacks.values():
        check_radius(x, attack.eps, norm, attack.step_size)
    _, robust, _ = _count(model, x, y, attacks, batch_size)
    return [
        {
            "attack": name,
            "steps": a.settings()["steps"],
            "step_size": a.settings()["step_size"],
            "restarts": a.restarts,
            "robust_acc": robust[name],
        }
        for name, a in attacks.items()
    ]


def cascade(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: dict,
    *,
    batch_size: int = 500,
    progress: bool = False,
) -> dict:
    """Run ``attacks`` in order, each only on the examples that survived every earlier one.

    Returns ``{"n", "clean_acc", "robust_acc": {name: fraction}, "attacks": {name: settings},
    "attacked": {name: examples}, "seconds": {name: wall-clock seconds}, "robust":
    bool tensor [N]}``: the first attack's accuracy is its own; each later one is the worst case
    over it and all before it (AutoAttack's order of work), so the last is the per-example minimum
    over all, and ``robust`` says which examples survived them all. ``attacked`` counts the example
    attacks each one ran (one per example and restart pass).

    The work stops where the answer is known: an example misclassified clean or by an earlier
    attack is not attacked again, and a :class:`~robustutils.attacks.PGD` with ``restarts`` above 1
    runs as ``restarts`` single-start passes, each only on the examples every earlier pass left
    standing, as AutoAttack runs its restarts. The answer is the same as running the restarts side
    by side (an example is robust only when no random start fools the model); the work saved is
    the restarts of the examples already fooled (measured by ``python -m robustutils.bench``).

    Every attack sees about ``batch_size`` inputs at once. ``x`` [N, ...] in [0, 1], ``y`` [N]
    integer class indices; ``ValueError`` as :func:`evaluate`.
    """
    check_inputs(x, y, model=model)
    _check_batch_size(batch_size)
    device = _model_device(model)
    alive = _predict(model, x, batch_size).cpu() == y.cpu()
    clean, robust, attacked, seconds = alive.sum().item() / len(y), {}, {}, {}
    for name, attack in progress_bar(attacks.items(), "attacks", total=len(attacks)) if progress else attacks.items():
        passes, chunk = [attack], max(1, batch_size // _restarts(attack))
        if isinstance(attack, PGD) and attack.restarts > 1:
            passes, chunk = [dataclasses.replace(attack, restarts=1)] * attack.restarts, batch_size
        start_time, attacked[name] = time.perf_counter(), 0
        for one in passes:
            index = alive.nonzero().flatten()
            attacked[name] += len(index) * _restarts(one)
            for start in range(0, len(index), chunk):
                part = index[start : start + chunk]
                xb, yb = x[part].to(device), y[part].to(device)
                alive[part] = (_predict(model, one(model, xb, yb), batch_size) == yb).cpu()
        robust[name] = alive.sum().item() / len(y)
        seconds[name] = time.perf_counter() - start_time
    return {
        "n": len(y),
        "clean_acc": clean,
        "robust_acc": robust,
        "attacks": {k: _settings(a) for k, a in attacks.items()},
        "attacked": attacked,
        "seconds": seconds,
        "robust": alive,
    }
