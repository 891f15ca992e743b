"""Trained runs memoised on disk by config and code: train once, reuse while nothing that shapes it changed.

A run's folder under the memo's root is named ``<config name>-<key>``, where the key hashes the
resolved config and the source that shapes training: every module the trainer reaches through imports
(:mod:`attnlab.sourcegraph`), so editing a sweep, a report or this memo does not retrain anything.
A rerun therefore reuses a finished run, resumes an unfinished one, and retrains exactly when the
config or the training code changed. The root is explicit: whoever owns the results (the ledger's
``--out`` folder, the suite's temporary folder) makes its own :class:`RunMemo`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from ..sourcegraph import PACKAGE_ROOT
from ..sourcegraph import code_hash as reach_hash
from .config import TrainConfig, make_config, to_dict

# the trainer's entry point: a run's key covers every attnlab module it reaches (ops, mixers, models, tasks,
# the loop, its config, checkpoints and metrics), and not the modules around it (this memo, sweeps, compare)
TRAINER = "attnlab.train.loop"
# a memoised run checkpoints once, at its end: a killed run is retrained, not resumed mid-way
FINAL_CHECKPOINT_ONLY = 10**9


@functools.cache
def code_hash() -> str:
    """The source that shapes training, read once per process: a change there retrains, a change elsewhere
    reuses runs."""
    return reach_hash(PACKAGE_ROOT, TRAINER)[:10]


def run_key(cfg: TrainConfig) -> str:
    """The hash of a resolved config (its output folder aside) and of the training code."""
    d = to_dict(cfg)
    d.pop("out")
    return hashlib.sha256((json.dumps(d, sort_keys=True) + code_hash()).encode()).hexdigest()[:12]


def _train_resolved(cfg: TrainConfig, heldout: bool = False) -> dict:
    """Train a resolved config (or read its finished run); in a worker process or this one. With ``heldout``,
    also evaluate it on held-out batches (kept in the run folder), where the run's data is at hand."""
    from .loop import train
    from .sweep import finished

    s = {**(finished(cfg) or train(cfg, resume=True, progress=False)), "run_dir": str(cfg.run_dir)}
    if heldout:
        from .heldout import heldout_loss

        heldout_loss(s)
    return s


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: end this process within a second of ``parent`` (the process that started
    the pool) ending, however it ends. A killed ``reproduce`` otherwise leaves its workers training for
    nobody: the pool's own shutdown runs only when the parent exits cleanly. A daemon thread watches the
    parent's PID (an orphan is adopted by another process), which works on every platform and, unlike
    Linux's ``PR_SET_PDEATHSIG``, does not fire when merely the thread that started the pool ends."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:  # the parent died while this worker started
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="attnlab-parent-watch").start()


