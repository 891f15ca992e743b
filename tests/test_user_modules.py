"""A researcher's module is found in the current folder or by path, and a failure is one clear line."""

import subprocess
import sys

import pytest

from attnlab.user_modules import import_user_module

MOD = '''
from attnlab.mixers import register_mixer
from attnlab.mixers.attention import SoftmaxAttention

@register_mixer("{name}")
class Mine(SoftmaxAttention):
    """A registered copy of softmax attention."""
'''


def test_a_module_in_the_current_folder_and_a_file_path(tmp_path, monkeypatch):
    from attnlab.mixers import MIXERS

    (tmp_path / "mymod_cwd.py").write_text(MOD.format(name="mine_cwd"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    import_user_module("mymod_cwd")
    assert "mine_cwd" in MIXERS
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "mymod_path.py").write_text(MOD.format(name="mine_path"))
    import_user_module(str(other / "mymod_path.py"))
    assert "mine_path" in MIXERS


def test_failures_are_one_line_naming_the_module(tmp_path):
    with pytest.raises(ValueError, match="--import no_such_mod_xyz: No module named 'no_such_mod_xyz'"):
        import_user_module("no_such_mod_xyz")
    with pytest.raises(ValueError, match="no such file"):
        import_user_module(str(tmp_path / "missing.py"))
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ValueError, match=r"importing it failed \(RuntimeError: boom\)"):
        import_user_module(str(tmp_path / "broken.py"))


def test_the_suite_cli_names_a_failed_import_and_a_module_in_the_run_folder_imports(tmp_path):
    (tmp_path / "mymod.py").write_text(MOD.format(name="my_mixer"))
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "suite", "my_mixer", "--import", "nope_mod"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "--import nope_mod" in (r.stdout + r.stderr)
    code = ("import sys; from attnlab.user_modules import import_user_module; import_user_module('mymod'); "
            "from attnlab.mixers import MIXERS; print('my_mixer' in MIXERS)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip() == "True", r.stderr
