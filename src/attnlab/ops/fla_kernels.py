"""flash-linear-attention's Triton chunk kernels for the delta rules (GPU only): loading them, and why not.

On a CUDA device with ``flash-linear-attention`` and ``triton`` installed, the ``fla`` engine of
:mod:`attnlab.ops.delta_engines` hands the chunk form to fla's fused kernels (``chunk_delta_rule``,
``chunk_gated_delta_rule``), which share attnlab's ``[b, t, h, d]`` layout, ``scale`` default and
state layout ``[b, h, d_k, d_v]``. Their float32 matmuls may use TF32 on the matrix units: expect
agreement with the PyTorch chunk form to ~1e-3, not 1e-6.

Two limits of fla 0.6.0 are handled here rather than met as deep asserts: its plain delta-rule
kernel refuses float32 (we run float32 through the gated kernel with ``g = 0``, the same
recurrence), and on Hopper GPUs with Triton ≥ 3.4, < 3.7.1 it refuses the gated backward pass
(fla issue #640), so gradients there need ``backend="pytorch"`` (``auto`` falls back by itself).
"""

from __future__ import annotations

import functools
import importlib.util
import re

import torch


@functools.cache
def _fla_kernels():
    """``(chunk_delta_rule, chunk_gated_delta_rule)`` or the reason they cannot be imported."""
    try:
        import triton  # noqa: F401
        from fla.ops.delta_rule import chunk_delta_rule
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except Exception as e:  # ImportError, or triton failing to find a driver
        return f"flash-linear-attention's Triton kernels cannot be imported ({type(e).__name__}: {e})"
    return chunk_delta_rule, chunk_gated_delta_rule


def _hopper_backward_bug() -> str | None:
    """fla refuses the gated backward on Hopper with Triton in [3.4, 3.7.1) unless tilelang is installed."""
    import triton

    ver = tuple(int(n) for n in re.findall(r"\d+", triton.__version__)[:3])
    if torch.cuda.get_device_capability()[0] == 9 and (3, 4) <= ver < (3, 7, 1) \
            and importlib.util.find_spec("tilelang") is None:
        return (f"backend='fla': fla's gated backward kernel is wrong on Hopper GPUs with Triton {triton.__version__} "
                "(fla issue #640); upgrade Triton to >= 3.7.1, install tilelang, or use backend='pytorch' for gradients")
    return None


def fla_unavailable_reason(x: torch.Tensor, mode: str, needs_grad: bool = False, chunk_size: int = 64) -> str | None:
    """Why ``backend="fla"`` cannot run on ``x`` with this ``mode`` (None when it can)."""
    if mode != "chunk":
        return f"backend='fla' runs the chunk form only, got mode={mode!r}"
    if chunk_size != 64:
        return f"backend='fla': fla's Triton kernels use chunks of 64, got chunk_size={chunk_size}"
    if x.dtype == torch.float64:
        return "backend='fla' has no float64 kernels; use backend='pytorch' for float64"
    if x.device.type != "cuda":
        return f"backend='fla' needs CUDA tensors (fla's Triton kernels), got device {x.device}"
    k = _fla_kernels()
    if isinstance(k, str):
        return k
    return _hopper_backward_bug() if needs_grad else None


def fla_chunk(q, k, v, g, beta, *, scale, initial_state):
    """Run fla's chunk kernel (after :func:`fla_unavailable_reason` said it can); returns ``(o, final_state)``."""
    chunk_delta_rule, chunk_gated_delta_rule = _fla_kernels()
    dt = q.dtype
    beta = beta.to(dt)
    init = None if initial_state is None else initial_state.float()
    if g is None and dt == torch.float32:  # fla's plain kernel refuses float32; g = 0 is the same recurrence
        g = torch.zeros_like(beta, dtype=torch.float32)
    if g is None:
        o, S = chunk_delta_rule(q, k, v.to(dt), beta, scale=scale, initial_state=init, output_final_state=True)
    else:
        o, S = chunk_gated_delta_rule(q, k, v.to(dt), g.float(), beta, scale=scale, initial_state=init,
                                      output_final_state=True)
    return o, S
