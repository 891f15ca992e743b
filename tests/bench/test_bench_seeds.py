"""``attnlab bench seeds``: the bound is the paired ratio of the timed steps, the batched step trains members ×
the run's batch, and bad input is one line (timings themselves are not asserted: a benchmark, not a test)."""

import dataclasses
import json

import pytest
import torch
from typer.testing import CliRunner

from attnlab.bench import seeds
from attnlab.cli import app

_FULL = seeds.config_for


def _small(kind):
    cfg = _FULL(kind)
    return dataclasses.replace(cfg, task=dataclasses.replace(cfg.task, num_train=64, num_valid=16))


def test_batched_step_trains_members_times_the_batch():
    cfg = _small("s5-mqar-64")
    single, tokens = seeds.step_call(cfg)
    batched, tokens3 = seeds.step_call(cfg, 3)
    assert tokens == cfg.batch_size * cfg.task.seq_len and tokens3 == 3 * tokens
    before = [p.detach().clone() for p in _model_of(batched)]
    loss = batched()
    assert torch.isfinite(loss) and loss.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, _model_of(batched)))  # the step updated the model
    assert torch.isfinite(single())


def _model_of(call):
    """The parameters the step closure trains (through its optimizer)."""
    opt = next(c.cell_contents for c in call.__closure__ if isinstance(c.cell_contents, torch.optim.Optimizer))
    return [p for g in opt.param_groups for p in g["params"]]


def test_bound_is_members_steps_over_the_batched_step(monkeypatch):
    times = {"single": [1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0], "batched": [2.0, 3.0, 1.5, 3.0, 2.0, 2.0, 2.4]}
    monkeypatch.setattr(seeds, "interleaved", lambda calls, reps, warmup: times)
    monkeypatch.setattr(seeds, "step_call", lambda cfg, members=1: (lambda: None, 10 * members))
    r = seeds.run_bench(["mqar"], members=3, reps=7)
    ratios = sorted(3 * s / b for s, b in zip(times["single"], times["batched"]))
    med, lo, hi = r["rows"][0]["bound"]
    assert med == ratios[3] and lo == ratios[0] and hi == ratios[-1]  # 7 rounds: the 95% interval is [min, max]
    assert r["rows"][0]["step_s"] == 1.0 and r["rows"][0]["batched_s"] == 2.0
    md = seeds.markdown(r)
    assert f"{med:.2f}× [{lo:.2f}, {hi:.2f}]" in md and "| mqar |" in md


def test_few_rounds_have_no_interval(monkeypatch):
    monkeypatch.setattr(seeds, "interleaved", lambda calls, reps, warmup: {"single": [1.0], "batched": [2.0]})
    monkeypatch.setattr(seeds, "step_call", lambda cfg, members=1: (lambda: None, 10 * members))
    r = seeds.run_bench(["text"], members=3, reps=1)
    assert r["rows"][0]["bound"] == [1.5, None, None]
    assert "too few rounds" in seeds.markdown(r)
    json.dumps(r, allow_nan=False)  # no Infinity in the JSON


def test_errors():
    with pytest.raises(ValueError, match="kind must be one of"):
        seeds.config_for("mamba")
    with pytest.raises(ValueError, match="--members must be at least 2"):
        seeds.run_bench(["mqar"], members=1)
    r = CliRunner().invoke(app, ["bench", "seeds", "--kind", "mamba"])
    assert r.exit_code == 2 and "unknown kind 'mamba'" in r.output
    r = CliRunner().invoke(app, ["bench", "seeds", "--threads", "0"])
    assert r.exit_code == 2 and "--threads must be" in r.output


def test_cli_json_and_markdown(tmp_path, monkeypatch):
    monkeypatch.setattr(seeds, "config_for", _small)
    md = tmp_path / "b.md"
    r = CliRunner().invoke(app, ["bench", "seeds", "--kind", "s5-mqar-64", "--members", "2", "--reps", "2", "--json",
                                 "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["setting"]["members"] == 2 and data["setting"]["threads"] == 1
    (row,) = data["rows"]
    assert row["kind"] == "s5-mqar-64" and row["step_s"] > 0 and row["batched_s"] > 0
    text = md.read_text()
    assert "bench seeds --kind s5-mqar-64 --members 2 --reps 2 --markdown" in text and "| s5-mqar-64 |" in text


def test_a_recorded_run_is_bounded_from_its_config(tmp_path, monkeypatch):
    from attnlab.train.config import to_dict

    run = tmp_path / "my-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(_small("s5-mqar-64"))))
    r = CliRunner().invoke(app, ["bench", "seeds", "--run", str(run), "--reps", "2", "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])["rows"]  # with --run alone, only the run is timed
    assert row["kind"] == "my-run" and row["what"] == f"the run at {run}" and row["batch"] == 32
    r = CliRunner().invoke(app, ["bench", "seeds", "--run", str(tmp_path)])
    assert r.exit_code == 2 and "has no config.json" in r.output
    (run / "config.json").write_text("{")
    r = CliRunner().invoke(app, ["bench", "seeds", "--run", str(run)])
    assert r.exit_code == 2 and "is not valid JSON" in r.output
