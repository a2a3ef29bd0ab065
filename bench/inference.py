"""Inference speed from raw strings to entities on CLUENER dev, every size in one run:

- the kner SavedModel (`python -m kner.export`), loaded with
  `tf.saved_model.load` and called through its `serving_default` signature
  (texts in, entity tensors out, as a TF Serving client gets them);
- `kner.Predictor.from_dir(export).predict(texts)` (Python `Entity` lists);
- the same export in TensorFlow's C loader (`tools/c_loader/run_export`, the
  `LoadSavedModel` TF Serving uses; its own process, timed around
  `TF_SessionRun`), when a C compiler is found;
- a Hugging Face `pipeline("token-classification", aggregation_strategy="simple")`
  over `BertForTokenClassification` of the same shape on PyTorch, with a
  `BertTokenizerFast` built from the same vocab.txt (no downloads).

Speed does not depend on the weights: the model_dirs are made here with
random weights (each of `--sizes`, softmax head, CLUENER's labels, the BERT
vocab); `--model_dir` takes one trained one instead. Throughput runs the dev
sentences in batches of `--batch_size` (consecutive, in file order, as
requests come; `Predictor` sorts by length itself); latency sends the first
`--latency_sentences` one at a time. The cases are interleaved over
`--rounds`; the best round's throughput counts, latencies pool all rounds.
Besides wall-clock sentences/s, each case's sentences per CPU-second of its
process are reported: on a shared machine they move less with the load.

    PYTHONPATH=. .venv/bin/python bench/inference.py --json=bench/results/inference_sizes.json
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: it configures OpenMP before torch loads)

# isort: on
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import torch
from absl import app, flags
from common import ROOT, SHARED, machine, print_table, set_threads, write_json
from kner_side import random_model_dir
from torch_reference import hf_config
from transformers import BertForTokenClassification, BertTokenizerFast, pipeline

import kner
from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab
from kner.serving.predictor import find_export

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["2L/128", "4L/256", "12L/768"], "Model sizes, when no --model_dir is given.")
flags.DEFINE_string("model_dir", None, "A trained kner model_dir (default: random weights of each of --sizes).")
flags.DEFINE_integer("batch_size", 32, "Texts per call for throughput.")
flags.DEFINE_list("sentences", ["0", "0", "320"], "Per size: use the first N dev sentences only (0: all).")
flags.DEFINE_list("latency_sentences", ["200", "100", "50"], "Per size: single-text calls timed for latency.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds of all cases.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.")
flags.DEFINE_bool("c_loader", True, "Also time the export in TensorFlow's C loader (needs a C compiler).")
flags.DEFINE_string("json", None, "Also write the results here.")

HF = "HF pipeline (PyTorch)"
SAVED_MODEL = "kner SavedModel (serving_default)"
PREDICTOR = "kner.Predictor"
C_LOADER = "kner SavedModel in TF's C loader"


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


def build_c_loader(scratch: Path) -> Path | None:
    """tools/c_loader/run_export built here, or None without a C compiler."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not FLAGS.c_loader or compiler is None:
        print("C loader: not timed (--noc_loader, or no C compiler)")
        return None
    binary = scratch / "run_export"
    env = {**os.environ, "PYTHON": sys.executable, "CC": compiler}
    subprocess.run(["sh", str(ROOT / "tools" / "c_loader" / "build.sh"), str(binary)], env=env, check=True)
    return binary


