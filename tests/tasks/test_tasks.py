"""Task generators: layouts against worked examples, MQAR against Zoology's rules, stateless batches."""

import pytest
import torch

from attnlab.tasks import IGNORE, MQAR, Markov, Positional, Text, multiquery_ar


def test_mqar_follows_zoology_rules():
    V, T, K = 64, 32, 6
    x, y = multiquery_ar(V, 200, T, K, random_non_queries=False, seed=3)
    assert x.shape == y.shape == (200, T)
    for xi, yi in zip(x, y):
        keys, vals = xi[0 : 2 * K : 2], xi[1 : 2 * K : 2]
        assert bool((keys >= 1).all() and (keys < V // 2).all()), "keys from the lower half (0 excluded)"
        assert bool((vals >= V // 2).all() and (vals < V).all()), "values from the upper half"
        assert len(set(keys.tolist())) == K and len(set(vals.tolist())) == K
        q_pos = (yi != IGNORE).nonzero()[:, 0]
        assert len(q_pos) == K, "one query per key"
        kv = dict(zip(keys.tolist(), vals.tolist()))
        queried = xi[q_pos].tolist()
        assert sorted(queried) == sorted(kv), "each key queried exactly once"
        assert all(yi[p].item() == kv[xi[p].item()] for p in q_pos), "label = the key's value, at the query"
        assert bool((q_pos >= 2 * K).all()) and bool(((q_pos - 2 * K) % 2 == 0).all()), "queries at even offsets"
        rest = torch.ones(T, dtype=torch.bool)
        rest[: 2 * K] = False
        rest[q_pos] = False
        assert bool((xi[rest] == 0).all())


def test_mqar_random_non_queries_and_errors():
    x0, y0 = multiquery_ar(64, 50, 32, 4, random_non_queries=False, seed=1)
    x1, y1 = multiquery_ar(64, 50, 32, 4, random_non_queries=True, seed=1)
    assert torch.equal(y0, y1) and torch.equal(x1[x0 != 0], x0[x0 != 0]) and bool((x1 != x0).any())
    with pytest.raises(ValueError, match="must exceed seq_len"):
        multiquery_ar(16, 1, 32, 4)
    with pytest.raises(ValueError, match="seq_len ≥ 4·num_kv_pairs"):
        multiquery_ar(128, 1, 32, 9)
    d = MQAR(num_train=10, num_valid=4).build(0)
    assert not torch.equal(d.train_inputs[:4], d.valid_inputs), "validation drawn apart from training"


def test_batches_are_stateless():
    d = MQAR(num_train=100, num_valid=10).build(0)
    a, b = d.batch(5, 8, seed=1), d.batch(5, 8, seed=1)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], d.batch(6, 8, seed=1)[0])


def test_markov_walks_follow_the_chain():
    d = Markov(vocab_size=16, seq_len=20, branching=2, num_train=50, num_valid=5).build(0)
    P = d.transitions
    x, y = d.train_inputs, d.train_labels
    assert torch.equal(x[:, 1:], y[:, :-1]), "labels are the next tokens"
    assert bool((P[x, y] > 0).all()), "every step is an edge of the chain"
    assert ((P > 0).sum(1) == 2).all()
    H = -(P * P.clamp_min(1e-300).log()).sum(1)
    assert 0 < d.optimum <= float(H.max()) + 1e-12
    det = Markov(vocab_size=8, branching=1, num_train=2, num_valid=1).build(0)
    assert det.optimum == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["copy", "reverse"])
def test_copy_and_reverse_layouts(kind):
    d = Positional(kind=kind, seq_len=9, num_train=5, num_valid=1).build(0)
    x, y = d.train_inputs[0], d.train_labels[0]
    content = x[:4]
    assert x[4] == 0
    expect = content if kind == "copy" else content.flip(0)
    assert torch.equal(y[4:8], expect)
    assert bool((y[:4] == IGNORE).all()) and y[8] == IGNORE


def test_position_task_and_errors():
    d = Positional(kind="position", seq_len=8, vocab_size=16, num_train=3, num_valid=1).build(0)
    assert torch.equal(d.train_labels[0], torch.arange(8))
    with pytest.raises(ValueError, match="vocab_size ≥ seq_len"):
        Positional(kind="position", seq_len=40, vocab_size=16).build(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Positional(kind="sort").build(0)


def test_text_split_windows_and_prefix(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(bytes(range(256)) * 20)
    d = Text(corpus=str(f), seq_len=16, valid_fraction=0.25).build(0)
    assert d.train_inputs.numel() == 3840 and d.valid_inputs.numel() == 1280
    assert torch.equal(torch.cat([d.train_inputs, d.valid_inputs]), torch.tensor(list(bytes(range(256)) * 20)))
    x, y = d.batch(0, 4, seed=0)
    assert torch.equal((x + 1) % 256, y), "labels are the next bytes"
    dp = Text(corpus=str(f), seq_len=16, prefix_len=6).build(0)
    _, yp = dp.batch(0, 4, seed=0)
    assert bool((yp[:, :5] == IGNORE).all()) and bool((yp[:, 5:] != IGNORE).all())
    with pytest.raises(ValueError, match="corpus must be"):
        Text(corpus=str(tmp_path / "missing")).build(0)


def test_builtin_corpora_are_available_offline():
    for corpus in ("shakespeare", "stdlib"):
        d = Text(corpus=corpus, max_bytes=200_000).build(0)
        assert d.train_inputs.numel() > 100_000
    sample = bytes(Text(max_bytes=200_000).build(0).train_inputs[:20000].tolist())
    assert b"thou" in sample.lower()


def test_bpe_tokenizer_is_trained_locally_and_round_trips():
    d = Text(tokenizer="bpe", bpe_vocab=400, max_bytes=300_000, seq_len=32).build(0)
    assert 257 <= d.vocab_size <= 400
    assert int(d.train_inputs.max()) < d.vocab_size
    ids = d.valid_inputs[:200].tolist()
    text = d.tokenizer.decode(ids)
    assert d.tokenizer.encode(text).ids == ids
    x, y = d.batch(0, 2, seed=0)
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(ValueError, match="bpe_vocab must be at least 257"):
        Text(tokenizer="bpe", bpe_vocab=100, max_bytes=10_000).build(0)
    with pytest.raises(ValueError, match="tokenizer must be 'bytes' or 'bpe'"):
        Text(tokenizer="words", max_bytes=10_000).build(0)


def test_text_worked_example(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("To be, or" * 50)
    d = Text(corpus=str(f), seq_len=8).build(0)
    assert bytes(d.train_inputs[:9].tolist()) == b"To be, or"


def test_hf_dataset_corpus_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ValueError, match="corpus 'hf:nobody/nothing'"):
        Text(corpus="hf:nobody/nothing").build(0)
