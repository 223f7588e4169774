"""The math: arrays and tensors in, numbers out. No files, no cache, no plotting.

- `spectral`: singular values, norms, stable rank, rank-1 energy and top-k triplets of one matrix
  (float64 Gram route, exact).
- `heavytail`: power-law fits of empirical spectral densities (Clauset-Shalizi-Newman, as WeightWatcher)
  with likelihood-ratio tests against the alternatives.
- `alignment`: |cos| of singular vectors across steps, subspace overlaps, linearity of the rank-1
  trajectory (AlphaRL).
- `rank_k`: the rank-k part of an update, truncated or norm-matched (rank-k substitution).
- `grading`: answers of math, multiple-choice and exact-match problems, and pass@k.
- `arithmetic`: the demo's verifiable task (3-digit addition), its verifier and seeded disjoint splits (plain
  Python: `readers.datasets` serves its held-out split as the built-in `arithmetic` set).
- `stats`: intervals of accuracies, recoveries and means over seeds; the noise rule of recovery.
- `monitor`: the implicit-reward-overfitting monitor (trends of reward and test in a sliding window).

May import: numpy, scipy, torch (`spectral`, `rank_k`), powerlaw and math-verify (lazily), and nothing else
of `rlvr_core` but `rlvr_core.errors`.
"""
