"""Fine-tunes (or trains from scratch) a BERT tagger: `python -m kner.train`.

    python -m kner.train --flagfile=flags/roberta.cfg
    python -m kner.train --train_file=train.json --dev_file=dev.json \\
        --init_checkpoint=chinese_L-12_H-768_A-12 --model_dir=runs/bert

With `--init_checkpoint` the backbone and vocab come from a Google-format (or
Hugging Face safetensors) checkpoint; without it, from `--bert_config` with a
vocab built from the training text (or `--vocab_file`). The text flags
(`--tokenizer`, `--do_lower_case`, `--label_subtokens`; docs/english.md)
default from the vocab and the checkpoint and are saved with the model. Everything export and
prediction need lands in `--model_dir` (see `kner.models.artifacts`). Rerunning the
same command resumes from the last checkpoint; on a finished run it changes
nothing (it only exports, if `--export_dir`'s latest version is not of these
weights; an `--export_dir` holding another model_dir's export is an error).
`--adversarial=fgm` (or `pgd`) trains adversarially on the word embeddings
(`kner.training.adversarial`). Ctrl-C (SIGINT) or SIGTERM stops after the
current step with a checkpoint saved, exit status 130 or 143.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags, logging

from kner import cli
from kner.data.labels import LabelVocab
from kner.errors import run_cli
from kner.models import artifacts
from kner.models.tagger import Tagger
from kner.serving.saved_model import check_export_dir, export_model, exported_from, versions
from kner.training import distribute
from kner.training.trainer import Trainer, TrainingStopped, steps_per_epoch

FLAGS = flags.FLAGS
cli.define_training_flags()
cli.define_text_flags()
cli.define_data_flags()
cli.define_runtime_flags()
cli.define_adversarial_flags()
flags.adopt_module_key_flags(cli)
flags.mark_flags_as_required(["train_file", "model_dir"])


def warn_ignored_flags() -> None:
    from_checkpoint = "the backbone's shape and vocab come from --init_checkpoint"
    ignored = {"bert_config": from_checkpoint, "vocab_file": from_checkpoint} if FLAGS.init_checkpoint else {}
    if not FLAGS.dev_file:
        ignored |= {name: "there is no --dev_file" for name in ("eval_batch_size", "early_stopping_patience")}
    if FLAGS.strategy != "tpu":
        ignored["tpu"] = "--strategy is not tpu"
    ignored |= cli.head_flags_ignored(FLAGS.head)
    if FLAGS.adversarial != "pgd":
        pgd = f"--adversarial is {FLAGS.adversarial}, not pgd"
        ignored |= {"adversarial_steps": pgd, "adversarial_alpha": pgd}
    if FLAGS.adversarial == "none":
        ignored["adversarial_epsilon"] = "--adversarial is none"
    cli.warn_ignored_flags(ignored)


def export_unless_done(model_dir: Path, export_dir: Path) -> None:
    """Exports, unless `export_dir`'s latest version holds this model_dir's
    current weights (`exported_from`: an earlier run exported them). An
    export folder whose latest version came from another model_dir is an
    InputError (`export_model`)."""
    existing = versions(export_dir)
    if existing and exported_from(export_dir / str(existing[-1]), model_dir):
        latest = export_dir / str(existing[-1])
        cli.report("export", latest, "exported earlier from these weights; nothing written")
        return
    cli.report("export", export_model(model_dir, export_dir), "TF Serving SavedModel")


def main(argv: list[str]) -> None:
    del argv
    stop = cli.StopRequest.install()
    cli.start_training_run()
    warn_ignored_flags()
    train, dev = cli.read_data(FLAGS.train_file), cli.read_data(FLAGS.dev_file)
    train = cli.check_spans(train, FLAGS.train_file, FLAGS.head, FLAGS.lenient)
    dev = cli.check_spans(dev, FLAGS.dev_file, FLAGS.head, FLAGS.lenient)
    labels = LabelVocab.from_sentences([*train, *(dev or [])], FLAGS.tag_scheme)
    config = cli.train_config()
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
    logging.info("strategy %s with %d replicas", FLAGS.strategy, strategy.num_replicas_in_sync)
    with strategy.scope():
        head = cli.build_head_from_flags(labels)
        backbone, vocabulary, bert_config = cli.build_backbone([s.text for s in train])
        model = Tagger(backbone, labels, head=head, dropout=FLAGS.dropout)
        model(artifacts.dummy_batch())
        optimizer = cli.build_optimizer(model, steps_per_epoch(train, config) * config.epochs)
    tokenizer, units = cli.build_text(vocabulary, train, FLAGS.init_checkpoint)
    settings = artifacts.tagger_settings(model, FLAGS.max_seq_length, tokenizer, units)
    model_dir, chief = Path(FLAGS.model_dir).absolute(), distribute.is_chief(strategy)
    if FLAGS.export_dir:
        check_export_dir(FLAGS.export_dir, model_dir)  # before training, not after
    trainer = Trainer(model, optimizer, strategy, model_dir, config, adversary=cli.build_adversary(model), units=units)
    trainer.restore()
    trained = not trainer.is_finished(train, bool(dev))
    if not trained:
        print(f"training in {model_dir} is finished (step {int(trainer.step.numpy())}); nothing to train")
        report = trainer.fit(train, dev, tokenizer)  # reads the saved report
    else:
        if chief:
            artifacts.save_artifacts(model_dir, bert_config, vocabulary, labels, settings)
            cli.save_flagfile(model_dir / "flags.cfg")
        try:
            report = trainer.fit(train, dev, tokenizer, stop=stop)
        except TrainingStopped as stopped:
            print(f"stopped by {stop.name} at step {stopped.step}; checkpoint {stopped.checkpoint}")
            print("run the same command to resume")
            raise SystemExit(stop.exit_code) from None
        if report is None and chief:
            model.save_weights(str(model_dir / artifacts.WEIGHTS))
    if not chief:
        return
    cli.report_training_run(model_dir, report)
    if FLAGS.export_dir:
        export_unless_done(model_dir, Path(FLAGS.export_dir).absolute())


if __name__ == "__main__":
    run_cli(main)
