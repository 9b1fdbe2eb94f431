"""Non-neural baselines that go through the same evaluation.

Biases for ratings: ``r̂(u, i) = μ + b_u + b_i``, fitted by alternating ridge regression
(Koren, 2009): ``b_i = Σ_u (r - μ - b_u) / (λ + n_i)``, then
``b_u = Σ_i (r - μ - b_i) / (λ + n_u)``, a few sweeps. Popularity for ranking lives in
:func:`gnnrec.train.metrics.popularity_scores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RatingBiases:
    mean: float
    user_bias: np.ndarray  # [U]
    item_bias: np.ndarray  # [I]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.mean + self.user_bias[users] + self.item_bias[items]


def fit_rating_biases(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    num_users: int,
    num_items: int,
    reg: float = 10.0,
    sweeps: int = 10,
) -> RatingBiases:
    """``μ + b_u + b_i`` fitted on training ratings; unseen users and items get bias 0."""
    mean = float(ratings.mean())
    user_bias, item_bias = np.zeros(num_users), np.zeros(num_items)
    n_items = np.bincount(items, minlength=num_items) + reg
    n_users = np.bincount(users, minlength=num_users) + reg
    for _ in range(sweeps):
        residual = ratings - mean - user_bias[users]
        item_bias = np.bincount(items, residual, minlength=num_items) / n_items
        residual = ratings - mean - item_bias[items]
        user_bias = np.bincount(users, residual, minlength=num_users) / n_users
    return RatingBiases(mean, user_bias, item_bias)
