"""The pictures `attnlab analyze` draws: token labels, the log colour scale and the browsable page."""

import json
import math
import re

import numpy as np
import pytest

from attnlab.report.attention_page import FLOOR, attention_page, decode, encode
from attnlab.report.heatmap import heatmap, token_label
from tests.helpers import needs_chromium, page_title_after_load


def test_token_labels_show_whitespace_and_stay_short():
    assert token_label(" the") == "␣the"
    assert token_label("\n\n") == "↵↵"
    assert token_label("") == "∅"
    assert token_label("abcdefghijklmnop", width=6) == "abcde…"


def test_encoded_weights_decode_to_within_the_stated_resolution():
    rng = np.random.default_rng(0)
    w = 10.0 ** rng.uniform(math.log10(FLOOR), 0, size=(3, 2, 5, 5))
    w[0, 0, 0, 1:] = 0.0  # masked entries stay exactly zero
    back = decode(encode(w), w.shape)
    assert np.all(back[w == 0] == 0) and np.all(back[w > 0] > 0)
    step = 10 ** (-math.log10(FLOOR) / 254)  # one byte level on the log scale: 3.7 %
    rel = back[w > 0] / w[w > 0]
    assert np.all(rel <= step ** 0.5 * 1.0001) and np.all(rel >= step ** -0.5 / 1.0001)
    assert decode(encode(np.array([1e-9])), (1,))[0] == pytest.approx(FLOOR)  # below the floor: the floor


def test_the_page_holds_every_head_and_its_tokens_and_cannot_be_closed_by_a_token(tmp_path):
    rng = np.random.default_rng(1)
    t = 6
    att = [np.tril(rng.dirichlet(np.ones(t), size=(2, t))) for _ in range(3)]  # 3 layers, 2 heads, causal zeros
    tokens = ["a", " b", "</script>", "\n", "é", "x"]
    page = attention_page(att, tokens, "toy <model>", tmp_path / "p.html").read_text()
    assert page.count("</script>") == 2  # the two script blocks' own ends, not the token's
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert data["tokens"] == tokens and (data["layers"], data["heads"]) == (3, 2)
    back = decode(data["weights"], (3, 2, t, t))
    np.testing.assert_allclose(back, np.maximum(np.stack(att), FLOOR) * (np.stack(att) > 0), rtol=0.02)
    assert "toy &lt;model&gt;" in page
    with pytest.raises(ValueError, match="t = 5 tokens"):
        attention_page(att, tokens[:5], "x", tmp_path / "q.html")


def test_a_heatmap_with_tokens_is_written(tmp_path):
    a = np.tril(np.full((4, 4), 0.25))
    p = heatmap(a, "toy", tmp_path / "h.png", tokens=["a", " b", "c", "\n"])
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_page_draws_a_head_and_reads_a_cell_back_in_chromium(tmp_path):
    """The page's script runs: it lists every layer and head, and hovering a cell names both tokens and the
    weight (to the page's resolution)."""
    att = [np.array([[[1.0, 0.0], [0.25, 0.75]]]), np.array([[[1.0, 0.0], [0.9, 0.1]]])]  # 2 layers, 1 head, t = 2
    page = attention_page(att, ["Hi", " there"], "toy", tmp_path / "p.html")
    probe = ("window.onload=function(){var ls=document.getElementById('layer');ls.value='1';ls.onchange();"
             "var cv=document.getElementById('cv'),r=cv.getBoundingClientRect(),c=cv.width/2;"
             "cv.onmousemove({clientX:r.left+c*1.5,clientY:r.top+c*1.5});"
             "document.title=ls.options.length+'|'+document.getElementById('head').options.length+'|'+"
             "document.getElementById('info').textContent}")
    layers, heads, info = page_title_after_load(page, probe, tmp_path / "profile").split("|")
    assert (layers, heads) == ("2", "1")
    assert info.startswith('query 1 " there"  →  key 1 " there":  weight ≈ '), info
    assert float(info.rsplit("≈", 1)[1]) == pytest.approx(0.1, rel=0.02)  # layer 1's weight, not layer 0's 0.75
