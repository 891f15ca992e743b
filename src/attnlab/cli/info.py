"""``attnlab info``: the software, machine and compute engines this process would use."""

from __future__ import annotations

import json

import typer


def info_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Versions, threads, GPU, and which engine runs the delta rules (native CPU kernel, PyTorch, fla)."""
    import torch

    from ..claims.provenance import environment
    from ..ops import native
    from ..ops.fla_kernels import fla_unavailable_reason

    env = dict(environment())
    path = native.kernel_path()
    env["native_kernel"] = str(path) if path else None
    probe = torch.zeros(1, device="cuda" if torch.cuda.is_available() else "cpu")
    env["fla_backend"] = fla_unavailable_reason(probe, "chunk") or "available"
    if as_json:
        typer.echo(json.dumps(env))
        return
    width = max(map(len, env))
    for k, v in env.items():
        typer.echo(f"{k:<{width}}  {v}")
