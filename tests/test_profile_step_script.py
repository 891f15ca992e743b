"""scripts/profile_step.py (the profiles behind docs/benchmarks.md) runs as documented."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "profile_step.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_the_profile_script_prints_the_operators_and_the_rate(tmp_path):
    out = _run(tmp_path / "p", "--steps", 3, "--rows", 4)
    assert out.returncode == 0, out.stderr
    assert "aten::mm" in out.stdout and "Self CPU" in out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("s5-mqar-64: 3 steps in ") and "GFLOP counted from below" in last
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"profiled", "timed"}  # the rate from the unprofiled run


def test_the_profile_script_never_writes_into_an_existing_folder(tmp_path):
    out = _run(tmp_path, "--steps", 3)
    assert out.returncode == 2 and "exists: give a new folder" in out.stderr
    out = _run(tmp_path / "new", "--steps", 0)
    assert out.returncode == 2 and "--steps must be at least 1, got 0" in out.stderr
