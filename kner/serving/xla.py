"""XLA regions of the serving graph: `python -m kner.export --jit_compile`.

A batch-1 call of a small model is mostly fixed cost: about a thousand
executor ops, each paying its own dispatch (and, with two intra-op threads,
a hand-off between them), beside the encoder's matmuls (bench/README.md,
"Where a serving call's time goes"). XLA compiles the encoder and the
Viterbi decoding into a few fused kernels each, so a call runs a few dozen
ops where it ran a thousand. The price:

- each shape compiles once per process, so `compiled` pads the batch to
  `bucket` sizes (rows and positions; padding is masked and sliced off, so
  no row's result depends on it): a process compiles each bucket on its
  first request of that size (2.3-3.1 s a one-text bucket at 2L/128, in a
  TF1 session on 2 cores; `kner.serving.warmup` does the one-text ones at
  load);
- XLA's CPU dot is Eigen's, not oneDNN's: big batches of big models run
  slower than in the default export (bench/README.md, "Serving against ONNX
  Runtime");
- TF Serving runs an XLA graph only with `--xla_cpu_compilation_enabled=true`
  (without it a call fails); TensorFlow's C loader (`libtensorflow_cc`) and
  Python run it as they are.

The regions hold only what has fixed shapes: the model call (encoder and
head scores) and a tagging head's best tags (`kner.models.heads.Head.decode`
takes the wrapper); tokenization, windows and reading entities stay as they
are.

Example:
>>> tags = compiled(head.best_tags)(scores, mask, lengths)  # [B, L] as without XLA
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

# Bucket sizes: steps of at most 1/BUCKETS_PER_DOUBLING of the size (so
# padding adds less than 12.5%), at least `minimum_step`.
BUCKETS_PER_DOUBLING = 8
# Positions (the second axis) come in steps of at least this many.
LENGTH_STEP = 16


def bucket(size: tf.Tensor, minimum_step: int) -> tf.Tensor:
    """`size` (int32 scalar tensor) rounded up to its bucket: a multiple of
    `max(minimum_step, 2**floor(log2 size) / BUCKETS_PER_DOUBLING)`, so that
    sizes 1..N fall into about BUCKETS_PER_DOUBLING * log2 N buckets.

    Example (minimum_step 16): 5 -> 16, 40 -> 48, 129 -> 144, 1,000 -> 1,024.
    """
    size = tf.maximum(size, 1)
    # Float rounding in the log can only make a step smaller: the bucket is never below `size`.
    power = tf.cast(tf.math.floor(tf.math.log(tf.cast(size, tf.float32)) / math.log(2.0)), tf.int32)
    step = tf.maximum(minimum_step, tf.bitwise.left_shift(1, power) // BUCKETS_PER_DOUBLING)
    return (size + step - 1) // step * step


def compiled(function: Callable) -> Callable:
    """`function` compiled by XLA, called with its inputs padded to buckets.

    Args:
        function: takes tensors (positionally, or nested in dicts) whose first
            axis is the rows and whose second axis, where they have one, is
            the positions; returns a tensor or a structure of them with the
            same rows and, where they have a second axis, positions up to a
            fixed offset from the inputs' (the tagger's scores drop
            `[CLS]`). Padded rows and positions must not change the real
            ones' results: zeros (token id 0, mask False, length 0) are
            what they get.

    Returns:
        A function of the same inputs and outputs, running `function` on
        rows padded to `bucket(rows, 1)` and positions to
        `bucket(positions, LENGTH_STEP)`, its outputs sliced back.
    """
    jitted = tf.function(function, jit_compile=True, autograph=False)

    def run(*args):
        tensors = tf.nest.flatten(args)
        reference = next(t for t in tensors if t.shape.rank >= 2)
        rows, length = tf.shape(reference)[0], tf.shape(reference)[1]
        extra_rows = bucket(rows, 1) - rows
        extra_positions = bucket(length, LENGTH_STEP) - length

        def pad(tensor: tf.Tensor) -> tf.Tensor:
            padding = [[0, extra_rows], [0, extra_positions]][: tensor.shape.rank]
            padding += [[0, 0]] * (tensor.shape.rank - len(padding))
            return tf.pad(tensor, padding)

        def unpad(tensor: tf.Tensor) -> tf.Tensor:
            if tensor.shape.rank == 1:
                return tensor[:rows]
            return tensor[:rows, : tf.shape(tensor)[1] - extra_positions]

        return tf.nest.map_structure(unpad, jitted(*tf.nest.map_structure(pad, args)))

    return run
