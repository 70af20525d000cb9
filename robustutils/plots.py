"""Figures for the chapters. Each function draws one figure and returns it; nothing calls ``plt.show``.

Toy model (chapter 1): closed forms are drawn as lines, Monte Carlo estimates as markers.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

from robustutils import toy

STANDARD, ROBUST = "tab:blue", "tab:red"


def _avg_panel(
    ax: plt.Axes,
    grid: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    mc: dict[float, tuple[float, float]],
    xlabel: str,
) -> None:
    """Draw ``f_avg``'s standard and robust accuracy: closed form over ``grid``, Monte Carlo from ``mc``."""
    for k, (label, colour) in enumerate([("standard", STANDARD), (r"robust, $\varepsilon = 2\eta$", ROBUST)]):
        ax.plot(grid, exact[k], color=colour, label=f"{label} (closed form)")
        ax.plot(list(mc), [v[k] for v in mc.values()], "o", color=colour, mfc="none", label=f"{label} (Monte Carlo)")
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    ax.axhline(0.01, color="grey", lw=0.8, ls=":")
    ax.set(xlabel=xlabel, ylabel="accuracy of $f_{avg}$", ylim=(-0.02, 1.02))


def avg_sweeps(
    by_d: dict[int, tuple[float, float]], eta: float, by_eta: dict[float, tuple[float, float]], d: int
) -> plt.Figure:
    """Return a two-panel figure of ``f_avg``'s accuracy: against ``d`` at fixed ``eta``, and against
    ``eta`` at fixed ``d``.

    ``by_d`` and ``by_eta`` map a grid value to Monte Carlo ``(standard, robust)`` accuracy.
    A dashed line marks ``eta sqrt(d) = 3``, beyond which the standard accuracy exceeds 99%.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    ds = np.unique(np.geomspace(min(by_d), max(by_d), 200).round().astype(int))  # d is a count
    _avg_panel(
        left,
        ds,
        ([toy.avg_accuracy(int(v), eta) for v in ds], [toy.avg_robust_accuracy(int(v), eta) for v in ds]),
        by_d,
        f"number of weak features $d$ ($\\eta = {eta:g}$)",
    )
    left.set_xscale("log")
    left.axvline((3 / eta) ** 2, color="k", lw=0.8, ls="--")
    etas = np.linspace(min(by_eta), max(by_eta), 200)
    _avg_panel(
        right,
        etas,
        ([toy.avg_accuracy(d, v) for v in etas], [toy.avg_robust_accuracy(d, v) for v in etas]),
        by_eta,
        f"weak-feature mean $\\eta$ ($d = {d}$)",
    )
    right.axvline(toy.eta_for(d), color="k", lw=0.8, ls="--")
    right.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff(reports: dict[str, dict[str, float]], p: float = 0.95) -> plt.Figure:
    """Return Theorem 2.1's bound ``robust <= p / (1 - p) (1 - standard)`` as a curve with classifiers as points.

    ``reports`` maps a name to a dict with Monte Carlo ``standard`` and ``robust`` accuracy (as
    from :func:`robustutils.toy.linear_report`); the region above the curve is unreachable.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    acc = np.linspace(0.93, 1.0, 400)
    bound = [toy.robust_accuracy_bound(1 - a, p) for a in acc]
    ax.plot(acc, bound, color="k", label=f"Theorem 2.1 bound, $p = {p:g}$")
    ax.fill_between(acc, bound, 1.05, color="grey", alpha=0.2, label="impossible at $\\varepsilon \\geq 2\\eta$")
    markers = iter(["o", "s", "x", "+", "D", "^", "v", "<", ">", "p", "h"])
    for name, r in reports.items():
        ax.plot(r["standard"], r["robust"], next(markers, "o"), ms=9, mfc="none", mew=1.5, label=name)
    ax.set(
        xlabel="standard accuracy",
        ylabel=r"robust accuracy, $\varepsilon = 2\eta$",
        xlim=(0.93, 1.0),
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def weights(models: dict[str, torch.Tensor]) -> plt.Figure:
    """Return one bar panel per linear model: each weight divided by ``||w||_1``, ``x1`` in red, weak features in blue.

    The panel title gives the share of the l_1 mass on ``x1``; each panel has its own y scale.
    """
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.4))
    for ax, (name, w) in zip(np.atleast_1d(axes), models.items()):
        share = (w / w.abs().sum()).numpy()
        ax.bar(range(1, len(share)), share[1:], color=STANDARD, width=1.0, label="weak features $x_2, \\dots$")
        ax.bar([0], share[:1], color=ROBUST, width=1.0, label="robust feature $x_1$")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(
            title=f"{name}: {abs(share[0]):.1%} of $\\|w\\|_1$ on $x_1$", xlabel="coordinate", ylabel=r"$w_i / \|w\|_1$"
        )
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Adversarial training and the trade-off (chapters 2 and 3) -----------------------------


