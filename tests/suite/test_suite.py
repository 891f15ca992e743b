"""A user-registered mixer goes through the contract checks, MQAR, diagnostics and speed in one call."""

import json

import pytest
import torch
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.mixers import MIXERS, Mixer, register_mixer
from attnlab.ops import attention, attention_probs
from attnlab.suite import contract, run_suite


@pytest.fixture(scope="module")
def user_mixer():
    class TempSoftmax(Mixer):
        """Softmax attention with a temperature (a user's mixer)."""

        def __init__(self, d_model, n_heads, *, temperature=2.0, **kw):
            super().__init__(d_model, n_heads, **kw)
            self.temperature = temperature

        def _scale(self, f):
            return 1 / (self.temperature * f["q"].shape[-1] ** 0.5)

        def mix(self, f, cache, prefix_len=None):
            if cache is not None:
                raise ValueError("no decoding cache")
            return attention(f["q"], f["k"], f["v"], scale=self._scale(f))

        def matrix(self, f, prefix_len=None):
            return attention_probs(f["q"], f["k"], scale=self._scale(f))

    if "temp_softmax" not in MIXERS:
        register_mixer("temp_softmax")(TempSoftmax)
    yield "temp_softmax"
    MIXERS.pop("temp_softmax", None)


def test_suite_runs_a_user_mixer(user_mixer):
    res = run_suite(user_mixer, {"temperature": 0.5}, steps=10)
    assert res["contract"]["matrix_reproduces_output"] is True
    assert res["contract"]["ignores_the_future"] is True
    assert res["contract"]["cache_equals_full"] is True  # the base class's default cache: mix never sees one
    assert set(res["mqar"]) == {"temp_softmax", "softmax"}
    assert 0 < res["mqar"]["temp_softmax"]["query_sparsity"] <= 1
    for r in res["speed"].values():
        lo, hi = r["ratio_range"]
        assert 0 < lo <= r["vs_softmax"] <= hi and r["reps"] >= 5 and r["within_noise"] == (lo <= 1 <= hi)


def test_the_same_mixer_against_itself_is_within_noise():
    from attnlab.suite import speed

    r = speed("softmax", {}, lengths=(64,), reps=15)["64"]
    assert r["within_noise"], r  # softmax against softmax: the paired ratios straddle 1


def test_contract_catches_a_leaky_mixer():
    class Leaky(Mixer):
        """Looks one token ahead while claiming to be causal."""

        def mix(self, f, cache, prefix_len=None):
            return torch.roll(f["v"], -1, dims=1)

        def matrix(self, f, prefix_len=None):
            b, t, h, _ = f["v"].shape
            return torch.roll(torch.eye(t), 1, dims=1).expand(b, h, t, t)

    register_mixer("leaky_test")(Leaky)
    try:
        res = contract("leaky_test", {})
        assert res["ignores_the_future"] is False
    finally:
        MIXERS.pop("leaky_test")


def test_suite_cli_errors_and_json(user_mixer):
    r = CliRunner().invoke(app, ["suite", "nope"])
    assert r.exit_code == 2 and "unknown mixer 'nope'" in r.output
    r = CliRunner().invoke(app, ["suite", user_mixer, "--options", "[1]"])
    assert r.exit_code == 2 and "--options must be a JSON object" in r.output
    r = CliRunner().invoke(app, ["suite", user_mixer, "--steps", "5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["mixer"] == user_mixer
