"""attnlab: a laboratory for attention mechanisms.

- :mod:`attnlab.ops`: pure math on ``q, k, v [batch, seq, heads, dim]``, each stateful family with a
  recurrent reference, a chunkwise fast form and a one-token step;
- :mod:`attnlab.mixers`: ``nn.Module`` token mixers built by name, each with ``attention_matrix``;
- :mod:`attnlab.theory`: the closed forms of the posts, checked by quadrature and Monte Carlo;
- :mod:`attnlab.claims`: the claim ledger, run by ``attnlab reproduce``.
"""

__version__ = "0.1.0"
