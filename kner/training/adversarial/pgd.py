"""PGD: projected gradient descent on the word embeddings, the L2 attack of
Madry et al. ("Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018) in the form NLP taggers train with: lonePatient's
BERT-NER-Pytorch, `callback/adversarial.py` `PGD` (K = 3, alpha 0.3,
epsilon 1.0, `emb_name='word_embeddings.'`).

One step, with g_0 the clean pass's gradient of the word-embedding matrix E
and r_0 = 0:

    for k = 1..K:  r_k = project(r_{k-1} + alpha * g_{k-1} / ||g_{k-1}||)
                   E = E_0 + r_k; a forward and backward pass gives g_k
    project(r) = r * epsilon / ||r|| if ||r|| > epsilon else r

Passes 1..K-1 only need g_k, the gradient of E (a backward pass without the
other weights' gradients); pass K gives every gradient. E is restored to
E_0, and the optimizer applies the clean gradients plus those of pass K
(lonePatient keeps the clean gradients aside during passes 1..K-1 and adds
pass K's to them). Each g is the global-batch gradient
(`Adversary.direction`). With K = 1 and alpha = epsilon this is FGM. A step
costs K + 1 forward and backward passes.

Example:
>>> pgd = PGD(word_embeddings(model), epsilon=1.0, steps=3, alpha=0.3)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kner.training.adversarial.base import Adversary, Gradient, GradientsAt


def project(perturbation: tf.Tensor, epsilon: float) -> tf.Tensor:
    """`perturbation` scaled back onto the sphere of radius `epsilon` when
    its L2 norm exceeds it, else unchanged."""
    norm = tf.norm(perturbation)
    return tf.where(norm > epsilon, perturbation * (epsilon / tf.maximum(norm, epsilon)), perturbation)


class PGD(Adversary):
    """See the module docstring.

    Args:
        embeddings, epsilon: as `Adversary`'s (epsilon: the ball's radius).
        steps: K >= 1, the perturbation steps (and extra passes).
        alpha: the length of each step, > 0.
    """

    name = "pgd"
    options = ("epsilon", "steps", "alpha")

    def __init__(self, embeddings: keras.Variable, epsilon: float = 1.0, steps: int = 3, alpha: float = 0.3):
        super().__init__(embeddings, epsilon)
        if steps < 1:
            raise ValueError(f"adversarial steps must be >= 1, got {steps}")
        if not alpha > 0:
            raise ValueError(f"adversarial alpha must be > 0, got {alpha}")
        self.steps, self.alpha = int(steps), float(alpha)

    @property
    def passes(self) -> int:
        return self.steps

    def describe(self) -> str:
        return (
            f"PGD on the word embeddings, {self.steps} steps of {self.alpha:g} within epsilon {self.epsilon:g} "
            f"({self.steps + 1} forward-backward passes a step)"
        )

    def attack(
        self, original: tf.Tensor, gradient: Gradient, gradients_at: GradientsAt, loss_scale: tf.Tensor | float
    ) -> list[Gradient]:
        perturbation = None
        for step in range(self.steps):
            move = self.alpha * self.direction(gradient, loss_scale)
            perturbation = project(move if perturbation is None else perturbation + move, self.epsilon)
            self.assign(original + perturbation)
            if step < self.steps - 1:
                (gradient,) = gradients_at(True)
        return gradients_at(False)
