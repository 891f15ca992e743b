"""``attnlab info`` reports the engines a run would use."""

import json

import torch
from typer.testing import CliRunner

from attnlab import __version__
from attnlab.cli import app
from attnlab.ops import native


def test_info_json_names_versions_and_engines():
    r = CliRunner().invoke(app, ["info", "--json"])
    assert r.exit_code == 0, r.output
    env = json.loads(r.stdout)
    assert env["attnlab"] == __version__ and env["torch"] == torch.__version__
    assert env["delta_chunk_cpu"] == native.engine()
    if env["delta_chunk_cpu"] == "native":
        assert env["native_kernel"].endswith(".so")
    else:
        assert env["native_kernel"] is None
    assert env["fla_backend"] == "available" or "fla" in env["fla_backend"]
    r = CliRunner().invoke(app, ["info"])
    assert r.exit_code == 0 and "delta_chunk_cpu" in r.stdout


def test_user_text_is_not_eaten_as_markup_and_docstrings_are_plain():
    from attnlab.cli import _summary

    r = CliRunner().invoke(app, ["reproduce", "--list"], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and "E[e^ε] cancels" in r.output
    assert _summary("Uses :func:`~attnlab.ops.attention` and ``x``:\n\nmore") == "Uses attnlab.ops.attention and x"


def test_a_batch_of_runs_says_what_is_left_from_its_own_pace():
    from attnlab.cli.reproduce import batch_left

    assert batch_left(0.0, 0, 4) == ""  # nothing finished: no pace to extrapolate
    assert batch_left(600.0, 2, 6) == "about 20 min left"  # 5 min a run (two side by side) × 4 runs
    assert batch_left(180.0, 3, 4) == "about 1 min left" and batch_left(30.0, 3, 4) == "under a minute left"
    assert batch_left(600.0, 4, 4) == ""  # done: the bar is hidden
