"""The compiled CPU kernel of the delta rules (attnlab.ops.native) against the recurrence and the PyTorch chunk form."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.ops import native
from attnlab.ops.delta import delta_rule, gated_delta_rule
from tests.helpers import assert_close, delta_inputs

BUILDABLE = sys.platform.startswith("linux") and shutil.which("cc") is not None
needs_native = pytest.mark.skipif(native.unavailable_reason() is not None,
                                  reason=f"native kernel unavailable: {native.unavailable_reason()}")


@pytest.mark.skipif(not BUILDABLE, reason="no C compiler on Linux here")
def test_kernel_builds_on_a_linux_machine_with_a_compiler():
    # CI runs on such a machine: an unbuildable kernel would otherwise hide behind skips
    assert native.unavailable_reason() is None, native.unavailable_reason()
    assert native.kernel_path().exists()


def _forms(q, k, v, g, beta, chunk, S0):
    with torch.no_grad():
        kw = dict(chunk_size=chunk, initial_state=S0, output_final_state=True)
        return (gated_delta_rule(q, k, v, g, beta, backend="native", **kw),
                gated_delta_rule(q, k, v, g, beta, backend="pytorch", **kw),
                gated_delta_rule(q, k, v, g, beta, mode="recurrent", **kw))


@needs_native
@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 2), t=st.integers(1, 150), h=st.integers(1, 3), dk=st.integers(1, 9), dv=st.integers(1, 7),
       chunk=st.sampled_from([1, 3, 16, 64]), gated=st.booleans(), init=st.booleans())
def test_native_equals_recurrent_and_pytorch_chunk(b, t, h, dk, dv, chunk, gated, init):
    q, k, v, beta, g = delta_inputs(b, t, h, dk, dv)
    S0 = torch.randn(b, h, dk, dv) if init else None
    (o1, S1), (o2, S2), (o3, S3) = _forms(q, k, v, g if gated else None, beta, chunk, S0)
    assert_close("o native vs recurrent", o1, o3)
    assert_close("S native vs recurrent", S1, S3)
    assert_close("o native vs pytorch chunk", o1, o2)
    assert_close("S native vs pytorch chunk", S1, S2)


@needs_native
@pytest.mark.parametrize("gated", [False, True])
def test_native_at_benchmark_shape_to_float32_precision(gated):
    gen = torch.Generator().manual_seed(3)
    q, v = (torch.randn(1, 1000, 4, 64, generator=gen) for _ in range(2))
    k = F.normalize(torch.randn(1, 1000, 4, 64, generator=gen), dim=-1)
    beta = torch.rand(1, 1000, 4, generator=gen)
    g = F.logsigmoid(torch.randn(1, 1000, 4, generator=gen) + 4) if gated else None
    (o1, S1), _, (o3, S3) = _forms(q, k, v, g, beta, 64, None)
    assert float((o1 - o3).norm() / o3.norm()) < 1e-5
    assert float((S1 - S3).norm() / S3.norm()) < 1e-5


@needs_native
def test_default_backend_uses_native_for_float32_with_or_without_gradients(monkeypatch):
    q, k, v, beta, g = delta_inputs(1, 20, 2, 4, 4)
    calls = []
    real = native.delta_chunk
    monkeypatch.setattr(native, "delta_chunk", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    with torch.no_grad():
        delta_rule(q, k, v, beta)
    assert calls == [1]
    o = delta_rule(q.requires_grad_(True), k, v, beta)  # training: the native forward, then its backward
    assert calls == [1, 1] and type(o.grad_fn).__name__ == "NativeDeltaBackward"
    o = gated_delta_rule(q, k, v, g, beta)  # with a gate too
    assert calls == [1, 1, 1] and type(o.grad_fn).__name__ == "NativeDeltaBackward"
    o = delta_rule(*(x.to(torch.bfloat16) for x in (q, k, v, beta)))  # bfloat16 with gradients: PyTorch
    assert calls == [1, 1, 1] and o.grad_fn is not None
    with torch.no_grad():
        delta_rule(q.double(), k.double(), v.double(), beta.double())  # float64 stays in PyTorch
        delta_rule(q, k, v, beta, backend="pytorch")
        delta_rule(q, k, v, beta, mode="recurrent")
    assert calls == [1, 1, 1]


@needs_native
def test_low_precision_inputs_compute_in_float32_and_return_their_dtype():
    q, k, v, beta, g = delta_inputs(1, 70, 2, 8, 8)
    with torch.no_grad():
        o16 = gated_delta_rule(*(x.bfloat16() for x in (q, k, v)), g, beta.bfloat16(), backend="native")
        o32 = gated_delta_rule(*(x.bfloat16().float() for x in (q, k, v)), g, beta.bfloat16().float(),
                               backend="pytorch")
    assert o16.dtype == torch.bfloat16
    assert_close("o", o16.float(), o32, ratio=1e-2)


@needs_native
def test_non_contiguous_inputs():
    q, k, v, beta, g = delta_inputs(2, 33, 3, 5, 4)
    qt = q.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not qt.is_contiguous()
    with torch.no_grad():
        assert_close("o", delta_rule(qt, k, v, beta, backend="native"), delta_rule(q, k, v, beta, backend="pytorch"))


@needs_native
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree_and_leave_torch_threads_alone(threads):
    q, k, v, beta, g = delta_inputs(2, 50, 3, 6, 5)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            o = gated_delta_rule(q, k, v, g, beta, backend="native")
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    with torch.no_grad():
        assert_close("o", o, gated_delta_rule(q, k, v, g, beta, mode="recurrent"))


def test_native_backend_says_why_it_cannot_run():
    q, k, v, beta, g = delta_inputs(1, 8, 1, 4, 4)
    with pytest.raises(ValueError, match="backend='native': the native kernel runs the chunk form only"):
        delta_rule(q, k, v, beta, mode="recurrent", backend="native")
    with pytest.raises(ValueError, match="backend='native': the native backward computes in float32; float64"):
        delta_rule(q.double().requires_grad_(True), k.double(), v.double(), beta.double(), backend="native")
    with pytest.raises(ValueError, match="float64 inputs run in PyTorch"):
        with torch.no_grad():
            delta_rule(q.double(), k.double(), v.double(), beta.double(), backend="native")


@pytest.mark.skipif(not BUILDABLE, reason="no C compiler on Linux here")
def test_switch_off_and_missing_compiler_fall_back_with_a_reason(tmp_path):
    code = ("import torch; from attnlab.ops import native, delta_rule; from tests.helpers import delta_inputs;"
            "print(native.unavailable_reason()); q, k, v, b, g = delta_inputs(1, 9, 1, 4, 4);"
            "print(delta_rule(q, k, v, b).shape)")
    base = {"PATH": "/nonexistent", "ATTNLAB_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path),
            "TMPDIR": os.environ["TMPDIR"]}  # the fallback folder lands in the test's own temp folder
    (tmp_path / "a-file").write_text("")
    for env, expect in (({"ATTNLAB_NATIVE": "0"}, "turned off (ATTNLAB_NATIVE=0)"),
                        ({"CC": str(tmp_path / "no-such-cc")}, "could not build"),
                        # an unusable cache "directory" (a file): the kernel is built in a private temp folder
                        ({"CC": shutil.which("cc"), "ATTNLAB_CACHE_DIR": str(tmp_path / "a-file"),
                          "PATH": os.environ["PATH"]}, "None")):
        r = subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, cwd=".")
        assert r.returncode == 0, r.stderr
        assert expect in r.stdout and "torch.Size([1, 9, 1, 4])" in r.stdout


@pytest.mark.skipif(not BUILDABLE, reason="no C compiler on Linux here")
def test_build_is_cached_by_source_flags_and_machine(tmp_path):
    code = "from attnlab.ops import native; print(native.unavailable_reason(), native.kernel_path())"
    env = {"PATH": "/usr/bin:/bin", "ATTNLAB_CACHE_DIR": str(tmp_path), "HOME": str(tmp_path),
           "TMPDIR": os.environ["TMPDIR"]}
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()
            for _ in range(2)]
    assert outs[0] == outs[1] and outs[0][0] == "None"
    built = list((tmp_path / "native").glob("attnlab_kernels-*.so"))
    assert [str(p) for p in built] == [outs[0][1]]  # one build, reused


@needs_native
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_weak_to_crushing_decay(scale):
    """The kernel's own exp must match torch's from g ≈ 0 to decays that underflow within a chunk."""
    q, k, v, beta, _ = delta_inputs(1, 130, 2, 8, 8, seed=5)
    g = -scale * torch.rand(1, 130, 2, generator=torch.Generator().manual_seed(6))
    (o1, S1), _, (o3, S3) = _forms(q, k, v, g, beta, 64, torch.randn(1, 2, 8, 8))
    assert_close("o", o3, o1, ratio=2e-6)
    assert_close("S", S3, S1, ratio=2e-6)



@pytest.fixture(autouse=True)
def private_temp(tmp_path, monkeypatch):
    """The fallbacks these tests provoke make fresh ``attnlab-native-*`` folders in the temp folder: make
    them inside the test's own folder (and its subprocesses'), not in the machine's /tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))

