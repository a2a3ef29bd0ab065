"""Fine-tunes (or trains from scratch) a BERT tagger: `python -m kner.train`.

    python -m kner.train --flagfile=flags/roberta.cfg
    python -m kner.train --train_file=train.json --dev_file=dev.json \\
        --init_checkpoint=chinese_L-12_H-768_A-12 --model_dir=runs/bert

With `--init_checkpoint` the backbone and vocab come from a Google-format (or
Hugging Face safetensors) checkpoint; without it, from `--bert_config` with a
vocab built from the training text (or `--vocab_file`). Everything export and
prediction need lands in `--model_dir` (see `kner.models.artifacts`). Rerunning the
same command resumes from the last checkpoint; on a finished run it changes
nothing (it only exports, if `--export_dir` has no export of it yet).
Ctrl-C (SIGINT) or SIGTERM stops after the current step with a checkpoint
saved, exit status 130 or 143.
"""

from __future__ import annotations

from pathlib import Path

import keras
from absl import flags, logging

from kner import cli
from kner.backbones.config_file import read_json
from kner.backbones.loader import backbone_config, backbone_from_config, describe, load_backbone, locate_checkpoint
from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab
from kner.data.tags import SCHEMES
from kner.data.tokenizer import CharTokenizer, build_vocab, read_vocab
from kner.errors import InputError, run_cli
from kner.models import artifacts
from kner.models.tagger import HEADS, Tagger
from kner.serving.saved_model import export_model, versions
from kner.training import distribute
from kner.training.optimization import CrossReplicaLossScaleOptimizer, FineTuningAdamW, WarmupLinearDecay
from kner.training.trainer import EVAL_REPORT, TrainConfig, Trainer, TrainingStopped, steps_per_epoch

FLAGS = flags.FLAGS
flags.DEFINE_string("train_file", None, "Training data: CLUENER JSON lines or a char-per-line column file.")
flags.DEFINE_string("dev_file", None, "Dev data, evaluated after every epoch (optional).")
flags.DEFINE_enum("tag_scheme", "bios", list(SCHEMES), "Tags the model predicts.")
flags.DEFINE_string(
    "init_checkpoint",
    None,
    "Pretrained encoder: a Google TF1 BERT/ALBERT/ELECTRA checkpoint dir or prefix, an HF dir or a keras-hub preset.",
)
flags.DEFINE_string(
    "bert_config",
    None,
    "bert_config.json (or an ALBERT/ELECTRA config) for a from-scratch model (no --init_checkpoint).",
)
flags.DEFINE_string("vocab_file", None, "vocab.txt for a from-scratch model; default: built from the train text.")
flags.DEFINE_enum("head", "crf", list(HEADS), "Output layer.")
flags.DEFINE_float("dropout", 0.1, "Dropout before the tag projection.")
flags.DEFINE_integer("max_seq_length", 128, "Training sentences are truncated to this many tokens (logged).")
flags.DEFINE_integer("batch_size", 32, "Global training batch, split across replicas.")
flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch.")
flags.DEFINE_integer("epochs", 4, "Training epochs.")
flags.DEFINE_float("learning_rate", 3e-5, "Peak learning rate of the backbone.")
flags.DEFINE_float("head_learning_rate", 1e-3, "Peak learning rate of the classifier and CRF.")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps with linear warmup.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on LayerNorm and biases).")
flags.DEFINE_float("clip_norm", 1.0, "Global-norm gradient clipping (0: off).")
flags.DEFINE_integer("early_stopping_patience", 0, "Stop after this many epochs without dev F1 gain (0: never).")
flags.DEFINE_string("export_dir", None, "Also export a TF Serving SavedModel here at the end.")
cli.define_data_flags()
cli.define_runtime_flags()
flags.adopt_module_key_flags(cli)
flags.mark_flags_as_required(["train_file", "model_dir"])

