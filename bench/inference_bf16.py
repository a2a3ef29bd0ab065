"""Inference speed with the bfloat16 export (issue 16), from raw strings to
entities on CLUENER dev, in one process, for one or more model sizes (written
beside `inference.py`, which gained every size and the C loader at the same
time; to be merged into it):

- the kner SavedModel (`python -m kner.export`), loaded with
  `tf.saved_model.load` and called through its `serving_default` signature
  (texts in, entity tensors out, as a TF Serving client gets them), exported
  twice: float32, and with `--compute_dtype=bfloat16`;
- `kner.Predictor.from_dir(export).predict(texts)` (Python `Entity` lists,
  the float32 export);
- a Hugging Face `pipeline("token-classification", aggregation_strategy="simple")`
  over `BertForTokenClassification` of the same shape on PyTorch, with a
  `BertTokenizerFast` built from the same vocab.txt (no downloads), float32
  and under `torch.autocast("cpu", torch.bfloat16)`.

Speed does not depend on the weights: by default each model_dir is made here
with random weights (`--sizes`, softmax head, CLUENER's labels, the BERT
vocab); `--model_dir` takes a trained one instead (then `--sizes` is
ignored). Throughput runs the dev sentences in batches of `--batch_size`
(consecutive, in file order, except that `Predictor` sorts by length
itself); latency sends the first `--latency_sentences` one at a time. The
cases are interleaved over `--rounds`; the best round's throughput counts,
latencies pool all rounds. The bf16 export's entities are compared with the
float32 export's on every sentence timed (`same entities`).

    PYTHONPATH=. .venv/bin/python bench/inference_bf16.py --sizes=2L/128,4L/256,12L/768 --sentences=0,0,320 \
        --latency_sentences=200,200,50 --json=bench/results/inference_bf16.json
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: it configures OpenMP before torch loads)

# isort: on
import json
import os
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
flags.DEFINE_list("sizes", ["2L/128"], "Model sizes, when no --model_dir is given.")
flags.DEFINE_string("model_dir", None, "A trained kner model_dir (default: random weights of each of --sizes).")
flags.DEFINE_integer("batch_size", 32, "Texts per call for throughput.")
flags.DEFINE_list("sentences", ["0"], "Per size (or one for all): use the first N dev sentences only (0: all).")
flags.DEFINE_list("latency_sentences", ["200"], "Per size (or one for all): single-text calls timed for latency.")
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


def export(model_dir: Path, export_dir: Path, compute_dtype: str = "float32") -> Path:
    """Runs the export command users run; returns the version directory."""
    command = [
        sys.executable,
        "-m",
        "kner.export",
        f"--model_dir={model_dir}",
        f"--export_dir={export_dir}",
        f"--compute_dtype={compute_dtype}",
    ]
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


def per_size(values: list[str], count: int) -> list[int]:
    """A flag of one value per size, or one value for all."""
    numbers = [int(v) for v in values]
    return numbers * count if len(numbers) == 1 else numbers


def entity_tuples(out: dict) -> list[list[tuple]]:
    """(type, start, end) of each text's entities, from `serving_default` outputs."""
    return [
        [(out["entity_type"][r][k], out["entity_start"][r][k], out["entity_end"][r][k]) for k in range(n)]
        for r, n in enumerate(out["num_entities"])
    ]


