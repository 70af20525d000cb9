"""PGD's invariants as properties (hypothesis, both norms, a tiny random-init model), its
bookkeeping (mode, gradients, custom losses), bad settings, and its effect on a model trained
on real MNIST digits."""

import copy
import functools

import pytest
import torch
from hypothesis import given, strategies as st

from robustutils import attacks, evaluate, models, runtime

NORMS = ("linf", "l2")
EPS_MAX = {"linf": 0.5, "l2": 4.0}  # a large ball in each norm for 28x28 inputs in [0, 1]
BALL_TOL = 1e-5  # float32 slack on ||x_adv - x|| <= eps
LOSS_TOL = 1e-4  # float32 slack when comparing losses recomputed on different batches
AMP_LOSS_TOL = 3e-2  # the same under bf16 autocast (8 bits of mantissa; batch shapes change the kernels)


def images(seed: int, n: int, saturate: bool):
    """``n`` random 28x28 images in [0, 1] and labels; ``saturate`` puts most pixels at exactly 0 or 1
    (as in MNIST), where the [0, 1] box rather than the eps ball is what binds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    if saturate:
        x = torch.where(torch.rand(x.shape, generator=g) < 0.7, x.round(), x)
    return x, torch.randint(0, 10, (n,), generator=g)


def wiggly_loss(model, x, y):
    """A per-example loss with many local maxima along any path (sin of 20 x cross-entropy): long
    steps overshoot, so the last iterate often ends below the start and keep-the-best matters."""
    return torch.sin(20 * attacks.cross_entropy(model, x, y))


def objective(model, x, y, loss_fn=None, targeted=False, amp=False):
    """What PGD maximises: ``loss_fn`` (default cross-entropy) per example, negated when targeted,
    computed under bf16 autocast when ``amp`` (as the attack computed it)."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        return (-1.0 if targeted else 1.0) * (loss_fn or attacks.cross_entropy)(model, x, y).float()


def tolerance(settings: dict) -> float:
    return AMP_LOSS_TOL if settings.get("amp") else LOSS_TOL


def distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example ||delta|| computed here, independently of the library's threat models."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.pow(2).sum(dim=1).sqrt()


@st.composite
def cases(draw, norm: str, min_eps_fraction: float = 0.0):
    """Inputs and PGD settings for ``norm``: eps up to a large ball, few steps, any step size,
    the default loss or :func:`wiggly_loss`, float32 or bf16 autocast, contiguous or channels_last weights."""
    eps = draw(st.floats(min_eps_fraction, 1.0)) * EPS_MAX[norm]
    relative_step = draw(st.one_of(st.none(), st.floats(0.05, 3.0)))  # steps larger than eps too
    return {
        "data": (draw(st.integers(0, 2**31 - 1)), draw(st.integers(1, 6)), draw(st.booleans())),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "settings": {"eps": eps, "norm": norm, "steps": draw(st.integers(1, 5)),
                     "step_size": None if relative_step is None else relative_step * eps,
                     "restarts": draw(st.integers(1, 3)), "random_start": draw(st.booleans()),
                     "use_best": draw(st.booleans()), "targeted": draw(st.booleans()),
                     "loss_fn": draw(st.sampled_from([None, wiggly_loss])), "amp": draw(st.booleans())},
        "channels_last": draw(st.booleans()),
    }


@pytest.fixture(scope="module")
def tiny_models(tiny_model):
    """The tiny model as is and as a channels_last copy (the memory layout the benchmarks may pick)."""
    return {False: tiny_model, True: copy.deepcopy(tiny_model).to(memory_format=torch.channels_last)}


# --- invariants, as properties -------------------------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@given(data=st.data())
def test_adversarial_inputs_lie_in_the_eps_ball_and_the_box(tiny_models, norm, data):
    case = data.draw(cases(norm))
    x, y = images(*case["data"])
    runtime.set_seed(case["seed"])
    x_adv = attacks.pgd(tiny_models[case["channels_last"]], x, y, **case["settings"])
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (distance(x_adv - x, norm) <= case["settings"]["eps"] + BALL_TOL).all()


@pytest.mark.parametrize("norm", NORMS)
@given(data=st.data())
def test_keep_the_best_never_ends_below_the_start(tiny_models, norm, data):
    case = data.draw(cases(norm))
    settings = {**case["settings"], "use_best": True, "random_start": False}
    model = tiny_models[case["channels_last"]]
    x, y = images(*case["data"])
    x_adv = attacks.pgd(model, x, y, **settings)
    start = objective(model, x, y, settings["loss_fn"], settings["targeted"], settings["amp"])
    end = objective(model, x_adv, y, settings["loss_fn"], settings["targeted"], settings["amp"])
    assert (end >= start - tolerance(settings)).all()


