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
@given(st.lists(st.floats(-3, 3), min_size=6, max_size=6), st.floats(-2, 2), st.floats(0.05, 0.8),
       st.floats(0.55, 0.99))
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
        toy.avg_robust_accuracy(d, eta))


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
@given(st.lists(st.floats(-2, 2), min_size=4, max_size=4), st.floats(-1, 1), st.floats(0, 1.5),
       st.integers(0, 2**31 - 1))
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


@pytest.mark.parametrize("call, message", [
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
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=rf"^{message} \("):
        call()


# --- plots -----------------------------------------------------------------------------------------

def test_toy_plots_return_figures():
    from robustutils import plots

    mc = {1: (0.6, 0.4), 100: (0.9, 0.1)}
    figs = [plots.avg_sweeps(mc, 0.1, {0.1: (0.8, 0.2), 0.3: (0.99, 0.01)}, 100),
            plots.tradeoff({"f": {"standard": 0.99, "robust": 0.01}}),
            plots.weights({"a": torch.ones(5), "b": torch.tensor([1.0, 0, 0, 0, 0])})]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[0].axes) == 2 and len(figs[2].axes) == 2
