"""Batch-1 latency of the exported SavedModel: where the time goes, and one
serving graph against another, in one process.

For each of `--sizes` (random weights, CLUENER's labels, the BERT vocab;
speed does not depend on the weights, and a pair head's threshold is set to
find as many entities as CLUENER has, `kner_side.random_model_dir`) the
model_dir of `--head` is exported with `python -m kner.export` by this
checkout ("after") and by each checkout named in `--before` (LABEL=PATH, for
example an archive of main's tree); or, with several `--heads` (no
`--before`), each head's model_dir is exported by this checkout and the
heads are compared with the first.
Then, in one process:

- **breakdown** (each export): the SavedModel loaded the way TF
  Serving and TensorFlow's C loader load it (`tf.compat.v1` session over the
  `serve` MetaGraph: `LoadSavedModel` + `Session::Run`), one text per call
  (`--trace_batch` texts) with a full trace: the ops the executor ran per call (loop iterations
  counted), grouped by the graph's stages (`predict_text`'s name scopes),
  with their traced time, and the op types' traced time; the graph's static op count (function bodies
  included).
- **before / after**: every export's Python `serving_default` signature
  (`tf.saved_model.load`; outputs fetched as numpy) and both in a session
  (the difference is Python's per-call cost), interleaved over `--rounds`: batch-1 latency over the first
  `--latency_sentences` CLUENER dev texts (pooled over rounds, p50) and
  batches of 32 over the first `--sentences` (best round), with the load
  average; and the student/teacher ratio (first size over second).

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/serving_latency.py --before=before=runs/kner_before \\
        --threads=1   # -> bench/results/serving_latency.json#threads1
    PYTHONPATH=. nice -n 10 .venv/bin/python bench/serving_latency.py \\
        --heads=crf,global_pointer,efficient_global_pointer   # -> bench/results/serving_latency.json#heads_threads2
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: thread settings shared by the benchmarks)

# isort: on
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags
from common import JSON_HELP, ROOT, SHARED, machine, print_table, result_file, set_threads, write_json
from kner_side import export, random_model_dir
from tf_session import STAGES, Session, breakdown

from kner.data.corpus import read_corpus
from kner.models.heads import HEADS

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["2L/128", "4L/256"], "Model sizes (student first, then teacher).")
flags.DEFINE_list("heads", ["crf"], f"Heads of the random models ({', '.join(HEADS)}); several: compared.")
flags.DEFINE_list("before", [], "LABEL=PATH of kner checkouts whose exports are compared with this one's.")
flags.DEFINE_integer("sentences", 320, "Batches of 32 over the first N CLUENER dev sentences.")
flags.DEFINE_integer("latency_sentences", 100, "Single-text calls per round, the first N dev sentences.")
flags.DEFINE_integer("trace_sentences", 20, "Calls traced for the breakdown.")
flags.DEFINE_integer("trace_batch", 1, "Texts per traced call (consecutive dev sentences), e.g. 32 for a batch.")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"], "`kner.export --compute_dtype` of every export.")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds.")
flags.DEFINE_integer("threads", 2, "Intra-op threads.")
flags.DEFINE_string("work_dir", None, "Where model_dirs and exports go (default: a temporary directory).")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/serving_latency.json#threadsN.")


def compare(versions: dict[str, Path], texts: list[bytes]) -> dict:
    """Latency and throughput of each export, signature and session, interleaved."""
    cases = {}
    for name, version in versions.items():
        signature = tf.saved_model.load(str(version)).signatures["serving_default"]
        cases[f"{name}, signature"] = lambda b, s=signature: {k: v.numpy() for k, v in s(text=tf.constant(b)).items()}
        cases[f"{name}, session"] = Session(version, FLAGS.threads)
    for run in cases.values():
        run(texts[:32])
        run(texts[:1])
    keys = ("latency_ms", "latency_cpu_ms", "sentences_per_s", "sentences_per_cpu_s")
    results = {name: {key: [] for key in keys} for name in cases}
    throughput_texts = texts[: FLAGS.sentences]
    for _ in range(FLAGS.rounds):
        for name, run in cases.items():
            for text in texts[: FLAGS.latency_sentences]:
                started, cpu = time.perf_counter(), time.process_time()
                run([text])
                results[name]["latency_ms"].append(1e3 * (time.perf_counter() - started))
                results[name]["latency_cpu_ms"].append(1e3 * (time.process_time() - cpu))
            started, cpu = time.perf_counter(), time.process_time()
            for begin in range(0, len(throughput_texts), 32):
                run(throughput_texts[begin : begin + 32])
            results[name]["sentences_per_s"].append(len(throughput_texts) / (time.perf_counter() - started))
            results[name]["sentences_per_cpu_s"].append(len(throughput_texts) / (time.process_time() - cpu))
    for result in results.values():
        result["latency_ms_p50"] = float(np.median(result["latency_ms"]))
        result["latency_ms_p95"] = float(np.percentile(result["latency_ms"], 95))
        result["latency_cpu_ms_p50"] = float(np.median(result["latency_cpu_ms"]))
    return results


def _speed_ups(before: dict, after: dict) -> list[float]:
    """Latency (wall, CPU) before / after, throughput (wall, CPU) after / before."""
    return [
        before["latency_ms_p50"] / after["latency_ms_p50"],
        before["latency_cpu_ms_p50"] / after["latency_cpu_ms_p50"],
        max(after["sentences_per_s"]) / max(before["sentences_per_s"]),
        max(after["sentences_per_cpu_s"]) / max(before["sentences_per_cpu_s"]),
    ]


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    work = Path(FLAGS.work_dir or tempfile.mkdtemp())
    texts = [s.text.encode() for s in read_corpus(SHARED / "cluener" / "dev.json")]
    roots = {label: Path(path) for label, path in (item.split("=", 1) for item in FLAGS.before)}
    if len(FLAGS.heads) > 1 and roots:
        raise app.UsageError("compare checkouts (--before) or heads (several --heads), not both")
    roots["after"] = ROOT
    runs, summary = {}, []
    for size in FLAGS.sizes:
        name = size.replace("/", "_")
        versions = {}
        for head in FLAGS.heads:
            model_dir = work / name / f"model_{head}"
            if not (model_dir / "best.weights.h5").exists():
                random_model_dir(size, model_dir, head)
            for label, root in roots.items():
                key = head if len(FLAGS.heads) > 1 else label
                versions[key] = export(model_dir, work / name / f"{head}_{label}", FLAGS.compute_dtype, root)
        base = FLAGS.heads[0] if len(FLAGS.heads) > 1 else "after"
        load = [os.getloadavg()[0]]
        parts = {
            label: breakdown(version, texts, FLAGS.threads, FLAGS.trace_batch, FLAGS.trace_sentences)
            for label, version in versions.items()
        }
        results = compare(versions, texts)
        load.append(os.getloadavg()[0])
        runs[size] = {"load": load, "breakdown": parts, "cases": results}
        print(f"\n{size}, {', '.join(FLAGS.heads)}: load {load[0]:.1f} -> {load[1]:.1f}")
        for label, part in parts.items():
            print(f"{label}: static ops (graph + function bodies) {part['static_ops']}; most run ops per call:")
            print(", ".join(f"{op} {n:.0f}" for op, n in part["most_run_ops"].items()))
            by_op = part["traced_ms_by_op"].items()
            print("traced ms per call by op: " + ", ".join(f"{op} {ms:.2f}" for op, ms in by_op))
        header = ["stage"] + [f"{label}: {what}" for label in parts for what in ("ops run per call", "traced ms")]
        rows = [
            [name, *(part[key][name] for part in parts.values() for key in ("ops_per_call", "traced_ms_per_call"))]
            for name in (*STAGES, "other")
        ]
        rows.append(["total", *(sum(row[i] for row in rows) for i in range(1, len(header)))])
        runs[size]["breakdown_table"] = print_table(header, rows)
        header = ["case", "batch-1 p50 ms", "p95 ms", "p50 CPU ms", "batch-32 sentences/s", "sentences/CPU-s"]
        rows = [
            [case, r["latency_ms_p50"], r["latency_ms_p95"], r["latency_cpu_ms_p50"], max(r["sentences_per_s"]),
             max(r["sentences_per_cpu_s"])]
            for case, r in results.items()
        ]  # fmt: skip
        runs[size]["table"] = print_table(header, rows)
        header = ["path", f"batch-1 p50, X / {base}", f"p50 CPU, X / {base}", f"sentences/s, {base} / X"]
        header.append(f"per CPU-s, {base} / X")
        rows = [
            [f"{path}, X = {label}", *_speed_ups(results[f"{label}, {path}"], results[f"{base}, {path}"])]
            for label in versions if label != base for path in ("signature", "session")
        ]  # fmt: skip
        if rows:
            runs[size]["speed_up_table"] = print_table(header, rows)
        summary.append((size, results))
    if len(summary) == 2:
        (student, fast), (teacher, slow) = summary
        print(f"\n{teacher} / {student}, batch-1 p50 latency (wall, CPU) and batch-32 sentences/s:")
        rows = [
            [case, slow[case]["latency_ms_p50"] / fast[case]["latency_ms_p50"],
             slow[case]["latency_cpu_ms_p50"] / fast[case]["latency_cpu_ms_p50"],
             max(fast[case]["sentences_per_s"]) / max(slow[case]["sentences_per_s"])]
            for case in fast
        ]  # fmt: skip
        runs["ratio_table"] = print_table(
            ["case", "latency, teacher / student", "CPU latency, teacher / student", "sentences/s, student / teacher"],
            rows,
        )
    key = ("heads_" if len(FLAGS.heads) > 1 else "") + f"threads{FLAGS.threads}"
    default = result_file("serving_latency", key)
    write_json(default if FLAGS.json is None else FLAGS.json, {"machine": facts, "heads": FLAGS.heads, "runs": runs})


if __name__ == "__main__":
    app.run(main)
