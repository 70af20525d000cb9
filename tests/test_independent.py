"""The independent check (Croce & Hein's AutoAttack, the ``pyautoattack`` package) and the book's
evaluation suite: our PGD, then AutoAttack's attacks one by one as a cascade.

The attacks run at a few iterations and target classes on a few dozen digits: these tests check
the wiring (threat model, seeding, modes, names, sanity-check flags), not AutoAttack's strength."""

import contextlib
import json
import logging
import warnings
from importlib.metadata import version

import pytest
import torch

from robustutils import attacks, evaluate, independent, models, runtime

FAST = {"n_iter": 5, "n_target_classes": 3}
GRADIENT = ("apgd-ce", "apgd-t")  # the ci profile's subset


@pytest.fixture(scope="module")
def digits(mnist_eval):
    """The first 32 real MNIST test digits."""
    return mnist_eval[0][:32], mnist_eval[1][:32]


@contextlib.contextmanager
def no_flags():
    """A context in which an AutoAttackFlag fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", independent.AutoAttackFlag)
        yield


# --- the threat model ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_autoattack_stays_in_the_threat_model_and_the_pixel_box(mnist_model, digits, norm, eps):
    x, y = digits
    x_adv = independent.AutoAttack(eps=eps, norm=norm, attacks=GRADIENT, **FAST)(mnist_model, x, y)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (attacks.threat(norm).norm(x_adv - x) <= eps + 1e-4).all()


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.5)])
def test_every_standard_attack_stays_in_the_threat_model(tiny_model, mnist_eval, norm, eps):
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    for attack in independent.STANDARD:
        aa = independent.AutoAttack(eps=eps, norm=norm, attacks=(attack,), n_iter=3, n_target_classes=2, n_queries=20)
        x_adv = aa(tiny_model, x, y)
        assert x_adv.min() >= 0 and x_adv.max() <= 1, attack
        assert (attacks.threat(norm).norm(x_adv - x) <= eps + 1e-4).all(), attack


def test_autoattack_at_zero_eps_returns_the_input(tiny_model, digits):
    x, y = digits
    assert torch.equal(independent.AutoAttack(eps=0.0)(tiny_model, x, y), x)


def test_autoattack_beats_a_deliberately_crippled_pgd(mnist_model, mnist_eval):
    # PGD with a step far too small cannot leave the neighbourhood of its start: the independent
    # check must expose it as overestimating robustness, the gap the chapters report.
    x, y = mnist_eval[0][:100], mnist_eval[1][:100]
    weak = attacks.PGD(eps=0.15, steps=5, step_size=0.001, random_start=False)
    aa = independent.AutoAttack(eps=0.15, attacks=("apgd-ce",), n_iter=5)
    result = evaluate.compare(mnist_model, x, y, {"weak": weak, "aa": aa})
    assert evaluate.overestimate_pp(result, "weak") > 10


# --- settings and their errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"attacks": ("apgd-ce", "apgd-dlr")}, r"distinct names among the standard version's .*'apgd-dlr'"),
        ({"attacks": ("apgd-ce", "apgd-ce")}, r"distinct names among the standard version's"),
        ({"attacks": ()}, r"distinct names among the standard version's"),
        ({"attacks": "apgd-ce"}, r"got one name 'apgd-ce': use \('apgd-ce',\)"),
        ({"n_iter": 0}, r"n_iter must be an integer >= 1 or None \(the standard version's value\); got 0"),
        ({"n_target_classes": 2.5}, r"n_target_classes must be an integer >= 1 or None"),
        ({"n_queries": True}, r"n_queries must be an integer >= 1 or None"),
        ({"eps": 8}, r"l_inf eps=8 is above 1: .*did you mean eps=8/255 = 0\.0314\?"),
        ({"eps": -0.1}, r"eps must be a finite number >= 0"),
        ({"norm": "l1"}, r"unknown norm 'l1': use one of \['l2', 'linf'\]"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(settings, message):
    with pytest.raises(ValueError, match=message):
        independent.AutoAttack(**{"eps": 0.1, **settings})


def test_an_l2_eps_beyond_the_diameter_and_images_without_a_channel_axis_are_refused(mnist_model, digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"l_2 eps=100 exceeds 28"):
        independent.AutoAttack(eps=100.0, norm="l2")(mnist_model, x, y)
    with pytest.raises(ValueError, match=r"takes images shaped \[N, C, H, W\]; got \(32, 28, 28\): reshape"):
        independent.AutoAttack(eps=0.1)(mnist_model, x[:, 0], y)


def classifier(classes: int) -> models.Classifier:
    runtime.set_seed(0)
    return models.build("mnist_cnn", channels=(4, 8), hidden=32, num_classes=classes).eval()


def own_labels(model, x):
    """The model's own predictions: every point starts robust, so a cascade attacks them all."""
    with torch.no_grad():
        return model(x).argmax(1)


