"""Synthesis with a single classifier (robustutils.synthesis): the class Gaussians and their seeds,
class-conditional generation, inpainting and feature visualisation as targeted PGD, the measures
(judged rate, diversity) and chapter 5's studies, on tiny synthetic images and hand-built linear
models whose decisions, activations and variances are known exactly."""

import math

import pytest
import torch
from torch import nn

from robustutils import synthesis
from robustutils.models import Classifier

SIDE = 4  # 4x4 single-channel images: D = 16 pixel values, l_2 diameter 4
PIXEL = 5  # the one pixel (flat index) that decides the one-pixel model's class
BALL_TOL = 1e-5  # float32 slack on ||x - x0||_2 <= eps


def one_pixel_model(side: int = SIDE, pixel: int = PIXEL, scale: float = 10.0) -> Classifier:
    """A linear 2-class Classifier on [N, 1, side, side] images: class 1 iff ``x[pixel] > 0.5``
    (logit margin ``2 * scale * (x[pixel] - 0.5)``); the representation is the flattened image."""
    head = nn.Linear(side * side, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, pixel], head.weight[1, pixel] = -scale, scale
        head.bias.copy_(torch.tensor([scale / 2, -scale / 2]))
    return Classifier(nn.Flatten(), head, (0.0,), (1.0,)).eval()


def tanh_model(seed: int = 0, side: int = SIDE, width: int = 6, classes: int = 3) -> Classifier:
    """A small random-init Classifier with a tanh representation of ``width`` units (no dead units)."""
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Flatten(), nn.Linear(side * side, width), nn.Tanh())
    return Classifier(body, nn.Linear(width, classes), (0.0,), (1.0,)).eval()


def with_pixel(values, side: int = SIDE, pixel: int = PIXEL, background: float = 0.3) -> torch.Tensor:
    """Images [N, 1, side, side] of ``background`` with ``pixel`` set to each of ``values``."""
    x = torch.full((len(values), 1, side, side), background)
    x.view(len(values), -1)[:, pixel] = torch.tensor(values, dtype=torch.float32)
    return x


def class_images(seed: int = 0, per_class: int = 40, side: int = SIDE):
    """Two classes of random images in [0, 1], of different means: (x [2 * per_class, 1, side, side], y)."""
    g = torch.Generator().manual_seed(seed)
    shape = (per_class, 1, side, side)
    x = torch.cat([0.6 * torch.rand(shape, generator=g), 0.4 + 0.6 * torch.rand(shape, generator=g)])
    y = torch.arange(2).repeat_interleave(per_class)
    return x, y


def l2(delta: torch.Tensor) -> torch.Tensor:
    return delta.flatten(1).norm(dim=1)


# --- fit_class_gaussians ------------------------------------------------------------------------


def test_fit_class_gaussians_recovers_per_class_means_and_ridged_covariances():
    x, y = class_images(1, per_class=30)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm] + 3  # shuffled, classes 3 and 4 (not 0..K-1)
    ridge = 1e-3
    fitted = synthesis.fit_class_gaussians(x, y, ridge=ridge)
    assert fitted.classes.tolist() == [3, 4] and fitted.classes.dtype == torch.int64
    assert fitted.shape == (1, SIDE, SIDE)
    assert fitted.means.shape == (2, SIDE * SIDE) and fitted.scale_tril.shape == (2, SIDE * SIDE, SIDE * SIDE)
    for row, c in enumerate((3, 4)):
        xc = x[y == c].flatten(1).double()
        assert torch.allclose(fitted.means[row].double(), xc.mean(0), atol=1e-6)
        cov = torch.cov(xc.T) + ridge * torch.eye(SIDE * SIDE, dtype=torch.float64)
        factor = fitted.scale_tril[row].double()
        assert torch.equal(factor, factor.tril())
        assert torch.allclose(factor @ factor.T, cov, atol=1e-4)


def test_fit_class_gaussians_sorts_classes_however_the_labels_come():
    x, y = class_images(2, per_class=5)
    labels = torch.where(y == 0, 7, 2)  # the first images are of class 7
    fitted = synthesis.fit_class_gaussians(x, labels)
    assert fitted.classes.tolist() == [2, 7]
    assert torch.allclose(fitted.means[0], x[labels == 2].flatten(1).mean(0), atol=1e-6)
    assert torch.allclose(fitted.means[1], x[labels == 7].flatten(1).mean(0), atol=1e-6)


def test_fit_class_gaussians_factors_a_singular_covariance_thanks_to_the_ridge():
    # Constant border pixels (as MNIST's) make the sample covariance singular; the ridge fixes it.
    x, y = class_images(3, per_class=6)
    x[..., 0, :] = 0.0
    fitted = synthesis.fit_class_gaussians(x, y, ridge=1e-4)
    assert torch.isfinite(fitted.scale_tril).all()
    assert torch.allclose(fitted.scale_tril[0, 0, 0], torch.tensor(1e-2), rtol=1e-3)  # sqrt(ridge) on a dead pixel


