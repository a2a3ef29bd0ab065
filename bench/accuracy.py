"""Dev F1 and training time of from-scratch models: kner's CLI against the same
model and recipe in Hugging Face transformers + PyTorch.

The kner side is the command users run:

    python -m kner.train --flagfile=flags/tiny.cfg --head=H --model_dir=D --epochs=N

The reference then trains `BertForTokenClassification` (plus a small torch CRF
for `crf`, see `torch_reference.py`) from that run's `model_dir`: its
`bert_config.json`, `vocab.txt` and `labels.json`, the hyperparameters of its
`flags.cfg` (epochs, batch, both learning rates, warmup, weight decay,
clipping, dropout, seed), kner's tokenizer ids and kner's batch plan, so both
sides train on identical inputs. Both evaluate on dev after every epoch with
`kner.metrics.evaluate`, spans decoded by `LabelVocab.decode`, and report the
best epoch, as kner does. Times are the wall time of each side's whole process.

    PYTHONPATH=. .venv/bin/python bench/accuracy.py --epochs=6   # -> bench/results/accuracy.json#cluener_2L
    PYTHONPATH=. .venv/bin/python bench/accuracy.py --corpus=peoples_daily --heads=crf --train_limit=20000 \\
        --epochs=2 --json=bench/results/accuracy.json#peoples_daily_2L_crf
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags
from common import (
    JSON_HELP,
    ROOT,
    SHARED,
    char_mask,
    child_result,
    machine,
    pad_batch,
    print_table,
    result_file,
    run_child,
    subset,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_enum("corpus", "cluener", ["cluener", "peoples_daily"], "Data set.")
flags.DEFINE_string("bert_config", "flags/tiny_bert_config.json", "Model shape.")
flags.DEFINE_list("heads", ["softmax", "crf"], "Heads to train.")
flags.DEFINE_list("sides", ["kner", "torch"], "kner, and/or the PyTorch reference (needs the kner run's model_dir).")
flags.DEFINE_integer("epochs", 15, "Epochs on both sides.")
flags.DEFINE_enum("reference_init", "hf", ["hf", "keras_hub"], "The reference's initialiser: HF's or keras-hub's.")
flags.DEFINE_integer("seed", None, "Seed on both sides (default: the flagfile's).")
flags.DEFINE_integer("train_limit", 0, "Train on the first N sentences only (0: all).")
flags.DEFINE_string("work_dir", "runs/bench_accuracy", "model_dirs go here.")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/accuracy.json#CORPUS_<layers>L.")
flags.DEFINE_string("child", None, "Internal: train the reference (JSON spec).")

DATA = {
    "cluener": (SHARED / "cluener" / "train.json", SHARED / "cluener" / "dev.json", []),
    "peoples_daily": (SHARED / "peoples_daily" / "train.txt", SHARED / "peoples_daily" / "dev.txt", ["--lenient"]),
}
MICRO = re.compile(r"^micro\s+[\d.]+\s+[\d.]+\s+([\d.]+)", re.M)
FLAGFILE = "flags/tiny.cfg"


def seed() -> int:
    """--seed, or the flagfile's when not given."""
    if FLAGS.seed is not None:
        return FLAGS.seed
    return int(re.search(r"^--seed=(\d+)$", (ROOT / FLAGFILE).read_text(), re.M).group(1))


