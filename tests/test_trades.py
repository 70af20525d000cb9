"""TRADES: the inner KL objective and the training loss."""

import pytest
import torch
import torch.nn.functional as F

from robustutils import attacks, data, trades, train


def test_kl_to_clean_is_zero_at_the_clean_input_and_positive_away_from_it(tiny_model, mnist_eval):
    x = mnist_eval[0][:16]
    with torch.no_grad():
        probs = F.softmax(tiny_model(x), dim=1)
        at_clean = trades.kl_to_clean(tiny_model, x, probs)
        away = trades.kl_to_clean(tiny_model, (x + 0.3 * torch.rand_like(x)).clamp(0, 1), probs)
    assert at_clean.shape == (16,) and torch.allclose(at_clean, torch.zeros(16), atol=1e-6)
    assert (away >= 0).all() and away.sum() > 0


def test_trades_with_beta_zero_is_cross_entropy_on_clean_inputs(make_tiny_model, mnist_eval):
    model = make_tiny_model(1)
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    value, logits = trades.TradesLoss(0.0)(model, x, y, attacks.PGD(eps=0.3, steps=2))
    assert torch.allclose(value, F.cross_entropy(model(x), y), atol=1e-6)
    assert torch.allclose(logits, model(x), atol=1e-6)


def test_trades_adds_a_non_negative_robust_term(make_tiny_model, mnist_eval):
    model = make_tiny_model(2)
    x, y = mnist_eval[0][:32], mnist_eval[1][:32]
    attack = attacks.PGD(eps=0.3, steps=3)
    ce, _ = trades.TradesLoss(0.0)(model, x, y, attack)
    total, _ = trades.TradesLoss(6.0)(model, x, y, attack)
    assert total > ce


class KLRecordingAttack:
    """An :class:`robustutils.attacks.Attack` that is no dataclass: TRADES must reach its KL objective
    through ``with_loss`` alone. It records the loss it is given and returns the input unchanged."""

    def __init__(self, loss_fn=None, log=None):
        self.loss_fn, self.log = loss_fn, [] if log is None else log

    def __call__(self, model, x, y):
        self.log.append((self.loss_fn, y))
        return x

    def settings(self):
        return {"attack": "identity"}

    def with_loss(self, loss_fn):
        return KLRecordingAttack(loss_fn, self.log)


def test_trades_attacks_the_kl_term_through_with_loss(make_tiny_model, mnist_eval):
    model = make_tiny_model(3)
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    attack = KLRecordingAttack()
    value, logits = trades.TradesLoss(6.0)(model, x, y, attack)
    ((loss_fn, target),) = attack.log
    assert loss_fn is trades.kl_to_clean and target.shape == (16, 10)  # the clean probabilities, not the labels
    assert torch.allclose(target.sum(1), torch.ones(16))
    # x_adv = x makes the KL term zero: the loss is the clean cross-entropy
    assert torch.allclose(value, F.cross_entropy(logits, y), atol=1e-6)
    assert attacks.PGD(eps=0.3).with_loss(trades.kl_to_clean).settings()["loss_fn"] == "kl_to_clean"


def test_trades_refuses_an_attack_without_with_loss(make_tiny_model, mnist_eval):
    x, y = mnist_eval[0][:4], mnist_eval[1][:4]
    with pytest.raises(ValueError, match=r"TRADES attacks its KL term with attack\.with_loss\(kl_to_clean\)"):
        trades.TradesLoss(1.0)(make_tiny_model(), x, y, lambda model, xb, yb: xb)


def test_trades_refuses_a_negative_beta():
    with pytest.raises(ValueError, match="beta must be >= 0"):
        trades.TradesLoss(-1.0)


def test_fit_with_trades_learns_real_digits(make_tiny_model, mnist_train, mnist_eval):
    x, y = data.subset(*mnist_train, 2_000, generator=torch.Generator().manual_seed(0))
    model = make_tiny_model(0)
    history = train.fit(
        model,
        (x, y),
        epochs=2,
        batch_size=100,
        attack=attacks.PGD(eps=0.1, steps=2),
        loss=trades.TradesLoss(3.0),
        lr=5e-3,
        callbacks=[train.Monitor(*mnist_eval)],
    )
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_clean_acc"] > 0.6
