"""Tests for robustutils.toy (Tsipras et al. section 2.1): closed forms against simulation, exact adversaries."""

import itertools
import math

import matplotlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from robustutils import toy

matplotlib.use("Agg")

P = 0.95


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def close(estimate: float, exact: float, n: int) -> bool:
    """True when a Monte Carlo fraction over ``n`` samples is within the chapter's tolerance of ``exact``."""
    return abs(estimate - exact) <= toy.mc_tolerance(exact, n)


# --- the distribution ----------------------------------------------------------------------------


def test_sample_shapes_labels_and_values():
    d, eta, n = 7, 0.4, 4000
    x, y = toy.sample(n, d, eta, generator=gen())
    assert x.shape == (n, d + 1) and y.shape == (n,)
    assert x.dtype == y.dtype == torch.float32
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    assert set(x[:, 0].unique().tolist()) == {-1.0, 1.0}
    assert close((x[:, 0] == y).float().mean().item(), P, n)  # x1 agrees with y with probability p
    weak = y[:, None] * x[:, 1:]  # y * x_i ~ N(eta, 1)
    assert abs(weak.mean().item() - eta) < 5 / math.sqrt(n * d)
    assert abs(weak.std().item() - 1) < 0.05


def test_same_seed_same_numbers_and_other_seed_other_numbers():
    a, b, c = (toy.sample(100, 5, 0.3, generator=gen(s)) for s in (1, 1, 2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    fits = [toy.fit_linear(*a, eps=0.6, steps=20, generator=gen(s)) for s in (3, 3)]
    assert torch.equal(fits[0][0], fits[1][0]) and torch.equal(fits[0][1], fits[1][1])


def test_eta_for_is_c_over_sqrt_d():
    assert toy.eta_for(100) == pytest.approx(0.3)
    assert toy.eta_for(16, c=4.0) == pytest.approx(1.0)


# --- closed forms against simulation -------------------------------------------------------------


@pytest.mark.parametrize("d, eta", [(1, 0.5), (25, 0.1), (100, 0.3), (400, 0.05)])
def test_f_avg_accuracy_and_robust_accuracy_match_closed_forms(d, eta):
    n = 20_000
    std, rob = toy.avg_monte_carlo(n, d, eta, generator=gen(d))
    assert close(std, toy.avg_accuracy(d, eta), n)
    assert close(rob, toy.avg_robust_accuracy(d, eta), n)


def test_f_avg_closed_forms_are_phi_of_eta_sqrt_d():
    assert toy.avg_accuracy(100, 0.3) == pytest.approx(0.998650, abs=1e-6)  # Phi(3)
    assert toy.avg_robust_accuracy(100, 0.3) == pytest.approx(0.001350, abs=1e-6)  # Phi(-3)
    assert toy.avg_robust_accuracy(100, 0.3, eps=0.3) == pytest.approx(0.5)  # mean shifted to 0


def test_f_robust_has_accuracy_p_clean_and_under_attack():
    n, eta = 20_000, 0.3
    x, y = toy.sample(n, 50, eta, P, generator=gen())
    clean = toy.accuracy(toy.f_robust(x), y)
    assert close(clean, P, n)
    assert toy.accuracy(toy.f_robust(toy.adversary(x, y, eta)), y) == clean
    w, b = toy.robust_weights(50)
    assert toy.robust_accuracy(w, b, x, y, eps=2 * eta) == clean  # the worst case cannot flip x1 while eps < 1
    assert toy.linear_accuracy(w, b, eta, P, eps=2 * eta) == pytest.approx(P)


def test_bound_is_tight_at_delta_one_minus_p():
    for p in (0.6, 0.9, 0.95, 0.99):
        assert toy.robust_accuracy_bound(1 - p, p) == pytest.approx(p)
    assert toy.robust_accuracy_bound(0.01, 0.95) == pytest.approx(0.19)
    assert toy.robust_accuracy_bound(0.0) == 0.0 and toy.robust_accuracy_bound(0.5) == 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=6, max_size=6), st.floats(-2, 2), st.floats(0.05, 0.8), st.floats(0.55, 0.99)
)
def test_every_linear_classifier_is_under_the_theorem_2_1_bound(weights, bias, eta, p):
    w = torch.tensor(weights, dtype=torch.float64)
    standard = toy.linear_accuracy(w, bias, eta, p)
    robust = toy.linear_accuracy(w, bias, eta, p, eps=2 * eta)
    assert robust <= toy.robust_accuracy_bound(1 - standard, p) + 1e-9


