"""Inference speed from raw strings to entities on CLUENER dev, every size in
one run, float32 and bfloat16 (`--cases`, default all):

- `saved_model`, `saved_model_bf16`: the kner SavedModel (`python -m
  kner.export`, float32; and `--compute_dtype=bfloat16`, the encoder in
  bfloat16), loaded with `tf.saved_model.load` and called through its
  `serving_default` signature (texts in, entity tensors out, as a TF Serving
  client gets them);
- `predictor`: `kner.Predictor.from_dir(export).predict(texts)` on the
  float32 export (Python `Entity` lists);
- `c_loader`: the float32 export in TensorFlow's C loader
  (`tools/c_loader/run_export`, the `LoadSavedModel` TF Serving uses; its
  own process, timed around `TF_SessionRun`), when a C compiler is found;
- `saved_model_bf16_before` (with `--before=PATH`, not by default): the
  bfloat16 export made by the kner checkout at PATH (e.g. main's tree from
  `git archive main`), to compare serving graphs in one run;
- `hf`, `hf_bf16`: a Hugging Face `pipeline("token-classification",
  aggregation_strategy="simple")` over `BertForTokenClassification` of the
  same shape on PyTorch, with a `BertTokenizerFast` built from the same
  vocab.txt (no downloads), float32 and under
  `torch.autocast("cpu", torch.bfloat16)`.

Speed does not depend on the weights: the model_dirs are made here with
random weights (each of `--sizes`, softmax head, CLUENER's labels, the BERT
vocab); `--model_dir` takes one trained one instead. Throughput runs the dev
sentences in batches of `--batch_size` (consecutive, in file order, as
requests come; `Predictor` sorts by length itself); latency sends the first
`--latency_sentences` one at a time. The cases are interleaved over
`--rounds`; the best round's throughput counts, latencies pool all rounds.
Besides wall-clock sentences/s, each case's sentences per CPU-second of its
process are reported: on a shared machine they move less with the load.
When both SavedModel cases run, the bfloat16 export's entities are compared
with the float32 export's on every sentence of the first round's throughput
pass (`same entities`); with random weights, where the tag scores are near
ties, the rate is far lower than with a trained model.

    PYTHONPATH=. .venv/bin/python bench/inference.py --sentences=0,0,256 --latency_sentences=200,100,40 \\
        --rounds=2   # -> bench/results/inference.json#2L_4L_12L
    PYTHONPATH=. .venv/bin/python bench/inference.py --model_dir=runs/2L_f32_s42 --cases=saved_model,saved_model_bf16 \\
        --sentences=0 --latency_sentences=1 --rounds=1   # -> #trained
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
from common import JSON_HELP, ROOT, SHARED, machine, print_table, result_file, set_threads, write_json
from kner_side import export, random_model_dir
from torch_reference import hf_config
from transformers import BertForTokenClassification, BertTokenizerFast, pipeline

import kner
from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab

CASES = {
    "saved_model": "kner SavedModel float32",
    "saved_model_bf16": "kner SavedModel bfloat16",
    "predictor": "kner.Predictor (float32)",
    "hf": "HF pipeline float32",
    "hf_bf16": "HF pipeline bf16 autocast",
    "c_loader": "kner SavedModel float32 in TF's C loader",
    "saved_model_bf16_before": "kner SavedModel bfloat16, --before",
}
SAVED_MODEL, SAVED_MODEL_BF16, PREDICTOR, HF, HF_BF16, C_LOADER, SAVED_MODEL_BF16_BEFORE = CASES.values()

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", list(CASES)[:-1], f"What to time, of {', '.join(CASES)}.")
flags.register_validator("cases", lambda cases: set(cases) <= set(CASES), f"--cases: each one of {', '.join(CASES)}")
flags.DEFINE_list("sizes", ["2L/128", "4L/256", "12L/768"], "Model sizes, when no --model_dir is given.")
flags.DEFINE_string("model_dir", None, "A trained kner model_dir (default: random weights of each of --sizes).")
flags.DEFINE_integer("batch_size", 32, "Texts per call for throughput.")
flags.DEFINE_list("sentences", ["0", "0", "320"], "Per size (the last repeats): the first N dev sentences (0: all).")
flags.DEFINE_list("latency_sentences", ["200", "100", "50"], "Per size (the last repeats): single-text calls timed.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds of all cases.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.")
flags.DEFINE_string("before", None, "A kner checkout whose bfloat16 export is the saved_model_bf16_before case.")
flags.register_multi_flags_validator(
    ["cases", "before"],
    lambda f: "saved_model_bf16_before" not in f["cases"] or bool(f["before"]),
    "--cases=saved_model_bf16_before needs --before=PATH (a kner checkout, e.g. `git archive main`)",
)
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/inference.json#2L_4L_12L (the sizes), #trained.")


def hf_pipeline(model_dir: Path):
    config = json.loads((model_dir / "bert_config.json").read_text())
    labels = LabelVocab.load(model_dir / "labels.json")
    hf = hf_config(config, len(labels))
    hf.id2label = dict(enumerate(labels.tags))
    hf.label2id = {tag: i for i, tag in enumerate(labels.tags)}
    torch.manual_seed(0)
    model = BertForTokenClassification(hf).eval()
    # transformers 5.x: BertTokenizerFast(vocab_file=...) ignores the file (a 5-token vocab); vocab= reads it.
    tokenizer = BertTokenizerFast(vocab=str(model_dir / "vocab.txt"))
    return pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")


def autocast_bf16(run):
    """`run` under `torch.autocast("cpu", torch.bfloat16)`."""

    def run_bf16(*args, **kwargs):
        with torch.autocast("cpu", torch.bfloat16):
            return run(*args, **kwargs)

    return run_bf16


def build_c_loader(scratch: Path) -> Path | None:
    """tools/c_loader/run_export built here, or None without a C compiler."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        print("C loader: not timed (no C compiler)")
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


