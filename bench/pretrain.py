"""Pretraining evidence: speed against Hugging Face + PyTorch, float32 and
bfloat16, for BERT (`BertForMaskedLM`), ALBERT (`AlbertForPreTraining`) and
ELECTRA (`ElectraForMaskedLM` + `ElectraForPreTraining`), and the held-out
metrics of `kner.pretrain` runs (side by side: float32 against
`--mixed_precision=mixed_bfloat16` at the same seed, ALBERT or ELECTRA
against BERT) with the fine-tuned F1 from them, by seed.

`--part=speed`: examples/s of one full pretraining step (forward, backward,
clipping, optimizer), batch 32, length 128, on examples prepared from the
shared corpora (`--examples`, a TFRecord that `kner.pretrain` wrote to
`MODEL_DIR/pretraining_data`; for ALBERT one with SOP pairs). `--model_type`:

- `bert`: 2L/128 (`--size`) with the 21,128 vocab, masked LM only, AdamW;
- `albert`: `--albert_config` (default `flags/tiny_albert_config.json`)
  with masked LM over n-grams of up to 3 whole words + SOP, LAMB;
- `electra`: the discriminator of `--electra_config` (default
  `flags/tiny_electra_config.json`, BERT's 2L/128 shape) with a generator
  of 0.25 its width sharing its embeddings, ELECTRA's 85% `[MASK]` / 15%
  kept masking, sampled replacements, loss = masked LM + 50 x replaced-token
  detection, AdamW.

Sides:

- kner: its own input pipeline (dynamic whole word masking in `tf.data`)
  feeding `Pretrainer.train_step`: `kner` (float32), `kner_xla`
  (`--jit_compile`), `kner_bf16` (`--mixed_precision=mixed_bfloat16`: the
  encoder in bfloat16, the heads, the losses and the optimizer in float32);
- the peer: Hugging Face `BertForMaskedLM` or `AlbertForPreTraining` (with
  the examples' sentence-order labels), or for ELECTRA `torch_electra`'s
  pair (`ElectraForMaskedLM` generator and `ElectraForPreTraining`
  discriminator, as kner's: one embeddings module, the generator's output
  layer tied to its word embeddings, Gumbel-max sampling under `no_grad`,
  loss = generator loss + 50 x discriminator loss), with
  `DataCollatorForLanguageModeling` (character masking, 15%, 80/10/10;
  ELECTRA: 85/0/15) on the same examples' token ids,
  clipping 1.0, and `torch.optim.AdamW` (BERT, ELECTRA) or `TorchLamb` (ALBERT: a
  PyTorch transcription of google-research/albert `lamb_optimizer.py`, as
  kner's `Lamb`; PyTorch has none): `torch` (float32), `torch_bf16` (the
  forward pass under `torch.autocast("cpu", torch.bfloat16)`);
- `kner_pipeline`: the kner input pipeline alone (no model), to show it does
  not starve the model.

Each side runs in a child process of its own (`bench/common.py`), with the
same thread counts; the sides run one after another, `--rounds` times
interleaved, and each side's best round counts (the machine is shared). The
peer predicts every masked token (about 19 per example), kner at most
`max_predictions_per_seq` 20, as Google's recipe does; the Hugging Face
heads compute vocab logits at all 128 positions, kner only at the masked
ones (Google's `gather_indexes`).

`--part=report`: the held-out metrics by step (the `eval_report.json`
history: `masked_lm_accuracy`, `masked_lm_loss` and, when the run had them,
`sop_accuracy`/`nsp_accuracy` and ELECTRA's `disc_accuracy`,
`disc_precision`, `disc_recall`, `sampled_replacement_rate`; an ELECTRA
run's masked-LM metrics are its generator's) of each of `--pretrain_dir` (a list: runs
side by side, labelled by their `--model_type`, `--mixed_precision` and
`--seed` from their `flags.cfg`, with the wall-clock minutes of their
training from the TensorBoard events), optionally plotted (`--plot`); and
the dev F1 of `kner.train` runs: `--finetuned`/`--scratch` pairs, or
`--f1_groups` (`LABEL=DIR,DIR,...;LABEL=...`, e.g. the seeds of one
initialisation): mean, min and max per group, and for each pair of groups
whether their means differ by more than the larger seed spread ("within
seed spread" otherwise).

    # speed: in the bench venv (requirements-bench.txt)
    PYTHONPATH=. python bench/pretrain.py --part=speed \\
        --examples=runs/pretrain_tiny/pretraining_data/train-*.tfrecord --json=bench/results/pretrain_speed.json
    PYTHONPATH=. python bench/pretrain.py --part=speed --model_type=albert \\
        --examples='runs/pretrain_albert_tiny/pretraining_data/train-*.tfrecord' \\
        --json=bench/results/pretrain_albert_speed.json
    PYTHONPATH=. python bench/pretrain.py --part=speed --model_type=electra \\
        --examples='runs/pretrain_tiny/pretraining_data/train-*.tfrecord' \\
        --json=bench/results/pretrain_electra_speed.json
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
import types
from pathlib import Path

from absl import app, flags
from common import (
    BERT_VOCAB,
    JSON_HELP,
    ROOT,
    bert_config,
    child_result,
    machine,
    print_table,
    result_file,
    run_child,
    set_threads,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_enum("part", "speed", ["speed", "report"], "What to run.")
flags.DEFINE_enum(
    "model_type",
    "bert",
    ["bert", "albert", "electra"],
    "speed: BERT (masked LM, AdamW), ALBERT (+ SOP, LAMB) or ELECTRA (generator + replaced-token detection, AdamW).",
)
flags.DEFINE_string(
    "albert_config", str(ROOT / "flags" / "tiny_albert_config.json"), "speed: the ALBERT's albert_config.json."
)
flags.DEFINE_string(
    "electra_config",
    str(ROOT / "flags" / "tiny_electra_config.json"),
    "speed: the ELECTRA discriminator's discriminator.json (the generator: 0.25 of its width).",
)
flags.DEFINE_string("examples", None, "speed: a prepared TFRecord (glob) of kner.pretrain examples.")
SIDES = ("kner", "kner_xla", "kner_bf16", "torch", "torch_bf16", "kner_pipeline")
flags.DEFINE_list("sides", ["kner", "kner_bf16", "kner_xla", "torch", "kner_pipeline"], f"speed: of {SIDES}.")
flags.register_validator("sides", lambda sides: set(sides) <= set(SIDES), f"--sides: each one of {SIDES}")
flags.DEFINE_string("size", "2L/128", "speed: BERT model size (bench/common.py SIZES).")
flags.DEFINE_integer("batch_size", 32, "speed: examples per step.")
flags.DEFINE_integer("steps", 30, "speed: timed steps per pass (after a warm-up pass).")
flags.DEFINE_integer("passes", 3, "speed: timed passes; the best counts (the machine is shared).")
flags.DEFINE_integer("rounds", 1, "speed: rounds of all sides, interleaved; each side's best round counts.")
flags.DEFINE_integer("threads", 2, "speed: intra-op threads of both frameworks.")
flags.DEFINE_list("pretrain_dir", [], "report: kner.pretrain model_dirs, shown side by side.")
flags.DEFINE_list("finetuned", [], "report: kner.train model_dirs fine-tuned from the pretrained checkpoint.")
flags.DEFINE_list("scratch", [], "report: kner.train model_dirs trained from scratch, in the same order.")
flags.DEFINE_string(
    "f1_groups",
    None,
    "report: kner.train model_dirs by group, 'LABEL=DIR,DIR;LABEL=DIR,...' (the seeds of one initialisation): "
    "dev F1 mean, min and max per group, and whether two groups differ by more than their seed spread.",
)
flags.DEFINE_string("plot", None, "report: also plot the held-out curves of --pretrain_dir into this PNG.")
flags.DEFINE_string(
    "json",
    None,
    JSON_HELP + "bench/results/pretrain_speed.json (ALBERT, ELECTRA: pretrain_albert_speed.json, "
    "pretrain_electra_speed.json; --part=report: pretrain_tiny.json).",
)
flags.DEFINE_string("child", None, "Internal: run one measurement (JSON spec).")

MAX_SEQ_LENGTH, MAX_PREDICTIONS = 128, 20
ELECTRA_METRICS = ("disc_accuracy", "disc_precision", "disc_recall", "sampled_replacement_rate")


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

    from kner.backbones.loader import backbone_from_config
    from kner.data.masking import Masker
    from kner.data.tokenizer import MASK, read_vocab
    from kner.models.pretraining import MODEL_TYPES, PretrainOptions, dummy_features
    from kner.training.optimization import FineTuningAdamW, Lamb, WarmupLinearDecay
    from kner.training.pretrainer import PretrainConfig, Pretrainer

    set_threads(spec["threads"])
    if spec["side"] == "kner_bf16":  # as `python -m kner.pretrain --mixed_precision=mixed_bfloat16` does
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    vocabulary = read_vocab(BERT_VOCAB)
    keras.utils.set_random_seed(42)
    model_type = MODEL_TYPES[spec["model_type"]]  # its recipe as `kner.pretrain` runs it by default
    recipe = model_type.defaults
    options = PretrainOptions(sentence_task="sop" if recipe["sop"] else None)
    model = model_type.create(backbone_from_config(model_config(spec, len(vocabulary))), options)
    model(dummy_features())
    optimizer = {"adamw": FineTuningAdamW, "lamb": Lamb}[recipe["optimizer"]](WarmupLinearDecay(1e-4, 100, 10_000))
    optimizer.build(model.trainable_variables)
    masker = Masker(
        len(vocabulary),
        vocabulary.index(MASK),
        MAX_SEQ_LENGTH,
        0.15,
        MAX_PREDICTIONS,
        ngram=recipe["ngram_mask"],
        **model_type.masking,
    )
    config = PretrainConfig(batch_size=spec["batch_size"], jit_compile=spec["side"] == "kner_xla", shuffle_buffer=1000)
    trainer = Pretrainer(model, optimizer, tf.distribute.get_strategy(), tempfile.mkdtemp(), config, masker, BERT_VOCAB)
    batches = iter(trainer.train_dataset(spec["examples"]))
    if spec["side"] == "kner_pipeline":
        return timed(lambda: next(batches), spec["steps"], spec["passes"], spec["batch_size"])
    step = tf.function(trainer.train_step)
    return timed(lambda: step(next(batches))[0].numpy(), spec["steps"], spec["passes"], spec["batch_size"])


def model_config(spec: dict, vocab_size: int) -> dict:
    """The BERT of `--size`, the ALBERT of `--albert_config` or the ELECTRA
    discriminator of `--electra_config`, with the vocab's size."""
    if spec["model_type"] == "bert":
        return bert_config(spec["size"], vocab_size)
    return {**json.loads(Path(spec[f"{spec['model_type']}_config"]).read_text()), "vocab_size": vocab_size}


