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
- with a sentence-pair task (`sentence_task`), makes each packed chunk a
  pair of segments A and B (`_PairBuilder`), never one without B. A chunk of
  several sentences is split at a random sentence boundary; a chunk of one
  sentence is split at a random word boundary (a character's without whole
  word masking) where the task needs B from the same document, and skipped
  when it is one word. Then:
  - `nsp`, next-sentence prediction (Google BERT): half the time (always
    for a one-sentence chunk, as Google) B is replaced by sentences of a
    random earlier document (`next_sentence_label` 1, "random"; the unused
    sentences go back into the stream). Only while there is no earlier
    document (the first one) does a one-sentence chunk get split instead,
    with label 0. So label 0 ("is next") always means that B follows A in
    the same document. The random document comes from a reservoir of the
    last `NSP_RESERVOIR` documents, which keeps memory flat. A corpus of
    fewer than two documents cannot teach NSP and is refused (`InputError`,
    before anything is written);
  - `sop`, sentence-order prediction (ALBERT, `create_instances_from_document`
    of google-research/albert): A and B are always consecutive segments of
    the document, swapped with probability 0.5 (label 1, "swapped"). Where
    ALBERT draws B from a random document for a one-segment chunk, the
    chunk is split at a word boundary instead (skipped if it is one word),
    so every pair's segments come from one document.
  When a pair is too long, A loses tokens from its front and B from its
  back, so consecutive segments stay consecutive. A label split outside
  `BALANCED_LABELS` or a majority of one-sentence documents (the mistake of
  google-research/bert#125: a blank line after every sentence) is reported
  by `pair_warning`; a corpus that gives no pair at all is an `InputError`.

Each example stores `token_ids`, `segment_ids` and `word_ids` (the word each
token belongs to, numbered from 0 in the example; -1 for `[CLS]`/`[SEP]`,
never masked) and `next_sentence_label` (the pair's label, also for SOP;
0 without a pair), without padding. Masks are drawn
later, in the input pipeline (`kner.data.masking`).

The cache is `CACHE_DIR/<name>-<key>.tfrecord` plus a `.json` with counts;
the key hashes every input that changes the examples (files with size and
modification time, vocab, lengths, whole word masking, sentence task, seed), so a
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
from kner.errors import InputError

NER_LAYOUTS = ("cluener", "column")
NSP, SOP = "nsp", "sop"
SENTENCE_TASKS = (NSP, SOP)
# The names of labels 0 and 1 of each sentence-pair task.
LABEL_NAMES = {NSP: ("is next", "random"), SOP: ("in order", "swapped")}
NSP_RESERVOIR = 256
NER_DOCUMENT_SENTENCES = 20
BALANCED_LABELS = (0.3, 0.7)  # the share of "is next" pairs outside which `pair_warning` speaks
# What one document is in each corpus layout, for the errors that need documents.
DOCUMENT_IN_LAYOUT = {
    "line": "one line",
    "google": "the lines (one sentence each) up to a blank line",
    "label_tab": "the text of one line",
    "cluener": f"{NER_DOCUMENT_SENTENCES} consecutive texts",
    "column": f"{NER_DOCUMENT_SENTENCES} consecutive sentences",
}
_SENTENCE_END = re.compile(r"[^。！？!?…;；]*(?:[。！？!?…;；]+[”’\"」』）)]*|$)")


@dataclasses.dataclass(frozen=True)
class ExampleConfig:
    """How documents become examples (part of the cache key)."""

    max_seq_length: int = 128
    whole_word_mask: bool = True
    sentence_task: str | None = None  # "nsp", "sop" or None (single segments)
    seed: int = 12345
    lenient: bool = False  # text that is not valid UTF-8 becomes U+FFFD instead of an error


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A prepared example file and its counts."""

    path: Path
    examples: int
    tokens: int
    documents: int
    one_sentence_documents: int = 0
    sentence_task: str | None = None
    labels: tuple[int, int] | None = None  # pairs labelled 0 and 1 (`LABEL_NAMES`); None without pairs

    def label_split(self) -> str:
        """`"48.9% is next / 51.1% random"` (empty without pairs)."""
        if not self.labels or self.sentence_task is None:
            return ""
        share = self.labels[0] / max(sum(self.labels), 1)
        first, second = LABEL_NAMES[self.sentence_task]
        return f"{share:.1%} {first} / {1 - share:.1%} {second}"


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


def _truncate(ids: list[int], words: list[int], size: int, keep_end: bool = False) -> tuple[list[int], list[int]]:
    """The first `size` tokens and their word lengths (the last ones with
    `keep_end`; a word cut at the edge keeps its remaining part)."""
    if len(ids) <= size:
        return ids, words
    start = len(ids) - size if keep_end else 0
    return ids[start : start + size], _cut_words(words, start, size)


class _PairBuilder:
    """Segments A and B of one packed chunk and their label, for NSP or SOP
    (see the module doc): Google's `create_instances_from_document` (BERT's
    and ALBERT's) without an empty B, and with every "is next" or SOP pair
    taken from consecutive text of one document."""

    def __init__(self, task: str, rng: random.Random, max_tokens: int):
        if task not in SENTENCE_TASKS:
            raise ValueError(f"sentence_task must be one of {SENTENCE_TASKS}, got {task!r}")
        self.task, self.rng, self.max_tokens = task, rng, max_tokens
        self.reservoir: deque[list[_Sentence]] = deque(maxlen=NSP_RESERVOIR)

    def pair(self, chunk: list[_Sentence]) -> tuple[list[_Sentence], list[_Sentence], int, int] | None:
        """`(A, B, label, unused)`: `unused` trailing sentences of the chunk
        go back into the stream; None for a one-word chunk that has to be
        split."""
        if self.task == NSP and self.reservoir and (len(chunk) == 1 or self.rng.random() < 0.5):
            a_end = self.rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            return chunk[:a_end], self._random_b(), 1, len(chunk) - a_end
        if len(chunk) >= 2:
            a_end = self.rng.randint(1, len(chunk) - 1)
            a, b = chunk[:a_end], chunk[a_end:]
        else:
            halves = self._split_at_word(chunk[0])
            if halves is None:
                return None
            a, b = [halves[0]], [halves[1]]
        if self.task == SOP and self.rng.random() < 0.5:
            return b, a, 1, 0
        return a, b, 0, 0

    def remember(self, sentences: list[_Sentence]) -> None:
        """Makes a finished document available for random B segments."""
        if sentences:
            self.reservoir.append(sentences)

    def _random_b(self) -> list[_Sentence]:
        other = self.rng.choice(self.reservoir)
        return other[self.rng.randint(0, len(other) - 1) :]

    def _split_at_word(self, sentence: _Sentence) -> tuple[_Sentence, _Sentence] | None:
        """The sentence cut at a random word boundary (a character boundary
        without whole word masking); None for a one-word sentence."""
        if len(sentence.words) < 2:
            return None
        k = self.rng.randint(1, len(sentence.words) - 1)
        cut = sum(sentence.words[:k])
        return _Sentence(sentence.ids[:cut], sentence.words[:k]), _Sentence(sentence.ids[cut:], sentence.words[k:])

    def fit(
        self, a: list[_Sentence], b: list[_Sentence], label: int
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """A and B flattened and cut to `max_tokens` together, neither empty.
        The segment that comes first in the document loses tokens from its
        front, the other from its back, so consecutive segments stay
        consecutive (for SOP label 1 that is B, then A)."""
        swapped = self.task == SOP and label == 1
        first, second = (b, a) if swapped else (a, b)
        first_ids, first_words = _flatten(first)
        second_ids, second_words = _flatten(second)
        room = self.max_tokens
        size = min(len(first_ids), max(room - len(second_ids), room // 2))
        first_ids, first_words = _truncate(first_ids, first_words, size, keep_end=True)
        second_ids, second_words = _truncate(second_ids, second_words, room - len(first_ids))
        if swapped:
            return second_ids, second_words, first_ids, first_words
        return first_ids, first_words, second_ids, second_words


class _Packer:
    """Google's `create_instances_from_document`, one document at a time."""

    def __init__(self, tokenizer: CharTokenizer, config: ExampleConfig):
        self.tokenizer, self.config = tokenizer, config
        task = config.sentence_task
        self.max_tokens = config.max_seq_length - (3 if task else 2)
        self.pairs = _PairBuilder(task, random.Random(config.seed), self.max_tokens) if task else None

    def examples(self, document: Document) -> Iterator[dict[str, list[int]]]:
        sentences = _encode(document, self.tokenizer, self.max_tokens, self.config.whole_word_mask)
        chunk: list[_Sentence] = []
        length, i = 0, 0
        while i < len(sentences):
            chunk.append(sentences[i])
            length += len(sentences[i].ids)
            following = len(sentences[i + 1].ids) if i + 1 < len(sentences) else 0
            if i == len(sentences) - 1 or length + following > self.max_tokens:
                if self.pairs is None:
                    yield self._example(*_truncate(*_flatten(chunk), self.max_tokens), [], [], 0)
                else:
                    pair = self.pairs.pair(chunk)
                    if pair is not None:
                        a, b, label, unused = pair
                        i -= unused
                        yield self._example(*self.pairs.fit(a, b, label), label)
                chunk, length = [], 0
            i += 1
        if self.pairs is not None:
            self.pairs.remember(sentences)

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

    InputError (from the readers) names the file and line of bad input. With
    a sentence-pair task, a corpus (or split) that cannot give pairs is an
    InputError naming the files, what a document is in their layout, and the
    flag that turns the task off: for NSP fewer than two documents (found
    before anything is written), for both a corpus that gives no pair."""
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(sources, tokenizer, config)
    path, meta = directory / f"{name}-{key}.tfrecord", directory / f"{name}-{key}.json"
    if keep_document is not None:
        path, meta = path.with_name(f"{name}-{key}-held.tfrecord"), meta.with_name(f"{name}-{key}-held.json")
    if path.exists() and meta.exists():
        data = _prepared(path, json.loads(meta.read_text()))
        logging.info("%s examples: %d from the cache %s", name, data.examples, path)
        return data
    started = time.perf_counter()
    packer = _Packer(tokenizer, config)
    task = config.sentence_task
    stream = enumerate(documents(sources, config.lenient))
    selected = (document for i, document in stream if keep_document is None or keep_document(i))
    if task == NSP:
        selected = _at_least_two_documents(selected, sources, name)
    counts = {"examples": 0, "tokens": 0, "documents": 0, "one_sentence_documents": 0}
    labels = [0, 0]
    partial = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for document in selected:
                counts["documents"] += 1
                counts["one_sentence_documents"] += len(document.sentences) == 1
                for example in packer.examples(document):
                    features = {k: _feature(v) for k, v in example.items()}
                    writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
                    counts["examples"] += 1
                    counts["tokens"] += len(example["token_ids"])
                    labels[example["next_sentence_label"][0]] += 1
        if task and counts["documents"] and not counts["examples"]:
            raise _no_pairs(sources, name, task)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if task:
        counts.update(sentence_task=task, labels=labels)
    os.replace(partial, path)
    meta.write_text(json.dumps(counts) + "\n")
    data = _prepared(path, counts)
    logging.info(
        "%s examples: %d from %d documents (%d tokens%s) in %.0f s, cached in %s",
        name,
        data.examples,
        data.documents,
        data.tokens,
        f"; {task.upper()} {data.label_split()}" if task else "",
        time.perf_counter() - started,
        path,
    )
    return data


def _prepared(path: Path, counts: dict) -> PreparedData:
    labels = counts.get("labels")
    return PreparedData(
        path,
        counts["examples"],
        counts["tokens"],
        counts["documents"],
        counts.get("one_sentence_documents", 0),
        counts.get("sentence_task"),
        tuple(labels) if labels is not None else None,
    )


def _corpus_files(sources: Sequence[tuple[str, Path]]) -> tuple[str, str]:
    """The files of `sources` and what a document is in their layouts."""
    files = ", ".join(dict.fromkeys(str(path) for _, path in sources))
    layouts = dict.fromkeys(layout for layout, _ in sources)
    meaning = "; ".join(f"in the {layout} layout a document is {DOCUMENT_IN_LAYOUT[layout]}" for layout in layouts)
    return files, meaning


def _at_least_two_documents(stream: Iterator[Document], sources: Sequence[tuple[str, Path]], name: str):
    """`stream` unchanged once it has shown two documents; InputError if it
    ends before."""
    first = next(stream, None)
    second = next(stream, None)
    if second is None:
        files, meaning = _corpus_files(sources)
        found = "no document" if first is None else "1 document"
        raise InputError(
            files,
            None,
            f"{found} in the {name} text, but next-sentence prediction needs at least two (its random B comes from "
            f"another document; {meaning}): give more documents, or turn NSP off with --nonsp",
        )
    yield first
    yield second
    yield from stream


def _no_pairs(sources: Sequence[tuple[str, Path]], name: str, task: str) -> InputError:
    files, meaning = _corpus_files(sources)
    return InputError(
        files,
        None,
        f"no {task.upper()} pair in the {name} text: every document is a single word, which cannot be split into "
        f"segments A and B ({meaning}); give longer documents, or turn {task.upper()} off with --no{task}",
    )


def pair_warning(data: PreparedData, name: str) -> str | None:
    """One line when the sentence-pair labels of `data` cannot teach much,
    naming the label split and its likely cause: the NSP split outside
    `BALANCED_LABELS` (SOP's is a fair coin's), or most documents one
    sentence (NSP then gives them a random B, the mistake of
    google-research/bert#125; SOP splits each inside its sentence); None
    otherwise or without pairs."""
    if not data.labels or not data.documents:
        return None
    share = data.labels[0] / max(sum(data.labels), 1)
    one_sentence = data.one_sentence_documents / data.documents
    balanced = BALANCED_LABELS[0] <= share <= BALANCED_LABELS[1] or data.sentence_task == SOP  # SOP: a fair coin
    if balanced and one_sentence <= 0.5:
        return None
    if one_sentence > 0.5:
        cause = "likely one sentence per document (in the google layout, a blank line after every sentence)"
        if data.sentence_task == SOP:
            cause += ", so most pairs are the two halves of one sentence"
    elif share < BALANCED_LABELS[0]:
        cause = (
            "most examples hold one sentence, which always gets a random B: one sentence per document, or "
            "sentences long against --max_seq_length"
        )
    else:
        cause = "likely too few documents (a random B comes from another document)"
    task = data.sentence_task.upper()
    return (
        f"{name} {task} labels are {data.label_split()} over {sum(data.labels):,} pairs and "
        f"{data.one_sentence_documents:,} of {data.documents:,} documents are one sentence: {cause}"
    )


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
