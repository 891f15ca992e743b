"""``attnlab bench matmul``: the shapes are the products of a step, the fraction is the paired ratio of rates, and
bad input is one line (rates themselves are not asserted: a benchmark, not a test)."""

import json

import pytest
from typer.testing import CliRunner

from attnlab.bench import matmul
from attnlab.cli import app


def test_shapes_are_the_products_of_an_lm_step():
    got = {what: (m, k, n) for what, m, k, n in matmul.shapes(64, 1024, tokens=2048)}
    assert got["d 64: q, k, v together"] == (2048, 64, 192)
    assert got["d 64: SwiGLU up (×4, both halves)"] == (2048, 64, 512)
    assert got["d 64: MLP down"] == (2048, 256, 64)
    assert got["d 64: a projection's weight gradient"] == (64, 2048, 64)
    assert got["d 64, vocabulary 1024: head"] == (2048, 64, 1024)
    assert got["d 64, vocabulary 1024: head's input gradient"] == (2048, 1024, 64)


def test_fraction_is_the_paired_ratio_of_rates(monkeypatch):
    ref = 2.0 * 1024**3
    def fake(calls, reps, warmup):  # every shape takes its FLOPs at half the reference's rate, except round 2
        out = {"reference": [1.0] * reps}
        for what in calls:
            if what != "reference":
                m, k, n = next((m, k, n) for w, m, k, n in matmul.shapes(64, 256) if w == what)
                out[what] = [2.0 * (2.0 * m * k * n / ref)] * reps
                out[what][1] *= 4  # one slow round moves the interval's end, not the median
        return out

    monkeypatch.setattr(matmul, "interleaved", fake)
    r = matmul.run_bench((64,), (256,), reps=7)
    assert len(r["rows"]) == 7 and r["reference_gflops"] == pytest.approx(ref / 1e9)
    for row in r["rows"]:
        med, lo, hi = row["fraction"]
        assert med == pytest.approx(0.5) and lo == pytest.approx(0.125) and hi == pytest.approx(0.5)
    assert "| d 64: projection | [2048, 64] @ [64, 64] |" in matmul.markdown(r) and "50% [12%, 50%]" in \
        matmul.markdown(r)


def test_cli(tmp_path):
    md = tmp_path / "b.md"
    r = CliRunner().invoke(app, ["bench", "matmul", "--d-model", "32", "--vocab", "64", "--reps", "2", "--json",
                                 "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["reference_gflops"] > 0 and len(data["rows"]) == 7
    assert all(row["fraction"][1] is None for row in data["rows"])  # 2 rounds: no interval, and no Infinity
    assert "bench matmul --d-model 32 --vocab 64 --reps 2 --markdown" in md.read_text()
    r = CliRunner().invoke(app, ["bench", "matmul", "--vocab", "0"])
    assert r.exit_code == 2 and "--vocab values must be positive" in r.output
    r = CliRunner().invoke(app, ["bench", "matmul", "--reps", "0"])
    assert r.exit_code == 2 and "--reps must be >= 1" in r.output