def test_linear_accuracy_matches_monte_carlo_and_f_avg():
    d, eta, n = 20, 0.3, 20_000
    w = torch.randn(d + 1, generator=gen(5)) * 0.3 + torch.cat([torch.tensor([1.0]), torch.full((d,), 0.2)])
    x, y = toy.sample(n, d, eta, generator=gen(6))
    for eps in (0.0, 0.1, 2 * eta):
        assert close(toy.robust_accuracy(w, 0.2, x, y, eps), toy.linear_accuracy(w, 0.2, eta, P, eps), n)
    assert toy.linear_accuracy(*toy.averaging_weights(d), eta) == pytest.approx(toy.avg_accuracy(d, eta))
    assert toy.linear_accuracy(*toy.averaging_weights(d), eta, eps=2 * eta) == pytest.approx(
        toy.avg_robust_accuracy(d, eta)
    )


def test_mixture_is_f_robust_at_q0_f_avg_at_q1_and_mixes_linearly():
    d, eta, n = 100, 0.3, 20_000
    x, y = toy.sample(n, d, eta, generator=gen())
    assert torch.equal(toy.mixture_predict(x, 0.0, gen()), toy.f_robust(x))
    assert torch.equal(toy.mixture_predict(x, 1.0, gen()), toy.f_avg(x))
    r = toy.mixture_report(0.5, x, y, eta, P, gen(1))
    assert r["standard_exact"] == pytest.approx((toy.avg_accuracy(d, eta) + P) / 2)
    assert r["robust_exact"] == pytest.approx((toy.avg_robust_accuracy(d, eta) + P) / 2)
    assert close(r["standard"], r["standard_exact"], n) and close(r["robust"], r["robust_exact"], n)


# --- the adversaries -------------------------------------------------------------------------------


def test_adversary_moves_every_weak_feature_by_exactly_2eta_and_leaves_x1():
    eta = 0.3
    x, y = toy.sample(200, 10, eta, generator=gen())
    delta = toy.adversary(x, y, eta) - x
    assert torch.equal(delta[:, 0], torch.zeros(200))
    assert torch.allclose(delta[:, 1:], -2 * eta * y[:, None].expand(-1, 10), atol=1e-6)
    assert delta.abs().amax().item() == pytest.approx(2 * eta, abs=1e-6)
    assert torch.equal(x, toy.sample(200, 10, eta, generator=gen())[0])  # the input is not modified


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-2, 2), min_size=4, max_size=4), st.floats(-1, 1), st.floats(0, 1.5), st.integers(0, 2**31 - 1)
)
def test_linear_robust_margin_is_the_brute_force_worst_case(weights, bias, eps, seed):
    """For d = 3 the l_inf ball has 16 vertices; a linear score attains its minimum at one of them."""
    w = torch.tensor(weights, dtype=torch.float64)
    x, y = toy.sample(8, 3, 0.3, generator=gen(seed))
    x = x.double()
    y = y.double()
    vertices = torch.tensor(list(itertools.product([-eps, eps], repeat=4)), dtype=torch.float64)
    brute = torch.stack([y * ((x + v) @ w + bias) for v in vertices]).amin(dim=0)
    margin = toy.linear_robust_margin(w, bias, x, y, eps)
    assert torch.allclose(margin, brute, atol=1e-9)
    attacked = toy.linear_attack(w, x, y, eps)
    assert (attacked - x).abs().amax().item() <= eps + 1e-12
    assert torch.allclose(y * (attacked @ w + bias), margin, atol=1e-9)


# --- Theorem 2.2 -----------------------------------------------------------------------------------


def test_standard_training_is_accurate_and_brittle_adversarial_training_is_robust():
    d = 50
    eta = toy.eta_for(d)
    x, y = toy.sample(2000, d, eta, generator=gen())
    w_std, b_std = toy.fit_linear(x, y, eps=0.0, steps=200, generator=gen(1))
    w_adv, b_adv = toy.fit_linear(x, y, eps=2 * eta, steps=200, generator=gen(1))
    assert toy.linear_accuracy(w_std, b_std, eta) > 0.99
    assert toy.linear_accuracy(w_std, b_std, eta, eps=2 * eta) < 0.01
    assert toy.linear_accuracy(w_adv, b_adv, eta) == pytest.approx(P, abs=0.005)
    assert toy.linear_accuracy(w_adv, b_adv, eta, eps=2 * eta) == pytest.approx(P, abs=0.005)
    assert w_std[0].abs() / w_std.abs().sum() < 0.1 < 0.9 < w_adv[0].abs() / w_adv.abs().sum()


# --- tolerances and bad input ----------------------------------------------------------------------


