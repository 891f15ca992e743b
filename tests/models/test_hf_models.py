"""The two real pretrained models load offline and give row-stochastic attention maps; analyze --json works."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.diagnostics.attention_stats import analyze_model
from attnlab.models.hf import load_hf

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings."


@pytest.fixture(scope="module", autouse=True)
def offline():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def smollm2():
    return load_hf("smollm2")


@pytest.fixture(scope="module")
def minilm():
    return load_hf("minilm")


def _ids(hf):
    return hf.tokenizer(TEXT, return_tensors="pt")["input_ids"]


def test_minilm_attention_is_bidirectional_and_row_stochastic(minilm):
    ids = _ids(minilm)
    att = minilm.attentions(ids)
    assert not minilm.causal and len(att) == 6
    assert att[0].shape == (1, 12, ids.shape[1], ids.shape[1])
    for A in att:
        assert torch.allclose(A.sum(-1), torch.ones(A.shape[:-1]), atol=1e-5)
    assert bool((att[0][0, 0].triu(1) > 0).any()), "an encoder attends to the future"


def test_smollm2_attention_is_causal_and_row_stochastic(smollm2):
    ids = _ids(smollm2)
    att = smollm2.attentions(ids)
    assert smollm2.causal and len(att) == 30
    assert att[0].shape == (1, 9, ids.shape[1], ids.shape[1])
    for A in att:
        assert torch.allclose(A.sum(-1), torch.ones(A.shape[:-1]), atol=1e-5)
        assert bool((A[0].triu(1) == 0).all()), "upper triangles exactly zero"
    # the dequantised weights are a working language model, not noise: "be" follows "To be, or not to"
    logits = smollm2.model(input_ids=ids).logits[0]
    nxt = smollm2.tokenizer.decode(logits[5].argmax())
    assert "be" in nxt


def test_query_keys_give_back_the_models_own_attention_under_its_mask(smollm2):
    ids = _ids(smollm2)
    att = smollm2.attentions(ids)
    qk = smollm2.query_keys(ids)
    t = ids.shape[1]
    assert len(qk) == 30 and qk[0][0].shape == qk[0][1].shape == (1, 9, t, 64)
    for (q, k, scale), A in zip(qk, att):
        scores = (q @ k.transpose(-1, -2) * scale).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -torch.inf)
        assert torch.allclose(scores.softmax(-1), A, atol=1e-6)


def test_analyze_statistics_are_in_bounds(smollm2):
    res = analyze_model(smollm2, TEXT * 3, window=32, max_tokens=64)
    assert res["windows"] == 2 and len(res["layers"]) == 30
    for L in res["layers"]:
        assert all(0 <= h <= res["log_window"] + 1e-9 for h in L["entropy"]["mean"])
        assert all(0 < s <= 1 for s in L["sparsity"]["mean"])
    assert res["causal_positive_diagonal"] is True


def test_analyze_cli_json(tmp_path, monkeypatch):
    for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(k, "")  # analyze sets them for its process; leave this one's as they were
        monkeypatch.delenv(k)
    f = tmp_path / "t.txt"
    f.write_text(TEXT * 4)
    r = CliRunner().invoke(app, ["analyze", "--model", "minilm", "--text", str(f), "--max-tokens", "48", "--window",
                                 "24", "--json", "--out", str(tmp_path / "o"), "--heads", "0:1"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["model"] == "minilm" and len(data["layers"]) == 6
    assert set(data["layers"][0]) >= {"entropy", "sparsity", "eff_rank_frac", "num_rank_frac"}
    assert (tmp_path / "o" / "minilm-L0-H1.png").exists() and data["heatmaps"] == [str(tmp_path / "o" / "minilm-L0-H1.png")]
    assert (tmp_path / "o" / "minilm-attention.html").exists()
    assert data["heatmap_tokens"] == 64  # the pictures show the text's first 64 tokens, whatever --max-tokens
    assert (data["window"], data["window_requested"], data["tokens"], data["windows"]) == (24, 24, 48, 2)


def test_analyze_records_the_window_it_used_and_fits_80_columns(tmp_path, monkeypatch):
    """Fewer tokens than --window: the window used (and its log t) is the one printed and recorded."""
    for k in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    monkeypatch.setenv("COLUMNS", "80")
    f = tmp_path / "t.txt"
    f.write_text(TEXT * 4)
    r = CliRunner().invoke(app, ["analyze", "--model", "minilm", "--text", str(f), "--max-tokens", "40", "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "o" / "analysis.json").read_text())
    assert (data["window"], data["window_requested"], data["tokens"]) == (40, 128, 40)
    assert data["log_window"] == pytest.approx(math.log(40))
    assert "log 40 = 3.69" in r.stdout and "not the 128 of --window" in r.stdout
    table = [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(table) > 6 and all(len(line) <= 80 for line in table)
    assert "[" in table[-2]  # one model: each cell keeps its range over heads
    r = CliRunner().invoke(app, ["analyze", "--model", "minilm", "--compare", "minilm", "--text", str(f),
                                 "--max-tokens", "40", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    table = [line for line in r.stdout.splitlines() if line[:1] in "┏┃┡│└"]
    assert all(len(line) <= 80 for line in table) and "H nats A" in r.stdout and "H nats B" in r.stdout


def test_analyze_prints_no_library_progress_bars(tmp_path):
    """Loading SmolLM2 de-quantises its GGUF file; transformers draws a tqdm bar for it unless told not to."""
    import subprocess
    import sys

    f = tmp_path / "t.txt"
    f.write_text(TEXT)
    r = subprocess.run([sys.executable, "-m", "attnlab.cli", "analyze", "--model", "smollm2", "--text", str(f),
                        "--max-tokens", "8", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "GGUF" not in r.stderr and "it/s" not in r.stderr, r.stderr


    r = CliRunner().invoke(app, ["analyze", "--model", "nope/not-here", "--text", str(f), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0
    r = CliRunner().invoke(app, ["analyze", "--model", "minilm"])
    assert r.exit_code == 2 and "exactly one of --text FILE and --corpus NAME" in r.output
