"""AdamW and LAMB for kner's loops: warmup + linear decay, a separate head
learning rate, no weight decay on LayerNorm and biases, and gradient clipping
that gives the same update under every `tf.distribute` strategy.

Keras clips gradients before it sums them across replicas, so with several
replicas `global_clipnorm` would clip each replica's partial gradient. Here the
clip is applied to the all-reduced (global-batch) gradient instead, and
embedding gradients are made dense first (`GlobalBatchOptimizer`). Likewise
Keras' `LossScaleOptimizer` looks for overflow in each replica's own
gradients; `CrossReplicaLossScaleOptimizer` skips the step on every replica
when any of them overflowed. Two steps share that base:

- `FineTuningAdamW`: PyTorch's AdamW on dense gradients (see its
  `update_step`), which `bench/equivalence.py` shows to train step for step
  like the PyTorch reference;
- `Lamb`: google-research/albert `lamb_optimizer.py`, ALBERT's pretraining
  optimizer.

Example:
>>> schedule = WarmupLinearDecay(3e-5, warmup_steps=100, total_steps=1000)
>>> optimizer = FineTuningAdamW(schedule, clip_norm=1.0,
...     lr_multipliers={id(v): 1e-3 / 3e-5 for v in head.trainable_variables})
>>> optimizer = Lamb(WarmupLinearDecay(1.76e-3, 3125, 125000), weight_decay=0.01)
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

# Variable names (keras-hub BertBackbone: LayerNorm `gamma`/`beta`, Dense and
# EinsumDense `bias`; the pretraining heads' `output_bias`) that get no weight
# decay, as in Google's BERT (which skips every name containing "bias").
NO_DECAY_NAMES = ("gamma", "beta", "bias", "output_bias")


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then linear decay to 0
    at `total_steps` (the BERT fine-tuning schedule). Without warmup the rate
    starts at `peak`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = step / self.warmup_steps if self.warmup_steps > 0 else 1.0
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * tf.clip_by_value(tf.minimum(warmup, decay), 0.0, 1.0)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


class GlobalBatchOptimizer(keras.optimizers.Adam):
    """What kner's optimizers share: Adam's moments, per-variable
    learning-rate multipliers, weight decay at each variable's own rate
    except for `NO_DECAY_NAMES`, and post-all-reduce global-norm clipping of
    dense gradients. Subclasses write `update_step`.

    A variable's rate is the scheduled rate times its multiplier, and so is its
    (decoupled) weight decay, as in Google's BERT optimizer; Keras would decay
    every variable at the base rate.

    Args:
        learning_rate: float or schedule, the backbone's rate.
        weight_decay: decoupled weight decay (per step, times the rate).
        clip_norm: clip the global-batch gradient to this global norm (0: off).
        lr_multipliers: `{id(keras_variable): factor}`; a variable's rate is the
            scheduled rate times its factor (default 1).
    """

    def __init__(
        self,
        learning_rate,
        weight_decay: float = 0.01,
        clip_norm: float = 1.0,
        lr_multipliers: dict[int, float] | None = None,
        epsilon: float = 1e-6,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, epsilon=epsilon, **kwargs)
        self.clip_norm = clip_norm
        self._lr_multipliers = dict(lr_multipliers or {})
        self._multiplier_by_key: dict = {}
        self._decayed_keys: set = set()

    def build(self, variables):
        super().build(variables)
        for variable in variables:
            key = self._var_key(variable)
            self._multiplier_by_key[key] = self._lr_multipliers.get(id(variable), 1.0)
            if variable.name not in NO_DECAY_NAMES:
                self._decayed_keys.add(key)

    def _apply_weight_decay(self, variables):
        """Weight decay happens in `update_step`, at each variable's own rate."""

    def _rate(self, variable, learning_rate):
        """The variable's learning rate: the scheduled one times its multiplier."""
        multiplier = self._multiplier_by_key.get(self._var_key(variable), 1.0)
        return ops.cast(learning_rate * multiplier, variable.dtype)

    def _is_decayed(self, variable) -> bool:
        return bool(self.weight_decay) and self._var_key(variable) in self._decayed_keys

    def _moments(self, variable, gradient):
        """Adam's first and second moments of `variable`, updated with
        `gradient` (no bias correction)."""
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        return m, v

    def _all_reduce_sum_gradients(self, grads_and_vars):
        grads_and_vars = super()._all_reduce_sum_gradients(grads_and_vars)
        grads, variables = zip(*grads_and_vars)
        # Embedding gradients come as IndexedSlices, one row per token: a
        # character seen twice in the batch gives two rows. Keras' Adam squares
        # the rows before they are summed (v gets sum(g^2), not (sum g)^2), and
        # the global norm adds up their squares too. Made dense, both are
        # right, as in PyTorch, whose embedding gradients are dense.
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm)
        return list(zip(grads, variables))


