"""The delta rules' engine dispatch: which engine runs, why the others did not, and the old names."""

import warnings

import pytest
import torch

from attnlab.ops import delta_engines, delta_rule, gated_delta_rule, native
from attnlab.ops.delta_engines import ENGINES, choose
from tests.helpers import assert_close, delta_inputs

NATIVE = native.unavailable_reason() is None


def _choose(backend, *tensors, mode="chunk", needs_grad=False):
    q, k, v, beta, g = tensors
    return choose(backend, q, k, v, g, beta, None, mode=mode, chunk_size=64, needs_grad=needs_grad)


def test_auto_picks_native_for_no_grad_cpu_float32_and_says_why_not_fla():
    c = _choose("auto", *delta_inputs(1, 20, 2, 4, 4))
    assert c.engine == ("native" if NATIVE else "pytorch")
    assert "CUDA" in c.passed_over["fla"]
    if not NATIVE:
        assert c.passed_over["native"] == native.unavailable_reason()


def test_auto_runs_pytorch_where_native_cannot_and_names_the_reason():
    t = delta_inputs(1, 20, 2, 4, 4)
    c = _choose("auto", *(x.to(torch.bfloat16) for x in t), needs_grad=True)
    assert c.engine == "pytorch" and "native backward computes in float32; bfloat16" in c.passed_over["native"]
    c64 = _choose("auto", *(x.double() for x in t))
    assert c64.engine == "pytorch" and "float64" in c64.passed_over["native"]


def test_recurrent_mode_runs_the_token_loop():
    c = _choose("auto", *delta_inputs(1, 20, 2, 4, 4), mode="recurrent")
    assert c.engine == "recurrent" and set(c.passed_over) == {"fla", "native", "pytorch"}
    with pytest.raises(ValueError, match="backend='native': the native kernel runs the chunk form only"):
        _choose("native", *delta_inputs(1, 20, 2, 4, 4), mode="recurrent")


def test_an_explicit_backend_runs_that_engine_or_raises():
    t = delta_inputs(1, 20, 2, 4, 4)
    assert _choose("pytorch", *t).engine == "pytorch"
    with pytest.raises(ValueError, match="backend='fla' needs CUDA tensors"):
        _choose("fla", *t)
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'native', 'pytorch', 'fla'"):
        _choose("cuda", *t)


@pytest.mark.parametrize("engine", ["recurrent", "pytorch", pytest.param("native", marks=pytest.mark.skipif(
    not NATIVE, reason=f"native kernel unavailable: {native.unavailable_reason()}"))])
def test_every_engine_function_computes_the_recurrence(engine):
    q, k, v, beta, g = delta_inputs(2, 37, 3, 8, 5, seed=3)
    S0 = torch.randn(2, 3, 8, 5)
    ref_o, ref_S = gated_delta_rule(q.double(), k.double(), v.double(), g.double(), beta.double(), mode="recurrent",
                                    initial_state=S0.double(), output_final_state=True)
    o, S, worst = ENGINES[engine](q, k, v, g, beta, scale=8**-0.5, chunk_size=16, initial_state=S0)
    assert_close(f"o ({engine})", ref_o, o)
    assert_close(f"S ({engine})", ref_S, S)
    assert worst == pytest.approx(float((beta * k.pow(2).sum(-1)).max()), rel=1e-5)


def test_the_old_backend_name_torch_still_works_with_a_deprecation_warning():
    q, k, v, beta, _ = delta_inputs(1, 20, 2, 4, 4)
    with pytest.warns(DeprecationWarning, match="backend='torch' is deprecated; use backend='auto'"):
        old = delta_rule(q, k, v, beta, backend="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = delta_rule(q, k, v, beta)
    assert torch.equal(old, new)
    assert delta_engines.DEPRECATED_BACKENDS == {"torch": "auto"}
