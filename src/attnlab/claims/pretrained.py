"""Attention statistics of the two real pretrained models on Shakespeare, computed once per process."""

from __future__ import annotations

import functools

TOKENS = 256
WINDOW = 128


@functools.cache
def real_stats(name: str) -> dict:
    """:func:`~attnlab.diagnostics.attention_stats.analyze_model` of ``"minilm"`` or ``"smollm2"`` on the first
    Shakespeare text."""
    from ..diagnostics.attention_stats import analyze_model
    from ..models.hf import load_hf
    from ..tasks.text import load_bytes

    text = bytes(load_bytes("shakespeare", 8 * TOKENS).tolist()).decode("utf-8", errors="replace")
    return analyze_model(load_hf(name), text, window=WINDOW, max_tokens=TOKENS)
