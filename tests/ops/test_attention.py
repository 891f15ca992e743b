import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.ops import attention, attention_probs, build_mask
from tests.helpers import assert_close


def _qkv(b=2, t=9, h=4, d=8, dv=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    dv = dv or d
    q, k = (torch.randn(b, t, h, d, generator=g).to(dtype) for _ in range(2))
    return q, k, torch.randn(b, t, h, dv, generator=g).to(dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
def test_softmax_matches_sdpa_with_grads(mask, dtype, tol):
    q, k, v = _qkv(dtype=dtype, dv=6)
    leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
    o = attention(*leaves, mask=mask)
    (o.float() * torch.linspace(-1, 1, 6)).sum().backward()
    ours = [o.detach()] + [x.grad for x in leaves]
    ref_leaves = [x.clone().requires_grad_(True) for x in (q, k, v)]
    qt, kt, vt = (x.transpose(1, 2) for x in ref_leaves)  # SDPA wants [b, h, t, d]
    o_ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=mask == "causal").transpose(1, 2)
    (o_ref.float() * torch.linspace(-1, 1, 6)).sum().backward()
    refs = [o_ref.detach()] + [x.grad for x in ref_leaves]
    for name, r, a in zip(["o", "dq", "dk", "dv"], refs, ours):
        assert a.dtype == dtype
        assert_close(name, r.float(), a.float(), ratio=tol, atol=0)


@pytest.mark.parametrize("kernel", ["relu2", "identity"])
@pytest.mark.parametrize("normalize", [True, False])
def test_kernel_attention_against_loop(kernel, normalize):
    q, k, v = _qkv(b=1, t=6, h=2, d=4)
    o, p = attention(q, k, v, kernel=kernel, normalize=normalize, return_probs=True)
    ref = torch.zeros_like(v)
    for h in range(2):
        for i in range(6):
            s = torch.tensor([float(q[0, i, h] @ k[0, j, h]) / 2.0 for j in range(i + 1)])
            a = torch.relu(s) ** 2 if kernel == "relu2" else s
            if normalize:
                a = a / max(float(a.abs().sum()), 1e-12)
            ref[0, i, h] = sum(a[j] * v[0, j, h] for j in range(i + 1))
    assert_close("o", ref, o, ratio=1e-6)
    assert p.shape == (1, 2, 6, 6) and bool((p.triu(1) == 0).all())


def test_identity_kernel_guarded_when_row_sums_vanish():
    # keys orthogonal to the queries: every score is exactly zero, the row sum is 0
    q = torch.zeros(1, 3, 1, 2)
    q[..., 0] = 1.0
    k = torch.zeros(1, 3, 1, 2)
    k[..., 1] = 1.0
    v = torch.randn(1, 3, 1, 2)
    for kernel in ("identity", "relu2"):
        o = attention(q, k, v, kernel=kernel)
        assert torch.isfinite(o).all() and bool((o == 0).all())
    # mixed signs: the l1 normalisation keeps the row finite and of unit l1 norm
    k2 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.5, 0.0]]).reshape(1, 3, 1, 2)
    p = attention(q, k2, v, kernel="identity", mask="bidirectional", return_probs=True)[1]
    assert torch.allclose(p.abs().sum(-1), torch.ones(1, 1, 3))


def test_equal_keys_give_uniform_rows():
    q, _, v = _qkv(b=1, t=5, h=1, d=4)
    k = torch.ones(1, 5, 1, 4)
    p = attention(q, k, v, mask="bidirectional", return_probs=True)[1]
    assert torch.allclose(p, torch.full_like(p, 0.2))
    pc = attention(q, k, v, mask="causal", return_probs=True)[1]
    assert torch.allclose(pc[0, 0].sum(-1), torch.ones(5))
    assert math.isclose(float(pc[0, 0, 3, 0]), 0.25, rel_tol=1e-6)


@pytest.mark.parametrize("kernel", ["exp", "relu2", "identity"])
def test_causal_forms_ignore_the_future(kernel):
    q, k, v = _qkv(t=12)
    o = attention(q, k, v, kernel=kernel)
    for x in (q, k, v):
        x2 = x.clone()
        x2[:, 7:] = torch.randn_like(x2[:, 7:]) * 5
        args = [x2 if y is x else y for y in (q, k, v)]
        assert torch.equal(attention(*args, kernel=kernel)[:, :7], o[:, :7])


