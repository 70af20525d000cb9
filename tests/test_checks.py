"""The evaluation checks (Carlini et al. 2019, section 4) and chapter 2's tables and verdicts."""

import pytest
import torch

from robustutils import checks, evaluate, independent, profiles, registry


@pytest.fixture(scope="module")
def digits(mnist_eval):
    """The first 60 real test digits: enough to run every sweep in well under a second."""
    x, y = mnist_eval
    return x[:60], y[:60]


def curve_set():
    """Curves shaped like :func:`checks.sweep`'s: a brittle standard model and two robust ones."""
    return {
        "linf": {
            "standard": ([0.0, 0.1, 0.3, 0.4], [0.99, 0.6, 0.01, 0.0]),
            "linf 0.3": ([0.0, 0.1, 0.3, 0.4], [0.98, 0.95, 0.80, 0.10]),
        },
        "l2": {
            "standard": ([0.0, 1.0, 2.0, 4.0], [0.99, 0.7, 0.15, 0.0]),
            "l2 2": ([0.0, 1.0, 2.0, 4.0], [0.97, 0.9, 0.70, 0.02]),
        },
    }


def history(*pairs, eps=0.3):
    """A training history: one epoch per (clean, robust) pair."""
    return [{"epoch": k, "test_clean_acc": c, "test_robust_acc": r, "eps": eps} for k, (c, r) in enumerate(pairs, 1)]


def test_threat_names_the_norm_with_its_symbol_and_refuses_others():
    assert checks.threat("linf", 0.3) == "ℓ∞ 0.3" and checks.threat("l2", 2.0) == "ℓ2 2"
    with pytest.raises(ValueError, match="'linf' or 'l2'"):
        checks.threat("l1", 1.0)


def test_sweep_measures_every_model_at_every_eps_and_starts_at_clean_accuracy(tiny_model, digits):
    x, y = digits
    grids = {"linf": [0.0, 0.1, 0.3], "l2": [0.0, 1.0]}
    curves = checks.sweep({"a": tiny_model}, x, y, grids, steps=2)
    assert list(curves) == ["linf", "l2"]
    clean = evaluate.evaluate(tiny_model, x, y)["clean_acc"]
    for norm, grid in grids.items():
        eps, acc = curves[norm]["a"]
        assert eps == grid and len(acc) == len(grid)
        assert acc[0] == clean and all(0 <= a <= clean for a in acc)


def test_sweep_into_adds_models_to_the_same_curves(tiny_model, digits):
    curves = checks.sweep({"a": tiny_model}, *digits, {"linf": [0.0, 0.2]}, steps=1)
    same = checks.sweep({"b": tiny_model}, *digits, {"linf": [0.0, 0.2]}, steps=1, into=curves)
    assert same is curves and list(curves["linf"]) == ["a", "b"]


def test_accuracy_at_reads_the_grid_and_names_it_when_eps_is_missing():
    curve = ([0.0, 0.1, 0.3], [0.9, 0.5, 0.1])
    assert checks.accuracy_at(curve, 0.3) == 0.1
    with pytest.raises(ValueError, match=r"0.2 is not on the sweep's grid \[0.0, 0.1, 0.3\]"):
        checks.accuracy_at(curve, 0.2)


def test_sweep_table_has_one_table_per_norm_and_a_column_per_eps():
    text = checks.sweep_table(curve_set())
    tables = text.split("\n\n")
    assert len(tables) == 2
    assert tables[0].splitlines()[0] == "| model (ℓ∞ attack) | ε 0 | ε 0.1 | ε 0.3 | ε 0.4 |"
    assert "| linf 0.3 | 98.0% | 95.0% | 80.0% | 10.0% |" in tables[0]
    assert tables[1].splitlines()[0].startswith("| model (ℓ2 attack) | ε 0 | ε 1 |")


def test_brittle_holds_only_when_every_norm_is_under_its_limit():
    curves = curve_set()
    verdict = checks.brittle(
        curves, "standard", clean=0.99, at={"linf": 0.3, "l2": 2.0}, limits={"linf": 0.05, "l2": 0.20}, n=300, steps=10
    )
    assert verdict == {"measured": "99.0% clean; 1.0% at ℓ∞ 0.3, 15.0% at ℓ2 2 (PGD-10, 300 digits)", "held": True}
    assert not checks.brittle(
        curves, "standard", clean=0.99, at={"linf": 0.3, "l2": 2.0}, limits={"linf": 0.05, "l2": 0.10}, n=300, steps=10
    )["held"]