def measure_size(model_dir: Path, scratch: Path, texts: list[str], latency_sentences: int) -> dict:
    """Throughput and batch-1 latency of every case on `texts`."""
    f32 = tf.saved_model.load(str(export(model_dir, scratch / "export"))).signatures["serving_default"]
    bf16 = tf.saved_model.load(str(export(model_dir, scratch / "export_bf16", "bfloat16")))
    bf16 = bf16.signatures["serving_default"]
    predictor = kner.Predictor.from_dir(find_export(scratch / "export"))
    hf = hf_pipeline(model_dir)
    size = FLAGS.batch_size

    def signature(function):
        return lambda batch: {k: v.numpy() for k, v in function(text=tf.constant(batch)).items()}

    def batched(run):
        return lambda batch: [run(batch[i : i + size]) for i in range(0, len(batch), size)]

    def autocast(run):
        def run_bf16(*args, **kwargs):
            with torch.autocast("cpu", torch.bfloat16):
                return run(*args, **kwargs)

        return run_bf16

    hf_bf16 = autocast(hf)
    cases = {
        "kner SavedModel float32": (signature(f32), batched(signature(f32))),
        "kner SavedModel bfloat16": (signature(bf16), batched(signature(bf16))),
        "kner.Predictor (float32)": (predictor.predict, lambda batch: predictor.predict(batch, batch_size=size)),
        "HF pipeline float32": (hf, lambda batch: hf(batch, batch_size=size)),
        "HF pipeline bf16 autocast": (hf_bf16, lambda batch: hf_bf16(batch, batch_size=size)),
    }
    found = {
        name: [e for out in batched(signature(function))(texts) for e in entity_tuples(out)]
        for name, function in (("f32", f32), ("bf16", bf16))
    }
    same = [a == b for a, b in zip(found["f32"], found["bf16"])]
    for single, _ in cases.values():  # warm-up: tracing and first allocations
        single(texts[:size])
    throughput = {name: [] for name in cases}
    latency = {name: [] for name in cases}
    for _ in range(FLAGS.rounds):
        for name, (single, many) in cases.items():
            started = time.perf_counter()
            many(texts)
            throughput[name].append(len(texts) / (time.perf_counter() - started))
            for text in texts[:latency_sentences]:
                started = time.perf_counter()
                single([text])
                latency[name].append(1e3 * (time.perf_counter() - started))
    results = {}
    for name in cases:
        p50, p95 = np.percentile(latency[name], [50, 95])
        results[name] = {"sentences_per_s": throughput[name], "latency_ms_p50": p50, "latency_ms_p95": p95}
    return {"same_entities_bf16_vs_f32": sum(same) / len(same), "cases": results}


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    scratch = Path(tempfile.mkdtemp())
    dev = [s.text for s in read_corpus(SHARED / "cluener" / "dev.json")]
    sizes = [None] if FLAGS.model_dir else FLAGS.sizes
    sentences = per_size(FLAGS.sentences, len(sizes))
    latency_sentences = per_size(FLAGS.latency_sentences, len(sizes))
    rows, runs = [], []
    for size, count, latency_count in zip(sizes, sentences, latency_sentences):
        work = scratch / str(len(runs))
        model_dir = Path(FLAGS.model_dir) if FLAGS.model_dir else random_model_dir(size, work / "model")
        shape = json.loads((model_dir / "bert_config.json").read_text())
        name = f"{shape['num_hidden_layers']}L/{shape['hidden_size']}"
        texts = dev[: count or None]
        result = measure_size(model_dir, work, texts, latency_count)
        reference = max(result["cases"]["HF pipeline float32"]["sentences_per_s"])
        for case, numbers in result["cases"].items():
            best = max(numbers["sentences_per_s"])
            rows.append([name, case, best, best / reference, numbers["latency_ms_p50"], numbers["latency_ms_p95"]])
        print(
            f"{name}: {len(texts)} sentences, bf16 export's entities equal the float32 export's on "
            f"{result['same_entities_bf16_vs_f32']:.2%}",
            flush=True,
        )
        runs.append({"model": shape, "sentences": len(texts), "latency_sentences": latency_count, **result})
    print(
        f"CLUENER dev, batch {FLAGS.batch_size} / batch 1, {FLAGS.threads} threads, "
        f"load {facts['loadavg_at_start']} -> {os.getloadavg()}"
    )
    throughput = f"sentences/s (batch {FLAGS.batch_size})"
    header = ["model", "path", throughput, "vs HF float32", "batch-1 p50 ms", "batch-1 p95 ms"]
    table = print_table(header, rows)
    write_json(FLAGS.json, {"machine": facts, "trained": bool(FLAGS.model_dir), "runs": runs, "table": table})


if __name__ == "__main__":
    app.run(main)
