"""One writer per run folder, and a folder never holds two configs.

A run folder (``out/name``) belongs to the config in its ``config.json``. Training takes an advisory lock
on the folder for the whole run (``fcntl.flock``: released by the kernel if the process dies, so a killed
run never leaves a stale lock), so a second writer fails at once with the holder's PID instead of
interleaving checkpoints. Before anything is written, the requested config is compared with the one the
folder holds: a different config is refused with the keys that differ (choose another name or ``--out``);
``--resume`` may change only what does not change the run's numbers up to where it stopped (``steps``, to
train longer, and ``threads``); a finished run of the same config is not retrained over unless asked to
resume it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

# keys a resume may change: more steps extend a run; threads change speed, not numbers on the CPU
RESUMABLE = ("steps", "threads", "out")
LOCK = ".lock"


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config dicts (``model.d_model: 64 → 32``)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} → {b!r}")
    return out


def check_folder(run_dir: Path, new: dict, resume: bool) -> None:
    """Refuse (ValueError) to start or resume ``new`` in ``run_dir`` when the folder holds another run."""
    p = run_dir / "config.json"
    if not p.exists():
        return
    try:
        old = json.loads(p.read_text())
    except ValueError:
        raise ValueError(f"{p} is not valid JSON: the folder's run cannot be identified; move it aside") from None
    allowed = RESUMABLE if resume else ("threads", "out")
    diff = [d for d in differences(old, new) if d.split(":")[0].split(".")[0] not in allowed]
    if diff:
        raise ValueError(f"{run_dir} holds a run of a different config ({'; '.join(diff)}); choose another name or "
                         "--out" + ("" if resume else ", or delete the folder to replace it"))
    if not resume and (run_dir / "summary.json").exists() and old.get("steps") == new.get("steps"):
        raise ValueError(f"{run_dir} already holds this finished run; --resume reads it back, or choose another "
                         "name or --out to train it again")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the folder's writer lock; a second holder fails at once with a line naming the first's PID."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(f"{run_dir} is being written by process {holder}; wait for it to finish or choose "
                             "another name or --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
