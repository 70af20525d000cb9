"""What a model's gradients and large perturbations look like (Tsipras et al. section 3).

Loss gradients with respect to the input, rendered as the paper does; large-eps (targeted)
examples that follow them; linear interpolations between an image and such an example; and
numbers that put the "robust models see like people" claim to a test: how well gradient
magnitude aligns with the image's edges, how closely the gradient of the predicted class's logit
lines up with the image itself (Etmann et al. 2019's alignment, :func:`alignment`), and how often
another model agrees that a targeted large-eps image shows its target.

Chapter 4's studies run over a dict of models keyed by a short label (:func:`label` of a registry
name) and return plain numbers, with a Markdown table for each. At the ``colab`` and ``full``
profiles the chapter also draws with the papers' own published models (:func:`published_models`,
read from ``$ROBUSTUTILS_PUBLISHED`` when set) and the Restricted ImageNet sample, which
:func:`fetch_imagenet_sample` downloads where it is missing.
"""

import math
import os
import re
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data, published
from .attacks import check_count, check_inputs, pgd
from .data import RESTRICTED_IMAGENET_CLASSES
from .evaluate import predict
from .report import markdown_table

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


def toward(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    norm: str = "l2",
) -> torch.Tensor:
    """Return targeted large-eps images in [0, 1]: ``steps`` steps down the loss of ``target``,
    from ``x`` itself (no random start), within ``eps`` of ``x`` in ``norm`` (pixel units)."""
    return pgd(
        model,
        x,
        target,
        eps=eps,
        steps=steps,
        step_size=step_size,
        norm=norm,
        targeted=True,
        random_start=False,
        use_best=False,
    )


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


