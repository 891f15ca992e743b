"""The arithmetic a finished run could not have done without: a lower bound of its FLOPs.

A ledger's cost in CPU time says how long its runs took on this machine; this says how long they had to
take on any machine of a given matmul rate, so the gap between the two is what faster code can still win
(`attnlab reproduce --cost`, :mod:`attnlab.claims.cost`).

The count is the usual ``6 · N`` per trained token and ``2 · N`` per evaluated token, with every choice
made downward so that the result bounds the work from below:

- ``N`` is the parameters of the model's body: the embedding (and the tied head it doubles as, which
  MQAR's trainer applies at the labelled positions only) and learned positions are left out.
- Quadratic attention adds ``QKᵀ`` and ``AV`` over the causal half only (``6 · L · T · d`` per trained
  token, a third of that per evaluated token), whatever the mask.
- Linear mixers' state updates, the short convolutions, the norms and the optimizer are not counted;
  nor is the held-out pass of a finished run.
- The evaluations are those of the run's validation curve, ``eval_batches`` batches each.

``attnlab bench train`` counts a step's FLOPs the usual way instead (the head at every position, the
whole attention square), since there the count is a rate's numerator, not a floor.
"""

from __future__ import annotations

QUADRATIC = frozenset({"softmax", "relu2_attn", "identity_attn"})  # mixers with a T × T score matrix


def _vocab(task: dict, model: dict) -> int:
    """The vocabulary the run's embedding was built with (the model's own, else the task's); for a BPE text
    task its nominal size, at least the trained tokenizer's, so subtracting it keeps the count a lower bound."""
    if model.get("vocab_size"):
        return int(model["vocab_size"])
    if "vocab_size" in task:
        return int(task["vocab_size"])
    if task.get("name") == "text":
        return int(task.get("bpe_vocab", 1024)) if task.get("tokenizer") == "bpe" else 256
    raise ValueError(f"task {task.get('name')!r} names no vocabulary: cannot count its run's body parameters")


def body_params(config: dict, params: int) -> int:
    """``params`` (a run's total) less its embedding, untied head and learned positions."""
    model = config["model"]
    d = int(model["d_model"])
    embed = _vocab(config["task"], model) * d * (1 if model.get("tie_embeddings", True) else 2)
    return max(0, int(params) - embed - int(model.get("positions") or 0) * d)


def run_flops(config: dict, summary: dict) -> dict[str, float]:
    """A lower bound of the FLOPs of a finished run (``config.json`` and ``summary.json`` of its folder, as
    dicts): ``train`` (its steps), ``eval`` (its validation curve's evaluations) and ``total``."""
    model, task = config["model"], config["task"]
    T, d, L = int(task["seq_len"]), int(model["d_model"]), int(model["n_layers"])
    n = body_params(config, summary["params"])
    attn = L * T * d if model["mixer"] in QUADRATIC else 0  # per token, the causal half's forward is 2 · attn
    seqs = int(config["batch_size"])
    trained = int(summary["steps"]) * seqs * T
    evals = len((summary.get("valid_curve") or {}).get("step", [])) * int(config["eval_batches"]) * seqs * T
    train, ev = trained * (6 * n + 6 * attn), evals * (2 * n + 2 * attn)
    return {"train": float(train), "eval": float(ev), "total": float(train + ev)}