def test_beyond_training_eps_compares_the_largest_eps_with_half_the_training_eps_accuracy():
    curves = curve_set()
    trained = {"linf 0.3": ("linf", 0.3), "l2 2": ("l2", 2.0)}
    verdict = checks.beyond_training_eps(curves, trained, steps=10)
    assert verdict["held"] is True
    assert verdict["measured"] == (
        "linf 0.3: 80.0% at its training ε, 10.0% at ℓ∞ 0.4; l2 2: 70.0% at its training ε, 2.0% at ℓ2 4 (PGD-10)"
    )
    curves["linf"]["linf 0.3"][1][-1] = 0.5
    assert checks.beyond_training_eps(curves, trained, steps=10)["held"] is False


def test_robust_gain_measures_points_over_the_reference_model():
    trained = {"linf 0.3": ("linf", 0.3), "l2 2": ("l2", 2.0)}
    verdict = checks.robust_gain(
        curve_set(), trained, reference="standard", min_gain={"linf": 0.4, "l2": 0.3}, steps=10
    )
    assert verdict["measured"] == "robust minus standard: +79.0 points at ℓ∞ 0.3, +55.0 at ℓ2 2 (PGD-10)"
    assert verdict["held"] is True
    assert not checks.robust_gain(
        curve_set(), trained, reference="standard", min_gain={"linf": 0.4, "l2": 0.6}, steps=10
    )["held"]


def test_trained_well_needs_both_thresholds_and_a_rise_over_training():
    good = history((0.93, 0.30), (0.99, 0.77))
    verdict = checks.trained_well({"linf 0.3": good}, min_clean=0.9, min_robust=0.45, n=200)
    assert verdict == {"measured": "linf 0.3: 99.0% clean, 77.0% PGD-20 (epoch 1: 30.0%) on 200 digits", "held": True}
    falling = history((0.95, 0.80), (0.99, 0.77))
    assert not checks.trained_well({"a": good, "b": falling}, min_clean=0.9, min_robust=0.45, n=200)["held"]
    assert not checks.trained_well({"a": good}, min_clean=0.995, min_robust=0.45, n=200)["held"]


def test_ramp_table_and_verdict_compare_the_two_runs_epoch_by_epoch():
    ramp, flat = history((0.93, 0.30), (0.99, 0.775)), history((0.825, 0.345), (0.98, 0.675))
    lines = checks.ramp_table({"ramp": ramp, "flat": flat}).splitlines()
    assert lines[0] == "| run | epoch 1: clean / PGD-20 | epoch 2: clean / PGD-20 |"
    assert lines[3] == "| flat | 82.5% / 34.5% | 98.0% / 67.5% |"
    assert checks.ramp_helps(ramp, flat) == {
        "measured": "PGD-20 77.5% with the ramp, 67.5% without (clean 99.0% and 98.0%)",
        "held": True,
    }
    assert checks.ramp_helps(flat, ramp)["held"] is False


def robustness_row(model, gap_pp):
    return {
        "model": model,
        "threat": "ℓ∞ 0.3",
        "clean": 0.99,
        "pgd-40": 0.5 + gap_pp / 100,
        "aa-apgd-ce": 0.5,
        "aa-apgd-t": 0.5,
        "worst": 0.5,
        "gap": gap_pp,
        "verdict": "ok",
    }


def test_overestimate_report_lists_each_finding_or_says_there_is_none():
    suite = profiles.config("ci", "eval")["suite"]
    text = checks.overestimate_report([robustness_row("a", 0.5), robustness_row("b", 3.0)], suite)
    assert text.splitlines() == [
        "Largest PGD overestimate: 3.0 percentage points.",
        "Finding: b at ℓ∞ 0.3: PGD-40 53.0%, worst case 50.0% (3.0 pp lower).",
    ]
    assert "agrees" in checks.overestimate_report([robustness_row("a", 2.0)], suite).splitlines()[-1]


