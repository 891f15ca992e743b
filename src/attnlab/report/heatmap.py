"""One attention pattern as a PNG heatmap (``attnlab analyze --heads``)."""

from __future__ import annotations

from pathlib import Path


def heatmap(matrix, title: str, path: Path) -> Path:
    """Draw ``matrix`` (a ``[t_q, t_k]`` array: queries down, keys across) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_title(title)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    f.colorbar(im)
    f.tight_layout()
    f.savefig(path, dpi=100)
    plt.close(f)
    return path
