"""Compiled CPU kernels (``csrc/``): the chunkwise (gated) delta rule forward and backward, decayed linear
attention's chunk forward, SwiGLU (:mod:`attnlab.ops.swiglu`), the row normalisations (RMSNorm, and the L2
norm of SiLU features; :mod:`attnlab.ops.norm`) and the short causal convolution (:mod:`attnlab.ops.conv`).

On two CPU cores the PyTorch chunk form spends most of its time between small products: Python
dispatch, a 64-step state pass of ``[b·h, 64, 64]`` matmuls that BLAS runs at a fraction of its rate,
and a blocked triangular inverse made of many tiny matmuls (``docs/benchmarks.md``). The C kernel
runs the same WY/UT algorithm with each (batch row, head) on one thread, its chunks in order and in
cache, the products through the BLAS that torch itself links, and the triangular structure used
(lower triangles by halves, forward substitution instead of an inverse).

The library is built on first use with the system C compiler (``$CC`` or ``cc``; well under a second) into
``$ATTNLAB_CACHE_DIR`` or ``~/.cache/attnlab/native``, keyed by the sources, the flags and the
machine, and written atomically so that concurrent processes can share it. Float32 (or bfloat16
computed in float32) on the CPU: it is the ``native`` engine of :mod:`attnlab.ops.delta_engines`,
which ``backend="auto"`` (the default) picks for those calls when it is available. With gradients
it trains through the compiled chunkwise backward (float32 only). ``backend="native"`` requires
it and ``backend="pytorch"`` never uses it. ``ATTNLAB_NATIVE=0`` turns
it off everywhere. Where it cannot be
built or loaded (no compiler, a torch without an exported ``sgemm_``, not Linux, or no OpenMP in
torch), :func:`unavailable_reason` says why and everything runs in PyTorch.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pathlib
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

import torch

from .chunking import chunk_length

CSRC = pathlib.Path(__file__).with_name("csrc")
# one library: the delta rule's and decayed linear attention's chunk forms, SwiGLU (attnlab.ops.swiglu), the
# row normalisations (attnlab.ops.norm) and the short convolution (attnlab.ops.conv)
SOURCES = (CSRC / "delta_chunk.c", CSRC / "swiglu.c", CSRC / "norms.c", CSRC / "conv.c")
HEADERS = (CSRC / "vmath.h",)
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")
# -march=native first; a compiler that refuses it gets the portable build
ARCH_FLAGS = (("-march=native",), ())
_lock = threading.Lock()
_state: dict = {}


def untrusted(path: pathlib.Path) -> str | None:
    """Why a cache folder or library at ``path`` must not be trusted (None when it may): a library
    loaded from it runs as this user, so it must be ours and writable by no one else."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"{path} cannot be inspected ({e.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if st.st_uid != os.getuid():
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"{path} is writable by other users"
    return None


def _private(path: pathlib.Path) -> pathlib.Path | None:
    """``path`` created (mode 0700) or found, if it may be trusted; None otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return None if untrusted(path) or not os.access(path, os.W_OK) else path


def cache_dir() -> pathlib.Path:
    """Where the kernel is built and cached: ``$ATTNLAB_CACHE_DIR/native`` if set, else the user cache,
    else a per-user temp folder (a read-only home on a CI runner). A folder that belongs to someone
    else or that others can write is never used: then a fresh private folder (``mkdtemp``) is."""
    root = os.environ.get("ATTNLAB_CACHE_DIR")
    if root:
        candidates = [pathlib.Path(root) / "native"]
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        candidates = [pathlib.Path(base) / "attnlab" / "native",
                      pathlib.Path(tempfile.gettempdir()) / f"attnlab-native-{os.getuid()}"]
    for c in candidates:
        if _private(c) is not None:
            return c
    return pathlib.Path(tempfile.mkdtemp(prefix="attnlab-native-"))


def _blas_sgemm() -> int | str:
    """Address of the Fortran ``sgemm_`` that torch links, or why there is none."""
    try:
        lib = ctypes.CDLL(str(pathlib.Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))  # Linux only
        return ctypes.cast(lib.sgemm_, ctypes.c_void_p).value
    except (OSError, AttributeError) as e:
        return f"torch exports no BLAS sgemm_ here ({type(e).__name__}: {e})"


def library_name(cc: str, flags: tuple[str, ...]) -> str:
    """The cached library's file name: a hash of the sources, the compiler, the flags and the machine."""
    build = " ".join((cc, *flags, platform.machine(), platform.node())).encode()
    key = hashlib.sha256(b"".join(p.read_bytes() for p in (*SOURCES, *HEADERS)) + build)
    return f"attnlab_kernels-{key.hexdigest()[:16]}.so"


def _compile(cc: str) -> pathlib.Path | str:
    folder = cache_dir()
    errors = []
    for arch in ARCH_FLAGS:
        flags = FLAGS + arch
        out = folder / library_name(cc, flags)
        if out.exists() and untrusted(out) is None:
            return out
        if out.exists():  # planted or tampered with: build a fresh copy where no one else can write
            folder = pathlib.Path(tempfile.mkdtemp(prefix="attnlab-native-"))
            out = folder / out.name
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            r = subprocess.run([cc, *flags, "-o", tmp, *map(str, SOURCES), "-lm"], capture_output=True, text=True,
                               timeout=120)
            if r.returncode == 0:
                os.chmod(tmp, 0o700)  # ours alone, whatever the umask: a library others could write is not loaded
                os.replace(tmp, out)  # atomic: a concurrent build writes the same bytes
                return out
            errors.append(r.stderr.strip().splitlines()[-1:] or [f"exit {r.returncode}"])
        except (OSError, subprocess.SubprocessError) as e:
            errors.append([str(e)])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return f"the C compiler {cc!r} could not build {', '.join(p.name for p in SOURCES)}: {errors[-1][0]}"


def _load() -> dict:
    """Build (once per process) and load the kernel; ``{"fn": …, "sgemm": …}`` or ``{"why": …}``."""
    if os.environ.get("ATTNLAB_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return {"why": "the native kernel is turned off (ATTNLAB_NATIVE=0)"}
    if not sys.platform.startswith("linux"):
        return {"why": f"the native kernel is built on Linux only, this is {sys.platform}"}
    if "OpenMP" not in torch.__config__.parallel_info():
        return {"why": "this torch does not use OpenMP, which the native kernel shares with it"}
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return {"why": "no C compiler (cc, gcc or $CC) to build the native kernel"}
    sgemm = _blas_sgemm()
    if isinstance(sgemm, str):
        return {"why": sgemm}
    try:
        path = _compile(cc)
        if isinstance(path, str):
            return {"why": path}
        lib = ctypes.CDLL(str(path))
        fn = lib.attnlab_delta_chunk_fwd
    except (OSError, AttributeError) as e:  # an unwritable cache, a library that does not load
        return {"why": f"the native kernel could not be built or loaded ({type(e).__name__}: {e})"}
    p, i = ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [p] * 9 + [i] * 8 + [ctypes.c_float, i, p, ctypes.POINTER(ctypes.c_float)]
    fn.restype = i
    cbwd = lib.attnlab_delta_chunk_bwd
    cbwd.argtypes = [p] * 15 + [i] * 7 + [ctypes.c_float, i, p]
    cbwd.restype = i
    dfn = lib.attnlab_decay_chunk_fwd
    dfn.argtypes = [p] * 6 + [i] * 7 + [ctypes.c_float, i, p]
    dfn.restype = i
    swf, swb = lib.attnlab_swiglu_fwd, lib.attnlab_swiglu_bwd
    swf.argtypes, swb.argtypes = [p, p, ctypes.c_long, i, i], [p, p, p, ctypes.c_long, i, i]
    swf.restype = swb.restype = None
    rows = {"rms_norm_fwd": ([p] * 4 + [ctypes.c_long, i, ctypes.c_float, i], None),
            "rms_norm_bwd": ([p] * 6 + [ctypes.c_long, i, i], i),
            "silu_l2_fwd": ([p] * 3 + [ctypes.c_long, i, ctypes.c_float, i], None),
            "silu_l2_bwd": ([p] * 4 + [ctypes.c_long, i, ctypes.c_float, i], None),
            "short_conv_fwd": ([p] * 3 + [i] * 6, i),
            "short_conv_bwd": ([p] * 5 + [i] * 6, i)}
    found = {}
    for name, (args, res) in rows.items():
        found[name] = getattr(lib, f"attnlab_{name}")
        found[name].argtypes, found[name].restype = args, res
    return {"fn": fn, "bwd": cbwd, "decay": dfn, "swiglu_fwd": swf, "swiglu_bwd": swb, **found, "sgemm": sgemm,
            "path": path}


def _kernel() -> dict:
    with _lock:
        if not _state:
            _state.update(_load())
        return _state


@contextlib.contextmanager
def disabled(why: str = "the compiled kernels are turned off for a comparison"):
    """Within the block every call runs as on a machine without the compiled kernels (the PyTorch forms), in this
    process: what ``attnlab bench train --pytorch-ops`` compares them with."""
    before = dict(_kernel())
    with _lock:
        _state.clear()
        _state["why"] = why
    try:
        yield
    finally:
        with _lock:
            _state.clear()
            _state.update(before)


def kernel_path() -> pathlib.Path | None:
    """The compiled library this process loaded (None when the kernel is unavailable)."""
    return _kernel().get("path")


def unavailable_reason() -> str | None:
    """Why the native kernel cannot run in this process (None when it can); builds it on first call."""
    return _kernel().get("why")


def engine() -> str:
    """What a float32 delta-rule chunk call on the CPU runs on here, with or without gradients:
    ``"native"``, or ``"pytorch (why)"``.

    Benchmarks and claim provenance record it: float32 results of the two differ in the last digits.
    """
    why = unavailable_reason()
    return "native" if why is None else f"pytorch ({why})"


def runs(x: torch.Tensor) -> bool:
    """Whether a row-wise kernel (SwiGLU, the norms, the short convolution) runs ``x`` here: float32 on the CPU,
    where the compiled kernels are available (elsewhere the PyTorch ops do)."""
    return x.dtype == torch.float32 and x.device.type == "cpu" and unavailable_reason() is None


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float32).contiguous()


def saved_size(chunk_size: int, dk: int, dv: int) -> int:
    """Floats the forward keeps per chunk for the backward (``keep_blocks``): K Kᵀ ⊙ E, P, X = [W | U], V_new."""
    return chunk_size * (2 * chunk_size + dk + 2 * dv)


def delta_chunk(q, k, v, g, beta, *, scale: float, chunk_size: int, initial_state=None, keep_starts: bool = False,
                keep_blocks: bool = False, final_state: bool = True):
    """``(o [b, t, h, d_v] float32, S [b, h, d_k, d_v] float32, max β‖k‖²)`` — the chunk form in C; with
    ``keep_starts``, a fourth item: the state entering every chunk ``[b·h, n, d_k, d_v]``, and with
    ``keep_blocks`` a fifth: each chunk's blocks ``[b·h, n, saved_size]``, which spare the backward its replay
    of every chunk's forward (both for :func:`delta_backward`; with ``keep_blocks`` alone, the first chunk's
    entry of a call without an initial state is not written, since the backward does not read a zero state).
    ``final_state=False``: ``S`` is None, and the last chunk's state update (in a sequence no longer than a
    chunk, half of the forward's arithmetic) is skipped.

    Inputs as for :func:`attnlab.ops.gated_delta_rule` (already checked); call only where
    :func:`attnlab.ops.delta_engines.choose` picked the native engine.
    """
    kern = _kernel()
    b, t, h, dk = q.shape
    chunk_size = chunk_length(chunk_size, t)
    dv = v.shape[-1]
    q, k, v, beta = (_f32(x) for x in (q, k, v, beta))
    g = None if g is None else _f32(g)
    o = torch.empty(b, t, h, dv)
    n = -(-t // chunk_size)
    if initial_state is not None:
        S = _f32(initial_state).reshape(b * h, dk, dv).clone()
    else:  # a state no chunk reads or updates (one chunk, no final state) need not be zeroed
        S = torch.zeros(b * h, dk, dv) if final_state or n > 1 else torch.empty(b * h, dk, dv)
    worst = ctypes.c_float(0.0)
    threads = max(1, min(torch.get_num_threads(), b * h))
    starts = torch.empty(b * h, n, dk, dv) if keep_starts or keep_blocks else None
    blocks = torch.empty(b * h, n, saved_size(chunk_size, dk, dv)) if keep_blocks else None
    ptr = lambda x: None if x is None else x.data_ptr()  # noqa: E731
    rc = kern["fn"](q.data_ptr(), k.data_ptr(), v.data_ptr(), beta.data_ptr(), ptr(g), o.data_ptr(), S.data_ptr(),
                    ptr(starts), ptr(blocks), b, t, h, dk, dv, chunk_size, int(initial_state is None), int(final_state),
                    scale, threads, kern["sgemm"], ctypes.byref(worst))
    if rc:
        raise MemoryError("native delta-rule kernel: a thread could not allocate its chunk workspace")
    if keep_starts and initial_state is None:
        starts[:, 0] = 0.0
    out = o, S.reshape(b, h, dk, dv) if final_state else None, worst.value
    if keep_blocks:
        return (*out, starts, blocks)
    return (*out, starts) if keep_starts else out


def _check_kept(name: str, x: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    """The C code reads exactly ``shape`` floats of what the forward kept: a tensor of another call is a bad read."""
    if x is not None and tuple(x.shape) != shape:
        raise ValueError(f"{name} must be delta_chunk's keep_{name} output for these inputs, {shape}, got "
                         f"{tuple(x.shape)}")


def delta_backward(q, k, v, g, beta, initial_state, do, dS, *, scale: float, chunk_size: int, starts=None,
                   blocks=None):
    """Gradients of the (gated) delta rule, ``(dq, dk, dv, dg, dβ, dS₀)`` (``dg`` None without a gate, ``dS₀``
    None without an initial state), chunkwise in C from the forward's inputs (float32, CPU; see
    ``csrc/delta_chunk.c``). ``do`` is the output's gradient, ``dS`` the final state's (None: unused, and its
    products are skipped, as are those with the zero state that starts a sequence without one); ``starts``, the
    forward's chunk-start states (:func:`delta_chunk` with ``keep_starts``; recomputed when not given), saves one
    pass over the sequence; ``blocks`` (``keep_blocks``, with the same call's ``starts``) the replay of each chunk's
    forward."""
    kern = _kernel()
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    chunk_size = chunk_length(chunk_size, t)
    q, k, v, beta, do = (_f32(x) for x in (q, k, v, beta, do))
    g = None if g is None else _f32(g)
    S0 = None if initial_state is None else _f32(initial_state)
    dSf = None if dS is None else _f32(dS)
    dq, dk_, dv_ = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dbeta = torch.empty_like(beta)
    dg = None if g is None else torch.empty_like(g)
    dS0 = None if S0 is None else torch.empty(b, h, dk, dv)
    ptr = lambda x: None if x is None else x.data_ptr()  # noqa: E731
    threads = max(1, min(torch.get_num_threads(), b * h))
    if starts is None:
        starts = delta_chunk(q, k, v, g, beta, scale=scale, chunk_size=chunk_size, initial_state=S0,
                             keep_starts=True, final_state=False)[3]
    n = -(-t // chunk_size)
    _check_kept("starts", starts, (b * h, n, dk, dv))
    _check_kept("blocks", blocks, (b * h, n, saved_size(chunk_size, dk, dv)))
    rc = kern["bwd"](ptr(q), ptr(k), ptr(v), ptr(beta), ptr(g), ptr(starts.contiguous()), ptr(blocks), ptr(do),
                     ptr(dSf), ptr(dq), ptr(dk_), ptr(dv_), ptr(dbeta), ptr(dg), ptr(dS0), b, t, h, dk, dv,
                     chunk_size, int(S0 is None), scale, threads, kern["sgemm"])
    if rc:
        raise MemoryError("native delta-rule backward: a thread could not allocate its workspace")
    return dq, dk_, dv_, dg, dbeta, dS0


def decay_chunk(q, k, v, g, *, scale: float, chunk_size: int, initial_state=None):
    """``(o [b, t, h, d_v], S [b, h, d_k, d_v])``, float32: decayed linear attention's chunk form in C (forward
    only; ``g`` None for plain linear attention). Inputs as for :func:`attnlab.ops.decay_linear_attention`
    (already checked); call only where :func:`attnlab.ops.decay.native_why_not` found nothing against it."""
    kern = _kernel()
    b, t, h, dk = q.shape
    dv = v.shape[-1]
    chunk_size = chunk_length(chunk_size, t)
    q, k, v = (_f32(x) for x in (q, k, v))
    g = None if g is None else _f32(g)
    o = torch.empty(b, t, h, dv)
    S = torch.zeros(b * h, dk, dv) if initial_state is None else _f32(initial_state).reshape(b * h, dk, dv).clone()
    threads = max(1, min(torch.get_num_threads(), b * h))
    rc = kern["decay"](q.data_ptr(), k.data_ptr(), v.data_ptr(), None if g is None else g.data_ptr(), o.data_ptr(),
                       S.data_ptr(), b, t, h, dk, dv, chunk_size, int(initial_state is None), scale, threads,
                       kern["sgemm"])
    if rc:
        raise MemoryError("native decayed linear attention: a thread could not allocate its chunk workspace")
    return o, S.reshape(b, h, dk, dv)


def _rows_of(x: torch.Tensor) -> tuple[int, int, int]:
    """``(rows, last dim, threads)`` of a row-wise kernel's call."""
    d = x.shape[-1]
    rows = x.numel() // max(1, d)
    return rows, d, max(1, min(torch.get_num_threads(), rows))


def swiglu(u: torch.Tensor) -> torch.Tensor:
    """``silu(a) ⊙ b`` for ``u = [a | b]`` (float32, CPU, contiguous, an even last dim; already checked), in C."""
    rows, two_h, threads = _rows_of(u)
    h = two_h // 2
    y = u.new_empty(*u.shape[:-1], h)
    _kernel()["swiglu_fwd"](u.data_ptr(), y.data_ptr(), rows, h, threads)
    return y


def swiglu_backward(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The gradient of :func:`swiglu` at ``u`` for the output's gradient ``g`` (both contiguous float32), in C."""
    rows, two_h, threads = _rows_of(u)
    h = two_h // 2
    du = torch.empty_like(u)
    _kernel()["swiglu_bwd"](u.data_ptr(), g.data_ptr(), du.data_ptr(), rows, h, threads)
    return du


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm of ``x [..., d]`` scaled by ``weight [d]`` (contiguous float32), in C: ``(y, 1/rms per row)``."""
    rows, d, threads = _rows_of(x)
    y, inv = torch.empty_like(x), x.new_empty(rows)
    _kernel()["rms_norm_fwd"](x.data_ptr(), weight.data_ptr(), y.data_ptr(), inv.data_ptr(), rows, d, eps, threads)
    return y, inv


def rms_norm_backward(x, weight, inv, g, weight_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The gradients of :func:`rms_norm` (the weight's only if ``weight_grad``), in C."""
    rows, d, threads = _rows_of(x)
    gx, gw = torch.empty_like(x), (x.new_empty(d) if weight_grad else None)
    rc = _kernel()["rms_norm_bwd"](x.data_ptr(), weight.data_ptr(), inv.data_ptr(), g.data_ptr(), gx.data_ptr(),
                                   None if gw is None else gw.data_ptr(), rows, d, threads)
    if rc:
        raise MemoryError("native RMSNorm backward: the per-thread sums could not be allocated")
    return gx, gw


def silu_l2(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``silu(x) / max(‖silu(x)‖, eps)`` over the last dim (contiguous float32), in C: ``(y, ‖silu(x)‖ per row)``."""
    rows, d, threads = _rows_of(x)
    y, nrm = torch.empty_like(x), x.new_empty(rows)
    _kernel()["silu_l2_fwd"](x.data_ptr(), y.data_ptr(), nrm.data_ptr(), rows, d, eps, threads)
    return y, nrm


def silu_l2_backward(x, nrm, g, eps: float) -> torch.Tensor:
    """The gradient of :func:`silu_l2`, in C."""
    rows, d, threads = _rows_of(x)
    gx = torch.empty_like(x)
    _kernel()["silu_l2_bwd"](x.data_ptr(), nrm.data_ptr(), g.data_ptr(), gx.data_ptr(), rows, d, eps, threads)
    return gx


def short_conv(x: torch.Tensor, weight: torch.Tensor, silu: bool) -> torch.Tensor:
    """The causal depthwise conv of ``x [b, t, c]`` by ``weight [c, K]`` (contiguous float32, zeros before the
    start), then SiLU if ``silu``, in C."""
    b, t, c = x.shape
    y = torch.empty_like(x)
    rc = _kernel()["short_conv_fwd"](x.data_ptr(), weight.data_ptr(), y.data_ptr(), b, t, c, weight.shape[1],
                                     int(silu), max(1, torch.get_num_threads()))
    if rc:
        raise MemoryError("native short convolution: its transposed weight could not be allocated")
    return y


def short_conv_backward(x, weight, g, silu: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients ``(dx, dweight)`` of :func:`short_conv` for the output's gradient ``g`` (contiguous float32)."""
    b, t, c = x.shape
    dx, dw = torch.empty_like(x), torch.empty_like(weight)
    rc = _kernel()["short_conv_bwd"](x.data_ptr(), weight.data_ptr(), g.data_ptr(), dx.data_ptr(), dw.data_ptr(),
                                     b, t, c, weight.shape[1], int(silu), max(1, torch.get_num_threads()))
    if rc:
        raise MemoryError("native short convolution backward: its buffers could not be allocated")
    return dx, dw


class NativeDelta(torch.autograd.Function):
    """The native forward (:func:`delta_chunk`) with the native backward (:func:`delta_backward`):
    float32 CPU training through the compiled kernels. Returns ``(o, S, max β‖k‖²)`` (``S`` None unless
    ``final_state``)."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, initial_state, scale, chunk_size, final_state=True):
        ctx.set_materialize_grads(False)  # an unused final state's gradient stays None: the kernel skips it
        o, S, worst, starts, blocks = delta_chunk(q, k, v, g, beta, scale=scale, chunk_size=chunk_size,
                                                  initial_state=initial_state, keep_blocks=True,
                                                  final_state=final_state)
        ctx.save_for_backward(q, k, v, g, beta, initial_state, starts, blocks)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        worst = torch.tensor(worst)
        ctx.mark_non_differentiable(worst)
        return o, S, worst

    @staticmethod
    def backward(ctx, do, dS, _dworst):
        q, k, v, g, beta, initial_state, starts, blocks = ctx.saved_tensors
        if do is None:  # only the final state is used
            do = torch.zeros(v.shape, dtype=torch.float32)
        dq, dk, dv, dg, dbeta, dS0 = delta_backward(q, k, v, g, beta, initial_state, do, dS, scale=ctx.scale,
                                                    chunk_size=ctx.chunk_size, starts=starts, blocks=blocks)
        return dq, dk, dv, dg, dbeta, dS0, None, None, None