def _image(ax: plt.Axes, img: torch.Tensor, title: str = "", cmap: str = "gray") -> None:
    img = img.detach().cpu()
    ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap=cmap, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def adversarial_examples(rows: dict[str, tuple[torch.Tensor, torch.Tensor]], labels: torch.Tensor) -> plt.Figure:
    """Return a grid of images: one row per entry of ``rows`` (name -> (images [N, C, H, W] in [0, 1],
    predicted labels [N])), one column per example; titles show the prediction, red when wrong."""
    n = len(labels)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.5 * len(rows)), squeeze=False)
    for r, (name, (images, preds)) in enumerate(rows.items()):
        for c in range(n):
            _image(axes[r, c], images[c], f"pred {int(preds[c])}")
            axes[r, c].title.set_color("k" if int(preds[c]) == int(labels[c]) else "tab:red")
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_eps(panels: dict[str, dict[str, tuple[list, list]]], ylabel: str = "accuracy under PGD") -> plt.Figure:
    """Return one panel per threat model: ``panels[title][model name] = (eps values, accuracies)``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for name, (eps, acc) in curves.items():
            ax.plot(eps, acc, "o-", label=name)
        ax.set(title=title, xlabel=r"test $\varepsilon$", ylabel=ylabel, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, list[dict]], robust_label: str = "PGD-20") -> plt.Figure:
    """Return clean and robust test accuracy per epoch (solid / dashed), one colour per model,
    and the training eps as a fraction of its final value (right panel); ``robust_label`` names
    the attack the robust accuracy was measured with."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for k, (name, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        colour = f"C{k}"
        left.plot(epochs, [row["test_clean_acc"] for row in history], "o-", color=colour, label=f"{name}: clean")
        if history[0]["test_robust_acc"] is not None:
            left.plot(
                epochs,
                [row["test_robust_acc"] for row in history],
                "s--",
                color=colour,
                label=f"{name}: robust ({robust_label})",
            )
            final = history[-1]["eps"] or 1.0
            right.plot([0] + epochs, [0] + [row["eps"] / final for row in history], "o-", color=colour, label=name)
    left.set(xlabel="epoch", ylabel="test accuracy", ylim=(-0.02, 1.02))
    left.legend(fontsize=7)
    right.set(xlabel="epoch (end of)", ylabel=r"training $\varepsilon$ / final $\varepsilon$", ylim=(-0.02, 1.05))
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def accuracy_vs_eps_train(panels: dict[str, tuple[list, list, list]]) -> plt.Figure:
    """Return one panel per (dataset, norm): ``panels[title] = (eps_train, standard acc, robust acc)``,
    robust accuracy measured at each model's own training eps (worst case over the attacks)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (title, (eps, standard, robust)) in zip(axes[0], panels.items()):
        ax.plot(eps, standard, "o-", color=STANDARD, label="standard accuracy")
        ax.plot(eps, robust, "s--", color=ROBUST, label=r"robust accuracy at $\varepsilon_{train}$")
        ax.set(title=title, xlabel=r"training $\varepsilon$", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def accuracy_vs_train_size(sizes: list[int], by_eps: dict[float, list[float]], norm: str = r"\ell_2") -> plt.Figure:
    """Return standard test accuracy against training-set size, one line per training eps (Tsipras et al. Fig. 1)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for eps, acc in by_eps.items():
        ax.plot(sizes, acc, "o-", label=f"$\\varepsilon_{{train}} = {eps:g}$" + (" (standard)" if eps == 0 else ""))
    ax.set_xscale("log")
    ax.set(xlabel="training-set size", ylabel="standard test accuracy", title=f"MNIST, ${norm}$ adversarial training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto(points: dict[str, tuple[float, float]], frontier: list[str], eps_label: str) -> plt.Figure:
    """Return models as points (robust accuracy, standard accuracy) with the Pareto frontier drawn
    through the names in ``frontier``; ``points[name] = (standard, robust)``."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, (standard, robust) in points.items():
        marker = "D" if name.startswith("trades") else "o"
        ax.plot(robust, standard, marker, ms=8, mfc="none", mew=1.5, label=name)
    front = sorted((points[name][1], points[name][0]) for name in frontier)
    ax.plot(*zip(*front), "k-", lw=0.8, label="Pareto frontier")
    ax.set(xlabel=f"robust accuracy at {eps_label} (worst of PGD, APGD-CE, APGD-DLR)", ylabel="standard accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


# --- What robust models see (chapter 4) ----------------------------------------------------


def image_rows(
    rows: dict[str, torch.Tensor], col_titles: list[str] | None = None, size: float = 1.1, signed: tuple[str, ...] = ()
) -> plt.Figure:
    """Return a grid with one row of images per entry (name -> [N, C, H, W]): images in [0, 1];
    the rows named in ``signed`` are single-channel maps in [-1, 1], drawn blue (negative) to red."""
    n = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows) + 0.3), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            img = images[c].detach().cpu()
            if name in signed:
                ax.imshow(img[0], cmap="bwr", vmin=-1, vmax=1)
            else:
                _image(ax, img)
            if r == 0 and col_titles:
                ax.set_title(col_titles[c], fontsize=8)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def transfer(points: dict[str, tuple[float, float]], chance: float) -> plt.Figure:
    """Return Ilyas et al.'s Fig. 3: per architecture ``points[name] = (transfer rate, accuracy)``,
    the rate at which the source model's targeted examples fool it (x) against its accuracy on
    the real test set when trained on D_det (y); a dashed line marks chance."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for name, (rate, acc) in points.items():
        ax.plot(rate, acc, "o")
        ax.annotate(name, (rate, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axhline(chance, ls="--", c="gray", lw=1, label="chance")
    ax.set(
        xlabel="transfer rate of the source's targeted examples",
        ylabel="test accuracy when trained on D_det",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def scaling(rows: list[dict], base: dict) -> plt.Figure:
    """Return three panels of seconds per MNIST training epoch (log scale): against model width,
    batch size and PGD steps, one line per precision; ``rows`` and ``base`` come from
    :func:`robustutils.bench.scaling`."""
    axes_names = {
        "width": "model width (conv channels / hidden units)",
        "batch_size": "batch size",
        "steps": "PGD steps per training batch",
    }
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, (axis, xlabel) in zip(axes, axes_names.items()):
        for precision, style in (("float32", "o-"), ("bf16+channels_last", "s--")):
            pts = [r for r in rows if r["axis"] == axis and r["precision"] == precision]
            ticks = ["/".join(map(str, r["value"])) if axis == "width" else str(r["value"]) for r in pts]
            ax.plot(range(len(pts)), [r["epoch_seconds"] for r in pts], style, label=precision)
            ax.set_xticks(range(len(pts)), ticks)
        ax.set(xlabel=xlabel, yscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("seconds per epoch (60,000 digits)")
    axes[0].legend()
    fig.suptitle(
        f"PGD training cost; other settings at width {base['channels']}/{base['hidden']}, "
        f"batch {base['batch_size']}, PGD-{base['steps']}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def cost_and_gain(panels: dict[str, dict]) -> plt.Figure:
    """Return Tsipras et al.'s Fig. 7 as two rows, one column per (dataset, norm) panel: the top row
    standard accuracy against the training ε, on each panel's own scale (a cost of one point stays
    visible) and the cost at the largest ε written in; the bottom row the worst-case robust accuracy
    at each model's own training ε on a 0–100% scale, with the standard model attacked at the
    largest ε as a grey cross and the robust accuracy bought there written in.

    ``panels[title]`` has ``eps`` (training ε, pixel units, 0 first), ``ticks`` (their labels),
    ``standard`` and ``robust`` (accuracies in [0, 1], one per ε) and ``baseline`` (the standard
    model's robust accuracy at ``eps[-1]``)."""
    from matplotlib.ticker import PercentFormatter

    fig, axes = plt.subplots(2, len(panels), figsize=(2.6 * len(panels), 5.2), sharex="col", squeeze=False)
    for col, (title, p) in enumerate(panels.items()):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(p["eps"], p["standard"], "o-", color=STANDARD)
        low, high = min(p["standard"]), max(p["standard"])
        pad = max(0.005, 0.15 * (high - low))
        top.set_ylim(low - 2 * pad, min(1.0, high + pad))
        top.set_title(title, fontsize=10)
        cost = 100 * (p["standard"][0] - p["standard"][-1])
        top.text(0.04, 0.05, f"cost at the largest ε:\n{cost:.1f} points", transform=top.transAxes, fontsize=8)
        bottom.plot(p["eps"], p["robust"], "s--", color=ROBUST, label=r"trained at $\varepsilon_{train}$")
        bottom.plot(p["eps"][-1], p["baseline"], "x", color="grey", ms=9, mew=2, label="standard model")
        bought = 100 * (p["robust"][-1] - p["baseline"])
        bottom.text(0.96, 0.1, f"bought: {bought:+.1f} points", transform=bottom.transAxes, fontsize=8, ha="right")
        bottom.set(ylim=(-0.02, 1.02), xlabel=r"training $\varepsilon$")
        bottom.set_xticks(p["eps"], p["ticks"], fontsize=8)
        for ax in (top, bottom):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
    axes[0, 0].set_ylabel("standard accuracy")
    axes[1, 0].set_ylabel(r"robust accuracy at $\varepsilon_{train}$")
    axes[1, 0].legend(fontsize=7, loc="center left")
    fig.tight_layout()
    return fig


def interpolations(paths: dict[str, torch.Tensor], shown: int = 8, size: float = 1.0) -> plt.Figure:
    """Return one row per interpolation path (``paths[label] = [P, C, H, W]`` images in [0, 1], from
    :func:`robustutils.perception.interpolation_rows`): ``shown`` of its P points, evenly spaced with
    both ends, each column titled with its weight α on the end point (0: the image, 1: its large-ε
    example). A label ``"model: a → b"`` is written left of its row, on two lines."""
    points = max(len(p) for p in paths.values())
    if shown < 2:
        raise ValueError(f"shown must be at least 2 (the two ends of the path); got {shown}")
    picks = np.unique(np.linspace(0, points - 1, min(shown, points)).round().astype(int))
    fig, axes = plt.subplots(
        len(paths), len(picks), figsize=(size * len(picks) + 1.4, size * len(paths) + 0.3), squeeze=False
    )
    for r, (name, path) in enumerate(paths.items()):
        for c, k in enumerate(picks):
            _image(axes[r, c], path[k], f"α = {k / (len(path) - 1):.2f}" if r == 0 else "")
        model, _, classes = name.partition(": ")
        axes[r, 0].set_ylabel(
            f"{model}\n{classes}" if classes else model, fontsize=9, rotation=0, ha="right", va="center", labelpad=6
        )
    fig.tight_layout(pad=0.3)
    return fig


def expected_accuracy(
    points: dict[str, tuple[float, float]], envelope: list[tuple[float, float, float, float, str]]
) -> plt.Figure:
    """Return the expected accuracy ``(1 - q) standard + q robust`` of each model against the
    fraction ``q`` of attacked inputs, one line per model (``points[name] = (standard, robust)``,
    fractions in [0, 1]; TRADES models dashed), with the upper envelope drawn thick and each switch
    point marked: on a 0–100% scale (left) and close to the envelope (right), where each switch is
    labelled with the model that takes over. ``envelope`` holds the pieces in order of q as
    ``(q_from, q_to, standard, robust, label)`` (as from :func:`robustutils.tradeoff.best_under_attack`)."""
    from matplotlib.ticker import PercentFormatter

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ends = [[(1 - q) * standard + q * robust for q in (q_from, q_to)] for q_from, q_to, standard, robust, _ in envelope]
    for ax in axes:
        for name, (standard, robust) in points.items():
            ax.plot([0, 1], [standard, robust], "--" if name.startswith("trades") else "-", lw=1.2, label=name)
        for k, ((q_from, q_to, *_), y) in enumerate(zip(envelope, ends)):
            label = "the best model (upper envelope)" if k == 0 else None
            ax.plot([q_from, q_to], y, "k-", lw=5, alpha=0.3, solid_capstyle="butt", label=label)
        switches = [(q_from, y[0]) for (q_from, *_), y in zip(envelope[1:], ends[1:])]
        ax.plot([q for q, _ in switches], [y for _, y in switches], "ko", ms=5)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set(xlabel="q, the fraction of inputs that are attacked", xlim=(0, 1))
        ax.grid(alpha=0.3)
    full, zoom = axes
    full.set(ylabel="expected accuracy", ylim=(-0.02, 1.02), title="all models")
    full.legend(fontsize=7, loc="lower left")
    low, high = min(min(y) for y in ends), max(max(y) for y in ends)
    span = max(high - low, 0.01)
    zoom.set(ylim=(low - 0.1 * span, min(high + 0.25 * span, 1.03)), title="close to the best model")
    for (q_from, *_, label), (q, y) in zip(envelope[1:], switches):
        zoom.annotate(f"q = {q_from:.3g}: {label}", (q, y), textcoords="offset points", xytext=(4, 8), fontsize=8)
    fig.tight_layout()
    return fig


def metric_ellipses(
    rows: list[dict], mu_star: torch.Tensor, sigma_star: torch.Tensor, x: torch.Tensor, y: torch.Tensor, shown
) -> plt.Figure:
    """Return Ilyas et al.'s Fig. 4 with their Theorem 3 beside it: one panel per radius of ``shown``, then the
    gradient cosines against ε.

    Each panel draws 400 training points (class +1 blue, -1 red) and, around each class mean, the unit
    ball of the learnt metric (the ellipse ``(x - y mu)^T sigma^-1 (x - y mu) = 1``): the closed form
    of Theorem 2 (black, solid), the relaxed fit (dashed) and the l_2 fit (dotted, red); the arrows from
    the origin point along ``mu_star`` (grey) and along the closed form's gradient ``sigma^-1 mu_star``
    (black), and the grey line is its decision boundary. The last panel plots ``cos(mu_star, gradient)``
    and Lemma 8's worst case over the mean against ε: closed forms as lines, fits and the numerical
    search as markers. ``rows`` is :func:`robustutils.gaussians.robust_rows` (2-D data) at
    ``(mu_star, sigma_star)``, ``shown`` a list of radii among its ``eps``, ``(x, y)`` its training
    sample (``[n, 2]``, ``[n]``).
    """
    from matplotlib.patches import Ellipse

    from robustutils import gaussians

    by_eps = {row["eps"]: row for row in rows}
    missing = [e for e in shown if float(e) not in by_eps]
    if missing or x.shape[1] != 2:
        raise ValueError(f"shown must be radii of rows (missing {missing}) and the data 2-D (got d = {x.shape[1]})")
    mu_star = torch.as_tensor(mu_star, dtype=torch.float64)
    cols = min(3, len(shown) + 1)  # three panels a row, so that each is legible at a page's width
    grid_rows = -(-(len(shown) + 2) // cols) if len(shown) + 1 > cols else 1
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4.3 * cols, 4.1 * grid_rows), squeeze=False)
    flat = list(axes.flat)
    axes, right, spare = flat[: len(shown)], flat[len(shown)], flat[len(shown) + 1 :]
    reach = [by_eps[float(e)]["closed_form"].diagonal().sqrt() + mu_star.abs() for e in shown]  # ellipses' extent
    half = [1.1 * max(max(r[k].item() for r in reach), x[:, k].abs().quantile(0.995).item()) for k in range(2)]
    half[1] = max(half[1], half[0] / 2)  # equal scales (the angles are the point), panels no flatter than 2:1
    for ax, eps in zip(axes, shown):
        row = by_eps[float(eps)]
        few = slice(0, 400)
        ax.scatter(*x[few].T, c=[STANDARD if v > 0 else ROBUST for v in y[few].tolist()], s=4, alpha=0.25, lw=0)
        for sigma, mu, style, colour in (
            (row["closed_form"], mu_star, "-", "k"),
            (row["linear"].sigma, row["linear"].mu, "--", STANDARD),
            (row["l2"].sigma, row["l2"].mu, ":", ROBUST),
        ):
            values, vectors = torch.linalg.eigh(sigma)
            angle = np.degrees(np.arctan2(vectors[1, -1].item(), vectors[0, -1].item()))
            width, height = (2 * values.flip(0).sqrt()).tolist()
            for sign in (1, -1):
                centre = (sign * mu).tolist()
                ax.add_patch(Ellipse(centre, width, height, angle=angle, fill=False, ls=style, ec=colour, lw=1.4))
        if eps > 0:  # the adversary's l2 ball, around the mean of class +1
            ball = plt.Circle(mu_star.tolist(), eps, fill=False, color="grey", ls="-.", lw=1)
            ax.add_patch(ball)
        gradient = gaussians.ml_weights(mu_star, row["closed_form"])
        length = 0.8 * min(half)
        for direction, colour in ((mu_star, "grey"), (gradient, "k")):
            tip = length * direction / direction.norm()
            ax.annotate("", tip.tolist(), (0, 0), arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.6})
        boundary = torch.tensor([-gradient[1], gradient[0]]) / gradient.norm() * 3 * max(half)
        ax.plot([-boundary[0], boundary[0]], [-boundary[1], boundary[1]], color="grey", lw=0.8)
        ax.set(xlim=(-half[0], half[0]), ylim=(-half[1], half[1]), aspect="equal", xlabel="$x_1$")
        title = "standard ML ($\\varepsilon = 0$)" if eps == 0 else f"robust ML, $\\varepsilon = {eps:g}$"
        ax.set_title(title, fontsize=10)
    for ax in axes[::cols]:
        ax.set_ylabel("$x_2$")
    handles = [
        plt.Line2D([], [], color="k", label="closed form (Theorem 2)"),
        plt.Line2D([], [], color=STANDARD, ls="--", label="relaxed fit"),
        plt.Line2D([], [], color=ROBUST, ls=":", label="$\\ell_2$ fit"),
        plt.Line2D([], [], color="grey", marker=">", label="$\\mu^*$"),
        plt.Line2D([], [], color="k", marker=">", label="gradient $\\Sigma^{-1}\\mu^*$"),
        plt.Line2D([], [], color="grey", ls="-.", label="$\\ell_2$ ball of radius $\\varepsilon$"),
    ]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles=handles, fontsize=10, loc="center", frameon=False)
    else:
        fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=len(handles), frameon=False)
    grid = np.linspace(0, max(by_eps), 100)
    closed = [gaussians.robust_covariance(sigma_star, e)[0] for e in grid]
    right.plot(grid, [gaussians.gradient_cosine(mu_star, s) for s in closed], "k-", label="$\\mu^*$, closed form")
    right.plot(grid, [gaussians.worst_gradient_cosine(s) for s in closed], "k--", label="worst case (Lemma 8)")
    eps_rows = list(by_eps)
    for key, marker, colour, label in (
        ("cosine_linear", "o", STANDARD, "$\\mu^*$, relaxed fit"),
        ("cosine_l2", "s", ROBUST, "$\\mu^*$, $\\ell_2$ fit"),
        ("worst_search", "x", "k", "worst case, search"),
    ):
        right.plot(eps_rows, [by_eps[e][key] for e in eps_rows], marker, color=colour, mfc="none", label=label)
    right.set(xlabel="$\\varepsilon$", ylabel="cos(direction, gradient)", ylim=(0, 1.02))
    right.set_title("Theorem 3: gradient alignment", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout(rect=(0, 0 if spare else 0.07, 1, 1))
    return fig
