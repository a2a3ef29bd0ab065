"""What every adversarial method is: the interface the training step calls,
and the pieces FGM and PGD share.

After the clean forward and backward pass, `Adversary.gradients` moves the
word-embedding matrix E (`[vocab, width]`, the table the token ids index)
along its gradient, runs more forward and backward passes there through
`gradients_at`, puts E back exactly (it assigns the value it read, it does
not subtract the perturbation), and returns the gradients the optimizer
applies: the clean ones plus the adversarial ones. The trainer's step is

    terms, clean = compute_gradients(batch)
    gradients = adversary.gradients(clean, variables, gradients_at, loss_scale)
    optimizer.apply(gradients, variables)

The direction of every perturbation is that of the *global-batch* gradient
of E: densified (a token seen twice gives one row, its two rows summed, as
`kner.training.optimization.FineTuningAdamW` treats embedding gradients),
divided by the loss scale (`mixed_float16`), summed over the replicas, so
that every replica moves its copy of E by the same r under every
`tf.distribute` strategy. A zero or non-finite gradient (a loss-scale
overflow, whose step the optimizer skips anyway) moves nothing.

Everything runs in the replica context of `tf.distribute.Strategy.run` (or
eagerly, without a strategy); E is assigned through
`strategy.extended.update`, as Keras' optimizers update variables.

Example:
>>> adversary = FGM(model.backbone.token_embedding.embeddings, epsilon=1.0)
>>> gradients = adversary.gradients(clean, model.trainable_variables, gradients_at, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import keras
import tensorflow as tf

Gradient = tf.Tensor | tf.IndexedSlices
# gradients_at(embeddings_only): the gradients of the (scaled) loss on this
# replica's batch at the weights as they are now, one forward and one
# backward pass: of every variable of `variables`, in order, or, when
# embeddings_only, a one-element list holding E's.
GradientsAt = Callable[[bool], list[Gradient]]


class Adversary:
    """One adversarial training method; subclasses set `name` and implement
    `gradients`.

    Class attributes:
        name: the `--adversarial` value and the registry key
            (`kner.training.adversarial.ADVERSARIES`).
        options: the settings its constructor takes besides `embeddings`
            (each the `--adversarial_<option>` flag).

    Args:
        embeddings: the word-embedding matrix E, a trainable variable of
            the model (`word_embeddings`).
        epsilon: the L2 norm of the perturbation (FGM), or the radius of the
            ball it stays in (PGD); > 0.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ("epsilon",)

    def __init__(self, embeddings: keras.Variable, epsilon: float = 1.0):
        if not epsilon > 0:
            raise ValueError(f"adversarial epsilon must be > 0, got {epsilon}")
        self.embeddings = embeddings
        self.epsilon = float(epsilon)

    @property
    def passes(self) -> int:
        """Forward and backward passes a step takes on top of the clean one."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the run's log: the method and its settings."""
        raise NotImplementedError

    def gradients(
        self,
        clean: Sequence[Gradient],
        variables: Sequence[keras.Variable],
        gradients_at: GradientsAt,
        loss_scale: tf.Tensor | float,
    ) -> list[Gradient]:
        """The gradients to apply, one per variable of `variables`: `clean`
        plus those of the method's last pass (`attack`), with E restored.

        Args:
            clean: the clean pass's gradients of the scaled loss, one per
                variable (None for a variable without one).
            variables: the variables the optimizer updates; E is one of them.
            gradients_at: runs another pass at the current weights (see
                `GradientsAt`).
            loss_scale: what the loss was multiplied by before the backward
                passes (`optimizer.scale_loss(1.0)`: 1 but under
                `mixed_float16`); the perturbation divides it out, the
                returned gradients keep it (the optimizer divides it out).
        """
        original = self.read()
        adversarial = self.attack(original, clean[self.index(variables)], gradients_at, loss_scale)
        self.assign(original)
        return add_gradients(clean, adversarial)

    def attack(
        self, original: tf.Tensor, gradient: Gradient, gradients_at: GradientsAt, loss_scale: tf.Tensor | float
    ) -> list[Gradient]:
        """Moves E away from its value `original` (starting from the clean
        pass's `gradient` of E) through `assign`, runs the passes, and
        returns the gradients of the last, full one (`gradients_at(False)`);
        `gradients` restores E."""
        raise NotImplementedError

    # ---- shared pieces -----------------------------------------------------

    def index(self, variables: Sequence[keras.Variable]) -> int:
        """Where E is in `variables`."""
        for i, variable in enumerate(variables):
            if variable is self.embeddings:
                return i
        raise ValueError(f"the word embeddings {self.embeddings.path} are not among the trained variables")

    def direction(self, gradient: Gradient, loss_scale: tf.Tensor | float) -> tf.Tensor:
        """g / ||g|| (float32, E's shape) for the global-batch gradient g of E,
        from this replica's `gradient` of the scaled loss; zeros when g is
        zero or not finite."""
        dense = tf.cast(tf.convert_to_tensor(gradient), tf.float32) / tf.cast(loss_scale, tf.float32)
        dense = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, dense)
        norm = tf.norm(dense)
        usable = tf.math.is_finite(norm) & (norm > 0.0)
        return tf.where(usable, dense / tf.where(usable, norm, 1.0), 0.0)

    def read(self) -> tf.Tensor:
        """E's value on this replica (what `assign(...)` later restores)."""
        return tf.identity(self.embeddings.value)

    def assign(self, value: tf.Tensor) -> None:
        """Sets this replica's copy of E to `value` (every replica passes the
        same value)."""
        variable = self.embeddings.value

        def update(strategy: tf.distribute.Strategy, value: tf.Tensor) -> None:
            strategy.extended.update(variable, lambda v, x: v.assign(x), args=(value,), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy(), value)


def add_gradients(a: Sequence[Gradient | None], b: Sequence[Gradient | None]) -> list[Gradient | None]:
    """a + b per variable; two `IndexedSlices` add up by concatenating their
    rows (a row per token stays a row per token: the optimizer sums them)."""
    return [_add(x, y) for x, y in zip(a, b, strict=True)]


def _add(x: Gradient | None, y: Gradient | None) -> Gradient | None:
    if x is None or y is None:
        return y if x is None else x
    if isinstance(x, tf.IndexedSlices) and isinstance(y, tf.IndexedSlices):
        return tf.IndexedSlices(
            tf.concat([x.values, y.values], axis=0), tf.concat([x.indices, y.indices], axis=0), x.dense_shape
        )
    return tf.convert_to_tensor(x) + tf.convert_to_tensor(y)


def word_embeddings(model: keras.Model) -> keras.Variable:
    """The word-embedding matrix of a tagger's backbone (BERT's
    `word_embeddings`, ALBERT's factorised `[vocab, embedding_size]` table,
    ELECTRA's); ValueError when the model has none."""
    layer = getattr(getattr(model, "backbone", None), "token_embedding", None)
    embeddings = getattr(layer, "embeddings", None)
    if embeddings is None:
        raise ValueError(f"{type(model).__name__} has no backbone word embeddings to perturb")
    if not embeddings.trainable:
        raise ValueError("adversarial training perturbs the word embeddings, which are frozen")
    return embeddings
