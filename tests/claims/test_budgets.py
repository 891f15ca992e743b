"""Quick against full: opposite verdicts are found, every other difference is named with the comparisons
that moved."""

from attnlab.claims.budgets import differences, differences_markdown, kind, opposite, side_by_side_markdown


def claim(cid, verdict, **outcomes):
    return {"id": cid, "verdict": verdict, "measured": {"decisions": [
        {"comparison": k.replace("_", " "), "outcome": v, "effect": 0.1, "ci": [0.0, 0.2], "delta": 0.05, "n": 3,
         "method": "paired t, 95%", "capped": False} for k, v in outcomes.items()]}}


def test_kinds_of_difference():
    assert kind("holds", "holds") == "same"
    assert kind("holds", "refuted") == kind("refuted", "holds") == "opposite"
    assert kind("undecided", "holds") == kind("undecided", "caveat") == "decided at full"
    assert kind("holds", "undecided") == kind("caveat", "holds") == "differs"


def test_differences_name_the_comparisons_that_moved():
    quick = [claim("S4", "holds", a="supported"), claim("D1", "undecided", a="unresolved", b="supported"),
             claim("R1", "holds"), claim("X9", "refuted")]
    full = [claim("S4", "refuted", a="contradicted"), claim("D1", "holds", a="supported", b="supported",
                                                              c_reported="supported"),
            claim("R1", "holds")]
    rows = differences(quick, full)
    assert [r["id"] for r in rows] == ["S4", "D1"]  # R1 agrees; X9 is not in the full ledger
    assert rows[0]["kind"] == "opposite" and rows[0]["moved"] == [["a", "supported", "contradicted"]]
    assert rows[1]["kind"] == "decided at full"
    assert rows[1]["moved"] == [["a", "unresolved", "supported"], ["c reported", "—", "supported"]]
    assert opposite(quick, full) == ["S4"]
    md = differences_markdown(rows, compared=3)
    assert "2 of 3 claims differ" in md and "**1 opposite" in md
    assert "| S4 | holds | refuted | opposite | a: supported → contradicted |" in md
    assert differences_markdown([], compared=26) == "Quick and full agree on all 26 claims run at both budgets."


def test_side_by_side_lists_every_claim_of_both_ledgers_and_marks_those_that_differ():
    quick = [claim("R1", "holds"), claim("S4", "holds"), claim("D1", "undecided"), claim("X9", "refuted")]
    full = [claim("R1", "holds"), claim("S4", "refuted"), claim("D1", "holds")]
    md = side_by_side_markdown(quick, full).splitlines()
    assert md[0] == "| ID | quick | full | ID | quick | full |" and md[1] == "|---|---|---|---|---|---|"
    # two groups of two rows: R1, S4 down the first, D1 in the second, an empty cell to fill the table
    assert md[2] == "| R1 | holds | holds | D1 † | undecided | holds |"
    assert md[3] == "| S4 † | holds | refuted |  |  |  |"
    assert len(md) == 6 and md[-1].startswith("† the verdicts differ")  # X9 is not in the full ledger


def test_reproduce_against_prints_and_writes_the_differences(tmp_path):
    import json

    from typer.testing import CliRunner

    from attnlab.cli import app

    def ledger(name, budget, claims):
        d = tmp_path / name
        d.mkdir()
        full = [{**c, "statement": "s", "source": "post", "reason": "r", "tolerance": "t", "seeds": [0]} for c in claims]
        (d / "claims.json").write_text(json.dumps({"budget": budget, "claims": full}))
        return d

    q = ledger("q", "quick", [claim("D1", "undecided", a="unresolved"), claim("R1", "holds")])
    f = ledger("f", "full", [claim("D1", "holds", a="supported"), claim("R1", "holds")])
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- verdicts-full:start -->\nold\n<!-- verdicts-full:end -->\n"
                      "<!-- budgets:start -->\nold\n<!-- budgets:end -->\nend\n")
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(f), "--against", str(q),
                                 "--readme", str(readme)])
    assert r.exit_code == 0, r.output
    assert "1 of 2 claims differ" in r.stdout
    assert "| D1 † | undecided | holds | R1 | holds | holds |" in readme.read_text()
    assert "| D1 | undecided | holds | decided at full | a: unresolved → supported |" in r.stdout
    text = readme.read_text()
    assert "| D1 | undecided | holds | decided at full |" in text and text.endswith("<!-- budgets:end -->\nend\n")
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(f), "--against", str(f)])
    assert r.exit_code == 2 and "compares a quick and a full ledger" in r.output
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(f), "--against", str(tmp_path / "none")])
    assert r.exit_code == 2 and "--against:" in r.output and "does not exist" in r.output


def test_the_checked_in_quick_and_full_ledgers_are_never_opposite():
    """The README's two tables come from docs/results-quick and docs/results-full: no claim may hold at one
    budget and be refuted at the other (undecided at quick where full decides is allowed and reported)."""
    import json
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    quick = json.loads((docs / "results-quick" / "claims.json").read_text())
    full = json.loads((docs / "results-full" / "claims.json").read_text())
    assert (quick["budget"], full["budget"]) == ("quick", "full")
    assert len({c["id"] for c in quick["claims"]} & {c["id"] for c in full["claims"]}) == 26
    assert opposite(quick["claims"], full["claims"]) == []
