"""tf.data pipeline: sentences -> padded, length-bucketed BERT batches.

Each batch is a dict of [batch, length] tensors:
- `token_ids`: `[CLS] tokens [SEP]` then `[PAD]`: one id per character
  (`CharTokenizer`) or per WordPiece sub-token (`kner.data.tokenizer_base`);
- `segment_ids`: zeros; `padding_mask`: True on `[CLS]`, tokens and `[SEP]`;
- `label_mask`: True on the tokens that carry labels, the labelled units
  (`kner.data.units`: every token, or the first sub-token of each word),
  so `[CLS]`, `[SEP]`, padding and the other sub-tokens never count in loss
  or metrics; the model reads its head's units at these positions, in order
  (`kner.models.tagger`);
- with labelled data, the targets of the model's head (`kner.data.targets`)
  over the units: `label_ids` [batch, length - 1] (the tag of each unit),
  `span_labels` [batch, spans, 3] (unit indices), or `start_ids` and
  `end_ids` [batch, length - 1].

Gold entities are character spans; each moves to the units it overlaps, and
one whose boundary falls inside a unit (a WordPiece sub-token of
character-labelled text) widens to it: counted and logged, like truncation.
Where widening makes two entities cross (or cover the same units), the later
one is dropped, and counted.

Batches are padded to their own longest sentence, and sentences of similar
length are bucketed together, which keeps padding on CLUENER under 2%.
For XLA, which compiles the step once per batch shape, `pad_to_multiple`
rounds each batch's length up to a multiple (`XLA_LENGTH_MULTIPLE` = 8 tokens
in `kner.training.trainer` under `--jit_compile`), so a run compiles at most
`max_seq_length / multiple` lengths, times two batch sizes (the full one and
the epoch's one partial batch).
Training data longer than `max_seq_length` tokens is truncated, and the truncated
sentences and the entities they lose are counted and logged; evaluation and
prediction data are never truncated.

Example:
>>> ds, report = make_dataset(sentences, tokenizer, targets, batch_size=32,
...                           max_seq_length=128, training=True, seed=1)
>>> batch = next(iter(ds))  # batch["token_ids"].shape == (32, L)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.spans import drop_conflicts, find_conflict
from kner.data.targets import PointerTargets, SpanTargets, TagTargets, ragged_rows
from kner.data.tokenizer_base import Tokenized, Tokenizer
from kner.data.units import LabelUnits, TokenUnits, to_unit_spans, unit_offsets

Targets = TagTargets | SpanTargets | PointerTargets

_TOKENIZE_CHUNK = 4096


@dataclasses.dataclass
class TruncationReport:
    """How much truncation to `max_seq_length` cut, and how many gold
    entities moved to token boundaries (`moved`) or cover no token
    (`unplaced`, dropped)."""

    sentences: int = 0
    truncated: int = 0
    entities: int = 0
    entities_lost: int = 0
    moved: int = 0
    unplaced: int = 0

    def __str__(self) -> str:
        return (
            f"{self.truncated} of {self.sentences} sentences truncated, "
            f"losing {self.entities_lost} of {self.entities} entities"
        )

    def boundaries(self) -> str:
        """How many gold entities moved to token boundaries, and how many
        cover no token."""
        return (
            f"{self.moved:,} of {self.entities:,} entities widened to whole tokens (a boundary inside a sub-token), "
            f"{self.unplaced:,} dropped (no token inside them, or made to cross another)"
        )


def as_targets(targets: Targets | LabelVocab) -> Targets:
    """A targets encoder; a `LabelVocab` stands for its `TagTargets`."""
    return TagTargets(targets) if isinstance(targets, LabelVocab) else targets


def encode_targets(
    sentences: Sequence[Sentence], targets: Targets | LabelVocab, max_chars: int | None
) -> tuple[list[str], dict[str, list], TruncationReport]:
    """Texts and each sentence's targets (`kner.data.targets`), truncated to
    `max_chars` characters (None: never)."""
    targets = as_targets(targets)
    report = TruncationReport(sentences=len(sentences))
    texts, rows = [], {key: [] for key in targets.keys}
    for sentence in sentences:
        text, kept = sentence.text, len(sentence.text)
        report.entities += len(sentence.spans)
        if max_chars is not None and len(text) > max_chars:
            report.truncated += 1
            report.entities_lost += sum(span.end >= max_chars for span in sentence.spans)
            text, kept = text[:max_chars], max_chars
        for key, row in targets.encode(sentence.spans, len(sentence.text), kept).items():
            rows[key].append(row)
        texts.append(text)
    return texts, rows, report


def bucket_boundaries(lengths: Sequence[int], batch_size: int, max_buckets: int = 32) -> np.ndarray:
    """Length boundaries at quantiles of `lengths`, so that every bucket holds
    several batches; buckets of near-equal lengths keep padding small."""
    buckets = int(np.clip(len(lengths) // (4 * batch_size), 1, max_buckets))
    quantiles = np.quantile(np.asarray(lengths), np.linspace(0, 1, buckets + 1)[1:-1])
    return np.unique(quantiles.astype(int) + 1)


def plan_batches(lengths: Sequence[int], batch_size: int, seed: int | None = None) -> list[np.ndarray]:
    """Sentence indices of each batch. With a `seed`: shuffled, grouped into
    length buckets, batched within buckets, and the batches shuffled; the
    same seed gives the same plan, and every seed the same number of batches.
    Without: consecutive, in input order."""
    if seed is None:
        return [np.arange(i, min(i + batch_size, len(lengths))) for i in range(0, len(lengths), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    bucket = np.searchsorted(bucket_boundaries(lengths, batch_size), np.asarray(lengths)[order], side="right")
    batches, leftovers = [], []
    for b in np.unique(bucket):
        members = order[bucket == b]
        full = len(members) - len(members) % batch_size
        batches += [members[i : i + batch_size] for i in range(0, full, batch_size)]
        leftovers.append(members[full:])
    # Each bucket's remainder joins its neighbours' rather than making a small
    # batch of its own: one partial batch an epoch, so that XLA, which compiles
    # once per (batch, length) shape, compiles about once per bucket.
    rest = np.concatenate(leftovers)
    batches += [rest[i : i + batch_size] for i in range(0, len(rest), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclasses.dataclass
class EncodedData:
    """Sentences as tensors, ready to batch: `columns` holds ragged
    `tokens` (ids), `unit_mask` (whether each token is a labelled unit,
    `kner.data.units`) and, for labelled data, the ragged targets of
    `targets` over units; `lengths` are token counts. `unit_start` and
    `unit_end` [sentences, (units)] are each unit's `[start, end)` characters
    (of the whole text, also where training truncated it)."""

    columns: dict[str, tf.Tensor | tf.RaggedTensor]
    lengths: np.ndarray
    report: TruncationReport
    targets: Targets | None = None
    unit_start: tf.RaggedTensor | None = None
    unit_end: tf.RaggedTensor | None = None
    _batch_functions: dict = dataclasses.field(default_factory=dict, repr=False)

    def unit_offsets(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sentence, its units' character starts and (exclusive) ends."""
        splits = self.unit_start.row_splits.numpy()
        starts, ends = self.unit_start.flat_values.numpy(), self.unit_end.flat_values.numpy()
        return [(starts[a:b], ends[a:b]) for a, b in zip(splits[:-1], splits[1:])]

    def select(self, indices: Sequence[int]) -> EncodedData:
        """The sentences at `indices`, in that order, without tokenizing
        again (the report stays the whole data's)."""
        rows = tf.constant(indices, tf.int64, shape=[len(indices)])
        columns = {key: tf.gather(column, rows) for key, column in self.columns.items()}
        unit_start, unit_end = (None if u is None else tf.gather(u, rows) for u in (self.unit_start, self.unit_end))
        lengths = self.lengths[np.asarray(indices, np.int64)]
        return EncodedData(columns, lengths, self.report, self.targets, unit_start, unit_end)

    def batch_function(
        self, tokenizer: Tokenizer, pad_to_multiple: int = 1
    ) -> tf.types.experimental.PolymorphicFunction:
        """Sentence indices -> batch features; traced once, reused every epoch."""
        key = (id(tokenizer), pad_to_multiple)
        if key not in self._batch_functions:
            columns, targets = self.columns, self.targets

            @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False)
            def features(indices):
                batch = {k: tf.gather(v, indices) for k, v in columns.items()}
                return to_features(batch, tokenizer, pad_to_multiple, targets)

            self._batch_functions[key] = features
        return self._batch_functions[key]


