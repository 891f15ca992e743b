"""Typed configs all the way down: sections are dataclasses, errors name the key path, dicts round-trip."""

import dataclasses

import pytest

from attnlab.models import LMConfig
from attnlab.tasks import MQAR, Markov
from attnlab.train import TrainConfig, apply_overrides, make_config
from attnlab.train.config import EarlyStop, to_dict

BASE = {"name": "t", "task": {"name": "mqar", "vocab_size": 16, "seq_len": 12, "num_kv_pairs": 2},
        "model": {"mixer": "deltanet", "short_conv": "k", "d_model": 16}, "steps": 5,
        "early_stop": {"metric": "accuracy", "threshold": 0.9}}


def test_sections_are_typed():
    cfg = make_config(BASE)
    assert isinstance(cfg.task, MQAR) and cfg.task.num_kv_pairs == 2
    assert isinstance(cfg.model, LMConfig) and cfg.model.short_conv == "k"
    assert cfg.early_stop == EarlyStop("accuracy", 0.9)


def test_a_typo_inside_a_section_is_found_when_the_config_is_made():
    with pytest.raises(ValueError, match=r"unknown key model\.dmodel \(did you mean 'd_model'\?\)"):
        make_config(apply_overrides(BASE, ["model.dmodel=32"]))
    with pytest.raises(TypeError, match=r"model\.short_conv must be str"):
        make_config(apply_overrides(BASE, ["model.short_conv=3"]))
    with pytest.raises(ValueError, match=r"model\.mixer: unknown mixer 'deltnet'"):
        make_config(apply_overrides(BASE, ["model.mixer=deltnet"]))
    with pytest.raises(ValueError, match=r"unknown key task\.pairs"):
        make_config(apply_overrides(BASE, ["task.pairs=3"]))
    with pytest.raises(ValueError, match=r"unknown key early_stop\.metrc"):
        make_config(apply_overrides(BASE, ["early_stop.metrc=loss"]))
    with pytest.raises(ValueError, match=r"early_stop\.metric must be 'accuracy' or 'loss'"):
        make_config(apply_overrides(BASE, ["early_stop.metric=f1"]))


def test_dict_form_round_trips_and_a_variant_is_a_replace():
    cfg = make_config(BASE)
    d = to_dict(cfg)
    assert d["task"]["name"] == "mqar" and d["model"]["d_model"] == 16
    assert make_config(d) == cfg
    var = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, short_conv=""))
    assert make_config(var).model.short_conv == "" and cfg.model.short_conv == "k"


def test_configs_built_in_code_are_checked_like_files():
    cfg = TrainConfig(task=Markov(vocab_size=8, seq_len=16), model=LMConfig(d_model=8, mixer="softmax"), steps=3)
    assert make_config(cfg) == cfg
    bad = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, mixer="nope"))
    with pytest.raises(ValueError, match="model.mixer: unknown mixer 'nope'"):
        make_config(bad)


def test_a_model_vocabulary_that_disagrees_with_the_task_is_an_error(tmp_path):
    from attnlab.train.loop import build_model

    with pytest.raises(ValueError, match=r"model\.vocab_size=99 disagrees with the task's vocabulary \(16\)"):
        build_model(make_config(apply_overrides(BASE, ["model.vocab_size=99"])))
    model, _ = build_model(make_config(BASE))
    assert model.cfg.vocab_size == 16


def test_a_sweep_file_may_build_its_configs_from_the_types(tmp_path):
    from attnlab.train.sweep import load_sweep

    f = tmp_path / "sweep.py"
    f.write_text("import dataclasses\nfrom attnlab.claims import Budget, recipes\n"
                 "base = recipes.mqar('deltanet', 0, Budget.get('quick'))\n"
                 "configs = [dataclasses.replace(base, name=f'lr{lr}', lr=lr) for lr in (1e-3, 3e-3)]\n")
    cfgs = load_sweep(f)
    assert [c.name for c in cfgs] == ["lr0.001", "lr0.003"] and cfgs[1].lr == 3e-3
    f.write_text("from attnlab.train import TrainConfig\nconfigs = [TrainConfig(name='a'), {'name': 'a'}]\n")
    with pytest.raises(ValueError, match="distinct name"):
        load_sweep(f)
