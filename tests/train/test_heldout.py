"""Held-out loss of a finished run: data the run is never measured on, the run itself untouched."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from attnlab.tasks import IGNORE
from attnlab.train import RunMemo, heldout, make_config
from attnlab.train.loop import load_trained

MQAR = {"name": "ho", "threads": 1, "task": {"name": "mqar", "vocab_size": 32, "seq_len": 16, "num_kv_pairs": 2,
                                             "num_train": 64, "num_valid": 16},
        "model": {"d_model": 16, "n_layers": 1, "n_heads": 1, "mlp_ratio": 0}, "steps": 4, "batch_size": 8,
        "eval_every": 2, "eval_batches": 2, "warmup": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return RunMemo(tmp_path_factory.mktemp("memo")).trained(MQAR)


def test_a_synthetic_task_is_judged_on_a_fresh_draw_that_shares_no_sequence_with_validation(run):
    cfg = make_config(json.loads((Path(run["run_dir"]) / "config.json").read_text()))
    valid = cfg.task.build(cfg.seed).valid_inputs
    fresh = cfg.task.build(cfg.seed + heldout.HELDOUT_SEED).valid_inputs
    assert not (valid[:, None, :] == fresh[None, :, :]).all(-1).any()
    # the loss by hand: the final model's cross-entropy over the fresh draw's labelled tokens
    model, _, _ = load_trained(run["run_dir"])
    data = cfg.task.build(cfg.seed + heldout.HELDOUT_SEED)
    x, y = data.valid_inputs[: 2 * cfg.batch_size], data.valid_labels[: 2 * cfg.batch_size]
    with torch.no_grad():
        want = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum")
    want = float(want) / int((y != IGNORE).sum())
    got = heldout.heldout_loss(run)
    assert got == pytest.approx(want, rel=1e-5) and got != run["valid"]["loss"]


def test_the_heldout_loss_is_kept_in_the_run_folder_and_read_back(run, monkeypatch):
    first = heldout.heldout_loss(run)
    summary = (Path(run["run_dir"]) / "summary.json").read_text()
    monkeypatch.setattr("attnlab.train.loop.load_trained", lambda d: pytest.fail("evaluated again"))
    assert heldout.heldout_loss(run) == first and RunMemo(Path(run["run_dir"]).parent).heldout_loss(run) == first
    assert (Path(run["run_dir"]) / "summary.json").read_text() == summary  # the run's own numbers untouched


def test_text_is_judged_on_other_windows_of_its_validation_split(tmp_path):
    from attnlab.tasks.text import Text

    data = Text(seq_len=32).build(0)
    measured = next(data.eval_batches(4, 1, seed=0))[0]
    other = next(data.eval_batches(4, 1, seed=heldout.HELDOUT_SEED))[0]
    assert not torch.equal(measured, other)


def test_a_pilots_runs_are_evaluated_by_the_workers_that_train_them(tmp_path, monkeypatch):
    """trained_many(heldout=True) with worker processes: every run comes back with its held-out loss kept in its
    folder (trained now, or finished before and not yet evaluated), so the caller evaluates nothing itself."""
    runs = RunMemo(tmp_path, jobs=2)
    try:
        first = runs.trained_many([{**MQAR, "seed": 0}])  # finished, never evaluated
        assert heldout.cached(first[0]["run_dir"]) is None
        out = runs.trained_many([{**MQAR, "seed": s} for s in (0, 1, 2)], heldout=True)
    finally:
        runs.close()
    assert all(heldout.cached(r["run_dir"]) is not None for r in out)
    monkeypatch.setattr("attnlab.train.loop.load_trained", lambda d: pytest.fail("evaluated again"))
    assert [runs.heldout_loss(r) for r in out] == [heldout.cached(r["run_dir"]) for r in out]