@pytest.mark.parametrize("norm", NORMS)
def test_keep_the_best_is_what_keeps_the_start(tiny_model, norm):
    # The same attack without keep-the-best ends below the start on some of these examples (long
    # steps on a wiggly loss overshoot); with it, no example does, and none ends below the last iterate.
    x, y = images(5, 16, saturate=False)
    settings = {"eps": EPS_MAX[norm], "norm": norm, "steps": 3, "step_size": EPS_MAX[norm],
                "random_start": False, "loss_fn": wiggly_loss}
    start = objective(tiny_model, x, y, wiggly_loss)
    last = objective(tiny_model, attacks.pgd(tiny_model, x, y, use_best=False, **settings), y, wiggly_loss)
    best = objective(tiny_model, attacks.pgd(tiny_model, x, y, use_best=True, **settings), y, wiggly_loss)
    assert (last < start - LOSS_TOL).any()
    assert (best >= start - LOSS_TOL).all() and (best >= last - LOSS_TOL).all()


@pytest.mark.parametrize("norm", NORMS)
@given(data=st.data(), restarts=st.integers(2, 4))
def test_batched_restarts_are_never_weaker_than_one(tiny_model, norm, data, restarts):
    # Under the same seed the first of R batched restarts draws the random start of a single run,
    # so the best of R can only match or beat it.
    case = data.draw(cases(norm))
    settings = {**case["settings"], "random_start": True}
    x, y = images(*case["data"])
    runtime.set_seed(case["seed"])
    one = attacks.pgd(tiny_model, x, y, **{**settings, "restarts": 1})
    runtime.set_seed(case["seed"])
    many = attacks.pgd(tiny_model, x, y, **{**settings, "restarts": restarts})
    objectives = [objective(tiny_model, x_adv, y, settings["loss_fn"], settings["targeted"], settings["amp"])
                  for x_adv in (one, many)]
    assert (objectives[1] >= objectives[0] - tolerance(settings)).all()


@pytest.mark.parametrize("norm", NORMS)
@given(data=st.data())
def test_targeted_pgd_lowers_the_target_class_loss(tiny_model, norm, data):
    # With keep-the-best (the default): without it, steps longer than eps can end above the start.
    case = data.draw(cases(norm, min_eps_fraction=0.1))
    settings = {**case["settings"], "targeted": True, "use_best": True, "loss_fn": None, "amp": False,
                "steps": max(3, case["settings"]["steps"])}
    x, _ = images(*case["data"])
    target = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(case["seed"]))
    runtime.set_seed(case["seed"])
    x_adv = attacks.pgd(tiny_model, x, target, **settings)
    assert (objective(tiny_model, x_adv, target) < objective(tiny_model, x, target)).all()


@pytest.mark.parametrize("norm", NORMS)
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.0, 5.0), scale=st.floats(1e-3, 1e3),
       n=st.integers(1, 4))
def test_projections_are_idempotent_and_land_in_the_ball(norm, seed, eps, scale, n):
    ball = attacks.threat(norm)
    delta = scale * torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    once = ball.project(delta, eps)
    assert torch.allclose(ball.project(once, eps), once, rtol=1e-5, atol=1e-7)
    assert (distance(once, norm) <= eps * (1 + 1e-5) + 1e-7).all()
    inside = delta * (0.5 * eps / distance(delta, norm).clamp_min(1e-12)).view(-1, 1, 1, 1)
    assert torch.allclose(ball.project(inside, eps), inside, rtol=1e-5, atol=1e-7)  # no-op inside


@pytest.mark.parametrize("norm", NORMS)
def test_zero_eps_returns_the_input_exactly(tiny_model, norm):
    x, y = images(0, 4, saturate=True)
    assert torch.equal(attacks.pgd(tiny_model, x, y, eps=0.0, norm=norm, restarts=2), x)


# --- bookkeeping: model mode, gradients, custom losses, reproducibility --------------------

@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
@pytest.mark.parametrize("norm", NORMS)
def test_attack_runs_in_eval_mode_restores_the_mode_and_leaks_no_gradients(training, norm):
    runtime.set_seed(0)
    model = models.build("preact_resnet18", width=4)  # has BatchNorm, whose statistics must not move
    model.train(training)
    running = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    modes_seen = []

    def loss_recording_mode(m, x_, y_):
        modes_seen.append(m.training)
        return attacks.cross_entropy(m, x_, y_)

    x = torch.rand(3, 3, 32, 32).requires_grad_(True)
    x_before = x.detach().clone()
    y = torch.tensor([0, 1, 2])
    x_adv = attacks.pgd(model, x, y, eps=8 / 255, norm=norm, steps=2, restarts=2, loss_fn=loss_recording_mode)

    assert modes_seen and not any(modes_seen)  # every loss evaluated in eval mode
    assert model.training is training and all(m.training is training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in running.items())
    assert x_adv.shape == x.shape and not x_adv.requires_grad and x_adv.grad_fn is None
    assert x.grad is None and torch.equal(x.detach(), x_before)  # the input is neither touched nor given a grad
    assert all(p.grad is None for p in model.parameters())


