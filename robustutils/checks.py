"""Checks that a robustness evaluation can be trusted, and the tables and verdicts of chapter 2.

Carlini et al. (2019), "On Evaluating Adversarial Robustness" (arXiv 1902.06705), section 4, list
the checks that catch most broken evaluations; this module runs those the book uses:

- an attack written by someone else (APGD, Croce & Hein 2020) beside our PGD, with the worst case
  over all of them and a verdict where PGD overestimates it (:func:`robustness_rows`,
  :func:`robustness_table`, :func:`overestimate_report`);
- more steps, restarts and other step sizes change little, one step is weaker, and PGD lies near
  the worst case of the independent attack (:func:`strength_table`, :func:`pgd_converged`, :func:`row_at`);
- unbounded attacks succeed (:func:`unbounded`, :func:`unbounded_verdict`).

It also holds chapter 2's bookkeeping: robust accuracy against the test eps (:func:`sweep`,
:func:`sweep_table`), the training histories (:func:`ramp_table`) and the verdicts of the chapter's
claims. A *verdict* is a dict ``{"measured": str, "held": bool}``, the keyword arguments
:meth:`robustutils.report.Chapter.claim` and :meth:`~robustutils.report.Chapter.check` take:
``page.claim(key, text, paper=..., **verdict)``.

Accuracies are fractions in [0, 1]; every eps is in pixel units of inputs in [0, 1]; a *curve* is
``(eps values, accuracies)``, two lists of the same length.
"""

import torch

from . import evaluate, independent, profiles, registry, report, zoo

#: How far (percentage points) our PGD may overestimate the worst case over all attacks before
#: the robustness table calls it a finding.
TOLERANCE_PP = 2.0
#: The threat models' names as printed.
NORMS = {"linf": "ℓ∞", "l2": "ℓ2"}

Curves = dict[str, dict[str, tuple[list, list]]]


def threat(norm: str, eps: float) -> str:
    """Return a threat model as printed: ``threat("linf", 0.3) == "ℓ∞ 0.3"`` (eps in pixel units).
    Raises ``ValueError`` for a norm other than ``"linf"`` and ``"l2"``."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: choose 'linf' or 'l2'")
    return f"{NORMS[norm]} {eps:g}"


def _verdict(measured: str, held) -> dict:
    return {"measured": measured, "held": bool(held)}


# --- Robust accuracy against the test eps ----------------------------------------------------


def sweep(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    grids: dict[str, list[float]],
    *,
    steps: int,
    into: Curves | None = None,
) -> Curves:
    """Return robust accuracy under PGD-``steps`` at each eps of ``grids[norm]`` for every model:
    ``curves[norm][name] = (eps values, accuracies)`` (:func:`robustutils.evaluate.eps_sweep`), norm
    by norm and, within a norm, model by model.

    ``x`` [N, ...] images in [0, 1], ``y`` [N] class indices, on the models' device; ``into``: curves
    to add to (updated in place and returned). Raises ``ValueError`` as
    :func:`~robustutils.evaluate.eps_sweep` (e.g. an l_inf eps above 1)."""
    curves = {} if into is None else into
    for norm, grid in grids.items():
        for name, model in models.items():
            acc = evaluate.eps_sweep(model, x, y, list(grid), norm=norm, steps=steps)
            curves.setdefault(norm, {})[name] = (list(grid), acc)
    return curves


def accuracy_at(curve: tuple[list, list], eps: float) -> float:
    """Return a curve's accuracy at ``eps``; ``ValueError`` naming the grid when ``eps`` is not on it."""
    grid, acc = curve
    if eps not in grid:
        raise ValueError(f"eps {eps:g} is not on the sweep's grid {grid}: add it to the profile's sweep")
    return acc[grid.index(eps)]


