"""The trained-run memo: one run per resolved config and training code, under an explicit root."""

from pathlib import Path

import pytest

from attnlab.train import RunMemo, make_config


def test_trained_runs_are_memoised_by_config_and_code(tmp_path):
    runs = RunMemo(tmp_path)
    cfg = {"name": "memo", "task": {"name": "markov", "vocab_size": 8, "seq_len": 16, "num_train": 64, "num_valid": 8},
           "model": {"d_model": 8, "n_layers": 1, "n_heads": 1, "mlp_ratio": 0}, "steps": 3, "batch_size": 4,
           "eval_every": 3, "warmup": 1}
    a = runs.trained(cfg)
    mtime = (tmp_path / a["run_dir"].split("/")[-1] / "summary.json").stat().st_mtime_ns
    b = runs.trained(cfg)
    assert b["run_dir"] == a["run_dir"] and b["final_loss"] == a["final_loss"]
    assert (tmp_path / b["run_dir"].split("/")[-1] / "summary.json").stat().st_mtime_ns == mtime, "not retrained"
    c = runs.trained({**cfg, "seed": 1})
    assert c["run_dir"] != a["run_dir"]


def test_a_config_built_in_code_and_its_dict_form_share_one_run(tmp_path):
    runs = RunMemo(tmp_path)
    d = {"name": "same", "task": {"name": "markov", "vocab_size": 8, "seq_len": 16, "num_train": 64, "num_valid": 8},
         "model": {"d_model": 8, "n_layers": 1, "n_heads": 1, "mlp_ratio": 0}, "steps": 2, "batch_size": 4,
         "eval_every": 2, "warmup": 1}
    assert runs.resolve(d).name == runs.resolve(make_config(d)).name
    assert runs.resolve(d).out == str(tmp_path) and runs.resolve(d).name.startswith("same-")
    assert RunMemo(tmp_path / "other").resolve(d).name == runs.resolve(d).name  # the key ignores the root


def _tiny(seed, lr=3e-3):
    return {"name": "par", "seed": seed, "lr": lr, "threads": 1,
            "task": {"name": "markov", "vocab_size": 8, "seq_len": 16, "num_train": 64, "num_valid": 8},
            "model": {"d_model": 8, "n_layers": 1, "n_heads": 1, "mlp_ratio": 0}, "steps": 4, "batch_size": 4,
            "eval_every": 2, "warmup": 1}


def test_runs_trained_in_parallel_processes_equal_serial_ones(tmp_path):
    import torch

    before = torch.get_num_threads()
    cfgs = [_tiny(0), _tiny(1), _tiny(0, lr=1e-2), _tiny(1)]  # the last repeats the second: trained once
    serial = RunMemo(tmp_path / "serial").trained_many(cfgs)
    with RunMemo(tmp_path / "parallel", jobs=2) as memo:
        parallel = memo.trained_many(cfgs[:2]) + memo.trained_many(cfgs[2:])  # one pool of workers for both
        assert memo._pool is not None
    assert memo._pool is None  # stopped on leaving the block
    assert [s["final_loss"] for s in serial] == [p["final_loss"] for p in parallel]
    assert [s["valid_curve"] for s in serial] == [p["valid_curve"] for p in parallel]
    assert serial[1]["run_dir"] == serial[3]["run_dir"] and len(list((tmp_path / "parallel").iterdir())) == 3
    assert torch.get_num_threads() == before  # a run's threads setting does not leak into the caller


