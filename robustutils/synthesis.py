"""What a single robust classifier can draw: class-conditional generation, inpainting and feature
visualisation with nothing but targeted PGD (Santurkar et al. 2019, "Image Synthesis with a Single
(Robust) Classifier", arXiv 1906.09453; Engstrom et al. 2019, "Adversarial Robustness as a Prior
for Learned Representations", arXiv 1906.00945).

Every procedure here is :func:`robustutils.attacks.pgd` with the right start, target and loss: no
second optimisation loop. Images are tensors [N, C, H, W] in [0, 1] (pixel units), radii are l_2
radii in the same units. The measures (:func:`judged_rate`, :func:`diversity`) and the studies
that chapter 5 runs over several generators (:func:`generation_study`, :func:`inpainting_study`)
return plain numbers with a Markdown table for each.
"""

import contextlib
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .attacks import check_count, check_inputs, pgd
from .evaluate import predict
from .report import markdown_table


def _check_images(x, name: str = "images") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor [N, C, H, W] of images in [0, 1]; got {shape}")
    check_inputs(x)


def _check_labels(y, n: int, name: str = "labels", what: str = "one class index per image") -> None:
    if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.dtype != torch.int64:
        got = f"{tuple(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an int64 tensor [{n}] ({what}); got {got}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name} must be >= 0 ({what}); got {int(y.min())}")


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


