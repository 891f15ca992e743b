"""The ops' dtype policy: float64 inputs compute in float64, everything else in float32.

Half-precision inputs are accumulated in float32 because the recurrences sum thousands of rank-one
updates; float64 is kept so that the references can be checked to 1e-12.
"""

from __future__ import annotations

import torch


def acc(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the accumulation dtype: float64 stays float64, everything else becomes float32."""
    return x if x.dtype == torch.float64 else x.float()
