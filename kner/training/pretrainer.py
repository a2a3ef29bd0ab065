"""The pretraining loop, on the `Trainer`'s machinery, for every recipe
behind `kner.models.pretraining.PretrainingModel` (BERT's and ALBERT's
masked LM with NSP or SOP, ...).

`Pretrainer` is a `Trainer` (the same checkpointing, resume, chief-only
writing, summaries and per-replica loss scaling under every
`tf.distribute` strategy) that counts steps instead of epochs:

- each replica divides each of the model's loss terms (`loss_terms`: the
  masked-LM loss sum by the `masked_lm_weights`, the sentence loss by the
  examples, ...) by its count all-reduced over the global batch, so the
  replicas' losses add up to the global-batch loss of the original recipe;
- the data are the prepared examples (`kner.data.pretraining_data`) with
  masks drawn in the input pipeline (`kner.data.masking`) from `(seed,
  example index)`; a resumed run skips the examples already seen and draws
  the masks the interrupted one would have;
- every `eval_every` steps and at the end it scores the held-out examples,
  masked once with a fixed seed (the model's `report`: `masked_lm_accuracy`,
  `masked_lm_loss`, `sop_accuracy`, ...), into TensorBoard
  (`model_dir/dev`) and `model_dir/eval_report.json`; at the best
  `best_metric` so far it writes the model's checkpoint
  (`save_checkpoint`: Google's layout of its family) to `model_dir/best`,
  and at the end to `model_dir` itself. The training summaries hold the loss
  and each of its terms (`loss_terms/masked_lm_loss`, ...), and the model's
  `report` of the training batches since the last log line (under the
  held-out metrics' names, `masked_lm_accuracy`, `disc_recall`, ..., so
  TensorBoard draws the two in one chart); the log line shows them too.

Example:
>>> trainer = Pretrainer(model, optimizer, strategy, "runs/pre", PretrainConfig(train_steps=1000), masker, "vocab.txt")
>>> report = trainer.pretrain(train_path, dev_path)
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kner.data.masking import Masker, masked_dataset
from kner.data.pretraining_data import parse_example
from kner.models.pretraining import PretrainingModel
from kner.training.trainer import EVAL_REPORT, StopCheck, Trainer

BEST_DIR = "best"
EVAL_SEED = 20191029  # the held-out masks: fixed, whatever --seed is


@dataclasses.dataclass
class PretrainConfig:
    batch_size: int = 32
    eval_batch_size: int = 64
    train_steps: int = 10000
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 20
    eval_every: int = 1000
    shuffle_buffer: int = 10000
    jit_compile: bool = False


def records(path: str | Path) -> tf.data.Dataset:
    """The parsed examples of a prepared TFRecord file, streamed."""
    return tf.data.TFRecordDataset(str(path)).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE)


class Pretrainer(Trainer):
    """Pretrains a `PretrainingModel`; see the module docstring."""

    def __init__(
        self,
        model: PretrainingModel,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        model_dir: str | Path,
        config: PretrainConfig,
        masker: Masker,
        vocab_file: str | Path,
    ):
        super().__init__(model, optimizer, strategy, model_dir, config)
        self.masker, self.vocab_file = masker, Path(vocab_file)
        self.best_score = self.best_f1  # checkpointed: the best dev `model.best_metric`
        self._eval_step = None

    # ---- one step ---------------------------------------------------------

    def _gradients(self, batch: dict[str, tf.Tensor], global_counts: tf.Tensor):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            sums = self.model.loss_sums(batch, self.model(batch, training=True))
            terms = tf.stack([t.weight * sums[t.sum] / global_counts[i] for i, t in enumerate(self.model.loss_terms)])
            scaled = self.optimizer.scale_loss(tf.reduce_sum(terms))
        return terms, sums, tape.gradient(scaled, variables)

    def _replica_step(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        context = tf.distribute.get_replica_context()
        examples = tf.cast(tf.shape(batch["token_ids"])[0], tf.float32)
        counts = self.model.loss_counts(batch)
        counts = tf.stack([counts[term.count] for term in self.model.loss_terms])
        global_counts = tf.maximum(context.all_reduce(tf.distribute.ReduceOp.SUM, counts), 1.0)
        terms, sums, gradients = self._compute_gradients(batch, global_counts)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return tf.concat([tf.stack([tf.reduce_sum(terms), examples]), terms], axis=0), sums

    def train_step(self, batch) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """As `Trainer.train_step` ([loss, examples, then each loss term]),
        and the model's `loss_sums` over the global batch.

        >>> (loss, examples, *terms), sums = tf.function(trainer.train_step)(batch)
        """
        return super().train_step(batch)

    def _loss_term_weights(self) -> list[tuple[str, float]]:
        return [(term.sum, term.weight) for term in self.model.loss_terms]

    # ---- loops ------------------------------------------------------------

    def train_dataset(self, path: str | Path, skip_steps: int = 0) -> tf.data.Dataset:
        """Global batches of dynamically masked training examples, forever,
        from step `skip_steps` on."""
        config = self.config
        return masked_dataset(
            records(path),
            self.masker,
            config.batch_size,
            config.seed,
            shuffle_buffer=config.shuffle_buffer,
            skip=skip_steps * config.batch_size,
        )

    def pretrain(
        self, train_path: str | Path, dev_path: str | Path | None, stop: StopCheck | None = None
    ) -> dict | None:
        """Trains to `train_steps` (resuming from the last checkpoint if any)
        and returns the last evaluation report. When `stop.requested` turns
        true (`kner.cli.StopRequest`), the current step ends, a checkpoint is
        saved and `TrainingStopped` is raised, as in `Trainer.fit`."""
        config = self.config
        self.restore()
        self._stop = stop
        report = self._read_report()
        step = int(self.step.numpy())
        if step < config.train_steps:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = self.train_dataset(train_path, step).with_options(options)
            dataset = self.strategy.experimental_distribute_dataset(dataset)
            if self._traced_step is None:
                self._traced_step = tf.function(
                    self.train_step, input_signature=[dataset.element_spec], autograph=False
                )
            report = self._train_loop(iter(dataset), dev_path) or report
        if dev_path is not None and (report is None or report["step"] != int(self.step.numpy())):
            report = self._evaluate_and_keep(dev_path)
        if self.chief:
            prefix, contents = self.model.save_checkpoint(self.model_dir, self.vocab_file)
            print(f"wrote the Google-format checkpoint {prefix} ({contents})", flush=True)
        for writer in self._summaries.values():
            writer.flush()
        return report

    def _train_loop(self, batches, dev_path) -> dict | None:
        config = self.config
        # A progress bar on a terminal; in a log file, a line every log_every steps.
        bar = self.chief and sys.stdout.isatty()
        progress = keras.utils.Progbar(config.train_steps, verbose=int(bar), stateful_metrics=["loss", "lr"])
        step = int(self.step.numpy())
        progress.update(step)
        report, losses, totals, examples, started = None, [], {}, 0.0, time.perf_counter()
        while step < config.train_steps:
            learning_rate = float(self.optimizer.learning_rate)
            row, sums = self._traced_step(next(batches))
            loss, count, *terms = row.numpy().tolist()
            step = int(self.step.assign_add(1).numpy())
            losses.append([loss, *terms])
            for name, value in sums.items():
                totals[name] = totals.get(name, 0.0) + float(value)
            examples += count
            progress.update(step, [("loss", loss), ("lr", learning_rate)])
            if step % config.log_every == 0:
                speed = examples / (time.perf_counter() - started)
                means = np.mean(losses, axis=0)
                metrics = {k: v for k, v in self.model.report(totals).items() if isinstance(v, float)}
                with self._writer("train").as_default(step=step):
                    self._log_losses(means)
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("examples_per_second", speed)
                    for name, value in metrics.items():
                        tf.summary.scalar(name, value)
                if self.chief and not bar:
                    print(
                        f"step {step}/{config.train_steps}: loss {means[0]:.4f}, "
                        f"lr {learning_rate:.3g}, {speed:.1f} examples/s; "
                        + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
                        flush=True,
                    )
                losses, totals, examples, started = [], {}, 0.0, time.perf_counter()
            if (
                dev_path is not None
                and config.eval_every
                and step % config.eval_every == 0
                and step < config.train_steps
            ):
                report = self._evaluate_and_keep(dev_path)
            if config.checkpoint_every and step % config.checkpoint_every == 0 or step == config.train_steps:
                self._save_checkpoint()
            self._check_stop()
        return report

    def evaluate_held_out(self, path: str | Path) -> dict:
        """The model's `report` (`masked_lm_accuracy`, `masked_lm_loss`, ...)
        over the examples at `path`, masked with `EVAL_SEED`."""
        dataset = masked_dataset(records(path), self.masker, self.config.eval_batch_size, EVAL_SEED, repeat=False)
        if self._eval_step is None:
            step = lambda batch: self.model.loss_sums(batch, self.model(batch, training=False))  # noqa: E731
            self._eval_step = tf.function(
                step, jit_compile=self.config.jit_compile, input_signature=[dataset.element_spec], autograph=False
            )
        totals: dict[str, float] = {}
        for batch in dataset:
            for name, value in self._eval_step(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        return self.model.report(totals)

    def _evaluate_and_keep(self, dev_path) -> dict:
        step = int(self.step.numpy())
        report = {"step": step, **self.evaluate_held_out(dev_path)}
        with self._writer("dev").as_default(step=step):
            for name, value in report.items():
                if name not in ("step", "examples", "masked_lm_predictions"):
                    tf.summary.scalar(name, value)
        score = report[self.model.best_metric]
        improved = score > float(self.best_score.numpy())
        if improved:
            self.best_score.assign(score)
        if self.chief:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float))
            print(f"\ndev at step {step}: {scores}", flush=True)
            previous = self._read_report() or {}
            history = [r for r in previous.get("history", []) if r["step"] < step] + [dict(report)]
            report["best_step"] = step if improved else previous.get("best_step")
            report["history"] = history
            (self.model_dir / EVAL_REPORT).write_text(json.dumps(report, indent=1) + "\n")
            if improved:
                self.model.save_checkpoint(self.model_dir / BEST_DIR, self.vocab_file)
        logging.debug("eval at step %d: %s", step, report)  # the line above says it; -v 1 shows the record
        return report