def test_mc_tolerance_shrinks_like_one_over_sqrt_n():
    assert toy.mc_tolerance(0.5, 100) == pytest.approx(5 * 0.05 + 0.05)
    assert toy.mc_tolerance(0.5, 10_000) < toy.mc_tolerance(0.5, 100) / 9
    assert toy.mc_tolerance(0.0, 1000) == pytest.approx(0.005)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: toy.sample(10, 0, 0.3), "d"),
        (lambda: toy.sample(10, 2.5, 0.3), "d"),
        (lambda: toy.sample(10, 5, 0.3, p=0.5), "p"),
        (lambda: toy.sample(10, 5, 0.3, p=1.0), "p"),
        (lambda: toy.sample(10, 5, 0.3, p=0.2), "p"),
        (lambda: toy.sample(0, 5, 0.3), "n"),
        (lambda: toy.sample(10, 5, -0.1), "eta"),
        (lambda: toy.eta_for(0), "d"),
        (lambda: toy.avg_accuracy(0, 0.3), "d"),
        (lambda: toy.avg_robust_accuracy(10, 0.3, eps=-0.1), "eps"),
        (lambda: toy.adversary(torch.zeros(2, 3), torch.ones(2), -0.3), "eta"),
        (lambda: toy.linear_robust_margin(torch.ones(3), 0.0, torch.zeros(2, 3), torch.ones(2), -0.1), "eps"),
        (lambda: toy.linear_attack(torch.ones(3), torch.zeros(2, 3), torch.ones(2), -0.1), "eps"),
        (lambda: toy.linear_accuracy(torch.ones(3), 0.0, 0.3, p=1.5), "p"),
        (lambda: toy.robust_accuracy_bound(0.1, p=0.4), "p"),
        (lambda: toy.robust_accuracy_bound(1.5), "delta"),
        (lambda: toy.mixture_predict(torch.zeros(2, 3), 1.5), "q"),
        (lambda: toy.fit_linear(torch.zeros(2, 3), torch.ones(2), eps=-0.1), "eps"),
        (lambda: toy.mc_tolerance(0.5, 0), "n"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=rf"^{message} \("):
        call()


# --- plots -----------------------------------------------------------------------------------------


def test_toy_plots_return_figures():
    from robustutils import plots

    mc = {1: (0.6, 0.4), 100: (0.9, 0.1)}
    figs = [
        plots.avg_sweeps(mc, 0.1, {0.1: (0.8, 0.2), 0.3: (0.99, 0.01)}, 100),
        plots.tradeoff({"f": {"standard": 0.99, "robust": 0.01}}),
        plots.weights({"a": torch.ones(5), "b": torch.tensor([1.0, 0, 0, 0, 0])}),
    ]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[0].axes) == 2 and len(figs[2].axes) == 2


# --- the chapter's bookkeeping and verdicts -----------------------------------------------------------


def test_avg_sweep_misses_finds_only_the_points_that_disagree():
    d, eta, n = 100, 0.3, 20_000
    by_d = {k: toy.avg_monte_carlo(n, k, 0.1, generator=gen(k)) for k in (10, 1000)}
    by_eta = {e: toy.avg_monte_carlo(n, d, e, generator=gen(7)) for e in (0.1, eta)}
    assert toy.avg_sweep_misses(by_d, 0.1, by_eta, d, n) == []
    by_eta[eta] = (0.5, by_eta[eta][1])  # a standard accuracy far from Phi(3)
    assert toy.avg_sweep_misses(by_d, 0.1, by_eta, d, n) == [(d, eta)]


@pytest.fixture(scope="module")
def chapter_run():
    """The chapter's section 2 at a small size: two trained classifiers and every report."""
    d = 50
    eta = toy.eta_for(d)
    x, y = toy.sample(2000, d, eta, generator=gen())
    w_std, b_std = toy.fit_linear(x, y, eps=0.0, steps=200, generator=gen(1))
    w_adv, b_adv = toy.fit_linear(x, y, eps=2 * eta, steps=200, generator=gen(1))
    x_test, y_test = toy.sample(20_000, d, eta, generator=gen(2))
    trained = {"linear, standard training": (w_std, b_std), "linear, adversarial training": (w_adv, b_adv)}
    reports = toy.classifier_reports(trained, x_test, y_test, eta, P, (0.25, 0.5), gen(3))
    return {"d": d, "eta": eta, "n": len(y_test), "w_std": w_std, "w_adv": w_adv, "reports": reports}


def test_classifier_reports_are_the_named_classifiers_in_order(chapter_run):
    reports = chapter_run["reports"]
    assert list(reports) == [
        "f_avg",
        "f_robust = sign(x1)",
        "linear, standard training",
        "linear, adversarial training",
        "mixture, q = 0.25",
        "mixture, q = 0.5",
    ]
    d, eta = chapter_run["d"], chapter_run["eta"]
    assert reports["f_avg"]["standard_exact"] == pytest.approx(toy.avg_accuracy(d, eta))
    assert reports["f_robust = sign(x1)"]["robust_exact"] == pytest.approx(P)
    table = toy.reports_table(reports, P).splitlines()
    assert len(table) == 2 + len(reports) and table[0].count("|") == 7
    assert "| f_robust = sign(x1) | " in table[3] and table[3].endswith("| 0.9500 |")