DOWNLOADS = (
    "expected a directory with bert_config.json, bert_model.ckpt.index/.data-* and vocab.txt "
    "(Google: chinese_L-12_H-768_A-12 from github.com/google-research/bert; HFL: chinese-roberta-wwm-ext or "
    "chinese-bert-wwm-ext from github.com/ymcui/Chinese-BERT-wwm), the same with albert_config.json (ALBERT: "
    "github.com/google-research/albert, github.com/brightmart/albert_zh) or discriminator.json (ELECTRA: "
    "github.com/ymcui/Chinese-ELECTRA), a Hugging Face dir with model.safetensors or a keras-hub preset"
)


def build_backbone(train_texts: list[str]):
    """The backbone, its vocab and the config that rebuilds it
    (`kner.backbones.loader.backbone_config`), from the flags."""
    if FLAGS.init_checkpoint:
        path = Path(FLAGS.init_checkpoint)
        if not path.exists() and not Path(f"{path}.index").exists():
            raise InputError(path, None, f"checkpoint not found: {DOWNLOADS}")
        files = locate_checkpoint(path)
        if files.vocab is None:
            raise InputError(path, None, "no vocab.txt (or vocab_chinese.txt) beside the checkpoint")
        backbone = load_backbone(path, FLAGS.max_seq_length)
        return backbone, read_vocab(files.vocab), backbone_config(backbone)
    if not FLAGS.bert_config:
        raise InputError("--bert_config", None, "give --init_checkpoint or --bert_config")
    vocabulary = read_vocab(FLAGS.vocab_file) if FLAGS.vocab_file else build_vocab(train_texts)
    config = {**read_json(FLAGS.bert_config), "vocab_size": len(vocabulary)}
    positions = config.get("max_position_embeddings", FLAGS.max_seq_length)
    if FLAGS.max_seq_length > positions:
        message = f"max_seq_length {FLAGS.max_seq_length} exceeds max_position_embeddings {positions}"
        raise InputError(FLAGS.bert_config, None, message)
    backbone = backbone_from_config(config, where=FLAGS.bert_config)
    source = f"vocab {FLAGS.vocab_file}" if FLAGS.vocab_file else "vocab built from the training text"
    print(
        f"new model from {FLAGS.bert_config}: {describe(backbone)}, randomly initialised; "
        f"{source} ({len(vocabulary)} entries)",
        flush=True,
    )
    return backbone, vocabulary, backbone_config(backbone)


