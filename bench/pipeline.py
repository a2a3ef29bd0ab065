"""Input-pipeline throughput and padding waste on CLUENER train.

Compares kner's pipeline (length-bucketed batches padded per batch) with the
common peer design (every sentence padded to `max_seq_length`, as in
bert4keras / Kashgari / HF `run_ner.py --pad_to_max_length`), both tokenising
in tf.data with the same character tokenizer. Sentences/s is measured over
`--epochs` full passes after one warm-up pass.

    PYTHONPATH=. python bench/pipeline.py
"""

from __future__ import annotations

import os
import time

import tensorflow as tf
from absl import app, flags
from common import JSON_HELP, SHARED, write_json

from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab
from kner.data.pipeline import batched, encode, padding_waste, to_features
from kner.data.targets import TagTargets
from kner.data.tokenizer import CharTokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", str(SHARED / "cluener/train.json"), "CLUENER train.json.")
flags.DEFINE_string("vocab_file", str(SHARED / "vocab/bert-base-chinese-vocab.txt"), "BERT vocab.txt.")
flags.DEFINE_integer("batch_size", 32, "Global batch.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence limit.")
flags.DEFINE_integer("epochs", 5, "Timed passes.")
flags.DEFINE_string("json", "bench/results/pipeline.json", JSON_HELP + "this.")


def fixed_length_dataset(sentences, tokenizer, labels, batch_size, max_seq_length) -> tf.data.Dataset:
    """The peer: the same tokenizer, but every batch padded to max_seq_length."""
    texts = [s.text[: max_seq_length - 2] for s in sentences]
    ids = [labels.encode(s.spans, len(s.text))[: max_seq_length - 2] for s in sentences]
    columns = {"text": tf.constant(texts), "label_ids": tf.ragged.constant(ids, tf.int32)}
    dataset = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(texts), seed=1).ragged_batch(batch_size)

    def pad(batch):
        features = to_features(batch, tokenizer, targets=TagTargets(labels))
        extra = max_seq_length - tf.shape(features["token_ids"])[1]
        return {k: tf.pad(v, [[0, 0], [0, extra]]) for k, v in features.items()}

    return dataset.map(pad, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def throughput(make, epochs: int) -> tuple[float, float]:
    """(sentences per wall-clock second, sentences per CPU-second of this
    process): the second is less sensitive to other load on the machine."""
    count = sum(int(b["token_ids"].shape[0]) for b in make(0))  # warm-up: traces and fills caches
    wall, cpu = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        for _ in make(epoch + 1):
            pass
    return count * epochs / (time.perf_counter() - wall), count * epochs / (time.process_time() - cpu)


def main(argv) -> None:
    del argv
    sentences = read_corpus(FLAGS.train_file)
    tokenizer = CharTokenizer(FLAGS.vocab_file)
    labels = LabelVocab.from_sentences(sentences, "bios")
    batch, length = FLAGS.batch_size, FLAGS.max_seq_length

    encoded = encode(sentences, tokenizer, labels, max_tokens=length - 2)  # once, as the trainer does

    def kner_epoch(seed):
        return batched(encoded, tokenizer, batch, seed=seed)

    def peer_epoch(seed):
        return fixed_length_dataset(sentences, tokenizer, labels, batch, length)

    kner_speed, peer_speed = throughput(kner_epoch, FLAGS.epochs), throughput(peer_epoch, FLAGS.epochs)
    results = {
        "loadavg": os.getloadavg(),
        "sentences": len(sentences),
        "batch_size": batch,
        "max_seq_length": length,
        "kner": {
            "sentences_per_s": kner_speed[0],
            "sentences_per_cpu_s": kner_speed[1],
            "padding_waste": padding_waste(kner_epoch(0)),
        },
        "fixed_length_peer": {
            "sentences_per_s": peer_speed[0],
            "sentences_per_cpu_s": peer_speed[1],
            "padding_waste": padding_waste(peer_epoch(0)),
        },
    }
    kner, peer = results["kner"], results["fixed_length_peer"]
    results["speed_ratio"] = kner["sentences_per_s"] / peer["sentences_per_s"]
    results["model_tokens_ratio"] = (1 - kner["padding_waste"]) / (1 - peer["padding_waste"])
    print(f"CLUENER train: {len(sentences)} sentences, batch {batch}, max_seq_length {length}")
    print(f"load average {results['loadavg'][0]:.1f}")
    print(f"{'pipeline':<30}{'sentences/s':>13}{'per CPU-s':>11}{'padding waste':>15}")
    for name, row in (("kner (bucketed)", kner), ("peer (pad to max_seq_length)", peer)):
        print(
            f"{name:<30}{row['sentences_per_s']:>13,.0f}{row['sentences_per_cpu_s']:>11,.0f}"
            f"{row['padding_waste']:>15.1%}"
        )
    print(
        f"kner / peer: {results['speed_ratio']:.2f}x sentences/s; the model sees "
        f"{results['model_tokens_ratio']:.2f}x fewer token positions"
    )
    write_json(FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