@pytest.mark.parametrize("ridge", [0, -1e-4, 0.0, float("nan"), None, "1e-4"])
def test_fit_class_gaussians_refuses_a_ridge_that_is_not_positive(ridge):
    x, y = class_images(0, per_class=3)
    with pytest.raises(ValueError, match="ridge"):
        synthesis.fit_class_gaussians(x, y, ridge=ridge)


def test_fit_class_gaussians_refuses_a_class_with_a_single_image():
    x, y = class_images(0, per_class=3)
    y = y.clone()
    y[0] = 9  # class 9 has one image
    with pytest.raises(ValueError, match="class 9 has 1"):
        synthesis.fit_class_gaussians(x, y)


@pytest.mark.parametrize(
    "bad",
    [
        lambda x: (x * 255).to(torch.uint8),  # uint8
        lambda x: x * 255,  # 0..255 floats
        lambda x: x - 0.5,  # negative pixels
        lambda x: x[:, 0],  # no channel axis
        lambda x: x.numpy(),  # not a tensor
    ],
    ids=["uint8", "0-255", "negative", "3-d", "numpy"],
)
def test_fit_class_gaussians_refuses_images_that_are_not_float_nchw_in_the_unit_box(bad):
    x, y = class_images(0, per_class=3)
    with pytest.raises(ValueError):
        synthesis.fit_class_gaussians(bad(x), y)


@pytest.mark.parametrize(
    "bad",
    [lambda y: y.view(-1, 1), lambda y: y.int(), lambda y: y.float(), lambda y: y[:-1], lambda y: y.tolist()],
    ids=["[N,1]", "int32", "float", "short", "list"],
)
def test_fit_class_gaussians_refuses_labels_that_are_not_int64_n(bad):
    x, y = class_images(0, per_class=3)
    with pytest.raises(ValueError, match="labels must be an int64 tensor"):
        synthesis.fit_class_gaussians(x, bad(y))


# --- sample_seeds -------------------------------------------------------------------------------


