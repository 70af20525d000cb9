"""Benchmarks, printed with their targets and saved as JSON records for the performance appendix.

``python -m robustutils.bench [p1] [p3] [evalsuite] [scaling] [headline] [--quick] [--out DIR]
[--device cpu|cuda]`` (``make bench`` runs them all), or ``python -m robustutils.bench gpu-check``
(``make gpu-check``):

* **P1, PGD throughput**: :func:`robustutils.attacks.pgd` against ``torchattacks.PGD`` /
  ``PGDL2`` on the same model, batch, eps, steps and device, side by side in one process (a warm-up
  call, then the median of three timed calls on a CPU, five on a GPU), in several *variants*
  (float32, channels_last weights, bf16 autocast, both; ``torch.compile`` on GPUs), each against
  torchattacks run under the same variant (the like-for-like ratio) and against a bare forward and
  backward pass of the model on the batch (the step cost, whose limit is 1), beside the mean
  float32 loss the attack reaches, so that a faster variant is kept only where it is as strong.
* **P3, time to robustness**: MNIST l_inf 0.3 recipes (:data:`P3_RECIPES`) trained under a PGD-10
  monitor that detects catastrophic overfitting, each measured by PGD-40 on all 10,000 test digits;
  the best one is attacked by AutoAttack's standard version (Croce & Hein's code) on 2,000 random
  digits, and the book's evaluation suites are timed against it on the same digits.
* **evalsuite**: the same timing of the suites against AutoAttack on a CIFAR-10 robust model of the
  book, and PGD's restarts run side by side against restarts run as passes on the images still standing.
* **Scaling**: seconds per training epoch of PGD adversarial training against model width, batch
  size and PGD steps (measured on a few batches, scaled to the 60,000 MNIST digits).
* **headline**: chapter 2's Madry-strength MNIST model, whose record the ``ci`` build reads.
* **gpu-check** (:func:`gpu_check`): the device tests, P1 and P3 on a GPU and a chapter timed at
  the ``colab`` profile, in at most 8 minutes on an H100/H200.

Each record carries the machine, date and commit it was measured on.
"""

import argparse
import copy
import datetime
import functools
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import attacks, checks, data, evaluate, independent, models, profiles, registry, train, zoo
from .runtime import pick_device, set_seed

ROOT = Path(__file__).resolve().parent.parent  # the repository
RECORDS = ROOT / "book" / "perf"
P1_TARGET = {"cpu": 1.0, "cuda": 2.0}
P3_TARGET = {"clean": 0.985, "pgd-40": 0.93, "strongest": 0.893, "seconds": {"cpu": 600, "cuda": 30}}