def test_a_model_with_too_few_classes_for_the_targeted_attacks_is_refused_with_the_fix(digits):
    x = digits[0][:16]
    three = classifier(3)
    y = own_labels(three, x)
    leave_out = r"this model has 3: leave them out, e.g\. attacks=\('apgd-ce', 'square'\)"
    with pytest.raises(ValueError, match=r"APGD-T need\(s\) at least 4 classes .*" + leave_out):
        independent.AutoAttack(eps=0.1, attacks=GRADIENT, n_iter=2)(three, x, y)
    with pytest.raises(ValueError, match=r"APGD-T, FAB-T need\(s\) at least 4 classes"):
        independent.AutoAttack(eps=0.1, n_iter=2)(three, x, y)
    with pytest.raises(ValueError, match=leave_out):  # the book's suite, through compare
        evaluate.compare(three, x, y, independent.suite(0.1, "linf", 2, {"attacks": list(GRADIENT), "n_iter": 2}))
    x_adv = independent.AutoAttack(eps=0.1, attacks=("apgd-ce", "square"), n_iter=2, n_queries=5)(three, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6  # the fix works

    five = classifier(5)
    y = own_labels(five, x)
    with pytest.raises(
        ValueError, match=r"n_target_classes \+ 1 \(here 10\); this model has 5: use n_target_classes=4"
    ):
        independent.AutoAttack(eps=0.1, attacks=GRADIENT, n_iter=2)(five, x, y)
    with no_flags():  # the fix works, and AutoAttack's own class check agrees
        x_adv = independent.AutoAttack(eps=0.1, attacks=GRADIENT, n_iter=2, n_target_classes=4)(five, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


# --- seeding and the model's mode ----------------------------------------------------------------


def test_autoattack_depends_only_on_its_seed(mnist_model, digits):
    x, y = digits
    attack = independent.AutoAttack(eps=0.1, attacks=GRADIENT, **FAST)
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append(attack(mnist_model, x, y))
    assert torch.equal(runs[0], runs[1])
    other = independent.AutoAttack(eps=0.1, attacks=GRADIENT, **FAST, seed=1)(mnist_model, x, y)
    assert not torch.equal(runs[0], other)  # its own seed does reach its random starts


def test_autoattack_leaves_the_callers_random_state_as_it_found_it(mnist_model, digits):
    x, y = digits
    torch.manual_seed(123)
    independent.AutoAttack(eps=0.1, attacks=GRADIENT, n_iter=2, n_target_classes=2)(mnist_model, x, y)
    after = torch.rand(8)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(8))


def test_autoattack_runs_the_model_in_eval_mode_and_restores_its_mode(make_tiny_model, digits):
    model = make_tiny_model(3).train()
    modes = []
    model.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    x, y = digits
    first = independent.AutoAttack(eps=0.2, attacks=GRADIENT, n_iter=2, n_target_classes=2)(model, x, y)
    assert modes and not any(modes) and model.training
    second = independent.AutoAttack(eps=0.2, attacks=GRADIENT, n_iter=2, n_target_classes=2)(model, x, y)
    assert torch.equal(first, second) and model.training


class RandomProbe:
    """An attack that returns its input and records one draw of the global generator per call."""

    def __init__(self):
        self.draws = []

    def __call__(self, model, x, y):
        self.draws.append(torch.rand(4))
        return x


def test_pgd_random_starts_stay_fresh_after_autoattack_reseeds(mnist_model, mnist_eval):
    # AutoAttack calls torch.manual_seed(seed) in every attack: without keep_random_state, every
    # batch after it would draw the same "random" starts.
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    probe = RandomProbe()
    aa = independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2)
    evaluate.compare(mnist_model, x, y, {"aa": aa, "probe": probe}, batch_size=16)
    assert len(probe.draws) == 4
    assert len({tuple(d.tolist()) for d in probe.draws}) == 4, "each batch's random starts must be fresh"
    runtime.set_seed(0)
    starts = []
    for _ in range(2):
        aa(mnist_model, x[:8], y[:8])
        starts.append(attacks.pgd(mnist_model, x[:8], y[:8], eps=0.1, steps=1, step_size=0.0))
    assert not torch.equal(starts[0], starts[1])


