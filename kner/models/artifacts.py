"""What a trained `model_dir` holds, and how to rebuild the tagger from it.

    model_dir/
      bert_config.json   the backbone's shape: its family's config (Google format;
                         `kner_layout` names ALBERT, ELECTRA or keras-hub backbones)
      vocab.txt          the tokenizer's vocabulary
      labels.json        the label vocabulary (`kner.data.labels.LabelVocab`)
      settings.json      head, dropout, max_seq_length, the head's own settings
                         (decode, and head_size, decode_threshold for GlobalPointer),
                         and the text's: tokenizer (char, wordpiece), do_lower_case,
                         label_units (tokens, words: kner.data.units)
      flags.cfg          kner's flags of the training run, paths absolute (a flagfile)
      best.weights.h5    the weights with the best dev F1 (or the last ones)
      eval_report.json   the dev report of those weights
      checkpoints/       training state, for resuming
      train/, dev/       TensorBoard summaries

Example:
>>> model, tokenizer, settings = load_tagger("runs/cluener")
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf

from kner.backbones.loader import backbone_from_config
from kner.data.files import write_text
from kner.data.labels import LabelVocab
from kner.data.tokenizer import save_vocab
from kner.data.tokenizer_base import Tokenizer
from kner.data.tokenizer_registry import make_tokenizer, tokenizer_name
from kner.data.units import LabelUnits, TokenUnits, make_units
from kner.errors import InputError
from kner.models.heads import head_class
from kner.models.tagger import Tagger

BERT_CONFIG, VOCAB, LABELS, SETTINGS, WEIGHTS = (
    "bert_config.json",
    "vocab.txt",
    "labels.json",
    "settings.json",
    "best.weights.h5",
)


def save_artifacts(
    model_dir: str | Path, bert_config: dict, vocabulary: list[str], labels: LabelVocab, settings: dict
) -> None:
    """Writes everything but the weights, which the trainer writes."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    write_text(model_dir / BERT_CONFIG, json.dumps(bert_config, indent=1))
    save_vocab(vocabulary, model_dir / VOCAB)
    labels.save(model_dir / LABELS)
    write_text(model_dir / SETTINGS, json.dumps(settings, indent=1))


def tagger_settings(
    model: Tagger, max_seq_length: int, tokenizer: Tokenizer | None = None, units: LabelUnits | None = None
) -> dict:
    """The `settings.json` of a tagger trained at `max_seq_length` on the
    text as `tokenizer` and `units` cut it (default: one labelled token per
    character, lower-cased)."""
    return {
        "head": model.head.name,
        "dropout": model.dropout.rate,
        "max_seq_length": max_seq_length,
        "tokenizer": tokenizer_name(tokenizer) if tokenizer is not None else "char",
        "do_lower_case": tokenizer.lowercase if tokenizer is not None else True,
        "label_units": (units or TokenUnits()).name,
        **model.head.settings(),
    }


def label_units(settings: dict) -> LabelUnits:
    """The labelled units a `settings.json` names (`tokens` before they were
    recorded)."""
    return make_units(settings.get("label_units", TokenUnits.name))


def dummy_batch(length: int = 8) -> dict[str, tf.Tensor]:
    """A one-sentence batch that builds a model's weights."""
    ids = tf.ones([1, length], tf.int32)
    return {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones([1, length], tf.bool)}


def load_tagger(model_dir: str | Path, dtype: str | None = None) -> tuple[Tagger, Tokenizer, dict]:
    """The trained tagger with its best weights, its tokenizer (the one
    `settings.json` names; `char`, lower-cased, before it named one) and
    settings.

    `dtype` is the backbone's Keras dtype policy (default: the global one);
    with "bfloat16" its weights are the float32 ones rounded to bfloat16 (the
    head stays float32, see `kner.models.tagger`). The head is the one
    `settings.json` names, rebuilt from its settings (`Head.from_settings`)."""
    model_dir = Path(model_dir)
    for name in (BERT_CONFIG, VOCAB, LABELS, SETTINGS, WEIGHTS):
        if not (model_dir / name).exists():
            raise InputError(model_dir / name, None, "missing: is this the model_dir of a finished training run?")
    settings = json.loads((model_dir / SETTINGS).read_text())
    previous = keras.mixed_precision.global_policy()
    if dtype:  # the families build their layers under the global policy
        keras.mixed_precision.set_global_policy(dtype)
    try:
        backbone = backbone_from_config(model_dir / BERT_CONFIG)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    labels = LabelVocab.load(model_dir / LABELS)
    try:
        head = head_class(settings["head"]).from_settings(labels, settings)
    except ValueError as error:
        raise InputError(model_dir / SETTINGS, None, str(error)) from None
    model = Tagger(backbone, labels, head=head, dropout=settings["dropout"])
    model(dummy_batch())
    model.load_weights(str(model_dir / WEIGHTS))
    try:
        kind, lowercase = settings.get("tokenizer", "char"), settings.get("do_lower_case", True)
        tokenizer = make_tokenizer(kind, model_dir / VOCAB, lowercase)
    except ValueError as error:
        raise InputError(model_dir / SETTINGS, None, str(error)) from None
    return model, tokenizer, settings