def test_robustness_rows_evaluate_registry_models_and_flag_an_overestimate(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_CACHE", str(tmp_path))
    state = torch.get_rng_state()
    rows = checks.robustness_rows(
        "smoke", [("mnist/standard", "linf", 0.1), ("mnist/standard", "l2", 1.0)], tolerance_pp=0.0, device="cpu"
    )
    assert torch.equal(torch.get_rng_state(), state), "training, loading and attacking must not move the caller's RNG"
    suite = profiles.config("smoke", "eval")["suite"]
    pgd = independent.pgd_key(suite["pgd_steps"], suite["pgd_restarts"])
    assert [(r["model"], r["threat"]) for r in rows] == [("standard", "ℓ∞ 0.1"), ("standard", "ℓ2 1")]
    for r in rows:  # a cascade: each column is at most the one to its left, the last is the worst case
        assert r["worst"] == r["aa-apgd-t"] <= r["aa-apgd-ce"] <= r[pgd] <= r["clean"]
        assert r["gap"] == pytest.approx(100 * (r[pgd] - r["worst"]))
        assert r["verdict"] == ("ok" if r["gap"] <= 0 else "PGD overestimates: finding")
    table = checks.robustness_table(rows, suite).splitlines()
    assert table[0] == (
        "| model | attack | clean | PGD-10 | + APGD-CE | + APGD-T = worst case | PGD − worst (pp) | verdict |"
    )
    assert len(table) == 2 + len(rows)
    assert independent.describe(suite["autoattack"]) == "AutoAttack APGD-CE, APGD-T (10 iterations, 3 target classes)"


def test_headline_evaluates_the_headline_model_and_estimates_its_worst_case(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTUTILS_CACHE", str(tmp_path))
    head = checks.measure_headline("smoke", device="cpu")
    cfg, suite = profiles.config("smoke", "advtrain"), profiles.config("smoke", "eval")["suite"]
    pgd, subset = head["pgd_name"], head["subset"]
    assert (head["name"], head["n_pgd"], head["n_autoattack"]) == (
        registry.HEADLINE,
        cfg["headline_n_pgd"],
        cfg["headline_n_autoattack"],
    )
    assert head["worst"] == subset["worst_acc"] <= subset["robust_acc"][pgd] <= subset["clean_acc"]
    assert head["pgd"] <= head["clean"]
    assert head["estimate"] == pytest.approx(max(0.0, head["pgd"] - (subset["robust_acc"][pgd] - head["worst"])))
    assert (
        head["autoattack_digits"] == subset["attacked"]["aa-apgd-ce"] == round(subset["n"] * subset["robust_acc"][pgd])
    )
    assert head["history"] and head["train_s"] > 0
    worst, n = head["worst"], head["n_autoattack"]
    assert head["worst_ci"] == pytest.approx(1.96 * (worst * (1 - worst) / n) ** 0.5)
    table = checks.headline_table(head).splitlines()
    assert len(table) == 6 and "Madry et al. 2018, Table 1" in table[2] and "98.8%" in table[2]
    assert "88.50%" in table[3] and f"{head['worst']:.1%} ±" in table[5]
    lines = checks.headline_report(head, suite)
    assert "pyautoattack" in lines and f"trained in {head['train_s']:.0f} s" in lines
    again = checks.measure_headline("smoke", device="cpu")  # from the cache: the same numbers
    assert {k: again[k] for k in ("clean", "pgd", "worst", "estimate")} == {
        k: head[k] for k in ("clean", "pgd", "worst", "estimate")
    }


def test_the_ci_headline_is_the_committed_make_bench_record_of_the_current_recipe():
    from robustutils import bench

    head = bench.headline_result("ci")
    assert head["machine"]["device"] == "cpu" and head["profile"] == "ci" and head["name"] == registry.HEADLINE
    assert head["n_pgd"] == 10_000, "Madry et al.'s numbers are on all 10,000 test digits"
    assert "make bench record of" in checks.headline_verdict(head, min_clean=0.985, min_worst=0.893)["measured"]
    assert "not by this build" in checks.headline_report(head, profiles.config("ci", "eval")["suite"])


def test_a_missing_or_stale_headline_record_is_refused_with_what_to_run(data_dir, tmp_path, monkeypatch):
    from robustutils import bench

    monkeypatch.setenv("ROBUSTUTILS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="make bench BENCH=headline"):
        bench.headline_result("ci", records=tmp_path)
    measured = checks.measure_headline("smoke", device="cpu")  # a real record, of the smoke recipe
    bench.save_record(
        {"benchmark": "headline", **measured, "profile": "ci"}, bench.machine(torch.device("cpu")), tmp_path
    )
    with pytest.raises(ValueError, match="another setting.*model_key.*rerun `make bench BENCH=headline`"):
        bench.headline_result("ci", records=tmp_path)


def test_headline_verdict_needs_clean_accuracy_and_both_worst_cases():
    head = {
        "clean": 0.99,
        "pgd": 0.94,
        "pgd_name": "pgd-40",
        "n_pgd": 10_000,
        "worst": 0.90,
        "worst_ci": 0.019,
        "n_autoattack": 1_000,
        "estimate": 0.905,
    }
    assert checks.headline_verdict(head, min_clean=0.985, min_worst=0.893)["held"]
    assert not checks.headline_verdict(head, min_clean=0.995, min_worst=0.893)["held"]
    assert not checks.headline_verdict({**head, "estimate": 0.89}, min_clean=0.985, min_worst=0.893)["held"]
    assert not checks.headline_verdict({**head, "worst": 0.89}, min_clean=0.985, min_worst=0.893)["held"]
    measured = checks.headline_verdict(head, min_clean=0.985, min_worst=0.893)["measured"]
    assert "99.0% clean" in measured and "worst case 90.0% ± 1.9% on the first 1,000" in measured


def test_the_headline_attacked_on_every_digit_is_reported_without_an_estimate():
    subset = {"n": 10_000, "clean_acc": 0.9892, "robust_acc": {"pgd-40": 0.9269, "aa-apgd-t": 0.9001}}
    head = {
        "clean": 0.9892,
        "pgd": 0.9269,
        "pgd_name": "pgd-40",
        "n_pgd": 10_000,
        "n_autoattack": 10_000,
        "subset": subset,
        "worst": 0.9001,
        "worst_ci": 0.0059,
        "estimate": 0.9001,
        "eps": 0.3,
        "train_s": 673.0,
        "device": "cpu",
        "autoattack_s": 3_000.0,
        "autoattack_digits": 9_269,
        "flags": [],
    }
    measured = checks.headline_verdict(head, min_clean=0.985, min_worst=0.893)["measured"]
    assert measured.endswith("worst case 90.0% ± 0.6% on all 10,000") and "about" not in measured
    table = checks.headline_table(head).splitlines()
    assert len(table) == 5 and "all 10,000 digits (AutoAttack after PGD-40)" in table[4] and "90.01% ±" in table[4]
    line = checks.headline_report(head, profiles.config("ci", "eval")["suite"]).splitlines()[-1]
    assert "took 3000 s for the 9,269 digits PGD-40 left robust among all 10,000, 0.32 s a digit." in line
    assert "would take" not in line


def test_strength_rows_feed_the_table_and_the_convergence_verdict(tiny_model, digits):
    rows = evaluate.attack_strength(tiny_model, *digits, eps=0.1, norm="linf", steps=[1, 10, 20], restarts=[1, 3])
    acc = checks.by_attack(rows)
    assert set(acc) >= {"FGSM", "PGD-10", "PGD-20", "PGD-10, 3 restarts"}
    assert "| attack | step size | accuracy at ε 0.1 |" in checks.strength_table(rows, 0.1)
    verdict = checks.pgd_converged(rows, eps=0.1, max_drop_steps=1.0, max_drop_restarts=1.0)
    assert verdict["held"] is True
    assert verdict["measured"] == (
        f"PGD-10 {acc['PGD-10']:.1%}, PGD-20 {acc['PGD-20']:.1%}, "
        f"PGD-10, 3 restarts {acc['PGD-10, 3 restarts']:.1%} at ℓ∞ 0.1"
    )


def test_pgd_converged_judges_the_drops_and_needs_restarts():
    rows = [
        {"attack": "FGSM", "steps": 1, "restarts": 1, "robust_acc": 0.9},
        {"attack": "PGD-10", "steps": 10, "restarts": 1, "robust_acc": 0.80},
        {"attack": "PGD-40", "steps": 40, "restarts": 1, "robust_acc": 0.74},
        {"attack": "PGD-10, step x4", "steps": 10, "restarts": 1, "robust_acc": 0.70},
        {"attack": "PGD-10, 5 restarts", "steps": 10, "restarts": 5, "robust_acc": 0.78},
    ]
    assert not checks.pgd_converged(rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03)["held"]
    assert checks.pgd_converged(rows, eps=0.3, max_drop_steps=0.07, max_drop_restarts=0.03)["held"]
    with pytest.raises(ValueError, match="restarts above 1"):
        checks.pgd_converged(rows[:4], eps=0.3, max_drop_steps=0.1, max_drop_restarts=0.1)


def _strength_rows():
    return [
        {"attack": "FGSM", "steps": 1, "restarts": 1, "robust_acc": 0.9},
        {"attack": "PGD-10", "steps": 10, "restarts": 1, "robust_acc": 0.80},
        {"attack": "PGD-40", "steps": 40, "restarts": 1, "robust_acc": 0.78},
        {"attack": "PGD-10, 5 restarts", "steps": 10, "restarts": 5, "robust_acc": 0.79},
    ]


def _robustness_row(model="ℓ∞ 0.3", threat="ℓ∞ 0.3", pgd=0.77, worst=0.743):
    return {
        "model": model,
        "threat": threat,
        "clean": 0.99,
        "pgd-40": pgd,
        "aa-apgd-ce": worst,
        "worst": worst,
        "gap": 100 * (pgd - worst),
        "flags": [],
        "verdict": "ok",
    }


def test_pgd_converged_is_judged_by_the_worst_case_of_the_independent_attack_too():
    rows, far = _strength_rows(), _robustness_row()
    alone = checks.pgd_converged(rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03)
    judged = checks.pgd_converged(
        rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03, worst_case=far, max_gap_pp=2.0
    )
    assert alone["held"] and not judged["held"], "PGD settled, but 2.7 points above the worst case: not converged"
    assert judged["measured"] == (
        alone["measured"] + "; robustness table: PGD-40 77.0%, worst case with AutoAttack 74.3% (2.7 pp lower)"
    )
    near = _robustness_row(worst=0.76)
    assert checks.pgd_converged(
        rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03, worst_case=near, max_gap_pp=2.0
    )["held"]
    steps_fail = checks.pgd_converged(
        rows, eps=0.3, max_drop_steps=0.01, max_drop_restarts=0.03, worst_case=near, max_gap_pp=2.0
    )
    assert not steps_fail["held"], "the strength study still counts when the worst case is near"


def test_pgd_converged_refuses_a_worst_case_of_another_threat_or_without_a_tolerance():
    rows = _strength_rows()
    with pytest.raises(ValueError, match="together"):
        checks.pgd_converged(rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03, worst_case=_robustness_row())
    with pytest.raises(ValueError, match="together"):
        checks.pgd_converged(rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03, max_gap_pp=2.0)
    with pytest.raises(ValueError, match="same threat"):
        checks.pgd_converged(
            rows,
            eps=0.3,
            max_drop_steps=0.05,
            max_drop_restarts=0.03,
            worst_case=_robustness_row(threat="ℓ2 2"),
            max_gap_pp=2.0,
        )
    no_pgd = {k: v for k, v in _robustness_row().items() if k != "pgd-40"}
    with pytest.raises(ValueError, match="no PGD column"):
        checks.pgd_converged(
            rows, eps=0.3, max_drop_steps=0.05, max_drop_restarts=0.03, worst_case=no_pgd, max_gap_pp=2.0
        )


def test_row_at_finds_a_model_at_a_threat_and_names_the_rows_it_has():
    rows = [_robustness_row(model="standard"), _robustness_row(), _robustness_row(model="ℓ2 2", threat="ℓ2 2")]
    assert checks.row_at(rows, "ℓ∞ 0.3", "linf", 0.3) is rows[1]
    assert checks.row_at(rows, "ℓ2 2", "l2", 2.0) is rows[2]
    with pytest.raises(
        ValueError, match=r"no row for ℓ2 2 at ℓ∞ 0.3: the rows hold standard at ℓ∞ 0.3, .*robustness_rows"
    ):
        checks.row_at(rows, "ℓ2 2", "linf", 0.3)


def test_unbounded_attacks_break_a_model_and_the_verdict_names_the_highest(tiny_model, digits):
    rows = checks.unbounded({"tiny": tiny_model}, *digits, steps=5, large={"linf": 0.5, "l2": 10.0})
    assert [(r["model"], r["threat"]) for r in rows] == [("tiny", "ℓ∞ 0.5"), ("tiny", "ℓ2 10")]
    assert all(r["robust_acc"] <= 0.15 for r in rows)
    assert "| tiny | ℓ2 10 |" in checks.unbounded_table(rows, steps=5)
    made = [{"model": "a", "threat": "ℓ∞ 0.5", "robust_acc": 0.0}, {"model": "b", "threat": "ℓ2 10", "robust_acc": 0.2}]
    assert checks.unbounded_verdict(made, max_acc=0.15) == {"measured": "at most 20.0% (b at ℓ2 10)", "held": False}
    assert checks.unbounded_verdict(made[:1], max_acc=0.15)["held"] is True