def entity_tuples(outputs: list[dict]) -> list[list[tuple]]:
    """(type, start, end) of each text's entities, from `serving_default` outputs of consecutive batches."""
    return [
        [(out["entity_type"][r][k], out["entity_start"][r][k], out["entity_end"][r][k]) for k in range(n)]
        for out in outputs
        for r, n in enumerate(out["num_entities"])
    ]


def measure(model_dir: Path, scratch: Path, binary: Path | None, texts: list[str], latency_sentences: int) -> dict:
    """Every case of `--cases` on one model_dir, interleaved over the rounds;
    with both SavedModel cases, also the share of texts on which their
    entities agree."""
    wanted = {CASES[key] for key in FLAGS.cases}
    size = FLAGS.batch_size
    version = export(model_dir, scratch / "export") if wanted & {SAVED_MODEL, PREDICTOR, C_LOADER} else None

    def signature(export_version: Path):
        function = tf.saved_model.load(str(export_version)).signatures["serving_default"]
        return lambda batch: {k: v.numpy() for k, v in function(text=tf.constant(batch)).items()}

    def batched(run):
        return lambda batch: [run(batch[i : i + size]) for i in range(0, len(batch), size)]

    cases = {}
    if SAVED_MODEL in wanted:
        saved_model = signature(version)
        cases[SAVED_MODEL] = (saved_model, batched(saved_model))
    if SAVED_MODEL_BF16 in wanted:
        saved_model_bf16 = signature(export(model_dir, scratch / "export_bf16", "bfloat16"))
        cases[SAVED_MODEL_BF16] = (saved_model_bf16, batched(saved_model_bf16))
    if SAVED_MODEL_BF16_BEFORE in wanted:
        before = signature(export(model_dir, scratch / "export_bf16_before", "bfloat16", Path(FLAGS.before)))
        cases[SAVED_MODEL_BF16_BEFORE] = (before, batched(before))
    if PREDICTOR in wanted:
        predictor = kner.Predictor.from_dir(version)
        cases[PREDICTOR] = (predictor.predict, lambda batch: predictor.predict(batch, batch_size=size))
    if wanted & {HF, HF_BF16}:
        hf = hf_pipeline(model_dir)
        for name, run in ((HF, hf), (HF_BF16, autocast_bf16(hf))):
            if name in wanted:
                cases[name] = (run, lambda batch, run=run: run(batch, batch_size=size))
    for single, _ in cases.values():  # warm-up: tracing and first allocations
        single(texts[:size])
        single(texts[:1])
    results = {name: {"sentences_per_s": [], "sentences_per_cpu_s": [], "latency_ms": []} for name in cases}
    first_outputs = {}
    for _ in range(FLAGS.rounds):
        for name, (single, many) in cases.items():
            started, cpu = time.perf_counter(), time.process_time()
            outputs = many(texts)
            results[name]["sentences_per_s"].append(len(texts) / (time.perf_counter() - started))
            results[name]["sentences_per_cpu_s"].append(len(texts) / (time.process_time() - cpu))
            first_outputs.setdefault(name, outputs)
            for text in texts[:latency_sentences]:
                started = time.perf_counter()
                single([text])
                results[name]["latency_ms"].append(1e3 * (time.perf_counter() - started))
        if C_LOADER in wanted and binary is not None:
            result = results.setdefault(C_LOADER, {"sentences_per_s": [], "sentences_per_cpu_s": [], "latency_ms": []})
            batches, cpu = c_loader_run(binary, version, texts, size)
            result["sentences_per_s"].append(len(texts) / sum(batches))
            result["sentences_per_cpu_s"].append(len(texts) / cpu)
            batches, _ = c_loader_run(binary, version, texts[:latency_sentences], 1)
            result["latency_ms"].extend(1e3 * b for b in batches)
    same = None
    if SAVED_MODEL in cases and SAVED_MODEL_BF16 in cases:
        pairs = zip(entity_tuples(first_outputs[SAVED_MODEL]), entity_tuples(first_outputs[SAVED_MODEL_BF16]))
        same = float(np.mean([a == b for a, b in pairs]))
    return {"same_entities_bf16_vs_f32": same, "cases": results}