def test_training_random_starts_stay_fresh_with_an_autoattack_monitor(mnist_eval):
    from robustutils import train

    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    probe = RandomProbe()
    model = models.build("mnist_cnn", channels=(4, 8), hidden=32)
    monitor = train.Monitor(x[:8], y[:8], attack=independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2))
    train.fit(model, (x, y), epochs=3, batch_size=32, attack=probe, callbacks=[monitor])
    assert len(probe.draws) == 3 and len({tuple(d.tolist()) for d in probe.draws}) == 3


# --- what it says it ran ------------------------------------------------------------------------


def test_autoattack_is_an_attack_whose_settings_are_plain_and_complete():
    aa = independent.AutoAttack(eps=0.1, attacks=("apgd-t", "apgd-ce"), n_iter=10, n_target_classes=3)
    assert isinstance(aa, attacks.Attack) and not isinstance(aa, attacks.ScalableAttack)
    assert aa.attacks == GRADIENT, "the attacks run in AutoAttack's order"
    settings = aa.settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings == {
        "attack": "AutoAttack APGD-CE, APGD-T (10 iterations, 3 target classes)",
        "eps": 0.1,
        "norm": "linf",
        "attacks": ["apgd-ce", "apgd-t"],
        "n_iter": 10,
        "n_target_classes": 3,
        "seed": 0,
        "pyautoattack": version("pyautoattack"),
    }
    assert independent.package_version() == version("pyautoattack")
    standard = independent.AutoAttack(eps=8 / 255, norm="l2").settings()
    assert {k: standard[k] for k in independent.STANDARD_SETTINGS} == {
        "n_iter": 100,
        "n_target_classes": 9,
        "n_queries": 5000,
    }
    assert standard["attacks"] == list(independent.STANDARD) and standard["norm"] == "l2"


def test_the_name_says_standard_or_lists_what_differs():
    assert independent.AutoAttack(eps=8 / 255).name == "AutoAttack (standard)"
    assert independent.AutoAttack(eps=8 / 255, n_iter=100, n_target_classes=9, n_queries=5000).name == (
        "AutoAttack (standard)"
    ), "the standard values given explicitly are still the standard version"
    assert independent.AutoAttack(eps=0.3, attacks=GRADIENT).name == "AutoAttack APGD-CE, APGD-T"
    assert independent.AutoAttack(eps=0.3, attacks=("square",), n_queries=100).name == (
        "AutoAttack Square (100 queries)"
    )
    assert independent.AutoAttack(eps=0.3, n_iter=10, n_target_classes=3, n_queries=100).name == (
        "AutoAttack APGD-CE, APGD-T, FAB-T, Square (10 iterations, 3 target classes, 100 queries)"
    )


def test_autoattack_keeps_its_own_losses():
    with pytest.raises(
        NotImplementedError,
        match=r"keeps its attacks' own losses.*attacks\.PGD\(eps=0\.1, norm='linf', \.\.\.\)\.with_loss\(loss_fn\)",
    ):
        independent.AutoAttack(eps=0.1).with_loss(attacks.cross_entropy)


# --- AutoAttack's sanity checks surface as flags --------------------------------------------------


