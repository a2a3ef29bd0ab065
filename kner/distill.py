"""Distils a trained tagger into a smaller one: `python -m kner.distill`.

    python -m kner.distill --flagfile=flags/distill_cluener.cfg
    python -m kner.distill --teacher_dir=runs/large --train_file=train.json \\
        --dev_file=dev.json --bert_config=small_config.json --model_dir=runs/small \\
        --unlabeled_files='corpus/*.txt'

The teacher is a finished kner `model_dir` (`kner.train`); it is loaded with
its best weights and never changes. The student is built like
`kner.train` builds a model (`--init_checkpoint`, or `--bert_config` with the
teacher's vocab unless `--vocab_file` is given), with the teacher's label
vocabulary, its tokenizer and labelled units (`settings.json`; a WordPiece
student needs the teacher's vocab) and, unless `--head` is given, the
teacher's head. It trains on
the same loop as `kner.train` (strategies, checkpoints and resume,
TensorBoard, dev evaluation, best weights by dev F1) on the loss of
`kner.training.distillation`: soft (temperature `--temperature`), hard and
hidden-state terms with `--soft_loss_weight`, `--hard_loss_weight`,
`--hidden_loss_weight`; `--soft_loss_t_squared` scales the soft term by
T**2 (Hinton's and DistilBERT's recipe; off, TextBrewer's). With
`--unlabeled_files` each step also takes `--unlabeled_batch_size` raw texts
that the teacher labels in that step.

Adversarial training (`kner.train --adversarial`) is refused here: the flag
does not exist (absl's one-line "Unknown command line flag"); the perturbed
passes would rerun the frozen teacher, and no distillation recipe we follow
(TextBrewer's) uses it. Train the teacher adversarially instead.

`--model_dir` ends up a normal kner model_dir of the student:
`kner.export` and `kner.predict` work on it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
from absl import app, flags, logging

from kner import cli
from kner.data.labels import LabelVocab
from kner.data.raw_text import expand_paths
from kner.data.tokenizer_registry import make_tokenizer, tokenizer_name
from kner.data.unlabeled import UnlabeledInputs
from kner.errors import InputError, run_cli
from kner.models import artifacts
from kner.models.heads import HEADS, head_class
from kner.models.tagger import Tagger
from kner.serving.saved_model import check_export_dir, export_model
from kner.training import distribute
from kner.training.distillation import TRANSITIONS, Distiller, parse_layer_map, teacher_token_ids
from kner.training.trainer import Trainer, steps_per_epoch

FLAGS = flags.FLAGS
flags.DEFINE_string("teacher_dir", None, "The teacher: the model_dir of a finished kner.train run.")
flags.DEFINE_string(
    "unlabeled_files", None, "Raw text for the teacher to label, one text a line: paths or globs, comma-separated."
)
flags.DEFINE_integer("unlabeled_batch_size", None, "Raw texts per step (default: --batch_size).")
flags.DEFINE_float("hard_loss_weight", 0.0, "Weight of the student head's loss on the gold labels.")
flags.DEFINE_float("hidden_loss_weight", 1.0, "Weight of the hidden-state MSE over --layer_map.")
flags.DEFINE_string(
    "layer_map", "", "STUDENT:TEACHER hidden states to match, like 0:0,1:2,2:4 (default: evenly spaced)."
)
flags.DEFINE_enum("crf_transitions", "copy", list(TRANSITIONS), "CRF student: copy the teacher's or learn them.")
cli.define_soft_loss_flags()
cli.define_training_flags()
cli.define_data_flags()
cli.define_runtime_flags()
flags.adopt_module_key_flags(cli)
flags.mark_flags_as_required(["teacher_dir", "train_file", "model_dir"])


def check_labels(labels: LabelVocab, sentences: list, path: str) -> None:
    """Every entity type of `sentences` must be one the teacher tags."""
    unknown = sorted({span.type for s in sentences for span in s.spans} - set(labels.types))
    if unknown:
        teacher_labels = Path(FLAGS.teacher_dir, artifacts.LABELS)
        message = f"entity types {unknown} are not in the teacher's labels ({teacher_labels}: {labels.types})"
        raise InputError(path, None, message + "; student and teacher share one label vocabulary")


def describe(model: Tagger) -> str:
    backbone = model.backbone
    parameters = sum(int(keras.ops.size(v)) for v in model.weights)
    head = model.head.name
    return f"{backbone.num_layers} layer(s), hidden {backbone.hidden_dim}, {head} head, {parameters:,} parameters"


def check_distillable(head: str, teacher: bool = False) -> None:
    """One line when task distillation cannot teach the student's head, or
    learn from the teacher's: pair heads have no distribution per character
    to match."""
    if head_class(head).distillable:
        return
    takes = ", ".join(name for name, cls in HEADS.items() if cls.distillable)
    if teacher:
        message = f"a {head} teacher cannot teach: task distillation takes the {takes} heads"
        raise InputError(f"--teacher_dir={FLAGS.teacher_dir}", None, message)
    raise app.UsageError(f"--head={head}: task distillation cannot teach this head; it takes {takes}")


def main(argv: list[str]) -> None:
    del argv
    if FLAGS["head"].present:
        check_distillable(FLAGS.head)
    cli.start_training_run()
    train, dev = cli.read_data(FLAGS.train_file), cli.read_data(FLAGS.dev_file)
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
    logging.info("strategy %s with %d replicas", FLAGS.strategy, strategy.num_replicas_in_sync)
    with strategy.scope():
        teacher, teacher_tokenizer, teacher_settings = artifacts.load_tagger(FLAGS.teacher_dir)
    check_distillable(teacher_settings["head"], teacher=True)
    labels = teacher.labels
    if FLAGS["tag_scheme"].present and FLAGS.tag_scheme != labels.scheme:
        message = f"the teacher tags in {labels.scheme}, not --tag_scheme={FLAGS.tag_scheme}: drop --tag_scheme"
        raise InputError(Path(FLAGS.teacher_dir, artifacts.LABELS), None, message)
    check_labels(labels, train, FLAGS.train_file)
    check_labels(labels, dev or [], FLAGS.dev_file)
    head = FLAGS.head if FLAGS["head"].present else teacher_settings["head"]
    train = cli.check_spans(train, FLAGS.train_file, head, FLAGS.lenient)
    dev = cli.check_spans(dev, FLAGS.dev_file, head, FLAGS.lenient)
    config = cli.train_config()
    per_epoch = steps_per_epoch(train, config)
    with strategy.scope():
        backbone, vocabulary, bert_config = cli.build_backbone([s.text for s in train], teacher_tokenizer.vocabulary)
        try:
            student = Tagger(backbone, labels, head=head, dropout=FLAGS.dropout, decoding=FLAGS.decode)
        except ValueError as error:
            raise InputError(f"--head={head}", None, str(error)) from None
        student(artifacts.dummy_batch())
        same_vocab = vocabulary == teacher_tokenizer.vocabulary
        tokenizer = student_tokenizer(teacher_tokenizer, vocabulary, same_vocab)
        units = artifacts.label_units(teacher_settings)
        teacher_vocab = teacher_tokenizer.vocabulary, teacher_tokenizer.unk_id
        try:
            layer_map = parse_layer_map(FLAGS.layer_map, backbone.num_layers, teacher.backbone.num_layers)
            distiller = Distiller(
                student,
                teacher,
                temperature=FLAGS.temperature,
                temperature_squared=FLAGS.soft_loss_t_squared,
                soft_weight=FLAGS.soft_loss_weight,
                hard_weight=FLAGS.hard_loss_weight,
                hidden_weight=FLAGS.hidden_loss_weight,
                layer_map=layer_map,
                transitions=FLAGS.crf_transitions,
                teacher_ids=None if same_vocab else teacher_token_ids(vocabulary, *teacher_vocab),
            )
        except ValueError as error:
            raise InputError(f"--teacher_dir={FLAGS.teacher_dir}", None, str(error)) from None
        optimizer = cli.build_optimizer(distiller, per_epoch * config.epochs)
    print(f"teacher {FLAGS.teacher_dir}: {describe(teacher)}{teacher_score(FLAGS.teacher_dir)}", flush=True)
    print(f"student {FLAGS.model_dir}: {describe(student)}", flush=True)
    scale = " x T**2" if FLAGS.soft_loss_t_squared else ""
    terms = f"soft {FLAGS.soft_loss_weight}{scale} (T={FLAGS.temperature}), hard {FLAGS.hard_loss_weight}"
    print(f"loss: {terms}, hidden {FLAGS.hidden_loss_weight} over layers {layer_map}", flush=True)
    train_inputs = None
    if FLAGS.unlabeled_files:
        batch_size = FLAGS.unlabeled_batch_size or FLAGS.batch_size
        paths = expand_paths(FLAGS.unlabeled_files)
        train_inputs = UnlabeledInputs(
            paths, tokenizer, batch_size, per_epoch, FLAGS.max_seq_length - 2, FLAGS.seed, FLAGS.lenient, units
        )
        print(
            f"unlabelled text: {len(paths)} file(s), {batch_size} texts per step labelled by the teacher "
            f"({batch_size * per_epoch:,} an epoch, pieces of at most {FLAGS.max_seq_length - 2} characters)",
            flush=True,
        )
    if FLAGS.export_dir:
        check_export_dir(FLAGS.export_dir, FLAGS.model_dir)  # before training, not after
    settings = artifacts.tagger_settings(student, FLAGS.max_seq_length, tokenizer, units)
    if distribute.is_chief(strategy):
        artifacts.save_artifacts(FLAGS.model_dir, bert_config, vocabulary, labels, settings)
        Path(FLAGS.model_dir, "flags.cfg").write_text(FLAGS.flags_into_string())
    trainer = Trainer(
        distiller, optimizer, strategy, FLAGS.model_dir, config, tagger=student, train_inputs=train_inputs, units=units
    )
    report = trainer.fit(train, dev, tokenizer)
    if report is None and distribute.is_chief(strategy):
        student.save_weights(str(Path(FLAGS.model_dir, artifacts.WEIGHTS)))
    if not distribute.is_chief(strategy):
        return
    cli.report_training_run(Path(FLAGS.model_dir).absolute(), report)
    if FLAGS.export_dir:
        cli.report("export", export_model(FLAGS.model_dir, Path(FLAGS.export_dir).absolute()), "TF Serving SavedModel")


def student_tokenizer(teacher_tokenizer, vocabulary: list[str], same_vocab: bool):
    """The student tokenizes as its teacher (`settings.json`: tokenizer,
    do_lower_case), over its own vocab: one token per character maps
    between vocabs, WordPiece sub-tokens do not."""
    kind = tokenizer_name(teacher_tokenizer)
    if kind != "char" and not same_vocab:
        message = f"the teacher's {kind} tokens differ between vocabs: the student needs the teacher's vocab"
        raise InputError("--vocab_file" if FLAGS.vocab_file else "--init_checkpoint", None, message)
    return make_tokenizer(kind, vocabulary, teacher_tokenizer.lowercase)


def teacher_score(teacher_dir: str) -> str:
    """`, dev micro F1 X` from the teacher's eval report, if it has one."""
    path = Path(teacher_dir, "eval_report.json")
    if not path.exists():
        return ""
    return f", dev micro F1 {json.loads(path.read_text())['micro']['f1']:.4f}"


if __name__ == "__main__":
    run_cli(main)
