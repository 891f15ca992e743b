"""One attention pattern as a PNG heatmap (``attnlab analyze --heads``): tokens on the axes, log colours.

A linear colour scale shows little but the first-token sink (one key taking most of every row's
weight); on a log scale the pattern among the other keys is visible. Entries a causal mask forbids
(exactly zero) are left blank rather than drawn as the smallest colour.
"""

from __future__ import annotations

from pathlib import Path

FLOOR = 1e-4  # weights below this share the lowest colour: a row of t keys spreads at least 1/t somewhere


def token_label(text: str, width: int = 10) -> str:
    """A token as an axis label: visible whitespace (``␣`` for a leading space, ``↵`` for a newline), cut to
    ``width`` characters."""
    s = text.replace("\n", "↵").replace("\t", "⇥")
    if s.startswith(" "):
        s = "␣" + s[1:]
    s = s or "∅"
    return s if len(s) <= width else s[: width - 1] + "…"


def heatmap(matrix, title: str, path: Path, tokens: list[str] | None = None) -> Path:
    """Draw ``matrix`` (a ``[t_q, t_k]`` array: queries down, keys across) to ``path`` on a log colour scale;
    ``tokens`` (the decoded tokens, one per position) label the axes, else positions do."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    a = np.asarray(matrix, dtype=float)
    shown = np.ma.masked_where(a <= 0, np.maximum(a, FLOOR))
    t = a.shape[0]
    size = 5 if tokens is None else max(5.0, 0.14 * t + 1.5)
    f, ax = plt.subplots(figsize=(size + 1, size))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(shown, cmap=cmap, norm=LogNorm(vmin=FLOOR, vmax=1.0), interpolation="nearest")
    ax.set_title(title)
    if tokens is not None:
        labels = [token_label(x) for x in tokens]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    else:
        ax.set_xlabel("key position")
        ax.set_ylabel("query position")
    f.colorbar(im, label="attention weight (log scale)")
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)
    return path
