"""Feature maps ``φ`` for linear attention: ``a_ij ∝ φ(q_i)·φ(k_j)``.

``based`` is the second-order Taylor map of ``exp`` (Arora et al. 2024, "Simple linear attention
language models balance the recall-throughput tradeoff"): ``φ(x) = [1, x, vec(x xᵀ)/√2]``, so
``φ(q)·φ(k) = 1 + q·k + (q·k)²/2 > 0``. It grows the dim from ``d`` to ``1 + d + d²``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _based(x: torch.Tensor) -> torch.Tensor:
    one = torch.ones_like(x[..., :1])
    outer = (x[..., :, None] * x[..., None, :]).flatten(-2) / 2**0.5  # [..., d*d]
    return torch.cat([one, x, outer], dim=-1)


FEATURE_MAPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "relu": torch.relu,
    "elu1": lambda x: F.elu(x) + 1.0,
    "exp": torch.exp,
    "softplus": F.softplus,
    "based": _based,
}

# maps whose values are >= 0, so that the normaliser φ(q)·Σφ(k) cannot change sign
NON_NEGATIVE = frozenset({"relu", "elu1", "exp", "softplus", "based"})


def get_feature_map(name: object) -> Callable[[torch.Tensor], torch.Tensor]:
    """The feature map called ``name`` (one of ``FEATURE_MAPS``)."""
    if not isinstance(name, str) or name not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {', '.join(map(repr, FEATURE_MAPS))}; got {name!r}")
    return FEATURE_MAPS[name]
