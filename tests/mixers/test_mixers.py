"""Every registered mixer: implicit/real matrix reproduces the output, caching, causality, errors."""

import pytest
import torch

from attnlab.mixers import MIXERS, Mixer, build_mixer, register_mixer

OPTIONS = {
    "linear_attn": [{}, {"feature_map": "elu1", "normalize": True}],
    "retnet": [{}],
    "gla": [{}, {"feature_map": "relu", "normalize": True}],
    "softmax": [{}, {"rope": False}],
    "relu2_attn": [{}],
    "identity_attn": [{}],
    "deltanet": [{}, {"tie_kv": True}, {"allow_neg_eigval": True, "output_norm": False}],
    "gated_deltanet": [{}],
    "ttt": [{}, {"optimizer": "muon"}],
    "mesanet": [{}, {"tie_kv": True, "decay": False}, {"solver": "cg", "cg_steps": 3}],
}
CASES = [(n, o, sc) for n in sorted(MIXERS) for o in OPTIONS.get(n, [{}]) for sc in ("", "k", "qkv")]


def _id(case):
    n, o, sc = case
    return f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items()) or 'default'}-conv[{sc}]"


def _mixer(name, opts, sc, seed=0):
    torch.manual_seed(seed)
    return build_mixer(name, d_model=16, n_heads=2, short_conv=sc, **opts).eval()


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_matrix_reproduces_pre_output(case):
    m = _mixer(*case)
    x = torch.randn(2, 13, 16)
    if case[1].get("optimizer") == "muon":
        with pytest.raises(ValueError, match="not linear in v"):
            m.attention_matrix(x)
        return
    A = m.attention_matrix(x)
    assert A.shape == (2, 2, 13, 13)
    o = torch.einsum("bhts,bshd->bthd", A, m.values(x))
    assert torch.allclose(o, m.pre_output(x), atol=1e-5)
    assert torch.allclose(m.output(o, x), m(x), atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_token_by_token_with_cache_equals_full(case):
    m = _mixer(*case)
    x = torch.randn(2, 11, 16)
    full = m(x)
    cache = {}
    steps = torch.cat([m(x[:, i : i + 1], cache=cache) for i in range(11)], 1)
    # Newton–Schulz multiplies small singular values by up to ~3.4⁵: float32 noise grows to ~1e-4
    tol = 1e-3 if case[1].get("optimizer") == "muon" else 1e-5
    assert torch.allclose(steps, full, atol=tol)
    cache = {}
    pieces = torch.cat([m(x[:, :6], cache=cache), m(x[:, 6:], cache=cache)], 1)
    assert torch.allclose(pieces, full, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_causal_mixers_ignore_the_future(case):
    m = _mixer(*case)
    x = torch.randn(1, 12, 16)
    x2 = x.clone()
    x2[:, 8:] = torch.randn(1, 4, 16) * 4
    assert torch.allclose(m(x)[:, :8], m(x2)[:, :8], atol=1e-6)
    if case[1].get("optimizer") != "muon":
        A = m.attention_matrix(x)
        assert bool((A.triu(1) == 0).all())


def test_prefix_and_fwd_bwd_masks_in_softmax_mixer():
    torch.manual_seed(0)
    m = build_mixer("softmax", d_model=16, n_heads=2, mask="prefix")
    x = torch.randn(1, 8, 16)
    A = m.attention_matrix(x, prefix_len=4)
    assert bool((A[..., :4, :4] > 0).all()) and bool((A[..., 4:, :].triu(5) == 0).all())
    assert torch.allclose(torch.einsum("bhts,bshd->bthd", A, m.values(x)), m.pre_output(x, prefix_len=4), atol=1e-6)
    with pytest.raises(ValueError, match="a decoding cache needs mask='causal'"):
        m(x, cache={}, prefix_len=4)
    mf = build_mixer("softmax", d_model=16, n_heads=2, mask="fwd_bwd")
    A = mf.attention_matrix(x)
    assert bool((A[:, 0].triu(1) == 0).all()) and bool((A[:, 1].tril(-1) == 0).all())


def test_registry_and_errors():
    with pytest.raises(ValueError, match="unknown mixer 'mamba'; valid names: .*softmax"):
        build_mixer("mamba", d_model=8, n_heads=2)
    with pytest.raises(ValueError, match="short_conv must be a subset of 'qkv'"):
        build_mixer("softmax", d_model=8, n_heads=2, short_conv="kx")
    with pytest.raises(ValueError, match=r"d_model \(10\) must be divisible by n_heads \(3\)"):
        build_mixer("softmax", d_model=10, n_heads=3)
    with pytest.raises(TypeError, match="mixer 'softmax' has no option 'feature_map'"):
        build_mixer("softmax", d_model=8, n_heads=2, feature_map="relu")
    with pytest.raises(ValueError, match="kernel must be one of"):
        build_mixer("softmax", d_model=8, n_heads=2, kernel="tanh")
    with pytest.raises(ValueError, match="normalize=True needs a non-negative feature_map"):
        build_mixer("linear_attn", d_model=8, n_heads=2, normalize=True)
    m = build_mixer("linear_attn", d_model=8, n_heads=2)
    with pytest.raises(ValueError, match=r"x's last dim must be d_model=8"):
        m(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match="x must have 3 dimensions"):
        m(torch.randn(3, 8))
    with pytest.raises(ValueError, match="prefix_len: the 'linear_attn' mixer is causal"):
        m(torch.randn(1, 3, 8), prefix_len=2)
    with pytest.raises(ValueError, match="conv_size must be a positive integer"):
        build_mixer("softmax", d_model=8, n_heads=2, short_conv="k", conv_size=0)


def test_user_mixer_registers():
    @register_mixer("test_mean")
    class Mean(Mixer):
        def mix(self, f, cache, **kw):
            return torch.einsum("bhts,bshd->bthd", self.matrix(f), f["v"])

        def matrix(self, f, **kw):
            t = f["v"].shape[1]
            A = torch.ones(t, t).tril()
            A = A / A.sum(-1, keepdim=True)
            return A.expand(f["v"].shape[0], self.n_heads, t, t)

    try:
        m = build_mixer("test_mean", d_model=8, n_heads=2)
        x = torch.randn(1, 4, 8)
        assert torch.allclose(m.pre_output(x)[:, 1], m.values(x)[:, :2].mean(1), atol=1e-6)
    finally:
        MIXERS.pop("test_mean")


def test_cli_lists_every_mixer_with_its_options():
    from typer.testing import CliRunner

    from attnlab.cli import app

    r = CliRunner().invoke(app, ["mixers"])
    assert r.exit_code == 0, r.output
    for name in MIXERS:
        assert name in r.output
    assert "tie_kv=False" in r.output and "feature_map='identity'" in r.output


def test_mesanet_cg_with_head_dim_steps_matches_the_exact_solve():
    x = torch.randn(2, 13, 16)
    exact = _mixer("mesanet", {}, "k")
    cg = _mixer("mesanet", {"solver": "cg", "cg_steps": 8}, "k")  # head_dim = 8
    assert torch.allclose(exact(x), cg(x), atol=1e-4)
    assert not torch.allclose(exact(x), _mixer("mesanet", {"solver": "cg", "cg_steps": 1}, "k")(x), atol=1e-3)
    with pytest.raises(ValueError, match="solver must be one of"):
        _mixer("mesanet", {"solver": "jacobi"}, "")
