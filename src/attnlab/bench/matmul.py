"""The float32 matmul rate at the shapes of the ledger's layers, as a fraction of the 1024 × 1024 rate.

``cost.md`` and the training table give each run's speed as a share of one core's rate on a 1024 × 1024
product. The ledger's products are thin: 2048 tokens a step against widths of 64–128. If BLAS ran those
far below the 1024 rate, that share would be capped by the shapes themselves; where it runs them near it,
the rest of a step's time is elsewhere (attention, the delta rule's kernel, elementwise passes, Python).
Each shape is timed in the same interleaved rounds as the 1024 product, so its fraction is a paired ratio
with a 95% interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import torch

from .paired import interleaved, paired_ratio

TOKENS = 2048  # a training step of the ledger's text and S5 runs: 16 × 128 or 32 × 64 tokens
REFERENCE = 1024


def body_shapes(d: int, tokens: int = TOKENS) -> list[tuple[str, int, int, int]]:
    """``(what, m, k, n)`` of the products ``[m, k] @ [k, n]`` in the layers of an LM of width ``d``."""
    return [
        (f"d {d}: projection", tokens, d, d),
        (f"d {d}: q, k, v together", tokens, d, 3 * d),
        (f"d {d}: SwiGLU up (×4, both halves)", tokens, d, 8 * d),
        (f"d {d}: MLP down", tokens, 4 * d, d),
        (f"d {d}: a projection's weight gradient", d, tokens, d),
    ]


def head_shapes(d: int, vocab: int, tokens: int = TOKENS) -> list[tuple[str, int, int, int]]:
    """The head's products: its logits and their gradient's way back into the body."""
    return [
        (f"d {d}, vocabulary {vocab}: head", tokens, d, vocab),
        (f"d {d}, vocabulary {vocab}: head's input gradient", tokens, vocab, d),
    ]


def shapes(d: int, vocab: int, tokens: int = TOKENS) -> list[tuple[str, int, int, int]]:
    """Every product of a step of an LM of width ``d`` and vocabulary ``vocab``."""
    return body_shapes(d, tokens) + head_shapes(d, vocab, tokens)


def _call(m: int, k: int, n: int) -> Callable[[], object]:
    g = torch.Generator().manual_seed(m * 31 + k * 7 + n)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    return lambda: a @ b


def run_bench(d_models=(64, 128), vocabs=(256, 1024), reps: int = 20) -> dict:
    """Each shape's rate (``gflops``, the median round) and ``fraction`` of the 1024 product's rate in the same
    rounds, ``[median, low, high]`` with a 95% interval."""
    for d in d_models:
        if d < 1:
            raise ValueError(f"--d-model values must be positive, got {d}")
    for v in vocabs:
        if v < 1:
            raise ValueError(f"--vocab values must be positive, got {v}")
    cases = {what: (m, k, n) for d in d_models
             for what, m, k, n in body_shapes(d) + [s for v in vocabs for s in head_shapes(d, v)]}
    calls = {"reference": _call(REFERENCE, REFERENCE, REFERENCE), **{w: _call(*s) for w, s in cases.items()}}
    ts = interleaved(calls, reps, warmup=3)
    ref_flops = 2.0 * REFERENCE**3
    rows = []
    for what, (m, k, n) in cases.items():
        fl = 2.0 * m * k * n
        fraction = paired_ratio([t * fl / ref_flops for t in ts["reference"]], ts[what])
        rows.append({"shape": what, "m": m, "k": k, "n": n, "gflops": fl / statistics.median(ts[what]) / 1e9,
                     "fraction": [x if math.isfinite(x) else None for x in fraction]})
    return {"reference_gflops": ref_flops / statistics.median(ts["reference"]) / 1e9,
            "setting": {"threads": torch.get_num_threads(), "reps": reps, "dtype": "float32",
                        "timing": "interleaved rounds"}, "rows": rows}


def markdown(result: dict) -> str:
    s = result["setting"]
    lines = [f"Setting: float32, {s['threads']} thread(s), every product timed in the same {s['reps']} interleaved "
             f"rounds as a 1024 × 1024 one (**{result['reference_gflops']:.1f} GFLOP/s**, its median round). "
             "`of the 1024 rate`: the shape's rate over the 1024 product's, round by round, the median with its "
             "95% interval.", "", "| product | [m, k] @ [k, n] | GFLOP/s | of the 1024 rate |", "|---|---|---|---|"]
    for r in result["rows"]:
        med, lo, hi = r["fraction"]
        frac = f"{med:.0%} [{lo:.0%}, {hi:.0%}]" if lo is not None and hi is not None else \
            f"{med:.0%} (too few rounds for an interval)"
        lines.append(f"| {r['shape']} | [{r['m']}, {r['k']}] @ [{r['k']}, {r['n']}] | {r['gflops']:.1f} | {frac} |")
    return "\n".join(lines)
