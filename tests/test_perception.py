"""Gradient maps, large-eps examples, interpolations and the alignment measures."""

import pytest
import torch

from robustutils import attacks, perception


def test_loss_gradient_has_the_input_shape_is_deterministic_and_keeps_the_mode(make_tiny_model, mnist_eval):
    model = make_tiny_model(0).train()
    x, y = mnist_eval[0][:16], mnist_eval[1][:16]
    first, second = perception.loss_gradient(model, x, y), perception.loss_gradient(model, x, y)
    assert first.shape == x.shape and torch.equal(first, second) and first.abs().sum() > 0
    assert model.training and not x.requires_grad


def test_renderings_stay_in_range():
    grad = torch.randn(4, 3, 8, 8) * 5
    signed = perception.signed_map(grad)
    assert signed.abs().amax() == pytest.approx(1.0) and signed.shape == grad.shape
    clipped = perception.clipped_map(grad)
    assert clipped.min() >= 0 and clipped.max() <= 1 and clipped.shape == grad.shape


def test_interpolation_endpoints_equal_the_inputs():
    a, b = torch.rand(1, 28, 28), torch.rand(1, 28, 28)
    path = perception.interpolate(a, b, 20)
    assert path.shape == (20, 1, 28, 28) and torch.equal(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path[10], a + (b - a) * 10 / 19, atol=1e-6)
    with pytest.raises(ValueError, match="at least its two endpoints"):
        perception.interpolate(a, b, 1)


def test_edge_alignment_ranks_an_edge_aligned_map_above_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 8:20, 8:20] = 1.0  # a bright square: its edges are the outline
    on_edges = perception.sobel_edges(x).unsqueeze(1) * torch.randn(8, 1, 28, 28, generator=gen).sign()
    noise = torch.randn(8, 1, 28, 28, generator=gen)
    aligned, random = perception.edge_alignment(on_edges, x), perception.edge_alignment(noise, x)
    assert (aligned > 0.9).all() and (random.abs() < 0.3).all()
    share_aligned = perception.edge_energy_share(on_edges, x)
    share_random = perception.edge_energy_share(noise, x)
    assert (share_aligned > 0.95).all() and (share_random - 0.2).abs().max() < 0.15, (share_aligned, share_random)


def test_toward_reaches_targets_within_eps_and_target_rate_counts_them(mnist_model, mnist_eval):
    x, y = mnist_eval[0][:50], mnist_eval[1][:50]
    target = (y + 1) % 10
    x_t = perception.toward(mnist_model, x, target, eps=5.0, steps=20)
    assert (attacks.L2.norm(x_t - x) <= 5.0 + 1e-4).all() and x_t.min() >= 0 and x_t.max() <= 1
    assert perception.target_rate(mnist_model, x_t, target) >= 0.8
    assert perception.target_rate(mnist_model, x, target) < 0.1
