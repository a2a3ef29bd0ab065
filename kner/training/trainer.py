"""The training loop: one custom loop for every `tf.distribute` strategy.

Keras 3.15 `fit()` fails under `MultiWorkerMirroredStrategy`, and a loss
returned from an overridden `compute_loss` is multiplied by the replica
count, so kner runs its own loop:

- each replica sums its loss terms and divides by the count (the head's:
  sentences for the CRF, characters for softmax, sentences x types for
  GlobalPointer) all-reduced over the *global* batch, so the replicas'
  losses add up to the global-batch mean;
- the optimizer sums gradients across replicas and then clips them
  (`kner.training.optimization`), so default, Mirrored, MultiWorkerMirrored and TPU
  strategies take the same step on the same global batch;
- with an `adversary` (`kner.training.adversarial`: FGM, PGD) the step adds
  the gradients of more passes at perturbed word embeddings to the clean
  ones; the perturbation follows the global-batch gradient, the same on
  every replica.

It also checkpoints every `checkpoint_every` steps and at each epoch end,
resumes from the last checkpoint (the batch plan is seeded per epoch and the
dropout seeds are checkpointed, so the resumed run sees the batches and masks
it would have seen), evaluates on dev after
every epoch (also after a restart that interrupted that evaluation), keeps
the best weights by dev F1, and writes TensorBoard summaries (train loss,
learning rate, examples/s, dev loss, P/R/F1 overall and per type, and the
other scores of `kner.metrics`; for a model whose loss has named terms, such
as the `Distiller`'s soft, hard and hidden losses, each term unweighted as
`loss_terms/NAME` beside the weighted total `loss`).

In a cluster the chief writes `model_dir`; the other workers save their
checkpoints to a scratch directory they delete at once (every worker must
take part in saving) and resume from the chief's, so `model_dir` must be on
a filesystem all workers share.

Example:
>>> trainer = Trainer(model, optimizer, strategy, model_dir, config)
>>> report = trainer.fit(train_sentences, dev_sentences, tokenizer)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kner.data.corpus import Sentence
from kner.data.files import write_text
from kner.data.pipeline import EncodedData, batched, encode, plan_batches
from kner.data.spans import Span
from kner.data.tags import OUTSIDE
from kner.data.tokenizer_base import Tokenizer
from kner.data.units import LabelUnits, to_char_spans
from kner.data.words import snap_to_words, tags_of_words
from kner.error_report import write_report
from kner.errors import InputError
from kner.metrics import evaluate
from kner.models.tagger import Tagger
from kner.serving.predictor import Predictor
from kner.serving.text_tagger import TextTagger
from kner.training.adversarial import Adversary
from kner.training.distribute import is_chief, worker_id
from kner.training.lean_gelu import use_lean_gelu

# Under XLA (`jit_compile`) batches are padded to a multiple of this many
# tokens: XLA compiles the step once per batch shape. Over 6 epochs of CLUENER
# train (batch 32) that is 7 shapes instead of 28, for 8.7% padding instead of
# 0.9% (16 tokens: 5 shapes, 16.5%).
XLA_LENGTH_MULTIPLE = 8
BEST_WEIGHTS = "best.weights.h5"
EVAL_REPORT = "eval_report.json"
ERROR_REPORT = "report.html"
CHECKPOINTS = "checkpoints"


def _scored_tags(
    sentence: Sentence, tags: list[str] | None, offsets: tuple[np.ndarray, np.ndarray]
) -> list[str] | None:
    """The model's tags (one per labelled unit) over the units the sentence
    is scored in: one per word of a word-level sentence, one per character
    when the units are its characters; None otherwise (no seqeval)."""
    if tags is None:
        return None
    unit_start, unit_end = offsets
    if sentence.words is not None:
        return tags_of_words(tags, unit_start.tolist(), sentence.words, OUTSIDE)
    if len(unit_start) == len(sentence.text) and np.all(unit_end - unit_start == 1):
        return tags
    return None


class StopCheck(Protocol):
    """What `Trainer.fit` asks between steps (`kner.cli.StopRequest` is one)."""

    @property
    def requested(self) -> bool: ...


class TrainingStopped(Exception):
    """`fit` stopped on request; the checkpoint of `step` is saved."""

    def __init__(self, step: int, checkpoint: str | None):
        self.step, self.checkpoint = step, checkpoint
        super().__init__(f"stopped at step {step}")


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
    """Trains a `Tagger` under a strategy; see the module docstring.

    Args:
        model: a `Tagger`, or a model that trains one (a
            `kner.training.distillation.Distiller`): anything with `labels`,
            `targets`, `loss_count`, `loss_sum` and `decode` like the
            `Tagger`'s.
            `loss_count` and `loss_sum` may return vectors of as many loss
            terms, each normalised by its own global count; the loss is
            their sum. A model that names them (`loss_terms`: name ->
            weight of each term, in order, as `loss_sum` weights them)
            gets each term with a weight logged unweighted to TensorBoard
            as `loss_terms/NAME`.
        tagger: the `Tagger` whose weights are saved as the best weights and
            that tags long dev texts (default: `model`).
        train_inputs: maps each epoch's labelled batches and the 0-based
            epoch to the batches `model` trains on (distillation zips in
            teacher-labelled raw text); the same for a resumed epoch.
        adversary: adversarial training on `model`'s word embeddings
            (`kner.training.adversarial.build_adversary`); None: clean steps.
        units: the labelled units (`kner.data.units`; default every token).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        strategy: tf.distribute.Strategy,
        model_dir: str | Path,
        config: TrainConfig,
        tagger: Tagger | None = None,
        train_inputs: Callable[[tf.data.Dataset, int], tf.data.Dataset] | None = None,
        adversary: Adversary | None = None,
        units: LabelUnits | None = None,
    ):
        self.model, self.optimizer, self.strategy = model, optimizer, strategy
        self.adversary = adversary
        self.tagger = tagger or model
        self.train_inputs = train_inputs
        self.units = units
        self.model_dir, self.config = Path(model_dir), config
        self.chief = is_chief(strategy)
        use_lean_gelu(model)  # same values, less memory in the backward pass (kner.training.lean_gelu)
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.best_f1 = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_f1")
            self.stale_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="stale_epochs")
            self.evaluated_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="evaluated_epochs")
        weights = {id(v) for v in model.weights}
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            # The dropout seeds, so that a resumed run draws the masks an
            # uninterrupted one would.
            random_state=[v for v in model.variables if id(v) not in weights],
            optimizer=optimizer,
            step=self.step,
            best_f1=self.best_f1,
            stale_epochs=self.stale_epochs,
            evaluated_epochs=self.evaluated_epochs,
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self._checkpoint_dir(), max_to_keep=config.keep_checkpoints
        )
        self._compute_gradients = tf.function(self._gradients, jit_compile=config.jit_compile, autograph=False)
        # Traced on first use with the dataset's element_spec (batch and length
        # unknown), so that batches of new shapes do not retrace.
        self._traced_step = self._forward = self._decode = None
        self._eval_datasets: dict = {}
        self.last_predictions: list[list[Span]] | None = None  # of the last `evaluate`
        self._summaries = {}
        self._restored = False
        self._stop: StopCheck | None = None

    def _pad_to_multiple(self) -> int:
        return XLA_LENGTH_MULTIPLE if self.config.jit_compile else 1

    def _checkpoint_dir(self) -> str:
        if self.chief:
            return str(self.model_dir / CHECKPOINTS)
        task_type, task_id = worker_id(self.strategy)
        return str(self.model_dir / f"{CHECKPOINTS}_tmp_{task_type}_{task_id}")

    def _writer(self, name: str) -> tf.summary.SummaryWriter:
        if name not in self._summaries:
            writer = tf.summary.create_file_writer(str(self.model_dir / name)) if self.chief else None
            self._summaries[name] = writer or tf.summary.create_noop_writer()
        return self._summaries[name]

    # ---- one step ---------------------------------------------------------

    def _gradients(self, batch: dict[str, tf.Tensor], global_count: tf.Tensor, embeddings_only: bool = False):
        """One forward and backward pass: the loss terms and the gradients of
        the scaled loss, of every trainable variable or (for the adversary's
        intermediate passes) of its word embeddings only."""
        variables = [self.adversary.embeddings] if embeddings_only else self.model.trainable_variables
        with tf.GradientTape() as tape:
            scores = self.model(batch, training=True)
            terms = tf.reshape(self.model.loss_sum(batch, scores) / global_count, [-1])
            scaled = self.optimizer.scale_loss(tf.reduce_sum(terms))
        return terms, tape.gradient(scaled, variables)

    def _replica_step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, self.model.loss_count(batch))
        global_count = tf.maximum(global_count, 1.0)
        terms, gradients = self._compute_gradients(batch, global_count)
        variables = self.model.trainable_variables
        if self.adversary is not None:
            gradients = self.adversary.gradients(
                gradients,
                variables,
                lambda embeddings_only: self._compute_gradients(batch, global_count, embeddings_only)[1],
                self.optimizer.scale_loss(tf.constant(1.0)),
            )
        self.optimizer.apply(gradients, variables)
        sentences = tf.cast(tf.shape(batch["token_ids"])[0], tf.float32)
        return tf.concat([tf.stack([tf.reduce_sum(terms), sentences]), terms], axis=0)

    def train_step(self, batch) -> tf.Tensor:
        """One optimizer step on a global batch (an element of the distributed
        dataset, or a batch of features under the default strategy); returns
        [global-batch mean loss, sentences in the global batch, then each
        loss term (as weighted in the loss; the loss is their sum)], the
        loss of the clean pass under adversarial training. `fit`
        runs it traced, once per batch; it is public for benchmarks and
        custom loops.

        >>> loss, sentences, *terms = tf.function(trainer.train_step)(batch).numpy()
        """
        results = self.strategy.run(self._replica_step, args=(batch,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, results, axis=None)

    def _loss_and_scores(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        scores = self.model(batch, training=False)
        return self.model.loss_sum(batch, scores), self.model.loss_count(batch), scores

    # ---- loops ------------------------------------------------------------

    def fit(
        self,
        train: Sequence[Sentence],
        dev: Sequence[Sentence] | None,
        tokenizer: Tokenizer,
        stop: StopCheck | None = None,
    ) -> dict | None:
        """Trains (resuming from the last checkpoint if any) and returns the
        best dev report, also written to `model_dir/eval_report.json`.

        When `stop.requested` turns true (`kner.cli.StopRequest`: SIGINT or
        SIGTERM), the current step ends, a checkpoint is saved and
        `TrainingStopped` is raised; `fit` on the same model_dir resumes."""
        config = self.config
        per_epoch = steps_per_epoch(train, config)
        encoded = encode(train, tokenizer, self.model.targets, config.max_seq_length - 2, self.units)
        self.restore()
        self._stop = stop
        report = self._read_report()
        try:
            while True:
                finished, done = divmod(int(self.step.numpy()), per_epoch)
                if dev and done == 0 and finished > int(self.evaluated_epochs.numpy()):
                    report = self._end_of_epoch_eval(dev, tokenizer, finished) or report
                if finished >= config.epochs:
                    break
                if self._early_stopped():
                    logging.info("early stopping: no dev F1 gain in %d epochs", config.early_stopping_patience)
                    break
                self._train_epoch(encoded, tokenizer, finished, done, per_epoch)
                self._save_checkpoint()
        finally:
            self._stop = None
            for writer in self._summaries.values():
                writer.flush()
        return report

    def restore(self) -> int:
        """Restores the last checkpoint in model_dir, if any (once); returns the step."""
        latest = tf.train.latest_checkpoint(str(self.model_dir / CHECKPOINTS))
        if latest and not self._restored:
            try:
                self.checkpoint.restore(latest).assert_consumed()
            except (AssertionError, ValueError) as error:
                message = f"does not fit this model ({str(error).splitlines()[0]}): train into a new --model_dir"
                raise InputError(latest, None, message) from None
            logging.info("resumed from %s at step %d", latest, int(self.step.numpy()))
        self._restored = True
        return int(self.step.numpy())

    def is_finished(self, train: Sequence[Sentence], has_dev: bool) -> bool:
        """Whether `fit` would have nothing left to do (after `restore`): every
        epoch trained and evaluated, or stopped early."""
        finished, done = divmod(int(self.step.numpy()), steps_per_epoch(train, self.config))
        evaluated = not has_dev or finished <= int(self.evaluated_epochs.numpy())
        return (finished >= self.config.epochs and done == 0 and evaluated) or self._early_stopped()

    def _early_stopped(self) -> bool:
        patience = self.config.early_stopping_patience
        return bool(patience) and int(self.stale_epochs.numpy()) >= patience

    def _check_stop(self) -> None:
        """Saves a checkpoint and raises `TrainingStopped` if a stop was requested."""
        if self._stop is not None and self._stop.requested:
            latest = tf.train.latest_checkpoint(str(self.model_dir / CHECKPOINTS))
            if latest is None or int(latest.rsplit("-", 1)[1]) != int(self.step.numpy()):
                self._save_checkpoint()
            raise TrainingStopped(int(self.step.numpy()), tf.train.latest_checkpoint(str(self.model_dir / CHECKPOINTS)))

    def _train_epoch(self, train: EncodedData, tokenizer, epoch: int, done: int, per_epoch: int) -> None:
        config = self.config
        dataset = batched(train, tokenizer, config.batch_size, config.seed + epoch, self._pad_to_multiple())
        if self.train_inputs is not None:
            dataset = self.train_inputs(dataset, epoch)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = self.strategy.experimental_distribute_dataset(dataset.skip(done).with_options(options))
        if self._traced_step is None:
            self._traced_step = tf.function(self.train_step, input_signature=[dataset.element_spec], autograph=False)
        if self.chief:
            print(f"epoch {epoch + 1}/{config.epochs}", flush=True)
        verbose = (1 if sys.stdout.isatty() else 2) if self.chief else 0
        # Shown as given: the epoch's mean loss so far and the current rate.
        progress = keras.utils.Progbar(per_epoch, verbose=verbose, stateful_metrics=["loss", "lr"])
        progress.update(done)
        epoch_losses, losses, examples, started = [], [], 0.0, time.perf_counter()
        for batch in dataset:
            learning_rate = float(self.optimizer.learning_rate)
            loss, sentences, *terms = self._traced_step(batch).numpy().tolist()
            step = int(self.step.assign_add(1).numpy())
            epoch_losses.append(loss)
            losses.append([loss, *terms])
            examples += sentences
            progress.update(step - epoch * per_epoch, [("loss", np.mean(epoch_losses)), ("lr", learning_rate)])
            if step % config.log_every == 0:
                with self._writer("train").as_default(step=step):
                    self._log_losses(np.mean(losses, axis=0))
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("examples_per_second", examples / (time.perf_counter() - started))
                losses, examples, started = [], 0.0, time.perf_counter()
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step % per_epoch:
                self._save_checkpoint()
            self._check_stop()

    def _log_losses(self, means: np.ndarray) -> None:
        """Writes `loss` (the weighted total) and, when the model names its
        terms (`loss_terms`), each weighted term unweighted as
        `loss_terms/NAME`; `means` is [loss, *terms] averaged over steps."""
        tf.summary.scalar("loss", means[0])
        for (name, weight), value in zip(self._loss_term_weights(), means[1:]):
            if weight:  # a term without weight is not computed
                tf.summary.scalar(f"loss_terms/{name}", value / weight)

    def _loss_term_weights(self) -> list[tuple[str, float]]:
        """`(name, weight)` of each loss term the step returns, in order."""
        return list(getattr(self.model, "loss_terms", {}).items())

    def _save_checkpoint(self) -> None:
        self.manager.save(checkpoint_number=self.step)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)

    def evaluate(self, sentences: Sequence[Sentence], tokenizer: Tokenizer) -> dict:
        """Dev loss plus the scores of `kner.metrics.evaluate`: exact
        (start, end, type) spans, nested ones counted, and seqeval on the tags
        the model produced where its head tags.

        Entities are scored as character spans of the texts, over the
        original units: a word-level sentence (CoNLL) scores whole words (a
        predicted span widened to the words it overlaps) and seqeval reads
        one tag per word (its first sub-token's); character-labelled text
        under WordPiece scores characters, without seqeval (its tags are per
        sub-token).

        Nothing is cut: texts longer than `max_seq_length - 2` tokens are
        tagged through overlapping windows exactly as the exported model does
        (`kner.serving`). The loss is over the texts that fit in one window
        only: `report["loss"]` is their mean loss (None when none fits) and
        `report["loss_sentences"]` how many they are."""
        fits, offsets, dataset = self._eval_dataset(sentences, tokenizer)
        fitting = set(fits)
        longer = [i for i in range(len(sentences)) if i not in fitting]
        type_names = self.tagger.head.type_names
        predicted: list[list[Span] | None] = [None] * len(sentences)
        tags: list[list[str] | None] = [None] * len(sentences)  # what the model produced, for seqeval
        rows, loss_sum, count = iter(fits), 0.0, 0.0
        for batch in dataset:
            self._check_stop()
            batch_loss, batch_count, scores = self._forward(batch)
            loss_sum, count = loss_sum + batch_loss.numpy(), count + batch_count.numpy()
            decoded = self._decode(batch, scores)
            spans = decoded.spans
            starts = np.cumsum(spans.per_row.numpy()) - spans.per_row.numpy()
            values = zip(spans.start.numpy(), spans.end.numpy(), spans.type.numpy())
            found = [Span(int(s), int(e), type_names[t]) for s, e, t in values]
            for row, (first, number) in enumerate(zip(starts, spans.per_row.numpy())):
                index = next(rows)
                unit_start, unit_end = offsets[index]
                predicted[index] = to_char_spans(found[first : first + number], unit_start, unit_end)
                if decoded.tags is not None:
                    tags[index] = [t.decode() for t in decoded.tags[row, : len(unit_start)].numpy()]
        if longer:
            predictor = Predictor(TextTagger(self.tagger, tokenizer, self.config.max_seq_length, units=self.units))
            results = predictor.run([sentences[i].text for i in longer], batch_size=self.config.eval_batch_size)
            for i, result in zip(longer, results):
                predicted[i] = [Span(e.start, e.end, e.type) for e in result.entities]
                tags[i] = result.tags
        for i, sentence in enumerate(sentences):
            tags[i] = _scored_tags(sentence, tags[i], offsets[i])
            if sentence.words is not None:
                predicted[i] = snap_to_words(predicted[i], sentence.words)
        texts, gold = [s.text for s in sentences], [s.spans for s in sentences]
        self.last_predictions = predicted  # for the error report of the best evaluation
        has_tags = all(t is not None for t in tags)
        report = evaluate(
            texts, gold, predicted, tags if has_tags else None, self.tagger.labels.scheme, [s.words for s in sentences]
        )
        report["loss"] = float(np.sum(loss_sum / np.maximum(count, 1.0))) if np.any(count) else None
        report["loss_sentences"] = len(fits)
        return report

    def _eval_dataset(
        self, sentences: Sequence[Sentence], tokenizer
    ) -> tuple[list[int], list[tuple[np.ndarray, np.ndarray]], tf.data.Dataset]:
        """The sentences that fit one window, each sentence's unit offsets,
        and the batches of those that fit; built (and cached) once per dev set."""
        key = (id(sentences), len(sentences))
        if key not in self._eval_datasets:
            whole = encode(sentences, tokenizer, self.model.targets, units=self.units)
            fits = [i for i, n in enumerate(whole.lengths) if n <= self.config.max_seq_length - 2]
            size, multiple = self.config.eval_batch_size, self._pad_to_multiple()
            dataset = batched(whole.select(fits), tokenizer, size, None, multiple)
            self._eval_datasets[key] = fits, whole.unit_offsets(), dataset
        fits, offsets, dataset = self._eval_datasets[key]
        if self._forward is None:
            self._forward = tf.function(
                self._loss_and_scores,
                jit_compile=self.config.jit_compile,
                input_signature=[dataset.element_spec],
                autograph=False,
            )
            # Decoding finds a variable number of spans: never under XLA.
            self._decode = tf.function(self.model.decode, reduce_retracing=True, autograph=False)
        return fits, offsets, dataset

    def _end_of_epoch_eval(self, dev, tokenizer, epoch: int) -> dict | None:
        """Evaluates after `epoch` (1-based) epochs; returns the report if it
        is the best so far."""
        report = self.evaluate(dev, tokenizer)
        report["epoch"] = epoch
        with self._writer("dev").as_default(step=int(self.step.numpy())):
            if report["loss"] is not None:
                tf.summary.scalar("loss", report["loss"])
            for name, value in report["micro"].items():
                if name != "support":
                    tf.summary.scalar(f"overall/{name}", value)
            tf.summary.scalar("overall/type_macro_f1", report["type_macro_f1"])
            if "cluener_score_f1" in report:
                tf.summary.scalar("overall/cluener_score_f1", report["cluener_score_f1"])
            if "seqeval" in report:
                tf.summary.scalar("overall/seqeval_f1", report["seqeval"]["f1-score"])
            for entity_type, scores in report["per_type"].items():
                for name in ("precision", "recall", "f1"):
                    tf.summary.scalar(f"{entity_type}/{name}", scores[name])
        self.evaluated_epochs.assign(epoch)
        improved = report["micro"]["f1"] > float(self.best_f1.numpy())
        if self.chief:  # one line; the CLIs print the best epoch's table at the end
            micro, loss = report["micro"], self._describe_loss(report, len(dev))
            best = "best so far" if improved else f"best {float(self.best_f1.numpy()):.4f}"
            scores = f"micro P {micro['precision']:.4f} R {micro['recall']:.4f} F1 {micro['f1']:.4f}"
            print(f"dev after epoch {epoch}: {loss}, {scores} ({best})", flush=True)
        if improved:
            self.best_f1.assign(report["micro"]["f1"])
            self.stale_epochs.assign(0)
            if self.chief:
                self.tagger.save_weights(str(self.model_dir / BEST_WEIGHTS))
                write_text(self.model_dir / EVAL_REPORT, json.dumps(report, indent=1, ensure_ascii=False))
                title = f"dev after epoch {epoch} (step {int(self.step.numpy())}), the best so far"
                write_report(
                    self.model_dir / ERROR_REPORT, dev, self.last_predictions, title, dev[0].path or "", report
                )
        else:
            self.stale_epochs.assign_add(1)
        self._save_checkpoint()
        return report if improved else None

    def _describe_loss(self, report: dict, sentences: int) -> str:
        """`loss 1.2345`, saying which texts it covers when not all."""
        covered, limit = report["loss_sentences"], self.config.max_seq_length - 2
        if covered == sentences:
            return f"loss {report['loss']:.4f}"
        loss = "n/a" if report["loss"] is None else f"{report['loss']:.4f}"
        return (
            f"loss {loss} over the {covered} of {sentences} texts of at most {limit} tokens "
            "(longer ones are scored through windows, without a loss)"
        )

    def _read_report(self) -> dict | None:
        path = self.model_dir / EVAL_REPORT
        return json.loads(path.read_text()) if path.exists() else None
