"""Run folders have one writer and one config (issue: nothing silent, nothing lost)."""

import json
import time

import pytest

from attnlab.train import make_config, train
from attnlab.train.ownership import differences, locked
from attnlab.train.sweep import finished
from tests.helpers import lock_held_elsewhere


def tiny(tmp_path, **kw):
    d = {"task": {"name": "markov", "vocab_size": 16, "seq_len": 24, "num_train": 300, "num_valid": 20},
         "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}, "steps": 6, "batch_size": 8,
         "eval_every": 3, "ckpt_every": 3, "log_every": 2, "warmup": 2, "out": str(tmp_path), "name": "tiny"}
    d.update(kw)
    return make_config(d)


def test_differences_name_nested_keys():
    assert differences({"lr": 1, "model": {"d": 2}}, {"lr": 1, "model": {"d": 3}}) == ["model.d: 2 → 3"]


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path):
    run_dir = tmp_path / "tiny"
    with lock_held_elsewhere(run_dir) as pid:
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=rf"being written by process {pid}"):
            train(tiny(tmp_path), progress=False)
        assert time.perf_counter() - t0 < 10, "the second writer must not wait"
        assert not (run_dir / "config.json").exists(), "nothing written by the refused writer"
    train(tiny(tmp_path), progress=False)  # the lock died with its holder
    with locked(run_dir):  # and was released by the finished run
        pass


def test_a_different_config_in_the_same_folder_is_refused_with_its_keys(tmp_path):
    train(tiny(tmp_path), progress=False)
    before = (tmp_path / "tiny" / "config.json").read_text()
    with pytest.raises(ValueError, match=r"different config \(lr: 0\.003 → 0\.01\)"):
        train(tiny(tmp_path, lr=0.01), progress=False)
    with pytest.raises(ValueError, match=r"model\.d_model: 16 → 32"):
        train(tiny(tmp_path, model={"d_model": 32, "n_layers": 1, "n_heads": 2, "mlp_ratio": 1}), resume=True,
              progress=False)
    assert (tmp_path / "tiny" / "config.json").read_text() == before


def test_a_finished_run_is_not_trained_over_but_can_be_extended(tmp_path):
    first = train(tiny(tmp_path), progress=False)
    with pytest.raises(ValueError, match="already holds this finished run"):
        train(tiny(tmp_path), progress=False)
    longer = train(tiny(tmp_path, steps=9), resume=True, progress=False)
    assert longer["steps"] == 9 and first["steps"] == 6
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["steps"] == 9


def test_a_sweep_entry_whose_config_changed_is_not_served_from_the_old_run(tmp_path):
    train(tiny(tmp_path), progress=False)
    assert finished(tiny(tmp_path))["steps"] == 6
    with pytest.raises(ValueError, match="lr: 0.003 → 0.001"):
        finished(tiny(tmp_path, lr=0.001))
