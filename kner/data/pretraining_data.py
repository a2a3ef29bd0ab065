"""Masked-LM pretraining examples: documents packed into `[CLS] ... [SEP]`
sequences with their word boundaries, prepared once and cached as TFRecord.

Preparation streams the corpus one document at a time (memory does not grow
with it) and, for each document, following Google's
`create_pretraining_data.py` (`create_instances_from_document`):

- splits it into sentences (the `google` layout has one a line; a `line`
  document is split after `。！？!?…;；`), tokenizes each with one token per
  character (`CharTokenizer`) and segments it into words once
  (`kner.data.segmentation`; every character its own word without whole
  word masking);
- packs consecutive sentences up to `max_seq_length - 2` tokens
  (`- 3` with next-sentence prediction), closing a chunk before the sentence
  that would overflow it (Google closes it after, and cuts the overflow);
  a sentence longer than that is cut into pieces;
- with `nsp`, splits each packed chunk at a random sentence boundary into
  segments A and B, and half the time replaces B by sentences of a random
  earlier document (`next_sentence_label` 1, "random", as Google); the
  unused sentences go back into the stream. The random document comes from a
  reservoir of the last `NSP_RESERVOIR` documents, which keeps memory flat.

Each example stores `token_ids`, `segment_ids` and `word_ids` (the word each
token belongs to, numbered from 0 in the example; -1 for `[CLS]`/`[SEP]`,
never masked) and `next_sentence_label`, without padding. Masks are drawn
later, in the input pipeline (`kner.data.masking`).

The cache is `CACHE_DIR/<name>-<key>.tfrecord` plus a `.json` with counts;
the key hashes every input that changes the examples (files with size and
modification time, vocab, lengths, whole word masking, NSP, seed), so a
rerun reuses it and a change rebuilds it. Files are written under a
temporary name and renamed when complete.

Example:
>>> data = prepare_examples([("line", Path("corpus.txt"))], tokenizer, ExampleConfig(), Path("runs/x/data"), "train")
>>> data.path, data.examples
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

import tensorflow as tf
from absl import logging

from kner.data.corpus import read_corpus
from kner.data.raw_text import Document, read_documents
from kner.data.segmentation import char_lengths, word_lengths
from kner.data.tokenizer import CharTokenizer

NER_LAYOUTS = ("cluener", "column")
NSP_RESERVOIR = 256
NER_DOCUMENT_SENTENCES = 20
_SENTENCE_END = re.compile(r"[^。！？!?…;；]*(?:[。！？!?…;；]+[”’\"」』）)]*|$)")


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
    """How documents become examples (part of the cache key)."""

    max_seq_length: int = 128
    whole_word_mask: bool = True
    nsp: bool = False
    seed: int = 12345
    lenient: bool = False  # text that is not valid UTF-8 becomes U+FFFD instead of an error


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A prepared example file and its counts."""

    path: Path
    examples: int
    tokens: int
    documents: int


def split_sentences(text: str) -> list[str]:
    """`text` cut after sentence-ending punctuation (closing quotes stay with
    their sentence).

    >>> split_sentences("你好。他说：“走！”好")
    ['你好。', '他说：“走！”', '好']
    """
    return [s for s in _SENTENCE_END.findall(text) if s.strip()]


def documents(sources: Sequence[tuple[str, Path]], lenient: bool = False) -> Iterator[Document]:
    """The documents of `(layout, path)` sources. Raw text layouts stream
    (`kner.data.raw_text`); the NER layouts (`cluener`, `column`: labelled
    training files, of which only the text is used, their tags read leniently)
    are read one file at a time and give a document per
    `NER_DOCUMENT_SENTENCES` consecutive texts, a sentence per text. With
    `lenient`, raw text that is not valid UTF-8 is replaced by U+FFFD and
    counted instead of raising."""
    for layout, path in sources:
        if layout in NER_LAYOUTS:
            texts = [s for s in read_corpus(path, layout, strict=False) if s.text.strip()]
            for start in range(0, len(texts), NER_DOCUMENT_SENTENCES):
                group = texts[start : start + NER_DOCUMENT_SENTENCES]
                yield Document([s.text for s in group], str(path), group[0].line or 1)
        else:
            for document in read_documents([path], layout, lenient):
                if layout == "google":
                    yield document
                else:
                    yield Document(split_sentences(document.sentences[0]), document.path, document.line)


