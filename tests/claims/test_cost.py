"""What a ledger costs: batches of runs recorded as they train, scheduled onto c CPUs."""

import itertools
import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from attnlab.bench import ops as bench_ops
from attnlab.claims.cost import DIGEST, cost_markdown, ledger_cost, schedule, write_digest
from attnlab.claims.runner import PHASES, ReportingMemo
from attnlab.claims.workqueue import ORDERS
from attnlab.cli import app


def best_schedule(seconds, cpus):
    """The optimum by brute force: every assignment of jobs to workers."""
    return min(max(sum(s for s, w in zip(seconds, ws) if w == k) for k in range(cpus))
               for ws in itertools.product(range(cpus), repeat=len(seconds)))


def test_schedule_on_one_cpu_is_the_sum_and_on_many_the_longest_job():
    assert schedule([3.0, 1.0, 2.0], 1) == 6.0 and schedule([3.0, 1.0, 2.0], 8) == 3.0 and schedule([], 4) == 0.0
    assert schedule([3, 3, 2, 2, 2], 2) == 7  # longest first is not always best (6): the 4/3 bound below


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=7), st.integers(1, 3))
def test_schedule_is_within_four_thirds_of_the_best(seconds, cpus):
    best = best_schedule(seconds, cpus)
    assert best - 1e-9 <= schedule(seconds, cpus) <= 4 / 3 * best + 1e-9


RUN_CONFIG = {"task": {"name": "mqar", "vocab_size": 8, "seq_len": 8}, "batch_size": 2, "eval_batches": 3,
              "model": {"d_model": 8, "n_layers": 1, "mixer": "linear_attn", "tie_embeddings": True, "positions": 0}}


def _ledger(tmp_path, phases):
    out = tmp_path / "results"
    base = {"statement": "s", "source": "t", "reason": "r", "measured": {}, "tolerance": "", "seeds": [0]}
    claims = [{**base, "id": "A1", "verdict": "holds", "seconds": 100.0},
              {**base, "id": "B1", "verdict": "holds", "seconds": 2.0},
              {**base, "id": "C1", "verdict": "caveat", "seconds": 50.0}]
    (out / "runs").mkdir(parents=True)
    (out / "claims.json").write_text(json.dumps({"budget": "quick", "claims": claims}))
    for name, sec in {"a": 40.0, "b": 30.0, "c": 20.0, "d": 10.0, "e": 5.0}.items():
        (out / "runs" / name).mkdir()
        # each run: 10 steps of 2 sequences of 8 tokens through a linear-attention body of 1000 parameters
        # (1064 less a 8 × 8 embedding), evaluated once on 3 batches: 160 · 6000 + 48 · 2000 = 1.056 MFLOP
        (out / "runs" / name / "summary.json").write_text(json.dumps({"seconds": sec, "steps": 10, "params": 1064,
                                                                      "valid_curve": {"step": [10]}}))
        (out / "runs" / name / "config.json").write_text(json.dumps(RUN_CONFIG))
    (out / PHASES).write_text("".join(json.dumps(p) + "\n" for p in phases))
    return out


