"""General TTT: its special cases are the delta rules (S1, S2) and TTT-Linear; Muon via Newton–Schulz."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops.delta import delta_rule, gated_delta_rule
from attnlab.ops.ttt import LayerNormLinear, LinearModel, newton_schulz, ttt
from tests.helpers import assert_close, delta_inputs, fla_naive


@given(t=st.integers(1, 30), dk=st.integers(1, 6), dv=st.integers(1, 5), init=st.booleans())
def test_sgd_ttt_is_the_delta_rule(t, dk, dv, init):
    """Claim S1: linear model, squared loss, one SGD step per token (lr β) == DeltaNet."""
    q, k, v, eta, _ = delta_inputs(2, t, 2, dk, dv)
    S0 = torch.randn(2, 2, dk, dv) if init else None
    o1, S1 = delta_rule(q, k, v, eta, chunk_size=8, initial_state=S0, output_final_state=True)
    o2, S2 = ttt(q, k, v, eta, initial_state=S0, output_final_state=True)
    assert_close("o", o1, o2)
    assert_close("S", S1, S2)


def test_decoupled_weight_decay_ttt_is_the_gated_delta_rule():
    """Claim S2: decay the weights by α_t before each SGD step == Gated DeltaNet."""
    q, k, v, eta, g = delta_inputs(2, 33, 3, 8, 4, seed=1)
    o1, S1 = gated_delta_rule(q, k, v, g, eta, chunk_size=8, output_final_state=True)
    o2, S2 = ttt(q, k, v, eta, g=g, output_final_state=True)
    assert_close("o", o1, o2)
    assert_close("S", S1, S2)


@pytest.mark.parametrize("t", [32, 37])
def test_ttt_linear_against_fla_naive(t):
    ref = fla_naive("ttt")
    q, k, v, _, _ = delta_inputs(2, t, 3, 8, 8, seed=2)
    gen = torch.Generator().manual_seed(5)
    w, b = torch.randn(3, 8, generator=gen), torch.randn(3, 8, generator=gen)
    eta = torch.rand(2, t, 3, generator=gen) * 0.1
    # the reference scales q in place: hand it copies
    o_ref, W_ref, b_ref = ref.chunk_ttt_linear_ref(q.clone(), k.clone(), v.clone(), w, b, eta[..., None].clone(),
                                                   mini_batch_size=16, output_final_state=True)
    o, st = ttt(q, k, v, eta, model=LayerNormLinear(w, b), target="v_minus_k", mini_batch_size=16,
                output_final_state=True)
    assert_close("o", o_ref, o)
    assert_close("W", W_ref, st["W"])
    if t % 16 == 0:  # with padding, the reference's bias also learns from the padded tokens
        assert_close("b", b_ref[:, :, 0], st["b"])


def test_newton_schulz_cubic_converges_to_the_polar_factor():
    G = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    assert_close("polar", U @ Vh, newton_schulz(G, steps=40, coefficients="cubic"), ratio=1e-5)
    X = newton_schulz(G, steps=5)  # Muon's quintic: singular values roughly 1, not exactly
    s = torch.linalg.svdvals(X)
    assert bool((s > 0.6).all() and (s < 1.3).all())


def test_muon_minibatch_against_a_direct_loop():
    """LaCT-style update: W_t = W_0 − η_t · polar(Σ_{j≤t} ∇ℓ_j(W_0)), written out by hand with an SVD."""
    b, t, h, d, m = 1, 12, 2, 3, 6
    q, k, v, eta, _ = delta_inputs(b, t, h, d, d, seed=3)
    o = ttt(q, k, v, eta, optimizer="muon", mini_batch_size=m, ns_steps=60, ns_coefficients="cubic")
    scale = d**-0.5
    ref = torch.zeros_like(o)
    for bi in range(b):
        for hi in range(h):
            W0 = torch.zeros(d, d)
            for s0 in range(0, t, m):
                acc = torch.zeros(d, d)
                for j in range(s0, s0 + m):
                    kj, vj = k[bi, j, hi], v[bi, j, hi]
                    acc = acc + torch.outer(kj, kj @ W0 - vj)  # ∇_W ½‖Wᵀk − v‖²
                    U, _, Vh = torch.linalg.svd(acc)
                    Wt = W0 - eta[bi, j, hi] * (U @ Vh)
                    ref[bi, j, hi] = (q[bi, j, hi] * scale) @ Wt
                W0 = Wt
    # the first tokens of a batch have rank-deficient sums, where NS and the SVD pick different null spaces
    assert_close("o (full-rank tokens)", ref[:, [s + m - 1 for s in range(0, t, m)]],
                 o[:, [s + m - 1 for s in range(0, t, m)]], ratio=1e-4)


def test_custom_model_and_loss_plug_in():
    """A researcher's own model: a linear model with bias and an ℓ1 loss run through the same engine."""
    q, k, v, eta, _ = delta_inputs(1, 9, 2, 4, 4, seed=4)
    o = ttt(q, k, v, eta * 0.1, model=LinearModel(bias=True), loss=lambda p, y: (p - y).abs().sum())
    assert o.shape == v.shape and torch.isfinite(o).all()
    # the first token with an ℓ1 loss: W_1 = −η sign(0 − v) kᵀ, b_1 = −η sign(0 − v)
    s = torch.sign(v[:, 0])
    expect = (q[:, 0] * 0.5 * k[:, 0]).sum(-1, keepdim=True) * eta[:, 0, :, None] * 0.1 * s + eta[:, 0, :, None] * 0.1 * s
    assert_close("first token", expect, o[:, 0])


def test_ttt_errors():
    q, k, v, eta, g = delta_inputs(1, 4, 1, 2, 2)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ttt(q, k, v, eta, optimizer="adam")
    with pytest.raises(ValueError, match="mini_batch_size=1 only"):
        ttt(q, k, v, eta, g=g, mini_batch_size=2)
    with pytest.raises(ValueError, match="target must be one of"):
        ttt(q, k, v, eta, target="x")
    with pytest.raises(ValueError, match=r"eta must have shape \(1, 4, 1\)"):
        ttt(q, k, v, eta[:, :2])
