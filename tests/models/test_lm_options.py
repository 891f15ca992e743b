"""LM options: learned absolute positions and a fixed score scale (logit temperature)."""

import pytest
import torch

from attnlab.mixers import build_mixer
from attnlab.models import LM, LMConfig


def test_learned_positions_break_the_permutation_symmetry_of_bidirectional_nope():
    torch.manual_seed(0)
    x = torch.randint(0, 10, (1, 8))
    perm = torch.randperm(8)
    for positions, equivariant in ((0, True), (8, False)):
        m = LM(LMConfig(vocab_size=10, mode="bidirectional", positions=positions, mixer_options={"rope": False}))
        same = torch.allclose(m(x)[:, perm], m(x[:, perm]), atol=1e-5)
        assert same == equivariant


def test_learned_positions_refuse_longer_sequences_and_bad_values():
    m = LM(LMConfig(vocab_size=10, positions=4))
    with pytest.raises(ValueError, match="model.positions=4"):
        m(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="model.positions must be"):
        LM(LMConfig(vocab_size=10, positions=-1))


def test_score_scale_multiplies_the_scores():
    torch.manual_seed(0)
    a = build_mixer("softmax", 16, 2, rope=False)
    b = build_mixer("softmax", 16, 2, rope=False, score_scale=3.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 6, 16)
    fa, fb = a.features(x), b.features(x)
    sa = torch.einsum("bthd,bshd->bhts", fa["q"], fa["k"])
    sb = torch.einsum("bthd,bshd->bhts", fb["q"], fb["k"])
    assert torch.allclose(sb, 3 * sa, atol=1e-5)
    with pytest.raises(ValueError, match="score_scale must be a positive"):
        build_mixer("softmax", 16, 2, score_scale=0.0)


def test_short_conv_per_layer():
    m = LM(LMConfig(vocab_size=10, n_layers=2, mixer="deltanet", short_conv=["", "k"]))
    assert [blk.mixer.short_conv for blk in m.blocks] == ["", "k"]
    with pytest.raises(ValueError, match="model.short_conv lists 1 placements for n_layers=2"):
        LM(LMConfig(vocab_size=10, n_layers=2, short_conv=["k"]))


@pytest.mark.parametrize("mixer", ["softmax", "deltanet"])
def test_logits_at_a_mask_are_the_full_logits_there(mixer):
    torch.manual_seed(0)
    m = LM(LMConfig(vocab_size=12, d_model=16, n_heads=2, mixer=mixer))
    x = torch.randint(0, 12, (3, 9))
    at = torch.rand(3, 9) < 0.3
    at[0] = False  # a row with nothing to score
    full = m(x)
    assert torch.allclose(m(x, at=at), full[at], atol=1e-6)
    assert m(x, at=torch.zeros_like(at)).shape == (0, 12)


def test_logits_at_refuse_a_mask_of_the_wrong_kind():
    m = LM(LMConfig(vocab_size=12, d_model=16, n_heads=2))
    x = torch.randint(0, 12, (2, 5))
    for bad in (torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool), [True] * 5):
        with pytest.raises(ValueError, match="at must be a bool mask shaped like tokens"):
            m(x, at=bad)
