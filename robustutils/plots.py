"""Figures for the chapters. Each function draws one figure and returns it; nothing calls ``plt.show``.

Toy model (chapter 1): closed forms are drawn as lines, Monte Carlo estimates as markers.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

from robustutils import toy

STANDARD, ROBUST = "tab:blue", "tab:red"


def _avg_panel(ax: plt.Axes, grid: np.ndarray, exact: tuple[np.ndarray, np.ndarray],
               mc: dict[float, tuple[float, float]], xlabel: str) -> None:
    """Draw ``f_avg``'s standard and robust accuracy: closed form over ``grid``, Monte Carlo from ``mc``."""
    for k, (label, colour) in enumerate([("standard", STANDARD), (r"robust, $\varepsilon = 2\eta$", ROBUST)]):
        ax.plot(grid, exact[k], color=colour, label=f"{label} (closed form)")
        ax.plot(list(mc), [v[k] for v in mc.values()], "o", color=colour, mfc="none", label=f"{label} (Monte Carlo)")
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    ax.axhline(0.01, color="grey", lw=0.8, ls=":")
    ax.set(xlabel=xlabel, ylabel="accuracy of $f_{avg}$", ylim=(-0.02, 1.02))


def avg_sweeps(by_d: dict[int, tuple[float, float]], eta: float,
               by_eta: dict[float, tuple[float, float]], d: int) -> plt.Figure:
    """Return a two-panel figure of ``f_avg``'s accuracy: against ``d`` at fixed ``eta``, against ``eta`` at fixed ``d``.

    ``by_d`` and ``by_eta`` map a grid value to Monte Carlo ``(standard, robust)`` accuracy.
    A dashed line marks ``eta sqrt(d) = 3``, beyond which the standard accuracy exceeds 99%.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    ds = np.unique(np.geomspace(min(by_d), max(by_d), 200).round().astype(int))  # d is a count
    _avg_panel(left, ds, ([toy.avg_accuracy(int(v), eta) for v in ds], [toy.avg_robust_accuracy(int(v), eta) for v in ds]),
               by_d, f"number of weak features $d$ ($\\eta = {eta:g}$)")
    left.set_xscale("log")
    left.axvline((3 / eta) ** 2, color="k", lw=0.8, ls="--")
    etas = np.linspace(min(by_eta), max(by_eta), 200)
    _avg_panel(right, etas, ([toy.avg_accuracy(d, v) for v in etas], [toy.avg_robust_accuracy(d, v) for v in etas]),
               by_eta, f"weak-feature mean $\\eta$ ($d = {d}$)")
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
    ax.set(xlabel="standard accuracy", ylabel=r"robust accuracy, $\varepsilon = 2\eta$",
           xlim=(0.93, 1.0), ylim=(-0.02, 1.02))
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
        ax.set(title=f"{name}: {abs(share[0]):.1%} of $\\|w\\|_1$ on $x_1$", xlabel="coordinate",
               ylabel=r"$w_i / \|w\|_1$")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig
