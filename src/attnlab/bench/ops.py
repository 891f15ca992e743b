"""``attnlab bench ops``: each op's forms timed in one run, with peers and the machine's matmul rate.

Setting: B = 1, H = 4, D = 64, float32, the machine's threads, forward only (``--backward``: forward +
backward, FLOPs counted as 3× the forward's). The form ``chunk`` is what a default call runs: for the
delta rules on a CPU (forward, and backward in float32) and for linear attention and simple GLA (forward),
the compiled kernel of :mod:`attnlab.ops.native` where it builds (the setting records which);
``pytorch_chunk`` is the same chunk form in PyTorch ops (``backend="pytorch"``, its backward by autograd).
On the CPU each (op, form, T) runs in a fresh spawned process so that its peak resident memory
(``ru_maxrss`` above the process's baseline after building the inputs) is its own. With
``device="cuda"`` the cases run in this process, timed after a device synchronisation, peak memory is
``torch.cuda.max_memory_allocated`` above the inputs, and flash-linear-attention's Triton chunk kernel
joins as the form ``fla_chunk`` (the same FLOP count as ``chunk``).

FLOP counts (``gflops`` = counted FLOPs / median seconds), per batch row and head, chunk size C,
n = T / C chunks, head dim d:

- ``chunk``, ``pytorch_chunk`` and ``fla_naive_chunk`` (delta rules): ``n · (8 C² d + 6 C d²)`` — KKᵀ, QKᵀ, the triangular
  solve for [W, U] (C² per right-hand column, 2d columns), P·V_new (2C²d each), and W S, Q S, Kᵀ V_new
  (2Cd² each). The same useful count for both, so their rates compare work done, not work wasted.
- ``recurrent`` (delta rules): ``6 T d²`` — Sᵀk, the rank-1 update and Sᵀq per token.
- linear attention ``chunk``: ``n · (4 C² d + 4 C d²)``; ``recurrent``: ``4 T d²``.
- ``mesa_net`` (exact solve) ``chunk``: ``n · (2 C² d² + ⅔ C d³ + 6 C d² + 4 C² d)`` — every ``H_t`` of a
  chunk (``2 C² d²``), ``C`` LU solves, ``x G₀`` and the intra-chunk output, the state hand-off;
  ``recurrent``: ``T · (⅔ d³ + 6 d²)``.
- ``mesa_net_cg`` (``MESA_CG_STEPS`` conjugate-gradient steps, s) ``chunk`` and ``fla_naive_chunk``
  (flash-linear-attention's naive CG chunk form, the same steps): ``n · (4 C d² + (s + 1)(2 C d² + 4 C² d))``
  — the hand-off, then per step (and once for the output) ``x H₀`` and the intra-chunk terms;
  ``recurrent``: ``T · (6 d² + 2 s d²)``.

MesaNet's ``λ`` is 1 per head and feature.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import resource
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .paired import interleaved

B, H, D = 1, 4, 64
CHUNK = 64
OPS = ("delta_rule", "gated_delta_rule", "linear_attention", "simple_gla", "mesa_net", "mesa_net_cg")
NATIVE_OPS = ("delta_rule", "gated_delta_rule", "linear_attention", "simple_gla")  # chunk forms compiled on the CPU
MESA_CG_STEPS = 16
# "chunk" is what a default call runs: for the delta rules' forward on a CPU that is the compiled
# kernel of attnlab.ops.native where it builds; "pytorch_chunk" is the same chunk form in PyTorch ops
FORMS = ("chunk", "pytorch_chunk", "recurrent", "fla_naive_chunk")
GPU_FORMS = FORMS + ("fla_chunk",)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(call: Callable[[], object], reps: int, device: str = "cpu", warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``reps`` calls after ``warmup`` calls, each closed by a device sync.

    Two warm-up calls: the first allocates every buffer fresh, the second runs on memory the
    allocator already holds, as every later call does.
    """
    return interleaved({0: call}, reps, warmup, sync=lambda: _sync(device))[0]  # one call: rounds of one


def matmul_gflops(n: int = 1024, reps: int = 10, device: str = "cpu") -> float:
    """The float32 matmul rate (``n = 1024`` on a CPU, 8192 on a GPU by the caller's choice)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / statistics.median(timed(lambda: a @ b, reps, device)) / 1e9


def core_matmul_gflops() -> float:
    """One core's float32 matmul rate now (the 1024 product on one thread): each trained run of the ledger ran on one
    thread, and its cost is given as a share of this rate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return matmul_gflops(reps=20)
    finally:
        torch.set_num_threads(threads)