@dataclasses.dataclass
class _Sentence:
    ids: list[int]
    words: list[int]  # word lengths, adding up to len(ids)


def _encode(document: Document, tokenizer: CharTokenizer, max_tokens: int, whole_word_mask: bool) -> list[_Sentence]:
    segment = word_lengths if whole_word_mask else char_lengths
    sentences = []
    for text in document.sentences:
        ids, words = tokenizer.encode(text), segment(text)
        for start in range(0, len(ids), max_tokens):  # over-long sentences are cut
            piece = ids[start : start + max_tokens]
            sentences.append(_Sentence(piece, _cut_words(words, start, len(piece))))
    return sentences


def _cut_words(lengths: list[int], start: int, size: int) -> list[int]:
    """Word lengths of characters [start, start + size) (words cut at the edges)."""
    result, position = [], 0
    for length in lengths:
        lo, hi = max(position, start), min(position + length, start + size)
        if hi > lo:
            result.append(hi - lo)
        position += length
    return result


def _flatten(sentences: Sequence[_Sentence]) -> tuple[list[int], list[int]]:
    ids: list[int] = []
    words: list[int] = []
    for sentence in sentences:
        ids += sentence.ids
        words += sentence.words
    return ids, words


def _word_ids(words: list[int], first: int) -> list[int]:
    return [first + i for i, length in enumerate(words) for _ in range(length)]


def _truncate(ids: list[int], words: list[int], size: int) -> tuple[list[int], list[int]]:
    if len(ids) <= size:
        return ids, words
    return ids[:size], _cut_words(words, 0, size)