def run_kner(head: str, model_dir: Path, train: Path) -> dict:
    _, dev, extra = DATA[FLAGS.corpus]
    command = [
        sys.executable,
        "-m",
        "kner.train",
        f"--flagfile={FLAGFILE}",
        f"--bert_config={FLAGS.bert_config}",
        f"--train_file={train}",
        f"--dev_file={dev}",
        f"--head={head}",
        f"--model_dir={model_dir}",
        f"--epochs={FLAGS.epochs}",
        *extra,
        f"--seed={seed()}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report = json.loads((model_dir / "eval_report.json").read_text())
    return {
        "command": " ".join(command[1:]),
        "f1": report["micro"]["f1"],
        "best_epoch": report["epoch"],
        "epoch_f1": [float(f) for f in MICRO.findall(done.stdout)],
        "wall_seconds": wall,
    }


def run_torch(head: str, model_dir: Path, train: Path) -> dict:
    _, dev, extra = DATA[FLAGS.corpus]
    spec = {
        "head": head,
        "model_dir": str(model_dir),
        "train": str(train),
        "dev": str(dev),
        "lenient": bool(extra),
        "init": FLAGS.reference_init,
    }
    started = time.perf_counter()
    result = run_child(__file__, spec)
    return {**result, "init": FLAGS.reference_init, "wall_seconds": time.perf_counter() - started}


def child(spec: dict) -> None:
    """Trains and evaluates the reference (in a process of its own)."""
    import torch
    from torch_reference import TorchTagger, make_optimizer, to_torch, train_step

    from kner.data.corpus import read_corpus
    from kner.data.labels import LabelVocab
    from kner.data.pipeline import encode_targets, plan_batches
    from kner.data.tokenizer import CharTokenizer
    from kner.metrics import evaluate
    from kner.models.crf import allowed_transitions

    model_dir = Path(spec["model_dir"])
    settings = dict(re.findall(r"^--(\w+)=(.*)$", (model_dir / "flags.cfg").read_text(), re.M))
    number = {k: float(v) for k, v in settings.items() if re.fullmatch(r"[\d.e+-]+", v)}
    labels = LabelVocab.load(model_dir / "labels.json")
    tokenizer = CharTokenizer(model_dir / "vocab.txt")
    bert_config = json.loads((model_dir / "bert_config.json").read_text())
    train = read_corpus(spec["train"], strict=not spec["lenient"])
    dev = read_corpus(spec["dev"], strict=not spec["lenient"])
    batch_size, epochs, seed = int(number["batch_size"]), int(number["epochs"]), int(number["seed"])

    texts, targets, _ = encode_targets(train, labels, int(number["max_seq_length"]) - 2)
    label_ids = targets["label_ids"]
    char_ids = [tokenizer.encode(t) for t in texts]
    per_epoch = len(plan_batches([len(t) for t in texts], batch_size, seed=0))
    torch.manual_seed(seed)
    constraints = allowed_transitions(labels.tags, labels.scheme)
    model = TorchTagger(bert_config, len(labels), spec["head"], constraints, number["dropout"], spec["init"])
    optimizer, scheduler = make_optimizer(
        model,
        number["learning_rate"],
        number["head_learning_rate"],
        number["weight_decay"],
        int(per_epoch * epochs * number["warmup_proportion"]),
        per_epoch * epochs,
    )
    dev_ids = [tokenizer.encode(s.text) for s in dev]
    dev_batches = [
        to_torch(pad_batch([dev_ids[i] for i in rows], None, tokenizer))
        for rows in plan_batches([len(r) for r in dev_ids], int(number["eval_batch_size"]))
    ]
    scores, train_seconds = [], 0.0
    for epoch in range(epochs):
        started = time.perf_counter()
        for rows in plan_batches([len(t) for t in texts], batch_size, seed=seed + epoch):
            batch = pad_batch([char_ids[i] for i in rows], [label_ids[i] for i in rows], tokenizer)
            train_step(model, optimizer, scheduler, to_torch(batch), number["clip_norm"])
        train_seconds += time.perf_counter() - started
        model.eval()
        predicted = []
        for batch in dev_batches:
            for row, mask in zip(model.decode(batch).numpy(), char_mask(batch["padding_mask"].numpy())):
                predicted.append(labels.decode(row[mask])[0])
        report = evaluate([s.text for s in dev], [s.spans for s in dev], predicted)
        scores.append(report["micro"]["f1"])
        print(f"epoch {epoch + 1}: dev micro F1 {scores[-1]:.4f}", file=sys.stderr, flush=True)
    best = max(range(epochs), key=scores.__getitem__)
    child_result({"f1": scores[best], "best_epoch": best + 1, "epoch_f1": scores, "train_seconds": train_seconds})


def main(argv) -> None:
    del argv
    if FLAGS.child:
        child(json.loads(FLAGS.child))
        return
    facts = machine()
    work_dir = Path(FLAGS.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    train = subset(DATA[FLAGS.corpus][0], FLAGS.train_limit, work_dir)
    shape = json.loads((ROOT / FLAGS.bert_config).read_text())
    size = f"{shape['num_hidden_layers']}L/{shape['hidden_size']}"
    rows = []
    for head in FLAGS.heads:
        model_dir = work_dir / f"{FLAGS.corpus}_{size.replace('/', '_')}_{head}_seed{seed()}"
        for side in FLAGS.sides:
            if side == "kner":
                shutil.rmtree(model_dir, ignore_errors=True)  # kner.train would resume from it
                result = run_kner(head, model_dir, train)
            else:
                result = run_torch(head, model_dir, train)
            row = {"side": side, "head": head, "size": size, **result}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(
        f"\n{FLAGS.corpus} dev, {size} from scratch, {FLAGS.epochs} epochs, "
        f"train sentences: {FLAGS.train_limit or 'all'}; load {facts['loadavg_at_start']}"
    )
    header = ["model", "head", "side", "dev micro F1", "best epoch", "wall minutes"]
    table = print_table(
        header, [[r["size"], r["head"], r["side"], r["f1"], r["best_epoch"], r["wall_seconds"] / 60] for r in rows]
    )
    settings = {"corpus": FLAGS.corpus, "bert_config": FLAGS.bert_config, "epochs": FLAGS.epochs, "seed": seed()}
    default = result_file("accuracy", f"{FLAGS.corpus}_{shape['num_hidden_layers']}L")
    results = {"machine": facts, **settings, "train_limit": FLAGS.train_limit, "rows": rows, "table": table}
    write_json(default if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