def tokenize_units(
    texts: Sequence[str], tokenizer: Tokenizer, units: LabelUnits
) -> tuple[Tokenized, tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
    """Tokens, unit mask and unit `[start, end)` characters of `texts`
    (`kner.data.units`), tokenized in chunks: the per-character strings on
    the way cost 100 MiB for People's Daily train in one piece, 24 MiB in
    chunks."""
    parts = []
    for i in range(0, max(len(texts), 1), _TOKENIZE_CHUNK):
        chunk = tf.constant(texts[i : i + _TOKENIZE_CHUNK], tf.string)
        tokens = tokenizer.tokenize(chunk)
        is_unit = units.starts(tokens, tokenizer)
        parts.append((*tokens, is_unit, *unit_offsets(tokens, is_unit)))
    ids, starts, ends, is_unit, unit_start, unit_end = (tf.concat(list(column), 0) for column in zip(*parts))
    return Tokenized(ids, starts, ends), is_unit, unit_start, unit_end


def encode(
    sentences: Sequence[Sentence],
    tokenizer: Tokenizer,
    targets: Targets | LabelVocab | None = None,
    max_tokens: int | None = None,
    units: LabelUnits | None = None,
) -> EncodedData:
    """Tokenizes (and encodes the targets of) once what every epoch batches
    again; `max_tokens` truncates (training only). The targets are over
    `units` (default: every token), gold character spans moved to unit
    boundaries (counted and logged, like truncation)."""
    units = units or TokenUnits()
    texts = [s.text for s in sentences]
    tokens, is_unit, unit_start, unit_end = tokenize_units(texts, tokenizer, units)
    ids = tokens.ids
    report = TruncationReport(sentences=len(texts))
    if max_tokens is not None:
        report.truncated = int(tf.reduce_sum(tf.cast(ids.row_lengths() > max_tokens, tf.int32)))
        ids, is_unit = ids[:, :max_tokens], is_unit[:, :max_tokens]
    columns = {"tokens": ids, "unit_mask": is_unit}
    data = EncodedData(columns, ids.row_lengths().numpy(), report, None, unit_start, unit_end)
    if targets is not None:
        data.targets = targets = as_targets(targets)
        kept = tf.reduce_sum(tf.cast(is_unit, tf.int32), axis=1).numpy()
        rows = {key: [] for key in targets.keys}
        for sentence, (start, end), kept_units in zip(sentences, data.unit_offsets(), kept):
            spans, moved, lost = to_unit_spans(sentence.spans, start, end)
            if moved and find_conflict(sentence.spans) is None:
                spans, crossing = drop_conflicts(spans)  # two entities widened into one sub-token
                lost += crossing
            report.entities += len(sentence.spans)
            report.moved += moved
            report.unplaced += lost
            report.entities_lost += sum(span.end >= kept_units for span in spans)
            for key, row in targets.encode(spans, len(start), int(kept_units)).items():
                rows[key].append(row)
        columns.update(targets.ragged(rows))
        if report.truncated:
            logging.warning("truncated to %d tokens: %s", max_tokens, report)
        if report.moved or report.unplaced:
            logging.warning("entities and tokens: %s", report.boundaries())
    return data


def batched(
    data: EncodedData,
    tokenizer: Tokenizer,
    batch_size: int,
    seed: int | None = None,
    pad_to_multiple: int = 1,
) -> tf.data.Dataset:
    """Batches of `data` by `plan_batches` (shuffled and bucketed with a
    `seed`; in order and cached without), each padded to its longest
    sentence rounded up to a multiple of `pad_to_multiple` tokens."""
    plan = plan_batches(data.lengths, batch_size, seed)
    dataset = tf.data.Dataset.from_tensor_slices(ragged_rows(plan, np.int64))
    features = data.batch_function(tokenizer, pad_to_multiple)
    dataset = dataset.map(features, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if seed is None:
        dataset = dataset.cache()
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    sentences: Sequence[Sentence],
    tokenizer: Tokenizer,
    targets: Targets | LabelVocab | None = None,
    *,
    batch_size: int,
    max_seq_length: int | None = None,
    training: bool = False,
    seed: int = 0,
    units: LabelUnits | None = None,
) -> tuple[tf.data.Dataset, TruncationReport]:
    """Batches for training (`training=True`: bucketed and shuffled by `seed`,
    truncated to `max_seq_length`) or for evaluation and prediction (input
    order, nothing cut, cached). Training for several epochs? `encode` once
    and call `batched` with a new seed per epoch.

    `batch_size` is the global batch: under a `tf.distribute` strategy, hand the
    dataset to `strategy.experimental_distribute_dataset`, which splits it.
    """
    max_tokens = max_seq_length - 2 if training and max_seq_length else None
    data = encode(sentences, tokenizer, targets, max_tokens, units)
    return batched(data, tokenizer, batch_size, seed if training else None), data.report


def to_features(
    batch: dict[str, tf.Tensor],
    tokenizer: Tokenizer,
    pad_to_multiple: int = 1,
    targets: Targets | None = None,
) -> dict[str, tf.Tensor]:
    """Turns a batch of texts (`text`: every token a labelled unit) or of
    their token ids (`tokens`, ragged, with the ragged bool `unit_mask`), with
    the ragged or padded columns of `targets` if labelled, into model inputs,
    padded to the longest row rounded up to a multiple of `pad_to_multiple`."""
    tokens = batch["tokens"] if "tokens" in batch else tokenizer(batch["text"])
    is_unit = batch["unit_mask"] if "unit_mask" in batch else tf.ones_like(tokens, tf.bool)
    num_tokens = tokens.row_lengths()
    rows = tf.shape(num_tokens, out_type=tf.int64)[0]
    cls = tf.fill([rows, 1], tokenizer.cls_id)
    sep = tf.fill([rows, 1], tokenizer.sep_id)
    token_ids = tf.concat([cls, tokens, sep], axis=1).to_tensor(tokenizer.pad_id)
    if pad_to_multiple > 1:
        extra = -tf.shape(token_ids)[1] % pad_to_multiple
        token_ids = tf.pad(token_ids, [[0, 0], [0, extra]], constant_values=tokenizer.pad_id)
    length = tf.shape(token_ids)[1]
    no = tf.zeros([rows, 1], tf.bool)
    unit_mask = tf.concat([no, is_unit, no], axis=1).to_tensor(False, shape=[None, None])
    features = {
        "token_ids": token_ids,
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": tf.sequence_mask(num_tokens + 2, length),
        "label_mask": tf.pad(unit_mask, [[0, 0], [0, length - tf.shape(unit_mask)[1]]]),
    }
    if targets is not None:
        features.update(targets.pad({k: batch[k] for k in targets.keys}, length - 1))
    return features


def label_mask(batch: dict[str, tf.Tensor]) -> tf.Tensor:
    """The batch's `label_mask`, or every token of its `padding_mask` but
    `[CLS]` and `[SEP]` for batches built elsewhere (benchmarks, clients of
    `predict_ids`)."""
    if "label_mask" in batch:
        return tf.cast(batch["label_mask"], tf.bool)
    return char_mask(batch["padding_mask"])


def char_mask(padding_mask: tf.Tensor) -> tf.Tensor:
    """True on character positions: inside the padding mask, not `[CLS]` (the
    first position) and not `[SEP]` (the last unpadded one)."""
    padding_mask = tf.cast(padding_mask, tf.bool)
    length = tf.shape(padding_mask)[1]
    num_chars = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1) - 2
    return tf.pad(tf.sequence_mask(num_chars, length - 1), [[0, 0], [1, 0]])


def padding_waste(dataset: tf.data.Dataset) -> float:
    """Fraction of token positions in `dataset` that are padding."""
    padded = real = 0
    for batch in dataset:
        mask = batch["padding_mask"].numpy()
        padded += mask.size
        real += mask.sum()
    return 1.0 - real / max(padded, 1)
