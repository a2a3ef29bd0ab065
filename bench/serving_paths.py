"""CPU cost of kner's three Python serving paths on the same texts, in one process:

- the export's `serving_default` signature (`tf.saved_model.load`);
- the export's restored `predict_text` function (what `kner.Predictor` calls);
- `TextTagger` built in-process from the model_dir (`kner.Predictor.from_dir(model_dir)`);

each on CLUENER dev batches of 32 in file order and sorted by length, plus
batch-1 latency. Sentences per CPU-second of this process (all threads) are
reported beside wall-clock sentences/s: on a shared machine they move much
less with the load. No PyTorch needed. The model_dir has random weights
(`--size`, softmax head, the BERT vocab), made once under `--work_dir`.
Run it at two commits to compare graphs: the export is made by the checkout.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/serving_paths.py --size=12L/768 --sentences=96
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: thread settings shared by the benchmarks)

# isort: on
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import app, flags
from common import JSON_HELP, SHARED, machine, print_table, set_threads, write_json
from kner_side import random_model_dir

from kner.data.corpus import read_corpus
from kner.serving.saved_model import export_model
from kner.serving.text_tagger import TextTagger

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "12L/768", "Model size.")
flags.DEFINE_string("work_dir", "runs/serving_paths", "Where the random model_dir and its export go.")
flags.DEFINE_integer("sentences", 96, "The first N CLUENER dev sentences.")
flags.DEFINE_integer("latency_sentences", 20, "Single-text calls timed for latency.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds.")
flags.DEFINE_integer("threads", 2, "Intra-op threads.")
flags.DEFINE_string("json", None, JSON_HELP + "nowhere (a diagnostic, no table of the report).")


def main(argv) -> None:
    del argv
    set_threads(FLAGS.threads)
    facts = machine()
    work = Path(FLAGS.work_dir) / FLAGS.size.replace("/", "_")
    model_dir = work / "model"
    if not (model_dir / "best.weights.h5").exists():
        random_model_dir(FLAGS.size, model_dir)
    export = work / f"export_{os.getpid()}"
    version = export_model(model_dir, export)  # by this checkout's code
    loaded = tf.saved_model.load(str(version))
    signature = loaded.signatures["serving_default"]
    in_process = TextTagger.from_model_dir(model_dir)
    texts = [s.text.encode() for s in read_corpus(SHARED / "cluener" / "dev.json")][: FLAGS.sentences]
    order = sorted(texts, key=len)
    orders = {"file order": texts, "sorted": order}
    paths = {
        "serving_default signature": lambda b: signature(text=tf.constant(b)),
        "loaded predict_text": lambda b: loaded.predict_text(tf.constant(b)),
        "in-process TextTagger": lambda b: in_process.predict_text(tf.constant(b)),
    }

    def run(path, batch):
        return {k: v.numpy() for k, v in path(batch).items()}

    for path in paths.values():
        run(path, texts[:32])
        run(path, texts[:1])
    results: dict[str, dict[str, list]] = {}
    for _ in range(FLAGS.rounds):
        for name, path in paths.items():
            for order_name, ordered in orders.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for begin in range(0, len(ordered), 32):
                    run(path, ordered[begin : begin + 32])
                entry = results.setdefault(f"{name}, {order_name}", {"per_s": [], "per_cpu_s": [], "ms": []})
                entry["per_s"].append(len(ordered) / (time.perf_counter() - wall))
                entry["per_cpu_s"].append(len(ordered) / (time.process_time() - cpu))
            entry = results.setdefault(f"{name}, batch 1", {"per_s": [], "per_cpu_s": [], "ms": []})
            for text in texts[: FLAGS.latency_sentences]:
                wall, cpu = time.perf_counter(), time.process_time()
                run(path, [text])
                entry["ms"].append((1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)))
    rows = []
    for name, entry in results.items():
        if entry["ms"]:
            wall_ms, cpu_ms = np.median(entry["ms"], axis=0)
            rows.append([name, None, None, float(wall_ms), float(cpu_ms)])
        else:
            rows.append([name, max(entry["per_s"]), max(entry["per_cpu_s"]), None, None])
    print(f"{FLAGS.size}, {len(texts)} CLUENER dev sentences, load {facts['loadavg_at_start']} -> {os.getloadavg()}")
    header = ["path, batches of 32", "sentences/s", "sentences/CPU-s", "batch-1 p50 ms", "batch-1 p50 CPU ms"]
    table = print_table(header, rows)
    write_json(FLAGS.json, {"machine": facts, "size": FLAGS.size, "results": results, "table": table})


if __name__ == "__main__":
    app.run(main)
