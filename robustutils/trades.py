"""TRADES (Zhang et al. 2019): pick a point on the accuracy-robustness trade-off with one number, beta.

The training loss is ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, where ``x_adv`` maximises the
KL term inside the threat model. ``beta = 0`` is standard training; larger beta buys robustness
with standard accuracy. Use it through :func:`robustutils.train.fit` as ``loss=TradesLoss(beta)``.
"""

import dataclasses

import torch
import torch.nn.functional as F

from .attacks import Attack
from .distributed import unwrap


def kl_to_clean(model: torch.nn.Module, x_adv: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """Return the per-example KL(p_clean || f(x_adv)) [N] in nats: the inner objective TRADES' attack maximises.

    ``clean_probs`` [N, C] are the model's softmax outputs on the clean inputs (held fixed).
    """
    log_adv = F.log_softmax(model(x_adv), dim=1)
    return F.kl_div(log_adv, clean_probs, reduction="none").sum(dim=1)


@dataclasses.dataclass(frozen=True)
class TradesLoss:
    """TRADES' training objective with trade-off weight ``beta`` (>= 0).

    ``loss(model, x, y, attack)`` returns (mean loss in nats, clean logits), the contract of
    :func:`robustutils.train.madry_loss`.
    """

    beta: float

    def __post_init__(self):
        if not self.beta >= 0:
            raise ValueError(f"TRADES beta must be >= 0; got {self.beta!r}")

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, attack
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mean loss in nats, clean logits). ``attack`` is an
        :class:`~robustutils.attacks.Attack`, run as ``attack.with_loss(kl_to_clean)`` on the module
        itself (inside a DDP wrapper: this rank's shard, no collectives); with ``attack=None`` the
        loss is plain cross-entropy."""
        model.train()
        if attack is None:
            logits = model(x)
            return F.cross_entropy(logits, y), logits
        if not isinstance(attack, Attack):
            raise ValueError(
                f"TRADES attacks its KL term with attack.with_loss(kl_to_clean), which needs an "
                f"attacks.Attack such as attacks.PGD(eps=..., steps=...); got {attack!r}"
            )
        model.eval()
        with torch.no_grad():
            clean_probs = F.softmax(model(x), dim=1)
        x_adv = attack.with_loss(kl_to_clean)(unwrap(model), x, clean_probs)
        model.train()
        logits, logits_adv = model(x), model(x_adv)
        robust_term = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + self.beta * robust_term, logits