def sweep_table(curves: Curves) -> str:
    """Return Markdown tables of :func:`sweep`'s curves, one per attack norm: a row per model, a
    column per test eps."""
    tables = []
    for norm, by_model in curves.items():
        grid = next(iter(by_model.values()))[0]
        columns = {"model": f"model ({NORMS[norm]} attack)", **{i: f"ε {e:g}" for i, e in enumerate(grid)}}
        rows = [{"model": name, **dict(enumerate(acc))} for name, (_, acc) in by_model.items()]
        tables.append(report.markdown_table(rows, columns, {i: ".1%" for i in range(len(grid))}))
    return "\n\n".join(tables)


def brittle(
    curves: Curves, model: str, *, clean: float, at: dict[str, float], limits: dict[str, float], n: int, steps: int
) -> dict:
    """Return the verdict that ``model``'s accuracy under PGD at ``at[norm]`` is at most ``limits[norm]`` for every
    norm of ``at`` (Madry et al. 2018, sec. 4: a standard model misreads almost every digit).
    ``clean``: its clean accuracy; ``n``: the test examples; ``steps``: PGD's steps (for the text)."""
    acc = {norm: accuracy_at(curves[norm][model], eps) for norm, eps in at.items()}
    parts = ", ".join(f"{acc[norm]:.1%} at {threat(norm, eps)}" for norm, eps in at.items())
    return _verdict(
        f"{clean:.1%} clean; {parts} (PGD-{steps}, {n} digits)", all(acc[norm] <= limits[norm] for norm in at)
    )


def beyond_training_eps(curves: Curves, trained: dict[str, tuple[str, float]], *, steps: int) -> dict:
    """Return the verdict that each model of ``trained`` (name -> its training ``(norm, eps)``), attacked in its own
    norm, keeps less than half its accuracy at the training eps at the sweep's largest eps: robustness holds up to
    about the training eps and no further (Madry et al. 2018, sec. 5, Fig. 6)."""
    parts, held = [], True
    for name, (norm, eps) in trained.items():
        grid, acc = curves[norm][name]
        at, beyond = accuracy_at((grid, acc), eps), acc[-1]
        parts.append(f"{name}: {at:.1%} at its training ε, {beyond:.1%} at {threat(norm, grid[-1])}")
        held = held and beyond < at / 2
    return _verdict("; ".join(parts) + f" (PGD-{steps})", held)


def robust_gain(
    curves: Curves, trained: dict[str, tuple[str, float]], *, reference: str, min_gain: dict[str, float], steps: int
) -> dict:
    """Return the verdict that at its training ``(norm, eps)`` each model of ``trained`` beats the ``reference``
    model's accuracy under the same attack by at least ``min_gain[norm]`` (a fraction; the text
    gives percentage points)."""
    parts, held = [], True
    for k, (name, (norm, eps)) in enumerate(trained.items()):
        gain = accuracy_at(curves[norm][name], eps) - accuracy_at(curves[norm][reference], eps)
        parts.append(f"{100 * gain:+.1f}{' points' if k == 0 else ''} at {threat(norm, eps)}")
        held = held and gain >= min_gain[norm]
    return _verdict(f"robust minus {reference}: " + ", ".join(parts) + f" (PGD-{steps})", held)


# --- Adversarial training --------------------------------------------------------------------


def trained_well(histories: dict[str, list[dict]], *, min_clean: float, min_robust: float, n: int) -> dict:
    """Return the verdict on training histories (:func:`robustutils.train.fit`'s, name -> one dict per epoch
    with ``test_clean_acc`` and ``test_robust_acc``): after the last epoch every model has at least
    ``min_clean`` clean and ``min_robust`` robust accuracy, its robust accuracy above the first
    epoch's. ``n``: the test examples the histories were measured on (for the text)."""
    parts, held = [], True
    for name, history in histories.items():
        first, last = history[0], history[-1]
        parts.append(
            f"{name}: {last['test_clean_acc']:.1%} clean, {last['test_robust_acc']:.1%} PGD-20 "
            f"(epoch 1: {first['test_robust_acc']:.1%})"
        )
        held = held and (
            last["test_clean_acc"] >= min_clean
            and last["test_robust_acc"] >= min_robust
            and last["test_robust_acc"] > first["test_robust_acc"]
        )
    return _verdict("; ".join(parts) + f" on {n} digits", held)


