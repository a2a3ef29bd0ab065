"""The heads against each other: CRF vs GlobalPointer vs Efficient GlobalPointer
(`--heads`; also softmax and span, and any of them with adversarial training)
on nested CMeEE and flat CLUENER, 2-layer/128-hidden models from scratch
(`flags/tiny.cfg`; `--bert_config` for another size), dev F1 over `--seeds`
with training examples/s of each head in the same run; and peak training
memory of each head at a given length and batch (`--memory`).

Accuracy: each (corpus, head, seed) is the command users run,

    python -m kner.train --flagfile=flags/tiny.cfg --head=H --seed=S --train_file=... --dev_file=...

A head written `H+fgm` or `H+pgd` adds `--adversarial=fgm` (or `pgd`) at
kner.train's defaults (epsilon 1.0; PGD 3 steps of 0.3).

CMeEE's train file is the only split here: it is carved once with
`python -m kner.data split` (`--cmeee_train` sentences for train, `--cmeee_dev`
for dev, `--carve_seed`; `--lenient` drops its two empty entities). The CRF
trains with `--lenient` there: it keeps the outer span of nested ones and
drops the later span of each crossing or same-extent pair (a few in 1,000
dev sentences), in train and in its dev gold. Dev F1 is the best epoch's
exact-span micro F1 (nested entities counted); examples/s
is the batch size over the mean step time of the epochs after the first
(which traces), from the training log; the table shows each head's best
run (load only slows a run; every run's is in the JSON).

Memory: each head in a child process of its own, the training step of
`kner_side.train_step` at `--memory_length` tokens x `--memory_batch` sentences,
9 entity types (CMeEE's), random gold spans; peak RSS (`ru_maxrss`) after
each stage. RSS does not depend on the machine's load.

    PYTHONPATH=. nice .venv/bin/python bench/heads.py --seeds=42,7,1   # -> bench/results/heads.json#accuracy
    PYTHONPATH=. .venv/bin/python bench/heads.py --memory              # -> bench/results/heads.json#memory
    # every head on CLUENER, and the CRF with FGM and with PGD:
    PYTHONPATH=. nice .venv/bin/python bench/heads.py --corpora=cluener --seeds=42,7,1 \
        --heads=softmax,crf,span,global_pointer,efficient_global_pointer,crf+fgm,crf+pgd \
        --json=bench/results/heads.json#cluener_2L
    # one seed at 4L/256:
    PYTHONPATH=. nice .venv/bin/python bench/heads.py --corpora=cluener --seeds=42 --heads=crf,span,global_pointer \
        --bert_config=bench/bert_4L_256.json --json=bench/results/heads.json#cluener_4L
    # a smoke run in minutes, written nowhere:
    PYTHONPATH=. .venv/bin/python bench/heads.py --seeds=1 --epochs=1 --train_limit=200 --dev_limit=100 --json=

Runs already finished in `--work_dir` (same command) are read back, not
trained again: corpora or seeds may run in parallel processes, and a last
call over all of them writes the table.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags
from common import (
    JSON_HELP,
    ROOT,
    SHARED,
    bert_config,
    child_result,
    machine,
    print_table,
    result_file,
    rss,
    run_child,
    subset,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_list("corpora", ["cmeee", "cluener"], "Data sets.")
flags.DEFINE_list(
    "heads", ["crf", "global_pointer", "efficient_global_pointer"], "Heads; H+fgm or H+pgd: H trained adversarially."
)
flags.DEFINE_string("bert_config", None, "A bert_config.json for every run (default: the flagfile's, 2L/128).")
flags.DEFINE_list("seeds", ["42", "7", "1"], "Training seeds.")
flags.DEFINE_integer("epochs", 6, "Epochs per run.")
flags.DEFINE_integer("cmeee_train", 5000, "CMeEE sentences carved for train.")
flags.DEFINE_integer("cmeee_dev", 1000, "CMeEE sentences carved for dev.")
flags.DEFINE_integer("carve_seed", 42, "Seed of the CMeEE carve.")
flags.DEFINE_integer("train_limit", 0, "Train on the first N sentences of the train split only (0: all).")
flags.DEFINE_integer("dev_limit", 0, "Evaluate on the first N dev sentences only (0: all).")
flags.DEFINE_bool("memory", False, "Measure peak training memory instead.")
flags.DEFINE_bool("table_only", False, "Train nothing: the table of the runs finished in --work_dir.")
flags.DEFINE_integer("memory_length", 512, "Memory: tokens per sentence (--max_seq_length).")
flags.DEFINE_integer("memory_batch", 8, "Memory: sentences per batch.")
flags.DEFINE_integer("memory_steps", 3, "Memory: training steps.")
flags.DEFINE_string("work_dir", str(Path(tempfile.gettempdir()) / "kner-bench-heads"), "model_dirs and carves go here.")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/heads.json#accuracy (#memory with --memory).")
flags.DEFINE_string("child", None, "Internal: one memory measurement (JSON spec).")

FLAGFILE = "flags/tiny.cfg"
CMEEE_TYPES = ("bod", "dep", "dis", "dru", "equ", "ite", "mic", "pro", "sym")
STEP_TIME = re.compile(r"^\d+/\d+ - \S+ - (\d+)ms/step", re.M)
BATCH = re.compile(r"^--batch_size=(\d+)$", re.M)


def kner(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def data_files(corpus: str, work: Path) -> tuple[Path, Path, list[str]]:
    """(train, dev, extra flags) of a corpus, carved and cut as the flags say."""
    if corpus == "cluener":
        train, dev, extra = SHARED / "cluener" / "train.json", SHARED / "cluener" / "dev.json", []
    else:
        # --lenient: the CRF drops the later span of each crossing or same-extent pair.
        train, dev, extra = work / "cmeee_train.json", work / "cmeee_dev.json", ["--input_format=cmeee", "--lenient"]
        if not dev.exists():
            kner(
                "kner.data", "split", str(SHARED / "cmeee" / "train.json"), str(train), str(dev),
                f"--dev_size={FLAGS.cmeee_dev}", f"--train_size={FLAGS.cmeee_train}", f"--seed={FLAGS.carve_seed}",
                "--lenient",
            )  # fmt: skip
    return subset(train, FLAGS.train_limit, work), subset(dev, FLAGS.dev_limit, work), extra


def dev_scores(model_dir: Path) -> dict:
    """The best epoch's dev scores (`eval_report.json`) and the micro F1 after
    each epoch (the run's TensorBoard `dev` summaries)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    report = json.loads((model_dir / "eval_report.json").read_text())
    by_step = {}
    for path in sorted((model_dir / "dev").glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "overall/f1":
                    by_step[event.step] = round(float(tf.make_ndarray(value.tensor)), 4)
    return {
        "f1": report["micro"]["f1"],
        "precision": report["micro"]["precision"],
        "recall": report["micro"]["recall"],
        "per_type_f1": {t: s["f1"] for t, s in report["per_type"].items()},
        "best_epoch": report["epoch"],
        "epoch_f1": [by_step[step] for step in sorted(by_step)],
    }


def train(corpus: str, head: str, seed: str, work: Path) -> dict | None:
    """One run's result; a finished run of the same command is read back
    (None with --table_only when there is none)."""
    train_file, dev_file, extra = data_files(corpus, work)
    name, _, adversarial = head.partition("+")
    if adversarial:
        extra = [*extra, f"--adversarial={adversarial}"]
    run = f"{corpus}_{name}_{adversarial}_{seed}" if adversarial else f"{corpus}_{name}_{seed}"
    if FLAGS.bert_config:
        extra = [*extra, f"--bert_config={FLAGS.bert_config}"]
        run += "_" + Path(FLAGS.bert_config).stem
    model_dir = work / run
    saved = model_dir / "bench_heads_run.json"
    command = [
        "kner.train", f"--flagfile={FLAGFILE}", f"--head={name}", f"--seed={seed}", f"--train_file={train_file}",
        f"--dev_file={dev_file}", f"--model_dir={model_dir}", f"--epochs={FLAGS.epochs}", *extra,
    ]  # fmt: skip
    # As users would type it: no paths of this machine.
    shown = "python -m " + " ".join(command).replace(str(SHARED), "../shared/data").replace(str(work), "<work_dir>")
    if saved.exists() and json.loads(saved.read_text())["command"] == shown:
        return {**json.loads(saved.read_text()), **dev_scores(model_dir)}
    if FLAGS.table_only:
        return None
    started = time.perf_counter()
    done = kner(*command)
    wall = time.perf_counter() - started
    steps = [int(ms) for ms in STEP_TIME.findall(done.stdout)]
    batch = int(BATCH.search((ROOT / FLAGFILE).read_text()).group(1))
    after_tracing = steps[1:] or steps
    result = {
        "command": shown,
        "examples_per_second": 1000 * batch / statistics.mean(after_tracing) if after_tracing else None,
        "wall_seconds": wall,
    }
    saved.write_text(json.dumps(result, ensure_ascii=False) + "\n")
    return {**result, **dev_scores(model_dir)}


def accuracy() -> dict:
    work = Path(FLAGS.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in FLAGS.seeds:  # seed by seed: a run cut short still has every head
        for corpus in FLAGS.corpora:
            for head in FLAGS.heads:
                result = train(corpus, head, seed, work)
                if result:
                    runs.append({"corpus": corpus, "head": head, "seed": seed, **result})
                    print(json.dumps(runs[-1]), flush=True)
    rows = []
    for corpus in FLAGS.corpora:
        # The seeds every head finished: the heads compare on the same seeds.
        seeds = [s for s in FLAGS.seeds if all(any(r["corpus"] == corpus and (r["head"], r["seed"]) == (h, s)
                 for r in runs) for h in FLAGS.heads)]  # fmt: skip
        for head in FLAGS.heads:
            results = [r for r in runs if r["corpus"] == corpus and r["head"] == head and r["seed"] in seeds]
            if not results:
                continue
            f1 = [r["f1"] for r in results]
            recall = statistics.mean(r["recall"] for r in results)
            precision = statistics.mean(r["precision"] for r in results)
            speed = [r["examples_per_second"] for r in results if r["examples_per_second"]]
            spread = statistics.stdev(f1) if len(f1) > 1 else 0.0
            best_speed = max(speed) if speed else None
            rows.append(
                [corpus, head, ",".join(seeds), statistics.mean(f1), spread, min(f1), max(f1), precision, recall,
                 best_speed]
            )  # fmt: skip
    header = ["corpus", "head", "seeds", "dev F1 mean", "std", "min", "max", "P mean", "R mean"]
    header.append("train examples/s (best run)")
    return {"runs": runs, "table": print_table(header, rows)}


def memory_child(spec: dict) -> None:
    # isort: off
    import kner.cli  # noqa: F401  (first, as in kner.train: it keeps tensorflow-text out)

    # isort: on
    import kner_side
    import numpy as np
    import tensorflow as tf
    from common import set_threads

    from kner.data.labels import LabelVocab

    stages = {"import": rss()}
    set_threads(2)
    labels = LabelVocab.from_types(CMEEE_TYPES, "bios")
    model = kner_side.tagger(bert_config("2L/128", 21128), spec["head"], labels)
    step = kner_side.train_step(model, False, total_steps=10_000)
    stages["model and optimizer"] = rss()
    batch, length = spec["batch"], spec["length"]
    rng = np.random.default_rng(0)
    token_ids = rng.integers(6, 21128, (batch, length), dtype=np.int32)
    features = {
        "token_ids": tf.constant(token_ids),
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": tf.ones((batch, length), tf.bool),
    }
    if model.head.tagging:
        features["label_ids"] = tf.constant(rng.integers(0, len(labels), (batch, length - 1), dtype=np.int32))
    elif model.head.per_position:  # the span head: a start and an end class (or 0) per character
        for key in model.targets.keys:
            shape = (batch, length - 1)
            classes = rng.integers(0, len(CMEEE_TYPES) + 1, shape) * (rng.random(shape) < 0.1)
            features[key] = tf.constant(classes.astype(np.int32))
    else:  # 20 spans a sentence, of up to 10 characters
        start = rng.integers(0, length - 12, (batch, 20))
        spans = np.stack([rng.integers(0, 9, (batch, 20)), start, start + rng.integers(0, 10, (batch, 20))], -1)
        features["span_labels"] = tf.constant(spans.astype(np.int32))
    for index in range(spec["steps"]):
        step(features).numpy()
        stages[f"step {index + 1}"] = rss()
    child_result({"stages": stages})


def memory() -> dict:
    results = {}
    for head in FLAGS.heads:
        spec = {"head": head, "batch": FLAGS.memory_batch, "length": FLAGS.memory_length, "steps": FLAGS.memory_steps}
        results[head] = run_child(__file__, spec)
    names = list(next(iter(results.values()))["stages"])
    rows = [[name, *(r["stages"][name][0] for r in results.values())] for name in names]
    print(f"2L/128, 9 types, batch {FLAGS.memory_batch} x {FLAGS.memory_length} tokens: peak RSS MiB after each stage")
    return {"heads": results, "table": print_table(["stage", *results], rows)}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        memory_child(json.loads(FLAGS.child))
        return
    facts = machine()
    results = memory() if FLAGS.memory else accuracy()
    default = result_file("heads", "memory" if FLAGS.memory else "accuracy")
    write_json(default if FLAGS.json is None else FLAGS.json, {"machine": facts, **results})


if __name__ == "__main__":
    app.run(main)
