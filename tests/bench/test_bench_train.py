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
    peer, deltanet = (next(row for row in data["rows"] if row["model"] == m) for m in (bt.PEER, "deltanet"))
    assert peer["softmax_vs_peer"][1:] == [None, None] and deltanet["vs_softmax"][0] > 0  # one round: no interval
    assert "too few rounds for an interval" in bt.markdown(data) and "undecided" in bt.markdown(data)
    assert data["setting"]["timing"] == "interleaved rounds"


@pytest.mark.parametrize(("args", "message"), [(["--d-model", "48"], "--d-model values must be multiples of 32"),
                                               (["--T", "x"], "--T must be comma-separated integers"),
                                               (["--mixer", "nope"], "mixer must be one of")])
def test_bad_sizes_are_refused_in_one_line(args, message):
    r = CliRunner().invoke(app, ["bench", "train", *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_labels_for_marks_every_kth_position_from_the_end():
    import torch

    x = torch.arange(11)[None].repeat(2, 1)
    lab = bt.labels_for(x, 0.25)
    assert (lab[:, [9, 5, 1]] == x[:, [10, 6, 2]]).all() and int((lab != -100).sum()) == 6
    assert torch.equal(bt.labels_for(x, 1.0), x[:, 1:])


def test_a_partly_labelled_run_also_times_the_head_everywhere():
    r = CliRunner().invoke(app, ["bench", "train", "--mixer", "softmax", "--d-model", "32", "--T", "16",
                                 "--reps", "1", "--labelled", "0.25", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    ours = [row for row in data["rows"] if row["model"] == "softmax"]
    assert ours and all(row["head_everywhere_s"] > 0 for row in ours)
    assert data["setting"]["labelled"] == 0.25 and data["setting"]["threads"] == 1
    assert "head everywhere" in bt.markdown(data)
    bad = CliRunner().invoke(app, ["bench", "train", "--labelled", "0"])
    assert bad.exit_code != 0 and "--labelled must be a fraction in (0, 1]" in bad.output


def test_a_run_with_pytorch_ops_times_each_model_without_the_compiled_kernels(monkeypatch):
    from attnlab.ops import native, norm, swiglu

    seen = []  # what the models ran on inside each timing
    real = swiglu.compiled
    monkeypatch.setattr(swiglu, "compiled", lambda u: seen.append(real(u)) or real(u))
    r = CliRunner().invoke(app, ["bench", "train", "--mixer", "deltanet", "--d-model", "32", "--T", "8",
                                 "--reps", "1", "--pytorch-ops", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    ours = [row for row in data["rows"] if row["model"] == "deltanet"]
    assert ours and all(row["pytorch_ops_s"] > 0 for row in ours) and "PyTorch ops" in bt.markdown(data)
    if native.unavailable_reason() is None:  # both forms ran, and the kernels are back on afterwards
        assert {True, False} <= set(seen) and norm._compiled(__import__("torch").ones(2))
        assert data["setting"]["kernels"] == "native"
