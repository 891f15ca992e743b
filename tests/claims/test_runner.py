"""The ledger's registry, runner, cache and JSON contract."""

import json
import shutil

import pytest

from attnlab.claims import REGISTRY, Budget, Evidence, registry, run_claims
from attnlab.claims import runner as runner_mod
from attnlab.claims.runner import parse_only

LEDGER = [f"R{i}" for i in range(1, 5)] + [f"I{i}" for i in range(1, 6)] + [f"S{i}" for i in range(1, 7)] + \
    [f"D{i}" for i in range(1, 5)] + [f"C{i}" for i in range(1, 8)]
FIELDS = {"id", "statement", "source", "verdict", "reason", "measured", "tolerance", "seeds", "seconds"}


def test_every_ledger_id_is_registered_in_order():
    assert list(REGISTRY) == LEDGER
    for c in REGISTRY.values():
        assert c.statement and c.source
        if c.run is not None:
            assert c.method and c.tolerance, f"{c.id}: a decision rule must be written before the run"


def test_parse_only():
    assert parse_only("s5, d1") == ["S5", "D1"] or parse_only("s5, d1") == ["D1", "S5"]
    assert parse_only("C") == [f"C{i}" for i in range(1, 8)]
    assert parse_only("") == LEDGER
    with pytest.raises(ValueError, match="unknown claim 'X9'"):
        parse_only("X9")


def test_budget_errors():
    with pytest.raises(ValueError, match="budget must be one of quick, full"):
        Budget.get("medium")


def test_evidence_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="verdict must be one of"):
        Evidence("maybe", "", {})


@pytest.fixture
def fake_claims(monkeypatch):
    """Two throwaway claims: one counts its runs, one crashes."""
    calls = {"n": 0}

    def ok(budget):
        calls["n"] += 1
        return Evidence("holds", "measured 1.0", {"x": 1.0, "bad": float("nan")}, seeds=[0])

    def boom(budget):
        raise RuntimeError("kaboom")

    reg = {"Z1": registry.Claim("Z1", "a fake claim", "test", "m", "t", ok),
           "Z2": registry.Claim("Z2", "a crashing claim", "test", "m", "t", boom),
           "Z3": registry.Claim("Z3", "a pending claim", "test")}
    monkeypatch.setattr(runner_mod, "REGISTRY", reg)
    return calls


def test_runner_caches_and_reports_errors(tmp_path, fake_claims):
    b = Budget.get("quick")
    res = run_claims(["Z1", "Z2", "Z3"], b, tmp_path)
    assert [r.verdict for r in res] == ["holds", "error", "pending"]
    assert "kaboom" in res[1].reason
    data = json.loads((tmp_path / "claims.json").read_text())  # strict JSON: NaN became a string
    assert data["budget"] == "quick"
    for c in data["claims"]:
        assert FIELDS <= set(c)
    assert data["claims"][0]["measured"]["bad"] == "nan"
    assert fake_claims["n"] == 1
    again = run_claims(["Z1"], b, tmp_path)
    assert again[0].cached and fake_claims["n"] == 1
    run_claims(["Z1"], b, tmp_path, force=True)
    assert fake_claims["n"] == 2
    with pytest.raises(ValueError, match="holds the 'quick' budget's results"):  # one budget per folder
        run_claims(["Z1"], Budget.get("full"), tmp_path)
    assert fake_claims["n"] == 2
    run_claims(["Z1"], Budget.get("full"), tmp_path / "full")
    assert fake_claims["n"] == 3
    kept = json.loads((tmp_path / "claims.json").read_text())
    assert kept["budget"] == "quick" and {c["id"] for c in kept["claims"]} == {"Z1", "Z2", "Z3"}