def ramp_table(histories: dict[str, list[dict]]) -> str:
    """Return a Markdown table of training histories, a row per run and a column per epoch:
    "clean / PGD-20" test accuracy after that epoch."""
    epochs = max(len(h) for h in histories.values())
    rows = [
        {
            "run": name,
            **{row["epoch"]: f"{row['test_clean_acc']:.1%} / {row['test_robust_acc']:.1%}" for row in history},
        }
        for name, history in histories.items()
    ]
    columns = {"run": "run", **{k: f"epoch {k}: clean / PGD-20" for k in range(1, epochs + 1)}}
    return report.markdown_table(rows, columns)


def ramp_helps(ramped: list[dict], flat: list[dict]) -> dict:
    """Return the verdict that the run with the eps ramp (``ramped``, a training history) ends with a higher
    robust accuracy than the run at the full eps from the start (``flat``)."""
    a, b = ramped[-1], flat[-1]
    return _verdict(
        f"PGD-20 {a['test_robust_acc']:.1%} with the ramp, {b['test_robust_acc']:.1%} without "
        f"(clean {a['test_clean_acc']:.1%} and {b['test_clean_acc']:.1%})",
        a["test_robust_acc"] > b["test_robust_acc"],
    )


# --- Madry et al.'s result, reproduced ---------------------------------------------------------

#: The numbers of Madry et al.'s (2018, Table 1) MNIST ℓ∞ ε = 0.3 model as fractions, namely clean
#: accuracy, PGD-40 (one restart) and their strongest white-box attack, PGD-100 with 20 restarts; then
#: their released model's clean and worst-case accuracy under AutoAttack's standard version (Croce &
#: Hein 2020, the MNIST table of fra31/auto-attack's README).
MADRY_MNIST = {"clean": 0.988, "pgd-40": 0.932, "strongest": 0.893, "aa_clean": 0.9853, "aa_worst": 0.8850}


def _interval(p: float, n: int) -> float:
    """Half the width of the 95% normal-approximation interval of a fraction ``p`` of ``n`` examples."""
    return 1.96 * (p * (1 - p) / n) ** 0.5


def measure_headline(profile: str, *, device=None) -> dict:
    """Evaluate chapter 2's headline model (:data:`robustutils.registry.HEADLINE`, Madry et al.'s
    2018 MNIST ℓ∞ 0.3 setting) as far as the profile affords AutoAttack, training it when it is not
    in the cache.

    Our PGD (the profile's evaluation PGD) runs on the first ``headline_n_pgd`` test digits (all
    10,000 on ``ci``); the profile's whole suite (that PGD, then AutoAttack's attacks on the digits it
    left robust) on the first ``headline_n_autoattack`` of them. The worst case on all the PGD digits
    is estimated as PGD's accuracy there less the points AutoAttack took beyond PGD on the subset
    (at least 0).

    Returns a dict: ``name``, ``profile``, ``model_key`` (:func:`robustutils.zoo.key` of its
    recipe), ``eps``, ``pgd_name``, ``n_pgd``, ``clean`` and ``pgd`` (fractions on
    the ``n_pgd`` digits), ``n_autoattack``, ``subset`` (the suite's result on the subset,
    :func:`robustutils.zoo.robustness`), ``worst`` (its worst case), ``worst_ci`` (half the 95%
    interval of ``worst``), ``estimate`` (the estimated worst case on the ``n_pgd`` digits),
    ``train_s`` (seconds the model trained), ``device`` (where it trained), ``autoattack_s``
    (AutoAttack's seconds on the subset, ``None`` for a result cached before seconds were recorded)
    and ``autoattack_digits`` (the digits it attacked there), ``flags`` (AutoAttack's sanity-check
    warnings) and ``history`` (the model's training history). Raises ``ValueError`` when a size
    exceeds the 10,000 test digits."""
    cfg = profiles.config(profile, "advtrain")
    suite = profiles.config(profile, "eval")["suite"]
    eps, n_pgd, n_aa = registry.HEADLINE_EPS, cfg["headline_n_pgd"], cfg["headline_n_autoattack"]
    if n_aa > n_pgd:
        raise ValueError(f"headline_n_autoattack ({n_aa}) is a subset of headline_n_pgd ({n_pgd}): give at most that")
    pgd_name = independent.pgd_key(suite["pgd_steps"], suite["pgd_restarts"])
    every = zoo.eval_attacks(profile, "linf", eps)
    _, meta = zoo.get(registry.HEADLINE, profile, device=device)
    on_all = zoo.robustness(
        registry.HEADLINE, profile, attacks_by_name={pgd_name: every[pgd_name]}, n_test=n_pgd, device=device
    )
    subset = zoo.robustness(registry.HEADLINE, profile, attacks_by_name=every, n_test=n_aa, device=device)
    pgd, worst = on_all["robust_acc"][pgd_name], subset["worst_acc"]
    later = [name for name in subset["robust_acc"] if name != pgd_name]
    seconds = subset.get("seconds")
    return {
        "name": registry.HEADLINE,
        "profile": profile,
        "model_key": zoo.key(registry.recipe(registry.HEADLINE, profile)),
        "eps": eps,
        "pgd_name": pgd_name,
        "n_pgd": on_all["n"],
        "clean": on_all["clean_acc"],
        "pgd": pgd,
        "n_autoattack": subset["n"],
        "subset": subset,
        "worst": worst,
        "worst_ci": _interval(worst, subset["n"]),
        "estimate": max(0.0, pgd - (subset["robust_acc"][pgd_name] - worst)),
        "train_s": meta["train_time_s"],
        "device": meta["device"],
        "autoattack_s": None if seconds is None else sum(seconds[name] for name in later),
        "autoattack_digits": subset.get("attacked", {}).get(later[0]) if later else 0,
        "flags": list(dict.fromkeys(on_all["flags"] + subset["flags"])),
        "history": meta["history"],
    }


