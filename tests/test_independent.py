"""The independent attack (torchattacks' APGD) and the side-by-side comparison of attacks."""

import json

import pytest
import torch

from robustutils import attacks, evaluate, independent, runtime


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_apgd_stays_in_the_threat_model_and_the_pixel_box(mnist_model, mnist_eval, norm, eps):
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    x_adv = independent.APGD(eps=eps, norm=norm, steps=10)(mnist_model, x, y)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (attacks.threat(norm).norm(x_adv - x) <= eps + 1e-4).all()


def test_apgd_is_deterministic_and_restores_the_model_mode(make_tiny_model, mnist_eval):
    model = make_tiny_model(3).train()
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    attack = independent.APGD(eps=0.2, steps=5)
    first, second = attack(model, x, y), attack(model, x, y)
    assert torch.equal(first, second) and model.training


def test_apgd_at_zero_eps_returns_the_input(tiny_model, mnist_eval):
    x, y = mnist_eval[0][:8], mnist_eval[1][:8]
    assert torch.equal(independent.APGD(eps=0.0)(tiny_model, x, y), x)


def test_apgd_refuses_unknown_settings():
    with pytest.raises(ValueError, match="unknown APGD loss"):
        independent.APGD(eps=0.1, loss="hinge")
    with pytest.raises(ValueError, match="unknown norm"):
        independent.APGD(eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="eps must be"):
        independent.APGD(eps=-0.1)


def test_suite_names_our_pgd_and_both_apgd_losses():
    suite = independent.suite(0.3, "linf", pgd_steps=40, apgd_steps=50)
    assert list(suite) == ["pgd-40", "apgd-ce", "apgd-dlr"]
    assert suite["pgd-40"].steps == 40 and suite["apgd-dlr"].loss == "dlr" and suite["apgd-ce"].steps == 50
    assert all(a.eps == 0.3 and a.norm == "linf" for a in suite.values())


def test_apgd_is_an_attack_whose_settings_are_plain_and_which_keeps_its_own_loss():
    apgd = independent.APGD(eps=0.1, steps=20, restarts=2, loss="dlr")
    assert isinstance(apgd, attacks.Attack) and not isinstance(apgd, attacks.ScalableAttack)
    settings = apgd.settings()
    assert json.loads(json.dumps(settings)) == settings
    assert (settings["eps"], settings["restarts"], settings["attack"]) == (0.1, 2, "apgd-dlr (torchattacks)")
    with pytest.raises(
        NotImplementedError,
        match=r"only its own 'ce' or 'dlr' loss.*attacks\.PGD\(eps=0\.1, "
        r"norm='linf', \.\.\.\)\.with_loss\(loss_fn\)",
    ):
        apgd.with_loss(attacks.cross_entropy)


def test_suite_steps_follow_the_one_step_size_rule():
    assert independent.suite(0.3, "linf", 40, 10)["pgd-40"].settings()["step_size"] == attacks.step_size(0.3, 40)
    factored = independent.suite(0.3, "linf", 40, 10, pgd_step_factor=0.25)["pgd-40"]
    assert factored.step_size == attacks.step_size(0.3, 40, 0.25) == 0.25 * 0.3


def test_suite_names_restarted_pgd_by_its_restarts():
    suite = independent.suite(0.3, "linf", pgd_steps=100, apgd_steps=10, pgd_restarts=20)
    assert list(suite)[0] == independent.pgd_key(100, 20) == "pgd-100x20" and suite["pgd-100x20"].restarts == 20


def test_compare_takes_the_per_example_worst_case(mnist_model, mnist_eval):
    x, y = mnist_eval
    suite = {"identity": lambda model, xb, yb: xb, **independent.suite(0.1, "linf", 10, 10)}
    result = evaluate.compare(mnist_model, x, y, suite, batch_size=250)
    assert result["robust_acc"]["identity"] == result["clean_acc"]
    assert result["worst_acc"] <= min(result["robust_acc"].values())
    assert result["worst_acc"] < result["clean_acc"], "PGD and APGD at eps 0.1 must break some digits"
    assert evaluate.overestimate_pp(result, "pgd-10") >= 0
    assert result["attacks"]["apgd-ce"]["attack"].startswith("apgd-ce")


