"""The HTML report: self-contained, every claim in the verdict table, every image a real PNG."""

import base64
import re

from typer.testing import CliRunner

from attnlab.cli import app
from attnlab.report import render_report
from attnlab.report.figures import figure_png
from tests.helpers import needs_chromium, page_title_after_load

CLAIMS = [
    {"id": "A1", "statement": "x < y", "source": "test", "verdict": "holds", "reason": "x = 1 < y = 2",
     "measured": {"x": 1, "arr": list(range(50))}, "tolerance": "strict", "seeds": [0], "seconds": 0.1,
     "method": "compare", "figures": [{"title": "t", "xlabel": "n", "ylabel": "e", "logx": True, "logy": True,
                                       "series": [{"label": "a", "x": [1, 10, 100], "y": [1, 0.3, 0.1],
                                                   "yerr": [0.1, 0.05, 0.01]},
                                                  {"label": "b", "x": [1, 10], "y": [1, "nan"], "style": "o"}]}]},
    {"id": "A2", "statement": "<script>alert(1)</script>", "source": "test", "verdict": "pending",
     "reason": "no experiment", "measured": {}, "tolerance": "", "seeds": [], "seconds": 0.0},
]


def test_png_is_valid():
    png = figure_png(CLAIMS[0]["figures"][0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_report_is_self_contained_and_escaped():
    page = render_report(CLAIMS, "quick")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"(src|href)=\"https?://", page)
    table = page.split("<tbody>")[1].split("</tbody>")[0]
    assert table.count("<tr>") == 2 and 'href="#A1"' in table
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == 1 and base64.b64decode(imgs[0])[:4] == b"\x89PNG"


def test_reproduce_cli_writes_json_report_and_readme(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- verdicts:start -->\nSTALE-TABLE\n<!-- verdicts:end -->\nrest\n")
    r = CliRunner().invoke(app, ["reproduce", "--only", "C1,C6,D1", "--out", str(tmp_path / "res"),
                                 "--readme", str(readme)])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "res" / "report.html").read_text()
    for cid in ("C1", "C6", "D1"):
        assert f'href="#{cid}"' in page
    text = readme.read_text()
    assert "STALE-TABLE" not in text and "| C6 | **" in text and text.endswith("rest\n")


def test_report_only_rebuilds_from_claims_json_into_the_budget_block(tmp_path):
    import json

    res = tmp_path / "res"
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(res)])
    assert r.exit_code == 2 and "does not exist" in r.output
    res.mkdir()
    (res / "claims.json").write_text(json.dumps({"budget": "full", "claims": CLAIMS}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- verdicts:start -->\nQUICK\n<!-- verdicts:end -->\n"
                      "<!-- verdicts-full:start -->\nSTALE\n<!-- verdicts-full:end -->\n")
    r = CliRunner().invoke(app, ["reproduce", "--report-only", "--out", str(res), "--readme", str(readme)])
    assert r.exit_code == 0, r.output
    text = readme.read_text()
    assert "QUICK" in text and "STALE" not in text and "reproduce --full --readme" in text
    assert f"| {CLAIMS[0]['id']} | **{CLAIMS[0]['verdict']}** |" in text
    assert 'href="#A1"' in (res / "report.html").read_text() and (res / "verdicts.md").exists()


def test_reproduce_list_json_and_bad_only():
    import json

    r = CliRunner().invoke(app, ["reproduce", "--list", "--json"])
    rows = json.loads(r.output)
    assert len(rows) == 26 and {"id", "statement", "source"} <= set(rows[0])
    r = CliRunner().invoke(app, ["reproduce", "--only", "Q7"])
    assert r.exit_code == 2 and "unknown claim 'Q7'" in r.output


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    """Chromium loads the page; every claim is in the rendered table and no image is broken."""
    page = render_report(CLAIMS, "quick")
    # A probe script (added only for this test) records images that failed to decode.
    probe = ("window.onload=function(){var bad=[].filter.call(document.images,function(i){return "
             "!i.complete||i.naturalWidth===0}).length;var ids=[].map.call(document.querySelectorAll('#verdicts "
             "tbody tr td:first-child'),function(t){return t.textContent});document.title='RESULT '+bad+' '+ids.join(',')"
             "}")
    f = tmp_path / "r.html"
    f.write_text(page)
    m = re.fullmatch(r"RESULT (\d+) (.*)", page_title_after_load(f, probe, tmp_path / "profile"))
    assert m
    assert m.group(1) == "0", "broken images"
    assert m.group(2).split(",") == ["A1", "A2"]


def test_report_says_when_and_with_what_each_claim_ran():
    env = {"attnlab": "0.1.0", "commit": "abc123", "torch": "2.13.0", "threads": 2, "cuda": None}
    claims = [{**CLAIMS[0], "finished": "2026-11-22T21:05:00Z", "environment": env, "seconds": 3000.0},
              {**CLAIMS[1], "finished": "2026-11-23T00:41:30Z", "environment": env, "seconds": 3660.0}]
    page = render_report(claims, "full")
    assert "claims finished 2026-11-22 21:05 – 2026-11-23 00:41 UTC, 1 h 51 min of claim time" in page
    assert "finished 2026-11-22 21:05 UTC · attnlab 0.1.0 (abc123) · torch 2.13.0 · 2 threads" in page
    assert "0 s of claim time" in render_report(CLAIMS[1:], "quick")  # old ledgers without times still render
    native_env = {**env, "delta_chunk_cpu": "native"}
    page = render_report([{**CLAIMS[0], "finished": "2026-11-22T21:05:00Z", "environment": native_env}], "quick")
    assert "2 threads · native CPU delta kernel" in page
    assert "native CPU delta kernel" not in render_report(
        [{**CLAIMS[0], "environment": {**env, "delta_chunk_cpu": "pytorch (no C compiler)"}}], "quick")


def test_seed_figures_draw_on_a_named_axis():
    from attnlab.claims.seeds import seed_figure, stats

    groups = {"none": stats([1.0, 1.2, 0.9]), "K conv": stats([0.5, 0.6, 0.4])}
    fig = seed_figure("t", "loss", groups, hline=("chance", 1.5))
    assert fig.xticks == ["none", "K conv"]
    assert fig.series[0]["y"] == [1.0, 1.2, 0.9, 0.5, 0.6, 0.4] and fig.series[0]["x"] == [0, 0, 0, 1, 1, 1]
    paired = seed_figure("t", "loss", groups, paired=True)
    assert [s["y"] for s in paired.series[:3]] == [[1.0, 0.5], [1.2, 0.6], [0.9, 0.4]]  # one line per seed
    import dataclasses

    for f in (fig, paired):
        assert figure_png(dataclasses.asdict(f))[:8] == b"\x89PNG\r\n\x1a\n"


def test_decisions_are_tabled_and_undecided_has_its_badge():
    d = {"comparison": "K conv <beats> none", "effect": 0.12, "ci": [0.05, 0.19], "delta": 0.1, "n": 3,
         "method": "paired t, 95%", "outcome": "unresolved", "capped": True}
    claim = {**CLAIMS[0], "id": "A3", "verdict": "undecided", "measured": {"decisions": [d]}}
    page = render_report([claim], "quick")
    section = page.split('<section id="A3">')[1]
    assert "K conv &lt;beats&gt; none" in section and "[+0.05, +0.19]" in section
    assert "unresolved (step cap)" in section and "undecided" in section.split("</h2>")[0]


def test_every_arms_pilot_is_tabled_with_its_winner_however_the_claim_nests_its_arms():
    from attnlab.claims.arms import Arm

    k = Arm("k", 3e-2, {"0.001": 2.5, "0.003": 2.0, "0.01": 1.5, "0.03": 1.2, "0.1": 1.4}, [{"steps": 9}],
            {"0.001": 2.4, "0.003": 2.1, "0.01": 1.5, "0.03": 1.25, "0.1": 1.3})
    v = Arm("v", 3e-2, {}, [{"steps": 9, "stop_reason": "step_cap"}])
    training = {"mqar": [{"K": k.record(), "V": v.record()}], "text": {"none": k.record()}}
    page = render_report([{**CLAIMS[0], "id": "A4", "measured": {"training": training}}], "quick")
    pilots = page.split('<section id="A4">')[1].split("learning-rate pilots")[1]
    assert "mqar · #1 · K" in pilots and "text · none" in pilots and "mqar · #1 · V" in pilots
    assert "<b>0.03: 1.2000 / 1.2500</b>" in pilots and "0.1: 1.4000 / 1.3000" in pilots  # held-out chose
    assert "the family's pilot" in pilots and "<td>1/1</td>" in pilots
    assert "learning-rate pilots" not in render_report([CLAIMS[0]], "quick")


def test_docs_claims_md_is_the_registrys_own_text():
    """docs/claims.md is generated (`attnlab reproduce --list --markdown`): it cannot drift from the code."""
    from pathlib import Path

    from attnlab.claims.registry import REGISTRY, claims_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "claims.md"
    assert doc.read_text(encoding="utf-8").rstrip("\n") == claims_markdown().rstrip("\n"), \
        "docs/claims.md is stale: run `attnlab reproduce --list --markdown > docs/claims.md`"
    for cid in ("S4", "D2", "D4", "I1", "I5"):
        assert REGISTRY[cid].why and f"**Why.** {REGISTRY[cid].why}" in doc.read_text(encoding="utf-8")
