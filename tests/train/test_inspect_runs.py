"""Looking at finished runs: ``compare`` (curves, final numbers, differing settings), ``sample`` and
``LM.generate``; a torn metrics line is dropped with a warning, a damaged one named."""

import json

import pytest
import torch
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.models import LM, LMConfig
from attnlab.train import make_config, train
from attnlab.train.metrics import read_rows


def tiny(tmp_path, name, **kw):
    d = {"task": {"name": "markov", "vocab_size": 16, "seq_len": 24, "num_train": 300, "num_valid": 20},
         "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 6, "batch_size": 8,
         "eval_every": 3, "ckpt_every": 3, "log_every": 2, "warmup": 2, "out": str(tmp_path), "name": name}
    d.update(kw)
    return make_config(d)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(tiny(root, "a"), progress=False)
    train(tiny(root, "b", lr=0.01), progress=False)
    return root


def test_compare_names_what_differs_and_draws_the_curves(two_runs, tmp_path):
    r = CliRunner().invoke(app, ["compare", str(two_runs), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["differing"] == ["lr"] and [x["name"] for x in res["runs"]] == ["a", "b"]
    assert all(len(x["curves"]["valid"]["loss"]) == 2 for x in res["runs"])
    png = tmp_path / "c.png"
    assert CliRunner().invoke(app, ["compare", str(two_runs / "a"), str(two_runs / "b"), "--out", str(png)]).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = tmp_path / "c.html"
    assert CliRunner().invoke(app, ["compare", str(two_runs), "--out", str(html)]).exit_code == 0
    assert "data:image/png;base64," in html.read_text()
    bad = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert bad.exit_code != 0 and "holds no run" in bad.output


def test_sample_continues_a_prompt_of_token_ids(two_runs):
    r = CliRunner().invoke(app, ["sample", str(two_runs / "a"), "--prompt", "1 2 3", "--tokens", "5"])
    assert r.exit_code == 0, r.output
    ids = [int(x) for x in r.stdout.split()]
    assert ids[:3] == [1, 2, 3] and len(ids) == 8 and all(0 <= i < 16 for i in ids)
    bad = CliRunner().invoke(app, ["sample", str(two_runs / "a"), "--prompt", "1 99"])
    assert bad.exit_code != 0 and "token ids must lie in [0, 16)" in bad.output


def test_generate_greedy_is_the_argmax_loop_and_top_k_1_is_greedy():
    torch.manual_seed(0)
    m = LM(LMConfig(vocab_size=12, d_model=16, n_layers=1, n_heads=2)).eval()
    x = torch.randint(12, (2, 4))
    ref = x
    for _ in range(5):
        ref = torch.cat([ref, m(ref)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(m.generate(x, 5), ref)
    assert torch.equal(m.generate(x, 5, temperature=0.7, top_k=1), ref)
    s = m.generate(x, 5, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2, 9) and torch.equal(s[:, :4], x)
    with pytest.raises(ValueError, match="temperature must be ≥ 0"):
        m.generate(x, 1, temperature=-1)


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_and_a_damaged_one_is_named(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    with pytest.warns(RuntimeWarning, match="the last line is torn"):
        assert read_rows(p) == [{"step": 1, "loss": 2.0}]
    p.write_text('{"step": 1, "loss": 2.0}\nnot json\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(ValueError, match="line 2 is not a JSON row"):
        read_rows(p)


def test_sample_continues_text_for_a_byte_lm(tmp_path):
    cfg = make_config({"task": {"name": "text", "seq_len": 16, "max_bytes": 20000}, "name": "bytes",
                       "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 2,
                       "batch_size": 4, "eval_every": 2, "eval_batches": 1, "warmup": 1, "out": str(tmp_path)})
    train(cfg, progress=False)
    r = CliRunner().invoke(app, ["sample", str(tmp_path / "bytes"), "--prompt", "To be", "--tokens", "7",
                                 "--temperature", "0.8", "--top-k", "5"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("To be")


def test_the_tensorboard_logger_writes_events_and_a_missing_logger_is_one_line(tmp_path, monkeypatch):
    train(tiny(tmp_path, "tb", logger="tensorboard"), progress=False)
    assert list((tmp_path / "tb" / "tb").glob("events.out.tfevents.*"))
    train(tiny(tmp_path, "plain"), progress=False)
    assert not (tmp_path / "plain" / "tb").exists()  # metrics.jsonl only, unless asked
    with pytest.raises(ValueError, match="logger must be null, 'tensorboard' or 'wandb'"):
        tiny(tmp_path, "x", logger="mlflow")
    import builtins

    real = builtins.__import__

    def no_wandb(name, *a, **k):
        if name == "wandb":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ValueError, match="logger: wandb is not installed"):
        train(tiny(tmp_path, "wb", logger="wandb"), progress=False)


def test_a_run_that_ends_inside_its_warmup_is_warned_about(tmp_path):
    with pytest.warns(RuntimeWarning, match="ends inside its warm-up"):
        tiny(tmp_path, "short", steps=2, warmup=5)