def _on_every_digit(result: dict) -> bool:
    """Whether AutoAttack saw every digit PGD did (then the worst case needs no estimate)."""
    return result["n_autoattack"] == result["n_pgd"]


def headline_verdict(result: dict, *, min_clean: float, min_worst: float) -> dict:
    """Return the verdict on :func:`measure_headline`'s ``result``: at least ``min_clean`` clean accuracy on
    the PGD digits, and at least ``min_worst`` both as the worst case on the AutoAttack subset and as
    the estimate of the worst case on all the PGD digits (fractions)."""
    measured = (
        f"{result['clean']:.1%} clean and {result['pgd']:.1%} under {result['pgd_name'].upper()} on "
        f"{result['n_pgd']:,} digits; worst case {result['worst']:.1%} ± {result['worst_ci']:.1%} on "
        + (
            f"all {result['n_pgd']:,}"
            if _on_every_digit(result)
            else f"the first {result['n_autoattack']:,}, about {result['estimate']:.1%} on all {result['n_pgd']:,}"
        )
    )
    if result.get("machine"):
        measured += f" (make bench record of {result['machine']['date']})"
    held = result["clean"] >= min_clean and min(result["worst"], result["estimate"]) >= min_worst
    return _verdict(measured, held)


def headline_table(result: dict) -> str:
    """Return the Markdown table of :func:`measure_headline` (or of its record) beside Madry et al.'s
    Table 1 (:data:`MADRY_MNIST`)."""
    pgd, n_aa = result["pgd_name"].upper(), result["n_autoattack"]
    subset = result["subset"]
    columns = {"what": "model", "n": "test digits", "clean": "clean", "pgd": pgd, "worst": "worst case"}
    rows = [
        {
            "what": "Madry et al. 2018, Table 1",
            "n": "10,000",
            "clean": MADRY_MNIST["clean"],
            "pgd": MADRY_MNIST["pgd-40"],
            "worst": f"{MADRY_MNIST['strongest']:.1%} (PGD-100, 20 restarts)",
        },
        {
            "what": "their released model, AutoAttack (Croce & Hein 2020)",
            "n": "10,000",
            "clean": f"{MADRY_MNIST['aa_clean']:.2%}",
            "worst": f"{MADRY_MNIST['aa_worst']:.2%} (standard version)",
        },
    ]
    on_subset = {"n": f"{n_aa:,}", "clean": subset["clean_acc"], "pgd": subset["robust_acc"][result["pgd_name"]]}
    if _on_every_digit(result):
        what = f"this book, all {n_aa:,} digits (AutoAttack after {pgd})"
        rows.append({"what": what, **on_subset, "worst": f"{result['worst']:.2%} ± {result['worst_ci']:.1%}"})
        return report.markdown_table(rows, columns, {"clean": ".2%", "pgd": ".2%"})
    rows += [
        {
            "what": f"this book, all {result['n_pgd']:,} digits",
            "n": f"{result['n_pgd']:,}",
            "clean": result["clean"],
            "pgd": result["pgd"],
            "worst": f"about {result['estimate']:.1%} (estimated from the subset below)",
        },
        {
            "what": f"this book, the first {n_aa:,} (AutoAttack)",
            **on_subset,
            "worst": f"{result['worst']:.1%} ± {result['worst_ci']:.1%}",
        },
    ]
    return report.markdown_table(rows, columns, {"clean": ".1%", "pgd": ".1%"})