def _check_generators(generators) -> None:
    if not isinstance(generators, dict) or not generators:
        raise ValueError(
            "generators must be a non-empty dict label -> model, e.g. {'standard': m1, 'ℓ2 2': m2}; "
            f"got {type(generators).__name__}"
        )


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    """Run the block with ``model`` in eval mode (batch-norm statistics frozen), restoring its mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _check_radius(eps, steps) -> None:
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not 0 < eps < math.inf:
        raise ValueError(f"eps must be a positive l_2 radius in pixel units (e.g. 6 for MNIST); got {eps!r}")
    check_count("steps", steps)


# --- The seed distribution ----------------------------------------------------------------------


#: The largest image (values per image) :func:`fit_class_gaussians` fits a full covariance to: 64x64x3.
_MAX_DIMS = 64 * 64 * 3


@dataclass(frozen=True)
class ClassGaussians:
    """A multivariate normal per class, fitted to the training images of that class: ``means`` the
    per-class mean images, flattened [K, D] (float32, pixel units; D = C * H * W), ``scale_tril``
    the lower Cholesky factors of the per-class covariances [K, D, D] (float32), ``shape`` the image
    shape (C, H, W) the flat vectors come from, ``classes`` the class index of each row (int64 [K])."""

    means: torch.Tensor
    scale_tril: torch.Tensor
    shape: tuple[int, int, int]
    classes: torch.Tensor


def fit_class_gaussians(x: torch.Tensor, y: torch.Tensor, *, ridge: float = 1e-4) -> ClassGaussians:
    """Fit Santurkar et al.'s seed distribution: for each class a multivariate normal N(μ_y, Σ_y)
    with the mean and covariance of that class's images (their section 3.1, "Generation").

    Args:
        x: Training images [N, C, H, W] in [0, 1] (float).
        y: Their labels, int64 [N]; every class present needs at least 2 images.
        ridge: Added to the covariance's diagonal (pixel units squared) so that it has a Cholesky
            factor: MNIST's border pixels never vary, which leaves Σ_y singular.

    Returns:
        A :class:`ClassGaussians` over the classes present in ``y``, in increasing order.

    Raises:
        ValueError: For images that are not [N, C, H, W] floats in [0, 1], labels that are not
            int64 [N], a class with fewer than 2 images, or a ridge that is not positive.
    """
    _check_images(x)
    _check_labels(y, len(x))
    if not isinstance(ridge, numbers.Real) or isinstance(ridge, bool) or not 1e-7 <= ridge <= 0.25:
        raise ValueError(
            "ridge must be a number between 1e-7 (the float32 covariance's precision) and 0.25 (the largest "
            f"variance of a pixel in [0, 1]), e.g. 1e-4; got {ridge!r}"
        )
    if x.shape[1:].numel() > _MAX_DIMS:
        raise ValueError(
            f"images of {x.shape[1:].numel():,} values need a {x.shape[1:].numel():,}-square covariance per class; "
            f"downsample them to at most {_MAX_DIMS:,} values (e.g. F.interpolate to 64x64), as Santurkar et al. "
            "do for ImageNet"
        )
    classes, counts = torch.unique(y.cpu(), return_counts=True)
    if (counts < 2).any():
        raise ValueError(
            f"each class needs at least 2 images to estimate a covariance; class {int(classes[counts.argmin()])} "
            f"has {int(counts.min())}: pass more images"
        )
    flat = x.detach().cpu().flatten(1)
    means, factors = [], []
    for c in classes:
        xc = flat[y.cpu() == c]
        mean = xc.double().mean(0)
        centred = xc - mean.float()
        # the product in float32 (half the time of float64 on a CPU), the factorisation in float64
        cov = (centred.T @ centred).double() / (len(xc) - 1) + ridge * torch.eye(flat.shape[1], dtype=torch.float64)
        means.append(mean)
        factor, info = torch.linalg.cholesky_ex(cov)
        if info != 0:
            raise ValueError(
                f"the covariance of class {int(c)} is not positive definite at ridge {ridge:g}: raise ridge (e.g. 1e-4)"
            )
        factors.append(factor)
    return ClassGaussians(
        torch.stack(means).float(), torch.stack(factors).float(), tuple(x.shape[1:]), classes.to(torch.int64)
    )


def sample_seeds(
    seeds: ClassGaussians, targets: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one seed image per target class from its fitted normal, clipped to [0, 1].

    Args:
        seeds: The per-class normals (:func:`fit_class_gaussians`).
        targets: The class of each seed, int64 [N]; each must be one of ``seeds.classes``.
        generator: A CPU ``torch.Generator`` for a reproducible draw.

    Returns:
        Seed images [N, C, H, W] in [0, 1] (float32, CPU).

    Raises:
        ValueError: For targets that are not int64 [N] or name a class the normals were not fitted to.
    """
    if not isinstance(seeds, ClassGaussians):
        raise ValueError(
            f"seeds must be the ClassGaussians that fit_class_gaussians returns; got {type(seeds).__name__}"
        )
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1 or not len(targets):
        raise ValueError("targets must be a non-empty int64 tensor [N] of class indices")
    _check_labels(targets, len(targets), "targets")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator (or None); got {type(generator).__name__}")
    targets = targets.cpu()
    unknown = sorted(set(targets.tolist()) - set(seeds.classes.tolist()))
    if unknown:
        raise ValueError(f"no normal was fitted for classes {unknown}: fit_class_gaussians on images of them")
    out = torch.empty(len(targets), seeds.means.shape[1])
    noise = torch.randn(len(targets), seeds.means.shape[1], generator=generator)
    for row, c in enumerate(seeds.classes.tolist()):
        pick = targets == c
        out[pick] = seeds.means[row] + noise[pick] @ seeds.scale_tril[row].T
    return out.clamp(0, 1).view(len(targets), *seeds.shape)


# --- The three syntheses: targeted PGD with a start, a target and a loss -------------------------


def generate(
    model: torch.nn.Module,
    seeds: torch.Tensor,
    targets: torch.Tensor,
    *,
    eps: float,
    steps: int = 60,
    step_size: float | None = None,
) -> torch.Tensor:
    """Return class-conditional images: from each seed, ``steps`` steps of targeted l_2 PGD down
    the cross-entropy of its target class, within ``eps`` of the seed (Santurkar et al. 2019,
    section 3.1, eq. 3: x = argmin over ||x' - x_0||_2 <= ε of L(x', y), x_0 ~ N(μ_y, Σ_y)).

    Args:
        model: The classifier; it takes images in [0, 1].
        seeds: Start images [N, C, H, W] in [0, 1] (:func:`sample_seeds`).
        targets: The class to draw in each image, int64 [N].
        eps: The l_2 radius around the seed, pixel units (Santurkar et al. use 40 on 224-pixel
            ImageNet images).
        steps: PGD steps, an integer >= 1.
        step_size: The l_2 length of one step in pixel units; ``None`` means ``2.5 * eps / steps``.

    Returns:
        Images [N, C, H, W] in [0, 1] on the model's device, per image the iterate classified as
        its target with the lowest loss (or the lowest loss when none was).

    Raises:
        ValueError: For a radius that is not positive, bad images or targets
            (:func:`robustutils.attacks.check_inputs`).
    """
    _check_radius(eps, steps)
    _check_images(seeds, "seeds")
    _check_labels(targets, len(seeds), "targets")
    return pgd(
        model, seeds, targets, eps=eps, steps=steps, step_size=step_size, norm="l2", targeted=True, random_start=False
    )