# --- where and when ----------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    """Return the git commit the package runs from (``+dirty`` when files differ), or ``unknown``."""
    root = ROOT
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine(device: torch.device) -> dict:
    """Return what a measurement ran on: device kind and name, CPU, cores, torch version, UTC date, commit."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": device.type,
        "device_name": gpu or _cpu_name(),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
    }


def measured_on(record: dict) -> str:
    """Return a Markdown sentence naming the machine, torch version, date and commit of a record."""
    m = record["machine"]
    return (
        f"Measured on **{m['device_name']}** ({m['device']}, {m['cpu_cores']} CPU cores), torch {m['torch']}, "
        f"{m['date']}, commit `{m['commit']}`."
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn, device: torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Return the median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.lru_cache(maxsize=2)
def _mnist(train: bool):
    """MNIST as tensors, read once per process however many benchmarks use it."""
    return data.mnist(train=train)


# --- P1: PGD throughput ------------------------------------------------------------------------


def variants(device: torch.device) -> dict[str, dict]:
    """Return the speed settings P1 tries on ``device``: name -> {channels_last, amp, compile}."""
    out = {
        "float32": {},
        "channels_last": {"channels_last": True},
        "bf16": {"amp": True},
        "bf16+channels_last": {"amp": True, "channels_last": True},
    }
    if device.type == "cuda":  # on a CPU, compiling takes longer than it saves at these sizes
        out["bf16+channels_last+compile"] = {"amp": True, "channels_last": True, "compile": True}
    return out


def prepared(model: torch.nn.Module, channels_last: bool = False, compile: bool = False, **_) -> torch.nn.Module:
    """Return a copy of ``model`` in eval mode with channels_last weights and/or compiled, as a variant asks."""
    model = copy.deepcopy(model).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:
        raise ImportError(
            "P1 compares our PGD with torchattacks': run `pip install --no-deps torchattacks scipy` (its "
            "pinned `requests` clashes with Sphinx; `make install` does)"
        ) from err
    return torchattacks


def _torchattacks_pgd(model, norm: str, eps: float, steps: int, step_size: float):
    ta = _torchattacks()
    cls = ta.PGD if norm == "linf" else ta.PGDL2
    return cls(model, eps=eps, alpha=step_size, steps=steps, random_start=True)


def _mean_loss(model, x_adv, y) -> float:
    """The float32 cross-entropy (nats) the attack reached, averaged over the batch."""
    with torch.no_grad():
        return F.cross_entropy(model(x_adv).float(), y).item()


def forward_backward(model, x, y, amp: bool = False):
    """One forward and one input-gradient backward pass of ``model`` on ``(x, y)``: the least work
    any PGD step does (the yardstick of :func:`p1_case`'s step cost). Return the gradient."""
    x = x.detach().requires_grad_(True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


def p1_case(model, x, y, norm: str, eps: float, steps: int, device: torch.device, repeats: int) -> dict:
    """Time our PGD in every variant and torchattacks (plain and under the same variant) on one batch,
    ``steps`` steps of ``2.5 * eps / steps`` within ``eps`` (pixel units) in ``norm``, and a bare
    forward+backward pass (:func:`forward_backward`) of the same model on the same batch.

    Return ``{"torchattacks_s", "torchattacks_loss", "torchattacks_step_cost", "variants": {name:
    {"seconds", "speedup", "speedup_same_settings", "loss", "forward_backward_s", "step_cost",
    "torchattacks_step_cost"}}}``: seconds per attack call; speed-ups as ratios of torchattacks' plain
    time (and of its time under the same settings) to ours; losses in nats; a step cost is the
    seconds of one attack step (the call's seconds over ``steps``) divided by the seconds of one bare
    forward+backward pass under the same settings, so 1.0 is the limit no PGD can beat.
    """
    step_size = 2.5 * eps / steps
    plain = prepared(model)
    ta_plain = _torchattacks_pgd(plain, norm, eps, steps, step_size)
    out = {
        "torchattacks_s": median_seconds(lambda: ta_plain(x, y), device, repeats),
        "torchattacks_loss": _mean_loss(plain, ta_plain(x, y), y),
        "variants": {},
    }
    for name, how in variants(device).items():
        fast = prepared(model, **how)
        amp = how.get("amp", False)
        settings = dict(eps=eps, steps=steps, step_size=step_size, norm=norm, use_best=False, amp=amp)
        ours = median_seconds(lambda fast=fast, settings=settings: attacks.pgd(fast, x, y, **settings), device, repeats)
        ta = _torchattacks_pgd(fast, norm, eps, steps, step_size)
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                theirs = median_seconds(lambda ta=ta: ta(x, y), device, repeats)
        except RuntimeError:  # torchattacks' PGDL2 .view()s gradients, which fails on channels_last ones
            theirs = None
        bare = median_seconds(
            lambda fast=fast, amp=amp: forward_backward(fast, x, y, amp), device, max(repeats, 5) * steps
        )
        x_adv = attacks.pgd(fast, x, y, **settings)
        out["variants"][name] = {
            "seconds": ours,
            "speedup": out["torchattacks_s"] / ours,
            "speedup_same_settings": None if theirs is None else theirs / ours,
            "loss": _mean_loss(plain, x_adv, y),
            "forward_backward_s": bare,
            "step_cost": ours / steps / bare,
            "torchattacks_step_cost": None if theirs is None else theirs / steps / bare,
        }
    return out


def _p1_models(device: torch.device, quick: bool):
    """The two models of P1 with a real batch each: Madry et al.'s MNIST CNN, briefly trained on
    real digits (so that the attack's loss means something), and a random-init PreAct-ResNet-18
    on real CIFAR-10 test images."""
    set_seed(0)
    mnist_x, mnist_y = _mnist(True)
    mnist = models.madry_mnist_cnn().to(device)
    train.fit(
        mnist, (mnist_x[: 2_000 if quick else 10_000], mnist_y[: 2_000 if quick else 10_000]), epochs=1, batch_size=128
    )
    test_x, test_y = _mnist(False)
    cifar_x, cifar_y = data.cifar10(train=False)
    on_gpu = device.type == "cuda"
    mnist_batch = 1024 if on_gpu else (64 if quick else 256)
    cifar_batch = 256 if on_gpu else (8 if quick else 32)
    resnet = models.preact_resnet18(width=16 if quick else 64).to(device)
    return [
        ("MNIST CNN (Madry)", mnist, test_x[:mnist_batch], test_y[:mnist_batch], {"linf": 0.3, "l2": 2.0}),
        ("PreAct-ResNet-18", resnet, cifar_x[:cifar_batch], cifar_y[:cifar_batch], {"linf": 8 / 255, "l2": 0.5}),
    ]


def p1(device: torch.device, quick: bool = False) -> dict:
    """Run P1 on ``device``; return its record (rows of model, norm, batch, steps and timings)."""
    steps, repeats = (3, 1) if quick else (10, 5 if device.type == "cuda" else 3)
    rows = []
    for name, model, x, y, eps_by_norm in _p1_models(device, quick):
        x, y = x.to(device), y.to(device)
        for norm, eps in eps_by_norm.items():
            case = p1_case(model, x, y, norm, eps, steps, device, repeats)
            rows.append({"model": name, "norm": norm, "eps": eps, "batch": len(y), "steps": steps, **case})
            print(_p1_line(rows[-1]), flush=True)
    return {"benchmark": "p1", "target": P1_TARGET[device.type], "rows": rows}


def best_variant(row: dict) -> tuple[str, dict]:
    """Return the fastest variant of a P1 row that keeps the attack's strength: its loss at least
    98% of our float32 attack's (the same algorithm; torchattacks' differs in its random start)."""
    strong = {k: v for k, v in row["variants"].items() if v["loss"] >= 0.98 * row["variants"]["float32"]["loss"]}
    name = max(strong or row["variants"], key=lambda k: row["variants"][k]["speedup"])
    return name, row["variants"][name]


def _p1_line(row: dict) -> str:
    name, best = best_variant(row)
    same = [f"{v['speedup_same_settings']:.2f}x {k}" for k, v in row["variants"].items() if v["speedup_same_settings"]]
    cost = [f"{v['step_cost']:.2f} {k}" for k, v in row["variants"].items()]
    return (
        f"P1 {row['model']} {row['norm']} batch {row['batch']} PGD-{row['steps']}: torchattacks "
        f"{row['torchattacks_s'] * 1e3:.0f} ms; like for like " + ", ".join(same) + "; step cost (1.0 = one bare "
        "forward+backward) " + ", ".join(cost) + f"; kept {name}, {best['speedup']:.2f}x torchattacks in float32"
    )


# --- P3: time to robustness --------------------------------------------------------------------

#: The network and batch every P3 recipe shares, those of chapter 2's headline model. A
#: :func:`robustutils.models.mnist_cnn` with ``channels``, ``hidden`` and ``kernel``, trained at
#: ``batch_size`` under bf16 autocast (``amp``) with ``channels_last`` weights.
P3_NETWORK = {"channels": (32, 64), "hidden": 256, "kernel": 3, "batch_size": 256, "amp": True, "channels_last": True}
#: The MNIST l_inf 0.3 recipes P3 compares, by name, all on :data:`P3_NETWORK`. They differ in the
#: training attack (``steps``, and ``step_factor`` times eps per step, default ``2.5 / steps``, Wong
#: et al.'s 1.25 for FGSM with a random start), the epochs, the eps ramp (a fraction of all steps),
#: the Adam schedule (``onecycle`` or Wong et al.'s ``cyclic`` triangle) and its peak ``lr``.
#: Chapter 2's headline model (:data:`robustutils.registry.HEADLINE`) is the same network trained by
#: PGD-5 with an eps ramp for 12 epochs (576 s on 2026-11-21's CPU, twice P3's budget).
P3_RECIPES = {
    "FGSM-RS, cyclic lr, 14 epochs (Wong et al.)": {
        **P3_NETWORK,
        "steps": 1,
        "step_factor": 1.25,
        "epochs": 14,
        "eps_ramp": 0.0,
        "schedule": "cyclic",
        "lr": 5e-3,
    },
    "PGD-2, eps ramp, one-cycle, 9 epochs": {
        **P3_NETWORK,
        "steps": 2,
        "epochs": 9,
        "eps_ramp": 0.3,
        "schedule": "onecycle",
        "lr": 2e-3,
    },
    "PGD-3, eps ramp, one-cycle, 6 epochs": {
        **P3_NETWORK,
        "steps": 3,
        "epochs": 6,
        "eps_ramp": 0.3,
        "schedule": "onecycle",
        "lr": 2e-3,
    },
    "PGD-5, eps ramp, one-cycle, 4 epochs": {
        **P3_NETWORK,
        "steps": 5,
        "epochs": 4,
        "eps_ramp": 0.3,
        "schedule": "onecycle",
        "lr": 2e-3,
    },
}
#: P3's targets, from Madry et al.'s MNIST figures (98.5% clean; 89.3% under their strongest attack, here
#: the per-example worst case of our PGD-40 and AutoAttack's standard version), and seconds of
#: training per device type.
P3_TARGET = {"clean": 0.985, "robust": 0.893, "seconds": {"cpu": 300, "cuda": 30}}
#: The random test digits AutoAttack's standard version sees in P3, drawn by a generator seeded with
#: ``seed``: on the 2-core CPU it took about 10 minutes per 250 digits of P3's model (FAB-T and Square
#: on the nine in ten that stay robust), so 2,000 would take over an hour and all 10,000 seven.
P3_AUTOATTACK_POINTS = {"n": 500, "seed": 0}


def p3_model(recipe: dict) -> models.Classifier:
    """Return the untrained P3 network of ``recipe`` (a :func:`robustutils.models.mnist_cnn`)."""
    return models.mnist_cnn(recipe["channels"], recipe["hidden"], recipe["kernel"])


def p3_train(model, x, y, monitor, recipe: dict, eps: float, progress: bool = True):
    """Adversarially train ``model`` on ``(x, y)`` by ``recipe`` (one of :data:`P3_RECIPES`) against
    l_inf PGD within ``eps`` (pixel units); return (the history of :func:`robustutils.train.fit`,
    wall-clock seconds of training, the monitor's included).

    ``monitor`` is ``(x, y)`` held-out digits on which PGD-10 (Wong et al.'s check) runs each epoch:
    :func:`robustutils.train.catastrophic_overfitting` reads its accuracy from the history.
    """
    if recipe["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    factor = recipe.get("step_factor", 1.25 if recipe["steps"] == 1 else None)  # FGSM: Wong et al.'s 1.25 eps
    step_size = attacks.step_size(eps, recipe["steps"], factor)
    attack = attacks.PGD(eps=eps, steps=recipe["steps"], step_size=step_size, amp=recipe["amp"], use_best=False)
    start = time.perf_counter()
    callbacks = [train.Monitor(*monitor, attack=attacks.PGD(eps=eps, steps=10, amp=recipe["amp"]))]
    history = train.fit(
        model,
        (x, y),
        epochs=recipe["epochs"],
        batch_size=recipe["batch_size"],
        attack=attack,
        lr=recipe["lr"],
        schedule=recipe.get("schedule", "onecycle"),
        eps_ramp=recipe["eps_ramp"],
        amp=recipe["amp"],
        callbacks=callbacks + ([train.Progress()] if progress else []),
    )
    _sync(next(model.parameters()).device)
    return history, time.perf_counter() - start


def p3_pgd(eps: float, quick: bool = False, amp: bool = False) -> attacks.PGD:
    """Return P3's PGD: Madry et al.'s PGD-40 at ``eps`` (pixel units) with step ``eps / 30`` (0.01 at eps 0.3),
    the best iterate kept; ``amp``: the model under bf16 autocast (P1 checks that it keeps the attack's
    strength); ``quick``: 5 steps."""
    return attacks.PGD(eps=eps, steps=5 if quick else 40, step_size=eps / 30, amp=amp)


def reference_seconds(device: torch.device, repeats: int = 10) -> float:
    """Return the median seconds of one PGD-5 training step (bf16 autocast, channels_last) of the P3
    network on 256 MNIST digits: the machine's speed when a record was made, so that records of
    different days can be compared (the same 2-core CPU has measured 0.2 to 0.4 s)."""
    x, y = (t[:256].to(device) for t in _mnist(True))
    set_seed(0)
    model = prepared(p3_model(P3_NETWORK).to(device), channels_last=True).train()
    opt = train.make_optimizer(model, "adam", 1e-3)
    attack = attacks.PGD(eps=0.3, steps=5, amp=True, use_best=False)
    return median_seconds(lambda: train.train_step(model, opt, x, y, attack, amp=True), device, repeats)


def p3_suites(eps: float, quick: bool = False) -> dict[str, dict]:
    """Return the evaluation suites P3 and :func:`evalsuite` time against AutoAttack's standard version at ``eps``
    (pixel units), by name: the ``ci`` profile's suite (:func:`robustutils.independent.suite`: our PGD-40, then
    AutoAttack's APGD-CE and APGD-T at their standard settings), and the same with APGD-T on the 3 most likely
    target classes instead of 9. Each is a dict of :func:`robustutils.independent.suite`'s arguments; ``quick``:
    a few iterations."""
    base = profiles.config("smoke" if quick else "ci", "eval")["suite"]
    fewer = {**base, "autoattack": {**base["autoattack"], "n_target_classes": 3}}
    return {"ci suite": base, "ci suite, APGD-T on 3 targets": fewer}


def timed_cascade(model, x, y, stages: dict, batch_size: int) -> dict:
    """Return :func:`robustutils.evaluate.cascade` of ``stages`` on ``(x, y)`` with its total wall-clock
    ``seconds`` (the device synchronised) and the per-example ``robust`` mask as a list of bools."""
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    result = evaluate.cascade(model, x, y, stages, batch_size=batch_size)
    _sync(device)
    return {
        **{k: v for k, v in result.items() if k not in ("seconds", "robust")},
        "stage_seconds": result["seconds"],
        "seconds": time.perf_counter() - start,
        "robust": result["robust"].tolist(),
    }


def suite_comparison(model, x, y, eps: float, norm: str, device, quick: bool = False) -> dict:
    """Run AutoAttack's standard version (:class:`robustutils.independent.AutoAttack`, Croce & Hein's
    code, one call per batch) and each suite of :func:`p3_suites` on the same points ``(x, y)``
    (images [N, C, H, W] in [0, 1], labels [N]) at ``eps`` (pixel units) in ``norm``; return
    ``{"n", "clean_acc", "autoattack": {...}, "suites": {name: {...}}}`` where each entry holds the
    robust accuracy (``worst_acc``, a fraction), ``seconds`` and the per-example ``robust`` mask, and
    each suite also ``gap_pp`` (its robust accuracy minus AutoAttack's, percentage points),
    ``time_ratio`` (its seconds over AutoAttack's) and ``both_acc`` (the per-example worst case of it
    and AutoAttack). The random state is fixed first, so a rerun repeats the numbers."""
    batch = 500 if device.type == "cuda" else 250
    settings = {"n_iter": 5, "n_target_classes": 2, "n_queries": 50} if quick else {}
    set_seed(0)
    aa = timed_cascade(model, x, y, {"autoattack": independent.AutoAttack(eps=eps, norm=norm, **settings)}, batch)
    aa["worst_acc"] = aa["robust_acc"]["autoattack"]
    suites = {}
    for name, how in p3_suites(eps, quick).items():
        set_seed(0)
        stages = independent.suite(eps, norm, **how)
        result = timed_cascade(model, x, y, stages, batch)
        result["worst_acc"] = list(result["robust_acc"].values())[-1]
        result["gap_pp"] = 100 * (result["worst_acc"] - aa["worst_acc"])
        result["time_ratio"] = result["seconds"] / aa["seconds"]
        both = [a and b for a, b in zip(aa["robust"], result["robust"])]
        result["both_acc"] = sum(both) / len(both)
        suites[name] = result
        print(
            f"suite {name}: {100 * result['worst_acc']:.2f}% in {result['seconds']:.0f} s; AutoAttack standard "
            f"{100 * aa['worst_acc']:.2f}% in {aa['seconds']:.0f} s: gap {result['gap_pp']:+.2f} points, "
            f"time ratio {result['time_ratio']:.3f}",
            flush=True,
        )
    return {"n": len(y), "clean_acc": aa["clean_acc"], "autoattack": aa, "suites": suites}


def _pick_recipe(rows: list[dict], targets: dict) -> str:
    """The recipe P3 keeps: among those trained within the time target without catastrophic
    overfitting, the highest PGD-40 accuracy (robustness is the hard target; the clean one is
    checked after); else the highest PGD-40 accuracy of all."""
    fine = [r for r in rows if r["train_seconds"] <= targets["seconds"] and r["catastrophic_overfitting_epoch"] is None]
    return max(fine or rows, key=lambda r: r["pgd_acc"])["name"]


def _p3_recipe_run(name, recipe, device, x, y, held_out, test_x, test_y, quick):
    """Train one P3 recipe and measure it by PGD-40 on the test digits; return (model, row, robust mask).

    The trained weights, the row (seconds, history, accuracies) and the mask are kept in the model
    cache (``$ROBUSTUTILS_CACHE/bench/``), keyed by the recipe, the data sizes, the device type and
    the training code (:func:`robustutils.zoo.code_fingerprint`): a rerun of P3 (say, after the
    evaluation changed) reads them instead of retraining, and the row's ``measured`` says when the
    seconds were measured."""
    from . import io

    spec = {"recipe": recipe, "n_test": len(test_y), "held_out": held_out, "device": device.type, "quick": quick}
    spec["code"], spec["init"] = zoo.code_fingerprint(), "seed 0, then the model"
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    target = io.cache_dir() / "bench" / f"p3-{device.type}-{digest}.pt"
    set_seed(0)  # before the model: its initial weights are part of the recipe
    model = p3_model(recipe).to(device)
    if recipe["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if target.is_file():
        saved = torch.load(target, map_location=device, weights_only=False)
        model.load_state_dict(saved["state_dict"])
        return (
            model.eval(),
            {**saved["row"], "measured": saved["row"]["measured"] + ", from the cache"},
            saved["robust"],
        )
    eps = recipe["eps"]
    history, seconds = p3_train(
        model, x[:-held_out], y[:-held_out], (x[-held_out:], y[-held_out:]), recipe, eps, progress=not quick
    )
    pgd_attack = {"pgd-40": p3_pgd(eps, quick, amp=recipe["amp"])}
    pgd = timed_cascade(model, test_x, test_y, pgd_attack, 500 if device.type == "cuda" else 250)
    row = {
        "name": name,
        "recipe": recipe,
        "train_seconds": seconds,
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "history": history,
        "catastrophic_overfitting_epoch": train.catastrophic_overfitting(history),
        "clean_acc": pgd["clean_acc"],
        "pgd_acc": pgd["robust_acc"]["pgd-40"],
        "pgd_seconds": pgd["seconds"],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": io._clean_state_dict(model), "row": row, "robust": pgd["robust"]}, target)
    return model, row, pgd["robust"]


def p3(device: torch.device, quick: bool = False) -> dict:
    """Run P3 on ``device``: train every recipe of :data:`P3_RECIPES` on real MNIST (59,000 digits; 1,000
    held out for the monitor), measure clean and PGD-40 accuracy on all 10,000 test digits, keep the
    most robust of those that trained within the time target without catastrophic overfitting, then
    run AutoAttack's standard version and the suites (:func:`suite_comparison`) on
    :data:`P3_AUTOATTACK_POINTS` random test digits of it; return the record.
    ``quick``: a tiny network, one epoch, 2,000 training and 200 test digits, 100 for AutoAttack."""
    eps = 0.3
    x, y = _mnist(True)
    test_x, test_y = _mnist(False)
    held_out, points = 1_000, dict(P3_AUTOATTACK_POINTS)
    if quick:
        x, y, test_x, test_y, held_out = x[:2_000], y[:2_000], test_x[:200], test_y[:200], 200
        points["n"] = 100
    targets = {**P3_TARGET, "seconds": P3_TARGET["seconds"][device.type]}
    reference = reference_seconds(device, 2 if quick else 10)
    print(f"P3 reference: one PGD-5 training step of the P3 network takes {reference:.3f} s here", flush=True)
    rows, trained = [], {}
    for name, recipe in P3_RECIPES.items():
        if quick:
            recipe = {**recipe, "epochs": 1, "channels": (8, 16), "hidden": 32}
        full = {**recipe, "eps": eps, "norm": "linf", "n_train": len(y) - held_out}
        model, row, robust = _p3_recipe_run(name, full, device, x, y, held_out, test_x, test_y, quick)
        rows.append(row)
        trained[name] = (model, robust)
        print(
            f"P3 {name}: trained in {row['train_seconds']:.0f} s ({row['measured']}), clean "
            f"{100 * row['clean_acc']:.2f}%, PGD-40 {100 * row['pgd_acc']:.2f}% on {len(test_y)} digits, catastrophic "
            f"overfitting at epoch {row['catastrophic_overfitting_epoch']}",
            flush=True,
        )
    chosen = _pick_recipe(rows, targets)
    model, pgd_robust = trained[chosen]
    generator = torch.Generator().manual_seed(points["seed"])
    index = torch.randperm(len(test_y), generator=generator)[: points["n"]]
    comparison = suite_comparison(model, test_x[index], test_y[index], eps, "linf", device, quick)
    on_points = [bool(pgd_robust[i]) for i in index.tolist()]
    worst = [a and b for a, b in zip(on_points, comparison["autoattack"]["robust"])]
    record = {
        **comparison,
        "benchmark": "p3",
        "targets": targets,
        "reference_step_seconds": reference,
        "recipes": rows,
        "chosen": chosen,
        "n": len(test_y),
        "points": {**points, "n": len(index), "index": index.tolist()},
        "pgd_on_points": sum(on_points) / len(on_points),
        "worst_acc": sum(worst) / len(worst),
    }
    print(_p3_lines(record), flush=True)
    return record


def p3_chosen(record: dict) -> dict:
    """Return the row of the recipe a P3 record kept."""
    return next(r for r in record["recipes"] if r["name"] == record["chosen"])


def p3_verdict(record: dict) -> dict:
    """Return each P3 target's pass/fail for the recipe kept: clean accuracy (all test digits), robust
    accuracy (the worst case of PGD-40 and AutoAttack on the random points, and PGD-40 on all digits),
    training seconds, no catastrophic overfitting."""
    row, target = p3_chosen(record), record["targets"]
    return {
        "clean": row["clean_acc"] >= target["clean"],
        "robust": record["worst_acc"] >= target["robust"] and row["pgd_acc"] >= target["robust"],
        "seconds": row["train_seconds"] <= target["seconds"],
        "no catastrophic overfitting": row["catastrophic_overfitting_epoch"] is None,
    }


def _p3_lines(record: dict) -> str:
    row, verdict, t = p3_chosen(record), p3_verdict(record), record["targets"]
    aa = record["autoattack"]
    return "\n".join(
        [
            f"P3 kept {record['chosen']}: trained in {row['train_seconds']:.0f} s (target <= {t['seconds']} s)",
            f"P3 clean {100 * row['clean_acc']:.2f}% (target >= {100 * t['clean']:.1f}%), PGD-40 "
            f"{100 * row['pgd_acc']:.2f}% on all {record['n']} test digits",
            f"P3 on {record['points']['n']} random test digits: PGD-40 {100 * record['pgd_on_points']:.2f}%, "
            f"AutoAttack standard {100 * aa['worst_acc']:.2f}% ({aa['seconds']:.0f} s), worst case "
            f"{100 * record['worst_acc']:.2f}% (target >= {100 * t['robust']:.1f}%)",
            "P3 " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in verdict.items()),
        ]
    )


# --- scaling -----------------------------------------------------------------------------------

#: The settings :func:`scaling` holds while it varies one axis (conv channels, hidden units, batch
#: size and PGD steps).
SCALING_BASE = {"channels": (16, 32), "hidden": 128, "batch_size": 256, "steps": 5}
#: The values :func:`scaling` tries on each axis, width as (channels, channels, hidden units), batch
#: size and PGD steps (0 means standard training).
SCALING_GRID = {
    "width": [(8, 16, 64), (16, 32, 128), (32, 64, 256), (64, 128, 512)],
    "batch_size": [64, 128, 256, 512],
    "steps": [0, 1, 2, 5, 10],
}


def epoch_seconds(
    device: torch.device, x, y, channels, hidden: int, batch_size: int, steps: int, fast: bool, batches: int = 6
) -> float:
    """Return the seconds one epoch of 60,000 digits takes: PGD-``steps`` adversarial training
    (``steps=0``: standard) of ``mnist_cnn(channels, hidden)``, timed as the median of ``batches``
    steps. ``fast``: bf16 autocast and channels_last weights."""
    set_seed(0)
    model = prepared(models.mnist_cnn(channels, hidden).to(device), channels_last=fast).train()
    opt = train.make_optimizer(model, "adam", 1e-3)
    attack = attacks.PGD(eps=0.3, steps=steps, amp=fast, use_best=False) if steps else None
    xb, yb = x[:batch_size].to(device), y[:batch_size].to(device)
    seconds = median_seconds(lambda: train.train_step(model, opt, xb, yb, attack, amp=fast), device, batches)
    return seconds * 60_000 / batch_size


def scaling(device: torch.device, quick: bool = False) -> dict:
    """Measure :func:`epoch_seconds` along each axis of :data:`SCALING_GRID` (the others at
    :data:`SCALING_BASE`), in float32 and in bf16 + channels_last; return the record."""
    x, y = _mnist(False)
    grid = {k: v[:2] for k, v in SCALING_GRID.items()} if quick else SCALING_GRID
    rows = []
    for axis, values in grid.items():
        for value in values:
            cfg = dict(SCALING_BASE)
            if axis == "width":
                cfg["channels"], cfg["hidden"] = value[:2], value[2]
            else:
                cfg[axis] = value
            for fast in (False, True):
                s = epoch_seconds(device, x, y, fast=fast, batches=2 if quick else 6, **cfg)
                rows.append(
                    {
                        "axis": axis,
                        "value": list(value) if axis == "width" else value,
                        "precision": "bf16+channels_last" if fast else "float32",
                        "epoch_seconds": s,
                        **cfg,
                    }
                )
            print(
                f"scaling {axis}={value}: {rows[-2]['epoch_seconds']:.1f} s float32, "
                f"{rows[-1]['epoch_seconds']:.1f} s bf16+channels_last per epoch",
                flush=True,
            )
    return {"benchmark": "scaling", "base": SCALING_BASE, "rows": rows}


# --- an evaluation as strong as AutoAttack, for less --------------------------------------------

#: The CIFAR-10 model :func:`evalsuite` evaluates (at the ``ci`` profile; ``smoke`` when quick), its
#: threat model and the number of test images.
EVALSUITE = {"model": "cifar10/linf-8/255", "norm": "linf", "eps": 8 / 255, "n": 500}


def evalsuite(device: torch.device, quick: bool = False) -> dict:
    """Time AutoAttack's standard version against the suites of :func:`p3_suites` on a CIFAR-10 robust
    model of the book (:data:`EVALSUITE`, from the model cache or trained now through
    :func:`robustutils.zoo.get`), on the same first test images (:func:`suite_comparison`); P3 does
    the same on its MNIST model. Return the record."""
    profile = "smoke" if quick else "ci"
    name = EVALSUITE["model"]
    model, meta = zoo.get(name, profile, device=device, progress=not quick)
    n = 50 if quick else EVALSUITE["n"]
    x, y = zoo.dataset(registry.recipe(name, profile).as_dict(), train_split=False, n=n)
    x, y = x.to(device), y.to(device)
    comparison = suite_comparison(model, x, y, EVALSUITE["eps"], EVALSUITE["norm"], device, quick)
    return {
        "benchmark": "evalsuite",
        "model": f"{name} at {profile}",
        "data": meta["data"],
        "eps": EVALSUITE["eps"],
        "norm": EVALSUITE["norm"],
        "restarts": restart_passes(model, x, y, EVALSUITE["eps"], EVALSUITE["norm"], device, quick),
        **comparison,
    }


def restart_passes(model, x, y, eps: float, norm: str, device, quick: bool = False) -> dict:
    """Time PGD-20 with 10 restarts within ``eps`` (pixel units) in ``norm`` on ``(x, y)`` two ways, each from the
    same random state and with the same number of images per forward pass: all restarts side by side
    (``"batched"``, :func:`robustutils.attacks.pgd` on a tenth of the batch at a time), and as 10 single-start
    passes on the examples still standing (``"passes"``, what :func:`robustutils.evaluate.cascade` does); return
    each one's robust accuracy (a fraction), seconds and image attacks, and ``speedup`` (batched seconds over
    the passes')."""
    steps, restarts = (3, 3) if quick else (20, 10)
    attack = attacks.PGD(eps=eps, norm=norm, steps=steps, restarts=restarts, step_size=step_size_for(eps, steps))
    batch = 500 if device.type == "cuda" else 250
    out = {"attack": attack.settings()}
    for how in ("batched", "passes"):
        set_seed(0)
        _sync(device)
        start = time.perf_counter()
        if how == "batched":  # batch // restarts examples a call: the same rows per forward pass as the passes
            result = evaluate.evaluate(model, x, y, attack=attack, batch_size=max(1, batch // restarts))
            acc, attacked = result["robust_acc"], round(result["clean_acc"] * len(y)) * restarts
        else:
            result = evaluate.cascade(model, x, y, {"pgd": attack}, batch_size=batch)
            acc, attacked = result["robust_acc"]["pgd"], result["attacked"]["pgd"]
        _sync(device)
        out[how] = {"robust_acc": acc, "seconds": time.perf_counter() - start, "attacked": attacked}
    out["speedup"] = out["batched"]["seconds"] / out["passes"]["seconds"]
    print(
        f"restarts: PGD-{steps} x {restarts} batched {100 * out['batched']['robust_acc']:.2f}% in "
        f"{out['batched']['seconds']:.0f} s, as passes {100 * out['passes']['robust_acc']:.2f}% in "
        f"{out['passes']['seconds']:.0f} s: {out['speedup']:.2f}x",
        flush=True,
    )
    return out


def step_size_for(eps: float, steps: int) -> float:
    """Return the evaluation PGD's step of the ``ci`` profile in pixel units: ``eps / 4`` (its
    ``pgd_step_factor``) for ``eps`` in pixel units of inputs in [0, 1]."""
    return attacks.step_size(eps, steps, profiles.config("ci", "eval")["suite"]["pgd_step_factor"])


# --- the GPU check -------------------------------------------------------------------------------

#: The chapter ``make gpu-check`` times, at the ``colab`` profile (``colab-smoke`` when quick), and the
#: seconds after which it is stopped so that the whole check fits its 8 minutes on an H100/H200.
GPU_CHECK_CHAPTER = {"notebook": "notebooks/02_adversarial_training.ipynb", "timeout": 240}


def _timed_command(command: list[str], env: dict, timeout: float) -> dict:
    """Run ``command`` from the repository root; return its seconds, exit code and last output lines
    (``returncode`` None when it ran past ``timeout`` seconds and was stopped)."""
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        code, output = None, f"stopped after {timeout:.0f} s\n" + str(err.stdout or "")[-2000:]
    tail = [line for line in output.splitlines() if line.strip()][-5:]
    return {"command": " ".join(command), "returncode": code, "seconds": time.perf_counter() - start, "tail": tail}


def gpu_check(device: torch.device, quick: bool = False, out: Path = RECORDS, where: dict | None = None) -> dict:
    """``make gpu-check``: everything a lent GPU should be asked, in one run of at most 8 minutes on an
    H100/H200. Runs the tests that touch the device (``tests/test_device.py`` with
    ``ROBUSTUTILS_TEST_DEVICE`` set to ``device``), P1 and P3 on ``device`` (their records written to
    ``out`` as ``p1-<device>.json`` and ``p3-<device>.json``), then times chapter 2 at the ``colab``
    profile through papermill (stopped after :data:`GPU_CHECK_CHAPTER`'s timeout). Return the check's
    own record (the tests' and the chapter's outcome and seconds, the total), which ``main`` writes as
    ``gpucheck-<device>.json``. ``quick``: tiny sizes and the ``colab-smoke`` profile, to check on a
    CPU that it runs end to end."""
    where = where or machine(device)
    start = time.perf_counter()
    env = {**os.environ, "ROBUSTUTILS_TEST_DEVICE": device.type, "TQDM_DISABLE": "1"}
    print("gpu-check: the device tests", flush=True)
    tests = _timed_command(
        [sys.executable, "-m", "pytest", "tests/test_device.py", "-q", "-p", "no:cacheprovider"], env, 300
    )
    print("\n".join(tests["tail"]), flush=True)
    for name in ("p1", "p3"):
        print(f"gpu-check: {name}", flush=True)
        print(f"wrote {save_record(BENCHMARKS[name](device, quick), where, out)}", flush=True)
    profile = "colab-smoke" if quick else "colab"
    print(f"gpu-check: {GPU_CHECK_CHAPTER['notebook']} at {profile}", flush=True)
    target = Path(tempfile.mkdtemp()) / Path(GPU_CHECK_CHAPTER["notebook"]).name
    chapter = _timed_command(
        [
            sys.executable,
            "-m",
            "papermill",
            "--no-progress-bar",
            "-k",
            os.environ.get("ROBUSTUTILS_KERNEL", "python3"),
            GPU_CHECK_CHAPTER["notebook"],
            str(target),
            "-p",
            "PROFILE",
            profile,
            "--cwd",
            "notebooks",
        ],
        env,
        GPU_CHECK_CHAPTER["timeout"],
    )
    print(f"gpu-check: chapter {chapter['returncode']} in {chapter['seconds']:.0f} s", flush=True)
    return {
        "benchmark": "gpucheck",
        "tests": tests,
        "chapter": {**chapter, "notebook": GPU_CHECK_CHAPTER["notebook"], "profile": profile},
        "seconds": time.perf_counter() - start,
        "quick": quick,
    }


# --- records and the command line --------------------------------------------------------------


def save_record(record: dict, where: dict, out: Path) -> Path:
    """Write ``record`` with ``where`` (:func:`machine`, taken when the run started, so that the
    commit is the code that ran) to ``out/<benchmark>-<device>.json``; return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['benchmark']}-{where['device']}.json"
    path.write_text(json.dumps({"machine": where, **record}, indent=1, default=str) + "\n")
    return path


def load_records(folder=RECORDS) -> list[dict]:
    """Return every benchmark record saved under ``folder``, sorted by benchmark then device."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]


# --- the performance appendix: records as tables, sentences and checks -------------------------

NORM_NAMES = {"linf": "ℓ∞", "l2": "ℓ2"}


def record_index(folder=RECORDS) -> dict[tuple[str, str], dict]:
    """Return the records under ``folder`` (:func:`load_records`) keyed by ``(benchmark, device)``,
    e.g. ``("p1", "cpu")``; a later record of the same key replaces an earlier one."""
    return {(r["benchmark"], r["machine"]["device"]): r for r in load_records(folder)}


def records_verdict(index: dict[tuple[str, str], dict], device: str = "cpu") -> dict:
    """Return ``{"measured", "held"}``: whether ``index`` (:func:`record_index`) holds a record of
    every benchmark of ``BENCHMARKS`` on ``device``; measured names the records found (or missing)."""
    missing = [name for name in BENCHMARKS if (name, device) not in index]
    found = ", ".join(f"{name} on {dev}" for name, dev in sorted(index)) or "none"
    return {
        "measured": f"records: {found}" + (f"; missing on {device}: {', '.join(missing)}" if missing else ""),
        "held": not missing,
    }


def _case(row: dict) -> str:
    return f"{row['model']}, {NORM_NAMES.get(row['norm'], row['norm'])}"


def _ratio_range(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    lo, hi = min(values), max(values)
    return f"{lo:.2f}x" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}x to {hi:.2f}x"


def p1_markdown(record: dict) -> str:
    """Return the Markdown of one P1 record: a heading with the device and target, the machine
    (:func:`measured_on`), then three narrow tables. First the like-for-like ratio: torchattacks'
    time under each variant's settings over ours (above 1: ours is faster). Then the step cost:
    the time of one attack step over that of a bare forward+backward pass under the same settings,
    ours and torchattacks' (1.0 is the limit). Last, labelled as such, the ratio against
    torchattacks run in plain float32, which credits the variant's settings to our attack, with the
    variant kept (:func:`best_variant`) and the mean float32 loss (nats) ours / theirs."""
    from .report import markdown_table

    rows = record["rows"]
    names = list(rows[0]["variants"])
    sizes = "; ".join(dict.fromkeys(f"{r['model']}: batch {r['batch']}, PGD-{r['steps']}" for r in rows))
    same = [
        {
            "case": _case(r),
            "ms": 1e3 * r["torchattacks_s"],
            **{n: v["speedup_same_settings"] for n, v in r["variants"].items()},
        }
        for r in rows
    ]
    has_cost = all("step_cost" in v for r in rows for v in r["variants"].values())
    cost = (
        [
            {
                "case": _case(r),
                **{
                    n: f"{v['step_cost']:.2f} / "
                    + (f"{v['torchattacks_step_cost']:.2f}" if v["torchattacks_step_cost"] else "–")
                    for n, v in r["variants"].items()
                },
            }
            for r in rows
        ]
        if has_cost
        else []
    )
    plain = []
    for r in rows:
        name, best = best_variant(r)
        plain.append(
            {
                "case": _case(r),
                **{n: v["speedup"] for n, v in r["variants"].items()},
                "best": f"{name}",
                "loss": f"{best['loss']:.3f} / {r['torchattacks_loss']:.3f}",
            }
        )
    text = (
        f"### {record['machine']['device'].upper()}, target at least {record['target']:g}x\n\n"
        f"{measured_on(record)} {sizes}.\n\n**Like for like**: torchattacks' time over ours, both run under the "
        "same settings (above 1: ours is faster; torchattacks' time in float32 in the first column):\n\n"
        + markdown_table(
            same,
            {"case": "model, norm", "ms": "torchattacks float32 (ms)", **{n: n for n in names}},
            {"ms": ".0f", **dict.fromkeys(names, ".2f")},
        )
    )
    if cost:
        text += (
            "\n\n**Step cost**: seconds of one attack step over those of one bare forward+backward pass of the "
            "same model on the same batch under the same settings, ours / torchattacks' (1.00 is the limit):\n\n"
            + markdown_table(cost, {"case": "model, norm", **{n: n for n in names}})
        )
    return text + (
        "\n\n**Not like for like**: torchattacks in plain float32 over our attack in each variant, which "
        "credits the variant's settings to our loop; the variant kept (the fastest that keeps 98% of "
        "the float32 loss) and its loss, ours / torchattacks':\n\n"
        + markdown_table(
            plain,
            {"case": "model, norm", **{n: n for n in names}, "best": "kept", "loss": "loss ours / theirs"},
            dict.fromkeys(names, ".2f"),
        )
    )


def p1_strength_verdict(records: list[dict]) -> dict:
    """Return ``{"measured", "held"}``: whether, in every row of the P1 ``records``, the variant kept
    (:func:`best_variant`) reaches at least 98% of the mean loss of our float32 attack."""
    rows = [(r["machine"]["device"], row) for r in records for row in r["rows"]]
    weak = [
        f"{_case(row)} on {device}"
        for device, row in rows
        if best_variant(row)[1]["loss"] < 0.98 * row["variants"]["float32"]["loss"]
    ]
    measured = f"{len(rows) - len(weak)} of {len(rows)} cases" + (f"; weaker: {', '.join(weak)}" if weak else "")
    return {"measured": measured, "held": not weak}


def p1_like_for_like_verdict(records: list[dict]) -> dict:
    """Return ``{"measured", "held"}``: whether in every row of the P1 ``records`` the variant kept
    (:func:`best_variant`) runs at least at the record's target times torchattacks' speed under the
    same settings; measured gives the range per device."""
    parts, held = [], True
    for record in records:
        same = [best_variant(row)[1]["speedup_same_settings"] for row in record["rows"]]
        held &= all(s is not None and s >= record["target"] for s in same)
        parts.append(f"{record['machine']['device']}: {_ratio_range(same)} (target {record['target']:g}x)")
    return {"measured": "; ".join(parts) or "no P1 record", "held": held and bool(records)}


def p1_step_cost_verdict(records: list[dict], limit: float) -> dict:
    """Return ``{"measured", "held"}``: whether one step of our attack costs at most ``limit`` bare
    forward+backward passes (:func:`p1_case`'s step cost) in float32 and in the variant kept, in every
    row of the P1 ``records`` that measured it."""
    costs = {}
    for record in records:
        for row in record["rows"]:
            if "step_cost" not in row["variants"]["float32"]:
                continue
            name, kept = best_variant(row)
            costs.setdefault(record["machine"]["device"], []).extend(
                [row["variants"]["float32"]["step_cost"], kept["step_cost"]]
            )
    measured = "; ".join(f"{d}: {min(c):.2f} to {max(c):.2f} passes" for d, c in costs.items())
    return {
        "measured": measured or "no P1 record measured the step cost",
        "held": bool(costs) and all(x <= limit for c in costs.values() for x in c),
    }


def p1_summary(record: dict) -> str:
    """Return one Markdown paragraph on a P1 record: the like-for-like ratio (our attack against
    torchattacks under the same settings) in float32 and in the variant kept, how many cases meet
    the target that way, the step cost against a bare forward+backward pass (where recorded), and
    last the ratio against torchattacks in plain float32, said to be the settings' gain."""
    rows = record["rows"]
    kept = [best_variant(row) for row in rows]
    same32 = [row["variants"]["float32"]["speedup_same_settings"] for row in rows]
    same_kept = [v["speedup_same_settings"] for _, v in kept]
    met = sum(s is not None and s >= record["target"] for s in same_kept)
    text = (
        f"**{record['machine']['device'].upper()}**, like for like: our float32 attack runs at "
        f"{_ratio_range(same32)} torchattacks' float32 speed, and the variant kept at {_ratio_range(same_kept)} "
        f"torchattacks' speed under the same settings, meeting the target of {record['target']:g}x in {met} of "
        f"{len(rows)} cases."
    )
    if all("step_cost" in v for row in rows for v in row["variants"].values()):
        ours = [row["variants"]["float32"]["step_cost"] for row in rows]
        ours_kept = [v["step_cost"] for _, v in kept]
        theirs = [row["variants"]["float32"]["torchattacks_step_cost"] for row in rows]
        text += (
            f" One step of our attack costs {_ratio_range(ours)} a bare forward+backward pass in float32 "
            f"(torchattacks' {_ratio_range(theirs)}) and {_ratio_range(ours_kept)} in the variant kept: "
            + (
                "within 10% of the limit, so what is left to gain lies in the model's own passes, not in the loop."
                if max(ours + ours_kept) <= 1.10
                else "more than 10% above the limit in some case; the excess is the loop's."
            )
        )
    plain = [v["speedup"] for _, v in kept]
    text += (
        f" Against torchattacks left in plain float32, the variant kept reads {_ratio_range(plain)}; that gain is "
        "the settings' (bf16 autocast, channels_last weights), which torchattacks gets too when run the same way."
    )
    return text


def p3_markdown(record: dict) -> str:
    """Return the Markdown of one P3 record: a heading with the device, the machine, a table comparing
    the recipes (training attack, epochs, schedule, seconds, clean and PGD-40 accuracy on all test
    digits, catastrophic overfitting) and a table of the kept recipe's measures against their targets
    (:func:`p3_verdict`). A record made before recipes were compared (one ``recipe``) gets its one
    table of measures."""
    from .report import markdown_table

    if "recipes" not in record:
        return _p3_markdown_single(record)
    targets, verdict, row = record["targets"], p3_verdict(record), p3_chosen(record)
    compared = [
        {
            "name": r["name"] + (" (kept)" if r["name"] == record["chosen"] else ""),
            "epochs": r["recipe"]["epochs"],
            "schedule": f"{r['recipe'].get('schedule', 'onecycle')} {r['recipe']['lr']:g}",
            "seconds": r["train_seconds"],
            "clean": r["clean_acc"],
            "pgd": r["pgd_acc"],
            "co": f"epoch {r['catastrophic_overfitting_epoch']}" if r["catastrophic_overfitting_epoch"] else "no",
        }
        for r in record["recipes"]
    ]
    aa, points = record["autoattack"], record["points"]
    measures = [
        ("training time (s)", f"{row['train_seconds']:.0f}", f"<= {targets['seconds']}", verdict["seconds"]),
        (
            f"clean accuracy ({record['n']:,} digits)",
            f"{row['clean_acc']:.2%}",
            f">= {targets['clean']:.1%}",
            verdict["clean"],
        ),
        (
            f"PGD-40 ({record['n']:,} digits)",
            f"{row['pgd_acc']:.2%}",
            f">= {targets['robust']:.1%}",
            row["pgd_acc"] >= targets["robust"],
        ),
        (f"PGD-40 ({points['n']:,} random digits)", f"{record['pgd_on_points']:.2%}", None, None),
        (f"AutoAttack standard ({points['n']:,} random digits)", f"{aa['worst_acc']:.2%}", None, None),
        (
            "worst case of the two, per digit",
            f"{record['worst_acc']:.2%}",
            f">= {targets['robust']:.1%}",
            record["worst_acc"] >= targets["robust"],
        ),
        (
            "catastrophic overfitting",
            "no" if verdict["no catastrophic overfitting"] else f"epoch {row['catastrophic_overfitting_epoch']}",
            "none",
            verdict["no catastrophic overfitting"],
        ),
    ]
    table = [
        {"what": w, "value": v, "target": t, "ok": {True: "yes", False: "**no**"}.get(ok)} for w, v, t, ok in measures
    ]
    net = row["recipe"]
    return (
        f"### {record['machine']['device'].upper()}\n\n{measured_on(record)} Every recipe trains `mnist_cnn` "
        f"with {'/'.join(map(str, net['channels']))} channels and {net['hidden']} hidden units on "
        f"{net['n_train']:,} digits, "
        f"batch {net['batch_size']}, Adam, bf16 autocast {net['amp']}, channels_last {net['channels_last']}, at "
        f"ℓ∞ ε = {net['eps']:g}; accuracies on all {record['n']:,} test digits; PGD-40 steps by ε/30.\n\n"
        + markdown_table(
            compared,
            {
                "name": "recipe",
                "epochs": "epochs",
                "schedule": "schedule, peak lr",
                "seconds": "train (s)",
                "clean": "clean",
                "pgd": "PGD-40",
                "co": "collapse",
            },
            {"seconds": ".0f", "clean": ".2%", "pgd": ".2%"},
        )
        + f"\n\nThe recipe kept, **{record['chosen']}**; AutoAttack saw {points['n']:,} test digits drawn at random "
        f"(`torch.randperm` seeded {points['seed']}) and took {aa['seconds'] / 60:.0f} min:\n\n"
        + markdown_table(table, {"what": "measure", "value": "this run", "target": "target", "ok": "met"})
    )


def p3_targets_verdict(records: list[dict]) -> dict:
    """Return ``{"measured", "held"}`` for P3 ``records`` (one per device): whether the recipe kept
    meets every target of :func:`p3_verdict` on every device; measured names the recipe, its
    seconds, clean accuracy and worst-case robust accuracy."""
    parts, held = [], bool(records)
    for record in records:
        if "recipes" not in record:
            parts.append(f"{record['machine']['device']}: a record from before recipes were compared")
            held = False
            continue
        row, verdict = p3_chosen(record), p3_verdict(record)
        held &= all(verdict.values())
        missed = [k for k, v in verdict.items() if not v]
        parts.append(
            f"{record['machine']['device']}: {record['chosen']}, {row['train_seconds']:.0f} s, clean "
            f"{row['clean_acc']:.2%}, worst case {record['worst_acc']:.2%}"
            + (f" (missed: {', '.join(missed)})" if missed else "")
        )
    return {"measured": "; ".join(parts) or "no P3 record", "held": held}


def _p3_markdown_single(record: dict) -> str:
    from .report import markdown_table

    rows = [
        {"what": "training time (s)", "value": f"{record['train_seconds']:.0f}"},
        {"what": "clean accuracy", "value": f"{record['clean_acc']:.2%}"},
        *({"what": name, "value": f"{acc:.2%}"} for name, acc in record["robust_acc"].items()),
    ]
    return f"### {record['machine']['device'].upper()}\n\n{measured_on(record)}\n\n" + markdown_table(
        rows, {"what": "measure", "value": "this run"}
    )


def suite_rows(index: dict[tuple[str, str], dict]) -> list[dict]:
    """Return one row per model and suite of the records of ``index`` (:func:`record_index`) that timed
    suites against AutoAttack (P3 and :func:`evalsuite`): device, model, points, AutoAttack's robust
    accuracy and seconds, the suite's, ``gap_pp`` and ``time_ratio`` (see :func:`suite_comparison`)."""
    out = []
    for (name, device), record in sorted(index.items()):
        if name not in ("p3", "evalsuite") or "suites" not in record:
            continue
        model = "MNIST, P3's model" if name == "p3" else record["model"]
        for suite, result in record["suites"].items():
            out.append(
                {
                    "device": device,
                    "model": model,
                    "n": record["autoattack"]["n"],
                    "aa_acc": record["autoattack"]["worst_acc"],
                    "aa_s": record["autoattack"]["seconds"],
                    "suite": suite,
                    "acc": result["worst_acc"],
                    "s": result["seconds"],
                    "gap_pp": result["gap_pp"],
                    "time_ratio": result["time_ratio"],
                }
            )
    return out


#: The goal of a fast evaluation suite, a robust accuracy at most this many points above AutoAttack's
#: standard version (a suite below it found more adversarial examples, so it is at least as strong),
#: in at most this fraction of its time.
SUITE_TARGET = {"gap_pp": 0.3, "time_ratio": 1 / 3}


def suite_markdown(rows: list[dict]) -> str:
    """Return a Markdown table of :func:`suite_rows`: per model, AutoAttack's and each suite's robust
    accuracy and time, the gap in points and the time ratio, and whether the suite meets
    :data:`SUITE_TARGET`."""
    from .report import markdown_table

    shown = [
        {
            **r,
            "model": f"{r['model']}, {r['n']:,} points ({r['device']})",
            "aa": f"{r['aa_acc']:.2%} in {r['aa_s']:.0f} s",
            "mine": f"{r['acc']:.2%} in {r['s']:.0f} s",
            "ok": "yes" if suite_meets(r) else "**no**",
        }
        for r in rows
    ]
    return markdown_table(
        shown,
        {
            "model": "model",
            "aa": "AutoAttack standard",
            "suite": "suite",
            "mine": "suite's result",
            "gap_pp": "gap (points)",
            "time_ratio": "time ratio",
            "ok": "goal met",
        },
        {"gap_pp": "+.2f", "time_ratio": ".3f"},
    )


def restarts_markdown(record: dict) -> str:
    """Return one Markdown sentence on an :func:`evalsuite` record's :func:`restart_passes`: the robust
    accuracy, seconds and examples attacked of PGD's restarts run side by side and as passes on the
    points still standing, and the speed-up."""
    r = record.get("restarts")
    if not r:
        return ""
    a = r["attack"]
    return (
        f"On {record['model']} ({record['n']:,} test images, {NORM_NAMES.get(record['norm'], record['norm'])} "
        f"ε = {record['eps']:.4g}), PGD-{a['steps']} with {a['restarts']} random starts side by side found "
        f"{r['batched']['robust_acc']:.2%} robust in {r['batched']['seconds']:.0f} s ({r['batched']['attacked']:,} "
        f"image attacks); run as passes on the images still standing, {r['passes']['robust_acc']:.2%} in "
        f"{r['passes']['seconds']:.0f} s ({r['passes']['attacked']:,} image attacks): {r['speedup']:.2f}x faster "
        f"({measured_on(record)})"
    )


def suite_meets(row: dict) -> bool:
    """Return whether a :func:`suite_rows` row meets :data:`SUITE_TARGET`: its robust accuracy at most 0.3
    points above AutoAttack's (below it means the suite found more), in at most a third of its time."""
    return row["gap_pp"] <= SUITE_TARGET["gap_pp"] and row["time_ratio"] <= SUITE_TARGET["time_ratio"]


def suite_verdict(rows: list[dict]) -> dict:
    """Return ``{"measured", "held"}``: whether one suite meets :data:`SUITE_TARGET` on every model of
    ``rows`` (:func:`suite_rows`); measured names each suite's worst gap and time ratio."""
    by_suite: dict[str, list[dict]] = {}
    for r in rows:
        by_suite.setdefault(r["suite"], []).append(r)
    parts = [
        f"{suite}: gap {min(r['gap_pp'] for r in rs):+.2f} to {max(r['gap_pp'] for r in rs):+.2f} points, "
        f"time ratio up to {max(r['time_ratio'] for r in rs):.3f} on {len(rs)} model(s)"
        for suite, rs in by_suite.items()
    ]
    models = {r["model"] for r in rows}
    held = any(
        len({r["model"] for r in rs}) == len(models) >= 2 and all(suite_meets(r) for r in rs)
        for rs in by_suite.values()
    )
    return {"measured": "; ".join(parts) or "no suite timed against AutoAttack", "held": held}


def scaling_fits(record: dict) -> dict[str, dict]:
    """Return, per precision of a scaling record, how an epoch's seconds grow with the PGD steps ``k``.

    Each value has ``r2`` (of the least-squares line of seconds against ``k``), ``slope`` (seconds
    per extra step), ``increasing`` (every step count costs more than the one before),
    ``about_k_plus_1`` (each epoch costs between 0.5 and 1.5 times ``k + 1`` standard epochs, the
    ``k = 0`` point) and ``batch_ratio``/``batches``: the seconds at the largest batch size over
    those at the smallest, and those two sizes.
    """
    import numpy as np

    out = {}
    for precision in dict.fromkeys(r["precision"] for r in record["rows"]):
        rows = [r for r in record["rows"] if r["precision"] == precision]
        steps, seconds = np.array([(r["value"], r["epoch_seconds"]) for r in rows if r["axis"] == "steps"]).T
        ratios = seconds / seconds[steps == 0][0]
        by_batch = {r["value"]: r["epoch_seconds"] for r in rows if r["axis"] == "batch_size"}
        out[precision] = {
            "r2": float(np.corrcoef(steps, seconds)[0, 1] ** 2),
            "slope": float(np.polyfit(steps, seconds, 1)[0]),
            "increasing": bool(all(b > a for a, b in zip(seconds, seconds[1:]))),
            "about_k_plus_1": bool(all(0.5 * (k + 1) <= r <= 1.5 * (k + 1) for k, r in zip(steps, ratios))),
            "batch_ratio": by_batch[max(by_batch)] / by_batch[min(by_batch)],
            "batches": (min(by_batch), max(by_batch)),
        }
    return out


def scaling_verdict(fits: dict[str, dict]) -> dict:
    """Return ``{"measured", "held"}`` for :func:`scaling_fits`: in every precision the seconds per
    epoch grow along a line in the PGD steps (``R^2 > 0.95``), strictly, at about ``k + 1`` standard epochs."""
    held = all(f["r2"] > 0.95 and f["increasing"] and f["about_k_plus_1"] for f in fits.values())
    measured = "; ".join(f"{p}: R² = {f['r2']:.3f}, {f['slope']:.1f} s per extra step" for p, f in fits.items())
    return {"measured": measured, "held": held}


def scaling_summary(fits: dict[str, dict]) -> str:
    """Return one Markdown line per precision of :func:`scaling_fits`: the line's R², the cost of one
    more PGD step, and how an epoch at the largest batch compares with one at the smallest."""
    return "\n\n".join(
        f"{p}: seconds per epoch against PGD steps fit a line with R² = {f['r2']:.3f}; each extra step "
        f"costs {f['slope']:.1f} s per epoch. An epoch at batch {f['batches'][1]} takes "
        f"{f['batch_ratio']:.2f} times as long as at batch {f['batches'][0]}."
        for p, f in fits.items()
    )


def gpu_note(index: dict[tuple[str, str], dict]) -> str:
    """Return Markdown on the GPU records of ``index`` (:func:`record_index`): the ``make gpu-check``
    record's outcome (the device tests, the chapter timed at ``colab``, the total seconds) and the
    other GPU records by name, or a sentence saying that the GPU targets are unmeasured and how to
    measure them."""
    gpu = sorted(name for name, device in index if device == "cuda")
    if not gpu:
        return (
            "No GPU record yet: the GPU targets (P1 at least 2x torchattacks like for like, P3 within 30 s of "
            "training) are **unmeasured**. On a GPU machine `make gpu-check` (at most 8 minutes on an H100/H200; "
            "`make gpu-bundle` first where the machine has no network) writes `book/perf/*-cuda.json`, which "
            "this page then shows beside the CPU records."
        )
    text = "GPU records: " + ", ".join(gpu) + "."
    check = index.get(("gpucheck", "cuda"))
    if check:
        tests, chapter = check["tests"], check["chapter"]
        ran = "passed" if tests["returncode"] == 0 else f"**failed** (exit {tests['returncode']})"
        took = (
            f"ran in {chapter['seconds']:.0f} s"
            if chapter["returncode"] == 0
            else f"**did not finish** ({'stopped at' if chapter['returncode'] is None else 'failed after'} "
            f"{chapter['seconds']:.0f} s)"
        )
        text += (
            f" {measured_on(check)} `make gpu-check` took {check['seconds']:.0f} s: the device tests {ran} "
            f"({tests['tail'][-1] if tests['tail'] else 'no output'}), and `{chapter['notebook']}` at "
            f"`{chapter['profile']}` {took}."
        )
    return text


# --- chapter 2's headline model --------------------------------------------------------------


def headline_result(profile: str, *, device=None, records=None) -> dict:
    """Return chapter 2's headline result at ``profile``: measured now
    (:func:`robustutils.checks.measure_headline`), or, where the profile's ``headline_from`` is
    ``"record"`` (``ci``: training the model and running AutoAttack take longer than the book's CPU
    budget leaves), read from the ``make bench`` record ``book/perf/headline-cpu.json``
    (:func:`headline`; ``records``: another folder of records), which holds the same dict plus
    ``machine`` (where and when it was measured).

    Raises ``FileNotFoundError`` when the record is missing and ``ValueError`` when it was measured
    for another recipe, profile or number of digits than the profile's now (rerun ``make bench
    BENCH=headline``)."""
    cfg = profiles.config(profile, "advtrain")
    if cfg["headline_from"] != "record":
        return checks.measure_headline(profile, device=device)
    folder = RECORDS if records is None else records
    record = record_index(folder).get(("headline", "cpu"))
    if record is None:
        raise FileNotFoundError(
            f"no headline record in {folder}: run `make bench BENCH=headline` on a CPU (it trains "
            f"{registry.HEADLINE} and runs AutoAttack, about half an hour on 2 cores)"
        )
    expected = {
        "profile": profile,
        "model_key": zoo.key(registry.recipe(registry.HEADLINE, profile)),
        "n_pgd": cfg["headline_n_pgd"],
        "n_autoattack": cfg["headline_n_autoattack"],
    }
    stale = {k: (record.get(k), v) for k, v in expected.items() if record.get(k) != v}
    if stale:
        raise ValueError(
            f"the headline record in {folder} was measured for another setting (recorded, now: {stale}): "
            "rerun `make bench BENCH=headline`"
        )
    return record


def headline(device: torch.device, quick: bool = False) -> dict:
    """Measure chapter 2's headline model (:func:`robustutils.checks.measure_headline`) at the profile
    whose record the book reads (``ci`` on a CPU, ``colab`` on a GPU; ``smoke`` when ``quick``), from
    the model cache when it is there (its seconds are those of the cached training and evaluations);
    return its record."""
    profile = "smoke" if quick else ("ci" if device.type == "cpu" else "colab")
    result = checks.measure_headline(profile, device=device)
    print(checks.headline_table(result), flush=True)
    return {"benchmark": "headline", **result}


BENCHMARKS = {"p1": p1, "p3": p3, "evalsuite": evalsuite, "scaling": scaling, "headline": headline}


def main(argv=None) -> None:
    """Command line: run the benchmarks named in ``argv`` (default: all) on ``--device``, print their
    results and write each record to ``--out`` (:func:`save_record`); ``--quick``: tiny sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)} (default: all), or gpu-check alone (make gpu-check)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmarks run (for tests)")
    parser.add_argument("--out", type=Path, default=RECORDS, help=f"folder of the JSON records (default {RECORDS})")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when present)")
    args = parser.parse_args(argv)
    unknown = set(args.benchmarks) - set(BENCHMARKS) - {"gpu-check"}
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: choose from {', '.join(BENCHMARKS)} (or gpu-check)")
    if "gpu-check" in args.benchmarks and len(args.benchmarks) > 1:
        parser.error("gpu-check runs alone (it runs p1 and p3 itself)")
    device = pick_device(args.device)
    where = machine(device)
    print(f"benchmarks on {where}", flush=True)
    if args.benchmarks == ["gpu-check"]:
        print(f"wrote {save_record(gpu_check(device, args.quick, args.out, where), where, args.out)}", flush=True)
        return
    for name in args.benchmarks or BENCHMARKS:
        print(f"wrote {save_record(BENCHMARKS[name](device, args.quick), where, args.out)}", flush=True)


if __name__ == "__main__":
    main()
