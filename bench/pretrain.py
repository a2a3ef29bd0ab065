"""Pretraining evidence: speed against Hugging Face + PyTorch, float32 and
bfloat16, and the held-out masked-LM accuracy of `kner.pretrain` runs (side
by side, e.g. float32 against `--mixed_precision=mixed_bfloat16` at the same
seed) and the fine-tuned F1 of a `flags/pretrain_tiny.cfg` run.

`--part=speed`: examples/s of one full pretraining step (forward, backward,
clipping, AdamW), batch 32, length 128, 2L/128 with the 21,128 vocab, on
examples prepared from the shared corpora (`--examples`, a TFRecord that
`kner.pretrain` wrote to `MODEL_DIR/pretraining_data`):

- kner: its own input pipeline (dynamic whole word masking in `tf.data`)
  feeding `Pretrainer.train_step`: `kner` (float32), `kner_xla`
  (`--jit_compile`), `kner_bf16` (`--mixed_precision=mixed_bfloat16`: the
  encoder in bfloat16, both heads, the losses and AdamW in float32);
- the peer: Hugging Face `BertForMaskedLM` with
  `DataCollatorForLanguageModeling` (character masking, 15%, 80/10/10) on
  the same examples' token ids, `torch.optim.AdamW`, clipping 1.0: `torch`
  (float32), `torch_bf16` (the forward pass under
  `torch.autocast("cpu", torch.bfloat16)`);
- `kner_pipeline`: the kner input pipeline alone (no model), to show it does
  not starve the model.

Each side runs in a child process of its own (`bench/common.py`), with the
same thread counts; the sides run one after another, `--rounds` times
interleaved, and each side's best round counts (the machine is shared). The
peer predicts every masked token (about 19 per example), kner at most
`max_predictions_per_seq` 20, as Google's recipe does; BertForMaskedLM
computes vocab logits at all 128 positions, kner only at the masked ones
(Google's `gather_indexes`).

`--part=report`: the held-out `masked_lm_accuracy` and `masked_lm_loss` by
step (the `eval_report.json` history) of each of `--pretrain_dir` (a list:
runs side by side, labelled by their `--mixed_precision` and `--seed` from
their `flags.cfg`), and the dev F1 of fine-tuning from a pretrained
checkpoint against from scratch (the `eval_report.json` of each
`kner.train` run).

    PYTHONPATH=. /work/venvs/bench/bin/python bench/pretrain.py --part=speed \\
        --examples=runs/pretrain_tiny/pretraining_data/train-*.tfrecord --json=bench/results/pretrain_speed.json
    PYTHONPATH=. python bench/pretrain.py --part=report --pretrain_dir=runs/pretrain_tiny \\
        --finetuned=runs/tiny_pretrained --scratch=runs/tiny_scratch --json=bench/results/pretrain_tiny.json
    PYTHONPATH=. python bench/pretrain.py --part=report --pretrain_dir=runs/pre_f32,runs/pre_bf16 \\
        --json=bench/results/pretrain_bf16.json
"""

from __future__ import annotations

import glob
import json
import statistics
import tempfile
import time
from pathlib import Path

from absl import app, flags
from common import BERT_VOCAB, bert_config, child_result, machine, print_table, run_child, set_threads, write_json

FLAGS = flags.FLAGS
flags.DEFINE_enum("part", "speed", ["speed", "report"], "What to run.")
flags.DEFINE_string("examples", None, "speed: a prepared TFRecord (glob) of kner.pretrain examples.")
SIDES = ("kner", "kner_xla", "kner_bf16", "torch", "torch_bf16", "kner_pipeline")
flags.DEFINE_list("sides", ["kner", "kner_bf16", "kner_xla", "torch", "kner_pipeline"], f"speed: of {SIDES}.")
flags.register_validator("sides", lambda sides: set(sides) <= set(SIDES), f"--sides: each one of {SIDES}")
flags.DEFINE_string("size", "2L/128", "speed: model size (bench/common.py SIZES).")
flags.DEFINE_integer("batch_size", 32, "speed: examples per step.")
flags.DEFINE_integer("steps", 30, "speed: timed steps per pass (after a warm-up pass).")
flags.DEFINE_integer("passes", 3, "speed: timed passes; the best counts (the machine is shared).")
flags.DEFINE_integer("rounds", 1, "speed: rounds of all sides, interleaved; each side's best round counts.")
flags.DEFINE_integer("threads", 2, "speed: intra-op threads of both frameworks.")
flags.DEFINE_list("pretrain_dir", [], "report: kner.pretrain model_dirs, shown side by side.")
flags.DEFINE_list("finetuned", [], "report: kner.train model_dirs fine-tuned from the pretrained checkpoint.")
flags.DEFINE_list("scratch", [], "report: kner.train model_dirs trained from scratch, in the same order.")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_string("child", None, "Internal: run one measurement (JSON spec).")

