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