def mask_square(x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a centred ``size`` x ``size`` square of each image under the image's per-channel mean, as
    the released inpainting code fills its patch (MadryLab/robustness_applications, inpainting.ipynb;
    it places the patch at random, here it is centred so that it covers the object, not background).

    Args:
        x: Images [N, C, H, W] in [0, 1].
        size: The square's side in pixels, 1 <= size < min(H, W).

    Returns:
        ``(masked, mask)``: the images with the square filled [N, C, H, W], and the mask [N, C, H, W]
        (1 inside the square, 0 outside).

    Raises:
        ValueError: For bad images or a size that does not fit inside them.
    """
    _check_images(x)
    h, w = x.shape[-2:]
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or not 1 <= size < min(h, w):
        raise ValueError(f"size must be an integer side in pixels between 1 and {min(h, w) - 1}; got {size!r}")
    size = int(size)
    top, left = (h - size) // 2, (w - size) // 2
    mask = torch.zeros_like(x)
    mask[..., top : top + size, left : left + size] = 1
    fill = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    return torch.where(mask.bool(), fill, x), mask


class InpaintingLoss:
    """Santurkar et al.'s inpainting objective (section 3.2, eq. 4): the cross-entropy of the true
    class plus ``weight`` times the mean squared change of the pixels *outside* the mask,
    L(x, y) + γ ||(x - x_masked) ⊙ (1 - m)||² / D, per example [N] in nats. A ``loss_fn`` for
    :func:`robustutils.attacks.pgd`; the released code's γ is 10."""

    def __init__(self, masked: torch.Tensor, mask: torch.Tensor, weight: float = 10.0):
        _check_images(masked, "masked")
        if not isinstance(mask, torch.Tensor) or not mask.is_floating_point() or not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be a float tensor of 0s and 1s (1 where hidden), as mask_square returns")
        if masked.shape != mask.shape:
            shapes = f"{tuple(masked.shape)} and {tuple(mask.shape)}"
            raise ValueError(f"masked images and mask must have one shape (mask_square makes both); got {shapes}")
        if not isinstance(weight, numbers.Real) or isinstance(weight, bool) or not 0 <= weight < math.inf:
            raise ValueError(f"weight must be >= 0 (the released code's is 10); got {weight!r}")
        self.masked, self.keep, self.weight = masked, 1 - mask, float(weight)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != self.masked.shape:
            raise ValueError(
                f"x must be shaped like the masked images {tuple(self.masked.shape)}; got {tuple(x.shape)}"
            )
        kept = ((x - self.masked.to(x.device)) * self.keep.to(x.device)).pow(2).flatten(1).mean(1)
        return F.cross_entropy(model(x), y, reduction="none") + self.weight * kept


def inpaint(
    model: torch.nn.Module,
    masked: torch.Tensor,
    mask: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 60,
    weight: float = 10.0,
    step_size: float | None = None,
    keep_outside: bool = True,
) -> torch.Tensor:
    """Return inpainted images: targeted l_2 PGD from the masked images down :class:`InpaintingLoss`
    (the true class's cross-entropy, the unmasked pixels held by a penalty of ``weight``), within
    ``eps`` of the masked images (Santurkar et al. 2019, section 3.2).

    The penalty only discourages changing the pixels outside the square: with the released code's
    γ = 10 on a mean over all pixels, PGD recolours whole CIFAR-10 images toward the class. With
    ``keep_outside`` (the default) the result takes the square from the last iterate and every other
    pixel from ``masked``, so that it is an inpainting of the square and nothing else.

    Args:
        model: The classifier; it takes images in [0, 1].
        masked: Images with their square filled [N, C, H, W] in [0, 1] (:func:`mask_square`).
        mask: 1 where the image is hidden, 0 elsewhere, shaped like ``masked``.
        y: The true classes, int64 [N] (the released code inpaints toward the label).
        eps: The l_2 radius around the masked image, pixel units (21.6 on 224-pixel images there).
        steps: PGD steps, an integer >= 1.
        weight: γ, the penalty on changing the unmasked pixels (10 in the released code).
        step_size: The l_2 step in pixel units; ``None`` means ``2.5 * eps / steps``.
        keep_outside: Paste the unmasked pixels of ``masked`` back over the last iterate.

    Returns:
        The inpainted images [N, C, H, W] in [0, 1] on the model's device (with ``keep_outside``
        unchanged outside the square, otherwise the last iterate itself).

    Raises:
        ValueError: For a radius that is not positive, a mask of another shape, a negative weight,
            bad images or labels.
    """
    _check_radius(eps, steps)
    _check_images(masked, "masked")
    _check_labels(y, len(masked), "y")
    check_inputs(masked, y, model=model)  # labels below the model's number of classes
    loss = InpaintingLoss(masked, mask, weight)
    x = pgd(
        model, masked, y, eps=eps, steps=steps, step_size=step_size, norm="l2", targeted=True,
        random_start=False, loss_fn=loss, use_best=False,
    )  # fmt: skip
    if not keep_outside:
        return x
    inside = mask.to(x.device).bool()
    return torch.where(inside, x, masked.to(x.device))


def unit_activation(model: torch.nn.Module, x: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Return the activation of one representation unit per image, [N]: ``model.representation(x)[i, units[i]]``
    (``units`` int64 [N, 1]). The objective :func:`visualize_features` ascends."""
    return model.representation(x).gather(1, units).squeeze(1)


def _check_representation(model) -> None:
    if not callable(getattr(model, "representation", None)):
        raise TypeError(
            f"{type(model).__name__} has no representation(x) method: pass a robustutils.models.Classifier "
            "(the book's models and robustutils.published's have one)"
        )


def visualize_features(
    model: torch.nn.Module,
    x: torch.Tensor,
    units: torch.Tensor,
    *,
    eps: float,
    steps: int = 60,
    step_size: float | None = None,
) -> torch.Tensor:
    """Return images that excite one unit of the representation each: l_2 PGD *up* the unit's
    activation from ``x``, within ``eps`` of it (Engstrom et al. 2019, section 4.2, "feature
    visualization": x = argmax over ||x' - x||_2 <= ε of R(x')_k).

    Args:
        model: A classifier with ``representation(x) -> [N, D]`` (the penultimate layer).
        x: Start images [N, C, H, W] in [0, 1].
        units: The unit to excite in each image, int64 [N], each in [0, D).
        eps: The l_2 radius around the start, pixel units.
        steps: PGD steps, an integer >= 1.
        step_size: The l_2 step in pixel units; ``None`` means ``2.5 * eps / steps``.

    Returns:
        Per image the iterate with the highest activation, [N, C, H, W] in [0, 1] on the model's device.

    Raises:
        TypeError: For a model without ``representation``.
        ValueError: For a radius that is not positive, bad images, or units outside [0, D).
    """
    _check_representation(model)
    _check_radius(eps, steps)
    _check_images(x)
    _check_labels(units, len(x), "units", "one representation unit per image")
    check_inputs(x, model=model)
    width = _representation_width(model, x)
    if units.numel() and not 0 <= int(units.min()) <= int(units.max()) < width:
        raise ValueError(f"units must index the representation's {width} units, 0 to {width - 1}")
    # a [N, 1] target is not a label vector, so pgd keeps the highest activation without a success test
    return pgd(
        model, x, units.view(-1, 1), eps=eps, steps=steps, step_size=step_size, norm="l2",
        random_start=False, loss_fn=unit_activation,
    )  # fmt: skip


def _representation_width(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), _eval_mode(model):
        feats = model.representation(x[:2].to(_device(model)))
    if feats.dim() != 2:
        raise ValueError(f"model.representation must return features [N, D]; got shape {tuple(feats.shape)}")
    return feats.shape[1]


def top_units(model: torch.nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Return the ``k`` representation units whose activation varies most over the images ``x``
    (int64 [k], most varied first): units that respond to something in the data, not dead ones."""
    _check_representation(model)
    _check_images(x)
    check_count("k", k)
    if len(x) < 2:
        raise ValueError(f"a unit's variance needs at least 2 images; got {len(x)}")
    check_inputs(x, model=model)
    _representation_width(model, x)
    with torch.no_grad(), _eval_mode(model):
        variance = model.representation(x.to(_device(model))).var(0)
    live = int((variance > 0).sum())
    if k > live:
        raise ValueError(
            f"only {live} of the representation's {len(variance)} units vary on these images; ask for k <= {live}"
        )
    return variance.argsort(descending=True)[:k].cpu()


# --- The measures -------------------------------------------------------------------------------


def judged_rate(judge: torch.nn.Module, x: torch.Tensor, intended: torch.Tensor) -> float:
    """Return the fraction of images ``x`` [N, C, H, W] that ``judge`` classifies as their ``intended``
    class (int64 [N]): the agreement of an independent observer with what was meant to be drawn."""
    _check_images(x)
    _check_labels(intended, len(x), "intended")
    check_inputs(x, intended, model=judge)  # an intended class the judge cannot output is refused
    return (predict(judge, x).cpu() == intended.cpu()).float().mean().item()


def diversity(x: torch.Tensor, y: torch.Tensor) -> float:
    """Return the mean l_2 distance (pixel units) between two images of the same class, averaged over
    the classes of ``y`` with equal weight: [N, C, H, W] images, int64 [N] labels, each class
    present at least twice. Low for a generator that draws one image per class, whatever its seed."""
    _check_images(x)
    _check_labels(y, len(x))
    classes, counts = torch.unique(y.cpu(), return_counts=True)
    if (counts < 2).any():
        raise ValueError("every class needs at least 2 images for a pairwise distance")
    flat = x.detach().cpu().flatten(1)
    return torch.stack([torch.pdist(flat[y.cpu() == c]).mean() for c in classes]).mean().item()


# --- Chapter 5's studies over several generators -------------------------------------------------


def per_class_targets(classes: int, per_class: int, device=None) -> torch.Tensor:
    """Return ``per_class`` copies of each class index in 0..classes-1, class by class: int64 [classes * per_class]."""
    check_count("classes", classes)
    check_count("per_class", per_class)
    return torch.arange(classes, device=device).repeat_interleave(per_class)


def generation_study(
    generators: dict[str, torch.nn.Module],
    judge: torch.nn.Module,
    seeds: torch.Tensor,
    targets: torch.Tensor,
    real: tuple[torch.Tensor, torch.Tensor],
    *,
    eps: float,
    steps: int,
    seed_label: str = "seeds (class Gaussians)",
) -> dict:
    """Generate from the same seeds with each model and measure what was drawn.

    Args:
        generators: Label -> classifier to generate with.
        judge: An independently trained robust classifier that reads the images.
        seeds: Seed images [N, C, H, W] in [0, 1] (:func:`sample_seeds`).
        targets: The class each seed should become, int64 [N] (:func:`per_class_targets`).
        real: Real test images and labels, the yardstick of diversity and of the judge.
        eps: The l_2 radius of the generation, pixel units.
        steps: PGD steps.
        seed_label: The seeds' row name in the table.

    Returns:
        ``{"images": {label: [N, C, H, W]}, "rows": [...]}``, one row per source (the real images,
        the seeds, then each generator) with ``source``, ``self`` (the generator's own rate of
        drawing its target), ``judge`` (the judge's rate) and ``diversity`` (:func:`diversity`
        relative to the real images').
    """
    _check_generators(generators)
    _check_radius(eps, steps)
    if not isinstance(real, (tuple, list)) or len(real) != 2:
        raise ValueError(
            "real must be a pair (test images [N, C, H, W], labels [N]), e.g. data.test_set('mnist', 1000)"
        )
    _check_images(seeds, "seeds")
    _check_labels(targets, len(seeds), "targets")
    x_real, y_real = real
    base = diversity(x_real, y_real)
    if not base > 0:
        raise ValueError("the real images of each class are all identical (zero diversity): pass distinct images")
    rows = [
        {"source": "real test images", "judge": judged_rate(judge, x_real, y_real), "diversity": 1.0},
        {"source": seed_label, "judge": judged_rate(judge, seeds, targets),
         "diversity": diversity(seeds, targets) / base},
    ]  # fmt: skip
    images = {}
    for name, model in generators.items():
        drawn = generate(model, seeds, targets, eps=eps, steps=steps).cpu()
        images[name] = drawn
        rows.append(
            {"source": f"generated by {name}", "self": judged_rate(model, drawn, targets),
             "judge": judged_rate(judge, drawn, targets), "diversity": diversity(drawn, targets) / base}
        )  # fmt: skip
    return {"images": images, "rows": rows}


def generation_table(rows: list[dict]) -> str:
    """Return the Markdown table of :func:`generation_study`'s rows."""
    return markdown_table(
        rows,
        {"source": "images", "self": "generator reads its target", "judge": "judge reads the intended class",
         "diversity": "within-class diversity (real = 1)"},
        {"self": ".1%", "judge": ".1%", "diversity": ".2f"},
    )  # fmt: skip


def rate_of(rows: list[dict], source: str, column: str = "judge") -> float:
    """Return the ``column`` of the row whose source is ``source`` or ``"generated by " + source``."""
    for row in rows:
        if row["source"] in (source, f"generated by {source}"):
            if column not in row:
                raise KeyError(f"the row of {source!r} has no {column!r}: its columns are {sorted(row)}")
            return row[column]
    raise KeyError(f"no row for {source!r}: the sources are {[r['source'] for r in rows]}")


def inpainting_study(
    generators: dict[str, torch.nn.Module],
    judge: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    size: int,
    eps: float,
    steps: int,
    weight: float = 10.0,
) -> dict:
    """Mask a centred square of each image (:func:`mask_square`), inpaint it with each model
    (:func:`inpaint`) and measure the result.

    Returns:
        ``{"masked": [N, C, H, W], "images": {label: [N, C, H, W]}, "rows": [...]}``, one row per
        source (the originals, the masked images, then each inpainter) with ``judge`` (the judge's
        accuracy) and ``error`` (the root mean squared difference from the original inside the
        square, pixel units).
    """
    _check_generators(generators)
    _check_radius(eps, steps)
    _check_images(x)
    _check_labels(y, len(x), "y")
    masked, mask = mask_square(x, size)
    inside = mask.bool()

    def error(images):
        return (images.cpu() - x.cpu())[inside].pow(2).mean().sqrt().item()

    rows = [  # fmt: skip
        {"source": "original", "judge": judged_rate(judge, x, y), "error": 0.0},
        {
            "source": "masked (square filled with its mean)",
            "judge": judged_rate(judge, masked, y),
            "error": error(masked),
        },
    ]
    images = {}
    for name, model in generators.items():
        filled = inpaint(model, masked, mask, y, eps=eps, steps=steps, weight=weight).cpu()
        images[name] = filled
        rows.append({"source": f"inpainted by {name}", "judge": judged_rate(judge, filled, y), "error": error(filled)})
    return {"masked": masked, "images": images, "rows": rows}


def inpainting_table(rows: list[dict]) -> str:
    """Return the Markdown table of :func:`inpainting_study`'s rows."""
    return markdown_table(
        rows,
        {"source": "images", "judge": "judge's accuracy", "error": "RMS error in the square"},
        {"judge": ".1%", "error": ".3f"},
    )
