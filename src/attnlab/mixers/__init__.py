"""Token mixers (``nn.Module``): ``forward(x [b, t, c]) -> y [b, t, c]`` and ``attention_matrix(x)``.

Build them by name: ``build_mixer("softmax", d_model=64, n_heads=4, short_conv="k")``.
"""

from . import attention, delta, linear  # noqa: F401  (registers the mixers)
from .base import MIXERS, Mixer, ShortConv, build_mixer, register_mixer

__all__ = ["MIXERS", "Mixer", "ShortConv", "build_mixer", "register_mixer"]
