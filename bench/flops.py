"""FLOP efficiency of a BERT forward pass: measured FLOP/s as a fraction of
this CPU's float32 matmul peak, for kner (TensorFlow, XLA off and on) and
Hugging Face `BertForTokenClassification` on PyTorch, in one process.

FLOPs are counted analytically, matmuls only (embeddings, softmax, GELU,
LayerNorm and the 31-tag classifier are left out), per encoder layer:
4·(2·B·L·H·H) for the q/k/v/output projections, 2·(2·B·L·H·4H) for the
feed-forward, 2·(2·B·L·L·H) for the attention scores and mixing. The peak
is the best of `--repeats` plain N×N float32 matmuls in each framework; the
fraction divides by the better of the two. Each case's time is the best of
`--repeats` runs, the cases interleaved, so that a burst of other work on
the machine hits all of them alike.

    PYTHONPATH=. .venv/bin/python bench/flops.py --repeats=3   # -> bench/results/flops.json
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: it configures OpenMP before torch loads)

# isort: on
import time

import kner_side
import numpy as np
import tensorflow as tf
import torch
from absl import app, flags
from common import (
    BERT_VOCAB,
    JSON_HELP,
    NUM_TAGS,
    SIZES,
    bert_config,
    machine,
    print_table,
    random_batches,
    set_threads,
    write_json,
)
from torch_reference import TorchTagger, to_torch

from kner.data.tokenizer import read_vocab

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "12L/768", "Model size.")
flags.DEFINE_integer("batch_size", 32, "Sentences per forward pass.")
flags.DEFINE_integer("length", 128, "Tokens per sentence.")
flags.DEFINE_integer("matmul_size", 4096, "N of the N×N peak matmul.")
flags.DEFINE_integer("repeats", 5, "Runs of each case; the best counts.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.")
flags.DEFINE_string("json", "bench/results/flops.json", JSON_HELP + "this.")


def forward_flops(layers: int, hidden: int, batch: int, length: int) -> float:
    """Matmul FLOPs of one encoder forward pass."""
    tokens = batch * length
    projections = 4 * 2 * tokens * hidden * hidden
    feed_forward = 2 * 2 * tokens * hidden * 4 * hidden
    attention = 2 * 2 * batch * length * length * hidden
    return layers * (projections + feed_forward + attention)


def seconds(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    n = FLAGS.matmul_size
    a = np.random.default_rng(0).standard_normal((n, n), np.float32)
    tf_a, torch_a = tf.constant(a), torch.from_numpy(a)

    config = bert_config(FLAGS.size, len(read_vocab(BERT_VOCAB)))
    batch = random_batches(FLAGS.batch_size, FLAGS.length, 1, config["vocab_size"], NUM_TAGS)[0]
    kner_model = kner_side.tagger(config)
    kner_inputs = kner_side.to_tensorflow(batch)
    torch.manual_seed(0)
    torch_model = TorchTagger(config, NUM_TAGS).eval()
    torch_inputs = to_torch(batch)

    def torch_forward():
        with torch.inference_mode():
            torch_model.logits(torch_inputs)

    forward = {
        "kner (TF)": tf.function(lambda x: kner_model(x, training=False)),
        "kner (TF, XLA)": tf.function(lambda x: kner_model(x, training=False), jit_compile=True),
    }
    cases = {
        "peak: TF matmul": lambda: tf.matmul(tf_a, tf_a).numpy(),
        "peak: torch matmul": lambda: torch.matmul(torch_a, torch_a),
        **{name: (lambda f=f: f(kner_inputs).numpy()) for name, f in forward.items()},
        "HF BERT (PyTorch)": torch_forward,
    }
    for run in cases.values():  # warm-up: tracing, compiling, allocating
        run()
    times = {name: [] for name in cases}
    for _ in range(FLAGS.repeats):
        for name, run in cases.items():
            times[name].append(seconds(run))

    layers, hidden = SIZES[FLAGS.size]
    work = forward_flops(layers, hidden, FLAGS.batch_size, FLAGS.length)
    matmul = 2 * n**3
    rates = {name: (matmul if name.startswith("peak") else work) / min(t) for name, t in times.items()}
    peak = max(rates["peak: TF matmul"], rates["peak: torch matmul"])
    rows = [[name, min(times[name]), rates[name] / 1e9, rates[name] / peak] for name in cases]
    print(
        f"{FLAGS.size} forward, batch {FLAGS.batch_size} x {FLAGS.length}: {work / 1e9:.0f} GFLOP (matmuls); "
        f"peak from {n}x{n} float32 matmul; {FLAGS.threads} threads"
    )
    table = print_table(["case", "best s", "GFLOP/s", "of peak"], rows)
    results = {
        "machine": facts,
        "size": FLAGS.size,
        "batch_size": FLAGS.batch_size,
        "length": FLAGS.length,
        "forward_gflop": work / 1e9,
        "peak_gflops": peak / 1e9,
        "cases": {
            name: {"seconds": times[name], "gflops": rates[name] / 1e9, "of_peak": rates[name] / peak} for name in cases
        },
        "table": table,
    }
    write_json(FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