def torch_lamb():
    """google-research/albert `lamb_optimizer.py` in PyTorch (no bias
    correction, weight decay inside the update, trust ratio |w| / |update|,
    neither for LayerNorm and biases), as kner's `Lamb`."""
    import torch

    class TorchLamb(torch.optim.Optimizer):
        def __init__(self, named_parameters, lr, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6):
            named = list(named_parameters)
            groups = [
                {"params": [p for n, p in named if ("LayerNorm" in n or "bias" in n) == excluded], "excluded": excluded}
                for excluded in (False, True)
            ]
            super().__init__(groups, {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps})

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                beta_1, beta_2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    m, v = state["m"], state["v"]
                    m.mul_(beta_1).add_(p.grad, alpha=1 - beta_1)
                    v.mul_(beta_2).addcmul_(p.grad, p.grad, value=1 - beta_2)
                    update = m / (v.sqrt() + group["eps"])
                    ratio = 1.0
                    if not group["excluded"]:
                        update.add_(p, alpha=group["weight_decay"])
                        w_norm, u_norm = p.norm(), update.norm()
                        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                    p.sub_(ratio * group["lr"] * update)

    return TorchLamb


def torch_electra(config: dict, generator_hidden_size: float = 0.25, disc_weight: float = 50.0):
    """ELECTRA's pretraining in PyTorch from Hugging Face's parts, shaped as
    kner's: an `ElectraForMaskedLM` generator (`get_generator_config`: width
    x `generator_hidden_size`, heads max(1, width / 64), FFN 4 x width)
    using the `ElectraForPreTraining` discriminator's embeddings module
    (word, position, token type, LayerNorm) and, as its output layer, the
    word embeddings; replacements sampled by Gumbel-max under `no_grad`;
    loss = generator masked LM + `disc_weight` x the discriminator's loss
    over non-padding tokens (its own)."""
    import torch
    from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    from kner.backbones.electra_heads import generator_shape

    shared = {
        key: config[key]
        for key in (
            "vocab_size",
            "embedding_size",
            "num_hidden_layers",
            "max_position_embeddings",
            "type_vocab_size",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "hidden_act",  # "gelu": the erf form in both libraries
        )
    }
    generator = generator_shape(config["hidden_size"], generator_hidden_size)
    discriminator_config = ElectraConfig(
        **shared,
        hidden_size=config["hidden_size"],
        num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        layer_norm_eps=1e-12,
    )
    generator_config = ElectraConfig(**shared, **generator, layer_norm_eps=1e-12)

    class TorchElectra(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.discriminator = ElectraForPreTraining(discriminator_config)
            self.generator = ElectraForMaskedLM(generator_config)
            self.generator.electra.embeddings = self.discriminator.electra.embeddings
            self.generator.generator_lm_head.weight = self.discriminator.electra.embeddings.word_embeddings.weight

        def forward(self, input_ids, token_type_ids, attention_mask, labels):
            generated = self.generator(
                input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask, labels=labels
            )
            chosen = labels != -100
            with torch.no_grad():
                logits = generated.logits[chosen]
                uniform = torch.rand_like(logits)
                sampled = torch.argmax(logits - torch.log(-torch.log(uniform + 1e-9) + 1e-9), dim=-1)
            original = torch.where(chosen, labels, input_ids)
            corrupted = input_ids.clone()
            corrupted[chosen] = sampled
            detected = self.discriminator(
                input_ids=corrupted,
                token_type_ids=token_type_ids,
                attention_mask=attention_mask,
                labels=(corrupted != original).long(),
            )
            return types.SimpleNamespace(loss=generated.loss + disc_weight * detected.loss)

    return TorchElectra()


def torch_model(spec: dict):
    """`BertForMaskedLM`, `AlbertForPreTraining` or `torch_electra`, shaped as kner's side."""
    from transformers import AlbertConfig, AlbertForPreTraining, BertConfig, BertForMaskedLM

    config = model_config(spec, 21128)
    if spec["model_type"] == "electra":
        return torch_electra(config)
    shared = {
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "num_hidden_layers": config["num_hidden_layers"],
        "num_attention_heads": config["num_attention_heads"],
        "intermediate_size": config["intermediate_size"],
        "max_position_embeddings": config["max_position_embeddings"],
        "hidden_dropout_prob": config["hidden_dropout_prob"],
        "attention_probs_dropout_prob": config["attention_probs_dropout_prob"],
        "layer_norm_eps": 1e-12,
    }
    if spec["model_type"] == "albert":
        return AlbertForPreTraining(
            AlbertConfig(
                **shared,
                embedding_size=config["embedding_size"],
                num_hidden_groups=config.get("num_hidden_groups", 1),
                inner_group_num=config.get("inner_group_num", 1),
                hidden_act={"gelu": "gelu_new"}.get(config["hidden_act"], config["hidden_act"]),  # tanh GELU
            )
        )
    return BertForMaskedLM(BertConfig(**shared, hidden_act="gelu_new"))  # Google's tanh GELU, as kner


def torch_child(spec: dict) -> dict:
    import tensorflow as tf  # only to read the same examples
    import torch
    from transformers import BertTokenizerFast, DataCollatorForLanguageModeling

    from kner.data.pretraining_data import parse_example

    set_threads(spec["threads"])
    torch.manual_seed(42)
    model = torch_model(spec)
    model.train()
    albert = spec["model_type"] == "albert"
    if albert:
        optimizer = torch_lamb()(model.named_parameters(), lr=1e-4, weight_decay=0.01)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 100))
    # transformers 5.x: BertTokenizerFast(vocab_file=...) ignores the file (a 5-token vocab); vocab= reads it.
    tokenizer = BertTokenizerFast(vocab=str(BERT_VOCAB))
    split = {"mask_replace_prob": 0.85, "random_replace_prob": 0.0} if spec["model_type"] == "electra" else {}
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, **split)
    dataset = tf.data.TFRecordDataset(glob.glob(spec["examples"])[0]).map(parse_example).repeat()
    rows = iter(dataset.as_numpy_iterator())

    bfloat16 = spec["side"] == "torch_bf16"

    def step():
        examples = [next(rows) for _ in range(spec["batch_size"])]
        batch = collator(
            [
                {"input_ids": row["token_ids"].tolist(), "token_type_ids": row["segment_ids"].tolist()}
                for row in examples
            ]
        )
        if albert:
            batch["sentence_order_label"] = torch.tensor([int(row["next_sentence_label"]) for row in examples])
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
        "model_type": FLAGS.model_type,
        "albert_config": FLAGS.albert_config,
        "electra_config": FLAGS.electra_config,
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
    model = {
        "bert": f"BERT {FLAGS.size}",
        "albert": f"ALBERT {Path(FLAGS.albert_config).name}",
        "electra": f"ELECTRA {Path(FLAGS.electra_config).name} (generator 0.25)",
    }[FLAGS.model_type]
    shape = f"batch {FLAGS.batch_size} x {MAX_SEQ_LENGTH}, {FLAGS.threads} threads"
    print(f"\n{model}, {shape}, best of {FLAGS.rounds} rounds")
    return {
        "model_type": FLAGS.model_type,
        "model": model,
        **({"size": FLAGS.size} if FLAGS.model_type == "bert" else {}),  # ALBERT's and ELECTRA's: their config
        "batch_size": FLAGS.batch_size,
        "rows": rows,
        "table": print_table(header, table),
    }