def test_mode_is_restored_when_the_attack_raises(make_tiny_model):
    model = make_tiny_model().train()
    x, y = images(0, 2, saturate=False)
    with pytest.raises(ValueError):
        attacks.pgd(model, x, y, eps=0.1, loss_fn=lambda m, x_, y_: attacks.cross_entropy(m, x_, y_).mean())
    assert model.training


@pytest.mark.parametrize("norm", NORMS)
def test_custom_loss_on_the_representation_is_the_one_minimised(tiny_model, norm):
    # Representation inversion (Ilyas et al.): move x towards another image's penultimate features.
    def feature_distance(model, x_, target_features):
        return (model.representation(x_) - target_features).pow(2).sum(dim=1)

    x, _ = images(1, 4, saturate=False)
    source, _ = images(2, 4, saturate=False)
    with torch.no_grad():
        target = tiny_model.representation(source)
    eps = {"linf": 0.3, "l2": 3.0}[norm]
    x_adv = attacks.pgd(tiny_model, x, target, eps=eps, norm=norm, steps=10, targeted=True,
                        random_start=False, loss_fn=feature_distance)
    with torch.no_grad():
        before, after = feature_distance(tiny_model, x, target), feature_distance(tiny_model, x_adv, target)
    assert (after < before).all()


@pytest.mark.parametrize("norm", NORMS)
def test_custom_loss_replaces_the_default(tiny_model, norm):
    # Maximising *minus* the cross-entropy must lower the cross-entropy: the default loss never does
    # (keep-the-best from the clean input guarantees it cannot end below the start).
    def minus_cross_entropy(model, x_, y_):
        return -attacks.cross_entropy(model, x_, y_)

    x, y = images(3, 5, saturate=False)
    eps = {"linf": 0.2, "l2": 2.0}[norm]
    x_adv = attacks.pgd(tiny_model, x, y, eps=eps, norm=norm, steps=5, random_start=False,
                        loss_fn=minus_cross_entropy)
    assert (objective(tiny_model, x_adv, y) < objective(tiny_model, x, y)).all()


def test_a_scalar_loss_is_refused(tiny_model):
    x, y = images(0, 3, saturate=False)
    with pytest.raises(ValueError, match=r"loss_fn must return one loss per example, shape \(3,\)"):
        attacks.pgd(tiny_model, x, y, eps=0.1, loss_fn=lambda m, x_, y_: attacks.cross_entropy(m, x_, y_).sum())


@pytest.mark.parametrize("norm", NORMS)
def test_same_seed_same_adversarial_inputs(tiny_model, norm):
    x, y = images(4, 6, saturate=True)
    settings = {"eps": EPS_MAX[norm] / 2, "norm": norm, "steps": 3, "restarts": 2}
    runs = []
    for seed in (7, 7, 8):
        runtime.set_seed(seed)
        runs.append(attacks.pgd(tiny_model, x, y, **settings))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])  # the random start does depend on the seed


def test_pgd_object_records_its_settings_and_scales():
    attack = attacks.PGD(eps=0.3, steps=10)
    settings = attack.settings()
    assert settings["attack"] == "pgd" and settings["eps"] == 0.3 and settings["norm"] == "linf"
    assert settings["step_size"] == pytest.approx(2.5 * 0.3 / 10) and settings["loss_fn"] == "cross_entropy"
    half = attacks.PGD(eps=0.3, step_size=0.01).scaled(0.5)
    assert half.eps == pytest.approx(0.15) and half.step_size == pytest.approx(0.005)


# --- bad settings and inputs get a clear error --------------------------------------------

BAD_SETTINGS = [
    ({"eps": -0.1}, r"eps must be a finite number >= 0"),
    ({"eps": float("nan")}, r"eps must be a finite number >= 0"),
    ({"eps": float("inf")}, r"eps must be a finite number >= 0"),
    ({"eps": 0.1, "step_size": -0.01}, r"step_size must be a finite number >= 0"),
    ({"eps": 0.1, "norm": "l1"}, r"unknown norm 'l1': use one of \['l2', 'linf'\]"),
    ({"eps": 0.1, "steps": 0}, r"steps must be an integer >= 1"),
    ({"eps": 0.1, "restarts": 0}, r"restarts must be an integer >= 1"),
    ({"eps": 0.1, "steps": 2.5}, r"steps must be an integer >= 1"),
    ({"eps": 0.1, "steps": True}, r"steps must be an integer >= 1"),
    ({"eps": True}, r"eps must be a finite number >= 0"),
]


