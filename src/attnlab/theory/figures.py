"""The posts' figures, redrawn from attnlab's own computations (``attnlab theory figures``).

Each function computes its data and writes one PNG; each can be rerun alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .entropy import entropy_floor_exact, entropy_gap
from .noise import loglog_slope, predicted_error, simulate_error
from .sparsity import (
    decay_sparsity,
    decay_sparsity_exact,
    sparsity_formula,
    sparsity_monte_carlo,
    sparsity_quadrature,
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sparsity_plot(out: Path, kernel: str, betas, title: str, mc_samples: int) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    gammas = np.linspace(0.05, 4.0, 120)
    pts = np.linspace(0.25, 4.0, 8)
    for i, b in enumerate(betas):
        color = f"C{i}"
        ax.plot(gammas, [sparsity_formula(kernel, b, g) for g in gammas], color=color, label=f"β = {b:g}")
        ax.plot(pts, [sparsity_quadrature(kernel, b, g) for g in pts], "o", mfc="none", color=color, ms=7)
        mc = [sparsity_monte_carlo(kernel, b, g, samples=mc_samples, seed=i) for g in pts]
        ax.errorbar(pts, [m.value for m in mc], yerr=[min(m.stderr, 1) for m in mc], fmt="x", color=color, ms=5)
    ax.plot([], [], "ko", mfc="none", label="quadrature")
    ax.plot([], [], "kx", label="Monte Carlo")
    ax.set(xlabel="γ = σ‖q‖", ylabel="S(a) = E|a| / √E[a²]", title=title, ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def fig_relu2_sparsity(out_dir: Path, mc_samples: int = 40_000) -> Path:
    """relu² attention sparsity against γ for several β (post 9889, figure 1): only β < 0 → 0."""
    return _sparsity_plot(
        Path(out_dir) / "sparsity_relu2.png",
        "relu2",
        [-2, -1, 0, 1, 2],
        "relu² attention: S → 0 only for β < 0 (C3)",
        mc_samples,
    )


def fig_identity_sparsity(out_dir: Path, mc_samples: int = 40_000) -> Path:
    """identity (plain linear) attention sparsity against γ for β ≥ 0 (post 9889, figure 2)."""
    return _sparsity_plot(
        Path(out_dir) / "sparsity_identity.png",
        "identity",
        [0, 0.5, 1, 2, 4],
        "linear attention: S bounded away from 0 (C4)",
        mc_samples,
    )


def fig_entropy_floor(out_dir: Path) -> Path:
    """The entropy floor ``H_min`` against τ for several n, with the n → ∞ approximation."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    taus = np.geomspace(0.02, 10, 120)
    for i, n in enumerate([16, 256, 4096, 65536]):
        ax.plot(taus, [entropy_floor_exact(t, n)[0] / math.log(n) for t in taus], color=f"C{i}", label=f"n = {n}")
        ax.plot(taus, [max(math.log(n) - entropy_gap(t), 0) / math.log(n) for t in taus], "--", color=f"C{i}", lw=0.8)
    ax.set(
        xscale="log",
        xlabel="temperature τ",
        ylabel="H_min / log n",
        title="Softmax entropy floor (I2); dashed: log n − gap(τ), n → ∞",
    )
    ax.axvline(1.0, color="gray", lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / "entropy_floor.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fig_decay_sparsity(out_dir: Path) -> Path:
    """Sparsity of a linear RNN's decay weights against n (C6): → 0 as n → ∞ for λ < 1."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = np.unique(np.geomspace(1, 1e5, 60).astype(int))
    for i, lam in enumerate([0.5, 0.9, 0.99, 0.999]):
        ax.plot(ns, [decay_sparsity(lam, int(n)) for n in ns], color=f"C{i}", label=f"λ = {lam}")
        sub = ns[::8]
        ax.plot(sub, [decay_sparsity_exact(lam, int(n)) for n in sub], "o", mfc="none", color=f"C{i}")
    ax.set(xscale="log", xlabel="n", ylabel="S(a)", title="Decay sparsity: formula (lines), direct sum (circles)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out_dir) / "decay_sparsity.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fig_noise_error(out_dir: Path, trials: int = 100) -> Path:
    """Error of softmax attention under i.i.d. score noise against n, log-log, with ``n^{−1/2}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [32, 128, 512, 2048, 8192]
    cases = [("gaussian", 0.5), ("uniform", 1.0), ("gumbel", 0.3), ("laplace", 0.3), ("laplace", 1.5)]
    for i, (law, scale) in enumerate(cases):
        sims = [simulate_error(n, law, scale, trials=trials, seed=i)[0] for n in ns]
        label = f"{law} {scale:g} (slope {loglog_slope(ns, sims):+.2f})"
        ax.plot(ns, sims, "o-", color=f"C{i}", label=label)
        pred = [predicted_error(n, law, scale) for n in ns]
        if all(map(math.isfinite, pred)):
            ax.plot(ns, pred, ":", color=f"C{i}")
    ref = [0.15 * (n / ns[0]) ** -0.5 for n in ns]
    ax.plot(ns, ref, "k--", lw=1, label="n^(−1/2)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="n",
        ylabel="RMS ‖õ − o‖",
        title="Softmax under score noise (R1, R3); dotted: prediction",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / "noise_error.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


FIGURES = {
    "sparsity_relu2": fig_relu2_sparsity,
    "sparsity_identity": fig_identity_sparsity,
    "entropy_floor": fig_entropy_floor,
    "decay_sparsity": fig_decay_sparsity,
    "noise_error": fig_noise_error,
}


def all_figures(out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [fn(out_dir) for fn in FIGURES.values()]