def flops(op: str, form: str, T: int) -> float:
    n, C, d = math.ceil(T / CHUNK), CHUNK, D
    s = MESA_CG_STEPS
    if op in ("linear_attention", "simple_gla"):
        per = 4 * T * d * d if form == "recurrent" else n * (4 * C * C * d + 4 * C * d * d)
    elif op == "mesa_net":
        per = T * (2 * d**3 / 3 + 6 * d * d) if form == "recurrent" else \
            n * (2 * C * C * d * d + 2 * C * d**3 / 3 + 6 * C * d * d + 4 * C * C * d)
    elif op == "mesa_net_cg":
        per = T * (6 * d * d + 2 * s * d * d) if form == "recurrent" else \
            n * (4 * C * d * d + (s + 1) * (2 * C * d * d + 4 * C * C * d))
    else:
        per = 6 * T * d * d if form == "recurrent" else n * (8 * C * C * d + 6 * C * d * d)
    return float(B * H * per)


def _inputs(T: int, seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, D, generator=g)
    k = F.normalize(torch.randn(B, T, H, D, generator=g), dim=-1)
    v = torch.randn(B, T, H, D, generator=g)
    beta = torch.rand(B, T, H, generator=g)
    gate = F.logsigmoid(torch.randn(B, T, H, generator=g) + 4)
    return tuple(x.to(device) for x in (q, k, v, beta, gate))


def _fla_naive(op: str):
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("fla")
    if spec is None:
        raise ModuleNotFoundError("flash-linear-attention is not installed (pip install -e '.[dev]')")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "ops" / op / "naive.py"
    ms = importlib.util.spec_from_file_location(f"_fla_naive_{op}", path)
    mod = importlib.util.module_from_spec(ms)
    ms.loader.exec_module(mod)
    return mod


def make_call(op: str, form: str, T: int, backward: bool = False, device: str = "cpu") -> Callable[[], object] | None:
    """The zero-argument function to time, or None when the form does not exist for the op."""
    from ..checks import finite_checks
    from ..ops import delta_rule, gated_delta_rule, linear_attention, mesa_net, simple_gla

    q, k, v, beta, gate = _inputs(T, device=device)
    # the chunk row is attnlab's default call on the CPU (the native kernel where it builds) and the
    # PyTorch chunk form on a GPU, where fla's kernel has its own row
    backend = "auto" if device == "cpu" else "pytorch"
    if form == "pytorch_chunk":
        # elsewhere, and for linear attention's gradients (no native backward), it is the chunk row itself
        if op not in NATIVE_OPS or (backward and op not in ("delta_rule", "gated_delta_rule")):
            return None
        form, backend = "chunk", "pytorch"
    if form == "fla_chunk":
        from ..ops.fla_kernels import fla_unavailable_reason

        if op not in ("delta_rule", "gated_delta_rule") or fla_unavailable_reason(q, "chunk", needs_grad=backward):
            return None
        form, backend = "chunk", "fla"
    lamb = torch.ones(H, D, device=device)
    if form == "fla_naive_chunk":
        if op in ("linear_attention", "simple_gla", "mesa_net") or backward:  # fla's naive chunk forms write in place
            return None
        if op == "mesa_net_cg":
            mod, pad = _fla_naive("mesa_net"), (-T) % CHUNK
            padded = [F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v)]
            g_, b_ = (F.pad(x, (0, 0, 0, pad)) for x in (gate, beta))
            return lambda: mod.naive_mesa_net_CG(*padded, g_, lamb, b_, CHUNK, max_CG_iteration=MESA_CG_STEPS)[0]
        if op == "delta_rule":
            mod, pad = _fla_naive("delta_rule"), (-T) % CHUNK
            tr = [F.pad(x.transpose(1, 2), (0, 0, 0, pad)).contiguous() for x in (q, k, v)]
            b_ = F.pad(beta.transpose(1, 2), (0, pad)).contiguous()
            return lambda: mod.delta_rule_chunkwise(*tr, b_, chunk_size=CHUNK)[0]
        mod = _fla_naive("gated_delta_rule")
        return lambda: mod.naive_chunk_gated_delta_rule(q, k, v, gate, beta, chunk_size=CHUNK)[0]
    if backward:
        for x in (q, k, v, beta):
            x.requires_grad_(True)

    def call():
        with finite_checks(False), torch.set_grad_enabled(backward):  # time the math, not the input scan
            if op == "delta_rule":
                o = delta_rule(q, k, v, beta, mode=form, chunk_size=CHUNK, backend=backend)
            elif op == "gated_delta_rule":
                o = gated_delta_rule(q, k, v, gate, beta, mode=form, chunk_size=CHUNK, backend=backend)
            elif op.startswith("mesa_net"):
                cg = dict(solver="cg", cg_steps=MESA_CG_STEPS) if op == "mesa_net_cg" else {}
                o = mesa_net(q, k, v, gate, beta, lamb, mode=form, chunk_size=CHUNK, **cg)
            elif op == "simple_gla":
                o = simple_gla(q, k, v, gate, mode=form, chunk_size=CHUNK, backend=backend)
            else:
                o = linear_attention(q, k, v, mode=form, chunk_size=CHUNK, backend=backend)
            if backward:
                o.sum().backward()
        return o

    return call


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks instead of returning them to the OS (``mallopt``), for every form alike.

    Each call of a chunk form allocates tens of MB of fresh tensors; by default glibc unmaps large
    blocks on free, so every call pays page faults on new pages again, which dominates the spread of
    small timings. Returns False where this is not glibc (the timings then include those faults).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        # 32 MiB is glibc's largest mmap threshold on 64-bit systems (larger values are refused)
        mmap_ok = libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        return bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(mmap_ok)
    except (OSError, AttributeError):
        return False


