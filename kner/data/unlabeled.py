"""Unlabelled text for distillation: raw text files (one text per line) cut
into pieces that fit the model, and batched like labelled data.

A line longer than `max_chars` characters is cut into consecutive pieces of
at most `max_chars` characters (nothing is dropped). The pieces form one
endless stream that cycles through the files; epoch `e` of a run that
takes `count` pieces an epoch reads pieces `[e * count, (e + 1) * count)`
of it, so a resumed epoch sees the texts the interrupted one did, and only
one epoch's texts are held in memory.

Example:

```python
texts = epoch_texts(expand_paths("corpus/*.txt"), max_chars=126, epoch=0, count=10_000)
dataset = unlabeled_batches(texts, tokenizer, batch_size=32, seed=42)
next(iter(dataset))["unlabeled_token_ids"]  # [32, length]

# What the trainer calls each epoch (`Trainer(train_inputs=...)`): each
# labelled batch gets one batch of raw text beside it.
inputs = UnlabeledInputs(paths, tokenizer, batch_size=32, steps_per_epoch=336, max_chars=126, seed=42)
dataset = inputs(labelled_batches, epoch)
```
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import tensorflow as tf

from kner.data.corpus import Sentence
from kner.data.pipeline import batched, encode
from kner.data.raw_text import read_lines
from kner.data.tokenizer_base import Tokenizer
from kner.data.units import LabelUnits
from kner.errors import InputError

PREFIX = "unlabeled_"


def pieces(paths: Sequence[str | Path], max_chars: int, lenient: bool = False) -> Iterator[str]:
    """The non-blank lines of `paths`, each cut into pieces of at most
    `max_chars` characters (`lenient`: see `kner.data.raw_text.read_lines`)."""
    for text, _, _ in read_lines(paths, lenient):
        for start in range(0, len(text), max_chars):
            yield text[start : start + max_chars]


def epoch_texts(
    paths: Sequence[str | Path], max_chars: int, epoch: int, count: int, lenient: bool = False
) -> list[str]:
    """Pieces `[epoch * count, (epoch + 1) * count)` of the endless stream
    that cycles through `paths`. InputError if the files hold no text."""
    if next(pieces(paths, max_chars, lenient), None) is None:
        raise InputError(",".join(map(str, paths)), None, "no text in the unlabelled files (--unlabeled_files)")
    stream = itertools.chain.from_iterable(pieces(paths, max_chars, lenient) for _ in itertools.count())
    return list(itertools.islice(stream, epoch * count, (epoch + 1) * count))


def unlabeled_batches(
    texts: Sequence[str], tokenizer: Tokenizer, batch_size: int, seed: int, units: LabelUnits | None = None
) -> tf.data.Dataset:
    """Batches of `texts`, shuffled and length-bucketed by `seed` like
    training data (`kner.data.pipeline.batched`), with the features named
    `unlabeled_token_ids`, `unlabeled_segment_ids`, `unlabeled_padding_mask`
    and `unlabeled_label_mask` (the units the teacher labels, as
    `kner.data.pipeline.label_mask`). `len(texts) / batch_size` batches when
    `batch_size` divides `len(texts)`. `units`: the labelled units of the
    models (`kner.data.units`; default every token)."""
    data = encode([Sentence(text, None) for text in texts], tokenizer, units=units)
    return batched(data, tokenizer, batch_size, seed=seed).map(lambda batch: {PREFIX + k: v for k, v in batch.items()})


class UnlabeledInputs:
    """Adds a batch of raw text to every labelled training batch: called
    with an epoch's labelled batches and the 0-based epoch, returns batches
    holding both (the labelled features and the `unlabeled_*` ones).

    Args:
        paths: the raw text files, one text per line.
        tokenizer: the student's tokenizer.
        batch_size: raw texts per step (global, like `--batch_size`).
        steps_per_epoch: labelled batches per epoch.
        max_chars: longer lines are cut into pieces of this many characters.
        seed: the epoch's batches are shuffled by `seed + epoch`.
        lenient: text that is not valid UTF-8 becomes U+FFFD instead of an error.
        units: the labelled units of the models (`kner.data.units`).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        tokenizer: Tokenizer,
        batch_size: int,
        steps_per_epoch: int,
        max_chars: int,
        seed: int,
        lenient: bool = False,
        units: LabelUnits | None = None,
    ):
        self.paths, self.tokenizer, self.lenient, self.units = list(paths), tokenizer, lenient, units
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.max_chars, self.seed = max_chars, seed

    def __call__(self, labelled: tf.data.Dataset, epoch: int) -> tf.data.Dataset:
        texts = epoch_texts(self.paths, self.max_chars, epoch, self.batch_size * self.steps_per_epoch, self.lenient)
        unlabelled = unlabeled_batches(texts, self.tokenizer, self.batch_size, self.seed + epoch, self.units)
        return tf.data.Dataset.zip(labelled, unlabelled).map(lambda a, b: {**a, **b})
