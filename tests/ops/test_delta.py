"""Delta rule and gated delta rule: chunk == recurrent == step, against flash-linear-attention's references."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import native
from attnlab.ops.delta import (
    DeltaRuleBlowUpWarning,
    delta_rule,
    delta_rule_step,
    gated_delta_rule,
    gated_delta_rule_step,
    implicit_matrix,
)
from tests.helpers import assert_close, delta_inputs, fla_naive


def _run(mode, chunk, gated, init, tensors):
    leaves = [x.clone().requires_grad_(True) for x in tensors]
    q, k, v, beta, g = leaves[:5]
    s0 = leaves[5] if init else None
    o, S = gated_delta_rule(q, k, v, g if gated else None, beta, mode=mode, chunk_size=chunk, initial_state=s0,
                            output_final_state=True)
    w = torch.linspace(-1, 1, o.shape[-1])
    ((o * w).sum() + 0.5 * S.sum()).backward()
    return o.detach(), S.detach(), [x.grad for x in leaves]


@given(b=st.integers(1, 2), t=st.integers(1, 40), h=st.integers(1, 3), dk=st.integers(1, 6), dv=st.integers(1, 5),
       chunk=st.sampled_from([1, 4, 7, 16]), gated=st.booleans(), init=st.booleans())
def test_chunk_equals_recurrent_with_grads(b, t, h, dk, dv, chunk, gated, init):
    tensors = list(delta_inputs(b, t, h, dk, dv)) + ([torch.randn(b, h, dk, dv)] if init else [])
    o1, S1, g1 = _run("recurrent", chunk, gated, init, tensors)
    o2, S2, g2 = _run("chunk", chunk, gated, init, tensors)
    assert_close("o", o1, o2)
    assert_close("S", S1, S2)
    names = ["q", "k", "v", "beta", "g", "S0"]
    for n, a, c in zip(names, g1, g2):
        if a is not None and (n != "g" or gated):
            assert_close(f"grad {n}", a, c, ratio=1e-4)


@pytest.mark.parametrize("gated", [False, True])
def test_step_by_step_equals_full(gated):
    q, k, v, beta, g = delta_inputs(2, 19, 3, 5, 4, seed=1)
    S0 = torch.randn(2, 3, 5, 4)
    o, S = gated_delta_rule(q, k, v, g if gated else None, beta, chunk_size=8, initial_state=S0,
                            output_final_state=True)
    state, outs = S0, []
    for i in range(19):
        if gated:
            o_t, state = gated_delta_rule_step(q[:, i], k[:, i], v[:, i], beta[:, i], state, g[:, i])
        else:
            o_t, state = delta_rule_step(q[:, i], k[:, i], v[:, i], beta[:, i], state)
        outs.append(o_t)
    assert_close("o", o, torch.stack(outs, 1))
    assert_close("S", S, state)
    # two pieces with the state handed over equal one pass
    o_a, S_a = gated_delta_rule(q[:, :7], k[:, :7], v[:, :7], g[:, :7] if gated else None, beta[:, :7],
                                initial_state=S0, output_final_state=True)
    o_b = gated_delta_rule(q[:, 7:], k[:, 7:], v[:, 7:], g[:, 7:] if gated else None, beta[:, 7:], initial_state=S_a)
    assert_close("pieces", o, torch.cat([o_a, o_b], 1))


# backend "auto" runs these no-grad calls in the native kernel where it is built, "pytorch" never does
@pytest.mark.parametrize("backend", ["auto", "pytorch"])
@pytest.mark.parametrize("t", [64, 100])
def test_delta_rule_against_fla_naive(t, backend):
    ref = fla_naive("delta_rule")
    q, k, v, beta, _ = delta_inputs(2, t, 4, 16, 16, seed=2)
    S0 = torch.randn(2, 4, 16, 16)
    tr = lambda x: x.transpose(1, 2).contiguous()  # noqa: E731  fla's naive files are [b, h, t, d]
    o_ref, S_ref = ref.delta_rule_recurrence(tr(q), tr(k), tr(v), tr(beta), initial_state=S0.clone())
    o, S = delta_rule(q, k, v, beta, initial_state=S0, output_final_state=True, chunk_size=32, backend=backend)
    assert_close("o vs fla recurrence", tr(o_ref), o)
    assert_close("S vs fla recurrence", S_ref, S)
    if t % 32 == 0:
        o_c, S_c = ref.delta_rule_chunkwise(tr(q), tr(k), tr(v), tr(beta), chunk_size=32)
        o2 = delta_rule(q, k, v, beta, chunk_size=16, backend=backend)
        assert_close("o vs fla chunkwise", tr(o_c), o2)


@pytest.mark.parametrize("backend", ["auto", "pytorch"])
def test_gated_delta_rule_against_fla_naive(backend):
    ref = fla_naive("gated_delta_rule")
    q, k, v, beta, g = delta_inputs(2, 77, 3, 16, 8, seed=3)
    S0 = torch.randn(2, 3, 16, 8)
    o_ref, S_ref = ref.naive_recurrent_gated_delta_rule(q, k, v, beta, g, initial_state=S0.clone(),
                                                        output_final_state=True)
    o, S = gated_delta_rule(q, k, v, g, beta, initial_state=S0, output_final_state=True, chunk_size=16,
                            backend=backend)
    assert_close("o vs fla recurrent", o_ref, o)
    assert_close("S vs fla recurrent", S_ref, S)
    # note the argument order: the chunk reference takes g before beta, the recurrent one after
    o_c, S_c = ref.naive_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=16, initial_state=S0.clone(),
                                                output_final_state=True)
    assert_close("o vs fla chunk", o_c, o)
    assert_close("S vs fla chunk", S_c, S)


def test_implicit_matrix_reproduces_output():
    q, k, v, beta, g = delta_inputs(1, 23, 2, 4, 3, seed=4)
    A = implicit_matrix(lambda q, k, v: gated_delta_rule(q, k, v, g, beta, chunk_size=8), q, k)
    assert A.shape == (1, 2, 23, 23) and bool((A.triu(1) == 0).all())
    assert_close("A v", gated_delta_rule(q, k, v, g, beta), torch.einsum("bhts,bshd->bthd", A, v))


@pytest.mark.parametrize("backend", ["pytorch", pytest.param("native", marks=pytest.mark.skipif(
    native.unavailable_reason() is not None, reason="native kernel unavailable"))])
def test_blow_up_is_reported_not_silent(backend):
    gen = torch.Generator().manual_seed(0)
    q, v = torch.randn(1, 400, 1, 8, generator=gen), torch.randn(1, 400, 1, 8, generator=gen)
    k = torch.randn(1, 400, 1, 8, generator=gen) * 3  # ‖k‖² ≈ 72: β‖k‖² ≫ 2
    beta = torch.ones(1, 400, 1)
    with pytest.warns(DeltaRuleBlowUpWarning, match="L2-normalise the keys"):
        with pytest.raises(FloatingPointError, match="blew up"):
            delta_rule(q, k, v, beta, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # normalised keys: no warning at all
        delta_rule(q, F.normalize(k, dim=-1), v, beta, backend=backend)


def test_bad_input_errors():
    q, k, v, beta, g = delta_inputs(1, 5, 2, 4, 4)
    with pytest.raises(ValueError, match=r"beta must have shape \(1, 5, 2\)"):
        delta_rule(q, k, v, beta[:, :3])
    with pytest.raises(ValueError, match="g is a log-decay and must be <= 0"):
        gated_delta_rule(q, k, v, -g, beta)
    with pytest.raises(ValueError, match="mode must be one of"):
        delta_rule(q, k, v, beta, mode="fast")
    with pytest.raises(ValueError, match="initial_state must have shape"):
        delta_rule(q, k, v, beta, initial_state=torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="beta contains NaN"):
        delta_rule(q, k, v, beta * float("nan"))


def test_float64_inputs_compute_in_float64():
    q, k, v, beta, g = (x.double() for x in delta_inputs(1, 50, 2, 8, 4, seed=6))
    o1 = gated_delta_rule(q, k, v, g, beta, mode="recurrent")
    o2 = gated_delta_rule(q, k, v, g, beta, chunk_size=16)
    assert o2.dtype == torch.float64
    assert ((o1 - o2).norm() / o1.norm()).item() < 1e-13


@pytest.mark.parametrize("gated", [False, True])
def test_chunk_form_leaves_its_inputs_alone(gated):
    """With b = h = 1 the chunk layout can be a view of the input: no in-place step may write into it."""
    q, k, v, beta, g = delta_inputs(1, 128, 1, 8, 8, seed=3)
    before = [x.clone() for x in (q, k, v, beta, g)]
    with torch.no_grad():
        gated_delta_rule(q, k, v, g if gated else None, beta, chunk_size=64)
    for a, b in zip(before, (q, k, v, beta, g)):
        assert torch.equal(a, b)


def test_output_guard_is_exact_and_names_what_diverged():
    """The guard's quick float64 sum never decides alone: huge finite values pass, one NaN or Inf raises; the
    message names the cause: NaN already in the inputs, an expansive recurrence, or values past the dtype."""
    from attnlab.ops.delta import _check_finite_output

    S = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    _check_finite_output(torch.full((1, 4, 1, 2), 1e308, dtype=torch.float64), S, 1.0, {})  # the sum overflows
    for bad in (float("nan"), float("inf")):
        o = torch.zeros(1, 4, 1, 2)
        o[0, 2, 0, 1] = bad
        with pytest.raises(FloatingPointError, match="blew up: max .β.‖k‖² = 7"):
            _check_finite_output(o, S.float(), 7.0, {})
        with pytest.raises(FloatingPointError, match=r"inputs already hold NaN/Inf \(v\)"):
            _check_finite_output(o, S.float(), 1.0, {"q": torch.zeros(2), "v": o})
        with pytest.raises(FloatingPointError, match="past the float range with a contractive recurrence"):
            _check_finite_output(o, S.float(), 1.0, {"q": torch.zeros(2)})


def test_signed_beta_is_warned_with_the_right_reason_and_the_limit_itself_is_not():
    q, k, v, beta, _ = delta_inputs(1, 70, 1, 8, 8, seed=2)
    with pytest.warns(DeltaRuleBlowUpWarning, match="β has negative entries"):
        delta_rule(q, k, v, -0.5 * beta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # β = 2 with unit keys: β‖k‖² = 2 up to rounding, still contractive
        delta_rule(q, k, v, torch.full_like(beta, 2.0))
    with pytest.warns(DeltaRuleBlowUpWarning, match=r"max \|β\|‖k‖² = 2\.2 > 2"):
        delta_rule(q, k, v, torch.full_like(beta, 2.2))
