"""The trainer: it learns, it is deterministic, it resumes exactly after SIGKILL, DDP equals one process."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from attnlab.train import apply_overrides, make_config, train

MQ = {"task": {"name": "mqar", "vocab_size": 64, "seq_len": 32, "num_kv_pairs": 4, "num_train": 5000,
               "num_valid": 256},
      "model": {"d_model": 64, "n_layers": 2, "n_heads": 1, "mixer": "softmax", "mlp_ratio": 0},
      "steps": 1000, "batch_size": 64, "lr": 3e-3, "eval_every": 100, "warmup": 20,
      "early_stop": {"metric": "accuracy", "threshold": 0.99}}


def tiny(tmp_path, **kw):
    d = {"task": {"name": "markov", "vocab_size": 16, "seq_len": 24, "num_train": 300, "num_valid": 20},
         "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 12, "batch_size": 8,
         "eval_every": 6, "ckpt_every": 4, "log_every": 2, "warmup": 2, "out": str(tmp_path), "name": "tiny"}
    d.update(kw)
    return d


def test_softmax_learns_mqar_and_linear_attention_does_not(tmp_path):
    soft = train(make_config({**MQ, "out": str(tmp_path), "name": "soft"}), progress=False)
    assert soft["valid"]["accuracy"] >= 0.99, soft
    lin_cfg = {**MQ, "out": str(tmp_path), "name": "lin", "steps": soft["steps"], "early_stop": None}
    lin_cfg["model"] = {**MQ["model"], "mixer": "linear_attn"}
    lin = train(make_config(lin_cfg), progress=False)
    assert lin["valid"]["accuracy"] < 0.7, lin


def test_same_seed_same_losses(tmp_path):
    a = train(make_config(tiny(tmp_path / "a")), progress=False)
    b = train(make_config(tiny(tmp_path / "b")), progress=False)
    c = train(make_config(tiny(tmp_path / "c", seed=1)), progress=False)
    la = (tmp_path / "a" / "tiny" / "metrics.jsonl").read_text()
    lb = (tmp_path / "b" / "tiny" / "metrics.jsonl").read_text()
    strip = lambda s: [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"} for x in s.splitlines()]  # noqa
    assert strip(la) == strip(lb) and a["final_loss"] == b["final_loss"]
    assert c["final_loss"] != a["final_loss"]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    cfg = tiny(tmp_path / "k", steps=400, ckpt_every=25, eval_every=100, log_every=25)
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    ref = train(make_config(tiny(tmp_path / "ref", steps=400, ckpt_every=25, eval_every=100, log_every=25)),
                progress=False)
    cmd = [sys.executable, "-m", "attnlab.cli", "train", str(f), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "k" / "tiny"
    deadline = time.time() + 120
    while not list(run.glob("ckpt-00000050")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()
    r = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout.strip().splitlines()[-1])
    assert resumed["final_loss"] == ref["final_loss"]  # bit-identical, not approximately
    assert resumed["valid"] == ref["valid"]
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if "split" not in json.loads(x)]
    assert steps == sorted(set(steps)), "no duplicated metric lines after the resume"


def test_corrupted_checkpoint_falls_back_to_the_previous(tmp_path):
    train(make_config(tiny(tmp_path)), progress=False)
    run = tmp_path / "tiny"
    cks = sorted(run.glob("ckpt-*"))
    assert len(cks) == 2
    data = (cks[-1] / "model.safetensors").read_bytes()
    (cks[-1] / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match="does not match its SHA-256"):
        s = train(make_config(tiny(tmp_path)), resume=True, progress=False)
    assert s["steps"] == 12


def _ddp_worker(rank, world, port, cfg, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    torch.set_num_threads(1)
    s = train(make_config(cfg), progress=False)
    q.put((rank, s["final_loss"]))
    import torch.distributed as dist

    dist.destroy_process_group()


# Markov labels every position; MQAR a few, so each rank takes the head at its own labelled positions only
@pytest.mark.parametrize("task", [None, {"name": "mqar", "vocab_size": 32, "seq_len": 24, "num_kv_pairs": 3,
                                         "num_train": 300, "num_valid": 20}])
def test_two_process_ddp_equals_one_process(tmp_path, task):
    import socket

    import torch.multiprocessing as mp

    extra = {"task": task} if task else {}
    cfg1 = tiny(tmp_path / "one", steps=8, eval_every=100, threads=1, **extra)
    one = train(make_config(cfg1), progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    cfg2 = tiny(tmp_path / "two", steps=8, eval_every=100, **extra)
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, cfg2, q)) for r in range(2)]
    for p in procs:
        p.start()
    res = dict(q.get(timeout=300) for _ in range(2))
    for p in procs:
        p.join()
    assert res[0] == res[1]
    assert res[0] == pytest.approx(one["final_loss"], rel=1e-4)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key model\.dmodel \(did you mean 'd_model'\?\)"):
        train(make_config(apply_overrides(tiny(tmp_path), ["model.dmodel=3"])), progress=False)
    with pytest.raises(TypeError, match="steps must be int, got str"):
        make_config(apply_overrides(tiny(tmp_path), ["steps=many"]))
    with pytest.raises(ValueError, match="task.name: unknown task 'mqr' \\(did you mean 'mqar'\\?\\)"):
        make_config(apply_overrides(tiny(tmp_path), ["task.name=mqr"]))
    with pytest.raises(ValueError, match="unknown key task.seqlen"):
        make_config(apply_overrides(tiny(tmp_path), ["task.seqlen=3"]))
    with pytest.raises(ValueError, match="needs a mixer that can look ahead"):
        train(make_config(apply_overrides(tiny(tmp_path), ["model.mixer=deltanet", "model.mode=prefix"])),
              progress=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        make_config(apply_overrides(tiny(tmp_path), ["batch_size=0"]))


def test_cli_train_yaml_and_sweep(tmp_path):
    import yaml

    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(tiny(tmp_path / "y")))
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "train", str(f), "--set", "steps=4", "--no-progress",
                        "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 4
    sw = tmp_path / "sweep.py"
    sw.write_text(f"base = {tiny(tmp_path / 's', steps=4)!r}\n"
                  "configs = [dict(base, name=f'r{i}', seed=i) for i in range(2)]\n")
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "sweep", str(sw), "--jobs", "2"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    csv = (tmp_path / "s" / "summary.csv").read_text()
    assert csv.count("done") == 2
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "sweep", str(sw)], capture_output=True, text=True)
    assert (tmp_path / "s" / "summary.csv").read_text().count("done (cached)") == 2


def test_sweep_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray", reason="the optional ray extra is not installed")
    sw = tmp_path / "sweep.py"
    sw.write_text(f"base = {tiny(tmp_path / 'ray', steps=3)!r}\n"
                  "configs = [dict(base, name=f'r{i}', seed=i) for i in range(2)]\n")
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "sweep", str(sw), "--ray", "local"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    csv = (tmp_path / "ray" / "summary.csv").read_text()
    assert csv.count(",done,") == 2, csv


def test_plateau_stops_training_and_the_summary_says_why(tmp_path):
    # min_delta larger than any gain: the first evaluation is the best, the next `patience` ones stall
    s = train(make_config(tiny(tmp_path / "p", steps=60, eval_every=6, plateau={"patience": 2, "min_delta": 100.0})),
              progress=False)
    assert s["stop_reason"] == "plateau" and s["stopped_early"] and s["steps"] == 18
    assert s["valid_curve"]["step"] == [6, 12, 18] and len(s["valid_curve"]["loss"]) == 3
    # a run that is still improving when it reaches its cap says so
    c = train(make_config(tiny(tmp_path / "c", steps=12, plateau={"patience": 5})), progress=False)
    assert c["stop_reason"] == "step_cap" and not c["stopped_early"] and c["steps"] == 12
    plain = train(make_config(tiny(tmp_path / "n")), progress=False)
    assert plain["stop_reason"] == "steps"
    with pytest.raises(ValueError, match="plateau needs patience >= 1"):
        make_config(tiny(tmp_path, plateau={"patience": 0}))


def test_an_edited_meta_json_is_caught_and_stale_temporary_checkpoints_are_removed(tmp_path):
    train(make_config(tiny(tmp_path)), progress=False)
    run = tmp_path / "tiny"
    newest = sorted(run.glob("ckpt-*"))[-1]
    meta = json.loads((newest / "meta.json").read_text())
    meta["step"] = 995  # a finished-looking run with half-trained weights
    (newest / "meta.json").write_text(json.dumps(meta))
    (run / ".tmp-ckpt-00000008-99999").mkdir()  # a killed writer's leftover
    with pytest.warns(RuntimeWarning, match="meta.json does not match its SHA-256"):
        s = train(make_config(tiny(tmp_path, steps=16)), resume=True, progress=False)
    assert s["steps"] == 16 and not list(run.glob(".tmp-ckpt-*"))


def test_a_resumed_run_reports_the_time_of_every_segment(tmp_path):
    first = train(make_config(tiny(tmp_path, steps=12)), progress=False)
    meta = json.loads((sorted((tmp_path / "tiny").glob("ckpt-*"))[-1] / "meta.json").read_text())
    assert meta["extra"]["history"]["seconds"] == pytest.approx(first["seconds"], rel=0.5)
    more = train(make_config(tiny(tmp_path, steps=14)), resume=True, progress=False)  # two more steps
    assert more["seconds"] > meta["extra"]["history"]["seconds"]


@pytest.mark.parametrize("task", [{"name": "mqar", "vocab_size": 32, "seq_len": 24, "num_kv_pairs": 3},
                                  {"name": "markov", "vocab_size": 16, "seq_len": 24}])
def test_the_loss_on_labelled_positions_only_equals_the_loss_over_full_logits(task):
    from attnlab.train.loop import build_model, labelled_loss, labelled_loss_and_accuracy, loss_and_accuracy

    cfg = make_config({"task": {**task, "num_train": 64, "num_valid": 16},
                       "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 2, "warmup": 1,
                       "batch_size": 16})
    model, data = build_model(cfg)
    x, y = data.batch(0, 16, 0)
    y = y.clone()
    y[3] = -100  # a sequence with no label at all
    full = loss_and_accuracy(model(x), y)
    part = labelled_loss_and_accuracy(model, x, y)
    assert torch.allclose(part[0], full[0], atol=1e-6) and torch.allclose(part[1], full[1], atol=1e-12)
    assert part[2] == full[2]
    ga = torch.autograd.grad(full[0], model.head.weight)[0]
    gb = torch.autograd.grad(labelled_loss_and_accuracy(model, x, y)[0], model.head.weight)[0]
    assert torch.allclose(ga, gb, atol=1e-6)
    # the training step's loss alone is the same number, with every position labelled too
    assert torch.equal(labelled_loss(model, x, y), part[0])
    every = data.batch(1, 16, 0)[1].clone()
    every[every == -100] = 0
    assert torch.equal(labelled_loss(model, x, every), labelled_loss_and_accuracy(model, x, every)[0])


def test_evaluation_joins_batches_without_changing_the_numbers(monkeypatch):
    import attnlab.train.loop as loop

    cfg = make_config({"task": {"name": "mqar", "vocab_size": 32, "seq_len": 24, "num_kv_pairs": 3, "num_train": 64,
                                "num_valid": 40},
                       "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 2, "warmup": 1,
                       "batch_size": 8, "eval_batches": 5})
    model, data = loop.build_model(cfg)
    assert [x.shape[0] for x, _ in loop._joined(data.eval_batches(8, 5))] == [40]
    joined = loop.evaluate(model, data, cfg)
    monkeypatch.setattr(loop, "EVAL_TOKENS", 1)  # one batch per forward, as before joining
    apart = loop.evaluate(model, data, cfg)
    assert joined["loss"] == pytest.approx(apart["loss"], abs=1e-6) and joined["accuracy"] == pytest.approx(
        apart["accuracy"], abs=1e-12)
    monkeypatch.setattr(loop, "EVAL_TOKENS", 8 * 24 * 2)
    assert [x.shape[0] for x, _ in loop._joined(data.eval_batches(8, 5))] == [16, 16, 8]