def headline_report(result: dict, suite: dict) -> str:
    """Return the lines under :func:`headline_table`: what AutoAttack ran
    (:func:`robustutils.report.autoattack_note`), its sanity-check flags, how long the model trained,
    how long AutoAttack took, and, when it saw a subset only, what every digit PGD left robust would
    cost at the rate measured there (``suite``: the profile's evaluation suite)."""
    flagged = {"model": "the headline model", "threat": threat("linf", result["eps"]), "flags": result["flags"]}
    lines = [report.autoattack_note(suite, "digits"), report.flag_report([flagged]), _headline_cost(result, suite)]
    return "\n".join(lines)


def _headline_cost(result: dict, suite: dict) -> str:
    aa = independent.describe(suite["autoattack"])
    where = result.get("machine")
    trained = f"The model trained in {result['train_s']:.0f} s ({result['device']})."
    if where:
        trained = (
            f"Measured by `make bench` (book/perf/headline-cpu.json) on {where['date']}, commit {where['commit']}, "
            f"{where['cpu_cores']} cores of an {where['cpu']}, torch {where['torch']}, not by this build. {trained}"
        )
    if result["autoattack_s"] is None or not result["autoattack_digits"]:
        return trained
    per_digit = result["autoattack_s"] / result["autoattack_digits"]
    left = result["pgd"] * result["n_pgd"]
    if _on_every_digit(result):
        return (
            f"{trained} {aa} took {result['autoattack_s']:.0f} s for the {result['autoattack_digits']:,} digits "
            f"{result['pgd_name'].upper()} left robust among all {result['n_pgd']:,}, {per_digit:.2f} s a digit."
        )
    return (
        f"{trained} {aa} took {result['autoattack_s']:.0f} s for the {result['autoattack_digits']:,} digits "
        f"{result['pgd_name'].upper()} left robust among the first {result['n_autoattack']:,}, "
        f"{per_digit:.2f} s a digit: the {left:,.0f} it left robust among all {result['n_pgd']:,} would take "
        f"about {per_digit * left / 60:.0f} minutes here."
    )


# --- Carlini et al. section 4: an independent attack ------------------------------------------