MAX_SEQ_LENGTH, MAX_PREDICTIONS = 128, 20


def timed(step, steps: int, passes: int, batch_size: int) -> dict:
    for _ in range(steps):  # warm-up: tracing, compilation, pipeline fill
        step()
    times = []
    for _ in range(passes):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - started)
    return {
        "examples_per_s": steps * batch_size / min(times),
        "examples_per_s_median": steps * batch_size / statistics.median(times),
        "ms_per_step": 1e3 * min(times) / steps,
    }


def kner_child(spec: dict) -> dict:
    import keras
    import tensorflow as tf

    from kner.backbones.bert import backbone_from_config
    from kner.data.masking import Masker
    from kner.data.tokenizer import MASK, read_vocab
    from kner.models.masked_lm import MaskedLMModel, dummy_features
    from kner.training.optimization import FineTuningAdamW, WarmupLinearDecay
    from kner.training.pretrainer import PretrainConfig, Pretrainer

    set_threads(spec["threads"])
    if spec["side"] == "kner_bf16":  # as `python -m kner.pretrain --mixed_precision=mixed_bfloat16` does
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    vocabulary = read_vocab(BERT_VOCAB)
    keras.utils.set_random_seed(42)
    model = MaskedLMModel(backbone_from_config(bert_config(spec["size"], len(vocabulary))))
    model.backbone.pooled_dense.trainable = False
    model(dummy_features())
    optimizer = FineTuningAdamW(WarmupLinearDecay(1e-4, 100, 10_000))
    optimizer.build(model.trainable_variables)
    masker = Masker(len(vocabulary), vocabulary.index(MASK), MAX_SEQ_LENGTH, 0.15, MAX_PREDICTIONS)
    config = PretrainConfig(batch_size=spec["batch_size"], jit_compile=spec["side"] == "kner_xla", shuffle_buffer=1000)
    trainer = Pretrainer(model, optimizer, tf.distribute.get_strategy(), tempfile.mkdtemp(), config, masker, BERT_VOCAB)
    batches = iter(trainer.train_dataset(spec["examples"]))
    if spec["side"] == "kner_pipeline":
        return timed(lambda: next(batches), spec["steps"], spec["passes"], spec["batch_size"])
    step = tf.function(trainer.train_step)
    return timed(lambda: step(next(batches)).numpy(), spec["steps"], spec["passes"], spec["batch_size"])