def test_a_ledgers_cost_by_hand(tmp_path):
    out = _ledger(tmp_path, [
        {"session": "old", "claim": "A1", "runs": ["e"], "trained": 1, "seconds": 5.0},  # superseded by "new"
        {"session": "new", "claim": "A1", "runs": ["a", "b", "c"], "trained": 3, "seconds": 50.0},
        {"session": "new", "claim": "A1", "runs": ["d"], "trained": 1, "seconds": 10.0},
        {"session": "new", "claim": "C1", "runs": ["c", "e"], "trained": 1, "seconds": 5.0},  # c: A1 trained it
    ])
    cost = ledger_cost(out, cpus=(1, 2))
    a1, b1, c1 = cost["claims"]
    assert (a1["runs"], a1["batches"], a1["cpu_seconds"], a1["own_seconds"]) == (4, 2, 100.0, 40.0)
    assert a1["wall_seconds"] == {1: 140.0, 2: 40.0 + 50.0 + 10.0}  # {a | b, c} then {d}
    assert (b1["runs"], b1["own_seconds"], b1["wall_seconds"][2]) == (0, 2.0, 2.0)  # untrained: its own time
    assert (c1["runs"], c1["cpu_seconds"], c1["own_seconds"], c1["wall_seconds"][2]) == (1, 5.0, 45.0, 50.0)
    # side by side on 2 CPUs: a, b from 0; c from 30; C1's e from 40; A1's d when its first batch ends (50)
    assert cost["total"]["wall_seconds"] == {1: 87.0 + 105.0, 2: 87.0 + 60.0}
    assert cost["total"]["wall_seconds_one_by_one"] == {1: 140.0 + 2.0 + 50.0, 2: 100.0 + 2.0 + 50.0}
    # the total is the order a rerun takes (the longest chain left first); here A1 leads in every order
    by_order = cost["total"]["wall_seconds_by_order"]
    assert list(by_order) == list(ORDERS) and by_order["left"] == cost["total"]["wall_seconds"]
    assert by_order["fifo"] == by_order["done"] == {1: 87.0 + 105.0, 2: 87.0 + 60.0}
    assert (a1["flops"], b1["flops"], c1["flops"], cost["total"]["flops"]) == (4 * 1.056e6, 0.0, 1.056e6, 5 * 1.056e6)
    assert "matmul_share" not in a1 and cost["matmul_gflops"] is None
    assert [(r["claim"], r["run"], r["seconds"]) for r in cost["runs"]] == [  # each costed run once, under A1 first
        ("A1", "a", 40.0), ("A1", "b", 30.0), ("A1", "c", 20.0), ("A1", "d", 10.0), ("C1", "e", 5.0)]
    md = cost_markdown(cost, "quick")
    assert "on 1 / 2 CPUs it would take 3.2 / 2.5 min with the runs taken in the order they were queued, and " \
        "3.2 / 2.5 min ranked by the batches" in md
    assert "5 trained runs in 3 batches" in md and "| A1 | 4 | 2 | 1.7 | 0.7 | 2.3 | 1.7 | 0.0 |" in md
    assert "| B1 |" not in md and "matmul rate" not in md