class Noisy(torch.nn.Module):
    """A randomised defence: noise on the input in every forward pass, in eval mode too."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x + 0.05 * torch.randn_like(x)).clamp(0, 1))


@pytest.mark.parametrize(
    "wrap, message",
    [
        (
            lambda net: torch.nn.Sequential(net, torch.nn.Softmax(dim=-1)),
            "it seems that the output is a probability distribution",
        ),
        (Noisy, "it seems to be a randomized defense"),
    ],
    ids=["probabilities", "randomised"],
)
def test_autoattacks_sanity_checks_are_raised_as_flags(tiny_model, digits, wrap, message):
    x, y = digits
    aa = independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2)
    with pytest.warns(independent.AutoAttackFlag, match=rf"^AutoAttack APGD-CE \(2 iterations\): {message}"):
        aa(wrap(tiny_model).eval(), x, y)
    with no_flags():  # the model itself passes the checks
        aa(tiny_model, x, y)


def test_a_flag_shows_once_per_call_on_every_call(tiny_model, digits):
    x, y = digits
    on_probabilities = torch.nn.Sequential(tiny_model, torch.nn.Softmax(dim=-1)).eval()
    aa = independent.AutoAttack(eps=0.1, attacks=GRADIENT, n_iter=2, n_target_classes=2)
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always", independent.AutoAttackFlag)
        aa(on_probabilities, x, y)
        aa(on_probabilities, x, y)
    flags = [str(w.message) for w in raised if issubclass(w.category, independent.AutoAttackFlag)]
    assert len(flags) == 2 and all("probability distribution" in f for f in flags)


# --- the book's suite ---------------------------------------------------------------------------


def test_suite_runs_our_pgd_then_each_autoattack_attack_in_autoattacks_order():
    suite = independent.suite(0.3, "linf", pgd_steps=40, autoattack={"attacks": ["square", "apgd-t", "apgd-ce"]})
    assert list(suite) == ["pgd-40", "aa-apgd-ce", "aa-apgd-t", "aa-square"]
    assert isinstance(suite["pgd-40"], attacks.PGD) and suite["pgd-40"].steps == 40
    assert [a.attacks for k, a in suite.items() if k != "pgd-40"] == [("apgd-ce",), ("apgd-t",), ("square",)]
    assert all(a.eps == 0.3 and a.norm == "linf" for a in suite.values())
    assert independent.stage_key("apgd-t") == "aa-apgd-t"
    assert independent.order(["square", "apgd-ce"]) == ("apgd-ce", "square")


def test_suite_passes_the_autoattack_settings_to_every_stage():
    suite = independent.suite(1.0, "l2", 10, {"attacks": list(GRADIENT), **FAST})
    for key in ("aa-apgd-ce", "aa-apgd-t"):
        settings = suite[key].settings()
        assert (settings["n_iter"], settings["norm"]) == (5, "l2")
        assert suite[key].n_target_classes == 3, "passed on, recorded where the attack uses it"
    assert suite["aa-apgd-t"].settings()["n_target_classes"] == 3
    assert independent.describe({"attacks": list(GRADIENT), **FAST}) == (
        "AutoAttack APGD-CE, APGD-T (5 iterations, 3 target classes)"
    )


def test_suite_steps_follow_the_one_step_size_rule():
    autoattack = {"attacks": ["apgd-ce"]}
    assert independent.suite(0.3, "linf", 40, autoattack)["pgd-40"].settings()["step_size"] == attacks.step_size(
        0.3, 40
    )
    factored = independent.suite(0.3, "linf", 40, autoattack, pgd_step_factor=0.25)["pgd-40"]
    assert factored.step_size == attacks.step_size(0.3, 40, 0.25) == 0.25 * 0.3


def test_suite_names_restarted_pgd_by_its_restarts():
    suite = independent.suite(0.3, "linf", pgd_steps=100, autoattack={"attacks": ["apgd-ce"]}, pgd_restarts=20)
    assert list(suite)[0] == independent.pgd_key(100, 20) == "pgd-100x20" and suite["pgd-100x20"].restarts == 20


@pytest.mark.parametrize(
    "autoattack, message",
    [
        (
            {"attacks": ["apgd-ce"], "n_iters": 5},
            r"unknown AutoAttack settings \['n_iters'\]: use \['attacks', 'n_iter'",
        ),
        ({"n_iter": 5}, r"autoattack is a dict with at least 'attacks', e\.g\."),
        (["apgd-ce"], r"autoattack is a dict with at least 'attacks'"),
        ({"attacks": ["apgd-dlr"]}, r"distinct names among the standard version's"),
        ({"attacks": ["apgd-ce"], "n_iter": 0}, r"n_iter must be an integer >= 1"),
    ],
)
def test_suite_refuses_unknown_or_bad_autoattack_settings(autoattack, message):
    with pytest.raises(ValueError, match=message):
        independent.suite(0.3, "linf", 10, autoattack)


def test_the_suites_cascade_is_autoattacks_own_run_after_our_pgd(mnist_model, mnist_eval):
    # Stage by stage, each AutoAttack attack sees the points every earlier one left robust, as in
    # AutoAttack's own run: without PGD first, the last stage is AutoAttack's own robust accuracy.
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    suite = independent.suite(0.15, "linf", 5, {"attacks": list(GRADIENT), **FAST})
    stages = {k: a for k, a in suite.items() if k.startswith("aa-")}
    alone = evaluate.cascade(mnist_model, x, y, stages)
    x_adv = independent.AutoAttack(eps=0.15, attacks=GRADIENT, **FAST)(mnist_model, x, y)
    assert alone["robust_acc"]["aa-apgd-t"] == evaluate.evaluate(mnist_model, x_adv, y)["clean_acc"]
    result = evaluate.cascade(mnist_model, x, y, suite)
    values = list(result["robust_acc"].values())
    assert list(result["robust_acc"]) == ["pgd-5", "aa-apgd-ce", "aa-apgd-t"]
    assert result["clean_acc"] >= values[0] >= values[1] >= values[2]
    assert values[2] < result["clean_acc"], "PGD and AutoAttack at eps 0.15 must break some digits"
    assert result["attacks"]["aa-apgd-t"]["attack"] == "AutoAttack APGD-T (5 iterations, 3 target classes)"


def test_compare_takes_the_per_example_worst_case_of_the_suite(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    autoattack = {"attacks": ["apgd-ce"], "n_iter": 5}
    suite = {"identity": lambda model, xb, yb: xb, **independent.suite(0.1, "linf", 10, autoattack)}
    result = evaluate.compare(mnist_model, x, y, suite, batch_size=32)
    assert result["robust_acc"]["identity"] == result["clean_acc"]
    assert result["worst_acc"] <= min(result["robust_acc"].values())
    assert evaluate.overestimate_pp(result, "pgd-10") >= 0


def test_compare_needs_an_attack(mnist_model, mnist_eval):
    with pytest.raises(ValueError, match="at least one attack"):
        evaluate.compare(mnist_model, *mnist_eval, {})


def test_square_flags_run_autoattacks_own_square_check_on_the_cascade():
    # One AutoAttack call per stage cannot run AutoAttack's Square check, so the evaluation runs it on
    # the whole cascade: Square finding 38 more points than the gradient attacks is a flag.
    cascade = {"pgd-3": 0.9, "aa-apgd-ce": 0.9, "aa-apgd-t": 0.88, "aa-square": 0.5}
    (flag,) = independent.square_flags(cascade)
    assert "Square Attack has decreased the robust accuracy of 38.00%" in flag
    assert independent.square_flags({**cascade, "aa-square": 0.879}) == []  # within AutoAttack's 0.2 points
    assert independent.square_flags({"pgd-3": 0.9, "aa-apgd-ce": 0.5}) == []  # no Square stage


def test_the_callers_logging_configuration_cannot_silence_a_flag(tiny_model, digits):
    x, y = digits
    on_probabilities = torch.nn.Sequential(tiny_model, torch.nn.Softmax(dim=-1)).eval()
    aa = independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2)
    root, level = logging.getLogger(), logging.getLogger().level
    try:
        root.setLevel(logging.ERROR)
        logging.disable(logging.WARNING)
        with pytest.warns(independent.AutoAttackFlag, match="probability distribution"):
            aa(on_probabilities, x, y)
        assert logging.root.manager.disable == logging.WARNING, "the caller's setting is restored"
    finally:
        logging.disable(logging.NOTSET)
        root.setLevel(level)


@pytest.mark.parametrize("iters", [10, 100])
def test_apgds_step_size_schedule_follows_the_iterations_it_runs(tiny_model, iters):
    # pyautoattack derives APGD's checkpoints from n_iter in __init__; a changed n_iter must move them too.
    built = independent.AutoAttack(eps=0.1, n_iter=iters)._build(tiny_model, torch.device("cpu"))
    for apgd in (built.apgd, built.apgd_targeted):
        assert (apgd.n_iter, apgd.n_iter_orig) == (iters, iters)
        assert (apgd.n_iter_2, apgd.n_iter_min, apgd.size_decr) == (
            max(int(0.22 * iters), 1),
            max(int(0.06 * iters), 1),
            max(int(0.03 * iters), 1),
        )


@pytest.mark.parametrize("seed", [None, "a", 1.5, -1, True])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0"):
        independent.AutoAttack(eps=0.1, seed=seed)


def test_settings_and_name_leave_out_what_the_attacks_run_do_not_use():
    aa = independent.AutoAttack(eps=0.1, attacks=("apgd-ce",), n_iter=2, n_queries=5)
    assert aa.name == "AutoAttack APGD-CE (2 iterations)"
    assert "n_queries" not in aa.settings() and "n_target_classes" not in aa.settings()


@pytest.mark.parametrize(
    "autoattack", [{"attacks": "apgd-ce"}, {"attacks": None}, {"attacks": ["apgd-ce"], "n_iters": 3}, {}]
)
def test_suite_and_describe_refuse_malformed_autoattack_settings(autoattack):
    with pytest.raises(ValueError, match="attacks|AutoAttack settings"):
        independent.suite(0.1, "linf", 2, autoattack)
    with pytest.raises(ValueError, match="attacks|AutoAttack settings"):
        independent.describe(autoattack)
