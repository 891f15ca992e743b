"""A mixer that keeps no cache of its own decodes token by token exactly like its full forward (the base class
feeds ``mix`` every token's features so far); one that claims to keep its own cache is trusted with it."""

import torch

from attnlab.mixers import Mixer
from attnlab.ops import attention


class Plain(Mixer):
    """Softmax attention with no cache handling at all."""

    def mix(self, f, cache, prefix_len=None):
        assert cache is None, "the default path never hands mix a cache"
        return attention(f["q"], f["k"], f["v"])

    def matrix(self, f, prefix_len=None):
        raise NotImplementedError


def test_the_default_cache_decodes_exactly_with_short_convs_and_chunks_of_any_size():
    torch.manual_seed(0)
    m = Plain(16, 2, short_conv="qkv").eval()
    x = torch.randn(2, 11, 16)
    full = m(x)
    for sizes in ([1] * 11, [3, 1, 4, 3], [11]):
        cache, outs, i = {}, [], 0
        for s in sizes:
            outs.append(m(x[:, i : i + s], cache=cache))
            i += s
        assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5), sizes
        assert cache["features"]["k"].shape[1] == 11


def test_a_mixer_that_keeps_its_own_cache_receives_it():
    seen = []

    class Own(Plain):
        keeps_cache = True

        def mix(self, f, cache, prefix_len=None):
            seen.append(cache)
            return f["v"]

    m = Own(8, 1)
    cache = {}
    m(torch.randn(1, 3, 8), cache=cache)
    assert seen == [cache] and "features" not in cache
