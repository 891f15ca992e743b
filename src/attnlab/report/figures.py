"""Draw a claim's figure data (``claims.registry.Figure`` as a dict) into an embedded PNG."""

from __future__ import annotations

import base64
import io
import math


def _finite(xs, ys, es=None):
    keep = [i for i, (x, y) in enumerate(zip(xs, ys))
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y)]
    pick = lambda a: [a[i] for i in keep] if a is not None else None  # noqa: E731
    return pick(xs), pick(ys), pick(es)


def figure_png(fig: dict, dpi: int = 90) -> bytes:
    """Render one figure dict to PNG bytes (Agg backend; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f, ax = plt.subplots(figsize=(6, 3.8))
    try:
        for i, s in enumerate(fig.get("series", [])):
            x, y, e = _finite(s["x"], s["y"], s.get("yerr"))
            style = s.get("style") or "-"
            marker = "o" if style in ("o", "-o") else None
            ls = "none" if style == "o" else style.rstrip("o") or "-"
            color = s.get("color") or f"C{i % 10}"
            if e or s.get("xerr"):
                ax.errorbar(x, y, yerr=e or None, xerr=s.get("xerr"), color=color, ls=ls, marker=marker or ".",
                            label=s.get("label"), capsize=2)
            else:
                ax.plot(x, y, color=color, ls=ls, marker=marker, label=s.get("label"))
        if fig.get("xticks"):
            ax.set_xticks(range(len(fig["xticks"])), fig["xticks"])
        if fig.get("yticks"):
            ax.set_yticks(range(len(fig["yticks"])), fig["yticks"], fontsize=7)
        if fig.get("logx"):
            ax.set_xscale("log")
        if fig.get("logy"):
            ax.set_yscale("log")
        ax.set_title(fig.get("title", ""), fontsize=10)
        ax.set_xlabel(fig.get("xlabel", ""))
        ax.set_ylabel(fig.get("ylabel", ""))
        ax.grid(alpha=0.3)
        if any(s.get("label") for s in fig.get("series", [])):
            ax.legend(fontsize=7)
        f.tight_layout()
        buf = io.BytesIO()
        f.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        plt.close(f)


def figure_data_uri(fig: dict) -> str:
    return "data:image/png;base64," + base64.b64encode(figure_png(fig)).decode("ascii")