class _Packer:
    """Google's `create_instances_from_document`, one document at a time."""

    def __init__(self, tokenizer: CharTokenizer, config: ExampleConfig):
        self.tokenizer, self.config = tokenizer, config
        self.rng = random.Random(config.seed)
        self.max_tokens = config.max_seq_length - (3 if config.nsp else 2)
        self.reservoir: deque[list[_Sentence]] = deque(maxlen=NSP_RESERVOIR)

    def examples(self, document: Document) -> Iterator[dict[str, list[int]]]:
        sentences = _encode(document, self.tokenizer, self.max_tokens, self.config.whole_word_mask)
        chunk: list[_Sentence] = []
        length, i = 0, 0
        while i < len(sentences):
            chunk.append(sentences[i])
            length += len(sentences[i].ids)
            following = len(sentences[i + 1].ids) if i + 1 < len(sentences) else 0
            if i == len(sentences) - 1 or length + following > self.max_tokens:
                if self.config.nsp:
                    example, unused = self._pair(chunk)
                    i -= unused
                else:
                    example = self._single(chunk)
                yield example
                chunk, length = [], 0
            i += 1
        if self.config.nsp and sentences:
            self.reservoir.append(sentences)

    def _single(self, chunk: list[_Sentence]) -> dict[str, list[int]]:
        ids, words = _truncate(*_flatten(chunk), self.max_tokens)
        return self._example(ids, words, [], [], 0)

    def _pair(self, chunk: list[_Sentence]) -> tuple[dict[str, list[int]], int]:
        a_end = self.rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
        a_ids, a_words = _flatten(chunk[:a_end])
        unused = 0
        if (len(chunk) == 1 or self.rng.random() < 0.5) and self.reservoir:
            label = 1
            other = self.rng.choice(self.reservoir)
            start = self.rng.randint(0, len(other) - 1)
            b_ids, b_words = _flatten(other[start:])
            unused = len(chunk) - a_end
        else:
            label = 0
            b_ids, b_words = _flatten(chunk[a_end:])
        room = self.max_tokens
        a_size = min(len(a_ids), max(room - len(b_ids), room // 2))
        a_ids, a_words = _truncate(a_ids, a_words, a_size)
        b_ids, b_words = _truncate(b_ids, b_words, room - len(a_ids))
        return self._example(a_ids, a_words, b_ids, b_words, label), unused

    def _example(self, a_ids, a_words, b_ids, b_words, label: int) -> dict[str, list[int]]:
        tok = self.tokenizer
        ids = [tok.cls_id, *a_ids, tok.sep_id]
        segments = [0] * len(ids)
        word_ids = [-1, *_word_ids(a_words, 0), -1]
        if b_ids:
            ids += [*b_ids, tok.sep_id]
            segments += [1] * (len(b_ids) + 1)
            word_ids += [*_word_ids(b_words, len(a_words)), -1]
        return {"token_ids": ids, "segment_ids": segments, "word_ids": word_ids, "next_sentence_label": [label]}


def _feature(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def cache_key(sources: Sequence[tuple[str, Path]], tokenizer: CharTokenizer, config: ExampleConfig) -> str:
    """A hash of everything that changes the prepared examples."""
    files = [(layout, str(p), p.stat().st_size, p.stat().st_mtime_ns) for layout, p in sources]
    vocab = hashlib.sha1("\n".join(tokenizer.vocabulary).encode()).hexdigest()
    text = json.dumps([files, vocab, dataclasses.asdict(config)])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def prepare_examples(
    sources: Sequence[tuple[str, Path]],
    tokenizer: CharTokenizer,
    config: ExampleConfig,
    directory: Path,
    name: str,
    keep_document=None,
) -> PreparedData:
    """Writes (or reuses) the examples of `sources` under `directory`; see
    the module doc. `keep_document(index)` selects documents by their index
    in the stream (for a held-out split); all are kept by default.
    InputError (from the readers) names the file and line of bad input."""
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(sources, tokenizer, config)
    path, meta = directory / f"{name}-{key}.tfrecord", directory / f"{name}-{key}.json"
    if keep_document is not None:
        path, meta = path.with_name(f"{name}-{key}-held.tfrecord"), meta.with_name(f"{name}-{key}-held.json")
    if path.exists() and meta.exists():
        counts = json.loads(meta.read_text())
        logging.info("%s examples: %d from the cache %s", name, counts["examples"], path)
        return PreparedData(path, counts["examples"], counts["tokens"], counts["documents"])
    started = time.perf_counter()
    packer = _Packer(tokenizer, config)
    counts = {"examples": 0, "tokens": 0, "documents": 0}
    partial = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for index, document in enumerate(documents(sources, config.lenient)):
                if keep_document is not None and not keep_document(index):
                    continue
                counts["documents"] += 1
                for example in packer.examples(document):
                    features = {k: _feature(v) for k, v in example.items()}
                    writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
                    counts["examples"] += 1
                    counts["tokens"] += len(example["token_ids"])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    meta.write_text(json.dumps(counts) + "\n")
    logging.info(
        "%s examples: %d from %d documents (%d tokens) in %.0f s, cached in %s",
        name,
        counts["examples"],
        counts["documents"],
        counts["tokens"],
        time.perf_counter() - started,
        path,
    )
    return PreparedData(path, counts["examples"], counts["tokens"], counts["documents"])


def parse_example(record: tf.Tensor) -> dict[str, tf.Tensor]:
    """A serialized example as int32 tensors: `token_ids`, `segment_ids`,
    `word_ids` `[length]` and `next_sentence_label` `[]`."""
    spec = {
        "token_ids": tf.io.RaggedFeature(tf.int64),
        "segment_ids": tf.io.RaggedFeature(tf.int64),
        "word_ids": tf.io.RaggedFeature(tf.int64),
        "next_sentence_label": tf.io.FixedLenFeature([1], tf.int64),
    }
    example = tf.io.parse_single_example(record, spec)
    example = {k: tf.cast(v, tf.int32) for k, v in example.items()}
    example["next_sentence_label"] = example["next_sentence_label"][0]
    return example