def alignment(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    center=None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Return, per image, how well the image and its saliency map line up: Etmann et al.'s
    normalised alignment ``|<x - c, g>| / (||x - c|| ||g||)`` [N], in [0, 1], with ``g`` the gradient
    of the logit of class ``y`` with respect to the input (its saliency map) and ``c`` = ``center``.

    1 when the saliency map is a multiple of the (centred) image, 0 when it is orthogonal to it; a
    cosine, so it is unchanged by scaling the logit, and, for a linear model, by scaling ``x - c``.
    Where the centred image or the gradient is zero it is 0.

    Source: Etmann, Lunz, Maass and Schönlieb, "On the Connection Between Adversarial Robustness and
    Saliency Map Interpretability" (ICML 2019), section 2: the alignment
    ``|<x, grad Psi_i*(x)>| / ||grad Psi_i*(x)||`` of an image with the gradient of the logit of its
    predicted class ``i*``, which for a linear binary classifier without bias is the image's distance to
    the decision boundary (their Lemma 1), so it grows with robustness. Dividing also by ``||x||``
    makes images comparable, as the authors' released code does (``logit_correlations`` in
    ``robust_model.py`` of cetmann/robustness-interpretability, there with the label's logit). Their
    MNIST digits enter as they are, in [0, 1]; their ImageNet images less the per-channel mean of
    the training set (``subtract_by='ImageNet'``): ``center`` is that mean.

    Args:
        model: a classifier of inputs in [0, 1] returning logits [N, classes]; run in eval mode,
            its mode restored after.
        x: images [N, C, H, W] in [0, 1] (pixel units), the dtype of the model's weights, on any
            device (each batch is moved to the model's).
        y: the class of the logit differentiated, int64 [N]; ``None`` (default) takes each image's
            predicted class, the paper's ``i*``; the labels give the authors' code's variant.
        center: ``None`` (no centring, as their MNIST) or C per-channel values in [0, 1] (pixel
            units) subtracted from ``x`` first, e.g. the training set's mean (as their ImageNet).
        batch_size: images per forward and backward pass.

    Returns a float tensor [N] on the model's device. One host sync (the input check), none per batch.

    Raises ``ValueError`` with the fix when ``x`` is not a float batch in [0, 1] the model reads
    (:func:`robustutils.attacks.check_inputs`), ``y`` is not int64 [N] of class indices of the model,
    ``center`` does not hold one value in [0, 1] per channel of ``x``, or ``batch_size`` is not a
    whole number >= 1.
    """
    check_inputs(x, y, model=model)
    check_count("batch_size", batch_size, " (images per forward and backward pass)")
    device = next(model.parameters()).device
    shift = _center(center, x).to(device, x.dtype)
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device)
            with torch.enable_grad():
                xb = xb.detach().requires_grad_(True)
                logits = model(xb)
                cls = logits.argmax(1) if y is None else y[start : start + batch_size].to(device)
                (grad,) = torch.autograd.grad(logits.gather(1, cls.view(-1, 1)).sum(), xb)
            v, g = (xb.detach() - shift).flatten(1), grad.flatten(1)
            denom = v.norm(dim=1) * g.norm(dim=1)
            cos = (v * g).sum(1).abs() / denom.clamp_min(torch.finfo(denom.dtype).tiny)
            out.append(torch.where(denom > 0, cos.clamp(max=1.0), torch.zeros_like(cos)))
    finally:
        model.train(was_training)
    return torch.cat(out)


def _center(center, x: torch.Tensor) -> torch.Tensor:
    """``center`` as a tensor broadcastable against ``x`` [N, C, ...] (zeros for None), checked."""
    if center is None:
        return torch.zeros(())
    try:
        values = torch.as_tensor(center, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"center must be None or one value in [0, 1] per channel (pixel units); got {center!r}"
        ) from err
    channels = x.shape[1] if x.dim() > 1 else 1
    if values.dim() > 1 or values.numel() != channels:
        raise ValueError(
            f"center must hold one value per channel of x ({channels}, the size of x's dimension 1); "
            f"got shape {tuple(values.shape)}: pass e.g. the training set's per-channel mean"
        )
    if not ((values >= 0) & (values <= 1)).all():
        raise ValueError(
            f"center must lie in [0, 1] like the images (pixel units); got {values.tolist()}: "
            "a mean in 0..255 is divided by 255"
        )
    return values.view(1, channels, *[1] * (x.dim() - 2))


# --- The chapter's studies: models by name, each measure over a set of models, its table ----------

#: The label of the uniform gradient :func:`edge_shares` scores as its baseline.
BLIND = "blind (uniform)"


def label(name: str) -> str:
    """Return a short label for the registry model ``name``: ``"mnist/standard"`` -> ``"standard"``,
    ``"mnist/linf-0.3"`` -> ``"ℓ∞ 0.3"``, ``"cifar10/linf-8/255"`` -> ``"ℓ∞ 8/255"``, ``"mnist/l2-2"``
    -> ``"ℓ2 2"``; other names (e.g. ``"mnist/trades-6"``) lose only their dataset prefix."""
    model = name.split("/", 1)[-1]
    norm, _, eps = model.partition("-")
    if norm in ("linf", "l2") and eps:
        return f"{'ℓ∞' if norm == 'linf' else 'ℓ2'} {eps}"
    return model


def gradient_rows(
    models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, render=signed_map
) -> dict[str, torch.Tensor]:
    """Return the rows of a gradient figure: ``"image"`` -> ``x``, then each model's label -> its
    :func:`loss_gradient` on ``(x, y)`` rendered by ``render`` (:func:`signed_map`, [-1, 1], or
    :func:`clipped_map`, [0, 1]); every row shaped like ``x`` [N, C, H, W] (Tsipras et al. Fig. 2)."""
    return {"image": x, **{name: render(loss_gradient(m, x, y)) for name, m in models.items()}}


def large_eps_rows(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
) -> dict[str, torch.Tensor]:
    """Return ``"image"`` -> ``x``, then each model's label -> its untargeted ℓ2 PGD images in [0, 1]
    at ``eps`` (pixel units) from ``x`` itself (no random start), shaped like ``x`` (Tsipras et al.
    Fig. 3); ``step_size=None`` is :func:`robustutils.attacks.pgd`'s default."""
    return {
        "image": x,
        **{
            name: pgd(m, x, y, eps=eps, steps=steps, step_size=step_size, norm="l2", random_start=False)
            for name, m in models.items()
        },
    }


def class_grid(x: torch.Tensor, y: torch.Tensor, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the first image of each class in ``(x, y)``, each repeated ``classes`` times
    ([classes * classes, C, H, W], source class major), and the targets 0..classes-1 cycling along
    them ([classes * classes], on ``y``'s device): one row per source, one column per target.
    Raises ``ValueError`` naming a class that ``y`` lacks."""
    missing = [c for c in range(classes) if not (y == c).any()]
    if missing:
        raise ValueError(f"no example of class(es) {missing} among the {len(y)} given: pass more test examples")
    sources = torch.stack([x[(y == c).nonzero()[0, 0]] for c in range(classes)])
    return sources.repeat_interleave(classes, dim=0), torch.arange(classes, device=y.device).repeat(classes)


def grid_rows(grid: torch.Tensor, judge: torch.nn.Module | None = None, classes: int = 10) -> dict[str, torch.Tensor]:
    """Return the rows of a class-grid figure: ``grid`` holds the images made from :func:`class_grid`'s
    pairs ([classes * classes, C, H, W], source class major, e.g. :func:`toward`'s output), and row
    ``"<c> →"`` its images of source class ``c`` [classes, C, H, W], one per target class.

    With a ``judge`` each title also counts the row's images pushed toward another class than ``c``
    that the judge classifies as their target, on a second line (``"6/9 target"``): the rate of
    :func:`judge_agreement`, on the images the figure shows. Raises ``ValueError`` when ``grid`` does
    not hold ``classes * classes`` images."""
    if len(grid) != classes * classes:
        raise ValueError(f"a class grid of {classes} classes holds {classes * classes} images; got {len(grid)}")
    rows = grid.view(classes, classes, *grid.shape[1:])
    if judge is None:
        return {f"{c} →": rows[c] for c in range(classes)}
    seen = predict(judge, grid).view(classes, classes).cpu() == torch.arange(classes)
    off = ~torch.eye(classes, dtype=torch.bool)
    return {f"{c} →\n{int(seen[c][off[c]].sum())}/{classes - 1} target": rows[c] for c in range(classes)}


def judged_rows(
    rows: dict[str, torch.Tensor], judge: torch.nn.Module, y: torch.Tensor, skip: tuple[str, ...] = ("image",)
) -> dict[str, torch.Tensor]:
    """Return ``rows`` (e.g. :func:`large_eps_rows`', name -> images [N, C, H, W] in [0, 1]) with each
    title not in ``skip`` followed by how many of its N images ``judge`` classifies as another class
    than their label ``y`` [N], on a second line (``"7/10 not y"``): how often another observer sees
    the class change. Raises ``ValueError`` when a row has another number of images than ``y``."""
    out = {}
    for name, images in rows.items():
        if name in skip:
            out[name] = images
            continue
        if len(images) != len(y):
            raise ValueError(f"row {name!r} has {len(images)} images for {len(y)} labels: give its images' labels")
        changed = int((predict(judge, images) != y.to(next(judge.parameters()).device)).sum())
        out[f"{name}\n{changed}/{len(y)} not y"] = images
    return out


def gradient_alignment(
    models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, top: float = 0.2
) -> dict[str, dict[str, float]]:
    """Return the two gradient measures of each model on ``(x, y)``, averaged over the examples:
    ``{"share": {label: mean edge_energy_share at top}, "pearson": {label: mean edge_alignment}}``."""
    out = {"share": {}, "pearson": {}}
    for name, m in models.items():
        grad = loss_gradient(m, x, y)
        out["share"][name] = edge_energy_share(grad, x, top=top).mean().item()
        out["pearson"][name] = edge_alignment(grad, x).mean().item()
    return out


def _robust(values: dict[str, float], standard: str) -> dict[str, float]:
    if standard not in values:
        raise KeyError(f"no {standard!r} model among {list(values)}: name the standard model's label as standard=")
    return {k: v for k, v in values.items() if k != standard}


def min_lead(values: dict[str, float], standard: str = "standard") -> float:
    """Return how far the weakest of the other models is above ``values[standard]`` (negative: below);
    ``values`` maps a model's label to a measure where higher means more aligned."""
    return min(v - values[standard] for v in _robust(values, standard).values())


def separation(values: dict[str, float], standard: str = "standard", margin: float = 0.0) -> str:
    """Return the verdict on ``values`` (label -> measure): whether every, some or none of the other
    models score more than ``margin`` (in the measure's units) above the standard one."""
    above = [v > values[standard] + margin for v in _robust(values, standard).values()]
    return (
        "separates every robust model"
        if all(above)
        else ("separates some robust models" if any(above) else "does NOT separate")
    )


def listing(values: dict[str, float], fmt: str = ".3f") -> str:
    """Return ``values`` (label -> number) as text: ``"standard model 0.568, ℓ∞ 0.3 model 0.802"``."""
    return ", ".join(f"{name} model {v:{fmt}}" for name, v in values.items())


def alignment_report(alignment: dict[str, dict], n: int, standard: str = "standard") -> str:
    """Return Markdown: a table of :func:`gradient_alignment`'s two measures per dataset and model
    (``alignment[dataset]``), then whether, on each dataset, the Pearson correlation ranks every other
    model above the standard one; ``n`` is the number of test images per row."""
    rows = [
        {"data": d, "model": name, "share": a["share"][name], "pearson": a["pearson"][name]}
        for d, a in alignment.items()
        for name in a["share"]
    ]
    table = markdown_table(
        rows,
        {
            "data": "dataset",
            "model": "model",
            "share": "energy on the top-20% edge pixels",
            "pearson": "Pearson correlation with edges",
        },
        {"share": ".3f", "pearson": ".3f"},
    )
    pearson = {d: a["pearson"] for d, a in alignment.items()}
    lines = [f"{n} test images per row.", *_ranking(pearson, "the Pearson correlation", standard)]
    return table + "\n\n" + " ".join(lines)


def _ranking(values: dict[str, dict[str, float]], measure: str, standard: str) -> list[str]:
    """One sentence per dataset and model of ``values[dataset][label]``: whether ``measure`` ranks
    the model above the ``standard`` one there."""
    lines = []
    for d, v in values.items():
        for name, a in _robust(v, standard).items():
            ranks = "ranks" if a > v[standard] else "does NOT rank"
            lines.append(
                f"On {d} {measure} {ranks} the {name} model above the standard one ({a:.3f} vs {v[standard]:.3f})."
            )
    return lines


def edge_shares(
    models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, tops: list[float]
) -> dict[str, list[float]]:
    """Return, for a gradient blind to the image (:data:`BLIND`: the same value on every pixel) and
    for each model's :func:`loss_gradient` on ``(x, y)``, its mean :func:`edge_energy_share` at each
    of ``tops`` (fractions of the pixels): ``{label: [share at tops[0], ...]}``, [0, 1]."""
    grads = {BLIND: torch.ones_like(x), **{name: loss_gradient(m, x, y) for name, m in models.items()}}
    return {name: [edge_energy_share(g, x, top=t).mean().item() for t in tops] for name, g in grads.items()}


def shares_table(shares: dict[str, list[float]], tops: list[float]) -> str:
    """Return Markdown: :func:`edge_shares`'s result as a table (one row per gradient, one column per
    ``top``), then the ranking of the gradients at each ``top``."""
    rows = [{"gradient": name, **{f"{t:g}": s for t, s in zip(tops, v)}} for name, v in shares.items()]
    table = markdown_table(
        rows, {"gradient": "gradient of", **{f"{t:g}": f"top {t:.0%}" for t in tops}}, {f"{t:g}": ".3f" for t in tops}
    )
    rankings = [
        f"top {t:.0%}: " + " > ".join(sorted(shares, key=lambda n: shares[n][i], reverse=True))
        for i, t in enumerate(tops)
    ]
    return table + "\n\nRanking at " + "; ".join(rankings) + "."


def chance_alignment(dims: int) -> float:
    """Return the mean :func:`alignment` [0, 1] of a gradient pointing in a direction drawn uniformly
    at random with any fixed image of ``dims`` pixel values (784 for MNIST, 3,072 for CIFAR-10): the
    mean absolute cosine ``Gamma(D/2) / (sqrt(pi) Gamma((D+1)/2))``, about ``sqrt(2 / (pi D))``, the
    line of no alignment. Raises ``ValueError`` when ``dims`` is not a whole number >= 1."""
    check_count("dims", dims, " (pixel values per image)")
    return min(1.0, math.exp(math.lgamma(dims / 2) - math.lgamma((dims + 1) / 2)) / math.sqrt(math.pi))


def image_alignments(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    center=None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Return ``{label: mean alignment}`` [0, 1]: each model's :func:`alignment` of the images ``x``
    [N, C, H, W] in [0, 1] with the gradient of its logit of class ``y`` (``None``: the class it
    predicts), less ``center`` (``None``, or C per-channel values in [0, 1]), averaged over the images."""
    return {name: alignment(m, x, y, center=center, batch_size=batch_size).mean().item() for name, m in models.items()}


def image_alignment_report(
    values: dict[str, dict[str, float]], n: int, dims: dict[str, int], standard: str = "standard"
) -> str:
    """Return Markdown: a table of :func:`image_alignments`' means per dataset and model
    (``values[dataset]``), each dataset led by the :func:`chance_alignment` of its ``dims[dataset]``
    pixel values, then whether, on each dataset, the alignment ranks every other model above the
    standard one; ``n`` is the number of test images per row."""
    missing = sorted(set(values) - set(dims))
    if missing:
        raise KeyError(f"no number of pixel values for {missing}: give dims[dataset], e.g. x[0].numel()")
    rows = []
    for d, v in values.items():
        rows.append({"data": d, "model": "a random direction", "alpha": chance_alignment(dims[d])})
        rows += [{"data": d, "model": name, "alpha": a} for name, a in v.items()]
    table = markdown_table(
        rows, {"data": "dataset", "model": "gradient of", "alpha": "mean alignment α"}, {"alpha": ".3f"}
    )
    lines = [f"{n} test images per row.", *_ranking(values, "the alignment", standard)]
    return table + "\n\n" + " ".join(lines)


def judge_agreement(
    models: dict[str, torch.nn.Module],
    judges: dict[str, torch.nn.Module],
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    eps: list[float],
    steps: int,
) -> list[dict]:
    """Return one row per (ℓ2 ``eps``, pixel units, model): the model's targeted large-eps images of ``x`` toward
    ``target`` (:func:`toward`, ``steps`` steps), and the fraction [0, 1] of them classified as the
    target by the model itself (``"self"``) and by each judge (keyed by the judge's label):
    ``{"eps", "model", "self", **judges}``. The judges stand in for other observers (Tsipras et al.
    Fig. 3 asks people); they should be trained independently of the models (another seed)."""
    rows = []
    for e in eps:
        for name, m in models.items():
            x_t = toward(m, x, target, eps=e, steps=steps)
            rows.append(
                {
                    "eps": e,
                    "model": name,
                    "self": target_rate(m, x_t, target),
                    **{j: target_rate(judge, x_t, target) for j, judge in judges.items()},
                }
            )
    return rows


def agreement_table(rows: list[dict], judges: list[str]) -> str:
    """Return Markdown: :func:`judge_agreement`'s rows, rates as percentages, one column per judge."""
    return markdown_table(
        rows,
        {
            "eps": "ℓ2 ε",
            "model": "images made through",
            "self": "reach the target",
            **{j: f"seen as the target by the {j}" for j in judges},
        },
        {k: ".1%" for k in ("self", *judges)} | {"eps": "g"},
    )


def agreement_at(rows: list[dict], eps: float, column: str) -> dict[str, float]:
    """Return ``{model: rate}`` of :func:`judge_agreement`'s ``rows`` at ``eps``, from ``column``
    (``"self"`` or a judge's label). Raises ``KeyError`` when no row has that ``eps`` (pixel units)."""
    found = {r["model"]: r[column] for r in rows if r["eps"] == eps}
    if not found:
        raise KeyError(f"no row at eps {eps:g}: the rows have eps {sorted({r['eps'] for r in rows})}")
    return found


def summary_table(
    rows: dict[str, dict[str, float]], standard: str = "standard", margins: dict[str, float] | None = None
) -> str:
    """Return Markdown: one row per measure (``rows[measure] = {label: value}``, higher = more like a
    person's view): the standard model's value, the others' and the :func:`separation` verdict with
    the measure's margin (``margins[measure]``, default 0: the one the chapter's claim about it uses)."""
    margins = margins or {}
    unknown = set(margins) - set(rows)
    if unknown:
        raise KeyError(f"margins for measures not in rows: {sorted(unknown)}; the rows are {list(rows)}")
    table = [
        {
            "measure": measure,
            "standard": values[standard],
            "robust": " / ".join(f"{name} {v:.3f}" for name, v in _robust(values, standard).items()),
            "margin": margins.get(measure, 0.0),
            "verdict": separation(values, standard, margins.get(measure, 0.0)),
        }
        for measure, values in rows.items()
    ]
    return markdown_table(
        table,
        {
            "measure": "measure",
            "standard": "standard model",
            "robust": "robust models",
            "margin": "lead needed",
            "verdict": "at this scale",
        },
        {"standard": ".3f", "margin": "g"},
    )


def interpolation_rows(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    classes,
    *,
    eps: float,
    steps: int,
    points: int = 20,
) -> dict[str, torch.Tensor]:
    """Return, per image of ``x`` and per model, the :func:`interpolate` path of ``points`` images
    [points, C, H, W] from the image to its targeted large-eps example toward ``target`` (ℓ2 ``eps`` in pixel units,
    ``steps`` steps; Tsipras et al. Fig. 4), keyed ``"<model>: <class> → <target class>"`` with the
    names in ``classes`` (indexable by label), image major."""
    ends = {name: toward(m, x, target, eps=eps, steps=steps) for name, m in models.items()}
    return {
        f"{name}: {classes[int(y[i])]} → {classes[int(target[i])]}": interpolate(x[i], end[i], points)
        for i in range(len(x))
        for name, end in ends.items()
    }


def gallery(sample, per_class: int = 6, classes=None) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Return up to ``per_class`` images of each class in ``sample`` (a dataset of (image, label)
    items, e.g. :func:`robustutils.data.restricted_imagenet`) as ``{class name: [k, C, H, W]}`` in
    label order, and the number of images of each class; names from ``classes`` (default
    ``robustutils.data.RESTRICTED_IMAGENET_CLASSES``)."""
    classes = RESTRICTED_IMAGENET_CLASSES if classes is None else classes
    by_class: dict[int, list] = {}
    for image, c in (sample[i] for i in range(len(sample))):
        by_class.setdefault(int(c), []).append(image)
    return (
        {classes[c]: torch.stack(by_class[c][:per_class]) for c in sorted(by_class)},
        {classes[c]: len(by_class[c]) for c in sorted(by_class)},
    )


# --- The papers' own published models (the colab and full profiles) ------------------------------

#: The environment variable that, when set, names the folder the chapters read the published models
#: from (RobustBench's layout ``<folder>/<dataset>/<threat_model>/<name>.pt``) instead of
#: :func:`robustutils.published.load`'s default; the tests point it at stand-in checkpoints.
#: The published models chapter 4 draws, by the label its tables use, as ``(RobustBench name, threat
#: model)``. CIFAR-10: RobustBench's standard WideResNet-28-10 and the robustness library's ResNet-50s
#: of Tsipras et al. (2019) and Ilyas et al. (2019); ImageNet: torchvision's standard ResNet-50 and the
#: robustness library's ℓ∞ 4/255 ResNet-50.
PUBLISHED = {
    "cifar10": {
        "standard": ("Standard", "Linf"),
        "ℓ∞ 8/255": ("Engstrom2019Robustness", "Linf"),
        "ℓ2 0.5": ("Engstrom2019Robustness", "L2"),
    },
    "imagenet": {"standard": ("Standard_R50", "Linf"), "ℓ∞ 4/255": ("Engstrom2019Robustness", "Linf")},
}


def published_models(dataset: str, labels=None, *, device=None) -> dict[str, torch.nn.Module]:
    """Return ``{label: model}`` of :data:`PUBLISHED` ``[dataset]`` (``"cifar10"`` or ``"imagenet"``),
    the standard model first, each loaded by :func:`robustutils.published.load`; ``labels`` picks some of them.
    ImageNet models come with Restricted ImageNet's nine superclass logits (``restricted_imagenet=True``),
    so that they take :func:`robustutils.data.restricted_imagenet`'s labels."""
    if dataset not in PUBLISHED:
        raise ValueError(f"dataset must be one of {sorted(PUBLISHED)}; got {dataset!r}")
    known = PUBLISHED[dataset]
    labels = list(known) if labels is None else list(labels)
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ValueError(f"no published {dataset} model labelled {unknown}: choose among {list(known)}")
    return {
        label: published.load(
            known[label][0],
            dataset=dataset,
            threat_model=known[label][1],
            restricted_imagenet=dataset == "imagenet",
            device=device,
        )
        for label in labels
    }


def batched_alignment(
    models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, *, batch_size: int, top: float = 0.2
) -> dict[str, dict[str, float]]:
    """Return :func:`gradient_alignment` of ``(x, y)`` computed ``batch_size`` images at a time (for
    large networks whose gradients of all of ``x`` at once do not fit the device): the same means,
    weighted by the size of each batch."""
    data.check_size(batch_size, max(batch_size, 1), "images per batch")
    total: dict[str, dict[str, float]] = {"share": {}, "pearson": {}}
    for start in range(0, len(y), batch_size):
        part = gradient_alignment(models, x[start : start + batch_size], y[start : start + batch_size], top=top)
        weight = len(y[start : start + batch_size]) / len(y)
        for measure, values in part.items():
            for name, v in values.items():
                total[measure][name] = total[measure].get(name, 0.0) + weight * v
    return total


def gradient_and_large_eps_rows(
    models: dict[str, torch.nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
) -> dict[str, torch.Tensor]:
    """Return the rows of one figure of Tsipras et al.'s Fig. 2 and 3 together: ``"image"`` -> ``x``,
    then ``"gradient, <label>"`` (:func:`loss_gradient` as :func:`clipped_map`) and then
    ``"ℓ2 ε <eps>, <label>"`` (:func:`large_eps_rows`, ``eps`` and ``step_size`` in pixel units) for
    each model; every row shaped like ``x``."""
    grads = gradient_rows(models, x, y, render=clipped_map)
    large = large_eps_rows(models, x, y, eps=eps, steps=steps, step_size=step_size)
    return {
        "image": x,
        **{f"gradient, {name}": grads[name] for name in models},
        **{f"ℓ2 ε {eps:g}, {name}": large[name] for name in models},
    }


# The Restricted ImageNet sample of this book: one image of each of the 203 ImageNet classes of the
# nine superclasses, from the public repository below, which holds one image of every ImageNet class
# at its top level (``<wnid>_<class name>.JPEG``) and lists them in its gallery.md.
SAMPLE_REPOSITORY = "EliSchwartz/imagenet-sample-images"
SAMPLE_RAW = f"https://raw.githubusercontent.com/{SAMPLE_REPOSITORY}/master/"
SAMPLE_FOLDER = "restricted-imagenet-sample"
_SAMPLE_FILE = re.compile(r"\((n\d{8}_[^()\s]+\.JPEG)\)")


def sample_files(gallery: str) -> dict[str, str]:
    """Return ``{wnid: file name}`` of the Restricted ImageNet classes among the images that the
    sample repository's ``gallery.md`` (its text, ``gallery``) links to; raise ``ValueError`` naming
    the wnids it lacks."""
    wanted = data.restricted_imagenet_wnids()
    found = {}
    for name in _SAMPLE_FILE.findall(gallery):
        wnid = name.split("_", 1)[0]
        if wnid in wanted:
            found.setdefault(wnid, name)
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise ValueError(
            f"the gallery of {SAMPLE_REPOSITORY} links no image of {len(missing)} Restricted ImageNet classes "
            f"(e.g. {missing[:3]}): expected one '<wnid>_<name>.JPEG' per class"
        )
    return found


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
        shutil.copyfileobj(response, f)
    os.replace(partial, target)


def fetch_imagenet_sample(root=None, *, base_url: str = SAMPLE_RAW) -> Path:
    """Download the Restricted ImageNet sample (one JPEG per class, 203 files, about 20 MB) from the
    public GitHub repository ``SAMPLE_REPOSITORY`` into ``<root>/restricted-imagenet-sample/val/
    <wnid>/``, where :func:`robustutils.data.restricted_imagenet` reads it (``root`` defaults to
    ``$ROBUSTUTILS_DATA``, else ``./data``); files already there are kept. Return the sample's folder.

    ``base_url`` is the repository's raw-file address (its ``gallery.md`` names the files). A failed
    download raises :class:`robustutils.data.DataMissingError` saying where to put the files by hand.
    """
    folder = data.data_root(root) / SAMPLE_FOLDER
    try:
        with urllib.request.urlopen(base_url + "gallery.md", timeout=60) as response:
            files = sample_files(response.read().decode("utf-8"))
        for wnid, name in files.items():
            target = folder / "val" / wnid / name
            if not target.is_file():
                _download(base_url + urllib.parse.quote(name), target)
    except (OSError, ValueError) as err:
        raise data.DataMissingError(
            f"could not download the Restricted ImageNet sample from {base_url} ({type(err).__name__}: {err}).\n"
            f"Put one image of each Restricted ImageNet class at {folder}/val/<wnid>/<file>.JPEG (the top-level "
            f"files of github.com/{SAMPLE_REPOSITORY} whose wnid is in robustutils/restricted_imagenet_wnids.tsv), "
            f"or point the environment variable {data.DATA_ENV} at a folder that holds {SAMPLE_FOLDER}/val/"
        ) from err
    return folder


def imagenet_sample(size: int = 224, *, fetch: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return one validation image of each Restricted ImageNet superclass in label order (its first
    in the folder) as ``(x [9, 3, size, size] in [0, 1], y [9] = 0..8)``, resized and centre-cropped as
    :func:`robustutils.data.imagenet_transform` does. The images come from
    :func:`robustutils.data.restricted_imagenet`; when it finds none and ``fetch`` is true, the sample
    is downloaded first (:func:`fetch_imagenet_sample`)."""
    try:
        folder = data.restricted_imagenet("val", size=size)
    except data.DataMissingError:
        if not fetch:
            raise
        fetch_imagenet_sample()
        folder = data.restricted_imagenet("val", size=size)
    rows, _ = gallery(folder, per_class=1)
    missing = [c for c in RESTRICTED_IMAGENET_CLASSES if c not in rows]
    if missing:
        raise ValueError(f"the sample at {folder.root} has no image of the superclass(es) {missing}")
    x = torch.cat([rows[c] for c in RESTRICTED_IMAGENET_CLASSES])
    return x, torch.arange(len(RESTRICTED_IMAGENET_CLASSES))
