"""The in-context Bayes predictor of the Markov task against a brute-force posterior over every successor set,
a hand-checked case, and the losses' order (unigram ≥ Bayes ≥ the chains' own entropy)."""

import itertools
import math

import torch

from attnlab.tasks.markov import Markov, bayes_predictive, predictive_loss, unigram_predictive


def brute_force(counts: list[int], B: int, a: float) -> list[float]:
    """Sum over every successor set S of size B: P(S | counts) · E[w_j | S, counts], by the Dirichlet-multinomial."""
    V, N = len(counts), sum(counts)
    post, pred = [], []
    for S in itertools.combinations(range(V), B):
        if any(c > 0 and j not in S for j, c in enumerate(counts)):
            continue
        logp = math.lgamma(B * a) - math.lgamma(B * a + N) + sum(math.lgamma(a + counts[j]) - math.lgamma(a) for j in S)
        post.append(math.exp(logp))
        pred.append([(a + counts[j]) / (B * a + N) if j in S else 0.0 for j in range(V)])
    Z = sum(post)
    return [sum(w * p[j] for w, p in zip(post, pred)) / Z for j in range(V)]


def test_hand_checked_case():
    # V = 3, B = 2, α = 1: after 0 → 1 once, p(1 | 0) = 2/3 and the two unseen tokens share 1/3
    p = bayes_predictive(torch.tensor([[0, 1, 0]]), 3, 2, 1.0)[0, 2]
    assert torch.allclose(p, torch.tensor([1 / 6, 2 / 3, 1 / 6], dtype=torch.float64))
    assert torch.allclose(bayes_predictive(torch.tensor([[2]]), 3, 2, 1.0)[0, 0], torch.full((3,), 1 / 3).double())


def test_matches_the_brute_force_posterior_on_random_walks():
    task = Markov(vocab_size=6, seq_len=40, branching=3, concentration=0.7, in_context=True, num_train=2,
                  num_valid=4)
    data = task.build(5)
    x = data.valid_inputs
    p = bayes_predictive(x, 6, 3, 0.7)
    for b in range(x.shape[0]):
        for t in (0, 1, 7, 39):
            counts = [0] * 6
            for s in range(t):
                if int(x[b, s]) == int(x[b, t]):
                    counts[int(x[b, s + 1])] += 1
            assert torch.allclose(p[b, t], torch.tensor(brute_force(counts, 3, 0.7), dtype=torch.float64), atol=1e-12)


def test_rows_sum_to_one_and_losses_are_ordered():
    task = Markov(vocab_size=16, seq_len=64, branching=2, in_context=True, num_train=2, num_valid=128)
    data = task.build(0)
    bayes = bayes_predictive(data.valid_inputs, 16, 2, 1.0)
    uni = unigram_predictive(data.valid_inputs, 16)
    assert torch.allclose(bayes.sum(-1), torch.ones(()).double()) and torch.allclose(uni.sum(-1), torch.ones(()).double())
    lb, lu = predictive_loss(bayes, data.valid_labels), predictive_loss(uni, data.valid_labels)
    assert data.optimum < lb < lu
    assert data.transitions.shape == (128, 16, 16)