def robustness_rows(
    profile: str, threats: list[tuple[str, str, float]], *, tolerance_pp: float = TOLERANCE_PP, device=None
) -> list[dict]:
    """Return one row per ``(registry name, norm, eps)`` of ``threats``: the model evaluated by
    :func:`robustutils.zoo.robustness` at the profile's attacks (our PGD, then AutoAttack) on the
    profile's ``n_test`` test examples (cached).

    A row (:func:`robustutils.report.robustness_row`) has ``model`` (a short label), ``threat``
    (:func:`threat`), ``clean``, each attack's robust accuracy by its name, ``worst`` (the
    per-example worst case), ``gap`` (how far our PGD overestimates the worst case, percentage
    points) and ``verdict``: ``"ok"`` or, when ``gap`` exceeds ``tolerance_pp``, a finding.

    The caller's random state is left as it was, whether the evaluations come from the cache or
    run now (:func:`robustutils.zoo.robustness` keeps it)."""
    suite = profiles.config(profile, "eval")["suite"]
    pgd_name = independent.pgd_key(suite["pgd_steps"], suite["pgd_restarts"])
    rows = []
    for name, norm, eps in threats:
        result = zoo.robustness(name, profile, at=(norm, eps), device=device)
        row = report.robustness_row(zoo.label(registry.recipe(name, profile)), threat(norm, eps), result, pgd_name)
        rows.append({**row, "verdict": "ok" if row["gap"] <= tolerance_pp else "PGD overestimates: finding"})
    return rows


def row_at(rows: list[dict], model: str, norm: str, eps: float) -> dict:
    """Return the row of :func:`robustness_rows` for ``model`` (its short label) at ``(norm, eps)``
    (pixel units). Raises ``ValueError`` listing the rows' models and threats when none matches."""
    wanted = threat(norm, eps)
    for row in rows:
        if row["model"] == model and row["threat"] == wanted:
            return row
    have = ", ".join(f"{r['model']} at {r['threat']}" for r in rows)
    raise ValueError(f"no row for {model} at {wanted}: the rows hold {have}; evaluate it with robustness_rows")


def robustness_table(rows: list[dict], suite: dict) -> str:
    """Return the Markdown table of :func:`robustness_rows`; ``suite`` is the profile's evaluation
    suite (``profiles.config(profile, "eval")["suite"]``), which names the columns
    (:func:`robustutils.report.robustness_columns`), with the verdict last."""
    columns, formats = report.robustness_columns(suite)
    return report.markdown_table(rows, columns | {"verdict": "verdict"}, formats)


def overestimate_report(rows: list[dict], suite: dict, *, tolerance_pp: float = TOLERANCE_PP) -> str:
    """Return a few short lines on :func:`robustness_rows`: the largest overestimate of our PGD,
    then one line per finding (a gap above ``tolerance_pp``) or one saying there is none."""
    pgd_name = independent.pgd_key(suite["pgd_steps"], suite["pgd_restarts"])
    lines = [f"Largest PGD overestimate: {max(r['gap'] for r in rows):.1f} percentage points."]
    findings = [r for r in rows if r["gap"] > tolerance_pp]
    lines += [
        f"Finding: {r['model']} at {r['threat']}: {pgd_name.upper()} {r[pgd_name]:.1%}, "
        f"worst case {r['worst']:.1%} ({r['gap']:.1f} pp lower)."
        for r in findings
    ]
    if not findings:
        lines.append(f"PGD agrees with AutoAttack within {tolerance_pp:g} points on every model.")
    return "\n".join(lines)


# --- Carlini et al. section 4: attack strength and unbounded attacks --------------------------


def strength_table(rows: list[dict], eps: float) -> str:
    """Return the Markdown table of :func:`robustutils.evaluate.attack_strength`'s rows at ``eps``."""
    return report.markdown_table(
        rows,
        {"attack": "attack", "step_size": "step size", "robust_acc": f"accuracy at ε {eps:g}"},
        {"step_size": ".4f", "robust_acc": ".1%"},
    )


def by_attack(rows: list[dict]) -> dict[str, float]:
    """Return :func:`robustutils.evaluate.attack_strength`'s rows as ``{attack name: robust accuracy}``."""
    return {r["attack"]: r["robust_acc"] for r in rows}


