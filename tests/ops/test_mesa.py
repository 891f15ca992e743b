"""MesaNet, exact: chunk == recurrent == step, against flash-linear-attention's exact reference; claim S3."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops.mesa import mesa_net, mesa_net_step
from tests.helpers import assert_close, delta_inputs, fla_naive, grads, rel_rms


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


@given(t=st.integers(1, 30), d=st.integers(1, 5), chunk=st.sampled_from([1, 4, 16]), init=st.booleans(),
       steps=st.sampled_from([1, 2, 7]))
def test_cg_chunk_equals_cg_recurrent_for_every_step_count(t, d, chunk, init, steps):
    q, k, v, g, beta, lamb = _inputs(2, t, 2, d)
    st0 = (torch.eye(d).expand(2, 2, d, d) * 0.5, torch.randn(2, 2, d, d)) if init else None
    kw = dict(solver="cg", cg_steps=steps, initial_state=st0, output_final_state=True)
    o1, (H1, G1) = mesa_net(q, k, v, g, beta, lamb, mode="recurrent", **kw)
    o2, (H2, G2) = mesa_net(q, k, v, g, beta, lamb, chunk_size=chunk, **kw)
    assert_close("o", o1, o2, ratio=1e-4)
    assert_close("H", H1, H2)
    assert_close("G", G1, G2)


def test_cg_with_d_steps_is_exact_and_few_steps_match_fla_cg_reference():
    q, k, v, g, beta, lamb = _inputs(2, 48, 3, 16, seed=1)
    exact = mesa_net(q.double(), k.double(), v.double(), g.double(), beta.double(), lamb.double())
    cg = mesa_net(q.double(), k.double(), v.double(), g.double(), beta.double(), lamb.double(), solver="cg",
                  cg_steps=16, chunk_size=16)
    assert_close("d steps", exact, cg, ratio=1e-9)
    few = mesa_net(q.double(), k.double(), v.double(), g.double(), beta.double(), lamb.double(), solver="cg",
                   cg_steps=3, chunk_size=16)
    assert rel_rms(exact, few) > 1e-2  # 3 of 16 steps is an approximation, not the answer
    # fla's naive CG adds 1e-5 to its denominators; over the first steps that changes nothing at 1e-5
    ref = fla_naive("mesa_net")
    for steps in (1, 3):
        o_ref, H_ref, G_ref = ref.naive_mesa_net_CG(q, k, v, g, lamb, beta, 16, max_CG_iteration=steps)
        o, (H, G) = mesa_net(q, k, v, g, beta, lamb, solver="cg", cg_steps=steps, chunk_size=16,
                             output_final_state=True)
        assert_close(f"{steps} steps", o_ref, o)
        assert_close("H", H_ref, H)


def test_cg_gradients_and_steps_agree_with_the_recurrent_form():
    q, k, v, g, beta, lamb = _inputs(1, 13, 2, 4, seed=3)  # 13 tokens: a padded tail in the chunk form

    def loss(mode, *xs):
        return mesa_net(*xs, mode=mode, chunk_size=8, solver="cg", cg_steps=3).pow(2).sum()

    _, gr = grads(lambda *xs: loss("recurrent", *xs), q, k, v, g, beta, lamb)
    _, gc = grads(lambda *xs: loss("chunk", *xs), q, k, v, g, beta, lamb)
    for name, a, b in zip("q k v g beta lamb".split(), gr, gc):
        assert torch.isfinite(b).all(), name
        assert_close(name, a, b, ratio=1e-4)
    o = mesa_net(q, k, v, g, beta, lamb, solver="cg", cg_steps=3)
    state, outs = None, []
    for i in range(13):
        o_t, state = mesa_net_step(q[:, i], k[:, i], v[:, i], g[:, i], beta[:, i], lamb, state, solver="cg",
                                   cg_steps=3)
        outs.append(o_t)
    assert_close("steps", o, torch.stack(outs, 1))


def test_cg_errors():
    q, k, v, g, beta, lamb = _inputs(1, 4, 2, 3)
    with pytest.raises(ValueError, match="solver must be one of 'exact', 'cg'; got 'lu'"):
        mesa_net(q, k, v, g, beta, lamb, solver="lu")
    with pytest.raises(ValueError, match="cg_steps must be a positive integer, got 0"):
        mesa_net(q, k, v, g, beta, lamb, solver="cg", cg_steps=0)