def test_compare_needs_an_attack(mnist_model, mnist_eval):
    with pytest.raises(ValueError, match="at least one attack"):
        evaluate.compare(mnist_model, *mnist_eval, {})


def test_apgd_beats_a_deliberately_crippled_pgd(mnist_model, mnist_eval):
    # PGD with a step far too small cannot leave the neighbourhood of its start: the independent
    # check must expose it as overestimating robustness - the gap R1 asks the chapters to report.
    x, y = mnist_eval
    weak = attacks.PGD(eps=0.15, steps=5, step_size=0.001, random_start=False)
    result = evaluate.compare(mnist_model, x, y, {"weak": weak, "apgd-ce": independent.APGD(eps=0.15, steps=20)})
    assert evaluate.overestimate_pp(result, "weak") > 10


# --- APGD-DLR needs three classes; APGD leaves the caller's random state alone -------------


def two_class_model():
    from robustutils import models, runtime

    runtime.set_seed(0)
    return models.build("mnist_cnn", channels=(4, 8), hidden=32, num_classes=2).eval()


def test_apgd_dlr_refuses_a_model_with_fewer_than_three_classes(mnist_eval):
    x, y = mnist_eval[0][:16], mnist_eval[1][:16] % 2
    model = two_class_model()
    message = r"APGD with loss='dlr' needs a model with at least 3 classes .*this model has 2: use loss='ce'"
    with pytest.raises(ValueError, match=message):
        independent.APGD(eps=0.1, steps=2, loss="dlr")(model, x, y)
    with pytest.raises(ValueError, match=message):  # the book's suite, through compare
        evaluate.compare(model, x, y, independent.suite(0.1, "linf", pgd_steps=2, apgd_steps=2))
    x_adv = independent.APGD(eps=0.1, steps=2, loss="ce")(model, x, y)  # the fix works
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6


def test_apgd_leaves_the_global_random_state_as_it_found_it(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    torch.manual_seed(123)
    independent.APGD(eps=0.1, steps=3)(mnist_model, x, y)
    after = torch.rand(8)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(8))


def test_apgd_is_deterministic_whatever_the_global_random_state(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    attack = independent.APGD(eps=0.1, steps=5, restarts=2)
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append(attack(mnist_model, x, y))
    assert torch.equal(runs[0], runs[1])
    other = independent.APGD(eps=0.1, steps=5, restarts=2, seed=1)(mnist_model, x, y)
    assert not torch.equal(runs[0], other)  # its own seed does reach its random starts


class RandomProbe:
    """An attack that returns its input and records one draw of the global generator per call."""

    def __init__(self):
        self.draws = []

    def __call__(self, model, x, y):
        self.draws.append(torch.rand(4))
        return x


def test_pgd_random_starts_differ_across_batches_after_apgd_in_compare(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:64], mnist_eval[1][:64]
    probe = RandomProbe()
    evaluate.compare(mnist_model, x, y, {"apgd": independent.APGD(eps=0.1, steps=2), "probe": probe}, batch_size=16)
    assert len(probe.draws) == 4
    assert len({tuple(d.tolist()) for d in probe.draws}) == 4, "each batch's random starts must be fresh"
    # and the starts PGD itself draws after APGD are fresh too
    runtime.set_seed(0)
    starts = []
    for _ in range(2):
        independent.APGD(eps=0.1, steps=2)(mnist_model, x[:8], y[:8])
        starts.append(attacks.pgd(mnist_model, x[:8], y[:8], eps=0.1, steps=1, step_size=0.0))
    assert not torch.equal(starts[0], starts[1])


def test_training_random_starts_differ_across_epochs_with_an_apgd_eval_attack(mnist_eval):
    from robustutils import models, train

    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    probe = RandomProbe()
    model = models.build("mnist_cnn", channels=(4, 8), hidden=32)
    train.fit(
        model,
        (x, y),
        epochs=3,
        batch_size=32,
        attack=probe,
        callbacks=[train.Monitor(x[:8], y[:8], attack=independent.APGD(eps=0.1, steps=2))],
    )
    assert len(probe.draws) == 3 and len({tuple(d.tolist()) for d in probe.draws}) == 3
