"""``attnlab sweep FILE.py``: run a list of configs as parallel local processes, resumably.

FILE defines ``configs``, a list of configs (dicts, or :class:`TrainConfig` built from the types), each
with a distinct ``name``. Each run gets its
own folder under its ``out``; a run whose ``summary.json`` says it finished is skipped, an
unfinished one resumes from its last checkpoint. The summary table goes to ``SWEEP_DIR/summary.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import TrainConfig, make_config, to_dict
from .ownership import locked

COLUMNS = ("name", "status", "steps", "final_loss", "valid_loss", "valid_accuracy", "params", "seconds")


def load_sweep(path: str | Path) -> list[TrainConfig]:
    ns = runpy.run_path(str(path))
    configs = ns.get("configs")
    if not isinstance(configs, list) or not configs:
        raise ValueError(f"{path} must define configs, a non-empty list of configs (dicts or TrainConfig)")
    checked = [make_config(c) for c in configs]  # every config checked before anything starts
    names = [c.name for c in checked]
    explicit = [isinstance(c, TrainConfig) or "name" in c for c in configs]
    if not all(explicit) or len(set(names)) != len(names):
        raise ValueError("every config in a sweep needs a distinct name")
    return checked


def finished(cfg) -> dict | None:
    """The summary of ``cfg``'s finished run, None if it has not finished; a folder holding another config is
    refused (ownership.check_folder), never read as this one's."""
    from .config import to_dict
    from .ownership import check_folder

    p = cfg.run_dir / "summary.json"
    if not p.exists():
        return None
    check_folder(cfg.run_dir, to_dict(cfg), resume=True)
    s = json.loads(p.read_text())
    return s if s.get("steps") == cfg.steps or s.get("stopped_early") else None


def _ray_train(cfg: dict) -> dict:
    from attnlab.train import make_config, train

    tc = make_config(cfg)
    return {"status": "done", **train(tc, resume=True, progress=False)}


def require_ray():
    """The ``ray`` module, or one line saying how to install it (checked before any run starts)."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs the optional extra: pip install 'attnlab[ray]'") from None
    return ray


def run_on_ray(pending: list, address: str, echo) -> dict:
    """Run the pending configs as Ray tasks (one CPU each); ``address="local"`` starts a local instance.

    Run folders are written where each task runs: on a multi-node cluster give ``out`` a shared path.
    """
    ray = require_ray()
    ray.init(address=None if address == "local" else address, ignore_reinit_error=True, include_dashboard=False,
             log_to_driver=False)
    task = ray.remote(num_cpus=1)(_ray_train)
    futures = {task.remote(to_dict(cfg)): cfg.name for cfg in pending}
    rows = {}
    for ref in futures:
        name = futures[ref]
        try:
            rows[name] = ray.get(ref)
        except Exception as e:  # a failed run is reported in the table, the others go on
            rows[name] = {"status": f"failed ({type(e).__name__}: {e})"}
        echo(f"{name}: {rows[name]['status']}")
    return rows


def run_sweep(path: str | Path, jobs: int | None = None, out: Path | None = None, echo=print,
              ray_address: str | None = None) -> list[dict]:
    configs = load_sweep(path)
    where = Path(out) if out else configs[0].run_dir.parent
    with locked(where):  # one sweep writes a summary.csv at a time; each run folder has its own lock too
        return _run_sweep(configs, jobs, where, echo, ray_address)


def _run_sweep(configs, jobs, out, echo, ray_address) -> list[dict]:
    jobs = jobs or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, rows = [], [], {}
    for cfg in configs:
        s = finished(cfg)
        if s:
            rows[cfg.name] = {"status": "done (cached)", **s}
        else:
            cfg.threads = cfg.threads or threads
            pending.append(cfg)
    if ray_address is not None:
        rows.update(run_on_ray(pending, ray_address, echo))
        pending = []
    with tempfile.TemporaryDirectory(prefix="attnlab-sweep-") as tmpdir:
        while pending or running:
            while pending and len(running) < jobs:
                cfg = pending.pop(0)
                f = Path(tmpdir) / f"{cfg.name}.json"
                f.write_text(json.dumps(to_dict(cfg)))
                cmd = [sys.executable, "-m", "attnlab.cli", "train", str(f), "--resume", "--no-progress"]
                log_path = cfg.run_dir.parent / f"{cfg.name}.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(log_path, "w")
                running.append((cfg, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, log_path))
                echo(f"started {cfg.name}")
            time.sleep(0.2)
            for item in list(running):
                cfg, proc, log, log_path = item
                if proc.poll() is not None:
                    log.close()
                    running.remove(item)
                    s = finished(cfg)
                    rows[cfg.name] = {"status": "done", **s} if s else {
                        "status": f"failed (exit {proc.returncode}; see {log_path})"}
                    echo(f"{cfg.name}: {rows[cfg.name]['status']}")
    table = []
    for cfg in configs:
        r = rows[cfg.name]
        v = r.get("valid") or {}
        table.append({"name": cfg.name, "status": r["status"], "steps": r.get("steps"),
                      "final_loss": r.get("final_loss"), "valid_loss": v.get("loss"),
                      "valid_accuracy": v.get("accuracy"), "params": r.get("params"), "seconds": r.get("seconds")})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(table)
    return table