def best_f1(model_dir: str) -> dict:
    report = json.loads(Path(model_dir, "eval_report.json").read_text())
    return {"model_dir": model_dir, "f1": report["micro"]["f1"], "epoch": report["epoch"]}


def run_flags(model_dir: str) -> dict[str, str]:
    """`--flag=value` pairs of a kner run's saved `flags.cfg`."""
    lines = Path(model_dir, "flags.cfg").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def run_label(model_dir: str) -> str:
    """The model type, precision policy and seed of a kner.pretrain run, from its flags.cfg."""
    values = run_flags(model_dir)
    return (
        f"{values.get('--model_type', 'bert')}, {values.get('--mixed_precision') or 'float32'}, "
        f"seed {values.get('--seed')}"
    )


def training_minutes(model_dir: str) -> float | None:
    """Wall-clock minutes from the first to the last training summary (all
    sessions of a resumed run added up: a gap of more than 10 minutes
    between summaries counts as a restart and is left out)."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    times = sorted(
        event_pb2.Event.FromString(record.numpy()).wall_time
        for path in Path(model_dir, "train").glob("events.out.tfevents.*")
        for record in tf.data.TFRecordDataset(str(path))
    )
    if len(times) < 2:
        return None
    gaps = [b - a for a, b in zip(times, times[1:])]
    return sum(gap for gap in gaps if gap < 600) / 60


def f1_groups(spec: str) -> dict:
    """Per group of `LABEL=DIR,DIR;...`: each run's best dev F1, their mean,
    min and max; and each pair of groups' difference of means, "within seed
    spread" when it is no larger than the larger of their max - min."""
    groups = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        label, dirs = part.split("=", 1)
        runs = [best_f1(d) for d in dirs.split(",") if d]
        scores = [r["f1"] for r in runs]
        groups[label] = {
            "runs": runs,
            "mean": statistics.mean(scores),
            "min": min(scores),
            "max": max(scores),
            "spread": max(scores) - min(scores),
        }
    labels = list(groups)
    comparisons = []
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            difference = groups[a]["mean"] - groups[b]["mean"]
            spread = max(groups[a]["spread"], groups[b]["spread"])
            verdict = "within seed spread" if abs(difference) <= spread else "beyond seed spread"
            comparisons.append({"a": a, "b": b, "difference": difference, "seed_spread": spread, "verdict": verdict})
    return {"groups": groups, "comparisons": comparisons}


