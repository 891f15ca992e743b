"""Pure attention math on ``q, k, v`` laid out ``[batch, seq, heads, dim]``.

Each stateful family has a float32 ``recurrent`` reference, a ``chunk`` fast form (``mode=``) and
a one-token ``*_step`` for decoding.
"""

from .attention import KERNELS, attention, attention_probs
from .conv import short_conv, short_conv_step
from .decay import decay_attention_matrix, decay_linear_attention, decay_linear_attention_step
from .delta import delta_rule, delta_rule_step, gated_delta_rule, gated_delta_rule_step, implicit_matrix
from .featuremaps import FEATURE_MAPS, get_feature_map
from .linear import linear_attention, linear_attention_step, retention, retnet_decay, simple_gla
from .masks import MASKS, build_mask
from .mesa import mesa_net, mesa_net_step
from .norm import rms_norm
from .rope import rope
from .ttt import LayerNormLinear, LinearModel, newton_schulz, squared_loss, ttt

__all__ = [
    "KERNELS",
    "MASKS",
    "FEATURE_MAPS",
    "attention",
    "attention_probs",
    "build_mask",
    "rope",
    "rms_norm",
    "get_feature_map",
    "linear_attention",
    "linear_attention_step",
    "retention",
    "retnet_decay",
    "simple_gla",
    "decay_linear_attention",
    "decay_linear_attention_step",
    "decay_attention_matrix",
    "short_conv",
    "short_conv_step",
    "delta_rule",
    "delta_rule_step",
    "gated_delta_rule",
    "gated_delta_rule_step",
    "implicit_matrix",
    "mesa_net",
    "mesa_net_step",
    "ttt",
    "LinearModel",
    "LayerNormLinear",
    "newton_schulz",
    "squared_loss",
]