def test_prefix_mask_is_unilm():
    m = build_mask("prefix", 6, batch=2, prefix_len=[3, 0])
    assert m.shape == (2, 1, 6, 6)
    # row 0: the first three positions see each other, the rest is causal
    assert bool(m[0, 0, :3, :3].all())
    assert not bool(m[0, 0, :3, 3:].any())
    assert torch.equal(m[0, 0, 3:], torch.ones(6, 6, dtype=torch.bool).tril()[3:])
    # prefix_len 0 is plain causal
    assert torch.equal(m[1, 0], torch.ones(6, 6, dtype=torch.bool).tril())
    # and the op uses it: changing a later prefix token changes an earlier output
    q, k, v = _qkv(b=1, t=6)
    o = attention(q, k, v, mask="prefix", prefix_len=3)
    v2 = v.clone()
    v2[:, 2] += 1.0
    o2 = attention(q, k, v2, mask="prefix", prefix_len=3)
    assert not torch.allclose(o[:, 0], o2[:, 0])
    v3 = v.clone()
    v3[:, 4] += 1.0
    assert torch.equal(attention(q, k, v3, mask="prefix", prefix_len=3)[:, :4], o[:, :4])


def test_fwd_bwd_heads_see_one_side_each():
    t, h = 7, 4
    m = build_mask("fwd_bwd", t, n_heads=h)[0]
    lower = torch.ones(t, t, dtype=torch.bool).tril()
    for head in range(h):
        expected = lower if head < 2 else lower.T
        assert torch.equal(m[head], expected), head
    # with a prefix: backward heads are anti-causal inside the prefix and causal after it
    mp = build_mask("fwd_bwd", t, n_heads=h, prefix_len=4)[0]
    assert torch.equal(mp[0], lower)
    assert torch.equal(mp[3, :4, :4], lower[:4, :4].T)
    assert not bool(mp[3, :4, 4:].any())
    assert torch.equal(mp[3, 4:], lower[4:])
    q, k, v = _qkv(b=1, t=t, h=h)
    o = attention(q, k, v, mask="fwd_bwd")
    v2 = v.clone()
    v2[:, 0] += 3.0  # the first token: only backward heads at later positions... and all heads at 0
    o2 = attention(q, k, v2, mask="fwd_bwd")
    assert torch.equal(o[:, 1:, 2:], o2[:, 1:, 2:])  # backward heads after 0 never see token 0
    assert not torch.allclose(o[:, 1:, :2], o2[:, 1:, :2])


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        (dict(kernel="cosine"), ValueError, "kernel must be one of"),
        (dict(mask="sliding"), ValueError, "mask must be one of"),
        (dict(mask="prefix"), ValueError, "needs prefix_len"),
        (dict(mask="prefix", prefix_len=99), ValueError, r"prefix_len must lie in \[0, seq_len=9\]"),
        (dict(mask="prefix", prefix_len=[1, 2, 3]), ValueError, "one entry per batch row"),
        (dict(mask="prefix", prefix_len=1.5), TypeError, "prefix_len"),
        (dict(mask="causal", prefix_len=2), ValueError, "prefix_len is only meaningful"),
    ],
)
def test_argument_errors(kwargs, exc, msg):
    q, k, v = _qkv()
    with pytest.raises(exc, match=msg):
        attention(q, k, v, **kwargs)


def test_tensor_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"q must have 4 dimensions laid out \[batch, seq, heads, dim\]"):
        attention(q[0], k, v)
    with pytest.raises(ValueError, match="k must have the shape of q"):
        attention(q, k[..., :4], v)
    with pytest.raises(ValueError, match="v must match k in"):
        attention(q, k, v[:, :, :2])
    with pytest.raises(TypeError, match="q must have a floating dtype"):
        attention(q.long(), k, v)
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        attention(q.numpy(), k, v)
    bad = q.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        attention(bad, k, v)
    from attnlab.checks import finite_checks

    with finite_checks(False):
        assert torch.isnan(attention(bad, k, v)).any()


def test_probs_are_row_stochastic_for_every_mask():
    q, k, v = _qkv(t=8)
    for mask, pl in [("causal", None), ("bidirectional", None), ("prefix", 3), ("fwd_bwd", None), ("fwd_bwd", 5)]:
        p = attention_probs(q, k, mask=mask, prefix_len=pl)
        assert torch.allclose(p.sum(-1), torch.ones(2, 4, 8), atol=1e-6), mask
