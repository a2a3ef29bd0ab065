"""The masked-LM pretraining loop, on the `Trainer`'s machinery.

`Pretrainer` is a `Trainer` (the same checkpointing, resume, chief-only
writing, summaries and per-replica loss scaling under every
`tf.distribute` strategy) that counts steps instead of epochs:

- each replica divides its masked-LM loss sum by the `masked_lm_weights`
  all-reduced over the global batch, and its next-sentence loss sum by the
  global batch size, so the replicas' losses add up to Google's global-batch
  loss (`kner.models.masked_lm`);
- the data are the prepared examples (`kner.data.pretraining_data`) with
  masks drawn in the input pipeline (`kner.data.masking`) from `(seed,
  example index)`; a resumed run skips the examples already seen and draws
  the masks the interrupted one would have;
- every `eval_every` steps and at the end it scores the held-out examples,
  masked once with a fixed seed (`masked_lm_accuracy`, `masked_lm_loss`,
  `nsp_accuracy`, `nsp_loss`), into TensorBoard (`model_dir/dev`) and
  `model_dir/eval_report.json`; at the best `masked_lm_accuracy` so far it
  writes a Google-format checkpoint to `model_dir/best`, and at the end to
  `model_dir` itself.

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

from kner.backbones.bert_heads import save_pretraining_checkpoint
from kner.data.masking import Masker, masked_dataset
from kner.data.pretraining_data import parse_example
from kner.models.masked_lm import MaskedLMModel, masked_lm_sums
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
    """Pretrains a `MaskedLMModel`; see the module docstring."""

    def __init__(
        self,
        model: MaskedLMModel,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        model_dir: str | Path,
        config: PretrainConfig,
        masker: Masker,
        vocab_file: str | Path,
    ):
        super().__init__(model, optimizer, strategy, model_dir, config)
        self.masker, self.vocab_file = masker, Path(vocab_file)
        self.best_accuracy = self.best_f1  # checkpointed: the best dev masked_lm_accuracy
        self._eval_step = None

    # ---- one step ---------------------------------------------------------

    def _gradients(self, batch: dict[str, tf.Tensor], global_counts: tf.Tensor):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            sums = masked_lm_sums(batch, self.model(batch, training=True))
            loss = sums["masked_lm_loss"] / global_counts[0]
            if "next_sentence_loss" in sums:
                loss += sums["next_sentence_loss"] / global_counts[1]
            scaled = self.optimizer.scale_loss(loss)
        return loss, tape.gradient(scaled, variables)

    def _replica_step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        examples = tf.cast(tf.shape(batch["token_ids"])[0], tf.float32)
        counts = tf.stack([tf.reduce_sum(batch["masked_lm_weights"]), examples])
        global_counts = tf.maximum(context.all_reduce(tf.distribute.ReduceOp.SUM, counts), 1.0)
        loss, gradients = self._compute_gradients(batch, global_counts)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return tf.stack([loss, examples])

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
                self._traced_step = tf.function(self.train_step, input_signature=[dataset.element_spec])
            report = self._train_loop(iter(dataset), dev_path) or report
        if dev_path is not None and (report is None or report["step"] != int(self.step.numpy())):
            report = self._evaluate_and_keep(dev_path)
        if self.chief:
            prefix = save_pretraining_checkpoint(
                self.model.backbone, self.model.head_weights(), self.model_dir, self.vocab_file
            )
            print(f"wrote the Google-format checkpoint {prefix} (bert/* and {self._head_names()})", flush=True)
        for writer in self._summaries.values():
            writer.flush()
        return report

    def _head_names(self) -> str:
        return " and ".join(
            w.name.rsplit("/", 1)[0] for w in self.model.head_weights() if w.name.endswith("output_bias")
        )

    def _train_loop(self, batches, dev_path) -> dict | None:
        config = self.config
        # A progress bar on a terminal; in a log file, a line every log_every steps.
        bar = self.chief and sys.stdout.isatty()
        progress = keras.utils.Progbar(config.train_steps, verbose=int(bar), stateful_metrics=["loss", "lr"])
        step = int(self.step.numpy())
        progress.update(step)
        report, losses, examples, started = None, [], 0.0, time.perf_counter()
        while step < config.train_steps:
            learning_rate = float(self.optimizer.learning_rate)
            loss, count = self._traced_step(next(batches)).numpy().tolist()
            step = int(self.step.assign_add(1).numpy())
            losses.append(loss)
            examples += count
            progress.update(step, [("loss", loss), ("lr", learning_rate)])
            if step % config.log_every == 0:
                speed = examples / (time.perf_counter() - started)
                with self._writer("train").as_default(step=step):
                    tf.summary.scalar("loss", np.mean(losses))
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("examples_per_second", speed)
                if self.chief and not bar:
                    print(
                        f"step {step}/{config.train_steps}: loss {np.mean(losses):.4f}, "
                        f"lr {learning_rate:.3g}, {speed:.1f} examples/s",
                        flush=True,
                    )
                losses, examples, started = [], 0.0, time.perf_counter()
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

    def evaluate_masked_lm(self, path: str | Path) -> dict:
        """`masked_lm_accuracy`, `masked_lm_loss` (and `nsp_accuracy`,
        `nsp_loss`) over the examples at `path`, masked with `EVAL_SEED`."""
        dataset = masked_dataset(records(path), self.masker, self.config.eval_batch_size, EVAL_SEED, repeat=False)
        if self._eval_step is None:
            step = lambda batch: masked_lm_sums(batch, self.model(batch, training=False))  # noqa: E731
            self._eval_step = tf.function(
                step, jit_compile=self.config.jit_compile, input_signature=[dataset.element_spec]
            )
        totals: dict[str, float] = {}
        for batch in dataset:
            for name, value in self._eval_step(batch).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        count, examples = max(totals.get("masked_lm_count", 0.0), 1.0), max(totals.get("examples", 0.0), 1.0)
        report = {
            "masked_lm_accuracy": totals.get("masked_lm_correct", 0.0) / count,
            "masked_lm_loss": totals.get("masked_lm_loss", 0.0) / count,
            "masked_lm_predictions": int(totals.get("masked_lm_count", 0.0)),
            "examples": int(totals.get("examples", 0.0)),
        }
        if "next_sentence_loss" in totals:
            report["nsp_accuracy"] = totals["next_sentence_correct"] / examples
            report["nsp_loss"] = totals["next_sentence_loss"] / examples
        return report

    def _evaluate_and_keep(self, dev_path) -> dict:
        step = int(self.step.numpy())
        report = {"step": step, **self.evaluate_masked_lm(dev_path)}
        with self._writer("dev").as_default(step=step):
            for name, value in report.items():
                if name not in ("step", "examples", "masked_lm_predictions"):
                    tf.summary.scalar(name, value)
        improved = report["masked_lm_accuracy"] > float(self.best_accuracy.numpy())
        if improved:
            self.best_accuracy.assign(report["masked_lm_accuracy"])
        if self.chief:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in report.items() if isinstance(v, float))
            print(f"\ndev at step {step}: {scores}", flush=True)
            previous = self._read_report() or {}
            history = [r for r in previous.get("history", []) if r["step"] < step] + [dict(report)]
            report["best_step"] = step if improved else previous.get("best_step")
            report["history"] = history
            (self.model_dir / EVAL_REPORT).write_text(json.dumps(report, indent=1) + "\n")
            if improved:
                save_pretraining_checkpoint(
                    self.model.backbone, self.model.head_weights(), self.model_dir / BEST_DIR, self.vocab_file
                )
        logging.info("eval at step %d: %s", step, report)
        return report