def c_loader_run(binary: Path, version: Path, texts: list[str], batch_size: int) -> tuple[list[float], float]:
    """Per-batch wall seconds in TF_SessionRun, and their CPU seconds, of
    `texts` in batches of `batch_size`; a first batch (graph optimisation
    on the first run) is sent before them and not counted."""
    warm_up = texts[:batch_size]
    lines = "".join(json.dumps(t) + "\n" for t in warm_up + texts).encode()
    command = [str(binary), f"--export_dir={version}", f"--batch_size={batch_size}", "--timings"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    ran = subprocess.run(command, input=lines, capture_output=True, env=env, check=True)
    stderr = ran.stderr.decode()
    wall = [float(x) for x in re.search(r"batch seconds:(.*)", stderr).group(1).split()]
    cpu = [float(x) for x in re.search(r"batch CPU seconds:(.*)", stderr).group(1).split()]
    return wall[1:], sum(cpu[1:])


def measure(model_dir: Path, scratch: Path, binary: Path | None, sentences: int, latency_sentences: int) -> dict:
    """Every case on one model_dir, interleaved over the rounds."""
    version = export(model_dir, scratch / "export")
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    predictor = kner.Predictor.from_dir(version)
    hf = hf_pipeline(model_dir)
    texts = [s.text for s in read_corpus(SHARED / "cluener" / "dev.json")][: sentences or None]
    size = FLAGS.batch_size

    def saved_model(batch):
        return {k: v.numpy() for k, v in signature(text=tf.constant(batch)).items()}

    def batched(run):
        return lambda batch: [run(batch[i : i + size]) for i in range(0, len(batch), size)]

    cases = {
        SAVED_MODEL: (saved_model, batched(saved_model)),
        PREDICTOR: (predictor.predict, lambda batch: predictor.predict(batch, batch_size=size)),
        HF: (hf, lambda batch: hf(batch, batch_size=size)),
    }
    for single, _ in cases.values():  # warm-up: tracing and first allocations
        single(texts[:size])
        single(texts[:1])
    results = {name: {"sentences_per_s": [], "sentences_per_cpu_s": [], "latency_ms": []} for name in cases}
    if binary is not None:
        results[C_LOADER] = {"sentences_per_s": [], "sentences_per_cpu_s": [], "latency_ms": []}
    for _ in range(FLAGS.rounds):
        for name, (single, many) in cases.items():
            started, cpu = time.perf_counter(), time.process_time()
            many(texts)
            results[name]["sentences_per_s"].append(len(texts) / (time.perf_counter() - started))
            results[name]["sentences_per_cpu_s"].append(len(texts) / (time.process_time() - cpu))
            for text in texts[:latency_sentences]:
                started = time.perf_counter()
                single([text])
                results[name]["latency_ms"].append(1e3 * (time.perf_counter() - started))
        if binary is not None:
            batches, cpu = c_loader_run(binary, version, texts, size)
            results[C_LOADER]["sentences_per_s"].append(len(texts) / sum(batches))
            results[C_LOADER]["sentences_per_cpu_s"].append(len(texts) / cpu)
            batches, _ = c_loader_run(binary, version, texts[:latency_sentences], 1)
            results[C_LOADER]["latency_ms"].extend(1e3 * b for b in batches)
    return results


def table(name: str, results: dict, facts: dict) -> tuple[str, list[list]]:
    header = ["path", "sentences/s", "vs HF", "sentences/CPU-s", "vs HF", "batch-1 p50 ms", "batch-1 p95 ms"]
    wall = {case: max(r["sentences_per_s"]) for case, r in results.items()}
    cpu = {case: max(r["sentences_per_cpu_s"]) for case, r in results.items()}
    rows = []
    for case, r in results.items():
        p50, p95 = np.percentile(r["latency_ms"], [50, 95])
        r.update(latency_ms_p50=p50, latency_ms_p95=p95)
        rows.append([case, wall[case], wall[case] / wall[HF], cpu[case], cpu[case] / cpu[HF], p50, p95])
    print(f"\n{name}, load {facts['load']}")
    return print_table(header, rows), rows


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    scratch = Path(tempfile.mkdtemp())
    binary = build_c_loader(scratch)
    sizes = [None] if FLAGS.model_dir else FLAGS.sizes

    def per_size(values: list[str], i: int) -> int:
        return int(values[min(i, len(values) - 1)])

    runs, summary = {}, []
    for i, size in enumerate(sizes):
        work = scratch / f"size{i}"
        model_dir = Path(FLAGS.model_dir) if FLAGS.model_dir else random_model_dir(size, work / "model")
        load_before = os.getloadavg()
        results = measure(model_dir, work, binary, per_size(FLAGS.sentences, i), per_size(FLAGS.latency_sentences, i))
        shape = json.loads((model_dir / "bert_config.json").read_text())
        name = f"{shape['num_hidden_layers']}L/{shape['hidden_size']}"
        count = per_size(FLAGS.sentences, i) or "all"
        load = f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
        text, rows = table(
            f"{name}: CLUENER dev ({count} sentences), batch {FLAGS.batch_size} / batch 1, {FLAGS.threads} threads",
            results,
            {"load": load},
        )
        runs[name] = {"model": shape, "load": load, "cases": results, "table": text}
        by_case = {row[0]: row for row in rows}
        summary.append(
            [
                name,
                by_case[SAVED_MODEL][1] / by_case[PREDICTOR][1],
                by_case[SAVED_MODEL][3] / by_case[PREDICTOR][3],
                by_case[SAVED_MODEL][2],
                by_case[SAVED_MODEL][4],
                by_case[SAVED_MODEL][5] / by_case[HF][5],
            ]
        )
    print("\nSavedModel (serving_default) against kner.Predictor and the HF pipeline")
    header = ["size", "vs Predictor, sent/s", "vs Predictor, sent/CPU-s", "vs HF, sent/s", "vs HF, sent/CPU-s"]
    header.append("batch-1 p50, SavedModel / HF")
    overview = print_table(header, summary)
    write_json(
        FLAGS.json,
        {"machine": facts, "trained": bool(FLAGS.model_dir), "runs": runs, "summary": overview},
    )


if __name__ == "__main__":
    app.run(main)