def table(name: str, results: dict) -> tuple[str, dict]:
    """Prints the size's table; returns it and, per case, its row of numbers."""
    header = ["path", "sentences/s", "vs HF", "sentences/CPU-s", "vs HF", "batch-1 p50 ms", "batch-1 p95 ms"]
    wall = {case: max(r["sentences_per_s"]) for case, r in results.items()}
    cpu = {case: max(r["sentences_per_cpu_s"]) for case, r in results.items()}
    rows = {}
    for case, r in results.items():
        p50, p95 = np.percentile(r["latency_ms"], [50, 95])
        r.update(latency_ms_p50=p50, latency_ms_p95=p95)
        vs_wall, vs_cpu = (wall[case] / wall[HF], cpu[case] / cpu[HF]) if HF in results else (None, None)
        rows[case] = [case, wall[case], vs_wall, cpu[case], vs_cpu, p50, p95]
    print(f"\n{name}")
    return print_table(header, list(rows.values())), rows


def ratio(rows: dict, case: str, reference: str, column: int) -> float | None:
    """rows[case][column] / rows[reference][column], or None if either case did not run."""
    if case not in rows or reference not in rows:
        return None
    return rows[case][column] / rows[reference][column]


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    scratch = Path(tempfile.mkdtemp())
    binary = build_c_loader(scratch) if "c_loader" in FLAGS.cases else None
    sizes = [None] if FLAGS.model_dir else FLAGS.sizes
    dev = [s.text for s in read_corpus(SHARED / "cluener" / "dev.json")]

    def per_size(values: list[str], i: int) -> int:
        return int(values[min(i, len(values) - 1)])

    runs, summary = {}, []
    for i, size in enumerate(sizes):
        work = scratch / f"size{i}"
        model_dir = Path(FLAGS.model_dir) if FLAGS.model_dir else random_model_dir(size, work / "model")
        texts, latency_sentences = dev[: per_size(FLAGS.sentences, i) or None], per_size(FLAGS.latency_sentences, i)
        load_before = os.getloadavg()
        result = measure(model_dir, work, binary, texts, latency_sentences)
        shape = json.loads((model_dir / "bert_config.json").read_text())
        name = f"{shape['num_hidden_layers']}L/{shape['hidden_size']}"
        load = f"{load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
        same = result["same_entities_bf16_vs_f32"]
        title = (
            f"{name}: CLUENER dev ({len(texts)} sentences), batch {FLAGS.batch_size} / batch 1, "
            f"{FLAGS.threads} threads, load {load}"
            + ("" if same is None else f"; bf16 export's entities = the float32 export's on {same:.2%} of them")
        )
        text, rows = table(title, result["cases"])
        runs[name] = {
            "model": shape,
            "load": load,
            "sentences": len(texts),
            "latency_sentences": latency_sentences,
            **result,
            "table": text,
        }
        summary.append(
            [
                name,
                rows[SAVED_MODEL][3] if SAVED_MODEL in rows else None,
                ratio(rows, SAVED_MODEL, PREDICTOR, 3),
                ratio(rows, SAVED_MODEL, HF, 3),
                ratio(rows, SAVED_MODEL, HF, 1),
                ratio(rows, SAVED_MODEL, HF, 5),
                ratio(rows, SAVED_MODEL_BF16, SAVED_MODEL, 3),
                ratio(rows, SAVED_MODEL_BF16, SAVED_MODEL_BF16_BEFORE, 3),
                ratio(rows, SAVED_MODEL_BF16, HF_BF16, 3),
                same,
            ]
        )
    print("\nThe SavedModel (serving_default) against kner.Predictor and the HF pipeline; sent/CPU-s unless said")
    header = [
        "size",
        "SavedModel sent/CPU-s",
        "vs Predictor",
        "vs HF",
        "vs HF, sent/s",
        "batch-1 p50 vs HF",
        "bf16 vs f32 export",
        "bf16 vs --before bf16",
        "bf16 export vs HF bf16",
        "same entities bf16/f32",
    ]
    overview = print_table(header, summary)
    key = "trained" if FLAGS.model_dir else "_".join(size.split("/")[0] for size in FLAGS.sizes)
    results = {"machine": facts, "trained": bool(FLAGS.model_dir), "cases": FLAGS.cases, "runs": runs}
    results["summary"] = overview
    write_json(result_file("inference", key) if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
