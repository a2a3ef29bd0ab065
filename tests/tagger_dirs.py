"""Tiny trained-or-random `model_dir`s for the serving, export and predict tests.

`position_wise=True` builds a tagger whose scores at a character depend on
that character only: attention adds nothing (its output projection is frozen
at zero) and every position embedding is the same. Such a model gives the
same scores in a window as in the whole text, so windowed predictions must
equal whole-text ones exactly, CRF decoding included. (A GlobalPointer's
score of a span then depends on its two end characters and its length only:
rotary embeddings are relative.)

Pair heads train on nested toy data: some places are inside an
organisation (`北京大学`, an org holding the loc `北京`).
"""

from __future__ import annotations

import random
from pathlib import Path

import keras
import tensorflow as tf

from kner.checkpoint import backbone_from_config
from kner.data.corpus import Sentence
from kner.data.labels import LabelVocab
from kner.data.pipeline import make_dataset
from kner.data.spans import Span
from kner.data.tokenizer import CharTokenizer, build_vocab
from kner.models import artifacts
from kner.models.heads import head_class
from kner.models.tagger import Tagger

FILLER = "的是在了有和这中大为个我以要他时来用们生到作于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学"
NAMES = ("张三", "李小四", "王五")
PLACES = ("北京", "上海市", "杭州")
TYPES = ("loc", "name")
NESTED_TYPES = ("loc", "name", "org")


def tiny_config(vocab_size: int, max_position_embeddings: int = 64, layers: int = 1) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": max_position_embeddings,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
    }


def toy_sentence(rng: random.Random, max_entities: int = 2) -> Sentence:
    """Filler characters with up to `max_entities` names and places."""
    text, spans = "", []
    for _ in range(rng.randint(0, max_entities)):
        text += "".join(rng.choices(FILLER, k=rng.randint(0, 6)))
        entity_type, entity = rng.choice([("name", n) for n in NAMES] + [("loc", p) for p in PLACES])
        spans.append(Span(len(text), len(text) + len(entity) - 1, entity_type))
        text += entity
    text += "".join(rng.choices(FILLER, k=rng.randint(0, 6)))
    return Sentence(text, spans)


def toy_nested_sentence(rng: random.Random, max_entities: int = 2) -> Sentence:
    """A toy sentence whose places are half the time inside an organisation
    (the place + 大学)."""
    sentence = toy_sentence(rng, max_entities)
    text, spans, shift = sentence.text, [], 0
    for span in sentence.spans:
        span = Span(span.start + shift, span.end + shift, span.type)
        spans.append(span)
        if span.type == "loc" and rng.random() < 0.5:
            text = text[: span.end + 1] + "大学" + text[span.end + 1 :]
            spans.append(Span(span.start, span.end + 2, "org"))
            shift += 2
    return Sentence(text, spans)


def toy_vocabulary() -> list[str]:
    return build_vocab([FILLER, *NAMES, *PLACES, "abcABC0123 "])


def _make_position_wise(model: Tagger) -> None:
    backbone = model.backbone
    table = backbone.position_embedding.position_embeddings
    table.assign(tf.tile(table[:1], [table.shape[0], 1]))
    backbone.position_embedding.trainable = False
    for layer in backbone.transformer_layers:
        dense = layer._self_attention_layer._output_dense
        for weight in dense.weights:
            weight.assign(tf.zeros_like(weight))
        dense.trainable = False


def build_model_dir(
    path: Path,
    scheme: str = "bios",
    head: str = "crf",
    decoding: str | None = None,
    max_seq_length: int = 16,
    max_position_embeddings: int = 64,
    layers: int = 1,
    position_wise: bool = False,
    train_steps: int = 0,
    seed: int = 0,
) -> Path:
    """A model_dir with random weights, or trained `train_steps` steps on toy
    sentences (names and places among filler characters)."""
    keras.utils.set_random_seed(seed)
    vocabulary = toy_vocabulary()
    config = tiny_config(len(vocabulary), max_position_embeddings, layers)
    nested = head_class(head).nested
    labels = LabelVocab.from_types(NESTED_TYPES if nested else TYPES, scheme)
    model = Tagger(backbone_from_config(config), labels, head=head, dropout=0.0, decoding=decoding, head_size=16)
    model(artifacts.dummy_batch())
    if position_wise:
        _make_position_wise(model)
    if train_steps:
        _train(model, CharTokenizer(vocabulary), train_steps, max_seq_length, seed, nested)
    artifacts.save_artifacts(path, config, vocabulary, labels, artifacts.tagger_settings(model, max_seq_length))
    model.save_weights(str(Path(path) / artifacts.WEIGHTS))
    return Path(path)


def _train(model: Tagger, tokenizer: CharTokenizer, steps: int, max_seq_length: int, seed: int, nested: bool):
    rng = random.Random(seed)
    sentences = [(toy_nested_sentence if nested else toy_sentence)(rng) for _ in range(400)]
    dataset, _ = make_dataset(
        sentences, tokenizer, model.targets, batch_size=16, max_seq_length=max_seq_length, training=True, seed=seed
    )
    optimizer = keras.optimizers.Adam(0.01)

    @tf.function(input_signature=[dataset.element_spec])
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.loss_sum(batch, model(batch, training=True)) / model.loss_count(batch)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for batch in dataset.repeat().take(steps):
        step(batch)


def cached_model_dir(base: Path, name: str, **kwargs) -> Path:
    """`build_model_dir(base / name, **kwargs)`, built once per test session
    (`base`: the session's temp root) and shared by the test modules."""
    path = Path(base) / name
    if not (path / artifacts.WEIGHTS).exists():
        build_model_dir(path, **kwargs)
    return path


def cached_export(base: Path, name: str, model_dir: Path) -> Path:
    """`kner.export.export_model(model_dir, base / name)` (version 1), once per
    test session."""
    from kner.serving.saved_model import export_model

    path = Path(base) / name
    if not (path / "1" / "saved_model.pb").exists():
        export_model(model_dir, path)
    return path


def toy_dir(base: Path, head: str = "crf") -> Path:
    """The session's trained toy model: names and places among filler (for a
    pair head also organisations holding places), scores depending on the
    character only, windows of 14 characters."""
    name = "toy" if head == "crf" else f"toy_{head}"
    steps = 60 if head == "crf" else 150
    return cached_model_dir(
        base, name, head=head, train_steps=steps, position_wise=True, max_position_embeddings=4096, max_seq_length=16
    )


def english_model_dir(
    path: Path, vocab: Path, head: str = "softmax", label_units: str = "words", max_seq_length: int = 8, **options
) -> Path:
    """A model_dir over Google's English cased vocab with WordPiece (not
    lower-cased), random weights, 1 layer; windows of `max_seq_length - 2`
    sub-tokens."""
    from kner.data.tokenizer_registry import make_tokenizer
    from kner.data.units import make_units

    keras.utils.set_random_seed(0)
    tokenizer = make_tokenizer("wordpiece", vocab, lowercase=False)
    config = tiny_config(tokenizer.vocabulary_size, 64)
    labels = LabelVocab.from_types(["person"], "bio")
    model = Tagger(backbone_from_config(config), labels, head=head, dropout=0.0, head_size=16, **options)
    model(artifacts.dummy_batch())
    settings = artifacts.tagger_settings(model, max_seq_length, tokenizer, make_units(label_units))
    artifacts.save_artifacts(path, config, tokenizer.vocabulary, labels, settings)
    return model, Path(path)
