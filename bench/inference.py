"""Inference speed from raw strings to entities on CLUENER dev, in one process:

- the kner SavedModel (`python -m kner.export`), loaded with
  `tf.saved_model.load` and called through its `serving_default` signature
  (texts in, entity tensors out, as a TF Serving client gets them);
- `kner.Predictor.from_dir(export).predict(texts)` (Python `Entity` lists);
- a Hugging Face `pipeline("token-classification", aggregation_strategy="simple")`
  over `BertForTokenClassification` of the same shape on PyTorch, with a
  `BertTokenizerFast` built from the same vocab.txt (no downloads).

Speed does not depend on the weights: by default the model_dir is made here
with random weights (`--size`, softmax head, CLUENER's labels, the BERT
vocab); `--model_dir` takes a trained one instead. Throughput runs all dev
sentences in batches of `--batch_size` (consecutive, in file order, except
that `Predictor` sorts by length itself); latency sends the first
`--latency_sentences` one at a time. The cases are interleaved over
`--rounds`; the best round's throughput counts, latencies pool all rounds.

    PYTHONPATH=. .venv/bin/python bench/inference.py --json=bench/results/inference.json
    PYTHONPATH=. .venv/bin/python bench/inference.py --size=12L/768 --sentences=320 --latency_sentences=50 \
        --rounds=1 --json=bench/results/inference_12L.json
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: it configures OpenMP before torch loads)

# isort: on
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import torch
from absl import app, flags
from common import BERT_VOCAB, CLUENER_TYPES, ROOT, SHARED, bert_config, machine, print_table, set_threads, write_json
from torch_reference import hf_config
from transformers import BertForTokenClassification, BertTokenizerFast, pipeline

import kner
from kner.checkpoint import backbone_from_config
from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab
from kner.data.tokenizer import read_vocab
from kner.models.artifacts import dummy_batch, save_artifacts
from kner.models.tagger import Tagger
from kner.serving.predictor import find_export

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "2L/128", "Model size, when no --model_dir is given.")
flags.DEFINE_string("model_dir", None, "A trained kner model_dir (default: random weights of --size).")
flags.DEFINE_integer("batch_size", 32, "Texts per call for throughput.")
flags.DEFINE_integer("sentences", 0, "Use the first N dev sentences only (0: all).")
flags.DEFINE_integer("latency_sentences", 200, "Single-text calls timed for latency.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds of all cases.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.")
flags.DEFINE_string("json", None, "Also write the results here.")


def random_model_dir(size: str, path: Path) -> Path:
    """A model_dir like a finished training run's, with random weights."""
    vocabulary = read_vocab(BERT_VOCAB)
    config = bert_config(size, len(vocabulary))
    labels = LabelVocab.from_types(CLUENER_TYPES, "bios")
    model = Tagger(backbone_from_config(config), labels, head="softmax")
    model(dummy_batch())
    save_artifacts(path, config, vocabulary, labels, {"head": "softmax", "dropout": 0.1, "max_seq_length": 128})
    model.save_weights(str(path / "best.weights.h5"))
    return path


def export(model_dir: Path, export_dir: Path) -> Path:
    """Runs the export command users run; returns the version directory."""
    command = [sys.executable, "-m", "kner.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return find_export(export_dir)


def hf_pipeline(model_dir: Path):
    config = json.loads((model_dir / "bert_config.json").read_text())
    labels = LabelVocab.load(model_dir / "labels.json")
    hf = hf_config(config, len(labels))
    hf.id2label = dict(enumerate(labels.tags))
    hf.label2id = {tag: i for i, tag in enumerate(labels.tags)}
    torch.manual_seed(0)
    model = BertForTokenClassification(hf).eval()
    tokenizer = BertTokenizerFast(vocab_file=str(model_dir / "vocab.txt"))
    return pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    scratch = Path(tempfile.mkdtemp())
    model_dir = Path(FLAGS.model_dir) if FLAGS.model_dir else random_model_dir(FLAGS.size, scratch / "model")
    version = export(model_dir, scratch / "export")
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    predictor = kner.Predictor.from_dir(version)
    hf = hf_pipeline(model_dir)
    texts = [s.text for s in read_corpus(SHARED / "cluener" / "dev.json")][: FLAGS.sentences or None]
    size = FLAGS.batch_size

    def saved_model(batch):
        return {k: v.numpy() for k, v in signature(text=tf.constant(batch)).items()}

    def batched(run):
        return lambda batch: [run(batch[i : i + size]) for i in range(0, len(batch), size)]

    cases = {
        "kner SavedModel (serving_default)": (saved_model, batched(saved_model)),
        "kner.Predictor": (predictor.predict, lambda batch: predictor.predict(batch, batch_size=size)),
        "HF pipeline (PyTorch)": (hf, lambda batch: hf(batch, batch_size=size)),
    }
    for single, _ in cases.values():  # warm-up: tracing and first allocations
        single(texts[:size])
    throughput = {name: [] for name in cases}
    latency = {name: [] for name in cases}
    for _ in range(FLAGS.rounds):
        for name, (single, many) in cases.items():
            started = time.perf_counter()
            many(texts)
            throughput[name].append(len(texts) / (time.perf_counter() - started))
            for text in texts[: FLAGS.latency_sentences]:
                started = time.perf_counter()
                single([text])
                latency[name].append(1e3 * (time.perf_counter() - started))

    reference = max(throughput["HF pipeline (PyTorch)"])
    rows, results = [], {}
    for name in cases:
        p50, p95 = np.percentile(latency[name], [50, 95])
        best = max(throughput[name])
        results[name] = {"sentences_per_s": throughput[name], "latency_ms_p50": p50, "latency_ms_p95": p95}
        rows.append([name, best, best / reference, p50, p95])
    shape = json.loads((model_dir / "bert_config.json").read_text())
    print(
        f"CLUENER dev ({len(texts)} sentences), {shape['num_hidden_layers']}L/{shape['hidden_size']}, "
        f"batch {size} / batch 1, {FLAGS.threads} threads, load {facts['loadavg_at_start']}"
    )
    header = ["path", f"sentences/s (batch {size})", "vs HF", "batch-1 p50 ms", "batch-1 p95 ms"]
    table = print_table(header, rows)
    write_json(
        FLAGS.json,
        {"machine": facts, "model": shape, "trained": bool(FLAGS.model_dir), "cases": results, "table": table},
    )


if __name__ == "__main__":
    app.run(main)