def test_jobs_must_be_positive(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        RunMemo(tmp_path, jobs=0)


def test_worker_processes_end_when_the_process_that_started_them_is_killed(tmp_path):
    """A killed reproduce must not leave its pool training for nobody (kill -9: no clean shutdown runs)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from attnlab.train.memo import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    pool = worker_pool(2)\n"
        "    for f in [pool.submit(time.sleep, 0) for _ in range(4)]: f.result()\n"
        "    print(*pool._processes, flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie has ended (its exit is not yet collected)
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"

    assert all(alive(w) for w in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:  # never leave them behind, even when the test fails
        os.kill(w, signal.SIGKILL)
    assert not survivors, "a pool worker outlived the process that started it"


@pytest.mark.parametrize(("edited", "retrains"), [
    ("ops/delta.py", True), ("ops/csrc/delta_chunk.c", True), ("ops/csrc/vmath.h", True), ("ops/csrc/norms.c", True),
    ("ops/csrc/swiglu.c", True),
    ("mixers/delta.py", True), ("tasks/mqar.py", True),
    ("train/loop.py", True), ("train/config.py", True), ("checks.py", True),
    ("train/compare.py", False), ("train/memo.py", False), ("train/sweep.py", False), ("models/hf.py", False),
    ("claims/recipes.py", False), ("cli/train.py", False), ("report/html.py", False)])
def test_runs_are_retrained_exactly_when_code_the_trainer_reaches_changes(tmp_path, edited, retrains):
    """The memo's code hash covers what the trainer imports: editing a sweep, a report or the memo itself
    reuses every trained run; editing an op, a mixer, a task or the loop retrains."""
    import shutil

    from attnlab.sourcegraph import PACKAGE_ROOT, code_hash
    from attnlab.train.memo import TRAINER

    tree = tmp_path / "attnlab"
    shutil.copytree(PACKAGE_ROOT, tree, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_hash(tree, TRAINER)
    f = tree / edited
    f.write_bytes(f.read_bytes() + (b"\n// edited\n" if f.suffix == ".c" else b"\n# edited\n"))
    assert (code_hash(tree, TRAINER) != before) == retrains


def test_runs_train_on_a_local_ray_instance_with_the_serial_results(tmp_path):
    """reproduce --ray: the memo hands its pending runs to Ray (a local instance with this machine's 2 CPUs);
    every run's numbers equal the same run trained here."""
    pytest.importorskip("ray", reason="the optional ray extra is not installed")
    import json
    import subprocess
    import sys

    cfgs = [{**_tiny(s), "name": "ray"} for s in (0, 1)]
    script = tmp_path / "on_ray.py"
    script.write_text("import json, sys\nfrom attnlab.train import RunMemo\n"
                      f"cfgs = json.loads({json.dumps(json.dumps(cfgs))})\n"
                      f"out = RunMemo({str(tmp_path / 'ray')!r}, ray_address='local').trained_many(cfgs)\n"
                      "print(json.dumps([r['valid']['loss'] for r in out]))\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    on_ray = json.loads(r.stdout.strip().splitlines()[-1])
    here = [x["valid"]["loss"] for x in RunMemo(tmp_path / "here").trained_many(cfgs)]
    assert on_ray == here


def test_runs_go_to_ray_with_the_roots_absolute_path(tmp_path, monkeypatch):
    """A Ray worker's working folder is its node's, not this process's: a relative root would scatter the runs
    over the nodes and leave the memo without them."""
    from attnlab.train import sweep
    from attnlab.train.memo import _train_resolved

    seen = []

    def fake_ray(pending, address, echo):
        seen.extend(pending)
        return {c.name: {"status": "done", **_train_resolved(c)} for c in pending}

    monkeypatch.setattr(sweep, "run_on_ray", fake_ray)
    monkeypatch.chdir(tmp_path)
    out = RunMemo("relative/runs", ray_address="somewhere:6379").trained_many([_tiny(0)])
    assert seen and all(Path(c.out) == tmp_path / "relative" / "runs" for c in seen)
    assert out[0]["run_dir"].startswith("relative/runs/") and (tmp_path / out[0]["run_dir"] / "summary.json").exists()


def test_reproduce_ray_without_the_extra_is_one_line(monkeypatch):
    from typer.testing import CliRunner

    from attnlab.cli import app

    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if not installed
    r = CliRunner().invoke(app, ["reproduce", "--only", "C1", "--ray", "local"])
    assert r.exit_code == 2 and "--ray needs the optional extra" in r.output