def plot_curves(histories: dict, labels: dict, metrics: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for index, (run, history) in enumerate(histories.items()):
            points = [(r["step"], r[metric]) for r in history if metric in r]
            if points:  # one colour per run in every panel
                axis.plot(*zip(*points), marker="o", color=f"C{index}", label=labels[run])
        axis.set_xlabel("step")
        axis.set_title(f"held-out {metric}")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


def report() -> dict:
    if not FLAGS.pretrain_dir:
        raise app.UsageError("--part=report needs --pretrain_dir")
    histories = {d: json.loads(Path(d, "eval_report.json").read_text())["history"] for d in FLAGS.pretrain_dir}
    labels = {d: f"{run_label(d)} ({d})" for d in histories}
    minutes = {d: training_minutes(d) for d in histories}
    by_step = {d: {r["step"]: r for r in history} for d, history in histories.items()}
    metrics = ["masked_lm_accuracy", "masked_lm_loss"]
    optional = ("sop_accuracy", "nsp_accuracy", *ELECTRA_METRICS)
    metrics += [m for m in optional if any(m in r for h in histories.values() for r in h)]
    print("held-out metrics: " + "; ".join(f"{labels[d]}, {minutes[d] or 0:.1f} min of training" for d in histories))
    mlm_table = print_table(
        ["step", *(f"{run_label(d)} {m}" for d in histories for m in metrics)],
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
    grouped = f1_groups(FLAGS.f1_groups) if FLAGS.f1_groups else None
    if grouped:
        print("\ndev micro F1 by group (best epoch of each run)")
        group_rows = [[label, len(g["runs"]), g["mean"], g["min"], g["max"]] for label, g in grouped["groups"].items()]
        tables.append(print_table(["group", "runs", "mean F1", "min", "max"], group_rows))
        comparison_rows = [
            [f"{c['a']} - {c['b']}", c["difference"], c["seed_spread"], c["verdict"]] for c in grouped["comparisons"]
        ]
        tables.append(print_table(["difference of means", "F1", "seed spread", "verdict"], comparison_rows))
    if FLAGS.plot:
        plot_curves(histories, labels, [m for m in metrics if m != "masked_lm_loss"], FLAGS.plot)
    pretraining = {
        d: {"run": run_label(d), "training_minutes": minutes[d], "history": history} for d, history in histories.items()
    }
    return {"masked_lm": pretraining, "fine_tuning": rows, "f1_groups": grouped, "tables": tables}


def main(argv) -> None:
    del argv
    if FLAGS.child:
        spec = json.loads(FLAGS.child)
        child_result(torch_child(spec) if spec["side"].startswith("torch") else kner_child(spec))
        return
    results = {"machine": machine(), **(speed() if FLAGS.part == "speed" else report())}
    speed_file = "pretrain_speed" if FLAGS.model_type == "bert" else f"pretrain_{FLAGS.model_type}_speed"
    default = result_file(speed_file if FLAGS.part == "speed" else "pretrain_tiny")
    write_json(default if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