def test_the_floor_at_a_matmul_rate_by_hand(tmp_path):
    out = _ledger(tmp_path, [{"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 70.0}])
    rate = 2.112e-6  # GFLOP/s: each run's 1.056 MFLOP takes 500 s of one core at this rate
    cost = ledger_cost(out, cpus=(1, 4), matmul_gflops=rate)
    a1, total = cost["claims"][0], cost["total"]
    assert a1["floor_seconds"] == pytest.approx({1: 1000.0, 4: 250.0}) and total["floor_seconds"] == a1["floor_seconds"]
    assert a1["matmul_share"] == pytest.approx(1000.0 / 70.0) and cost["claims"][1]["matmul_share"] is None
    md = cost_markdown(cost, "quick")
    assert "| A1 | 2 | 1 | 1.2 | 0.5 | 1.7 | 1.2 | 0.0 | 1429% |" in md
    assert "those FLOPs alone take 16.7 min on 1 CPU, 4.2 min on 4 CPUs" in md
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="matmul_gflops must be a positive rate"):
            ledger_cost(out, matmul_gflops=bad)


def test_each_claim_is_costed_at_the_rate_its_reproduce_recorded(tmp_path):
    """Recorded seconds move with the machine's speed from day to day: a claim's share of the matmul rate is
    computed at the rate measured as its runs began, not at one measured when the table is made."""
    out = _ledger(tmp_path, [
        {"session": "1", "claim": "A1", "runs": ["a", "b", "c", "d"], "trained": 4, "seconds": 60.0,
         "matmul_gflops": 2.112e-6},  # each run's 1.056 MFLOP: 500 s of one core at this rate
        {"session": "2", "claim": "C1", "runs": ["c", "e"], "trained": 1, "seconds": 5.0,
         "matmul_gflops": 4.224e-6},  # 250 s at this one
    ])
    cost = ledger_cost(out, cpus=(1,), measure=lambda: pytest.fail("a recorded rate is not measured again"))
    a1, _, c1 = cost["claims"]
    assert a1["matmul_share"] == pytest.approx(2000.0 / 100.0) and c1["matmul_share"] == pytest.approx(250.0 / 5.0)
    assert cost["total"]["matmul_share"] == pytest.approx(2250.0 / 105.0)
    assert cost["total"]["floor_seconds"] == pytest.approx({1: 2250.0})
    assert cost["recorded"] == {"A1": 2.112e-6, "C1": 4.224e-6} and cost["matmul_gflops"] == pytest.approx(3.168e-6)
    assert "the median of the rates each claim's `reproduce` recorded as its runs began" in cost_markdown(cost, "q")
    given = ledger_cost(out, cpus=(1,), matmul_gflops=2.112e-6)  # a given rate overrides the recorded ones
    assert given["recorded"] == {} and given["claims"][2]["matmul_share"] == pytest.approx(500.0 / 5.0)
    assert "measured as the table was made, or given" in cost_markdown(given, "q")


def test_a_claim_without_a_recorded_rate_has_the_table_measure_one(tmp_path):
    out = _ledger(tmp_path, [
        {"session": "1", "claim": "A1", "runs": ["a"], "trained": 1, "seconds": 40.0, "matmul_gflops": 2.112e-6},
        {"session": "2", "claim": "C1", "runs": ["e"], "trained": 1, "seconds": 5.0},  # recorded before rates were
    ])
    cost = ledger_cost(out, cpus=(1,), measure=lambda: 4.224e-6)
    assert cost["recorded"] == {} and cost["matmul_gflops"] == 4.224e-6
    assert cost["claims"][0]["matmul_share"] == pytest.approx(250.0 / 40.0)
    assert "matmul_share" not in ledger_cost(out, cpus=(1,))["claims"][0]  # no rate at all: no shares


def test_cost_is_one_line_where_the_batches_were_not_recorded(tmp_path):
    out = _ledger(tmp_path, [])
    (out / PHASES).unlink()
    r = CliRunner().invoke(app, ["reproduce", "--cost", "--out", str(out)])
    assert r.exit_code != 0 and "phases.jsonl does not exist" in r.output and "Traceback" not in r.output
    out.joinpath(PHASES).write_text(json.dumps({"session": "s", "claim": "A1", "runs": ["a"], "trained": 1,
                                                "seconds": 40.0}) + "\n")
    r = CliRunner().invoke(app, ["reproduce", "--cost", "--out", str(out)])
    assert r.exit_code == 0 and "min on 128 CPUs" in r.output and "% of matmul rate" in r.output
    r = CliRunner().invoke(app, ["reproduce", "--cost", "--json", "--out", str(out)])
    total = json.loads(r.output)["total"]
    assert total["cpu_seconds"] == 40.0 and total["flops"] == 1.056e6 and 0 < total["matmul_share"] < 1
    r = CliRunner().invoke(app, ["reproduce", "--cost", "--json", "--matmul-gflops", "2.112e-6", "--out", str(out)])
    assert json.loads(r.output)["total"]["floor_seconds"]["1"] == 500.0
    for args, said in ((["--cost", "--matmul-gflops", "0"], "matmul_gflops must be a positive rate, got 0.0"),
                       (["--matmul-gflops", "90"], "--matmul-gflops goes with --cost")):
        r = CliRunner().invoke(app, ["reproduce", *args, "--out", str(out)])
        assert r.exit_code != 0 and said in r.output and "Traceback" not in r.output


def test_the_memo_records_each_batch_of_runs_by_claim(tmp_path):
    from tests.train.test_memo import _tiny

    memo = ReportingMemo(tmp_path / "runs", phases=tmp_path / PHASES, matmul_gflops=61.9)
    memo.claim = "X1"
    memo.trained_many([_tiny(0), _tiny(1)])
    memo.claim = "X2"
    memo.trained_many([_tiny(1)])  # reused
    rows = [json.loads(x) for x in (tmp_path / PHASES).read_text().splitlines()]
    assert [(r["claim"], len(r["runs"]), r["trained"]) for r in rows] == [("X1", 2, 2), ("X2", 1, 0)]
    assert [r["matmul_gflops"] for r in rows] == [61.9, 61.9]
    assert rows[1]["runs"][0] == rows[0]["runs"][1] and (tmp_path / "runs" / rows[0]["runs"][0]).is_dir()


def test_the_ledgers_outputs_include_its_cost_where_its_runs_are_kept(tmp_path):
    out = _ledger(tmp_path, [{"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 40.0}])
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert r.exit_code == 0 and "| A1 | 2 | 1 | 1.2 |" in (out / "cost.md").read_text()
    written = (out / "cost.md").read_text()
    (out / "cost.md").unlink()
    shutil.rmtree(out / "runs" / "b")  # the memo lost a run: its digest keeps what the cost reads of it
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert r.exit_code == 0 and _rows(out / "cost.md") == _rows_of(written)
    (out / "cost.md").unlink()
    (out / DIGEST).unlink()
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert r.exit_code == 0 and "no cost.md" in r.output and not (out / "cost.md").exists()


def test_a_report_rebuilt_from_the_ledger_remakes_its_cost_at_recorded_rates_only(tmp_path, monkeypatch):
    """--report-only, perhaps run on another day, measures no rate: it remakes cost.md at the rates the runs recorded,
    and keeps a table whose ledger recorded none (its rate was given when it was made)."""
    monkeypatch.setattr(bench_ops, "core_matmul_gflops", lambda: pytest.fail("--report-only measures no rate"))
    out = _ledger(tmp_path, [{"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 40.0}])
    (out / "cost.md").write_text("_the table of the day, rate given_\n")
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert r.exit_code == 0 and "kept" in r.output
    assert (out / "cost.md").read_text() == "_the table of the day, rate given_\n"
    (out / PHASES).write_text(json.dumps({"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2,
                                          "seconds": 40.0, "matmul_gflops": 50.0}) + "\n")
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(out)])
    assert r.exit_code == 0 and "50.0 GFLOP/s" in (out / "cost.md").read_text()


def _rows_of(md: str) -> list[str]:
    """A cost table's rows without the matmul rate's share (measured anew each time)."""
    return [line.rsplit("|", 2)[0] for line in md.splitlines() if line.startswith("| ")]


def _rows(p) -> list[str]:
    return _rows_of(p.read_text())


def test_the_digest_costs_a_ledger_whose_memo_is_gone_and_is_refreshed_from_the_memo_where_it_holds_a_run(tmp_path):
    out = _ledger(tmp_path, [{"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 70.0},
                             {"session": "s", "claim": "C1", "runs": ["c"], "trained": 1, "seconds": 20.0}])
    assert write_digest(out) == 3
    before = ledger_cost(out, matmul_gflops=1.0)
    shutil.rmtree(out / "runs")
    assert ledger_cost(out, matmul_gflops=1.0) == before
    (out / "runs" / "c").mkdir(parents=True)  # a later sitting retrained c, taking 25 s this time
    (out / "runs" / "c" / "summary.json").write_text(json.dumps({"seconds": 25.0, "steps": 10, "params": 1064,
                                                                  "valid_curve": {"step": [10]}}))
    (out / "runs" / "c" / "config.json").write_text(json.dumps(RUN_CONFIG))
    assert write_digest(out) == 3 and ledger_cost(out)["total"]["cpu_seconds"] == 40.0 + 30.0 + 25.0
    shutil.rmtree(out / "runs")
    assert ledger_cost(out)["total"]["cpu_seconds"] == 95.0  # the digest kept a and b, and took c's new seconds


def test_a_claims_cost_is_that_of_the_session_that_produced_its_recorded_result(tmp_path):
    # A1's result finished in the session that started at 1000 s; a rerun that started at 5000 s has trained
    # one batch so far: until it replaces A1's result, A1 costs what its own session trained
    out = _ledger(tmp_path, [{"session": "1000-7", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 70.0},
                             {"session": "5000-9", "claim": "A1", "runs": ["d"], "trained": 1, "seconds": 10.0}])
    data = json.loads((out / "claims.json").read_text())
    data["claims"][0]["finished"] = "1970-01-01T00:30:00Z"  # 1800 s
    (out / "claims.json").write_text(json.dumps(data))
    assert ledger_cost(out)["claims"][0]["cpu_seconds"] == 70.0
    assert write_digest(out) == 3  # every session's runs: d too
    data["claims"][2]["measured"] = {"training": {}}  # C1 trained, and no batch of it was recorded
    (out / "claims.json").write_text(json.dumps(data))
    cost = ledger_cost(out)
    assert cost["uncosted"] == ["C1"] and "Not costed here, as their batches of runs were not recorded" in \
        cost_markdown(cost, "full") and ledger_cost(_ledger(tmp_path / "other", []))["uncosted"] == []
    data["claims"][0]["finished"] = "1970-01-01T02:00:00Z"  # 7200 s: the rerun replaced it
    (out / "claims.json").write_text(json.dumps(data))
    assert ledger_cost(out)["claims"][0]["cpu_seconds"] == 10.0



def test_a_run_costs_the_ledger_at_recorded_rates_only_and_keeps_a_table_it_cannot_rate(tmp_path, monkeypatch):
    """After a reproduce, cost.md is remade from the rates each reproduce recorded; none is measured then (the cores
    may be busy or it may be another day), so a ledger whose batches recorded none keeps the table it has."""
    import importlib

    cli_reproduce = importlib.import_module("attnlab.cli.reproduce")  # the module; the package names the command
    monkeypatch.setattr(bench_ops, "core_matmul_gflops", lambda: pytest.fail("no rate is measured after a run"))
    out = _ledger(tmp_path, [{"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 40.0}])
    (out / "cost.md").write_text("_the table of the day, rate given_\n")
    cli_reproduce._write_outputs(out, None, "quick")
    assert (out / "cost.md").read_text() == "_the table of the day, rate given_\n"
    (out / PHASES).write_text(json.dumps({"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2,
                                          "seconds": 40.0, "matmul_gflops": 50.0}) + "\n")
    cli_reproduce._write_outputs(out, None, "quick")
    assert "| A1 | 2 | 1 | 1.2 |" in (out / "cost.md").read_text() and "50.0 GFLOP/s" in (out / "cost.md").read_text()
    (out / "cost.md").unlink()
    (out / PHASES).write_text(json.dumps({"session": "s", "claim": "A1", "runs": ["a", "b"], "trained": 2,
                                          "seconds": 40.0}) + "\n")
    cli_reproduce._write_outputs(out, None, "quick")  # none yet: written, without a rate's columns
    assert "| A1 | 2 | 1 | 1.2 |" in (out / "cost.md").read_text()


def test_each_run_is_costed_at_the_rate_of_the_reproduce_that_trained_it(tmp_path):
    """A claim decided anew by a reproduce that trained nothing (it reused the runs: no rate recorded) is costed at
    the rates of the sessions that trained its runs; runs of two sessions give their FLOP-weighted harmonic mean."""
    out = _ledger(tmp_path, [
        {"session": "1", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 40.0,
         "matmul_gflops": 2.112e-6},  # each run's 1.056 MFLOP: 500 s of one core at this rate
        {"session": "2", "claim": "A1", "runs": ["c"], "trained": 1, "seconds": 20.0,
         "matmul_gflops": 4.224e-6},  # 250 s at this one
        {"session": "3", "claim": "A1", "runs": ["a", "b", "c"], "trained": 0, "seconds": 0.1},  # decided anew
    ])
    cost = ledger_cost(out, cpus=(1,), measure=lambda: pytest.fail("every run has the rate it trained at"))
    a1 = cost["claims"][0]
    assert a1["runs"] == 3 and a1["matmul_share"] == pytest.approx(1250.0 / 90.0)
    assert cost["recorded"]["A1"] == pytest.approx(3 * 1.056e6 / 1250.0 / 1e9)


def test_the_runs_are_also_costed_by_the_session_and_claim_that_trained_them(tmp_path):
    """One rate measured as a session began cannot follow the machine over hours: the table says, per session and
    claim, what share of its own session's rate the runs trained at (the sessions that trained nothing: no row)."""
    out = _ledger(tmp_path, [
        {"session": "100-1", "claim": "A1", "runs": ["a", "b"], "trained": 2, "seconds": 40.0,
         "matmul_gflops": 2.112e-6},  # each run's 1.056 MFLOP: 500 s of one core at this rate
        {"session": "200-1", "claim": "A1", "runs": ["c"], "trained": 1, "seconds": 20.0,
         "matmul_gflops": 4.224e-6},  # 250 s at this one
        {"session": "200-1", "claim": "C1", "runs": ["e"], "trained": 1, "seconds": 5.0, "matmul_gflops": 4.224e-6},
        {"session": "300-1", "claim": "A1", "runs": ["a", "b", "c"], "trained": 0, "seconds": 0.1},  # decided anew
    ])
    cost = ledger_cost(out, cpus=(1,))
    rows = [(s["started"], s["claim"], s["runs"], s["cpu_seconds"], s["matmul_gflops"]) for s in cost["sessions"]]
    assert rows == [("1970-01-01T00:01:40Z", "A1", 2, 70.0, 2.112e-6), ("1970-01-01T00:03:20Z", "A1", 1, 20.0, 4.224e-6),
                    ("1970-01-01T00:03:20Z", "C1", 1, 5.0, 4.224e-6)]
    assert [s["matmul_share"] for s in cost["sessions"]] == pytest.approx([1000.0 / 70.0, 250.0 / 20.0, 250.0 / 5.0])
    md = cost_markdown(cost, "quick")
    assert "| 1970-01-01 00:01 | 0.0 | A1 | 2 | 1.2 | 0.0 | 1429% |" in md
    assert "| 1970-01-01 00:03 | 0.0 | C1 | 1 | 0.1 | 0.0 | 5000% |" in md
    one = _ledger(tmp_path / "one", [{"session": "100-1", "claim": "A1", "runs": ["a"], "trained": 1, "seconds": 40.0,
                                      "matmul_gflops": 2.112e-6}])
    assert "By the `reproduce` that trained them" not in cost_markdown(ledger_cost(one, cpus=(1,)), "quick")