def pgd_converged(
    rows: list[dict],
    *,
    eps: float,
    norm: str = "linf",
    max_drop_steps: float,
    max_drop_restarts: float,
    worst_case: dict | None = None,
    max_gap_pp: float | None = None,
) -> dict:
    """Return the verdict on :func:`robustutils.evaluate.attack_strength`'s rows: the attack with the most
    steps and the one with the most restarts lower PGD-10's robust accuracy by at most
    ``max_drop_steps`` and ``max_drop_restarts`` (fractions): PGD has converged (Madry et al. 2018,
    sec. 3 and Table 1).

    PGD settling on a value does not show that the value is the worst case, so an independent attack
    can judge it too: ``worst_case``, the row of :func:`robustness_rows` for the same model at the same
    ``(norm, eps)`` (:func:`row_at`), must then show our PGD at most ``max_gap_pp`` percentage points
    above the worst case over PGD and AutoAttack (its ``gap``; Carlini et al. 2019, sec. 4).

    Raises ``ValueError`` when no row restarts (give ``restarts`` above 1), when only one of
    ``worst_case`` and ``max_gap_pp`` is given, or when ``worst_case`` is at another threat than
    ``(norm, eps)``."""
    if (worst_case is None) != (max_gap_pp is None):
        raise ValueError("give worst_case (a robustness_rows row) and max_gap_pp together, or neither")
    acc = by_attack(rows)
    most_steps = max(
        (r for r in rows if r["attack"].startswith("PGD-") and "," not in r["attack"]), key=lambda r: r["steps"]
    )["attack"]
    restarted = [r for r in rows if r["restarts"] > 1]
    if not restarted:
        raise ValueError("the rows have no attack with restarts: give attack_strength restarts above 1")
    restarted = max(restarted, key=lambda r: r["restarts"])["attack"]
    held = acc["PGD-10"] - acc[most_steps] <= max_drop_steps and acc["PGD-10"] - acc[restarted] <= max_drop_restarts
    measured = (
        f"PGD-10 {acc['PGD-10']:.1%}, {most_steps} {acc[most_steps]:.1%}, {restarted} {acc[restarted]:.1%} "
        f"at {threat(norm, eps)}"
    )
    if worst_case is not None:
        if worst_case["threat"] != threat(norm, eps):
            raise ValueError(
                f"worst_case is at {worst_case['threat']}, the strength rows at {threat(norm, eps)}: "
                "pass the robustness row of the same threat (row_at)"
            )
        pgd_name = next((k for k in worst_case if k.startswith("pgd-")), None)
        if pgd_name is None:
            raise ValueError("worst_case has no PGD column: pass a row of robustness_rows")
        held = held and worst_case["gap"] <= max_gap_pp
        measured += (
            f"; robustness table: {pgd_name.upper()} {worst_case[pgd_name]:.1%}, worst case with AutoAttack "
            f"{worst_case['worst']:.1%} ({worst_case['gap']:.1f} pp lower)"
        )
    return _verdict(measured, held)


def unbounded(
    models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, *, steps: int, large: dict[str, float]
) -> list[dict]:
    """Return robust accuracy under PGD-``steps`` at a radius ``large[norm]`` (pixel units) where
    any digit can be redrawn, model by model and norm by norm: rows ``{"model", "threat",
    "robust_acc"}``. Accuracy that stays high there proves the attack broken (Carlini et al. 2019,
    sec. 4). ``x`` [N, ...] in [0, 1] and ``y`` [N] on the models' device."""
    return [
        {
            "model": name,
            "threat": threat(norm, eps),
            "robust_acc": evaluate.eps_sweep(model, x, y, [eps], norm=norm, steps=steps)[0],
        }
        for name, model in models.items()
        for norm, eps in large.items()
    ]


def unbounded_table(rows: list[dict], *, steps: int) -> str:
    """Return the Markdown table of :func:`unbounded`'s rows (``steps``: PGD's, for the header)."""
    columns = {"model": "model", "threat": "attack", "robust_acc": f"accuracy under PGD-{steps}"}
    return report.markdown_table(rows, columns, {"robust_acc": ".1%"})


def unbounded_verdict(rows: list[dict], *, max_acc: float) -> dict:
    """Return the verdict on :func:`unbounded`'s rows: every accuracy is at most ``max_acc``."""
    worst = max(rows, key=lambda r: r["robust_acc"])
    return _verdict(
        f"at most {worst['robust_acc']:.1%} ({worst['model']} at {worst['threat']})",
        all(r["robust_acc"] <= max_acc for r in rows),
    )
