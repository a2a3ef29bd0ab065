"""Text in, entities out, in one TensorFlow graph: the module kner exports.

`TextTagger` holds the trained tagger and its tokenizer, and does everything
in core TF ops (no tensorflow-text, no `py_function`), so stock TF Serving
runs it and the Python API (`kner.predict.Predictor`) calls the very same
function:

1. tokenize UTF-8 strings with the model's tokenizer, one token per
   character (`kner.data.tokenizer.CharTokenizer`) or WordPiece sub-tokens
   with character offsets (`kner.data.wordpiece`), both core TF ops; invalid
   UTF-8 bytes become U+FFFD; and find the labelled units
   (`kner.data.units`: every token, or the first sub-token of each word);
2. cut texts longer than `max_seq_length - 2` tokens into overlapping
   windows (`kner.serving.windows`) and run all windows of the batch through
   the model, as one batch when they fit a budget of token positions, else
   sorted by length in chunks of that budget (`kner.serving.length_chunks`);
3. decode as the model's head decodes (`kner.models.heads`):
   - a tagging head (softmax, CRF) merges the windows' tag scores per
     token, takes the units' and decodes them once over the whole text: Viterbi within
     the scheme's grammar (the CRF's, or over the softmax log-probabilities
     with zero transition scores), or argmax for a softmax model saved with
     `--decode=argmax`; entity spans are read from the tags exactly as
     `LabelVocab.decode` reads them (lenient: an orphan inside tag begins an
     entity, an unclosed one ends at its last tag);
   - the span head merges the windows' start and end logits per token the
     same way, takes the units' and pairs each start with the nearest end of
     its type over the whole text;
   - a pair head (GlobalPointer) decodes each window's spans (over the
     window's units) above its threshold, moves them to text offsets and keeps each span from the
     window where it sits farthest from both edges (`keep_window_spans`),
     then, with `--decode=flat`, keeps the best non-overlapping spans of
     each text;
4. build the entity outputs of every head (`kner.serving.entities`), units
   moved to character offsets of the text as given.

`predict_text(text)` takes a [batch] string tensor and returns dense tensors
(TF Serving signatures cannot return ragged ones), padded per batch:

- `tags` [B, max_units] string: the tag of every labelled unit (every
  character of a character model), "" after the text; "" everywhere for a
  pair head or the span head, which tag no sequence;
- `num_chars` [B] int32: characters (Unicode code points) per text;
- for a tokenizer that is not one token per character (WordPiece):
  `num_units` [B] int32, labelled units per text, and `unit_start`,
  `unit_end` [B, max_units] int32, the characters each covers (`end`
  inclusive, -1 padding);
- `entity_type`, `entity_text` [B, max_entities] string ("" padding);
- `entity_start`, `entity_end` [B, max_entities] int32, character offsets,
  `end` inclusive (-1 padding), ordered by start (then end and type: a pair
  head's entities may nest, cross, or share an extent);
- `entity_score` [B, max_entities] float32: for a tagging head, the mean
  over the entity's characters of the softmax probability of the chosen tag
  under the per-character tag scores (for a CRF head: the emission scores,
  not CRF marginals); for a pair head, sigmoid of the span's score; for
  the span head, the mean of the start's and the end's probability; 0
  padding;
- `num_entities` [B] int32.

`predict_ids(token_ids, padding_mask, segment_ids)` is for clients that
tokenize themselves (`[CLS] chars [SEP]`, one id per character, padded; no
windowing, so at most `max_position_embeddings` tokens): for a tagging head
it returns `tag_ids` [B, L] int32 (0 outside characters) and `tags` [B, L]
string ("" outside); for a pair head or the span head the entity outputs
above but `entity_text` (offsets count the characters after `[CLS]`).

Example:
>>> module = TextTagger.from_model_dir("runs/cluener")
>>> out = module.predict_text(tf.constant(["浙商银行企业信贷部叶老桂博士"]))
>>> out["entity_text"], out["entity_type"]   # [[b"浙商银行", b"叶老桂"]], ...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf

from kner.data.tokenizer_base import utf8_characters
from kner.data.units import LabelUnits, TokenUnits, unit_offsets
from kner.models.heads import Decoded, Spans
from kner.serving.bfloat16 import bfloat16_matmuls
from kner.serving.entities import entity_outputs, span_outputs
from kner.serving.fused_encoder import fuse_encoder_layers
from kner.serving.length_chunks import scores_by_length, spans_by_length
from kner.serving.text_units import TextUnits
from kner.serving.windows import (
    WindowPlan,
    check_window,
    default_stride,
    keep_window_spans,
    merge_windows,
    plan_windows,
    window_tokens,
)
from kner.serving.xla import compiled

if TYPE_CHECKING:
    from kner.data.tokenizer_base import Tokenizer
    from kner.models.tagger import Tagger

# Token positions x hidden width per encoder call in `predict_text`
# (kner.serving.length_chunks). Measured on CLUENER dev, batches of 32, two
# threads: chunks of 8-16 windows (350-700 positions) were best at 12L/768,
# the whole batch as one chunk (~1,800) at 4L/256 and 2L/128; 2**19 gives 683
# positions at width 768, 2,048 at 256 and 4,096 at 128.
CHUNK_WORK = 2**19

# Added to a window token's id when it is a labelled unit, through the
# chunks of a pair head's windows (vocab ids stay far below it).
_UNIT_MARK = 1 << 30

# What the encoder of an exported model may compute in.
COMPUTE_DTYPES = ("float32", "bfloat16", "int8")


def traced_once(model: Tagger) -> Callable[[dict], tf.Tensor]:
    """`model`'s call as one `tf.function` per batch structure (its keys),
    every input `[rows, positions]`: every place of the serving graph that
    runs the model calls that function, so a SavedModel holds the model's
    graph once, and with it an int8 encoder's constant kernels
    (`kner.serving.int8`), which one trace per call site held six times
    (a 12L/768 export: 492 MB)."""
    functions = {}

    def call(batch: dict) -> tf.Tensor:
        keys = tuple(sorted(batch))
        if keys not in functions:
            spec = {key: tf.TensorSpec([None, None], batch[key].dtype, name=key) for key in keys}
            functions[keys] = tf.function(model, input_signature=[spec], autograph=False)
        return functions[keys](batch)

    return call


class TextTagger(tf.Module):
    """The tagger wrapped for raw text, with windowing for long texts (see
    the module doc).

    Args:
        model: a built `kner.models.tagger.Tagger`.
        tokenizer: its tokenizer (`kner.data.tokenizer_base.Tokenizer`).
        max_seq_length: tokens per window, `[CLS]` and `[SEP]` included; at
            most the backbone's `max_position_embeddings`.
        window_stride: characters between window starts, in
            `[1, max_seq_length - 2]`; default half a window.
        variables: the tf.Variables a SavedModel of the module saves;
            default all of the model's.
        chunk_tokens: token positions per encoder call on a request's
            windows sorted by length (`kner.serving.length_chunks`); default
            `CHUNK_WORK` over the backbone's hidden width.
        units: the labelled units (`kner.data.units`); default every token.
        jit_compile: run the model call and the tag decoding under XLA, the
            batch padded to buckets (`kner.serving.xla`): per-position heads
            only (softmax, CRF, span).

    Raises:
        ValueError: for a `max_seq_length`, `window_stride` or
            `chunk_tokens` out of range, or `jit_compile` with a pair head.
    """

    def __init__(
        self,
        model: Tagger,
        tokenizer: Tokenizer,
        max_seq_length: int,
        window_stride: int | None = None,
        variables: list[tf.Variable] | None = None,
        chunk_tokens: int | None = None,
        units: LabelUnits | None = None,
        jit_compile: bool = False,
    ):
        super().__init__(name="text_tagger")
        limit = model.backbone.max_sequence_length
        if not 3 <= max_seq_length <= limit:
            raise ValueError(f"max_seq_length must be in [3, {limit}] (max_position_embeddings), got {max_seq_length}")
        self.window = max_seq_length - 2
        self.stride = default_stride(self.window) if window_stride is None else window_stride
        check_window(self.window, self.stride)
        self._set_model(model)
        if chunk_tokens is not None and chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        self.chunk_tokens = chunk_tokens if chunk_tokens is not None else CHUNK_WORK // model.backbone.hidden_dim
        # What a SavedModel of this module holds: the model's tf.Variables
        # themselves (see `_set_model`), or the ones its functions read
        # (`from_model_dir`), the tokenizer's table, the functions.
        self.model_variables = variables or [variable.value for variable in model.variables]
        self.tokenizer = tokenizer
        self.units = units or TokenUnits()
        self.max_seq_length = max_seq_length
        self.head = model.head
        if jit_compile and not self.head.per_position:
            raise ValueError(
                f"jit_compile: the {self.head.name} head decodes a variable number of spans per window, which XLA "
                "cannot compile; export it without jit_compile"
            )
        # XLA's wrapper of the tag decoding (or none), and the model call.
        self._compiled = compiled if jit_compile else None
        self._model_call = compiled(model) if jit_compile else traced_once(model)
        self._type_names = tf.constant(model.head.type_names or [""], tf.string)

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _set_model(self, model: Tagger) -> None:
        """Keeps the Keras model out of the saved object graph. A Keras 3
        variable saves a *copy* of its tf.Variable, which the TF1-style loader
        of TF Serving and `saved_model_cli run` restore while the functions
        read the originals, never restored: "Could not find variable ..."
        (keras-team/keras#19274, tensorflow/tensorflow#72963)."""
        self.model = model

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        window_stride: int | None = None,
        max_seq_length: int | None = None,
        compute_dtype: str = "float32",
        jit_compile: bool = False,
        tensor_parallel: int = 1,
    ) -> TextTagger:
        """The module of a trained `model_dir` (`max_seq_length` defaults to
        the training one). With `compute_dtype="bfloat16"` the encoder's
        weights are rounded to bfloat16 and its matmuls compute in bfloat16,
        the rest in float32 (`kner.serving.bfloat16`); with "int8" its
        projections run as dynamic int8 products (`kner.serving.int8`). The
        tag scores, decoding and span reading stay float32. Either way the
        encoder's layers run as `kner.serving.fused_encoder` layers. With
        `jit_compile` the model call and the tag decoding run under XLA
        (`kner.serving.xla`; float32 only). `tensor_parallel` splits each
        encoder layer into that many independent parts, which TensorFlow's
        inter-op threads run at once (`FusedEncoderLayer`'s `parts`).

        Raises:
            ValueError: for an unknown `compute_dtype`, another than
                float32 with `jit_compile`, `tensor_parallel` above 1 with
                `jit_compile`, parts that do not divide the heads, or what
                the constructor refuses.
        """
        from kner.models.artifacts import label_units, load_tagger

        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
        if jit_compile and compute_dtype != "float32":
            raise ValueError(
                f"jit_compile takes the float32 encoder, not {compute_dtype}: XLA's CPU backend has no "
                "int8 product and computes bfloat16 dots no faster than float32 ones"
            )
        if jit_compile and tensor_parallel > 1:
            raise ValueError(
                "tensor_parallel's parts run on TensorFlow's inter-op threads, and under jit_compile XLA runs "
                "the encoder as one kernel: choose one"
            )
        model, tokenizer, settings = load_tagger(model_dir, "bfloat16" if compute_dtype == "bfloat16" else "float32")
        if compute_dtype == "bfloat16":
            bfloat16_matmuls(model)
        fused = fuse_encoder_layers(model.backbone, compute_dtype == "int8", tensor_parallel)
        saved = fused.saved_variables(model)
        length = max_seq_length or settings["max_seq_length"]
        return cls(model, tokenizer, length, window_stride, saved, units=label_units(settings), jit_compile=jit_compile)

    def _model_inputs(self, token_ids: tf.Tensor, padding_mask: tf.Tensor, segment_ids: tf.Tensor) -> dict:
        return {
            "token_ids": tf.cast(token_ids, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32),
            "padding_mask": tf.cast(padding_mask, tf.bool),
        }

    def _scores(self, batch: dict) -> tf.Tensor:
        """The model's scores of a batch, under XLA with `jit_compile`."""
        return self._model_call(batch)

    def _window_scores(self, token_ids: tf.Tensor, padding_mask: tf.Tensor) -> tf.Tensor:
        """The head's scores of windows (`[CLS] chars [SEP]` rows): at their
        characters, from position 0."""
        return self._scores(self._model_inputs(token_ids, padding_mask, tf.zeros_like(token_ids)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
    def predict_text(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """Tags and entities of a batch of UTF-8 texts (see the module doc)."""
        # The name scopes group the graph's ops by stage for profiles
        # (bench/serving_latency.py); they change no op.
        with tf.name_scope("tokenize"):
            chars = utf8_characters(text)
            num_chars = tf.cast(chars.row_lengths(), tf.int32)
            if self.tokenizer.per_character:
                # Tokens and labelled units are the characters: nothing to map.
                ids, units, unit_outputs = self.tokenizer.character_ids(chars), None, {}
            else:
                tokens = self.tokenizer.tokenize(text)
                is_unit = self.units.starts(tokens, self.tokenizer)
                unit_start, unit_end = unit_offsets(tokens, is_unit)
                ids, units = tokens.ids, TextUnits.of(is_unit, unit_start, unit_end)
                unit_outputs = {
                    "num_units": units.count,
                    "unit_start": unit_start.to_tensor(-1),
                    "unit_end": (unit_end - 1).to_tensor(-1),
                }
        with tf.name_scope("windows"):
            plan = plan_windows(tf.cast(ids.row_lengths(), tf.int32), self.window, self.stride)
            windows = window_tokens(ids, plan, self.tokenizer.cls_id, self.tokenizer.sep_id)
        num_units = unit_outputs.get("num_units", num_chars)
        if self.head.per_position:
            decoded = self._merge_scores(windows, plan, units, chars.row_splits, num_units)
        else:
            decoded = self._merge_spans(windows, plan, units)
        tags = decoded.tags
        if tags is None:
            # A head that tags no sequence (pair heads, span): "" at every unit.
            tags = tf.fill([tf.size(num_units), tf.reduce_max(tf.concat([num_units, [0]], 0))], "")
        with tf.name_scope("entities"):
            offsets = (None, None) if units is None else (units.start, units.end)
            entities = entity_outputs(decoded, chars, self._type_names, *offsets)
        return {"tags": tags, "num_chars": num_chars, **unit_outputs, **entities}

    def _merge_scores(
        self,
        windows: tf.RaggedTensor,
        plan: WindowPlan,
        units: TextUnits | None,
        char_splits: tf.Tensor,
        num_units: tf.Tensor,
    ) -> Decoded:
        """Per-position heads: the windows' scores merged per token, the
        labelled units' taken (`units`; None: every token, a character),
        then decoded once over each whole text. (Each position's scores are
        its own, so scoring every token of a window and taking the units'
        equals scoring the units alone, as training does.)"""
        with tf.name_scope("encoder"):
            # A request too big for one encoder call runs sorted by length, in
            # chunks of `chunk_tokens` positions, so that its short texts are
            # not padded to its longest (length_chunks).
            window_scores = scores_by_length(
                self._window_scores, windows, self.tokenizer.pad_id, self.chunk_tokens, self.head.num_outputs
            )
        with tf.name_scope("merge"):
            # Whole texts again ([batch, max units, tags]), with merged scores.
            merged = merge_windows(window_scores, plan)
            if units is not None:
                merged, char_splits = tf.gather(merged, units.token), units.row_splits
            scores = tf.RaggedTensor.from_row_splits(merged, char_splits, validate=False).to_tensor()
        with tf.name_scope("decode"):
            return self.head.decode(scores, num_units, self._compiled)

    def _merge_spans(self, windows: tf.RaggedTensor, plan: WindowPlan, units: TextUnits | None) -> Decoded:
        """Heads that decode windows (GlobalPointer): each window's spans over
        its labelled units (`units`; None: every token, a character), kept
        from the window where they sit farthest from the edges, then the
        decoding option (`select`) over each whole text."""
        decode = self._window_spans
        if units is not None:
            # Each window token carries whether it is a unit in its id's high
            # bit, through the chunking (`_window_unit_spans` reads it back).
            marks = window_tokens(units.mark, plan, 0, 0).flat_values
            windows = windows.with_flat_values(windows.flat_values + _UNIT_MARK * marks)
            decode = self._window_unit_spans
        with tf.name_scope("encoder"):
            window_spans = spans_by_length(decode, windows, self.tokenizer.pad_id, self.chunk_tokens)
        with tf.name_scope("merge"):
            if units is not None:
                window_spans = units.window_tokens(window_spans, plan)
            spans = keep_window_spans(window_spans, plan, self.window, self.stride)
            if units is not None:
                spans = units.text_units(spans)
        with tf.name_scope("decode"):
            return Decoded(self.head.select(spans))

    def _window_spans(self, token_ids: tf.Tensor, padding_mask: tf.Tensor) -> Spans:
        batch = self._model_inputs(token_ids, padding_mask, tf.zeros_like(token_ids))
        return self.head.window_spans(self._scores(batch), self.model.lengths(batch))

    def _window_unit_spans(self, token_ids: tf.Tensor, padding_mask: tf.Tensor) -> Spans:
        """`_window_spans` over the units marked in the ids (`_UNIT_MARK`)."""
        is_unit = token_ids >= _UNIT_MARK
        token_ids = token_ids - tf.cast(is_unit, tf.int32) * _UNIT_MARK
        batch = self._model_inputs(token_ids, padding_mask, tf.zeros_like(token_ids))
        batch["label_mask"] = is_unit
        return self.head.window_spans(self._scores(batch), self.model.lengths(batch))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="token_ids"),
            tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
            tf.TensorSpec([None, None], tf.int32, name="segment_ids"),
        ],
        autograph=False,
    )
    def predict_ids(self, token_ids: tf.Tensor, padding_mask: tf.Tensor, segment_ids: tf.Tensor) -> dict:
        """Tag ids and tags (a tagging head), or entity spans (the others),
        of tokenized `[CLS] chars [SEP]` rows."""
        batch = self._model_inputs(token_ids, padding_mask, segment_ids)
        decoded = self.model.decode(batch, self._scores(batch), self._compiled)
        if decoded.tags is None:
            return span_outputs(decoded.spans, decoded.spans.score, self._type_names)
        at_tokens = [[0, 0], [1, 0]]  # the `[CLS]` column
        return {"tag_ids": tf.pad(decoded.tag_ids, at_tokens), "tags": tf.pad(decoded.tags, at_tokens)}

    def serving_signatures(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
        """The serving signatures: `serving_default` (text) and `predict_ids`,
        as functions (not concrete ones), so that `tf.saved_model.save`
        traces them once, with the module's functions, in its save context."""
        return {"serving_default": self.predict_text, "predict_ids": self.predict_ids}