class FineTuningAdamW(GlobalBatchOptimizer):
    """AdamW computing PyTorch's update (see `update_step`) on dense
    gradients, with `GlobalBatchOptimizer`'s rates, decay and clipping."""

    def update_step(self, gradient, variable, learning_rate):
        """Decoupled decay, then Adam with `epsilon` added to the bias-corrected
        sqrt(v), as PyTorch's and Hugging Face's AdamW do. Keras adds it to the
        uncorrected sqrt(v), which amounts to epsilon / sqrt(1 - beta_2^t): 32x
        at step 1, still 3x at step 100, where clipped gradients are about
        1e-5 per weight. With this step and dense gradients (below), kner and
        the PyTorch reference train alike (`bench/equivalence.py`)."""
        dtype = variable.dtype
        learning_rate = self._rate(variable, learning_rate)
        if self._is_decayed(variable):
            self.assign_sub(variable, variable * (learning_rate * self.weight_decay))
        step = ops.cast(self.iterations + 1, dtype)
        m, v = self._moments(variable, ops.cast(gradient, dtype))
        m_hat = m / (1 - ops.power(ops.cast(self.beta_1, dtype), step))
        v_hat = v / (1 - ops.power(ops.cast(self.beta_2, dtype), step))
        self.assign_sub(variable, learning_rate * m_hat / (ops.sqrt(v_hat) + self.epsilon))


class Lamb(GlobalBatchOptimizer):
    """LAMB as google-research/albert `lamb_optimizer.py` (You et al. 2019,
    "Large Batch Optimization for Deep Learning"), with
    `GlobalBatchOptimizer`'s rates, clipping (ALBERT's `create_optimizer`
    clips the global norm to 1.0 before it) and dense embedding gradients:

        m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g^2
        update = m / (sqrt(v) + epsilon)          (no bias correction)
        update += weight_decay * w                (not for LayerNorm and biases)
        ratio = |w| / |update|                    (1 if either norm is 0, and
                                                   for LayerNorm and biases)
        w -= ratio * rate * update

    Keras' `Lamb` differs on each point: it corrects the moments' bias, has
    no weight decay inside the update, adapts every variable, and squares
    the rows of a sparse embedding gradient before summing them.
    """

    def update_step(self, gradient, variable, learning_rate):
        m, v = self._moments(variable, ops.cast(gradient, variable.dtype))
        update = m / (ops.sqrt(v) + self.epsilon)
        if self._is_decayed(variable):
            update = update + self.weight_decay * variable
        ratio = 1.0
        if self._var_key(variable) in self._decayed_keys:  # layer adaptation: excluded as decay is
            weight_norm, update_norm = ops.norm(ops.reshape(variable, [-1])), ops.norm(ops.reshape(update, [-1]))
            ratio = ops.where(
                weight_norm > 0, ops.where(update_norm > 0, weight_norm / ops.maximum(update_norm, 1e-30), 1.0), 1.0
            )
        self.assign_sub(variable, ratio * self._rate(variable, learning_rate) * update)


class CrossReplicaLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A `LossScaleOptimizer` (for `mixed_float16`) whose replicas agree on
    overflow: Keras checks each replica's gradients before they are summed,
    so with one replica overflowing the others would apply the (infinite)
    sum, or, under `MultiWorkerMirroredStrategy`, wait for it forever.

    >>> optimizer = CrossReplicaLossScaleOptimizer(FineTuningAdamW(3e-5))
    """

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None:
            return finite
        overflows = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        return overflows == 0.0
