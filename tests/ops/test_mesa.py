"""MesaNet, exact: chunk == recurrent == step, against flash-linear-attention's exact reference; claim S3."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops.mesa import mesa_net, mesa_net_step
from tests.helpers import assert_close, delta_inputs, fla_naive


def _inputs(b, t, h, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k, v, beta, g = delta_inputs(b, t, h, d, gen=gen, g_shift=3)
    lamb = torch.rand(h, d, generator=gen) + 0.2
    return q, k, v, g, beta, lamb


@given(t=st.integers(1, 30), d=st.integers(1, 5), chunk=st.sampled_from([1, 4, 16]), init=st.booleans())
def test_chunk_equals_recurrent(t, d, chunk, init):
    q, k, v, g, beta, lamb = _inputs(2, t, 2, d)
    st0 = (torch.eye(d).expand(2, 2, d, d) * 0.5, torch.randn(2, 2, d, d)) if init else None
    o1, (H1, G1) = mesa_net(q, k, v, g, beta, lamb, mode="recurrent", initial_state=st0, output_final_state=True)
    o2, (H2, G2) = mesa_net(q, k, v, g, beta, lamb, chunk_size=chunk, initial_state=st0, output_final_state=True)
    assert_close("o", o1, o2, ratio=1e-4)
    assert_close("H", H1, H2)
    assert_close("G", G1, G2)


def test_against_fla_exact_reference_and_steps():
    ref = fla_naive("mesa_net")
    q, k, v, g, beta, lamb = _inputs(2, 45, 3, 8, seed=1)
    o_ref, H_ref, G_ref = ref.naive_mesa_net_exact(q, k, v, g, lamb, beta)
    o, (H, G) = mesa_net(q, k, v, g, beta, lamb, chunk_size=16, output_final_state=True)
    assert_close("o", o_ref, o)
    assert_close("H", H_ref, H)
    assert_close("G", G_ref, G)
    state, outs = None, []
    for i in range(45):
        o_t, state = mesa_net_step(q[:, i], k[:, i], v[:, i], g[:, i], beta[:, i], lamb, state)
        outs.append(o_t)
    assert_close("steps", o, torch.stack(outs, 1))


@pytest.mark.parametrize("lam", [1e-1, 1e-3, 1e-5])
def test_tied_keys_and_values_predict_the_query(lam):
    """Claim S3: with K = V, o_t = H_t (H_t + λI)⁻¹ q_t → q_t once H_t has full rank, as λ → 0."""
    q, k, _, _, beta, _ = _inputs(1, 64, 2, 8, seed=2)
    lamb = torch.full((2, 8), lam)
    o = mesa_net(q.double(), k.double(), k.double(), None, beta.double(), lamb.double())
    err = ((o[:, 16:] - q[:, 16:].double()).norm() / q[:, 16:].double().norm()).item()
    assert err < 50 * lam  # the gap is O(λ / smallest eigenvalue of H)


def test_mesa_errors():
    q, k, v, g, beta, lamb = _inputs(1, 4, 2, 3)
    with pytest.raises(ValueError, match="lamb .* must be positive"):
        mesa_net(q, k, v, g, beta, -lamb)
    with pytest.raises(ValueError, match=r"lamb must have shape \(2, 3\)"):
        mesa_net(q, k, v, g, beta, lamb[:1])
    with pytest.raises(ValueError, match="beta must be non-negative"):
        mesa_net(q, k, v, g, -beta, lamb)
    with pytest.raises(TypeError, match="initial_state must be a tuple"):
        mesa_net(q, k, v, g, beta, lamb, initial_state=torch.zeros(1))
