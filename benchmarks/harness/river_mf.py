"""river's ``reco.BiasedMF`` as a streaming model, ranking the whole catalogue from its weights.

Events map to ``learn_one(user, item, y)`` with ``y`` the action's weight (a skip is 0). The
log only holds what users did, so each positive event also teaches ``negatives`` items
drawn uniformly from the catalogue with ``y = 0``; without them every target is positive and
the model learns little beyond item biases.

Ranking reads river's weights into arrays and scores every item at once:
``global_mean + user_bias + item_bias + <user_latent, item_latent>``, which is what
``predict_one`` returns. Items river has not learned yet score with a zero bias and latent
(``predict_one`` would draw a random latent for them, and keep it).

>>> model = BiasedMF(["a", "b", "c"], weights={"view": 1.0, "skip": 0.0}, n_factors=4, negatives=0)
>>> model.learn([Event(u, item, action, 1) for u in ("u1", "u2") for item, action in (("a", "view"), ("b", "skip"))])
>>> model.recommend(["u3"], k=3, exclude=[()])  # c was never learned: zero bias, between a and b
[['a', 'c', 'b']]
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from river import optim, reco

from harness.models import ScoringModel, grown
from streamrec.events import Event


class BiasedMF(ScoringModel):
    name = "river-biased-mf"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None,
                 n_factors: int = 32, learning_rate: float = 0.02, l2: float = 1e-3, negatives: int = 4,
                 seed: int = 0) -> None:
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.negatives = negatives
        self.seed = seed
        self.river = reco.BiasedMF(
            n_factors=n_factors, bias_optimizer=optim.SGD(learning_rate), latent_optimizer=optim.SGD(learning_rate),
            l2_bias=l2, l2_latent=l2,
            latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed), seed=seed)
        self._rng = random.Random(seed)
        self._bias = np.zeros(0)
        self._latent = np.zeros((0, n_factors))
        self._dirty: set[str] = set()  # items learned since item_weights last copied them
        super().__init__(catalogue, weights)

    def _grow(self, capacity: int) -> None:
        self._bias = grown(self._bias, capacity)
        self._latent = grown(self._latent, capacity)

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            self.index_of(event.item_id)
            y = self.weight(event)
            self.river.learn_one(event.user_id, event.item_id, max(y, 0.0))
            self._dirty.add(event.item_id)
            if y > 0:
                for _ in range(self.negatives):
                    negative = self.ids[self._rng.randrange(self.n_items)]
                    if negative != event.item_id:
                        self.river.learn_one(event.user_id, negative, 0.0)
                        self._dirty.add(negative)

    def item_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n_items,)`` biases and ``(n_items, n_factors)`` latents, zero for unlearned items.

        Copied from river's dicts, only for the items learned since the last call.
        """
        for item in self._dirty:
            index = self.index_of(item)
            self._bias[index] = self.river.i_biases.get(item, 0.0)
            self._latent[index] = self.river.i_latents.get(item, 0.0)
        self._dirty.clear()
        return self._bias[: self.n_items], self._latent[: self.n_items]

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        bias, latent = self.item_weights()
        zero = np.zeros(self.n_factors)
        users = np.stack([self.river.u_latents.get(u, zero) for u in user_ids])
        user_bias = np.array([self.river.u_biases.get(u, 0.0) for u in user_ids])
        return self.river.global_mean.get() + user_bias[:, None] + bias[None, :] + users @ latent.T