def narrow_class(n: int = 400, seed: int = 0):
    """One class of images around 0.5 with a small, correlated spread: a normal that stays in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    common = 0.03 * torch.randn(n, 1, 1, 1, generator=g)
    x = (0.5 + common + 0.02 * torch.randn(n, 1, SIDE, SIDE, generator=g)).clamp(0, 1)
    return x, torch.zeros(n, dtype=torch.int64)


def test_sample_seeds_have_the_image_shape_lie_in_the_box_and_follow_their_class():
    x, y = class_images(4, per_class=20)
    fitted = synthesis.fit_class_gaussians(x, y)
    targets = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0] * 50)
    seeds = synthesis.sample_seeds(fitted, targets, torch.Generator().manual_seed(0))
    assert seeds.shape == (len(targets), 1, SIDE, SIDE) and seeds.dtype == torch.float32
    assert seeds.min() >= 0 and seeds.max() <= 1
    # class 0's images lie in [0, 0.6], class 1's in [0.4, 1]: each seed is drawn from its own class
    mean = seeds.flatten(1).mean(1)
    assert (mean[targets == 0] < 0.45).all() and (mean[targets == 1] > 0.55).all()


def test_sample_seeds_are_reproducible_with_a_seeded_generator():
    fitted = synthesis.fit_class_gaussians(*class_images(5, per_class=10))
    targets = torch.tensor([0, 1, 1, 0])
    first = synthesis.sample_seeds(fitted, targets, torch.Generator().manual_seed(3))
    again = synthesis.sample_seeds(fitted, targets, torch.Generator().manual_seed(3))
    other = synthesis.sample_seeds(fitted, targets, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_many_seeds_have_the_fitted_mean_and_covariance():
    x, y = narrow_class()
    fitted = synthesis.fit_class_gaussians(x, y)
    seeds = synthesis.sample_seeds(fitted, torch.zeros(20_000, dtype=torch.int64), torch.Generator().manual_seed(1))
    flat = seeds.flatten(1).double()
    assert 0 < flat.min() and flat.max() < 1  # nothing clipped: the draw is the fitted normal itself
    factor = fitted.scale_tril[0].double()
    assert torch.allclose(flat.mean(0), fitted.means[0].double(), atol=2e-3)
    assert torch.allclose(torch.cov(flat.T), factor @ factor.T, atol=1e-4)
    # the fitted covariance is not diagonal (a shared brightness): the off-diagonal entries matter
    assert torch.cov(flat.T)[0, 1] > 5e-4


def test_sample_seeds_refuses_an_unknown_class_and_bad_targets():
    fitted = synthesis.fit_class_gaussians(*class_images(0, per_class=3))
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        synthesis.sample_seeds(fitted, torch.tensor([0, 2]))
    for bad in (torch.tensor([[0], [1]]), torch.tensor([0.0, 1.0]), [0, 1], torch.tensor([0, 1], dtype=torch.int32)):
        with pytest.raises(ValueError, match="targets"):
            synthesis.sample_seeds(fitted, bad)


# --- generate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.05, 0.5, 3.0])
def test_generated_images_lie_within_eps_of_their_seeds_and_in_the_box(eps):
    model = tanh_model(1)
    g = torch.Generator().manual_seed(0)
    seeds = torch.rand(6, 1, SIDE, SIDE, generator=g)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    drawn = synthesis.generate(model, seeds, targets, eps=eps, steps=8)
    assert drawn.shape == seeds.shape and drawn.dtype == torch.float32
    assert drawn.min() >= 0 and drawn.max() <= 1
    assert (l2(drawn - seeds) <= eps + BALL_TOL).all()
    assert (l2(drawn - seeds) > 0).all()  # the seeds did move


def test_generated_images_stay_in_the_ball_on_a_tiny_cnn(tiny_model):
    seeds = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([3, 1, 4, 1])
    drawn = synthesis.generate(tiny_model, seeds, targets, eps=2.0, steps=4)
    assert drawn.min() >= 0 and drawn.max() <= 1 and (l2(drawn - seeds) <= 2.0 + BALL_TOL).all()
    loss = nn.functional.cross_entropy
    with torch.no_grad():
        before = loss(tiny_model(seeds), targets, reduction="none")
        after = loss(tiny_model(drawn), targets, reduction="none")
    assert (after < before).all()  # down the target class's loss, not up


def test_generation_reaches_the_target_with_a_large_enough_radius_only():
    # The seeds' decisive pixel is 0.2 (class 0): class 1 needs a move of more than 0.3 along it.
    model = one_pixel_model()
    seeds = with_pixel([0.2, 0.2, 0.2, 0.8])
    targets = torch.tensor([1, 1, 1, 1])
    far = synthesis.generate(model, seeds, targets, eps=0.6, steps=20)
    near = synthesis.generate(model, seeds, targets, eps=0.1, steps=20)
    with torch.no_grad():
        assert model(far).argmax(1).tolist() == [1, 1, 1, 1]
        assert model(near).argmax(1).tolist() == [0, 0, 0, 1]
    # only the decisive pixel carries a gradient, so nothing else changes
    others = torch.ones(SIDE * SIDE, dtype=torch.bool)
    others[PIXEL] = False
    assert torch.equal(far.flatten(1)[:, others], seeds.flatten(1)[:, others])
    assert (far.flatten(1)[:3, PIXEL] > 0.5).all()


@pytest.mark.parametrize("eps", [0, -1.0, float("nan"), True, "1", None])
def test_generate_refuses_a_radius_that_is_not_positive(eps):
    with pytest.raises(ValueError, match="eps"):
        synthesis.generate(one_pixel_model(), with_pixel([0.2, 0.8]), torch.tensor([1, 0]), eps=eps)


def test_generate_refuses_bad_steps_targets_and_seeds():
    model, seeds = one_pixel_model(), with_pixel([0.2, 0.8])
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            synthesis.generate(model, seeds, torch.tensor([1, 0]), eps=0.5, steps=steps)
    for targets in (torch.tensor([1]), torch.tensor([1, 0, 1]), torch.tensor([[1], [0]]), torch.tensor([1.0, 0.0])):
        with pytest.raises(ValueError, match="targets"):
            synthesis.generate(model, seeds, targets, eps=0.5, steps=2)
    with pytest.raises(ValueError, match="seeds"):
        synthesis.generate(model, seeds[:, 0], torch.tensor([1, 0]), eps=0.5, steps=2)
    with pytest.raises(ValueError):
        synthesis.generate(model, seeds * 2, torch.tensor([1, 0]), eps=0.5, steps=2)


# --- mask_square, InpaintingLoss, inpaint -------------------------------------------------------


@pytest.mark.parametrize(("side", "size", "top"), [(8, 4, 2), (8, 3, 2), (8, 1, 3), (8, 7, 0), (5, 2, 1)])
def test_mask_square_hides_a_centred_square_under_the_channel_mean(side, size, top):
    g = torch.Generator().manual_seed(side * size)
    x = torch.rand(3, 2, side, side, generator=g)  # two channels of different means
    x[:, 1] *= 0.5
    masked, mask = synthesis.mask_square(x, size)
    assert masked.shape == x.shape and mask.shape == x.shape
    expected = torch.zeros(side, side)
    expected[top : top + size, top : top + size] = 1
    assert torch.equal(mask, expected.expand_as(x))
    inside = mask.bool()
    assert torch.equal(masked[~inside], x[~inside])
    fill = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    assert torch.allclose(masked[inside], fill[inside])
    # the fill is per image and per channel, not one number
    assert not torch.allclose(masked[0, 0, top, top], masked[0, 1, top, top])
    assert not torch.allclose(masked[0, 0, top, top], masked[1, 0, top, top])


def test_mask_square_centres_the_square_on_a_rectangular_image():
    x = torch.rand(1, 1, 6, 10)
    _, mask = synthesis.mask_square(x, 2)
    rows, cols = mask[0, 0].nonzero(as_tuple=True)
    assert rows.unique().tolist() == [2, 3] and cols.unique().tolist() == [4, 5]


@pytest.mark.parametrize("size", [0, -1, 8, 9, 2.0, True, "3"])
def test_mask_square_refuses_a_size_that_does_not_fit(size):
    with pytest.raises(ValueError, match="size"):
        synthesis.mask_square(torch.rand(2, 1, 8, 8), size)


def test_mask_square_refuses_bad_images():
    with pytest.raises(ValueError):
        synthesis.mask_square(torch.rand(1, 8, 8), 2)
    with pytest.raises(ValueError):
        synthesis.mask_square(torch.rand(1, 1, 8, 8) + 1, 2)


def test_inpainting_penalty_counts_only_the_pixels_outside_the_square():
    model = tanh_model(2, side=8)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2])
    masked, mask = synthesis.mask_square(x, 4)
    loss = synthesis.InpaintingLoss(masked, mask, weight=7.0)
    with torch.no_grad():
        ce = nn.functional.cross_entropy(model(masked), y, reduction="none")
        assert torch.allclose(loss(model, masked, y), ce)
        # anything inside the square, the original outside: no penalty, only the cross-entropy
        inside_changed = torch.where(mask.bool(), torch.rand(x.shape), masked)
        ce = nn.functional.cross_entropy(model(inside_changed), y, reduction="none")
        assert torch.allclose(loss(model, inside_changed, y), ce)
        # one pixel outside moved by 0.5: weight * 0.5^2 / D on that image only
        moved = masked.clone()
        moved[1, 0, 0, 0] += 0.5 if moved[1, 0, 0, 0] < 0.5 else -0.5
        ce = nn.functional.cross_entropy(model(moved), y, reduction="none")
        assert torch.allclose(loss(model, moved, y) - ce, torch.tensor([0.0, 7.0 * 0.25 / 64, 0.0]), atol=1e-6)


def test_inpainting_loss_refuses_a_negative_weight_and_a_mask_of_another_shape():
    masked, mask = synthesis.mask_square(torch.rand(2, 1, 8, 8), 4)
    for weight in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="weight"):
            synthesis.InpaintingLoss(masked, mask, weight)
    with pytest.raises(ValueError, match="one shape"):
        synthesis.InpaintingLoss(masked, mask[:1])
    assert synthesis.InpaintingLoss(masked, mask, 0).weight == 0.0  # zero is allowed


def uniform_model(side: int = 8) -> Classifier:
    """A linear 2-class Classifier that weighs every pixel alike: brighter images are class 1."""
    head = nn.Linear(side * side, 2)
    with torch.no_grad():
        head.weight.copy_(torch.stack([-torch.ones(side * side), torch.ones(side * side)]) / side)
        head.bias.zero_()
    return Classifier(nn.Flatten(), head, (0.0,), (1.0,)).eval()


def bright_images_masked():
    """The uniform model, four bright 8x8 images with a centred 4-pixel square masked, target class 0
    (dark), and the square as a boolean mask."""
    x = 0.3 + 0.1 * torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    masked, mask = synthesis.mask_square(x, 4)
    return uniform_model(), masked, mask, torch.zeros(4, dtype=torch.int64), mask.bool()


def test_inpainting_with_a_large_weight_changes_the_square_far_more_than_the_rest():
    # Every pixel pushes the class alike, so only the penalty holds the unmasked pixels back. The
    # images are read as class 1 (bright); inpainting toward class 0 darkens them.
    model, masked, mask, y, inside = bright_images_masked()

    def changes(weight):
        filled = synthesis.inpaint(model, masked, mask, y, eps=1.0, steps=20, weight=weight, keep_outside=False)
        assert filled.min() >= 0 and filled.max() <= 1 and (l2(filled - masked) <= 1.0 + BALL_TOL).all()
        assert (filled[inside] <= masked[inside] + 1e-6).all()  # darker, toward class 0
        change = (filled - masked).abs()
        return change[~inside].mean().item(), change[inside].mean().item()

    outside, inside_change = changes(1000.0)
    assert inside_change > 0.1 and outside < 0.1 * inside_change
    outside_free, inside_free = changes(0.0)  # without the penalty every pixel moves alike
    assert outside_free > 0.5 * inside_free


def test_inpaint_refuses_bad_settings():
    model = uniform_model()
    masked, mask = synthesis.mask_square(torch.rand(2, 1, 8, 8), 4)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="weight"):
        synthesis.inpaint(model, masked, mask, y, eps=1.0, steps=2, weight=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        synthesis.inpaint(model, masked, mask[:, :, :4], y, eps=1.0, steps=2)
    with pytest.raises(ValueError, match="eps"):
        synthesis.inpaint(model, masked, mask, y, eps=0, steps=2)
    with pytest.raises(ValueError, match="steps"):
        synthesis.inpaint(model, masked, mask, y, eps=1.0, steps=0)
    with pytest.raises(ValueError, match="y must be"):
        synthesis.inpaint(model, masked, mask, y[:1], eps=1.0, steps=2)


# --- unit_activation, visualize_features, top_units --------------------------------------------


def test_unit_activation_picks_one_unit_per_image():
    model = tanh_model(3)
    x = torch.rand(3, 1, SIDE, SIDE)
    units = torch.tensor([[5], [0], [2]])
    with torch.no_grad():
        feats = model.representation(x)
        assert torch.equal(synthesis.unit_activation(model, x, units), feats[[0, 1, 2], [5, 0, 2]])


def test_visualize_features_raises_each_unit_within_eps():
    model = tanh_model(4)
    x = torch.rand(6, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(4))
    units = torch.tensor([0, 1, 2, 3, 4, 5])
    eps = 0.5
    shown = synthesis.visualize_features(model, x, units, eps=eps, steps=10)
    assert shown.shape == x.shape and shown.min() >= 0 and shown.max() <= 1
    assert (l2(shown - x) <= eps + BALL_TOL).all()
    with torch.no_grad():
        before = synthesis.unit_activation(model, x, units.view(-1, 1))
        after = synthesis.unit_activation(model, shown, units.view(-1, 1))
        assert (after > before + 1e-3).all()  # up the activation (tanh has no dead units), not down


def test_visualize_features_needs_a_representation_and_units_inside_it():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3))
    x = torch.rand(2, 1, SIDE, SIDE)
    with pytest.raises(TypeError, match="representation"):
        synthesis.visualize_features(plain, x, torch.tensor([0, 1]), eps=0.5, steps=2)
    model = tanh_model(0, width=6)
    with pytest.raises(ValueError, match="0 to 5"):
        synthesis.visualize_features(model, x, torch.tensor([0, 6]), eps=0.5, steps=2)
    with pytest.raises(ValueError, match=">= 0"):
        synthesis.visualize_features(model, x, torch.tensor([-1, 0]), eps=0.5, steps=2)
    with pytest.raises(ValueError, match="units"):
        synthesis.visualize_features(model, x, torch.tensor([0]), eps=0.5, steps=2)
    with pytest.raises(ValueError, match="eps"):
        synthesis.visualize_features(model, x, torch.tensor([0, 1]), eps=-0.5, steps=2)


def scaled_units_model(scales) -> Classifier:
    """A Classifier whose unit j is ``scales[j] * x[0]``: variances proportional to ``scales**2``."""
    body = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, len(scales), bias=False))
    with torch.no_grad():
        body[1].weight.zero_()
        body[1].weight[:, 0] = torch.tensor(scales)
    return Classifier(body, nn.Linear(len(scales), 2), (0.0,), (1.0,)).eval()


def test_top_units_are_the_most_varied_first():
    model = scaled_units_model([1.0, 3.0, 0.0, -2.0, 0.5])  # |scale| orders the variances: 1, 3, 0, 4, 2
    x = torch.rand(20, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(5))
    top = synthesis.top_units(model, x, 3)
    assert top.tolist() == [1, 3, 0] and top.dtype == torch.int64
    assert synthesis.top_units(model, x, 4).tolist() == [1, 3, 0, 4]
    with pytest.raises(ValueError, match="only 4 of the representation's 5 units vary"):
        synthesis.top_units(model, x, 5)  # unit 2 is dead
    with pytest.raises(ValueError, match="k must be"):
        synthesis.top_units(model, x, 0)
    with pytest.raises(TypeError, match="representation"):
        synthesis.top_units(nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3)), x, 1)


def batchnorm_units_model(scales) -> Classifier:
    """:func:`scaled_units_model` with a BatchNorm over the units: in eval mode (fresh running statistics)
    it keeps their order of variance; in training mode it gives every unit the same variance."""
    model = scaled_units_model(scales)
    model.body.append(nn.BatchNorm1d(len(scales)))
    return model


def test_top_units_reads_a_training_model_in_eval_mode_and_leaves_it_as_it_was():
    model = batchnorm_units_model([1.0, 3.0, 0.0, -2.0, 0.5]).train()
    x = torch.rand(20, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(8))
    running = model.body[-1].running_mean.clone()
    top = synthesis.top_units(model, x, 3)
    assert model.training and torch.equal(model.body[-1].running_mean, running)
    assert top.tolist() == [1, 3, 0]


def test_visualize_features_takes_a_training_model_and_leaves_it_as_it_was():
    model = batchnorm_units_model([1.0, 3.0, 0.0, -2.0, 0.5]).train()
    x = torch.rand(4, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(9))
    running = model.body[-1].running_mean.clone()
    shown = synthesis.visualize_features(model, x, torch.tensor([0, 1, 3, 4]), eps=0.5, steps=3)
    assert shown.shape == x.shape
    assert model.training and torch.equal(model.body[-1].running_mean, running)


# --- judged_rate, diversity ---------------------------------------------------------------------


def test_judged_rate_is_the_fraction_read_as_intended():
    model = one_pixel_model()
    x = with_pixel([0.1, 0.9, 0.7, 0.2, 0.4])  # read as 0, 1, 1, 0, 0
    assert synthesis.judged_rate(model, x, torch.tensor([0, 1, 1, 0, 0])) == 1.0
    assert synthesis.judged_rate(model, x, torch.tensor([0, 1, 0, 0, 1])) == pytest.approx(3 / 5)
    assert synthesis.judged_rate(model, x, torch.tensor([1, 0, 0, 1, 1])) == 0.0
    with pytest.raises(ValueError, match="intended"):
        synthesis.judged_rate(model, x, torch.tensor([0, 1]))


def test_diversity_averages_the_pairwise_distances_with_equal_class_weights():
    x = torch.zeros(5, 1, SIDE, SIDE)
    x[1, 0, :2, :2] = 1.0  # class 0: two images at distance 2
    x[3, 0, 0, 0] = 1.0  # class 1: 0, e_a, e_b at distances 1, 1, sqrt(2)
    x[4, 0, 3, 3] = 1.0
    y = torch.tensor([0, 0, 1, 1, 1])
    expected = (2.0 + (2.0 + math.sqrt(2.0)) / 3.0) / 2.0
    assert synthesis.diversity(x, y) == pytest.approx(expected, rel=1e-6)
    # the order of the images does not matter
    perm = torch.tensor([4, 0, 2, 1, 3])
    assert synthesis.diversity(x[perm], y[perm]) == pytest.approx(expected, rel=1e-6)
    # one image per class copied: no diversity
    assert synthesis.diversity(x[[1, 1, 3, 3]], torch.tensor([0, 0, 1, 1])) == 0.0


def test_diversity_needs_two_images_per_class():
    x = torch.rand(3, 1, SIDE, SIDE)
    with pytest.raises(ValueError, match="at least 2 images"):
        synthesis.diversity(x, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="labels"):
        synthesis.diversity(x, torch.tensor([0, 0]))


# --- the studies --------------------------------------------------------------------------------


def test_per_class_targets_repeat_each_class_in_turn():
    targets = synthesis.per_class_targets(3, 2)
    assert targets.tolist() == [0, 0, 1, 1, 2, 2] and targets.dtype == torch.int64
    assert synthesis.per_class_targets(2, 1).tolist() == [0, 1]
    for bad in ((0, 2), (2, 0), (2.0, 2), (True, 2)):
        with pytest.raises(ValueError):
            synthesis.per_class_targets(*bad)


def test_rate_of_finds_a_row_by_its_name_or_its_generator():
    rows = [
        {"source": "real test images", "judge": 0.9},
        {"source": "seeds", "judge": 0.5},
        {"source": "generated by robust", "self": 1.0, "judge": 0.8},
        {"source": "generated by standard", "self": 1.0, "judge": 0.2},
    ]
    assert synthesis.rate_of(rows, "robust") == 0.8
    assert synthesis.rate_of(rows, "generated by standard") == 0.2
    assert synthesis.rate_of(rows, "standard", "self") == 1.0
    assert synthesis.rate_of(rows, "seeds") == 0.5
    with pytest.raises(KeyError, match="sources are"):
        synthesis.rate_of(rows, "adversarial")
    with pytest.raises(KeyError):
        synthesis.rate_of(rows, "generated by")


@pytest.fixture(scope="module")
def generation(request):
    """generation_study on 4x4 images with two one-pixel models: one reads pixel 5, one pixel 10."""
    g = torch.Generator().manual_seed(6)
    x_real = with_pixel([0.1, 0.2, 0.8, 0.9]) + 0.05 * torch.rand(4, 1, SIDE, SIDE, generator=g)
    y_real = torch.tensor([0, 0, 1, 1])
    fitted = synthesis.fit_class_gaussians(*class_images(6, per_class=10))
    targets = synthesis.per_class_targets(2, 3)
    seeds = synthesis.sample_seeds(fitted, targets, g)
    generators = {"pixel 5": one_pixel_model(pixel=5), "pixel 10": one_pixel_model(pixel=10)}
    study = synthesis.generation_study(
        generators, one_pixel_model(pixel=5), seeds, targets, (x_real, y_real), eps=1.0, steps=10, seed_label="seeds"
    )
    return study, generators, seeds, targets, (x_real, y_real)


def test_generation_study_measures_each_generator_from_the_same_seeds(generation):
    study, generators, seeds, targets, (x_real, y_real) = generation
    rows = study["rows"]
    assert [r["source"] for r in rows] == ["real test images", "seeds", "generated by pixel 5", "generated by pixel 10"]
    assert list(study["images"]) == list(generators)
    assert rows[0]["diversity"] == 1.0 and "self" not in rows[0] and "self" not in rows[1]
    assert rows[0]["judge"] == 1.0  # the judge reads pixel 5, which decides the real images' labels
    base = synthesis.diversity(x_real, y_real)
    assert rows[1]["diversity"] == pytest.approx(synthesis.diversity(seeds, targets) / base)
    assert rows[1]["judge"] == pytest.approx(synthesis.judged_rate(generators["pixel 5"], seeds, targets))
    for row in rows:
        assert 0 <= row["judge"] <= 1 and row["diversity"] >= 0
    for name, model in generators.items():
        drawn = study["images"][name]
        assert drawn.shape == seeds.shape and drawn.device.type == "cpu"
        assert (l2(drawn - seeds) <= 1.0 + BALL_TOL).all()
        row = rows[[r["source"] for r in rows].index(f"generated by {name}")]
        assert row["self"] == 1.0  # a radius of 1 moves any decisive pixel across 0.5
        assert row["self"] == synthesis.judged_rate(model, drawn, targets)
        assert row["diversity"] == pytest.approx(synthesis.diversity(drawn, targets) / base)
    # the judge reads the pixel 5 generator's images as intended; the other one changed pixel 10 only
    assert synthesis.rate_of(rows, "pixel 5") == 1.0
    assert synthesis.rate_of(rows, "pixel 10") == pytest.approx(rows[1]["judge"])


def test_generation_table_has_one_line_per_row_under_a_header(generation):
    rows = generation[0]["rows"]
    table = synthesis.generation_table(rows)
    lines = table.splitlines()
    assert len(lines) == len(rows) + 2  # header and separator
    assert "judge reads the intended class" in lines[0] and lines[1].startswith("|---")
    assert lines[2].startswith("| real test images |") and "100.0%" in lines[2] and "1.00" in lines[2]
    assert lines[4].startswith("| generated by pixel 5 | 100.0% | 100.0% |")


@pytest.fixture(scope="module")
def inpainting():
    g = torch.Generator().manual_seed(7)
    x = 0.3 + 0.4 * torch.rand(4, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 1, 0])
    generators = {"uniform": uniform_model(), "tanh": tanh_model(7, side=8, classes=2)}
    study = synthesis.inpainting_study(generators, uniform_model(), x, y, size=4, eps=1.0, steps=10, weight=100.0)
    return study, generators, x, y


def test_inpainting_study_measures_each_inpainter_inside_the_square(inpainting):
    study, generators, x, y = inpainting
    rows = study["rows"]
    assert [r["source"] for r in rows] == [
        "original",
        "masked (square filled with its mean)",
        "inpainted by uniform",
        "inpainted by tanh",
    ]
    masked, mask = synthesis.mask_square(x, 4)
    assert torch.equal(study["masked"], masked)
    assert list(study["images"]) == list(generators)
    inside = mask.bool()
    assert rows[0]["error"] == 0.0
    assert rows[0]["judge"] == synthesis.judged_rate(uniform_model(), x, y)
    assert rows[1]["error"] == pytest.approx(((masked - x)[inside] ** 2).mean().sqrt().item(), rel=1e-5)
    assert rows[1]["error"] > 0
    for row in rows:
        assert 0 <= row["judge"] <= 1 and row["error"] >= 0
    for name in generators:
        filled = study["images"][name]
        assert filled.shape == x.shape and (l2(filled - masked) <= 1.0 + BALL_TOL).all()
        row = rows[[r["source"] for r in rows].index(f"inpainted by {name}")]
        assert row["error"] == pytest.approx(((filled - x)[inside] ** 2).mean().sqrt().item(), rel=1e-5)
    # the uniform model is also the judge, and inpainting pushes toward the true class
    assert synthesis.rate_of(rows, "inpainted by uniform") >= rows[1]["judge"]


def test_inpainting_table_has_one_line_per_row_under_a_header(inpainting):
    rows = inpainting[0]["rows"]
    lines = synthesis.inpainting_table(rows).splitlines()
    assert len(lines) == len(rows) + 2
    assert "RMS error in the square" in lines[0]
    assert lines[2].endswith("| 0.000 |") and lines[2].startswith("| original |")
    assert f"{rows[1]['error']:.3f}" in lines[3]


def test_top_units_needs_two_images():
    model = scaled_units_model([1.0, 3.0])
    with pytest.raises(ValueError, match="at least 2 images"):
        synthesis.top_units(model, torch.rand(1, 1, SIDE, SIDE), 1)


@pytest.mark.parametrize("weight", [math.inf, -1.0, math.nan])
def test_inpainting_weight_must_be_finite_and_non_negative(weight):
    x = torch.rand(2, 1, SIDE, SIDE)
    masked, mask = synthesis.mask_square(x, 2)
    with pytest.raises(ValueError, match="weight"):
        synthesis.InpaintingLoss(masked, mask, weight)


@pytest.mark.parametrize("ridge", [True, 0.0, math.inf])
def test_ridge_must_be_a_positive_finite_number(ridge):
    x, y = torch.rand(4, 1, SIDE, SIDE), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="ridge"):
        synthesis.fit_class_gaussians(x, y, ridge=ridge)


def test_inpaint_and_judged_rate_refuse_classes_the_model_cannot_output():
    model = tanh_model(0, width=6)  # 3 classes
    x = torch.rand(2, 1, SIDE, SIDE)
    masked, mask = synthesis.mask_square(x, 2)
    with pytest.raises(ValueError):
        synthesis.inpaint(model, masked, mask, torch.tensor([0, 3]), eps=0.5, steps=2)
    with pytest.raises(ValueError):
        synthesis.judged_rate(model, x, torch.tensor([0, 9]))
    with pytest.raises(ValueError, match=">= 0"):
        synthesis.judged_rate(model, x, torch.tensor([0, -1]))


def test_the_inpainting_mask_must_be_zeros_and_ones():
    x = torch.rand(2, 1, SIDE, SIDE)
    masked, mask = synthesis.mask_square(x, 2)
    for bad in (mask.bool(), mask * 255, mask * math.nan):
        with pytest.raises(ValueError, match="0s and 1s"):
            synthesis.InpaintingLoss(masked, bad)
    with pytest.raises(ValueError, match="weight"):
        synthesis.InpaintingLoss(masked, mask, True)


def test_studies_want_a_dict_of_generators_and_a_real_pair():
    model = tanh_model(0, width=6)
    x, y = torch.rand(4, 1, SIDE, SIDE), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="non-empty dict"):
        synthesis.inpainting_study([model], model, x, y, size=2, eps=0.5, steps=2)
    with pytest.raises(ValueError, match="non-empty dict"):
        synthesis.generation_study({}, model, x, y, (x, y), eps=0.5, steps=2)
    with pytest.raises(ValueError, match="pair"):
        synthesis.generation_study({"m": model}, model, x, y, x, eps=0.5, steps=2)
    with pytest.raises(ValueError, match="eps"):
        synthesis.inpainting_study({"m": model}, model, x, y, size=2, eps=-5, steps=2)


def test_seeds_need_a_fit_and_a_torch_generator():
    x, y = torch.rand(4, 1, SIDE, SIDE), torch.tensor([0, 0, 1, 1])
    fit = synthesis.fit_class_gaussians(x, y)
    with pytest.raises(ValueError, match="torch.Generator"):
        synthesis.sample_seeds(fit, torch.tensor([0, 1]), generator=0)
    with pytest.raises(ValueError, match="ClassGaussians"):
        synthesis.sample_seeds((fit.means, fit.scale_tril), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="non-empty"):
        synthesis.sample_seeds(fit, torch.tensor([], dtype=torch.int64))
    with pytest.raises(ValueError, match=">= 0"):
        synthesis.fit_class_gaussians(x, torch.tensor([-1, -1, 1, 1]))


def test_fit_refuses_images_too_large_for_a_full_covariance():
    with pytest.raises(ValueError, match="downsample"):
        synthesis.fit_class_gaussians(torch.rand(2, 3, 65, 64), torch.tensor([0, 0]))


def test_rate_of_names_the_columns_it_has():
    rows = [{"source": "real test images", "judge": 0.9, "diversity": 1.0}]
    with pytest.raises(KeyError, match="its columns are"):
        synthesis.rate_of(rows, "real test images", "self")


def test_inpaint_keeps_the_pixels_outside_the_square_by_default():
    model, masked, mask, y, inside = bright_images_masked()
    filled = synthesis.inpaint(model, masked, mask, y, eps=1.0, steps=20, weight=0.0)
    assert torch.equal(filled[~inside], masked[~inside])
    assert (filled[inside] - masked[inside]).abs().mean() > 0.05  # the square itself was redrawn
