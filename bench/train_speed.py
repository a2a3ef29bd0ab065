"""Training speed and peak memory: kner (XLA off and on) against Hugging Face
`BertForTokenClassification` on PyTorch, the same full step on the same batches.

A step is forward, backward, global-norm clipping and the AdamW update (with
the warmup/decay schedule), softmax head, batch 32. Sides: `kner` (float32),
`kner_xla` (`--jit_compile`), `kner_bf16` (`--mixed_precision=mixed_bfloat16`),
`kner_bf16_xla` (both), `torch` (float32) and `torch_bf16` (the forward pass
under `torch.autocast("cpu", torch.bfloat16)`). Two workloads:
- `len128`: every sentence 128 tokens, no padding;
- `cluener`: CLUENER train batches as kner makes them (length-bucketed,
  padded per batch), the same batches for both sides.

Each measurement runs in a child process of its own: one warm-up pass over
the batches (tracing, and with XLA one compilation per batch shape), then
timed passes until `--min_seconds` and `--min_steps` are reached; the table
shows the best pass (the machine is shared: see README), the JSON also the
median. Peak memory is the child's `ru_maxrss`. The sides of one model run
back to back, `--rounds` times interleaved; the best round counts.

    PYTHONPATH=. .venv/bin/python bench/train_speed.py --sizes=2L/128,4L/256   # -> train_speed.json#2L_4L
    PYTHONPATH=. .venv/bin/python bench/train_speed.py --sizes=12L/768 --cluener_sizes= --rounds=1 \
        --min_steps=2 --min_seconds=0   # -> #12L
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags
from common import (
    BERT_VOCAB,
    JSON_HELP,
    NUM_TAGS,
    SIZES,
    bert_config,
    child_result,
    cluener_batches,
    load_batches,
    machine,
    print_table,
    random_batches,
    result_file,
    run_child,
    save_batches,
    set_threads,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", list(SIZES), "Model sizes for the len128 workload.")
flags.DEFINE_list("cluener_sizes", ["2L/128", "4L/256"], "Model sizes for the cluener workload.")
SIDES = ("kner", "kner_xla", "kner_bf16", "kner_bf16_xla", "torch", "torch_bf16")
flags.DEFINE_list("sides", ["kner", "kner_xla", "kner_bf16", "torch", "torch_bf16"], f"What to measure, of {SIDES}.")
flags.register_validator("sides", lambda sides: set(sides) <= set(SIDES), f"--sides: each one of {SIDES}")
flags.DEFINE_integer("batch_size", 32, "Sentences per step.")
flags.DEFINE_integer("length", 128, "Tokens per sentence in the len128 workload.")
flags.DEFINE_integer("cluener_batches", 8, "Distinct CLUENER batches per pass.")
flags.DEFINE_float("min_seconds", 20.0, "Time each measurement for at least this long.")
flags.DEFINE_integer("min_steps", 3, "And for at least this many steps.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds of all sides per model.")
flags.DEFINE_integer("threads", 2, "Intra-op threads of both frameworks.")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/train_speed.json#<the sizes, e.g. 2L_4L_12L>.")
flags.DEFINE_string("child", None, "Internal: run one measurement (JSON spec).")


def measure(step, batches: list, min_seconds: float, min_steps: int) -> dict:
    """A warm-up pass, then whole timed passes over `batches`. Other work on
    the machine slows some passes down: the best pass is the least disturbed."""
    for batch in batches:
        step(batch)
    sentences = sum(len(b["token_ids"]) for b in batches)
    passes = []
    while len(passes) * len(batches) < min_steps or sum(passes) < min_seconds:
        started = time.perf_counter()
        for batch in batches:
            step(batch)
        passes.append(time.perf_counter() - started)
    best, median = min(passes), statistics.median(passes)
    return {
        "steps": len(passes) * len(batches),
        "seconds": sum(passes),
        "examples_per_s": sentences / best,
        "examples_per_s_median": sentences / median,
        "ms_per_step": 1e3 * best / len(batches),
    }


def pad_to_xla_multiple(batch: dict) -> dict:
    """The batch padded as `kner.train --jit_compile` pads it: its length
    rounded up to a multiple of `XLA_LENGTH_MULTIPLE` ([PAD] is id 0 in the
    BERT vocab, as in every padded position of `common.pad_batch`)."""
    from kner.training.trainer import XLA_LENGTH_MULTIPLE

    extra = -batch["token_ids"].shape[1] % XLA_LENGTH_MULTIPLE
    return {key: np.pad(value, [(0, 0), (0, extra)]) for key, value in batch.items()}


def child(spec: dict) -> None:
    batches = load_batches(spec["batches"])
    config = bert_config(spec["size"], spec["vocab_size"])
    side = spec["side"]
    if side.startswith("torch"):
        import torch
        from torch_reference import TorchTagger, make_optimizer, to_torch, train_step

        set_threads(spec["threads"])
        torch.manual_seed(42)
        model = TorchTagger(config, NUM_TAGS)
        optimizer, scheduler = make_optimizer(model, 1e-3, 5e-3, 0.01, 10, 10_000)
        inputs = [to_torch(b) for b in batches]
        bfloat16 = side == "torch_bf16"
        result = measure(
            lambda b: train_step(model, optimizer, scheduler, b, bfloat16=bfloat16),
            inputs,
            spec["min_seconds"],
            spec["min_steps"],
        )
    else:
        import keras
        import kner_side

        set_threads(spec["threads"])
        if "bf16" in side:  # as `python -m kner.train --mixed_precision=mixed_bfloat16` does
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        xla = side.endswith("xla")
        step = kner_side.train_step(kner_side.tagger(config), xla, total_steps=10_000)
        inputs = [kner_side.to_tensorflow(pad_to_xla_multiple(b) if xla else b) for b in batches]
        result = measure(lambda b: step(b).numpy(), inputs, spec["min_seconds"], spec["min_steps"])
    child_result(result)


def measure_side(side: str, size: str, vocab_size: int, batches: Path) -> dict:
    spec = {
        "side": side,
        "size": size,
        "vocab_size": vocab_size,
        "batches": str(batches),
        "threads": FLAGS.threads,
        "min_seconds": FLAGS.min_seconds,
        "min_steps": FLAGS.min_steps,
    }
    return {"side": side, **run_child(__file__, spec)}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        child(json.loads(FLAGS.child))
        return
    results = {"machine": machine(), "batch_size": FLAGS.batch_size, "threads": FLAGS.threads, "rows": []}
    workloads = [("len128", size) for size in FLAGS.sizes] + [("cluener", size) for size in FLAGS.cluener_sizes]
    scratch = Path(tempfile.mkdtemp())
    from kner.data.tokenizer import read_vocab  # imports TensorFlow: not at the top, which children import

    vocab_size = len(read_vocab(BERT_VOCAB))
    for workload, size in workloads:
        if workload == "len128":
            batches = random_batches(FLAGS.batch_size, FLAGS.length, 1, vocab_size, NUM_TAGS)
        else:
            batches = cluener_batches(FLAGS.batch_size, FLAGS.cluener_batches)
        path = scratch / f"{workload}.npz"
        save_batches(batches, path)
        tokens = sum(int(b["padding_mask"].sum()) for b in batches) / sum(len(b["token_ids"]) for b in batches)
        rounds = [[measure_side(side, size, vocab_size, path) for side in FLAGS.sides] for _ in range(FLAGS.rounds)]
        for side_rounds in zip(*rounds):
            best = max(side_rounds, key=lambda r: r["examples_per_s"])
            row = {"workload": workload, "size": size, "mean_tokens": tokens, **best, "rounds": list(side_rounds)}
            print(json.dumps(row), flush=True)
            results["rows"].append(row)
    speed = {(r["workload"], r["size"], r["side"]): r["examples_per_s"] for r in results["rows"]}
    table = []
    for r in results["rows"]:
        for reference in ("torch", "torch_bf16"):
            base = speed.get((r["workload"], r["size"], reference))
            r[f"vs_{reference}"] = r["examples_per_s"] / base if base else None
        table.append(
            [
                r["size"],
                f"{r['workload']} ({r['mean_tokens']:.0f} tokens)",
                r["side"],
                r["examples_per_s"],
                r["ms_per_step"],
                r["peak_rss_mib"],
                r["vs_torch"],
                r["vs_torch_bf16"],
            ]
        )
    print(f"\nbatch {FLAGS.batch_size}, {FLAGS.threads} threads, load {results['machine']['loadavg_at_start']}")
    header = ["model", "workload", "side", "examples/s", "ms/step", "peak RSS MiB", "vs torch", "vs torch_bf16"]
    results["table"] = print_table(header, table)
    key = "_".join(size.split("/")[0] for size in dict.fromkeys([*FLAGS.sizes, *FLAGS.cluener_sizes]))
    write_json(result_file("train_speed", key) if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
