"""Every failure at the CLI is one line and a non-zero exit; --debug shows the traceback; an unexpected error says
where its traceback was written."""

import os

import pytest
from typer.testing import CliRunner

from attnlab.cli import _common, app


def run(*args):
    return CliRunner().invoke(app, list(args))


def one_line(r, *needles):
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: "), r.output
    for n in needles:
        assert n in lines[0], lines[0]


def test_expected_failures_are_one_line_naming_the_path(tmp_path):
    one_line(run("train", str(tmp_path / "missing.yaml")), "missing.yaml", "does not exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: {name: mqar\nsteps: 3\n")
    one_line(run("train", str(bad)), "bad.yaml", "not valid YAML")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    ok = tmp_path / "ok.yaml"
    ok.write_text("task: {name: markov, vocab_size: 8, seq_len: 8, num_train: 20, num_valid: 4}\nsteps: 1\n")
    one_line(run("train", str(ok), "--out", str(a_file)), str(a_file))
    one_line(run("sweep", str(tmp_path / "missing.py")), "missing.py")
    one_line(run("theory", "figures", "--out", "/proc/nope"), "/proc/nope")
    one_line(run("analyze", "--text", str(tmp_path), "--model", "minilm"), str(tmp_path))


def test_an_unexpected_error_points_at_its_traceback_and_debug_prints_it(monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr("attnlab.claims.runner.parse_only", boom)
    r = run("reproduce", "--only", "C1")
    one_line(r, "unexpected RuntimeError: something internal broke", "full traceback in")
    path = r.output.split("full traceback in ")[1].split(";")[0]
    assert "Traceback" in open(path).read()
    monkeypatch.setenv(_common.DEBUG_ENV, "1")
    r = run("reproduce", "--only", "C1")
    assert isinstance(r.exception, RuntimeError)


def test_debug_is_a_global_flag_and_h_is_help(monkeypatch):
    monkeypatch.setenv(_common.DEBUG_ENV, "0")  # restored after the test: --debug sets it for the process
    assert run("--debug", "info", "--json").exit_code == 0
    assert _common.debugging()
    for args in (["-h"], ["train", "-h"], ["bench", "train", "-h"], ["theory", "sparsity", "-h"]):
        r = run(*args)
        assert r.exit_code == 0 and "Usage" in r.output, args


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv(_common.DEBUG_ENV, raising=False)


def test_a_full_disk_is_one_line_and_keeps_the_checkpoints_already_written(tmp_path, monkeypatch):
    import errno

    from attnlab.train import checkpoint

    real, calls = checkpoint.save, []

    def save(run_dir, step, *a, **k):
        calls.append(step)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / f"ckpt-{step:08d}"))
        return real(run_dir, step, *a, **k)

    monkeypatch.setattr(checkpoint, "save", save)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: {name: markov, vocab_size: 8, seq_len: 8, num_train: 40, num_valid: 4}\n"
                   "model: {d_model: 16, n_layers: 1, n_heads: 2, mlp_ratio: 1}\n"
                   f"steps: 6\nwarmup: 1\nckpt_every: 2\neval_every: 3\nbatch_size: 4\nout: {tmp_path}\nname: r\n")
    one_line(run("train", str(cfg), "--no-progress"), "no space left on the device", "ckpt-00000004")
    assert [p.name for p in (tmp_path / "r").glob("ckpt-*")] == ["ckpt-00000002"]


def test_analyze_on_a_folder_that_is_not_a_model_is_one_line(tmp_path):
    empty, broken = tmp_path / "empty", tmp_path / "broken"
    empty.mkdir()
    broken.mkdir()
    (broken / "config.json").write_text("{bad")
    one_line(run("analyze", "--model", str(empty), "--corpus", "shakespeare"), "no config.json")
    one_line(run("analyze", "--model", str(broken), "--corpus", "shakespeare"), "config.json")


def _commands(group, path=()):
    """Every command path of a click group, depth first."""
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name)


def test_every_command_has_h_and_shows_flags_without_a_type():
    """A flag takes no value: help shows it bare (typer would print `<bool>` beside it), on every command."""
    import typer

    cmds = list(_commands(typer.main.get_command(app)))
    assert len(cmds) > 10
    for path in [(), *cmds]:
        r = run(*path, "-h")
        assert r.exit_code == 0 and "Usage" in r.output, path
        assert "<bool>" not in r.output, path
    assert "--full  " in run("reproduce", "-h").output.replace("│", " ")  # the flag itself is still listed


def test_tables_wrap_cells_instead_of_cutting_the_names_that_tell_rows_apart():
    """At 80 columns rich shortened both run names of a sweep to "deltane…"; the CLI's tables fold instead."""
    from rich.console import Console

    t = _common.table("name", "status", "steps", "final_loss", "valid_loss", "valid_accuracy", "params", "seconds")
    names = ["deltanet-shortconv-k-lr0.003-seed0", "deltanet-shortconv-k-lr0.010-seed0"]
    for n in names:
        t.add_row(n, "finished", "300", "1.2345", "1.3456", "0.9876", "123,456", "12.3")
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(t)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    first = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert all(n in first for n in names), first