@pytest.mark.parametrize("settings, message", BAD_SETTINGS, ids=[str(s) for s, _ in BAD_SETTINGS])
def test_bad_settings_are_refused_by_pgd_and_PGD(tiny_model, settings, message):
    x, y = images(0, 2, saturate=False)
    with pytest.raises(ValueError, match=message):
        attacks.pgd(tiny_model, x, y, **settings)
    with pytest.raises(ValueError, match=message):
        attacks.PGD(**settings)


BAD_INPUTS = {
    "normalised": lambda x: (x - 0.1307) / 0.3081,
    "0..255": lambda x: x * 255,
    "negative": lambda x: x - 0.5,
    "nan": lambda x: x.index_put((torch.tensor(0),), torch.tensor(float("nan"))),
}


@pytest.mark.parametrize("make_bad", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_images_outside_the_unit_box_are_refused(tiny_model, make_bad):
    x, y = images(0, 2, saturate=False)
    with pytest.raises(ValueError, match=r"inputs must lie in \[0,1\] \(normalisation belongs inside the model\)"):
        attacks.pgd(tiny_model, make_bad(x), y, eps=0.1)


def test_label_batch_size_mismatch_is_refused(tiny_model):
    x, y = images(0, 4, saturate=False)
    with pytest.raises(ValueError, match=r"batch size mismatch: 4 inputs but 3 labels"):
        attacks.pgd(tiny_model, x, y[:3], eps=0.1)
    with pytest.raises(ValueError, match=r"batch size mismatch"):
        attacks.fgsm(tiny_model, x, y[:3], eps=0.1)


# --- on a model trained on real MNIST digits -----------------------------------------------

def test_session_model_is_accurate_on_real_test_digits(mnist_model, mnist_eval):
    assert evaluate.evaluate(mnist_model, *mnist_eval)["clean_acc"] > 0.8


@pytest.mark.parametrize("norm, eps, ceiling", [("linf", 0.3, 0.1), ("l2", 2.0, 0.5)])
def test_pgd_lowers_accuracy_on_real_mnist(mnist_model, mnist_eval, norm, eps, ceiling):
    # Madry et al.'s eps = 0.3 (l_inf) breaks a standard model almost entirely; l_2 eps = 2 at
    # least halves its accuracy. ``ceiling`` is the robust accuracy allowed, as a share of clean.
    result = evaluate.evaluate(mnist_model, *mnist_eval, attack=attacks.PGD(eps=eps, norm=norm, steps=10))
    assert result["robust_acc"] <= result["clean_acc"]
    assert result["robust_acc"] < ceiling * result["clean_acc"]


@pytest.mark.parametrize("norm, eps", [("linf", 0.3), ("l2", 2.0)])
def test_fgsm_is_no_stronger_than_pgd(mnist_model, mnist_eval, norm, eps):
    fgsm = evaluate.evaluate(mnist_model, *mnist_eval, attack=functools.partial(attacks.fgsm, eps=eps, norm=norm))
    pgd = evaluate.evaluate(mnist_model, *mnist_eval, attack=attacks.PGD(eps=eps, norm=norm, steps=10))
    assert pgd["robust_acc"] <= fgsm["robust_acc"] < fgsm["clean_acc"]


def test_numpy_numbers_are_accepted_as_settings(tiny_model):
    import numpy as np
    x, y = images(0, 2, saturate=False)
    x_adv = attacks.pgd(tiny_model, x, y, eps=np.float32(0.1), steps=np.int64(2))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0)])
def test_bf16_autocast_keeps_the_attack_as_strong(mnist_model, mnist_eval, norm, eps):
    # The speed-up P1 measures must not cost strength: under bf16 autocast (float32 perturbation and
    # projection) PGD-10 leaves the trained model within 2 points of its float32 robust accuracy,
    # and returns float32 inputs.
    x, y = mnist_eval
    accs = {}
    for amp in (False, True):
        runtime.set_seed(0)
        x_adv = attacks.pgd(mnist_model, x, y, eps=eps, norm=norm, steps=10, amp=amp)
        assert x_adv.dtype == torch.float32
        accs[amp] = (evaluate.predict(mnist_model, x_adv) == y).float().mean().item()
    assert accs[False] < 0.9  # the attack does bite at this eps
    assert abs(accs[True] - accs[False]) <= 0.02, accs
