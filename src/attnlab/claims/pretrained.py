"""The two real pretrained models and their attention statistics on Shakespeare, loaded once per process."""

from __future__ import annotations

import functools

TOKENS = 256
WINDOW = 128


@functools.cache
def model(name: str):
    """The built-in ``"minilm"`` or ``"smollm2"`` (:func:`~attnlab.models.hf.load_hf`); loading SmolLM2 takes
    tens of seconds, so the claims that read it share one copy."""
    from ..models.hf import load_hf

    return load_hf(name)


@functools.cache
def shakespeare() -> str:
    from ..tasks.text import load_bytes

    return bytes(load_bytes("shakespeare", 8 * TOKENS).tolist()).decode("utf-8", errors="replace")


@functools.cache
def real_stats(name: str) -> dict:
    """:func:`~attnlab.diagnostics.attention_stats.analyze_model` of ``"minilm"`` or ``"smollm2"`` on the first
    Shakespeare text."""
    from ..diagnostics.attention_stats import analyze_model

    return analyze_model(model(name), shakespeare(), window=WINDOW, max_tokens=TOKENS)
