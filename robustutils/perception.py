"""What a model's gradients and large perturbations look like (Tsipras et al. section 3).

Loss gradients with respect to the input, rendered as the paper does; large-eps (targeted)
examples that follow them; linear interpolations between an image and such an example; and
two numbers that put the "robust models see like people" claim to a test: how well gradient
magnitude aligns with the image's edges, and how often another model agrees that a targeted
large-eps image shows its target.
"""

import torch
import torch.nn.functional as F

from .attacks import pgd
from .evaluate import predict

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def loss_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Return d CE(model(x), y) / dx per example, shaped like ``x`` (nats per pixel unit), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    finally:
        model.train(was_training)
    return grad.detach()


def signed_map(grad: torch.Tensor) -> torch.Tensor:
    """Return each gradient divided by its largest absolute value: [-1, 1], for a diverging colour map."""
    scale = grad.flatten(1).abs().amax(1).clamp_min(1e-12)
    return grad / scale.view(-1, *[1] * (grad.dim() - 1))


def clipped_map(grad: torch.Tensor, n_std: float = 3.0) -> torch.Tensor:
    """Return each gradient clipped to ``n_std`` standard deviations about its mean and rescaled to
    [0, 1] (Tsipras et al.'s rendering of CIFAR-10 and ImageNet gradients)."""
    flat = grad.flatten(1)
    mean, std = flat.mean(1).view(-1, 1), flat.std(1).clamp_min(1e-12).view(-1, 1)
    lo, hi = mean - n_std * std, mean + n_std * std
    return ((flat.clamp(lo, hi) - lo) / (hi - lo)).view_as(grad)


def toward(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, *, eps: float, steps: int = 40,
           step_size: float | None = None, norm: str = "l2") -> torch.Tensor:
    """Return targeted large-eps images in [0, 1]: ``steps`` steps down the loss of ``target``,
    from ``x`` itself (no random start), within ``eps`` of ``x`` in ``norm`` (pixel units)."""
    return pgd(model, x, target, eps=eps, steps=steps, step_size=step_size, norm=norm, targeted=True,
               random_start=False, use_best=False)


def interpolate(start: torch.Tensor, end: torch.Tensor, points: int = 20) -> torch.Tensor:
    """Return ``points`` images on the segment from ``start`` to ``end`` (both included), evenly spaced:
    ``[points, *start.shape]``."""
    if points < 2:
        raise ValueError(f"an interpolation needs at least its two endpoints; got points={points}")
    weights = torch.linspace(0, 1, points, device=start.device).view(-1, *[1] * start.dim())
    return (1 - weights) * start.unsqueeze(0) + weights * end.unsqueeze(0)


def sobel_edges(x: torch.Tensor) -> torch.Tensor:
    """Return the Sobel edge magnitude [N, H, W] of images [N, C, H, W] (channels averaged first)."""
    gray = x.mean(1, keepdim=True)
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).unsqueeze(1).to(x)
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return g.pow(2).sum(1).sqrt()


def edge_alignment(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return, per example, the Pearson correlation [-1, 1] between the gradient's magnitude
    (l2 over channels) and the Sobel edge magnitude of ``x``: high when the gradient sits on edges."""
    a = grad.pow(2).sum(1).sqrt().flatten(1)
    b = sobel_edges(x).flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def target_rate(judge: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    """Return the fraction of ``x`` that ``judge`` classifies as ``target``."""
    return (predict(judge, x) == target.to(next(judge.parameters()).device)).float().mean().item()


def edge_energy_share(grad: torch.Tensor, x: torch.Tensor, top: float = 0.2) -> torch.Tensor:
    """Return, per example, the share [0, 1] of the gradient's squared magnitude that falls on the
    ``top`` fraction of pixels with the strongest Sobel edges of ``x``; a gradient blind to edges
    scores about ``top``."""
    energy = grad.pow(2).sum(1).flatten(1)
    edges = sobel_edges(x).flatten(1)
    k = max(1, round(top * edges.shape[1]))  # exactly k pixels, even where many edges tie at 0
    on_edges = torch.zeros_like(edges).scatter_(1, edges.topk(k, dim=1).indices, 1.0)
    return (energy * on_edges).sum(1) / energy.sum(1).clamp_min(1e-30)
