"""Where and when a claim ran, stored beside its verdict.

A ``claims.json`` is copied between machines and merged across runs (cached claims keep their
entries), so each claim records its own finishing time and the software and machine that produced it.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from .. import __version__
from ..ops import native


def utc(seconds: float) -> str:
    """Unix seconds as UTC ISO 8601 to the second: the form every recorded time takes (it sorts as it reads)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> str:
    return utc(time.time())


# Documentation does not change what a run computes, and a ledger writes its own results into the
# tracked docs/results-* folders (and the README's tables): counting those would mark every claim
# after the first of a rerun `+dirty` with no code changed.
DOCUMENTATION = (":(exclude)docs", ":(exclude,glob)*.md")


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's short commit, ``+dirty`` when tracked files other than documentation differ from it.

    None outside a git checkout.
    """
    root = Path(__file__).resolve().parents[3] if root is None else Path(root)
    if not (root / ".git").exists():
        return None  # an installed wheel: there is no commit to name
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no",
                                "--", ".", *DOCUMENTATION],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Software and machine of this process (computed once: the checkout does not change under a run)."""
    return {"attnlab": __version__, "commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(terse=True),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "delta_chunk_cpu": native.engine()}

