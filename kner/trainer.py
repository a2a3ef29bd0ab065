"""The training loop: one custom loop for every `tf.distribute` strategy.

Keras 3.15 `fit()` fails under `MultiWorkerMirroredStrategy`, and a loss
returned from an overridden `compute_loss` is multiplied by the replica
count, so kner runs its own loop:

- each replica sums its loss terms and divides by the count (sentences for
  the CRF, characters for softmax) all-reduced over the *global* batch, so the
  replicas' losses add up to the global-batch mean;
- the optimizer sums gradients across replicas and then clips them
  (`kner.optimization`), so default, Mirrored, MultiWorkerMirrored and TPU
  strategies take the same step on the same global batch.

It also checkpoints every `checkpoint_every` steps and at each epoch end,
resumes from the last checkpoint (the batch plan is seeded per epoch, so
the resumed run sees the batches it would have seen), evaluates on dev after
every epoch, keeps the best weights by dev F1, and writes TensorBoard
summaries (train loss, learning rate, examples/s, dev loss, P/R/F1 overall
and per type).

Example:
>>> trainer = Trainer(model, optimizer, strategy, model_dir, config)
>>> report = trainer.fit(train_sentences, dev_sentences, tokenizer)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from kner.corpus import Sentence
from kner.distribute import is_chief, worker_id
from kner.metrics import evaluate, format_report
from kner.model import Tagger
from kner.pipeline import char_mask, make_dataset, plan_batches
from kner.tokenizer import CharTokenizer

BEST_WEIGHTS = "best.weights.h5"
EVAL_REPORT = "eval_report.json"


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 4
    max_seq_length: int = 128
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 20
    jit_compile: bool = False
    early_stopping_patience: int = 0


def steps_per_epoch(sentences: Sequence[Sentence], config: TrainConfig) -> int:
    """Batches in one training epoch (the same for every seed)."""
    lengths = [min(len(s.text), config.max_seq_length - 2) for s in sentences]
    return len(plan_batches(lengths, config.batch_size, seed=0))


class Trainer:
    """Trains a `Tagger` under a strategy; see the module docstring."""

    def __init__(
        self,
        model: Tagger,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        model_dir: str | Path,
        config: TrainConfig,
    ):
        self.model, self.optimizer, self.strategy = model, optimizer, strategy
        self.model_dir, self.config = Path(model_dir), config
        self.chief = is_chief(strategy)
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.best_f1 = tf.Variable(-1.0, dtype=tf.float32, trainable=False, name="best_f1")
            self.stale_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="stale_epochs")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=self.step, best_f1=self.best_f1, stale_epochs=self.stale_epochs
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir(), max_to_keep=config.keep_checkpoints
        )
        self._compute_gradients = tf.function(self._gradients, jit_compile=config.jit_compile)
        self._train_step = tf.function(self._distributed_step)
        self._forward = tf.function(self._loss_and_tags, jit_compile=config.jit_compile)
        self._summaries = {}

    def _checkpoint_dir(self) -> str:
        if self.chief:
            return str(self.model_dir / "checkpoints")
        task_type, task_id = worker_id(self.strategy)
        return str(self.model_dir / f"checkpoints_tmp_{task_type}_{task_id}")

    def _writer(self, name: str) -> tf.summary.SummaryWriter:
        if name not in self._summaries:
            writer = tf.summary.create_file_writer(str(self.model_dir / name)) if self.chief else None
            self._summaries[name] = writer or tf.summary.create_noop_writer()
        return self._summaries[name]

    # ---- one step ---------------------------------------------------------

    def _gradients(self, batch: dict[str, tf.Tensor], global_count: tf.Tensor):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            scores = self.model(batch, training=True)
            loss = self.model.loss_sum(batch, scores) / global_count
            scaled = self.optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, variables)

    def _replica_step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, self.model.loss_count(batch))
        loss, gradients = self._compute_gradients(batch, tf.maximum(global_count, 1.0))
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return loss

    def _distributed_step(self, batch) -> tf.Tensor:
        losses = self.strategy.run(self._replica_step, args=(batch,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def _loss_and_tags(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        scores = self.model(batch, training=False)
        loss_sum = self.model.loss_sum(batch, scores)
        return loss_sum, self.model.loss_count(batch), self.model.decode(batch, scores)

    # ---- loops ------------------------------------------------------------

    def fit(self, train: Sequence[Sentence], dev: Sequence[Sentence] | None, tokenizer: CharTokenizer) -> dict | None:
        """Trains (resuming from the last checkpoint if any) and returns the
        best dev report, also written to `model_dir/eval_report.json`."""
        config = self.config
        per_epoch = steps_per_epoch(train, config)
        total = per_epoch * config.epochs
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint)
            logging.info("resumed from %s at step %d", self.manager.latest_checkpoint, int(self.step.numpy()))
        report = self._read_report()
        while int(self.step.numpy()) < total:
            step = int(self.step.numpy())
            epoch, done = divmod(step, per_epoch)
            if config.early_stopping_patience and int(self.stale_epochs.numpy()) >= config.early_stopping_patience:
                logging.info("early stopping: no dev F1 gain in %d epochs", config.early_stopping_patience)
                break
            self._train_epoch(train, tokenizer, epoch, done, per_epoch)
            self._save_checkpoint()
            if dev:
                report = self._end_of_epoch_eval(dev, tokenizer, epoch) or report
        self._cleanup()
        return report

    def _train_epoch(self, train, tokenizer, epoch: int, done: int, per_epoch: int) -> None:
        config = self.config
        dataset, report = make_dataset(
            train,
            tokenizer,
            self.model.labels,
            batch_size=config.batch_size,
            max_seq_length=config.max_seq_length,
            training=True,
            seed=config.seed + epoch,
        )
        if epoch == 0 and done == 0 and report.truncated:
            logging.warning("training data: %s", report)
        dataset = self.strategy.experimental_distribute_dataset(dataset.skip(done))
        progress = keras.utils.Progbar(per_epoch, verbose=1 if self.chief else 0, stateful_metrics=["lr"])
        progress.update(done)
        if self.chief:
            print(f"epoch {epoch + 1}/{config.epochs}", flush=True)
        examples, started = 0, time.perf_counter()
        for batch in dataset:
            loss = float(self._train_step(batch))
            step = int(self.step.assign_add(1).numpy())
            examples += config.batch_size
            learning_rate = float(self.optimizer.learning_rate)
            progress.add(1, [("loss", loss), ("lr", learning_rate)])
            if step % config.log_every == 0:
                with self._writer("train").as_default(step=step):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("examples_per_second", examples / (time.perf_counter() - started))
                examples, started = 0, time.perf_counter()
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        self.manager.save(checkpoint_number=self.step)

    def evaluate(self, sentences: Sequence[Sentence], tokenizer: CharTokenizer) -> dict:
        """Dev loss plus the span, per-type, CLUENER and seqeval scores."""
        dataset, _ = make_dataset(sentences, tokenizer, self.model.labels, batch_size=self.config.eval_batch_size)
        predicted, loss_sum, count = [], 0.0, 0.0
        for batch in dataset:
            batch_loss, batch_count, tags = self._forward(batch)
            loss_sum, count = loss_sum + float(batch_loss), count + float(batch_count)
            for row, mask in zip(tags.numpy(), char_mask(batch["padding_mask"]).numpy()):
                predicted.append(self.model.labels.decode(row[mask])[0])
        report = evaluate([s.text for s in sentences], [s.spans for s in sentences], predicted)
        report["loss"] = loss_sum / max(count, 1.0)
        return report

    def _end_of_epoch_eval(self, dev, tokenizer, epoch: int) -> dict | None:
        report = self.evaluate(dev, tokenizer)
        report["epoch"] = epoch + 1
        step = int(self.step.numpy())
        with self._writer("dev").as_default(step=step):
            tf.summary.scalar("loss", report["loss"])
            for name, value in report["micro"].items():
                if name != "support":
                    tf.summary.scalar(f"overall/{name}", value)
            tf.summary.scalar("overall/cluener_macro_f1", report["cluener_macro_f1"])
            for entity_type, scores in report["per_type"].items():
                for name in ("precision", "recall", "f1"):
                    tf.summary.scalar(f"{entity_type}/{name}", scores[name])
        f1 = report["micro"]["f1"]
        if self.chief:
            print(f"dev after epoch {epoch + 1}: loss {report['loss']:.4f}\n{format_report(report)}", flush=True)
        if f1 <= float(self.best_f1.numpy()):
            self.stale_epochs.assign_add(1)
            return None
        self.best_f1.assign(f1)
        self.stale_epochs.assign(0)
        if self.chief:
            self.model.save_weights(str(self.model_dir / BEST_WEIGHTS))
            (self.model_dir / EVAL_REPORT).write_text(json.dumps(report, indent=1, ensure_ascii=False))
        self._save_checkpoint()
        return report

    def _read_report(self) -> dict | None:
        path = self.model_dir / EVAL_REPORT
        return json.loads(path.read_text()) if path.exists() else None

    def _cleanup(self) -> None:
        for writer in self._summaries.values():
            writer.flush()
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)
