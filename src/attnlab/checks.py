"""Input validation shared by every op and mixer boundary.

Errors name the argument and say what was expected, so that a wrong call fails here with one
readable line instead of deep inside a torch kernel.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import torch

_FINITE = os.environ.get("ATTNLAB_CHECK_FINITE", "1") not in ("0", "false", "False")


def finite_checks_enabled() -> bool:
    return _FINITE


def set_finite_checks(enabled: bool) -> None:
    """Turn the NaN/Inf input scan on or off globally (it costs one reduction per input)."""
    global _FINITE
    _FINITE = bool(enabled)


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Context manager: ``with finite_checks(False): ...`` skips the NaN/Inf scan inside."""
    global _FINITE
    old, _FINITE = _FINITE, bool(enabled)
    try:
        yield
    finally:
        _FINITE = old


def all_finite(*xs: torch.Tensor) -> bool:
    """Whether every entry of every tensor is finite, in one summing pass in the common case.

    A NaN or Inf anywhere makes the sum non-finite, so a finite sum proves the tensors are finite;
    only a non-finite sum (a bad entry, or large finite values that overflow the sum in the tensor's
    own dtype) pays for the exact elementwise scan. On four ``[1, 4096, 4, 64]`` inputs,
    ``isfinite(x).all()`` took 0.77 ms each (four passes: about 20% of a delta-rule call), the
    native-dtype sum 0.03 ms; a float64 sum would convert first (0.11 ms).
    """
    with torch.no_grad():
        total = sum(float(x.detach().sum()) for x in xs if x.numel())
        return math.isfinite(total) or all(bool(torch.isfinite(x).all()) for x in xs)


def check_tensor(name: str, x: object, ndim: int | None = None, layout: str = "") -> torch.Tensor:
    """Check that ``x`` is a floating tensor of rank ``ndim`` with finite entries."""
    where = f" laid out {layout}" if layout else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{where}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float32, float64, bfloat16, float16), got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions{where}, got shape {tuple(x.shape)}")
    if _FINITE and x.numel() and not all_finite(x):
        raise ValueError(
            f"{name} contains NaN or Inf; fix the input, or skip this scan with attnlab.checks.set_finite_checks(False)"
        )
    return x


def check_same(names: tuple[str, str], a: int, b: int, what: str) -> None:
    if a != b:
        raise ValueError(f"{names[0]} and {names[1]} must have the same {what}, got {a} and {b}")


def check_qkv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, same_len: bool = True
) -> tuple[int, int, int, int, int]:
    """Validate per-token tensors ``[batch, seq, heads, dim]``; return ``(b, t, h, dk, dv)``.

    With ``same_len=False`` the keys may be longer than the queries (a decoding cache).
    """
    layout = "[batch, seq, heads, dim]"
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x, 4, layout)
    b, t, h, dk = q.shape
    if t == 0 or k.shape[1] == 0:
        raise ValueError(f"q and k must hold at least one token (seq ≥ 1); got seq = {t} for q and {k.shape[1]} for k")
    tk = k.shape[1] if not same_len else t
    if tuple(k.shape) != (b, tk, h, dk):
        raise ValueError(f"k must have the shape of q {tuple(q.shape)} [batch, seq, heads, dim], got {tuple(k.shape)}")
    if tuple(v.shape[:3]) != (b, tk, h):
        raise ValueError(
            f"v must match k in [batch, seq, heads] = {(b, tk, h)}, got {tuple(v.shape[:3])} (v's last dim may differ)"
        )
    if len({q.dtype, k.dtype, v.dtype}) != 1:
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    return b, t, h, dk, v.shape[-1]


def check_step_qkv(q_t: torch.Tensor, k_t: torch.Tensor, v_t: torch.Tensor) -> tuple[int, int, int, int]:
    """Validate one decoding token ``q_t, k_t [batch, heads, d_k]``, ``v_t [batch, heads, d_v]``; return
    ``(b, h, d_k, d_v)``."""
    for name, x in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
        check_tensor(name, x, 3, "[batch, heads, dim]")
    b, h, dk = q_t.shape
    if tuple(k_t.shape) != (b, h, dk) or tuple(v_t.shape[:2]) != (b, h):
        raise ValueError(f"k_t must be {(b, h, dk)} and v_t [{b}, {h}, d_v]; got {tuple(k_t.shape)}, {tuple(v_t.shape)}")
    return b, h, dk, v_t.shape[-1]


def check_choice(name: str, value: object, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_state(name: str, s: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    if s is None:
        return None
    check_tensor(name, s, len(shape), "[batch, heads, d_k, d_v]")
    if tuple(s.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} [batch, heads, d_k, d_v], got {tuple(s.shape)}")
    return s
