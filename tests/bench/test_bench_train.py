"""``attnlab bench train``: the peer has attnlab's parameter count, FLOPs follow the stated count, a small run
gives a table and JSON, and bad sizes are refused in one line."""

import json

import pytest
from typer.testing import CliRunner

from attnlab.bench import train as bt
from attnlab.cli import app


@pytest.mark.parametrize(("d", "T"), [(64, 32), (128, 512)])
def test_the_peer_has_the_softmax_lms_parameter_count(d, T):
    ours, peer = bt.build("softmax", d, T), bt.build(bt.PEER, d, T)
    assert abs(bt._params(peer) - bt._params(ours)) / bt._params(ours) < 0.01


def test_useful_flops_follow_the_model_count():
    d, T = 64, 32
    m = bt.build("softmax", d, T)
    per_block = 4 * d * d + 12 * d * d  # q, k, v, o; SwiGLU up (d → 8d) and down (4d → d)
    norms = 2 * d
    n = 2 * (per_block + norms) + d + 256 * d  # two blocks, the final norm, the tied head
    tokens = 64 * 32
    assert bt.useful_flops("softmax", m, d, T) == (6 * n + 12 * 2 * T * d) * tokens
    assert bt.useful_flops("deltanet", bt.build("deltanet", d, T), d, T) % tokens == 0


def test_a_small_run_prints_a_table_and_json():
    r = CliRunner().invoke(app, ["bench", "train", "--mixer", "softmax,deltanet", "--d-model", "32", "--T", "8",
                                 "--reps", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert {row["model"] for row in data["rows"]} == {"softmax", "deltanet", bt.PEER}
    assert all(row["tokens_per_s"] > 0 and row["gflops"] > 0 for row in data["rows"])
    assert "× softmax" in bt.markdown(data) and "the peer" in bt.markdown(data)


@pytest.mark.parametrize(("args", "message"), [(["--d-model", "48"], "--d-model values must be multiples of 32"),
                                               (["--T", "x"], "--T must be comma-separated integers"),
                                               (["--mixer", "nope"], "mixer must be one of")])
def test_bad_sizes_are_refused_in_one_line(args, message):
    r = CliRunner().invoke(app, ["bench", "train", *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