@pytest.mark.parametrize("damage", ["{not json", '{"budget": "quick"}', '{"claims": []}'])
def test_a_damaged_results_file_is_kept_aside_with_a_warning_and_rebuilt(tmp_path, fake_claims, damage):
    (tmp_path / "claims.json").write_text(damage)
    with pytest.warns(RuntimeWarning, match="is damaged"):
        res = run_claims(["Z1"], Budget.get("quick"), tmp_path)
    assert not res[0].cached and fake_claims["n"] == 1
    aside = list(tmp_path.glob("claims.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == damage


@pytest.mark.parametrize("cid", ["C1", "C2", "C3", "C4", "C6", "I2", "I4", "I5"])
def test_fast_claims_run_to_a_verdict(cid):
    """The cheap experiments run for real: a crash or an invalid verdict fails here, not in the report."""
    ev = REGISTRY[cid].run(Budget.get("quick"))
    assert ev.verdict in registry.VERDICTS
    assert ev.reason
    json.dumps(runner_mod._clean(ev.measured), allow_nan=False)


def test_seed_stats():
    from attnlab.claims.seeds import stats

    s = stats([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and abs(s["std"] - (2 / 3) ** 0.5) < 1e-12


def test_full_budget_scales_training_and_width_and_text_trains_longer_at_its_width():
    from attnlab.claims import recipes
    from attnlab.train import make_config

    q, f = Budget.get("quick"), Budget.get("full")
    for make in (lambda b: recipes.mqar("deltanet", 0, b, short_conv="k"), lambda b: recipes.markov(0, b, short_conv="k"),
                 lambda b: recipes.position("decoder", 0, b)):
        cq, cf = make(q), make(f)
        assert cf.steps == 3 * cq.steps and cf.model.d_model == 2 * cq.model.d_model
        assert make_config(cf) == cf  # a valid config, unchanged by the check
    assert len(f.seeds) == 5 and f.mc_samples == 10 * q.mc_samples
    # the text LMs keep their width and train longer instead
    tq, tf = (recipes.text("t", 0, b, mixer="softmax") for b in (q, f))
    assert tf.model.d_model == tq.model.d_model == 64 and tf.steps == 3 * recipes.TEXT_LONGER * tq.steps == 1350
    assert make_config(tf) == tf


def test_two_layer_mqar_waits_a_third_of_its_cap_before_a_plateau_stops_it():
    """A 2-layer model learns MQAR through a transition after a long plateau: the 100-step rule stopped a softmax
    baseline that goes on to solve the task, so such runs wait a third of their cap; one layer keeps the rule."""
    from attnlab.claims import recipes

    for b in (Budget.get("quick"), Budget.get("full")):
        for mixer in ("softmax", "deltanet", "linear_attn"):
            two = recipes.mqar(mixer, 0, b, steps=500)
            assert two.plateau.patience * two.eval_every >= two.steps / 3
            assert two.plateau.min_delta == recipes.PLATEAU.min_delta and two.early_stop is not None
            one = recipes.mqar(mixer, 0, b, n_layers=1, task=recipes.s5_task(64, 4))
            assert one.plateau == recipes.PLATEAU
    # at the full budget the wait is 500 steps (20 evaluations), not 4
    assert recipes.mqar("softmax", 0, Budget.get("full"), steps=500).plateau.patience == 20
    # never shorter than the shared rule, even for a short cap
    assert recipes.transition_plateau(10).patience == recipes.PLATEAU.patience


def test_every_arm_of_the_position_task_waits_a_third_of_its_cap():
    """Causal NoPE's noisy curve stopped seeds early under the 4-evaluation rule; every arm gets the same wait."""
    from attnlab.claims import recipes

    for b in (Budget.get("quick"), Budget.get("full")):
        for mode, positions in (("decoder", 0), ("bidirectional", 0), ("bidirectional", 32)):
            cfg = recipes.position(mode, 0, b, positions=positions)
            assert cfg.plateau == recipes.transition_plateau(cfg.steps)
            assert cfg.plateau.patience * cfg.eval_every >= cfg.steps / 3
    assert recipes.position("decoder", 0, Budget.get("full")).plateau.patience == 12  # 300 of 900 steps, not 100


def test_each_claim_records_when_and_where_it_ran(tmp_path, fake_claims):
    import re

    import torch

    from attnlab import __version__

    run_claims(["Z1", "Z2"], Budget.get("quick"), tmp_path)
    first = {c["id"]: c for c in json.loads((tmp_path / "claims.json").read_text())["claims"]}
    for c in first.values():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["finished"])
        env = c["environment"]
        assert env["attnlab"] == __version__ and env["torch"] == torch.__version__
        assert env["threads"] == torch.get_num_threads() and env["cpus"] >= 1
        assert env["delta_chunk_cpu"] == "native" or env["delta_chunk_cpu"].startswith("pytorch (")
    (tmp_path / "claims.json").write_text(json.dumps({"budget": "quick", "claims": [
        {**c, "finished": "2000-01-01T00:00:00Z"} for c in first.values()]}))
    again = run_claims(["Z1"], Budget.get("quick"), tmp_path)
    assert again[0].cached and again[0].finished == "2000-01-01T00:00:00Z"  # a cached claim keeps its own time


def test_git_commit_is_none_outside_a_checkout(tmp_path):
    from attnlab.claims.provenance import git_commit

    assert git_commit(tmp_path) is None  # not a checkout (an installed wheel)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_names_the_checkout_and_marks_local_edits(tmp_path):
    import subprocess

    from attnlab.claims.provenance import git_commit

    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(git + ["add", "f.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "c"], check=True)

    def head() -> str:
        return subprocess.run(git[:3] + ["rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()

    assert git_commit(tmp_path) == head()
    (tmp_path / "docs" / "results-full").mkdir(parents=True)
    for doc in ("docs/results-full/phases.jsonl", "README.md", "docs/results-full/README.md"):
        (tmp_path / doc).write_text("a")
        subprocess.run(git + ["add", doc], check=True)
    subprocess.run(git + ["commit", "-qm", "docs"], check=True)
    for doc in ("docs/results-full/phases.jsonl", "README.md", "docs/results-full/README.md"):
        (tmp_path / doc).write_text("b")  # a ledger appending its own results, the README's tables
    assert git_commit(tmp_path) == head()  # documentation is not code that ran
    (tmp_path / "f.txt").write_text("b")
    assert git_commit(tmp_path) == head() + "+dirty"


def test_a_second_reproduce_into_the_same_results_folder_fails_at_once(tmp_path, fake_claims):
    from tests.helpers import lock_held_elsewhere

    with lock_held_elsewhere(tmp_path) as pid:
        with pytest.raises(ValueError, match=f"being written by process {pid}"):
            run_claims(["Z1"], Budget.get("quick"), tmp_path)
        assert fake_claims["n"] == 0 and not (tmp_path / "claims.json").exists()
    run_claims(["Z1"], Budget.get("quick"), tmp_path)
    assert fake_claims["n"] == 1


def test_the_ledger_memo_says_what_it_trains_and_what_it_reuses(tmp_path):
    from attnlab.claims.runner import ReportingMemo

    def cfg(seed):
        return {"name": "tiny", "seed": seed, "steps": 2, "batch_size": 4, "eval_every": 2, "warmup": 1,
                "task": {"name": "markov", "vocab_size": 8, "seq_len": 16, "num_train": 64, "num_valid": 8},
                "model": {"d_model": 8, "n_layers": 1, "n_heads": 1, "mlp_ratio": 0}}

    said, ticks = [], []
    memo = ReportingMemo(tmp_path, report=said.append, tick=lambda done, total: ticks.append((done, total)))
    memo.trained_many([cfg(0)])
    memo.trained_many([cfg(0), cfg(1), cfg(1)])  # the same run twice is trained once
    memo.trained_many([cfg(0)])  # all reused: nothing to say
    assert said[0] == "training 1 run (0 reused, 1 at a time)" and said[1].startswith("trained 1 run in ")
    assert said[2] == "training 1 run (1 reused, 1 at a time)" and len(said) == 4
    assert ticks == [(0, 1), (1, 1), (0, 1), (1, 1)]
    ticks.clear()
    with ReportingMemo(tmp_path / "par", jobs=2, tick=lambda done, total: ticks.append((done, total))) as par:
        par.trained_many([cfg(2), cfg(3), cfg(4)])  # in two worker processes: one tick per finished run
    assert ticks == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_trained_claims_run_side_by_side_and_equal_a_serial_ledger(tmp_path, monkeypatch):
    """With jobs > 1 the claims that train share the workers: they overlap in time, a run both need trains once,
    each batch is recorded under its own claim, and the ledger equals a serial one."""
    import threading
    import time

    from tests.train.test_memo import _tiny

    spans = {}

    def trainer(cid, seeds):
        def run(budget, runs):
            t0 = time.perf_counter()
            got = runs.trained_many([_tiny(s) for s in seeds])
            spans[cid] = (t0, time.perf_counter(), threading.current_thread().name)
            return Evidence("holds", f"losses {[round(r['final_loss'], 6) for r in got]}", {}, seeds=seeds)
        return run

    reg = {"Z1": registry.Claim("Z1", "trains", "test", "m", "t", trainer("Z1", [0, 1, 2]), True),
           "Z2": registry.Claim("Z2", "trains too", "test", "m", "t", trainer("Z2", [2, 3, 4]), True),
           "Z3": registry.Claim("Z3", "a pending claim", "test")}
    monkeypatch.setattr(runner_mod, "REGISTRY", reg)
    # source hashes parse with ast, which CPython 3.11 cannot do in two threads at once: all of it in this thread
    from attnlab import sourcegraph
    from attnlab.claims import keys
    from attnlab.train import memo

    parsed_in = set()
    real = sourcegraph.imports_of
    monkeypatch.setattr(sourcegraph, "imports_of",
                        lambda *a: parsed_in.add(threading.current_thread().name) or real(*a))
    keys._code_hash_now.cache_clear()
    memo.code_hash.cache_clear()
    done = []
    par = run_claims(["Z1", "Z2", "Z3"], Budget.get("quick"), tmp_path / "par", jobs=2,
                     on_done=lambda r: done.append(r.id))
    (z1, z2) = spans["Z1"], spans["Z2"]
    assert z1[0] < z2[1] and z2[0] < z1[1] and z1[2] != z2[2]  # side by side, in two threads
    assert parsed_in == {threading.main_thread().name}
    measured = []
    serial = run_claims(["Z1", "Z2", "Z3"], Budget.get("quick"), tmp_path / "serial",
                        measure_rate=lambda: measured.append(1) or 61.9)
    assert measured == [1]  # once, before anything trained, and kept with every batch of runs
    assert {json.loads(x)["matmul_gflops"] for x in (tmp_path / "serial" / runner_mod.PHASES).read_text().splitlines()
            } == {61.9}
    run_claims(["Z1", "Z2", "Z3"], Budget.get("quick"), tmp_path / "serial", measure_rate=lambda: measured.append(2))
    assert measured == [1]  # all cached: nothing trains, nothing is measured
    assert [r.id for r in par] == ["Z1", "Z2", "Z3"] and sorted(done) == ["Z1", "Z2", "Z3"]
    assert [(r.verdict, r.reason) for r in par] == [(r.verdict, r.reason) for r in serial]
    assert len(list((tmp_path / "par" / "runs").iterdir())) == 5  # seed 2 trained once for both claims
    rows = [json.loads(x) for x in (tmp_path / "par" / runner_mod.PHASES).read_text().splitlines()]
    assert sorted((r["claim"], len(r["runs"])) for r in rows) == [("Z1", 3), ("Z2", 3)]
    assert not any("matmul_gflops" in r for r in rows)  # no rate was measured for this one
    written = json.loads((tmp_path / "par" / "claims.json").read_text())
    assert [c["id"] for c in written["claims"]] == ["Z1", "Z2", "Z3"]


def test_a_rerun_ranks_each_claims_batches_by_the_chain_its_folder_recorded(tmp_path, monkeypatch):
    """In an empty folder a claim's batch ranks by the batches it has handed over (order "done"); a rerun into the
    folder reads the record and ranks by the batches left (order "left"), counting down to the last."""
    from tests.train.test_memo import _tiny

    seen = []

    def run(budget, runs):
        for seed in (0, 1):
            runs.trained_many([_tiny(seed)])
            seen.append((runs.order, runs._current.rank))
        return Evidence("holds", "trained", {}, seeds=[0, 1])

    monkeypatch.setattr(runner_mod, "REGISTRY", {"Z1": registry.Claim("Z1", "trains", "test", "m", "t", run, True)})
    run_claims(["Z1"], Budget.get("quick"), tmp_path)
    assert seen == [("done", (0,)), ("done", (-1,))]
    seen.clear()
    run_claims(["Z1"], Budget.get("quick"), tmp_path, force=True)  # the runs are reused; the ranks are still set
    assert seen == [("left", (-2,)), ("left", (-1,))]
