"""Test helpers: a ratio-based closeness check, flash-linear-attention's naive references, a folder lock
held by another process, and a page rendered by headless chromium."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F


def rel_rms(ref: torch.Tensor, out: torch.Tensor) -> float:
    """Relative RMS error ``‖out − ref‖ / ‖ref‖`` (the ratio flash-linear-attention's tests use)."""
    ref, out = ref.detach().double(), out.detach().double()
    return ((out - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float = 1e-5, atol: float = 1e-6):
    """Pass when either the relative RMS error is below ``ratio`` or the max abs error below ``atol``."""
    assert ref.shape == out.shape, f"{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out).all(), f"{name}: non-finite values"
    err = (out.detach().double() - ref.detach().double()).abs().max().item()
    r = rel_rms(ref, out)
    assert r <= ratio or err <= atol, f"{name}: rel rms {r:.3g} > {ratio:g} and max abs {err:.3g} > {atol:g}"


def fla_naive(op: str):
    """Load ``fla/ops/<op>/naive.py`` from the installed flash-linear-attention by file path.

    ``import fla.ops`` pulls in triton; the naive files need only torch and einops.
    """
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("flash-linear-attention is a test dependency: pip install -e '.[dev]'")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "ops" / op / "naive.py"
    name = f"_fla_naive_{op.replace('/', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def grads(loss_fn, *tensors):
    """Gradients of ``loss_fn(*tensors)`` w.r.t. fresh leaf copies of ``tensors``."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = loss_fn(*leaves)
    out.backward()
    return out.detach(), [t.grad for t in leaves]


def delta_inputs(b, t, h, dk, dv=None, *, seed=0, gen=None, g_shift=2.0):
    """``q, k, v, β, g`` for the delta-rule family: unit-norm keys (a contractive recurrence),
    ``β ∈ (0, 1)``, log-decay ``g = logsigmoid(N + g_shift) ≤ 0``. Pass ``gen`` to keep drawing from it."""
    gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, dk, generator=gen)
    k = F.normalize(torch.randn(b, t, h, dk, generator=gen), dim=-1)
    v = torch.randn(b, t, h, dk if dv is None else dv, generator=gen)
    beta = torch.rand(b, t, h, generator=gen)
    g = F.logsigmoid(torch.randn(b, t, h, generator=gen) + g_shift)
    return q, k, v, beta, g


@contextlib.contextmanager
def lock_held_elsewhere(folder: pathlib.Path):
    """A second process holding ``folder``'s writer lock (``attnlab.train.ownership.locked``); yields its PID and
    kills it on exit, so the lock dies with it as a killed writer's would."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from attnlab.train.ownership import locked\n"
        f"with locked(Path({str(folder)!r})):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


needs_chromium = pytest.mark.skipif(not chromium() and not os.environ.get("ATTNLAB_REQUIRE_BROWSER"),
                                    reason="Debian's chromium is not installed (make test installs it where it can)")


def page_title_after_load(page: pathlib.Path, probe: str, profile: pathlib.Path) -> str:
    """Load ``page`` in headless chromium with the script ``probe`` appended (it runs after the page's own
    scripts and writes what it found into ``document.title``); the title after loading."""
    assert chromium(), "ATTNLAB_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)"
    probed = page.with_name(page.stem + "-probed.html")
    probed.write_text(page.read_text().replace("</body>", f"<script>{probe}</script></body>"))
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r"<title>(.*?)</title>", out.stdout, re.S)
    assert m, out.stderr[-2000:]
    return m.group(1)
