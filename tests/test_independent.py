"""The independent attack (torchattacks' APGD) and the side-by-side comparison of attacks."""

import pytest
import torch

from robustutils import attacks, evaluate, independent


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