def test_monte_carlo_misses_and_bound_gaps():
    n = 10_000
    good = {"standard": 0.95, "robust": 0.95, "standard_exact": 0.95, "robust_exact": 0.95}
    assert toy.monte_carlo_misses({"a": good}, n) == []
    assert toy.monte_carlo_misses({"a": good, "b": {**good, "robust": 0.80}}, n) == ["b"]
    over, under = toy.bound_gaps({"a": good}, n, P)["a"]
    assert over == pytest.approx(0.0, abs=1e-12) and under  # on the bound: f_robust
    beyond = {"standard": 0.99, "robust": 0.5, "standard_exact": 0.99, "robust_exact": 0.5}  # 19 * 0.01 = 0.19
    over, under = toy.bound_gaps({"x": beyond}, n, P)["x"]
    assert over == pytest.approx(0.31) and not under


def test_weight_share_accurate_and_brittle_and_matches_p():
    assert toy.weight_share(torch.tensor([1.0, -1.0, 2.0])) == pytest.approx(0.25)
    brittle = {"standard": 0.995, "robust": 0.002, "standard_exact": 0.996, "robust_exact": 0.003}
    assert toy.accurate_and_brittle(brittle)
    assert not toy.accurate_and_brittle({**brittle, "robust_exact": 0.02})
    at_p = {"standard": 0.951, "robust": 0.949, "standard_exact": 0.95, "robust_exact": 0.95}
    assert toy.matches_p(at_p, P, 20_000)
    assert not toy.matches_p({**at_p, "robust_exact": 0.94}, P, 20_000)


def test_verdicts_hold_on_the_chapter_run_and_say_what_was_measured(chapter_run):
    r, n, eta, d = chapter_run["reports"], chapter_run["n"], chapter_run["eta"], chapter_run["d"]
    by_d = {k: toy.avg_monte_carlo(5000, k, 0.1, generator=gen(k)) for k in (10, 300)}
    by_eta = {e: toy.avg_monte_carlo(5000, d, e, generator=gen(9)) for e in (0.1, 0.3)}
    verdicts = [
        toy.avg_verdicts(by_d, 0.1, by_eta, d, eta, 5000),
        toy.theorem_2_1_verdicts(r, n, P),
        toy.theorem_2_2_verdicts(
            r["linear, standard training"],
            r["linear, adversarial training"],
            chapter_run["w_std"],
            chapter_run["w_adv"],
            eta,
            n,
            P,
        ),
    ]
    assert [set(v) for v in verdicts] == [
        {"sweep", "accurate_brittle"},
        {"monte_carlo", "bound", "unmoved", "tight"},
        {"standard", "adversarial", "feature"},
    ]
    for v in verdicts:
        for name, one in v.items():
            assert set(one) == {"measured", "held"} and one["held"] is True, (name, one)
    assert verdicts[0]["accurate_brittle"]["measured"].endswith("(closed form, d = 50, η = 3/√d)")
    assert verdicts[1]["bound"]["measured"].startswith("6 of 6 classifiers under the bound")
    assert "at η = 3/√d, logistic loss" in verdicts[2]["standard"]["measured"]


def test_verdicts_fail_when_the_claim_fails(chapter_run):
    r = dict(chapter_run["reports"])
    r["cheater"] = {"standard": 0.99, "robust": 0.9, "standard_exact": 0.99, "robust_exact": 0.9}
    assert not toy.theorem_2_1_verdicts(r, chapter_run["n"], P)["bound"]["held"]
    run = chapter_run
    swapped = toy.theorem_2_2_verdicts(
        r["linear, adversarial training"],
        r["linear, standard training"],
        run["w_adv"],
        run["w_std"],
        run["eta"],
        run["n"],
        P,
    )
    assert not any(v["held"] for v in swapped.values())


def test_compare_training_reports_both_trainings():
    d = 100  # eta = 0.3, eps = 0.6: at p = 0.85 the robust feature's average robust margin is positive
    eta = toy.eta_for(d)
    train, test = toy.sample(1000, d, eta, 0.85, gen()), toy.sample(5000, d, eta, 0.85, gen(1))
    out = toy.compare_training(train, test, eta, 0.85, 2 * eta, steps=200, generator=gen(2))
    assert set(out) == {"standard", "adversarial"}
    assert set(out["standard"]) == {"standard", "robust", "standard_exact", "robust_exact", "l1", "share"}
    assert out["standard"]["share"] < 0.1 < 0.9 < out["adversarial"]["share"]
    assert out["adversarial"]["robust_exact"] == pytest.approx(0.85, abs=0.01)
