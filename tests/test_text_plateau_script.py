"""scripts/text_plateau.py (the measurements behind the README's text-plateau paragraph) runs as documented."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "text_plateau.py"


def test_the_text_plateau_script_trains_its_three_settings(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "runs"), "--scale", "0.01"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["cap", "twice", "small"]
    assert all("validation" in line and "training loss" in line for line in lines)
    # each setting its own run folder, the twice-as-long run twice the steps of the cap
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"cap", "twice", "small"}
    assert "at step 14;" in lines[0] and "at step 27;" in lines[1]
