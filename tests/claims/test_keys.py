"""Claim cache keys follow the import graph: an edit changes exactly the keys of the claims that reach it."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from attnlab.claims import REGISTRY, Budget
from attnlab.claims.keys import PACKAGE_ROOT, claim_key, closure, imports_of
from attnlab.cli import app

QUICK = Budget.get("quick")
# the trained claims and the claims that share a module with one (I1 lives beside I2–I5): keys are per module
TRAINED_ON_RECIPES = {"I1", "I2", "I3", "I4", "I5", "S4", "S5", "D1", "D3", "D4", "C7"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "attnlab"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _keys(root):
    return {cid: claim_key(c, QUICK, root) for cid, c in REGISTRY.items() if c.run is not None}


@pytest.mark.parametrize(("edited", "expected"), [
    ("claims/recipes.py", TRAINED_ON_RECIPES),  # the shared MQAR/text/Markov recipes
    ("theory/noise.py", None),  # reached through diagnostics/noise.py by every claim that imports diagnostics
    ("claims/robustness.py", {"R1", "R2", "R3", "R4"}),
    ("diagnostics/trained.py", {"C7"}),
    ("ops/csrc/delta_chunk.c", None),  # a kernel's C source counts with the module that builds it
    ("claims/registry.py", None),
])
def test_an_edit_changes_exactly_the_keys_of_the_claims_that_reach_it(tree, edited, expected):
    before = _keys(tree)
    f = tree / edited
    original = f.read_bytes()
    try:
        f.write_bytes(original + b"\n// edited\n" if f.suffix == ".c" else original + b"\n# edited\n")
        after = _keys(tree)
    finally:
        f.write_bytes(original)
    changed = {cid for cid in before if before[cid] != after[cid]}
    reach = {cid for cid, c in REGISTRY.items() if c.run is not None and f in closure(tree, c.run.__module__)}
    assert changed == reach and changed
    if expected is not None:
        assert changed == expected
    assert _keys(tree) == before  # restored


def test_keys_on_the_installed_tree_equal_keys_on_a_copy_and_follow_the_budget(tree):
    assert _keys(tree) == {cid: claim_key(c, QUICK) for cid, c in REGISTRY.items() if c.run is not None}
    c = REGISTRY["C2"]
    assert claim_key(c, QUICK) != claim_key(c, Budget.get("full"))


def test_imports_are_read_from_the_source_including_lazy_ones(tree):
    mods = imports_of(tree, tree / "claims" / "pretrained.py")  # imports inside a function only
    assert {"attnlab.diagnostics.attention_stats", "attnlab.models.hf", "attnlab.tasks.text"} <= mods


@pytest.mark.parametrize("flag", ["--quick", "--full"])
def test_reproduce_list_json_shows_each_claims_key_for_the_budget(flag):
    r = CliRunner().invoke(app, ["reproduce", "--list", "--json", flag])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in json.loads(r.output)}
    b = Budget.get(flag[2:])
    assert all(rows[cid]["key"] == claim_key(c, b) and rows[cid]["budget"] == b.name for cid, c in REGISTRY.items())


def test_reproduce_list_says_which_results_a_folder_holds_for_the_current_keys(tmp_path):
    b = Budget.get("quick")
    out = tmp_path / "res"
    out.mkdir()
    ids = list(REGISTRY)
    held = [{"id": ids[0], "key": claim_key(REGISTRY[ids[0]], b), "verdict": "holds"},
            {"id": ids[1], "key": "0" * 16, "verdict": "holds"},
            {"id": ids[2], "key": claim_key(REGISTRY[ids[2]], b), "verdict": "error"}]
    (out / "claims.json").write_text(json.dumps({"budget": "quick", "claims": held}))
    r = CliRunner().invoke(app, ["reproduce", "--list", "--json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    status = {row["id"]: row["recorded"] for row in json.loads(r.output)}
    assert [status[c] for c in ids[:4]] == ["current", "stale", "error", None]
    r = CliRunner().invoke(app, ["reproduce", "--list", "--json", "--full", "--out", str(out)])
    assert {row["recorded"] for row in json.loads(r.output)} == {None}  # the folder holds the other budget
    (out / "claims.json").write_text("{not json")
    r = CliRunner().invoke(app, ["reproduce", "--list", "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and (out / "claims.json").read_text() == "{not json"  # read only: nothing moved aside