def _measure(op, form, T, reps, backward, threads, queue):
    torch.set_num_threads(threads)
    keep_freed_memory()
    call = make_call(op, form, T, backward)
    if call is None:
        queue.put(None)
        return
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ts = timed(call, reps)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024  # KiB → MiB on Linux
    queue.put({"median_s": statistics.median(ts), "peak_mem_mb": max(peak, 0.0)})


def _measure_cuda(op, form, T, reps, backward) -> dict | None:
    torch.cuda.empty_cache()
    call = make_call(op, form, T, backward, device="cuda")
    if call is None:
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ts = timed(call, reps, "cuda")
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return {"median_s": statistics.median(ts), "peak_mem_mb": max(peak, 0.0)}


def run_case(op: str, form: str, T: int, reps: int, backward: bool = False, device: str = "cpu") -> dict | None:
    if device == "cuda":
        res = _measure_cuda(op, form, T, reps, backward)
    else:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_measure, args=(op, form, T, reps, backward, torch.get_num_threads(), q))
        p.start()
        res = q.get()
        p.join()
    if res is None:
        return None
    res.update(op=op, form=form, T=T, gflops=flops(op, form, T) * (3 if backward else 1) / res["median_s"] / 1e9)
    return {k: res[k] for k in ("op", "form", "T", "median_s", "gflops", "peak_mem_mb")}


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU, {torch.get_num_threads()} threads"


def delta_chunk_engine(device: str) -> str:
    """What the delta rules' ``chunk`` rows ran on, forward and backward: the native kernel, or PyTorch and why."""
    from ..ops import native

    return native.engine() if device == "cpu" else "pytorch"


def run_bench(ops=OPS, Ts=(1024, 4096, 16384), forms=None, reps: int = 5, backward: bool = False,
              progress: Callable[[str], None] | None = None, device: str = "cpu") -> dict:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device")
    forms = forms or (GPU_FORMS if device == "cuda" else FORMS)
    rows = []
    mm = matmul_gflops(8192 if device == "cuda" else 1024, device=device)
    for op in ops:
        for T in Ts:
            for form in forms:
                r_reps = max(1, reps // 2) if form == "recurrent" else reps
                if progress:
                    progress(f"{op} {form} T={T}")
                r = run_case(op, form, T, r_reps, backward, device)
                if r is not None:
                    rows.append(r)
    return {"matmul_gflops": mm, "setting": {"B": B, "H": H, "D": D, "chunk": CHUNK, "dtype": "float32",
                                             "threads": torch.get_num_threads(), "backward": backward,
                                             "device": device_name(device),
                                             "delta_chunk": delta_chunk_engine(device)},
            "rows": rows}


def markdown(result: dict) -> str:
    s = result["setting"]
    where = s.get("device", f"{s['threads']} threads")
    lines = [f"Setting: B={s['B']}, H={s['H']}, D={s['D']}, chunk {s['chunk']}, {s['dtype']}, {where}, "
             f"{'forward + backward' if s['backward'] else 'forward'}; float32 matmul rate measured in the same run: "
             f"**{result['matmul_gflops']:.1f} GFLOP/s**. Delta-rule `chunk` rows ran on: "
             f"{s.get('delta_chunk', 'pytorch')}.", "",
             "| op | T | form | median (ms) | GFLOP/s | % of matmul | peak mem (MB) | speed-up of chunk |",
             "|---|---|---|---|---|---|---|---|"]
    by = {(r["op"], r["T"], r["form"]): r for r in result["rows"]}
    for r in result["rows"]:
        ch = by.get((r["op"], r["T"], "chunk"))
        sp = f"{r['median_s'] / ch['median_s']:.1f}×" if ch and r["form"] != "chunk" else ""
        lines.append(f"| {r['op']} | {r['T']} | {r['form']} | {r['median_s'] * 1e3:.2f} | {r['gflops']:.1f} | "
                     f"{100 * r['gflops'] / result['matmul_gflops']:.0f}% | {r['peak_mem_mb']:.0f} | {sp} |")
    return "\n".join(lines)
