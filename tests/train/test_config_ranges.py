"""Settings are refused where they are declared when training would not mean what they say; config files that
are empty, malformed or missing give one line; the parser and --set never fail any other way (fuzzed)."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnlab.train import apply_overrides, make_config
from attnlab.train.config import load_file

BASE = {"task": {"name": "mqar"}}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("grad_clip", -1.0, "grad_clip must be a positive finite norm"), ("grad_clip", 0, "grad_clip must be"),
    ("min_lr_ratio", -5, "min_lr_ratio must be in [0, 1]"), ("weight_decay", -1, "weight_decay must be ≥ 0"),
    ("warmup", -100, "warmup must be ≥ 0"), ("threads", -3, "threads must be ≥ 1"),
    ("lr", float("nan"), "lr must be a positive finite number"), ("lr", 0, "lr must be"),
    ("betas", [0.9, 1.5], "betas must be two numbers in [0, 1)"), ("seed", -1, "seed must be ≥ 0"),
    ("name", "../../escape", "name must be one folder name"), ("name", "/abs", "name must be one folder name"),
    ("name", "", "name must be one folder name")])
def test_harmful_settings_are_refused_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        make_config({**BASE, key: value})


def test_no_clipping_is_spelled_null():
    assert make_config({**BASE, "grad_clip": None}).grad_clip is None


@pytest.mark.parametrize(("text", "message"), [("", "is empty"), ("{}", "is empty"),
                                               ("task: {name: mqar\nsteps: 3", "not valid YAML at line"),
                                               ("- 1\n- 2", "must hold a mapping")])
def test_bad_config_files_give_one_line_naming_the_file(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_file(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_missing_or_directory_config_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="is not a file"):
        load_file(tmp_path)


EXAMPLES = int(os.environ.get("ATTNLAB_FUZZ_EXAMPLES", "200"))
keys = st.sampled_from(["steps", "lr", "grad_clip", "name", "warmup", "model.d_model", "model.mixer", "task.name",
                        "task.seq_len", "model", "betas", "plateau.patience", "early_stop", "threads", "x.y"])
values = st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.sampled_from(["null", "[]", "{}", "true", "[0.9, 0.98]", "softmax", "markov", '"k"']))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(keys, values), max_size=4))
def test_set_overrides_either_build_a_config_or_fail_in_one_line(pairs):
    items = [f"{k}={v}" for k, v in pairs]
    try:
        cfg = make_config(apply_overrides(BASE, items))
    except (ValueError, TypeError) as e:
        assert str(e) and "\n" not in str(e)
        return
    assert cfg.steps >= 1 and cfg.lr > 0
