"""``attnlab bench ledger``: a sample of a recorded ledger's runs trained again, by probability proportional to
their seconds, and the ledger's cost scaled by the mean ratio (the numbers are checked against hand computations
and the runs' own summaries, never against a timing)."""

import collections
import json
import math

import pytest
from scipy import stats
from typer.testing import CliRunner

from attnlab.bench import ledger
from attnlab.claims.runner import PHASES, ReportingMemo
from attnlab.cli import app
from tests.train.test_memo import _tiny


def test_draws_are_proportional_to_the_recorded_seconds_and_skip_runs_without_any():
    runs = [{"claim": "A", "run": "a", "seconds": 30.0}, {"claim": "A", "run": "b", "seconds": 10.0},
            {"claim": "B", "run": "c", "seconds": 0.0}]
    counts = collections.Counter(d["run"] for d in ledger.draw(runs, 40_000, seed=1))
    assert set(counts) == {"a", "b"} and counts["a"] / 40_000 == pytest.approx(0.75, abs=0.01)
    assert ledger.draw(runs, 5, seed=3) == ledger.draw(runs, 5, seed=3)
    with pytest.raises(ValueError, match="no trained run with recorded seconds"):
        ledger.draw([{"claim": "B", "run": "c", "seconds": 0.0}], 3)


def test_the_ratio_is_unbiased_under_the_draw():
    """Σ p_i · now_i / rec_i with p_i ∝ rec_i is Σ now / Σ rec, whatever the runs' own ratios."""
    rec, now = [30.0, 10.0, 5.0], [15.0, 9.0, 6.0]
    expectation = sum(r / sum(rec) * n / r for r, n in zip(rec, now))
    assert expectation == pytest.approx(sum(now) / sum(rec))


def test_mean_interval_is_students_t():
    xs = [0.7, 0.8, 0.75, 0.9, 0.65]
    m, lo, hi = ledger.mean_interval(xs)
    ref = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / len(xs), scale=stats.sem(xs))
    assert m == pytest.approx(0.76) and (lo, hi) == pytest.approx(ref)
    with pytest.raises(ValueError, match="at least 2 draws"):
        ledger.mean_interval([1.0])


def _recorded_ledger(tmp_path):
    """A ledger of two claims whose four tiny runs were trained through the ledger's own memo."""
    out = tmp_path / "ledger"
    memo = ReportingMemo(out / "runs", phases=out / PHASES, matmul_gflops=60.0)
    memo.claim = "A1"
    memo.trained_many([_tiny(0), _tiny(1), _tiny(2)])
    memo.claim = "B1"
    memo.trained_many([_tiny(3)])
    base = {"statement": "s", "source": "t", "reason": "r", "measured": {}, "tolerance": "", "seeds": [0],
            "verdict": "holds", "seconds": 0.0}
    (out / "claims.json").write_text(json.dumps({"budget": "quick", "claims": [{**base, "id": "A1"},
                                                                                {**base, "id": "B1"}]}))
    return out


def test_a_recorded_ledger_is_retimed_from_its_runs_without_touching_them(tmp_path):
    out = _recorded_ledger(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")}
    r = ledger.retime(out, sample=6, jobs=1, seed=0)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*")} == before  # the ledger's memo untouched
    assert r["same_code"] and all(d["same_steps"] for d in r["draws"])  # the same runs, the same steps
    assert len(r["draws"]) == 6 and r["distinct_runs"] == len({d["run"] for d in r["draws"]})
    for d in r["draws"]:
        recorded = json.loads((out / "runs" / d["run"] / "summary.json").read_text())["seconds"]
        assert d["recorded_s"] == recorded and d["ratio"] == d["now_s"] / recorded
        assert d["claim"] == ("B1" if d["run"].startswith("par") and _seed_of(out, d["run"]) == 3 else "A1")
    m, lo, hi = r["ratio"]
    assert m == pytest.approx(sum(d["ratio"] for d in r["draws"]) / 6) and lo <= m <= hi
    assert r["cpu_seconds"] == pytest.approx([r["recorded_cpu_seconds"] * x for x in r["ratio"]])
    md = ledger.markdown(r)
    assert "6 draws" in md and "took the same steps again" in md and f"**{m:.2f}× [{lo:.2f}, {hi:.2f}]**" in md
    assert math.isfinite(r["matmul_gflops_now"]) and r["matmul_gflops_recorded"] == 60.0


def _seed_of(out, run):
    return json.loads((out / "runs" / run / "config.json").read_text())["seed"]


def test_bad_input_is_one_line(tmp_path):
    out = _recorded_ledger(tmp_path)
    for args, said in ((["--sample", "1"], "--sample must be at least 2"), (["--jobs", "-1"], "--jobs must be 0"),
                       (["--out", str(tmp_path)], "holds no ledger")):
        r = CliRunner().invoke(app, ["bench", "ledger", "--out", str(out), *args])
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, r.output
    import shutil

    from attnlab.claims.cost import write_digest

    write_digest(out)  # the cost survives the memo (runs.jsonl), the runs' configs do not
    for run in (out / "runs").iterdir():
        shutil.rmtree(run)
    r = CliRunner().invoke(app, ["bench", "ledger", "--out", str(out), "--sample", "2"])
    assert r.exit_code == 2 and "does not hold" in r.output and "from its recorded config" in r.output


def test_the_rate_now_is_one_cores(monkeypatch):
    """Each run trains on one thread: the rate it is compared with is measured on one, and the caller's count kept."""
    import torch

    from attnlab.bench import ops

    seen = []
    monkeypatch.setattr(ops, "matmul_gflops", lambda reps: seen.append(torch.get_num_threads()) or 50.0)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert ops.core_matmul_gflops() == 50.0 and seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_command_says_each_run_as_it_ends_and_writes_its_block(tmp_path):
    out = _recorded_ledger(tmp_path)
    md = tmp_path / "b.md"
    r = CliRunner().invoke(app, ["bench", "ledger", "--out", str(out), "--sample", "3", "--jobs", "1", "--json",
                                 "--markdown", str(md)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    said = [line for line in r.output.splitlines() if "trained again: " in line]
    assert len(said) == data["distinct_runs"] and said[-1].strip().startswith(f"{data['distinct_runs']}/")
    text = md.read_text()
    assert f"bench ledger --out {out} --sample 3 --jobs 1 --markdown {md}" in text and "Now over recorded" in text


def test_a_ledger_recorded_by_other_training_code_says_so(tmp_path, monkeypatch):
    from attnlab.train import memo

    out = _recorded_ledger(tmp_path)
    monkeypatch.setattr(memo, "code_hash", lambda: "0123456789")  # as if the trainer had changed since
    r = ledger.retime(out, sample=2, jobs=1, seed=0)
    assert not r["same_code"] and "has changed since the ledger was recorded" in ledger.markdown(r)
