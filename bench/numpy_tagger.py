"""The ONNX Runtime side's text handling in Python and NumPy, around the
encoder: kner's character tokenizer in, Viterbi within the tag scheme's
grammar, entities out; and the check that two sides return the same
entities (`bench/ort_serving.py`).

The steps are the ones kner's serving graph (`kner.serving.text_tagger`)
runs in TensorFlow, for texts that fit one window (no windowing: at most
`max_seq_length - 2` characters; CLUENER dev's longest has 50):

1. `CharTokenizer.encode`: one id per character, kner's vocabulary and
   normalisation (a Python dict lookup; the same table as the graph's);
2. `[CLS] ids [SEP]` rows padded to the batch's longest;
3. (the encoder: an ONNX Runtime session, `bench/ort_side.py`);
4. `viterbi`: the best tag sequence under the scheme's grammar
   (`kner.models.crf.constraint_scores`), plus the CRF's learned
   transitions, or over the softmax log-probabilities, as
   `kner.models.tagger.Tagger.decode_chars`; the same float32 sums as
   `kner.models.crf.viterbi`, so equal scores give equal tags;
5. entities read from the tags by `LabelVocab.decode` (lenient), the
   function the serving graph's closed form equals.

Example:
>>> decoder = Decoder.from_huggingface_dir(hf_dir)
>>> batch = encode_batch(tokenizer, ["浙商银行企业信贷部叶老桂博士"], max_seq_length=128)
>>> entities = decoder.entities(texts, logits, batch.lengths)   # [[("company", 0, 3, "浙商银行"), ...]]
>>> check_same_entities(texts, kner_entities, entities)     # SameEntitiesError if they differ
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kner.data.labels import LabelVocab
from kner.models.crf import constraint_scores

# (type, start, end inclusive, text) of an entity, as kner's `serving_default` returns them.
Entity = tuple[str, int, int, str]


class Batch(NamedTuple):
    """Model inputs of a batch of texts, int64 as the ONNX graph takes them."""

    input_ids: np.ndarray  # [B, L]: [CLS] ids [SEP], then [PAD]
    attention_mask: np.ndarray  # [B, L]: 1 on the first length + 2
    lengths: np.ndarray  # [B]: characters per text

    def kner_features(self) -> dict[str, np.ndarray]:
        """The batch as a kner `Tagger` takes it (`kner.data.pipeline`'s features)."""
        return {
            "token_ids": self.input_ids.astype(np.int32),
            "segment_ids": np.zeros_like(self.input_ids, np.int32),
            "padding_mask": self.attention_mask.astype(bool),
        }


def encode_batch(tokenizer, texts: list[str], max_seq_length: int) -> Batch:
    """kner's ids of `texts` (`tokenizer`: a `kner.data.tokenizer.CharTokenizer`)
    as one padded batch; ValueError for a text longer than one window."""
    ids = [tokenizer.encode(text) for text in texts]
    lengths = np.array([len(row) for row in ids], np.int64)
    if lengths.max(initial=0) > max_seq_length - 2:
        longest = int(np.argmax(lengths))
        raise ValueError(
            f"text {longest} of the batch has {lengths[longest]} characters; the ONNX Runtime side takes at most "
            f"{max_seq_length - 2} (max_seq_length - 2: no windowing)"
        )
    width = int(lengths.max(initial=0)) + 2
    input_ids = np.full((len(texts), width), tokenizer.pad_id, np.int64)
    attention_mask = np.zeros((len(texts), width), np.int64)
    for row, chars in enumerate(ids):
        input_ids[row, : len(chars) + 2] = [tokenizer.cls_id, *chars, tokenizer.sep_id]
        attention_mask[row, : len(chars) + 2] = 1
    return Batch(input_ids, attention_mask, lengths)


def viterbi(
    potentials: np.ndarray, lengths: np.ndarray, transitions: np.ndarray, start: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """Best tags [B, L] int32 (0 after each row's length) of float32
    potentials [B, L, T] under transition scores [T, T] ([from, to]) and
    first/last-tag scores [T], vectorised over the batch. The sums are
    `kner.models.crf.viterbi`'s, in its order (a position's best score per
    tag is `max over from of (delta[from] + transitions[from, to])` plus the
    potential; the backtrace takes `argmax over from of delta_t[from] +
    transitions[from, next tag]`, ties to the lowest tag), so its tags too."""
    potentials = np.asarray(potentials, np.float32)
    batch_size, steps, _ = potentials.shape
    deltas = np.empty_like(potentials.transpose(1, 0, 2))  # [L, B, T]
    deltas[0] = start + potentials[:, 0]
    for t in range(1, steps):
        deltas[t] = np.max(deltas[t - 1][:, :, None] + transitions, axis=1) + potentials[:, t]
    last = np.maximum(lengths - 1, 0)
    last_tags = np.argmax(deltas[last, np.arange(batch_size)] + end, axis=1)
    tags = np.zeros((batch_size, steps), np.int32)
    tag = last_tags
    for t in range(steps - 1, -1, -1):
        if t < steps - 1:
            back = np.argmax(deltas[t] + transitions[:, tag].T, axis=1)
            tag = np.where(t >= last, last_tags, back)
        tags[:, t] = tag
    tags[np.arange(steps)[None] >= np.asarray(lengths)[:, None]] = 0
    return tags


def path_scores(
    potentials: np.ndarray,
    lengths: np.ndarray,
    tags: np.ndarray,
    transitions: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
) -> np.ndarray:
    """Each row's score [B] of the tag path `tags` [B, L] under `viterbi`'s
    objective: its potentials, the transition scores between its tags, its
    first and last tags' scores (0 for an empty row)."""
    potentials = np.asarray(potentials, np.float64)
    scores = np.zeros(len(lengths))
    for row, length in enumerate(lengths):
        path = tags[row, :length]
        if length:
            scores[row] = potentials[row, np.arange(length), path].sum() + transitions[path[:-1], path[1:]].sum()
            scores[row] += start[path[0]] + end[path[-1]]
    return scores


class Decoder:
    """Tags and entities from a token classifier's logits, decoded as the
    kner model decodes (`head`, `decoding`; see the module doc).

    Args:
        labels: the model's tags and scheme.
        head: "crf" or "softmax".
        decoding: "viterbi" or "argmax" (softmax only).
        crf: the CRF's `transitions` [T, T], `start_transitions`,
            `end_transitions` [T] (CRF head only).
    """

    def __init__(self, labels: LabelVocab, head: str, decoding: str, crf: dict[str, np.ndarray] | None = None):
        self.labels = labels
        self.head, self.decoding = head, decoding
        transitions, start, end = constraint_scores(labels.tags, labels.scheme)
        if head == "crf":  # CRF.decode: learned scores plus the scheme's penalties
            transitions = crf["crf.transitions"] + transitions
            start = crf["crf.start_transitions"] + start
            end = crf["crf.end_transitions"] + end
        self.transitions, self.start, self.end = transitions, start, end

    @classmethod
    def from_huggingface_dir(cls, directory: Path) -> Decoder:
        """The decoder of a directory `bench/ort_side.write_huggingface` wrote."""
        config = json.loads((Path(directory) / "config.json").read_text())
        tags = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        crf = None
        if config["kner_head"] == "crf":
            from safetensors.numpy import load_file

            from kner.backbones.huggingface import EXTRA_WEIGHTS

            crf = load_file(Path(directory) / EXTRA_WEIGHTS)
        return cls(LabelVocab(tags, config["kner_tag_scheme"]), config["kner_head"], config["kner_decoding"], crf)

    def _objective(self, logits: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
        """What the decoding maximises over the chars of `[CLS] chars [SEP]`
        rows' logits [B, L, T]: potentials [B, max length, T] and transition,
        first- and last-tag scores (all 0 for argmax)."""
        scores = np.asarray(logits[:, 1 : 1 + int(lengths.max(initial=0))], np.float32)
        if self.decoding == "argmax":
            return scores, np.zeros_like(self.transitions), np.zeros_like(self.start), np.zeros_like(self.end)
        if self.head == "softmax":  # Viterbi over log-probabilities
            shifted = scores - scores.max(axis=-1, keepdims=True)
            scores = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return scores, self.transitions, self.start, self.end

    def tag_ids(self, logits: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Tag ids [B, max length] (0 after a text) from the logits [B, L, T]
        of `[CLS] chars [SEP]` rows."""
        scores, transitions, start, end = self._objective(logits, lengths)
        if self.decoding == "argmax":
            tags = np.argmax(scores, axis=-1).astype(np.int32)
            return np.where(np.arange(scores.shape[1])[None] < lengths[:, None], tags, 0)
        if scores.shape[1] == 0:
            return np.zeros(scores.shape[:2], np.int32)
        return viterbi(scores, lengths, transitions, start, end)

    def score_gaps(self, logits: np.ndarray, lengths: np.ndarray, tags: np.ndarray) -> np.ndarray:
        """How much lower each row's tag path `tags` [B, L] scores than the
        decoder's own under the same logits [B, L + 2, T], by what the
        decoding maximises (0 when `tags` is the decoder's path)."""
        scores, *rest = self._objective(logits, lengths)
        best = self.tag_ids(logits, lengths)
        return path_scores(scores, lengths, best, *rest) - path_scores(scores, lengths, tags, *rest)

    def entities(self, texts: list[str], logits: np.ndarray, lengths: np.ndarray) -> list[list[Entity]]:
        """Each text's entities, from the logits of its batch."""
        tag_ids = self.tag_ids(logits, lengths)
        found = []
        for row, text in enumerate(texts):
            spans, _ = self.labels.decode(tag_ids[row, : lengths[row]])
            found.append([(s.type, s.start, s.end, text[s.start : s.end + 1]) for s in spans])
        return found


def serving_entities(outputs: dict) -> list[list[Entity]]:
    """Each text's entities from the numpy outputs of a kner export's
    `serving_default` (one call)."""
    return [
        [
            (
                outputs["entity_type"][row][k].decode(),
                int(outputs["entity_start"][row][k]),
                int(outputs["entity_end"][row][k]),
                outputs["entity_text"][row][k].decode(),
            )
            for k in range(n)
        ]
        for row, n in enumerate(outputs["num_entities"])
    ]


class SameEntitiesError(AssertionError):
    """Two sides returned different entities for some texts."""


def check_same_entities(
    texts: list[str],
    reference: list[list[Entity]],
    other: list[list[Entity]],
    names=("kner", "ORT"),
    ties: frozenset[int] = frozenset(),
) -> int:
    """Raises `SameEntitiesError` naming how many texts differ and the first
    few, unless both sides return the same entities (in the same order) for
    every text but those of `ties` (float32 ties of two paths, shown by the
    caller); returns the number of entities compared."""
    if len(reference) != len(texts) or len(other) != len(texts):
        raise SameEntitiesError(f"{len(texts)} texts, but {len(reference)} and {len(other)} results")
    differ = [i for i, (a, b) in enumerate(zip(reference, other)) if a != b and i not in ties]
    if differ:
        examples = "\n".join(
            f"  text {i} {texts[i]!r}:\n    {names[0]}: {reference[i]}\n    {names[1]}: {other[i]}" for i in differ[:5]
        )
        raise SameEntitiesError(
            f"{names[0]} and {names[1]} return different entities for {len(differ)} of {len(texts)} texts:\n{examples}"
        )
    return sum(len(row) for row in reference)
