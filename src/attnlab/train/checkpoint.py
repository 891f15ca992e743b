"""Atomic checkpoints: safetensors for weights and optimiser tensors, JSON for the rest, with hashes.

A checkpoint is a folder ``ckpt-<step>`` written under a temporary name and renamed into place, so a
crash never leaves half a checkpoint under the real name (and the temporary folders a killed run
left behind are removed by the next save). ``meta.json`` records the SHA-256 of both tensor files
and of its own content; loading verifies all three (and that the step matches the folder's name)
and falls back to the previous good checkpoint (with a warning naming what was wrong) when the
newest is truncated, corrupted or edited.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

KEEP = 2


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _opt_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _meta_digest(meta: dict) -> str:
    """SHA-256 of everything in ``meta.json`` but the digest itself (canonical JSON)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save(run_dir: Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, extra: dict) -> Path:
    run_dir = Path(run_dir)
    final = run_dir / f"ckpt-{step:08d}"
    for stale in run_dir.glob(".tmp-ckpt-*"):  # left by a killed writer: never renamed into place
        shutil.rmtree(stale, ignore_errors=True)
    tmp = run_dir / f".tmp-ckpt-{step:08d}-{os.getpid()}"
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    ot, oj = _opt_tensors(opt)
    save_file(ot, str(tmp / "optim.safetensors"))
    meta = {"step": step, "optim": oj, "extra": extra,
            "sha256": {n: _sha(tmp / n) for n in ("model.safetensors", "optim.safetensors")}}
    meta["meta_sha256"] = _meta_digest(json.loads(json.dumps(meta)))  # as it will read back
    with open(tmp / "meta.json", "w") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(run_dir.glob("ckpt-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _verify(ck: Path) -> dict:
    meta = json.loads((ck / "meta.json").read_text())
    if "meta_sha256" not in meta:  # written by an earlier attnlab: its tensors are still checked below
        warnings.warn(f"{ck}/meta.json carries no digest of its own (an earlier attnlab wrote it)", RuntimeWarning,
                      stacklevel=3)
    elif meta["meta_sha256"] != _meta_digest(meta):
        raise ValueError("meta.json does not match its SHA-256 (edited or corrupted)")
    if ck.name != f"ckpt-{meta['step']:08d}":
        raise ValueError(f"meta.json says step {meta['step']}, the folder's name another")
    for name, digest in meta["sha256"].items():
        if _sha(ck / name) != digest:
            raise ValueError(f"{name} does not match its SHA-256 (truncated or corrupted)")
    return meta


def load_latest(run_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None = None) -> dict | None:
    """Restore the newest good checkpoint into ``model`` (and ``opt`` when given); return its meta (or None)."""
    for ck in sorted(Path(run_dir).glob("ckpt-*"), reverse=True):
        try:
            meta = _verify(ck)
        except (OSError, ValueError, KeyError) as e:
            warnings.warn(f"checkpoint {ck} is unusable ({e}); trying the previous one", RuntimeWarning, stacklevel=2)
            continue
        load_model(model, str(ck / "model.safetensors"))
        if opt is None:
            return meta
        tensors = load_file(str(ck / "optim.safetensors"))
        state: dict = {}
        for key, v in tensors.items():
            pid, k = key.split(".", 1)
            state.setdefault(int(pid), {})[k] = v
        for key, v in meta["optim"]["scalars"].items():
            pid, k = key.split(".", 1)
            state.setdefault(int(pid), {})[k] = v
        opt.load_state_dict({"state": state, "param_groups": meta["optim"]["param_groups"]})
        return meta
    return None
