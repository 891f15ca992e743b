"""A sequence of no tokens: every mixer returns an empty output (and leaves a decoding cache as it was); every op
says in one line that it needs a token."""

import pytest
import torch

from attnlab import ops
from attnlab.mixers import MIXERS, build_mixer
from attnlab.models import LM, LMConfig
from attnlab.ops.conv import short_conv
from attnlab.ops.ttt import ttt


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_every_mixer_maps_no_tokens_to_no_tokens(name):
    m = build_mixer(name, 8, 2, short_conv="k")
    assert m(torch.zeros(2, 0, 8)).shape == (2, 0, 8)
    if m.causal:
        cache = {}
        m(torch.randn(2, 3, 8), cache=cache)
        before = {k: v.clone() if torch.is_tensor(v) else v for k, v in cache.items() if k != "features"}
        m(torch.zeros(2, 0, 8), cache=cache)
        after = {k: v for k, v in cache.items() if k != "features"}
        assert before.keys() == after.keys()


def test_a_model_maps_no_tokens_to_no_logits():
    assert LM(LMConfig(vocab_size=10, mixer="deltanet"))(torch.zeros(1, 0, dtype=torch.long)).shape == (1, 0, 10)


z = torch.zeros(1, 0, 2, 4)
e = torch.zeros(1, 0, 2)
OPS = [("attention", lambda: ops.attention(z, z, z)), ("linear_attention", lambda: ops.linear_attention(z, z, z)),
       ("delta_rule", lambda: ops.delta_rule(z, z, z, e)),
       ("delta_rule recurrent", lambda: ops.delta_rule(z, z, z, e, mode="recurrent")),
       ("gated_delta_rule", lambda: ops.gated_delta_rule(z, z, z, e, e)),
       ("mesa_net", lambda: ops.mesa_net(z, z, z, None, e, torch.ones(2, 4))), ("ttt", lambda: ttt(z, z, z, e)),
       ("short_conv", lambda: short_conv(torch.zeros(2, 0, 4), torch.randn(4, 3)))]


@pytest.mark.parametrize(("name", "call"), OPS, ids=[o[0] for o in OPS])
def test_every_op_refuses_no_tokens_in_one_line(name, call):
    with pytest.raises(ValueError, match=r"at least one token \(seq ≥ 1\)") as err:
        call()
    assert "\n" not in str(err.value)
