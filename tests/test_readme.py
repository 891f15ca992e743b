"""The README's code blocks, taken from the file itself, run as written (commands are parsed by the CLI, the
cheap ones run)."""

import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from attnlab.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def block_with(lang: str, marker: str) -> str:
    found = [b for b in blocks(lang) if marker in b]
    assert len(found) == 1, f"the README should have one {lang} block with {marker!r}"
    return found[0]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_the_mixer_example_registers_and_passes_its_contract(in_tmp):
    from attnlab.mixers import MIXERS
    from attnlab.suite import contract
    from attnlab.user_modules import import_user_module

    (in_tmp / "mymod.py").write_text(block_with("python", "register_mixer"))
    try:
        import_user_module("mymod")
        assert "my_mixer" in MIXERS
        assert all(v is True for v in contract("my_mixer", {"temperature": 0.5}).values())
    finally:
        MIXERS.pop("my_mixer", None)


def test_the_claim_example_runs_into_a_report(in_tmp):
    from attnlab.claims import Budget, run_claims
    from attnlab.claims.registry import REGISTRY

    saved = dict(REGISTRY)
    try:
        exec(compile(block_with("python", "@experiment"), "README.md", "exec"), {})
        res = run_claims(["X1"], Budget.get("quick"), in_tmp / "results")
        assert res[0].verdict == "holds" and "log n = 6.907755" in res[0].reason
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def test_the_config_example_is_a_valid_config():
    from attnlab.train import make_config

    cfg = make_config(yaml.safe_load(block_with("yaml", "name: deltanet-k")))
    assert cfg.model.short_conv == "k" and cfg.early_stop.threshold == 0.99


def commands() -> list[list[str]]:
    out = []
    for b in blocks("bash"):
        for line in b.splitlines():
            line = line.split("  #")[0].strip()
            if " attnlab.cli " in line:  # torchrun … -m attnlab.cli ARGS
                line = "attnlab " + line.split(" attnlab.cli ", 1)[1]
            if line.startswith("attnlab "):
                out.append(shlex.split(line)[1:])
    return out


def test_the_readme_names_commands():
    assert len(commands()) >= 10


@pytest.mark.parametrize("args", commands(), ids=lambda a: " ".join(a)[:60])
def test_every_attnlab_command_in_the_readme_parses(args, in_tmp):
    """Every option a README command uses exists and takes the value given (parsed, not run)."""
    (in_tmp / "mqar.yaml").write_text(block_with("yaml", "name: deltanet-k"))
    (in_tmp / "sweep.py").write_text("configs = []\n")
    group = typer.main.get_command(app)
    cmd = group.get_command(None, args[0])
    assert cmd is not None, f"no command {args[0]!r}"
    cmd.make_context(args[0], list(args[1:]))


@pytest.mark.parametrize("args", [["reproduce", "--list"], ["reproduce", "--list", "--json"]])
def test_the_cheap_readme_commands_run(args):
    assert ["reproduce", *args[1:]] in commands()
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output


def test_the_load_trained_example_reads_back_the_readme_run(in_tmp):
    (in_tmp / "mqar.yaml").write_text(block_with("yaml", "name: deltanet-k"))
    r = CliRunner().invoke(app, ["train", "mqar.yaml"])
    assert r.exit_code == 0, r.output
    exec(compile(block_with("python", "load_trained"), "README.md", "exec"), {})
