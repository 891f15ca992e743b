"""Linear-family ops: chunk == recurrent == step, against flash-linear-attention's references."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attnlab.ops import (
    decay_attention_matrix,
    decay_linear_attention,
    decay_linear_attention_step,
    linear_attention,
    linear_attention_step,
    retention,
    retnet_decay,
    simple_gla,
)
from tests.helpers import assert_close, fla_naive


def _inputs(b, t, h, dk, dv, seed=0, decay=True):
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, t, h, dk, generator=gen) for _ in range(2))
    v = torch.randn(b, t, h, dv, generator=gen)
    g = torch.nn.functional.logsigmoid(torch.randn(b, t, h, generator=gen) + 2) if decay else None
    return q, k, v, g


def _loss(o, S):
    w = torch.linspace(-1, 1, o.shape[-1])
    return (o * w).sum() + (S * 0.5).sum()


@given(
    b=st.integers(1, 2),
    t=st.integers(1, 40),
    h=st.integers(1, 3),
    dk=st.integers(1, 6),
    dv=st.integers(1, 5),
    chunk=st.sampled_from([1, 4, 7, 16]),
    decay=st.booleans(),
    init=st.booleans(),
)
def test_chunk_equals_recurrent_with_grads(b, t, h, dk, dv, chunk, decay, init):
    q, k, v, g = _inputs(b, t, h, dk, dv, decay=decay)
    S0 = torch.randn(b, h, dk, dv) if init else None
    tensors = [q, k, v] + ([g] if decay else []) + ([S0] if init else [])

    def run(mode):
        def f(*xs):
            q, k, v = xs[:3]
            gg = xs[3] if decay else None
            s0 = xs[-1] if init else None
            o, S = decay_linear_attention(
                q, k, v, gg, mode=mode, chunk_size=chunk, initial_state=s0, output_final_state=True
            )
            run.o, run.S = o.detach(), S.detach()
            return _loss(o, S)

        leaves = [x.clone().requires_grad_(True) for x in tensors]
        f(*leaves).backward()
        return run.o, run.S, [x.grad for x in leaves]

    o_r, S_r, g_r = run("recurrent")
    o_c, S_c, g_c = run("chunk")
    assert_close("o", o_r, o_c)
    assert_close("S", S_r, S_c)
    for i, (a, c) in enumerate(zip(g_r, g_c)):
        assert_close(f"grad{i}", a, c, ratio=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmap", ["identity", "relu", "elu1", "exp", "softplus", "based"])
@pytest.mark.parametrize("normalize", [False, True])
def test_feature_maps_chunk_step_recurrent(fmap, normalize):
    if normalize and fmap in ("identity",):
        pytest.raises(ValueError, linear_attention, *_inputs(1, 3, 1, 2, 2)[:3], feature_map=fmap, normalize=True)
        return
    q, k, v, _ = _inputs(2, 19, 2, 3, 4)
    q, k = q * 0.5, k * 0.5
    o_r, st_r = linear_attention(
        q, k, v, feature_map=fmap, normalize=normalize, mode="recurrent", output_final_state=True
    )
    o_c, st_c = linear_attention(q, k, v, feature_map=fmap, normalize=normalize, chunk_size=8, output_final_state=True)
    assert_close("o", o_r, o_c)
    state, outs = None, []
    for i in range(19):
        o_t, state = linear_attention_step(
            q[:, i].transpose(0, 0), k[:, i], v[:, i], state, feature_map=fmap, normalize=normalize
        )
        outs.append(o_t)
    assert_close("step", o_r, torch.stack(outs, 1))
    flat = lambda s: torch.cat([s[0].flatten(), s[1].flatten()]) if isinstance(s, tuple) else s.flatten()  # noqa: E731
    assert_close("state", flat(st_r), flat(st_c))
    assert_close("step state", flat(st_r), flat(state))


def test_normalized_linear_attention_is_a_weighted_average():
    q, k, v, _ = _inputs(1, 10, 1, 4, 3)
    o = linear_attention(q, k, v, feature_map="elu1", normalize=True)
    phi = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    for i in range(10):
        w = (phi(q[0, i, 0]) * phi(k[0, : i + 1, 0])).sum(-1)
        ref = (w[:, None] * v[0, : i + 1, 0]).sum(0) / w.sum()
        assert torch.allclose(o[0, i, 0], ref, atol=1e-5)


def test_initial_state_continues_a_sequence():
    q, k, v, g = _inputs(2, 30, 2, 4, 3)
    full = simple_gla(q, k, v, g, chunk_size=8)
    o1, S1 = simple_gla(q[:, :13], k[:, :13], v[:, :13], g[:, :13], chunk_size=8, output_final_state=True)
    o2 = simple_gla(q[:, 13:], k[:, 13:], v[:, 13:], g[:, 13:], chunk_size=8, initial_state=S1)
    assert_close("split", full, torch.cat([o1, o2], 1))
    # normalised linear attention continues through its (S, z) pair
    fo = linear_attention(q, k, v, feature_map="relu", normalize=True)
    a, st = linear_attention(q[:, :5], k[:, :5], v[:, :5], feature_map="relu", normalize=True, output_final_state=True)
    bb = linear_attention(q[:, 5:], k[:, 5:], v[:, 5:], feature_map="relu", normalize=True, initial_state=st)
    assert_close("split-norm", fo, torch.cat([a, bb], 1))


def test_step_equals_full_with_decay():
    q, k, v, g = _inputs(2, 17, 3, 4, 5)
    S0 = torch.randn(2, 3, 4, 5)
    o, S = decay_linear_attention(q, k, v, g, chunk_size=4, initial_state=S0, output_final_state=True)
    state, outs = S0, []
    for i in range(17):
        o_t, state = decay_linear_attention_step(q[:, i], k[:, i], v[:, i], state, g[:, i])
        outs.append(o_t)
    assert_close("o", o, torch.stack(outs, 1))
    assert_close("S", S, state)


@pytest.mark.parametrize("decay", [False, True])
def test_implicit_matrix_reproduces_output(decay):
    q, k, v, g = _inputs(2, 23, 2, 4, 3, decay=decay)
    A = decay_attention_matrix(q, k, g)
    assert bool((A.triu(1) == 0).all())
    assert_close("A v", decay_linear_attention(q, k, v, g), torch.einsum("bhts,bshd->bthd", A, v))


def test_causality():
    q, k, v, g = _inputs(1, 20, 2, 4, 4)
    o = simple_gla(q, k, v, g, chunk_size=8)
    for x in (q, k, v, g):
        x2 = x.clone()
        x2[:, 11:] = -torch.rand_like(x2[:, 11:]) * 3
        args = [x2 if y is x else y for y in (q, k, v, g)]
        assert torch.equal(simple_gla(*args, chunk_size=8)[:, :11], o[:, :11])


# ---- against flash-linear-attention's pure-PyTorch references (layout b t h d there too) -------
def test_linear_attention_matches_fla_naive():
    fla = fla_naive("linear_attn")
    q, k, v, _ = _inputs(2, 128, 2, 16, 8)
    S0 = torch.randn(2, 2, 16, 8)
    ref_o, ref_S = fla.naive_recurrent_linear_attn(q, k, v, initial_state=S0, output_final_state=True)
    o, S = linear_attention(q, k, v, initial_state=S0, output_final_state=True)
    assert_close("o", ref_o, o)
    assert_close("S", ref_S, S)
    ref_chunk = fla.naive_chunk_linear_attn(q, k, v)
    assert_close("o chunk", ref_chunk, linear_attention(q, k, v, chunk_size=32))
    fq, fk = torch.relu(q), torch.relu(k)
    ref_n, _ = fla.naive_recurrent_linear_attn(fq, fk, v, normalize=True)
    assert_close("normalized", ref_n, linear_attention(q, k, v, feature_map="relu", normalize=True), ratio=1e-4)


def test_simple_gla_matches_fla_naive():
    fla = fla_naive("simple_gla")
    q, k, v, g = _inputs(2, 100, 3, 8, 6)
    S0 = torch.randn(2, 3, 8, 6)
    o, S = simple_gla(q, k, v, g, initial_state=S0, output_final_state=True)
    ref_o, ref_S = fla.naive_recurrent_simple_gla(q, k, v, g, initial_state=S0.clone(), output_final_state=True)
    assert_close("o", ref_o, o)
    assert_close("S", ref_S, S)
    ref_c, ref_cS = fla.naive_chunk_simple_gla(q, k, v, g, initial_state=S0.clone(), output_final_state=True)
    assert_close("o chunk", ref_c, o)
    assert_close("S chunk", ref_cS, S)


def test_retention_matches_fla_naive():
    fla = fla_naive("retention")
    q, k, v, _ = _inputs(2, 70, 4, 8, 8)
    ref = fla.naive_retention(*(x.transpose(1, 2) for x in (q, k, v))).transpose(1, 2)  # it wants b h t d
    assert_close("o", ref, retention(q, k, v))
    assert_close("o recurrent", ref, retention(q, k, v, mode="recurrent"))
    assert torch.allclose(retnet_decay(2), torch.tensor([1 - 1 / 32, 1 - 1 / 64], dtype=torch.float64))


@pytest.mark.parametrize(
    "call,exc,msg",
    [
        (lambda q, k, v, g: decay_linear_attention(q, k, v, -g), ValueError, "g is a log-decay and must be <= 0"),
        (lambda q, k, v, g: decay_linear_attention(q, k, v, g[:, :3]), ValueError, r"g must have shape"),
        (lambda q, k, v, g: decay_linear_attention(q, k, v, mode="fast"), ValueError, "mode must be one of"),
        (lambda q, k, v, g: decay_linear_attention(q, k, v, chunk_size=0), ValueError, "chunk_size must be a positive"),
        (
            lambda q, k, v, g: decay_linear_attention(q, k, v, initial_state=torch.zeros(1, 2)),
            ValueError,
            "initial_state must have 4 dimensions",
        ),
        (lambda q, k, v, g: linear_attention(q, k, v, feature_map="tanh"), ValueError, "feature_map must be one of"),
        (
            lambda q, k, v, g: linear_attention(q, k, v, normalize=True),
            ValueError,
            "normalize=True needs a non-negative",
        ),
        (
            lambda q, k, v, g: retention(q, k, v, decay=torch.tensor([0.5, 1.5])),
            ValueError,
            r"decay entries must lie in \(0, 1\]",
        ),
        (lambda q, k, v, g: retention(q, k, v, decay=torch.tensor([0.5])), ValueError, "one entry per head"),
        (lambda q, k, v, g: simple_gla(q, k, v, None), ValueError, "g must be a log-decay tensor"),
    ],
)
def test_errors(call, exc, msg):
    q, k, v, g = _inputs(1, 5, 2, 3, 3)
    with pytest.raises(exc, match=msg):
        call(q, k, v, g)


def test_float64_inputs_compute_in_float64():
    """Chunk and recurrent forms agree to float64 precision, and attention matches a float64 softmax."""
    from attnlab.ops import attention

    q, k, v, g = (x.double() for x in _inputs(1, 37, 2, 5, 3, seed=3))
    o1 = decay_linear_attention(q, k, v, g, mode="recurrent")
    o2 = decay_linear_attention(q, k, v, g, chunk_size=8)
    assert o2.dtype == torch.float64 and ((o1 - o2).norm() / o1.norm()).item() < 1e-13
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / 5**0.5
    s = s.masked_fill(~torch.ones(37, 37, dtype=torch.bool).tril(), float("-inf"))
    ref = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, -1), v)
    assert ((attention(q, k, v) - ref).norm() / ref.norm()).item() < 1e-13


needs_native = pytest.mark.skipif(__import__("attnlab.ops.native", fromlist=["x"]).unavailable_reason() is not None,
                                  reason="native kernel unavailable")


@needs_native
@given(
    b=st.integers(1, 2),
    t=st.integers(1, 70),
    h=st.integers(1, 3),
    dk=st.integers(1, 9),
    dv=st.integers(1, 7),
    chunk=st.sampled_from([1, 7, 16, 64]),
    decay=st.booleans(),
    init=st.booleans(),
)
def test_native_chunk_equals_the_float64_recurrence(b, t, h, dk, dv, chunk, decay, init):
    """The compiled chunk form (a no-grad float32 CPU call) against the float64 token loop: lengths that do
    not divide the chunk, with and without a decay and an initial state."""
    q, k, v, g = _inputs(b, t, h, dk, dv, decay=decay)
    S0 = torch.randn(b, h, dk, dv) if init else None
    o, S = decay_linear_attention(q, k, v, g, chunk_size=chunk, initial_state=S0, output_final_state=True,
                                  backend="native")
    o_r, S_r = decay_linear_attention(*(None if x is None else x.double() for x in (q, k, v, g)), mode="recurrent",
                                      initial_state=None if S0 is None else S0.double(), output_final_state=True)
    assert o.dtype == torch.float32
    assert_close("o", o_r.float(), o, ratio=1e-5, atol=1e-5)
    assert_close("S", S_r.float(), S, ratio=1e-5, atol=1e-5)


@needs_native
def test_decayed_linear_attention_runs_natively_without_gradients_only(monkeypatch):
    from attnlab.ops import native

    q, k, v, g = _inputs(1, 20, 2, 4, 4)
    calls = []
    real = native.decay_chunk
    monkeypatch.setattr(native, "decay_chunk", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with torch.no_grad():
        ref = decay_linear_attention(q, k, v, g, backend="pytorch")
        assert calls == []
        assert_close("o", ref, decay_linear_attention(q, k, v, g))  # auto: native
        assert_close("retention", retention(q, k, v, backend="pytorch"), retention(q, k, v, backend="native"))
        linear_attention(q, k, v, feature_map="elu1", normalize=True)  # the normaliser's column rides along
        simple_gla(q, k, v, g)
    assert calls == [1, 1, 1, 1]
    o = decay_linear_attention(q.requires_grad_(True), k, v, g)  # gradients: PyTorch
    assert o.grad_fn is not None and calls == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="backend='native': the native kernel has no backward"):
        decay_linear_attention(q, k, v, g, backend="native")
    with torch.no_grad():
        decay_linear_attention(q.double(), k.double(), v.double(), g.double())  # float64 stays in PyTorch
        with pytest.raises(ValueError, match="backend='native': the native kernel computes in float32; float64"):
            decay_linear_attention(q.double(), k.double(), v.double(), g.double(), backend="native")
        with pytest.raises(ValueError, match="backend='native': mode='recurrent'"):
            decay_linear_attention(q, k, v, g, mode="recurrent", backend="native")
        with pytest.raises(ValueError, match="backend must be one of"):
            decay_linear_attention(q, k, v, g, backend="fla")
    assert calls == [1, 1, 1, 1]