@pytest.mark.skipif(not BUILDABLE, reason="no C compiler on Linux here")
def test_unwritable_home_cache_falls_back_to_a_temp_folder(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.delenv("ATTNLAB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # cannot hold a folder
    assert native.cache_dir().name.startswith("attnlab-native-")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native.cache_dir() == tmp_path / "attnlab" / "native"


@pytest.mark.skipif(not BUILDABLE, reason="no C compiler on Linux here")
def test_a_cache_folder_others_can_write_is_never_used(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNLAB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    shared = tmp_path / "attnlab" / "native"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    assert "writable by other users" in native.untrusted(shared)
    assert native.cache_dir() != shared
    monkeypatch.setenv("ATTNLAB_CACHE_DIR", str(tmp_path / "explicit"))
    (tmp_path / "explicit" / "native").mkdir(parents=True, mode=0o777)
    (tmp_path / "explicit" / "native").chmod(0o777)
    chosen = native.cache_dir()
    assert chosen != tmp_path / "explicit" / "native" and native.untrusted(chosen) is None


@pytest.mark.skipif(not BUILDABLE or os.getuid() != 0, reason="planting another user's files needs root")
def test_a_folder_or_library_planted_by_another_user_is_not_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_CACHE_DIR", str(tmp_path))
    planted = tmp_path / "native"
    planted.mkdir(mode=0o755)
    os.chown(planted, 12345, 12345)  # another local user got there first
    assert "belongs to another user" in native.untrusted(planted)
    assert native.cache_dir() != planted
    # a library planted under the expected name in our own folder, by another user, is rebuilt elsewhere
    os.chown(planted, 0, 0)
    planted.chmod(0o700)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    for arch in native.ARCH_FLAGS:
        lib = planted / native.library_name(cc, native.FLAGS + arch)
        lib.write_bytes(b"not a library")
        os.chown(lib, 12345, 12345)
    built = native._compile(cc)
    assert not isinstance(built, str) and built.parent != planted and native.untrusted(built) is None
    assert all(f.read_bytes() == b"not a library" for f in planted.glob("attnlab_kernels-*.so"))


@needs_native
@pytest.mark.parametrize(("b", "t", "h", "dk", "dv", "gate", "init", "chunk"), [
    (2, 37, 3, 8, 12, True, True, 16), (1, 64, 1, 16, 16, False, False, 64), (2, 5, 2, 4, 4, True, False, 64),
    (1, 100, 2, 32, 24, False, True, 32), (3, 1, 1, 4, 8, True, True, 64),
    (2, 37, 3, 8, 12, False, True, 16), (3, 1, 1, 4, 8, False, False, 64), (2, 5, 2, 4, 4, False, True, 64),
    # the ledger's head size over chunks, with and without a gate
    (2, 130, 1, 64, 64, False, True, 64), (2, 130, 2, 32, 32, True, True, 64),
    # a training call: one chunk or several, no initial state
    (4, 32, 1, 64, 64, False, False, 64), (2, 130, 2, 32, 32, True, False, 64)])
@pytest.mark.parametrize("final", [True, False], ids=["final-state-used", "output-only"])
def test_native_backward_equals_autograd_of_the_recurrence(b, t, h, dk, dv, gate, init, chunk, final):
    """Every gradient (q, k, v, β, g and the initial state), with the output's and the final state's gradients
    both flowing or only the output's (the kernel then skips the products with the zero gradient of the final
    state, as it skips those with the zero state that starts a sequence without an initial state), against
    autograd through the float64 token loop; lengths that do not divide the chunk."""
    from attnlab.ops import delta_engines

    gen = torch.Generator().manual_seed(b * 1000 + t)
    q = torch.randn(b, t, h, dk, generator=gen, dtype=torch.float64)
    k = F.normalize(torch.randn(b, t, h, dk, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(b, t, h, dv, generator=gen, dtype=torch.float64)
    beta = torch.rand(b, t, h, generator=gen, dtype=torch.float64) * 1.5
    g = -torch.rand(b, t, h, generator=gen, dtype=torch.float64) * 0.5 if gate else None
    S0 = torch.randn(b, h, dk, dv, generator=gen, dtype=torch.float64) if init else None
    ins = (q, k, v, g, beta, S0)
    ref = [None if x is None else x.clone().requires_grad_() for x in ins]
    got = [None if x is None else x.float().requires_grad_() for x in ins]
    o, S, _ = delta_engines.recurrent(ref[0], ref[1], ref[2], ref[3], ref[4], scale=0.7, chunk_size=chunk,
                                      initial_state=ref[5])
    do, dS = torch.randn(o.shape, generator=gen, dtype=torch.float64), torch.randn(S.shape, generator=gen,
                                                                                     dtype=torch.float64)
    if not final:
        dS = torch.zeros_like(dS)
    ((o * do).sum() + (S * dS).sum()).backward()
    o2, S2 = gated_delta_rule(got[0], got[1], got[2], got[3], got[4], scale=0.7, chunk_size=chunk,
                              initial_state=got[5], output_final_state=True, backend="native")
    ((o2 * do.float()).sum() + ((S2 * dS.float()).sum() if final else 0)).backward()
    assert_close("o", o.float(), o2, ratio=2e-6)
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dS0"), ref, got):
        if r is not None:
            assert_close(name, r.grad.float(), x.grad, ratio=2e-6)
    # without the forward's chunk-start states the backward recomputes them by one sweep: the same gradients
    f = [None if x is None else x.detach() for x in got]
    again = native.delta_backward(f[0], f[1], f[2], f[3], f[4], f[5], do.float(), dS.float() if final else None,
                                  scale=0.7, chunk_size=chunk)
    assert (again[5] is None) == (not init)
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dS0"), ref, again):
        if r is not None:
            assert_close(name + " (no starts)", r.grad.float(), x, ratio=2e-6)


@needs_native
@pytest.mark.parametrize("t", [70, 32])
@pytest.mark.parametrize("gated", [False, True])
def test_training_runs_through_the_native_backward_and_matches_pytorch(gated, t):
    """A training call (gradients needed, float32, CPU, no final state asked for) runs the native forward and
    its chunkwise backward; its gradients equal the PyTorch chunk form's autograd to float32 precision, over
    several chunks and within one (where the kernel skips every product with a zero state)."""
    from attnlab.ops import delta_engines

    q, k, v, beta, g = delta_inputs(2, t, 2, 16, 16)
    g = g if gated else None
    assert delta_engines.choose("auto", q, k, v, g, beta, None, mode="chunk", chunk_size=64,
                                needs_grad=True).engine == "native"
    grads = {}
    for backend in ("auto", "pytorch"):
        xs = [None if x is None else x.clone().requires_grad_() for x in (q, k, v, g, beta)]
        o = gated_delta_rule(*xs, backend=backend)
        assert (type(o.grad_fn).__name__ == "NativeDeltaBackward") == (backend == "auto")
        o.pow(2).sum().backward()
        grads["native" if backend == "auto" else backend] = [None if x is None else x.grad for x in xs]
    for name, a, b_ in zip(("dq", "dk", "dv", "dg", "dbeta"), grads["pytorch"], grads["native"]):
        if a is not None:
            assert_close(name, a, b_, ratio=1e-5)


@needs_native
def test_backward_states_and_blocks_from_another_call_are_refused():
    q, k, v, beta, g = delta_inputs(1, 70, 2, 8, 8)
    *_, starts, blocks = native.delta_chunk(q, k, v, g, beta, scale=0.5, chunk_size=32, keep_blocks=True)
    do = torch.randn_like(v)
    with pytest.raises(ValueError, match="starts must be delta_chunk's keep_starts output for these inputs"):
        native.delta_backward(q, k, v, g, beta, None, do, None, scale=0.5, chunk_size=16, starts=starts)
    with pytest.raises(ValueError, match="blocks must be delta_chunk's keep_blocks output for these inputs"):
        native.delta_backward(q, k, v, g, beta, None, do, None, scale=0.5, chunk_size=32, starts=starts,
                              blocks=blocks[:, :, :-1])
    got = native.delta_backward(q, k, v, g, beta, None, do, None, scale=0.5, chunk_size=32, starts=starts,
                                blocks=blocks)
    replayed = native.delta_backward(q, k, v, g, beta, None, do, None, scale=0.5, chunk_size=32)
    for a, b_ in zip(got, replayed):
        if a is not None:
            assert_close("kept vs replayed", b_, a, ratio=1e-5)


@needs_native
@pytest.mark.parametrize("t", [20, 64, 150])
def test_forward_without_the_final_state_returns_the_same_output(t):
    """``final_state=False`` skips the last state update: the same output (to the bit), no state; a caller that
    asks for the chunk-start states gets the zero first one even where the kernel does not write it."""
    q, k, v, beta, g = delta_inputs(2, t, 2, 8, 8)
    o, S, worst, starts = native.delta_chunk(q, k, v, g, beta, scale=0.5, chunk_size=64, keep_starts=True)
    o2, S2, worst2 = native.delta_chunk(q, k, v, g, beta, scale=0.5, chunk_size=64, final_state=False)
    assert S2 is None and S is not None and worst2 == worst
    assert torch.equal(o, o2)
    assert torch.count_nonzero(starts[:, 0]) == 0


@needs_native
def test_a_one_token_call_never_reads_the_uninitialised_output():
    """A chunk of one token without an initial state: its output is P V alone, written over whatever the fresh
    output buffer held (NaN bits included), however often the allocator hands back the same memory."""
    q, k, v, beta, g = delta_inputs(3, 1, 2, 8, 8)
    ref = gated_delta_rule(q, k, v, g, beta, mode="recurrent")
    for _ in range(20):
        for n in range(1, 400):  # freed memory of every small size holds NaN bits for the allocator to hand back
            torch.full((n,), float("nan"))
        got = gated_delta_rule(q, k, v, g, beta, backend="native")
        assert torch.isfinite(got).all()
        assert_close("o", ref, got, ratio=1e-5)