def worker_pool(jobs: int):
    """``jobs`` spawned worker processes that end with the process that started them."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


class RunMemo:
    """Trained runs under ``root``: :meth:`trained` trains a config once and then returns its summary;
    :meth:`trained_many` trains independent configs in up to ``jobs`` processes at once."""

    def __init__(self, root: str | Path, jobs: int = 1, ray_address: str | None = None):
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
        self.root, self.jobs, self.ray_address = Path(root), jobs, ray_address
        self._pool = None  # worker processes, started on first need and reused (each costs an import of torch)
        # callers may share the memo from several threads (reproduce runs trained claims side by side): a run that
        # one of them already sent to the workers is waited for, not trained a second time into the same folder
        self._lock = threading.Lock()
        self._inflight: dict[str, tuple] = {}  # run name → (future, whether it computes the held-out loss)

    def close(self) -> None:
        """Stop the worker processes (a later :meth:`trained_many` starts new ones)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def __enter__(self) -> RunMemo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resolve(self, cfg: TrainConfig | dict) -> TrainConfig:
        """The checked config as the memo runs it: named ``<name>-<key>``, written under the root."""
        cfg = dataclasses.replace(make_config(cfg), ckpt_every=FINAL_CHECKPOINT_ONLY)
        return dataclasses.replace(cfg, name=f"{cfg.name}-{run_key(cfg)}", out=str(self.root))

    def _submit(self, todo: dict[str, TrainConfig], heldout: bool) -> tuple[dict, dict[str, TrainConfig]]:
        """``todo``'s runs on the worker pool: ``(future → run name, later)``. A run another caller already sent
        is that caller's future; where this caller also needs its held-out loss and that future does not compute
        it, the run is in ``later``, to send once that future is done (the run is then only evaluated)."""
        futures, later = {}, {}
        with self._lock:
            if self._pool is None:
                self._pool = worker_pool(self.jobs)
            for name, c in todo.items():
                f, evaluates = self._inflight.get(name, (None, False))
                if f is not None and not f.done():
                    if heldout and not evaluates:
                        later[name] = c
                    else:
                        futures[f] = name
                    continue
                f = self._pool.submit(_train_resolved, c, heldout)
                self._inflight[name] = (f, heldout)
                futures[f] = name
        return futures, later

    def heldout_loss(self, run: dict) -> float:
        """A finished run's validation loss on held-out batches (:func:`attnlab.train.heldout.heldout_loss`):
        what a learning-rate pilot chooses on, so the chosen run is not measured on its own selection data."""
        from .heldout import heldout_loss

        return heldout_loss(run)

    def trained(self, cfg: TrainConfig | dict) -> dict:
        """Train ``cfg`` (or reuse its finished run); the run's summary with ``run_dir`` added."""
        return _train_resolved(self.resolve(cfg))

    def trained_many(self, cfgs: list[TrainConfig | dict], on_run: Callable[[str], None] | None = None,
                     heldout: bool = False) -> list[dict]:
        """:meth:`trained` for every config, in order; the unfinished ones in up to ``jobs`` spawned
        processes, or as tasks of the Ray cluster at ``ray_address`` (one CPU each; the root must then be
        a folder every node reaches). Each run's result depends on its config alone (its ``threads``
        included), so it is the same whichever process or node trains it. ``on_run(name)`` is called as
        each run that had to be trained finishes (progress for the caller). ``heldout``: the runs are a
        pilot's, which :meth:`heldout_loss` will read; the worker that trains a run evaluates it too (in
        parallel, not one by one here afterwards), and finished runs not yet evaluated go to the workers."""
        from concurrent.futures import as_completed

        from .heldout import cached
        from .sweep import finished, run_on_ray

        notify = on_run or (lambda name: None)
        resolved = [self.resolve(c) for c in cfgs]
        pending = {c.name: c for c in resolved if not finished(c)}  # one process per distinct run
        if self.ray_address is not None and pending:
            # a Ray worker runs in its node's own folder: the runs go to the root's absolute path, which every node
            # must see (a shared filesystem); ``out`` may differ between a folder's runs, their key ignores it
            absolute = [dataclasses.replace(c, out=str(Path(c.out).resolve())) for c in pending.values()]
            rows = run_on_ray(absolute, self.ray_address, echo=lambda line: notify(line.split(":")[0]))
            failed = [f"{name}: {row['status']}" for name, row in rows.items() if row.get("status") != "done"]
            if failed:
                raise RuntimeError(f"{len(failed)} run(s) failed on the Ray cluster: " + "; ".join(failed))
            missing = [c.name for c in pending.values() if not finished(c)]
            if missing:
                raise RuntimeError(f"Ray trained {missing[0]} but its summary is not under {self.root}: give "
                                   "--out a folder that every node of the cluster writes to")
        unevaluated = {c.name: c for c in resolved if heldout and c.name not in pending and cached(c.run_dir) is None}
        if self.ray_address is None and self.jobs > 1 and (pending or unevaluated):
            # every run goes to the workers (even a lone one): the memo never trains more than ``jobs`` at once,
            # whichever threads ask
            todo = {**pending, **unevaluated}
            while todo:
                futures, todo = self._submit(todo, heldout)
                for f in as_completed(futures):
                    f.result()
                    if futures[f] in pending:
                        notify(futures[f])
        out = []
        for c in resolved:
            fresh = c.name in pending and not finished(c)  # trained just now, in this process
            out.append(_train_resolved(c))
            if fresh:
                notify(c.name)
        return out