def torch_child(spec: dict) -> dict:
    import tensorflow as tf  # only to read the same examples
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast, DataCollatorForLanguageModeling

    from kner.data.pretraining_data import parse_example

    set_threads(spec["threads"])
    torch.manual_seed(42)
    config = bert_config(spec["size"], 21128)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            num_hidden_layers=config["num_hidden_layers"],
            num_attention_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            hidden_act="gelu_new",  # Google's tanh GELU, as kner
            max_position_embeddings=config["max_position_embeddings"],
            layer_norm_eps=1e-12,
        )
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100))
    collator = DataCollatorForLanguageModeling(BertTokenizerFast(vocab_file=str(BERT_VOCAB)), mlm_probability=0.15)
    dataset = tf.data.TFRecordDataset(glob.glob(spec["examples"])[0]).map(parse_example).repeat()
    rows = iter(dataset.as_numpy_iterator())

    bfloat16 = spec["side"] == "torch_bf16"

    def step():
        batch = collator(
            [
                {"input_ids": row["token_ids"].tolist(), "token_type_ids": row["segment_ids"].tolist()}
                for row in (next(rows) for _ in range(spec["batch_size"]))
            ]
        )
        with torch.autocast("cpu", torch.bfloat16, enabled=bfloat16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    return timed(step, spec["steps"], spec["passes"], spec["batch_size"])


def speed() -> dict:
    examples = sorted(glob.glob(FLAGS.examples))
    if not examples:
        raise app.UsageError(f"--examples={FLAGS.examples} matches no file")
    spec = {
        "size": FLAGS.size,
        "examples": examples[0],
        "batch_size": FLAGS.batch_size,
        "steps": FLAGS.steps,
        "passes": FLAGS.passes,
        "threads": FLAGS.threads,
    }
    rounds = []
    for _ in range(FLAGS.rounds):
        for side in FLAGS.sides:
            row = {"side": side, **run_child(__file__, {**spec, "side": side})}
            print(json.dumps(row), flush=True)
            rounds.append(row)
    rows = [
        {**max(runs, key=lambda r: r["examples_per_s"]), "rounds": runs}
        for runs in ([r for r in rounds if r["side"] == side] for side in FLAGS.sides)
    ]
    speeds = {r["side"]: r["examples_per_s"] for r in rows}
    table = [
        [
            r["side"],
            r["examples_per_s"],
            r["ms_per_step"],
            r["peak_rss_mib"],
            *(r["examples_per_s"] / speeds[base] if base in speeds else None for base in ("kner", "torch")),
        ]
        for r in rows
    ]
    header = ["side", "examples/s", "ms/step", "peak RSS MiB", "vs kner", "vs torch"]
    shape = f"{FLAGS.size}, batch {FLAGS.batch_size} x {MAX_SEQ_LENGTH}"
    print(f"\n{shape}, {FLAGS.threads} threads, best of {FLAGS.rounds} rounds")
    return {"size": FLAGS.size, "batch_size": FLAGS.batch_size, "rows": rows, "table": print_table(header, table)}


def best_f1(model_dir: str) -> dict:
    report = json.loads(Path(model_dir, "eval_report.json").read_text())
    return {"model_dir": model_dir, "f1": report["micro"]["f1"], "epoch": report["epoch"]}


def run_label(model_dir: str) -> str:
    """The precision policy and seed of a kner.pretrain run, from its flags.cfg."""
    lines = Path(model_dir, "flags.cfg").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return f"{values.get('--mixed_precision') or 'float32'}, seed {values.get('--seed')}"


def report() -> dict:
    if not FLAGS.pretrain_dir:
        raise app.UsageError("--part=report needs --pretrain_dir")
    histories = {d: json.loads(Path(d, "eval_report.json").read_text())["history"] for d in FLAGS.pretrain_dir}
    labels = {d: run_label(d) for d in histories}
    by_step = {d: {r["step"]: r for r in history} for d, history in histories.items()}
    metrics = ("masked_lm_accuracy", "masked_lm_loss")
    print("held-out masked LM: " + "; ".join(f"{labels[d]}: {d}" for d in histories))
    mlm_table = print_table(
        ["step", *(f"{labels[d]} {m}" for d in histories for m in metrics)],
        [
            [step, *(by_step[d].get(step, {}).get(m) for d in histories for m in metrics)]
            for step in sorted({step for steps in by_step.values() for step in steps})
        ],
    )
    tables = [mlm_table]
    rows = []
    for finetuned, scratch in zip(FLAGS.finetuned, FLAGS.scratch):
        a, b = best_f1(finetuned), best_f1(scratch)
        rows.append({"pretrained": a, "scratch": b})
    if rows:
        print("\ndev micro F1")
        f1_rows = [[r["pretrained"]["model_dir"], r["pretrained"]["f1"], r["scratch"]["f1"]] for r in rows]
        f1_rows = [[*row, row[1] - row[2]] for row in f1_rows]
        tables.append(print_table(["fine-tuned from", "pretrained F1", "scratch F1", "difference"], f1_rows))
    masked_lm = {d: {"run": labels[d], "history": history} for d, history in histories.items()}
    return {"masked_lm": masked_lm, "fine_tuning": rows, "tables": tables}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        spec = json.loads(FLAGS.child)
        child_result(torch_child(spec) if spec["side"] == "torch" else kner_child(spec))
        return
    results = {"machine": machine(), **(speed() if FLAGS.part == "speed" else report())}
    write_json(FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
