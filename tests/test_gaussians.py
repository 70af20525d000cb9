"""Tests for robustutils.gaussians (Ilyas et al. 2019, section 4 and appendix E): the closed forms of
Theorems 1-3 against simulation and numerical optimisation, their limits, and the input checks."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from robustutils import gaussians, plots, toy

matplotlib.use("Agg")

MU = torch.tensor([2.0, 0.5], dtype=torch.float64)
VAR = torch.tensor([4.0, 0.0625], dtype=torch.float64)
SIGMA = torch.diag(VAR)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotated(eigenvalues, seed: int = 0) -> torch.Tensor:
    """A covariance with the given eigenvalues and random eigenvectors."""
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=gen(seed), dtype=torch.float64))
    return q @ torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64)) @ q.T


# --- the distribution and the ML fit -------------------------------------------------------------


def test_sample_has_the_distribution_of_eq_10():
    n, sigma = 40_000, rotated([3.0, 1.0, 0.2])
    mu = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    x, y = gaussians.sample(n, mu, sigma, gen())
    assert x.shape == (n, 3) and y.shape == (n,) and x.dtype == y.dtype == torch.float64
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    assert abs((y == 1).double().mean().item() - 0.5) <= toy.mc_tolerance(0.5, n)
    mu_hat, sigma_hat = gaussians.fit_ml(x, y)  # y x ~ N(mu, sigma)
    assert gaussians.ml_verdict(mu_hat, sigma_hat, mu, sigma, n)["held"]
    assert not gaussians.ml_verdict(mu_hat + 0.1, sigma_hat, mu, sigma, n)["held"]  # the check can fail


def test_same_generator_seed_same_sample():
    a, b, c = (gaussians.sample(50, MU, SIGMA, gen(s)) for s in (1, 1, 2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


def test_nll_is_the_gaussian_negative_log_likelihood():
    x, y = gaussians.sample(5, MU, SIGMA, gen())
    v = x - y[:, None] * MU
    expected = 0.5 * (2 * math.log(2 * math.pi) + torch.logdet(SIGMA) + (v**2 / VAR).sum(1))
    assert torch.allclose(gaussians.nll(x, y, MU, SIGMA), expected)


# --- Theorem 1 ---------------------------------------------------------------------------------------


def test_the_numerical_adversary_finds_lemma_1s_maximiser():
    sigma = rotated([2.0, 0.5, 0.1], seed=3)
    x, y = gaussians.sample(200, torch.ones(3, dtype=torch.float64), sigma, gen())
    C = 1.5 / 0.1
    closed = gaussians.lagrangian_perturbation(x, y, torch.ones(3), sigma, C)
    found = gaussians.lagrangian_attack(x, y, torch.ones(3), sigma, C)
    assert torch.allclose(found, closed, atol=1e-9)

    def penalised(delta):
        return gaussians.nll(x + delta, y, torch.ones(3), sigma) - C / 2 * delta.square().sum(1)

    for seed in range(5):  # no other perturbation does better
        other = closed + 0.05 * torch.randn(closed.shape, generator=gen(seed), dtype=torch.float64)
        assert (penalised(other) < penalised(closed)).all()


@pytest.mark.parametrize("eigenvalues", [[4.0, 0.0625], [2.0, 1.0, 0.3, 0.3]])
def test_theorem_1_closed_form_agrees_with_monte_carlo(eigenvalues):
    sigma = rotated(eigenvalues, seed=len(eigenvalues))
    mu = torch.ones(len(eigenvalues), dtype=torch.float64)
    C = 2 / min(eigenvalues)
    x, y = gaussians.sample(20_000, mu, sigma, gen())
    mean, se = gaussians.vulnerability_monte_carlo(x, y, mu, sigma, C)
    exact = gaussians.vulnerability(sigma, C)
    assert abs(mean - exact) <= 5 * se
    s = torch.tensor(eigenvalues, dtype=torch.float64)
    eye = torch.eye(len(eigenvalues), dtype=torch.float64)
    trace_form = torch.trace((eye + torch.linalg.inv(C * sigma - eye)) @ (eye + torch.linalg.inv(C * sigma - eye)))
    assert exact == pytest.approx(trace_form.item() - len(eigenvalues), rel=1e-10)
    assert exact == pytest.approx(((C * s / (C * s - 1)) ** 2).sum().item() - len(eigenvalues), rel=1e-10)


def test_theorem_1_isotropic_covariance_is_least_vulnerable_at_fixed_trace():
    d, k, C = 4, 4.0, 10.0
    isotropic = gaussians.vulnerability(torch.eye(d, dtype=torch.float64) * k / d, C)
    weights = torch.rand(200, d, generator=gen(), dtype=torch.float64) + 0.2
    spectra = [w / w.sum() * k for w in weights]  # random spectra of trace k, all eigenvalues above 1 / C
    assert min(s.min().item() for s in spectra) > 1 / C
    assert all(gaussians.vulnerability(torch.diag(s), C) > isotropic for s in spectra)
    # and the scalar case is the closed form d ((C s / (C s - 1))^2 - 1)
    assert isotropic == pytest.approx(d * ((C * k / d / (C * k / d - 1)) ** 2 - 1))


def test_theorem_1_verdicts_can_fail():
    rows = gaussians.vulnerability_rows(MU, {"iso": torch.eye(2) * 2.03125, "ours": SIGMA}, 32.0, 4000, gen())
    v = gaussians.theorem_1_verdicts(rows)
    assert v["formula"]["held"] and v["isotropic"]["held"]
    rows[0]["z"] = 6.0
    assert not gaussians.theorem_1_verdicts(rows)["formula"]["held"]
    assert not gaussians.theorem_1_verdicts(rows[::-1])["isotropic"]["held"]
    assert "Theorem 1" in gaussians.vulnerability_table(rows)


# --- Theorem 2 ---------------------------------------------------------------------------------------


def test_robust_covariance_at_zero_eps_is_the_ml_covariance():
    sigma, lam = gaussians.robust_covariance(SIGMA, 0.0)
    assert torch.equal(sigma, SIGMA) and lam == math.inf


@pytest.mark.parametrize("eps", [0.01, 0.3, 1.0, 5.0])
def test_robust_covariance_solves_lemma_4_and_its_constraint(eps):
    sigma_star = rotated([3.0, 1.0, 0.05], seed=1)
    sigma_r, lam = gaussians.robust_covariance(sigma_star, eps)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(
        sigma_r, sigma_star / 2 + eye / lam + _sqrtm(sigma_star / lam + sigma_star @ sigma_star / 4), atol=1e-10
    )
    M = torch.linalg.inv(lam * sigma_r - eye)  # Lemma 2's adversary, eq. 21
    assert torch.linalg.eigvalsh(M).min() > 0  # the global maximiser: lambda > 1 / sigma_min(sigma_r)
    assert torch.allclose(sigma_r, sigma_star @ (eye + M) @ (eye + M), atol=1e-9)  # eq. 25
    assert torch.trace(M @ sigma_star @ M).item() == pytest.approx(eps**2, rel=1e-9)  # E ||M v||^2 = eps^2


def _sqrtm(a: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(a)
    return vectors @ torch.diag(values.sqrt()) @ vectors.T


def test_robust_covariance_moves_toward_identity_monotonically():
    sigma_star = torch.diag(torch.tensor([4.0, 1.0, 0.01], dtype=torch.float64))
    grid = [0.0, 0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0]
    kappas = [gaussians.condition_number(gaussians.robust_covariance(sigma_star, e)[0]) for e in grid]
    assert all(b < a for a, b in zip(kappas, kappas[1:]))
    assert kappas[-1] < 1.05  # nearly isotropic at a large budget
    lams = [gaussians.robust_covariance(sigma_star, e)[1] for e in grid[1:]]
    assert all(b < a for a, b in zip(lams, lams[1:]))  # lambda falls as eps grows (appendix E.3.6)


def test_lambda_follows_the_orders_of_theorem_2():
    # small eps: m_i ~ c / s_i, so lambda eps -> sqrt(tr sigma^-1); large eps: m_i ~ sqrt(c / s_i), lambda eps^2 -> d
    var = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    small = gaussians.robust_covariance(torch.diag(var), 1e-4)[1] * 1e-4
    large = gaussians.robust_covariance(torch.diag(var), 1e4)[1] * 1e8
    assert small == pytest.approx(math.sqrt((1 / var).sum().item()), rel=1e-3)
    assert large == pytest.approx(3.0, rel=1e-3)


def test_robust_covariance_is_rotation_equivariant():
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen(5), dtype=torch.float64))
    diag = torch.diag(torch.tensor([2.0, 0.5, 0.1], dtype=torch.float64))
    a = gaussians.robust_covariance(q @ diag @ q.T, 0.7)[0]
    b = gaussians.robust_covariance(diag, 0.7)[0]
    assert torch.allclose(a, q @ b @ q.T, atol=1e-10)


def test_adversary_is_the_global_maximiser_on_the_circle():
    variances = torch.tensor([1.0, 0.2], dtype=torch.float64)
    v = torch.randn(50, 2, generator=gen(), dtype=torch.float64)
    eps = 0.7
    m, lam = gaussians._adversary_scales(v.square(), variances, eps)
    delta = m * v
    assert torch.allclose(delta.norm(dim=1), torch.full((50,), eps, dtype=torch.float64))
    assert (lam * variances.min() > 1).all()
    angles = torch.linspace(0, 2 * math.pi, 20_001, dtype=torch.float64)
    circle = eps * torch.stack([angles.cos(), angles.sin()], 1)
    best = ((v[:, None, :] + circle[None]).square() / variances).sum(-1).max(1).values
    found = ((v + delta).square() / variances).sum(-1)
    assert (found >= best - 1e-9).all() and (found <= best + 1e-5 * best).all()


def test_relaxed_robust_training_reproduces_theorem_2():
    x, y = gaussians.sample(3000, MU, SIGMA, gen())
    mu_ml, sigma_ml = gaussians.fit_ml(x, y)
    standard = gaussians.fit_robust_ml(x, y, 0.0)
    assert torch.allclose(standard.sigma, torch.diag(sigma_ml.diagonal()), rtol=1e-9)
    for eps in (0.3, 2.0):
        fit = gaussians.fit_robust_ml(x, y, eps, "linear")
        closed, lam = gaussians.robust_covariance(torch.diag(sigma_ml.diagonal()), eps)
        assert torch.allclose(fit.sigma, closed, rtol=1e-6)  # Lemma 4 on the sample's distribution
        assert torch.allclose(fit.mu, mu_ml, atol=1e-7)  # mu_r = mu*: the ML mean
        assert fit.lam == pytest.approx(lam, rel=1e-5) and fit.grad_norm <= 1e-6


def test_l2_robust_training_approaches_the_relaxation_as_d_grows():
    rows = gaussians.relaxation_rows([2, 16], 0.0625, 4.0, 0.25, 2000, gen())
    assert rows[1]["gap_l2"] < rows[0]["gap_l2"] / 2
    assert max(r["gap_linear"] for r in rows) < 1e-5
    assert gaussians.relaxation_verdict(rows)["held"] and not gaussians.relaxation_verdict(rows[::-1])["held"]


def test_l2_fit_keeps_the_ml_mean_and_puts_every_point_on_the_sphere():
    x, y = gaussians.sample(1000, MU, SIGMA, gen())
    fit = gaussians.fit_robust_ml(x, y, 0.5, "l2")
    assert torch.allclose(fit.mu, gaussians.fit_ml(x, y)[0])
    assert math.isnan(fit.lam) and fit.grad_norm <= 1e-6
    v = x - y[:, None] * fit.mu
    m, _ = gaussians._adversary_scales(v.square(), fit.sigma.diagonal(), 0.5)
    assert torch.allclose((m * v).norm(dim=1), torch.full((1000,), 0.5, dtype=torch.float64))


def test_delta_method_standard_errors_match_the_spread_over_samples():
    n, eps = 2000, 0.5

    def estimate(seed):
        variances = gaussians.fit_ml(*gaussians.sample(n, MU, SIGMA, gen(seed)))[1].diagonal()
        return gaussians.robust_covariance(torch.diag(variances), eps)[0].diagonal()

    estimates = torch.stack([estimate(seed) for seed in range(60)])
    ratio = estimates.std(0) / gaussians.robust_covariance_se(VAR, eps, n)
    assert ((ratio > 0.7) & (ratio < 1.3)).all(), ratio  # 60 replicates: the spread is known to about 10%


def test_robust_rows_and_their_verdicts():
    x, y = gaussians.sample(2000, MU, SIGMA, gen())
    rows = gaussians.robust_rows(x, y, MU, SIGMA, [0.0, 0.5, 2.0], restarts=8, generator=gen(1))
    two, three = gaussians.theorem_2_verdicts(rows), gaussians.theorem_3_verdicts(rows)
    assert all(v["held"] for v in (*two.values(), *three.values())), (two, three)
    assert not gaussians.theorem_2_verdicts(rows[::-1])["identity"]["held"]
    assert not gaussians.theorem_3_verdicts(rows[::-1])["mu_star"]["held"]
    rows[1]["gap_same"] = 1e-3
    assert not gaussians.theorem_2_verdicts(rows)["covariance"]["held"]
    for table in (gaussians.robust_table(rows), gaussians.alignment_table(rows)):
        assert table.count("\n") == len(rows) + 1
    fig = plots.metric_ellipses(rows, MU, SIGMA, x, y, [0.0, 2.0])
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    with pytest.raises(ValueError, match="shown must be radii of rows"):
        plots.metric_ellipses(rows, MU, SIGMA, x, y, [1.0])


# --- Theorem 3 ---------------------------------------------------------------------------------------


def test_lemma_8_worst_case_cosine():
    sigma = rotated([5.0, 1.0, 0.2], seed=2)
    kappa = gaussians.condition_number(sigma)
    assert kappa == pytest.approx(25.0)
    worst = gaussians.worst_gradient_cosine(sigma)
    assert worst == pytest.approx(2 * math.sqrt(25) / 26)
    search = gaussians.worst_gradient_cosine_search(sigma, restarts=16, steps=400, generator=gen())
    assert worst - 1e-12 <= search <= worst + 1e-6
    # an eigenvector is perfectly aligned; in 2-D an exhaustive sweep of directions finds Lemma 8's minimum
    assert gaussians.gradient_cosine(torch.linalg.eigh(sigma)[1][:, 0], sigma) == pytest.approx(1.0)
    angles = torch.linspace(0, math.pi, 100_001, dtype=torch.float64)
    directions = torch.stack([angles.cos(), angles.sin()], 1)
    w = directions / VAR
    sweep = ((directions * w).sum(1) / w.norm(dim=1)).min().item()
    assert sweep == pytest.approx(gaussians.worst_gradient_cosine(SIGMA), abs=1e-8)


def test_theorem_3_robust_covariance_is_better_conditioned():
    for seed in range(5):
        spectrum = torch.rand(4, generator=gen(seed), dtype=torch.float64) * 3 + 0.01
        sigma_star = rotated(spectrum.tolist(), seed)
        for eps in (0.1, 1.0):
            sigma_r = gaussians.robust_covariance(sigma_star, eps)[0]
            assert gaussians.condition_number(sigma_r) < gaussians.condition_number(sigma_star)
            assert gaussians.worst_gradient_cosine(sigma_r) > gaussians.worst_gradient_cosine(sigma_star)


# --- accuracy of a linear classifier -----------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0])
def test_linear_accuracy_agrees_with_monte_carlo(eps):
    n = 20_000
    x, y = gaussians.sample(n, MU, SIGMA, gen())
    w = gaussians.ml_weights(MU, gaussians.robust_covariance(SIGMA, 0.5)[0])
    exact = gaussians.linear_accuracy(w, MU, SIGMA, eps)
    assert abs(gaussians.robust_accuracy(w, x, y, eps) - exact) <= toy.mc_tolerance(exact, n)
    # the worst l2 attack of a linear classifier really is -eps y w / ||w||
    attacked = x - eps * y[:, None] * w / w.norm()
    assert gaussians.robust_accuracy(w, attacked, y) == pytest.approx(gaussians.robust_accuracy(w, x, y, eps), abs=1e-3)


# --- input checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sigma, match",
    [
        (torch.ones(2, 3), "square"),
        (torch.tensor([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
        (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), "NaN"),
        (torch.ones(2), r"shape \[d, d\], got shape \[2\]; for diagonal variances v pass torch\.diag\(v\)"),
    ],
)
def test_bad_covariances_are_refused(sigma, match):
    with pytest.raises(ValueError, match=match):
        gaussians.robust_covariance(sigma, 0.5)


def test_bad_inputs_are_refused_with_a_fix():
    x, y = gaussians.sample(10, MU, SIGMA, gen())
    with pytest.raises(ValueError, match="C must exceed 1 / sigma_min = 16"):
        gaussians.vulnerability(SIGMA, 16.0)
    with pytest.raises(ValueError, match=">= 0"):
        gaussians.robust_covariance(SIGMA, -0.1)
    with pytest.raises(ValueError, match="map 0/1 labels"):
        gaussians.fit_ml(x, (y + 1) / 2)
    with pytest.raises(ValueError, match="one label per row"):
        gaussians.nll(x, y[:5], MU, SIGMA)
    with pytest.raises(ValueError, match="adversary must be one of"):
        gaussians.fit_robust_ml(x, y, 0.1, "linf")
    with pytest.raises(ValueError, match="has d = 2 features but the mean has 3"):
        gaussians.nll(x, y, torch.ones(3), torch.eye(3))
    with pytest.raises(ValueError, match="more points than features"):
        gaussians.fit_ml(x[:2], y[:2])
    with pytest.raises(ValueError, match="non-zero"):
        gaussians.gradient_cosine(torch.zeros(2), SIGMA)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        gaussians.sample(0, MU, SIGMA)
    with pytest.raises(TypeError, match="n must be an integer"):
        gaussians.sample(True, MU, SIGMA)
    with pytest.raises(TypeError, match="must be a number"):
        gaussians.robust_covariance(SIGMA, "0.5")
    with pytest.raises(TypeError, match="tensor of numbers"):
        gaussians.sample(5, "mu", SIGMA)
    with pytest.raises(TypeError, match="real numbers"):
        gaussians.sample(5, torch.tensor([True, False]), SIGMA)


# --- the reviewer's bad inputs -----------------------------------------------------------------------
# Each test below failed before the fix it checks.

S14 = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
MU14 = torch.tensor([1.0, 0.5], dtype=torch.float64)


def test_the_attack_converges_where_the_curvature_ratio_is_large():
    # C = 1.001 against 1 / sigma_min = 1: curvatures 0.001 and 0.751, kappa = 751. The fixed 200 steps of
    # the first version reported 199,257 +- 21,183 against the closed form's 1,002,001.
    x, y = gaussians.sample(200, MU14, S14, gen())
    mean, se = gaussians.vulnerability_monte_carlo(x, y, MU14, S14, 1.001)
    assert abs(mean - gaussians.vulnerability(S14, 1.001)) <= 5 * se
    # every perturbation within tol of Lemma 1's maximiser, relative to its norm (kappa = 75 here)
    found = gaussians.lagrangian_attack(x, y, MU14, S14, 1.01, tol=1e-9)
    closed = gaussians.lagrangian_perturbation(x, y, MU14, S14, 1.01)
    assert ((found - closed).norm(dim=1) <= 1e-9 * closed.norm(dim=1)).all()


def test_the_attack_raises_rather_than_under_report():
    x, y = gaussians.sample(50, MU14, S14, gen())
    needed = gaussians._ascent_steps(0.751 / 0.001, 1e-9)
    assert 5_000 < needed < 20_000  # grows like kappa = 751
    with pytest.raises(RuntimeError, match=rf"did not converge: after 200 .* steps >= {needed}"):
        gaussians.vulnerability_monte_carlo(x, y, MU14, S14, 1.001, steps=200)
    with pytest.raises(RuntimeError, match="did not converge"):
        gaussians.lagrangian_attack(x, y, MU14, S14, 1.001, steps=200)
    # a precision below float64's: rounding stops the ascent (at about 1e-15 here), which says so
    sigma, ones = rotated([2.0, 0.5, 0.1], seed=3), torch.ones(3, dtype=torch.float64)
    x3, y3 = gaussians.sample(50, ones, sigma, gen())
    with pytest.raises(RuntimeError, match="stalled.*rounding.*larger tol"):
        gaussians.lagrangian_attack(x3, y3, ones, sigma, 15.0, tol=1e-20)
    with pytest.raises(ValueError, match="so close to 1 / sigma_min .* pass steps="):
        gaussians.lagrangian_attack(x, y, MU14, S14, 1 + 1e-7)  # kappa ~ 7.5e6: tens of millions of steps
    with pytest.raises(ValueError, match="tol must be below 1"):
        gaussians.lagrangian_attack(x, y, MU14, S14, 2.0, tol=1.0)


@pytest.mark.parametrize("scale", [1e-170, 1e-100, 1e100, 1e200])
def test_accuracies_and_cosines_do_not_depend_on_scale(scale):
    w = torch.tensor([0.5, 8.0], dtype=torch.float64)
    for eps in (0.0, 0.3):
        expected = gaussians.linear_accuracy(w, MU, SIGMA, eps)
        assert gaussians.linear_accuracy(w * scale, MU, SIGMA, eps) == pytest.approx(expected, rel=1e-12)
    x, y = gaussians.sample(500, MU, SIGMA, gen())
    assert gaussians.robust_accuracy(w * scale, x, y, 0.3) == gaussians.robust_accuracy(w, x, y, 0.3)
    expected = gaussians.gradient_cosine(MU, SIGMA)
    assert gaussians.gradient_cosine(MU * scale, SIGMA) == pytest.approx(expected, rel=1e-12)
    assert gaussians.gradient_cosine(MU * scale, SIGMA, direction=MU / scale) == pytest.approx(expected, rel=1e-12)


def test_robust_accuracy_refuses_what_linear_accuracy_refuses():
    x, y = gaussians.sample(10, MU, SIGMA, gen())
    for accuracy in (lambda w: gaussians.linear_accuracy(w, MU, SIGMA), lambda w: gaussians.robust_accuracy(w, x, y)):
        with pytest.raises(ValueError, match="w must be non-zero"):
            accuracy(torch.zeros(2))
        with pytest.raises(ValueError, match="w has 3 entries|w has d = 3"):
            accuracy(torch.ones(3))


def test_ml_verdict_checks_its_inputs():
    x, y = gaussians.sample(200, MU, SIGMA, gen())
    mu, sigma = gaussians.fit_ml(x, y)
    assert gaussians.ml_verdict(mu, sigma, MU, SIGMA, np.int64(200))["held"]
    for n in (0, -5, 1):
        with pytest.raises(ValueError, match="n must be an integer >= 2"):
            gaussians.ml_verdict(mu, sigma, MU, SIGMA, n)
    for n in ("200", 200.0, True):
        with pytest.raises(TypeError, match="n must be an integer"):
            gaussians.ml_verdict(mu, sigma, MU, SIGMA, n)
    with pytest.raises(ValueError, match="mu has d = 2 features but mu_star has 3 entries"):
        gaussians.ml_verdict(mu, sigma, torch.ones(3), torch.eye(3), 200)
    with pytest.raises(ValueError, match="sigma_star is 3 x 3 but mu has d = 2"):
        gaussians.ml_verdict(mu, sigma, MU, torch.eye(3), 200)
    with pytest.raises(ValueError, match="z must be a finite number > 0"):
        gaussians.ml_verdict(mu, sigma, MU, SIGMA, 200, z=-1)


def test_fit_ml_refuses_data_with_a_singular_covariance_and_says_why():
    x, y = gaussians.sample(200, MU, SIGMA, gen())
    with pytest.raises(ValueError, match="only 2 distinct rows"):
        gaussians.fit_ml(torch.cat([x[:2]] * 10), torch.cat([y[:2]] * 10))
    flat = x.clone()
    flat[:, 1] = 0.0
    with pytest.raises(ValueError, match=r"feature 1 \(x\[:, 1\]\) has variance 0"):
        gaussians.fit_ml(flat, y)
    with pytest.raises(ValueError, match="feature 1"):  # not L-BFGS's "gradient norm nan ... raise max_iter"
        gaussians.fit_robust_ml(flat, y, 0.5)
    with pytest.raises(ValueError, match=r"linearly dependent: -1 x\[:, 0\] \+ 0.5 x\[:, 1\]"):
        gaussians.fit_ml(torch.stack([x[:, 0], 2 * x[:, 0]], 1), y)
    # whatever fit_ml returns, the functions that take a covariance accept
    mu, sigma = gaussians.fit_ml(x, y)
    assert gaussians.condition_number(sigma) < 1e12


def test_robust_covariance_at_extreme_radii():
    tiny, lam = gaussians.robust_covariance(S14, 1e-160)
    assert torch.equal(tiny, S14) and lam * 1e-160 == pytest.approx(math.sqrt(1.25), rel=1e-9)
    with pytest.raises(ValueError, match="eps = 1e\\+160 is too large"):
        gaussians.robust_covariance(S14, 1e160)
    # units: (a^2 sigma, a eps) gives a^2 sigma_r and lambda / a^2, far from 1 too
    sigma_r, lam = gaussians.robust_covariance(S14, 0.7)
    for a in (1e-100, 1e100):
        scaled, scaled_lam = gaussians.robust_covariance(S14 * a**2, 0.7 * a)
        assert torch.allclose(scaled / a**2, sigma_r, rtol=1e-12) and scaled_lam * a**2 == pytest.approx(lam, rel=1e-12)


def test_numpy_scalars_and_0d_tensors_are_numbers():
    expected = gaussians.robust_covariance(SIGMA, 1.0)
    for eps in (np.float32(1.0), np.float64(1.0), np.int64(1), torch.tensor(1.0)):
        sigma_r, lam = gaussians.robust_covariance(SIGMA, eps)
        assert torch.equal(sigma_r, expected[0]) and lam == expected[1]
    assert gaussians.sample(np.int64(5), MU, SIGMA, gen())[0].shape == (5, 2)
    assert gaussians.spectrum(np.int64(3), 1, 4).tolist() == [1.0, 2.0, 4.0]
    with pytest.raises(TypeError, match=r"C must be a number, got a Tensor of shape \[2\].*float\(C\)"):
        gaussians.vulnerability(SIGMA, torch.tensor([32.0, 33.0]))
    for flag in (True, np.bool_(True), torch.tensor(True)):
        with pytest.raises(TypeError, match="eps must be a number"):
            gaussians.robust_covariance(SIGMA, flag)


@pytest.mark.parametrize("generator", [0, np.random.default_rng(0)])
def test_generators_must_be_torch_generators(generator):
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator or None.*manual_seed"):
        gaussians.sample(3, MU, SIGMA, generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gaussians.worst_gradient_cosine_search(SIGMA, 4, 5, generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gaussians.vulnerability_rows(MU, {"ours": SIGMA}, 32.0, 100, generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        gaussians.relaxation_rows([2], 0.0625, 4.0, 0.25, 100, generator)


def _fake_robust_rows(grid):
    """Rows with the keys of robust_rows whose numbers rise or fall with eps as the theorems say."""
    return [
        {"eps": e, "worst": 0.2 + e / 10, "worst_search": 0.2 + e / 10, "mu_gap": 0.0, "mu_z": 0.0, "gap_same": 0.0}
        | {"z": 0.0, "kappa": 10 - e, "kappa_linear": 10 - e, "kappa_l2": 10 - e}
        | {"cosine": 0.3 + e / 10, "cosine_linear": 0.3 + e / 10, "cosine_l2": 0.3 + e / 10}
        for e in grid
    ]


def test_verdicts_refuse_empty_or_foreign_rows_and_bad_tolerances():
    for verdicts in (
        gaussians.theorem_1_verdicts,
        gaussians.theorem_2_verdicts,
        gaussians.theorem_3_verdicts,
        gaussians.relaxation_verdict,
    ):
        with pytest.raises(ValueError, match="got no rows"):
            verdicts([])
    with pytest.raises(ValueError, match=r"expects the rows of robust_rows: row 0 lacks \['eps'"):
        gaussians.theorem_2_verdicts([{"d": 2, "gap_l2": 0.1, "gap_linear": 0.0}])
    with pytest.raises(ValueError, match="expects the rows of vulnerability_rows"):
        gaussians.theorem_1_verdicts(_fake_robust_rows([0.0, 1.0]))
    with pytest.raises(ValueError, match="z must be a finite number > 0"):
        gaussians.theorem_2_verdicts(_fake_robust_rows([0.0, 1.0]), z=-1)
    with pytest.raises(ValueError, match="search_tol"):
        gaussians.theorem_3_verdicts(_fake_robust_rows([0.0, 1.0]), search_tol=0)


def test_theorem_3_verdicts_label_rows_by_their_own_eps():
    measured = gaussians.theorem_3_verdicts(_fake_robust_rows([0.5, 1.0]))
    assert measured["worst_case"]["measured"].startswith("0.2500 at ε = 0.5, 0.3000 at ε = 1;")
    assert measured["mu_star"]["measured"].startswith("cosine 0.350 at ε = 0.5, 0.400 at ε = 1 ")
    assert "standard ML" not in measured["worst_case"]["measured"] and measured["worst_case"]["held"]
    standard = gaussians.theorem_3_verdicts(_fake_robust_rows([0.0, 1.0]))["worst_case"]["measured"]
    assert standard.startswith("0.2000 at ε = 0 (standard ML), 0.3000 at ε = 1;")


def _fake_vulnerability_rows(kappas, traces):
    return [
        {"label": f"row {i}", "kappa": k, "trace": t, "closed_form": 0.1 * (i + 1), "monte_carlo": 0.1 * (i + 1)}
        | {"se": 0.001, "z": 0.0}
        for i, (k, t) in enumerate(zip(kappas, traces))
    ]


def test_theorem_1_verdicts_name_a_first_row_that_is_not_isotropic():
    held = gaussians.theorem_1_verdicts(_fake_vulnerability_rows([1.0, 2.0, 4.0], [4.0] * 3))["isotropic"]
    assert held["held"] and held["measured"].startswith("0.1000 at Σ* = (k/d) I, rising to 0.3000 (row 2)")
    anisotropic = gaussians.theorem_1_verdicts(_fake_vulnerability_rows([1.5, 2.0, 4.0], [4.0] * 3))["isotropic"]
    assert not anisotropic["held"] and anisotropic["measured"].startswith("0.1000 at row 0 (not isotropic: κ = 1.5)")
    traces = gaussians.theorem_1_verdicts(_fake_vulnerability_rows([1.0, 2.0, 4.0], [4.0, 4.0, 5.0]))["isotropic"]
    assert not traces["held"] and "do not share one trace" in traces["measured"]
    with pytest.raises(ValueError, match="z must be a finite number > 0"):
        gaussians.theorem_1_verdicts(_fake_vulnerability_rows([1.0], [4.0]), z=-1)


def test_sweeps_need_sequences():
    x, y = gaussians.sample(50, MU, SIGMA, gen())
    with pytest.raises(TypeError, match=r"eps_grid must be a sequence such as \[0.0, 0.5, 2.0\], got 0.5"):
        gaussians.robust_rows(x, y, MU, SIGMA, 0.5)
    with pytest.raises(ValueError, match="eps_grid is empty"):
        gaussians.robust_rows(x, y, MU, SIGMA, [])
    with pytest.raises(ValueError, match=r"eps_grid\[1\] must be a finite number >= 0"):
        gaussians.robust_rows(x, y, MU, SIGMA, [0.0, -1.0])
    with pytest.raises(TypeError, match=r"dims must be a sequence such as \[2, 8, 32\], got 2"):
        gaussians.relaxation_rows(2, 0.0625, 4.0, 0.25, 100)
    with pytest.raises(TypeError, match=r"dims\[0\] must be an integer"):
        gaussians.relaxation_rows([2.5], 0.0625, 4.0, 0.25, 100)
    with pytest.raises(ValueError, match="covariances is empty"):
        gaussians.vulnerability_rows(MU, {}, 32.0, 100)


def test_messages_say_how_to_fix_the_input():
    x, y = gaussians.sample(50, MU, SIGMA, gen())
    with pytest.raises(ValueError, match=r"y must have shape \[n\], got shape \[50, 1\]; .* y.view\(-1\)"):
        gaussians.fit_ml(x, y[:, None])
    ill = torch.diag(torch.tensor([1.0, 1e-13], dtype=torch.float64))  # positive definite, but kappa = 1e13
    with pytest.raises(ValueError, match=r"condition number 1e\+13 .* above the 1e\+12 accepted") as refused:
        gaussians.robust_covariance(ill, 0.5)
    assert "must be positive definite" not in str(refused.value)
    with pytest.raises(ValueError, match="^variances range from 1e-13 to 1"):
        gaussians.robust_covariance_se(ill.diagonal(), 0.5, 100)
    with pytest.raises(ValueError, match="^robust_covariance_se at these variances: eps = 1e\\+160 is too large"):
        gaussians.robust_covariance_se(VAR, 1e160, 100)