def build_optimizer(model: Tagger, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = WarmupLinearDecay(FLAGS.learning_rate, int(total_steps * FLAGS.warmup_proportion), total_steps)
    factor = FLAGS.head_learning_rate / FLAGS.learning_rate
    head_variables = [v for layer in model.head_layers() for v in layer.trainable_variables]
    optimizer = FineTuningAdamW(
        schedule,
        weight_decay=FLAGS.weight_decay,
        clip_norm=FLAGS.clip_norm,
        lr_multipliers={id(v): factor for v in head_variables},
    )
    if FLAGS.mixed_precision == "mixed_float16":
        optimizer = CrossReplicaLossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def read_data(path: str | None):
    if not path:
        return None
    sentences = read_corpus(path, FLAGS.input_format, FLAGS.input_tag_scheme, strict=not FLAGS.lenient)
    unlabelled = next((s for s in sentences if s.spans is None), None)
    if unlabelled is not None:
        raise InputError(path, unlabelled.line, "no label: training and dev data must be labelled")
    return sentences


def warn_ignored_flags() -> None:
    from_checkpoint = "the backbone's shape and vocab come from --init_checkpoint"
    ignored = {"bert_config": from_checkpoint, "vocab_file": from_checkpoint} if FLAGS.init_checkpoint else {}
    if not FLAGS.dev_file:
        ignored |= {name: "there is no --dev_file" for name in ("eval_batch_size", "early_stopping_patience")}
    if FLAGS.strategy != "tpu":
        ignored["tpu"] = "--strategy is not tpu"
    cli.warn_ignored_flags(ignored)


def export_unless_done(model_dir: Path, export_dir: Path, trained: bool) -> None:
    """Exports, unless nothing was trained now and `export_dir`'s latest
    version is newer than the weights (an earlier run exported them)."""
    existing = versions(export_dir)
    weights = model_dir / artifacts.WEIGHTS
    if existing and not trained:
        latest = export_dir / str(existing[-1])
        if latest.stat().st_mtime >= weights.stat().st_mtime:
            cli.report("export", latest, "exported earlier from these weights; nothing written")
            return
    cli.report("export", export_model(model_dir, export_dir), "TF Serving SavedModel")


def main(argv: list[str]) -> None:
    del argv
    stop = cli.StopRequest.install()
    cli.quiet_tensorflow()
    warn_ignored_flags()
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.mixed_precision:
        keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    if FLAGS.jit_compile and FLAGS.mixed_precision and FLAGS.strategy != "tpu":
        logging.warning(
            "--jit_compile with --mixed_precision: XLA's CPU backend computes bfloat16 and float16 matmuls in "
            "float32, so on a CPU this is slower than either flag alone (BUILD.md, 'Speed on CPU')"
        )
    train, dev = read_data(FLAGS.train_file), read_data(FLAGS.dev_file)
    labels = LabelVocab.from_sentences([*train, *(dev or [])], FLAGS.tag_scheme)
    config = TrainConfig(
        batch_size=FLAGS.batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        epochs=FLAGS.epochs,
        max_seq_length=FLAGS.max_seq_length,
        seed=FLAGS.seed,
        checkpoint_every=FLAGS.checkpoint_every,
        log_every=FLAGS.log_every,
        jit_compile=FLAGS.jit_compile,
        early_stopping_patience=FLAGS.early_stopping_patience,
    )
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
    logging.info("strategy %s with %d replicas", FLAGS.strategy, strategy.num_replicas_in_sync)
    with strategy.scope():
        backbone, vocabulary, bert_config = build_backbone([s.text for s in train])
        model = Tagger(backbone, labels, head=FLAGS.head, dropout=FLAGS.dropout)
        model(artifacts.dummy_batch())
        optimizer = build_optimizer(model, steps_per_epoch(train, config) * config.epochs)
    settings = {"head": FLAGS.head, "dropout": FLAGS.dropout, "max_seq_length": FLAGS.max_seq_length}
    model_dir, chief = Path(FLAGS.model_dir).absolute(), distribute.is_chief(strategy)
    trainer = Trainer(model, optimizer, strategy, model_dir, config)
    trainer.restore()
    trained = not trainer.is_finished(train, bool(dev))
    if not trained:
        print(f"training in {model_dir} is finished (step {int(trainer.step.numpy())}); nothing to train")
        report = trainer.fit(train, dev, CharTokenizer(vocabulary))  # reads the saved report
    else:
        if chief:
            artifacts.save_artifacts(model_dir, bert_config, vocabulary, labels, settings)
            cli.save_flagfile(model_dir / "flags.cfg")
        try:
            report = trainer.fit(train, dev, CharTokenizer(vocabulary), stop=stop)
        except TrainingStopped as stopped:
            print(f"stopped by {stop.name} at step {stopped.step}; checkpoint {stopped.checkpoint}")
            print("run the same command to resume")
            raise SystemExit(stop.exit_code) from None
        if report is None and chief:
            model.save_weights(str(model_dir / artifacts.WEIGHTS))
    if not chief:
        return
    if report is not None:
        print(f"best dev micro F1 {report['micro']['f1']:.4f} (epoch {report['epoch']})")
        cli.report("best weights", model_dir / artifacts.WEIGHTS, f"epoch {report['epoch']}")
        cli.report("dev report", model_dir / EVAL_REPORT)
    else:
        cli.report("weights", model_dir / artifacts.WEIGHTS, "after the last step: no --dev_file to pick the best")
    cli.report("model_dir", model_dir, "config, vocab, labels, settings, flags.cfg; checkpoints/ to resume")
    cli.report("TensorBoard", f"tensorboard --logdir {model_dir}")
    if FLAGS.export_dir:
        export_unless_done(model_dir, Path(FLAGS.export_dir).absolute(), trained)


if __name__ == "__main__":
    run_cli(main)
