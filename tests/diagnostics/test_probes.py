"""The noise probe against the theory module's prediction; key–value overlap on known cases."""


import pytest
import torch

from attnlab.diagnostics import kv_overlap, noise_probe
from attnlab.theory.noise import predicted_error


@pytest.mark.parametrize("law,scale", [("gaussian", 0.5), ("uniform", 1.0)])
def test_noise_probe_matches_the_delta_method(law, scale):
    """Scores s_j ~ N(0, 1) in every row (d = 1: q = 1, k = s), v ~ N(0, 1): RMS error ≈ prediction."""
    n = 2048
    g = torch.Generator().manual_seed(0)
    s = torch.randn(1, n, 1, 1, generator=g, dtype=torch.float64)
    q = torch.ones(1, n, 1, 1, dtype=torch.float64)  # every query row sees the same scores s
    v = torch.randn(1, n, 1, 1, generator=g, dtype=torch.float64)
    r = noise_probe(q, s, v, law=law, scale=scale, mask="bidirectional", samples=2)
    pred = predicted_error(n, law, scale)
    assert r["abs_rms"] == pytest.approx(pred, rel=0.15)
    assert noise_probe(q, s, v, law=law, scale=0.0, mask="bidirectional", samples=1)["rel_error"] < 1e-12


def test_noise_probe_errors():
    x = torch.randn(1, 4, 1, 2)
    with pytest.raises(ValueError, match="law"):
        noise_probe(x, x, x, law="cauchy")
    with pytest.raises(ValueError, match="scale must be >= 0"):
        noise_probe(x, x, x, scale=-1.0)


def test_kv_overlap_known_cases():
    g = torch.Generator().manual_seed(0)
    k = torch.randn(500, 8, generator=g, dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    same = kv_overlap(k, k @ Q * 3 + 1)  # a rotation, a scale and a shift of k
    assert same["r2"] == pytest.approx(1.0, abs=1e-12) and same["cka"] == pytest.approx(1.0, abs=1e-12)
    indep = kv_overlap(k, torch.randn(500, 8, generator=g, dtype=torch.float64))
    assert indep["r2"] < 0.05 and indep["cka"] < 0.05
    half = kv_overlap(k, torch.cat([k[:, :4], torch.randn(500, 4, generator=g, dtype=torch.float64)], 1))
    assert half["r2"] == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="same number of tokens"):
        kv_overlap(k, k[:10])
    with pytest.raises(ValueError, match="need more tokens"):
        kv_overlap(k[:5], k[:5])
