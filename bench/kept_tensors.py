"""Which forward-pass tensors kner's training step keeps for its backward
pass: the tensors of the forward pass (the ancestors of the loss) that an op
of the backward pass reads, other than for its shape, grouped by the op that
made them, with their size at batch 32 x 128 tokens. The step is
`memory.py`'s (softmax head, the `Trainer`'s lean GELU), traced
with the batch shape known. Aliases count twice (a `Reshape` or `IdentityN`
shares its input's buffer), so the total is an upper bound; the rows say
what to look at, `memory.py` what it costs.

    PYTHONPATH=. .venv/bin/python bench/kept_tensors.py --size=4L/256 --policy=mixed_bfloat16
"""

from __future__ import annotations

import collections

from absl import app, flags
from common import NUM_TAGS, bert_config, print_table, random_batches

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "4L/256", "Model size.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy: float32 or mixed_bfloat16.")
flags.DEFINE_integer("min_elements", 100_000, "Leave out smaller tensors.")

# Backward ops that read a forward tensor only for its shape.
SHAPE_ONLY = {"Shape", "ShapeN", "Size", "Rank", "BroadcastGradientArgs"}


def ancestors(ops: list) -> set:
    """`ops` and every op they depend on (inputs and control inputs)."""
    seen, stack = set(), list(ops)
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend([t.op for t in op.inputs] + list(op.control_inputs))
    return seen


def main(argv) -> None:
    del argv
    # isort: off
    import kner.cli  # noqa: F401  (first, as in kner.train: it keeps tensorflow-text out)

    # isort: on
    import keras
    import kner_side
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(FLAGS.policy)
    model = kner_side.tagger(bert_config(FLAGS.size, 21128))
    kner_side.train_step(model, False, total_steps=100)  # builds the Trainer, which swaps GELU and dropout
    batch = kner_side.to_tensorflow(random_batches(32, 128, 1, 21128, NUM_TAGS)[0])

    @tf.function
    def gradients(batch):
        with tf.GradientTape() as tape:
            loss = model.loss_sum(batch, model(batch, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    concrete = gradients.get_concrete_function(batch)
    loss, weight_gradients = concrete.structured_outputs
    forward = ancestors([loss.op])
    backward = ancestors([t.op for t in tf.nest.flatten(weight_gradients, expand_composites=True)]) - forward
    kept = {}
    for op in backward:
        if op.type in SHAPE_ONLY:
            continue
        for t in op.inputs:
            if t.op in forward and t.shape.is_fully_defined() and t.shape.num_elements() >= FLAGS.min_elements:
                kept[t.name] = (t.op.type, t.dtype.name, tuple(t.shape), t.dtype.size * t.shape.num_elements() / 2**20)
    mib, count = collections.defaultdict(float), collections.Counter()
    for kind, dtype, shape, size in kept.values():
        mib[kind, dtype, shape] += size
        count[kind, dtype, shape] += 1
    rows = [[*key, count[key], round(size, 1)] for key, size in sorted(mib.items(), key=lambda item: -item[1])]
    rows.append(["total", "", "", len(kept), round(sum(mib.values()), 1)])
    print(f"{FLAGS.size}, {FLAGS.policy}, batch 32 x 128: forward tensors the backward pass reads")
    print_table(["made by", "dtype", "shape", "tensors", "MiB"], rows)


if __name__ == "__main__":
    app.run(main)
