"""The fused softmax path (scaled_dot_product_attention) equals the explicit matrix, forward and backward, in
float32 and float64, for the causal and bidirectional masks; a decoding cache (more keys than queries) keeps
the explicit path, aligned to the last key."""

import pytest
import torch

from attnlab.ops import attention, attention_probs


@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [1, 7, 64])
def test_fused_equals_the_explicit_matrix(mask, dtype, t):
    g = torch.Generator().manual_seed(t)
    q, k, v = (torch.randn(2, t, 3, 8, generator=g, dtype=dtype, requires_grad=True) for _ in range(3))
    o = attention(q, k, v, mask=mask, scale=0.7)
    ref = torch.einsum("bhqk,bkhd->bqhd", attention_probs(q, k, mask=mask, scale=0.7), v)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert o.dtype == dtype and torch.allclose(o, ref, atol=tol)
    gw = torch.randn_like(o)
    ga = torch.autograd.grad(o, (q, k, v), gw)
    gr = torch.autograd.grad(ref, (q, k, v), gw)
    assert all(torch.allclose(a, b, atol=10 * tol) for a, b in zip(ga, gr))


def test_a_decoding_cache_aligns_the_causal_mask_to_the_last_key():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 10, 2, 4, generator=g) for _ in range(3))
    full = attention(q, k, v)
    last = attention(q[:, -3:], k, v)  # three new queries against every key so far
    assert torch.allclose(last, full[:, -3:], atol=1e-6)


def test_relu2_rows_survive_huge_scores_and_a_nan_scale_is_refused():
    q = torch.tensor([[[[1e20, 0.0]]], [[[1e20, 0.0]]]]).reshape(1, 2, 1, 2)
    k = torch.tensor([[1.0, 0.0], [2.0, 0.0]]).reshape(1, 2, 1, 2)
    p = attention_probs(q, k, kernel="relu2", mask="bidirectional", scale=1.0)
    assert torch.isfinite(p).all()
    assert torch.allclose(p[0, 0, 0], torch.tensor([0.2, 0.8]))  # 1² : 2² whatever the common factor
    for fn in (attention_probs, lambda q, k, **kw: attention(q, k, k, **kw)):
        with pytest.raises(ValueError, match="scale must be a finite number, got nan"):
            fn(q, k, scale=float("nan"))


@pytest.mark.parametrize("which", ["q", "k"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_the_fused_path_turns_a_nan_or_inf_in_q_or_k_into_nan(which, bad):
    from attnlab.checks import finite_checks

    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 6, 2, 4, generator=g) for _ in range(3))
    (q if which == "q" else k)[1, 5, 1, 3] = bad  # the last key: the causal rows before it never see it
    with finite_checks(False):
        assert torch.isnan(attention(q, k, v)).all()


def test_the_fused_path_leaves_huge_finite_q_and_k_alone_and_adds_nothing_to_their_gradients():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 16, 4, 64, generator=g) for _ in range(3))
    big = (q * 1e37).requires_grad_()  # its float32 sum overflows; the scores do not (scale undoes the factor)
    o = attention(big, k, v, scale=1e-37 * 64**-0.5)
    ref = attention(q, k, v)
    assert torch.isfinite(o).all() and torch.allclose(o, ref, atol=1e-5)
    qq, kk = q.clone().requires_grad_(), k.clone().requires_grad_()
    gw = torch.randn_like(o)
    fused = torch.autograd.grad(attention(qq, kk, v), (qq, kk), gw)
    explicit = torch.autograd.grad(torch.einsum("bhqk,bkhd->bqhd", attention_probs(qq, kk), v), (qq, kk), gw)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(fused, explicit))
