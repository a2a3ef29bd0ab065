"""The kner side of the step benchmarks: a `Tagger` and kner's own training
step (`kner.training.trainer.Trainer`, `kner.training.optimization.FineTuningAdamW`), set up
as `python -m kner.train` sets them up; and of the serving benchmarks: exports
(`python -m kner.export`) and the floor of a serving call (`floor_exports`).

Example:
>>> model = tagger(bert_config, "softmax")
>>> step = train_step(model, jit_compile=True, total_steps=1000)
>>> loss, sentences, *terms = step(to_tensorflow(batch)).numpy()
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from common import BERT_VOCAB, CLUENER_TYPES, ENGLISH_CASED_VOCAB, ROOT, SHARED, bert_config

from kner.checkpoint import backbone_from_config
from kner.data.corpus import read_corpus
from kner.data.labels import LabelVocab
from kner.data.pipeline import to_features
from kner.data.tokenizer import CharTokenizer, read_vocab
from kner.data.units import WordUnits
from kner.data.wordpiece import WordPieceTokenizer
from kner.models.artifacts import dummy_batch, save_artifacts, tagger_settings
from kner.models.heads.pairs import MASKED
from kner.models.tagger import Tagger
from kner.serving.predictor import find_export
from kner.training.optimization import FineTuningAdamW, WarmupLinearDecay
from kner.training.trainer import TrainConfig, Trainer


def export(model_dir: Path, export_dir: Path, compute_dtype: str = "float32", root: Path = ROOT, *flags: str) -> Path:
    """Runs the export command users run (`python -m kner.export`, with more
    `flags` if given), of the kner checkout at `root`, unless `export_dir`
    already holds an export; returns the version directory."""
    if not export_dir.exists():
        command = [sys.executable, "-m", "kner.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}"]
        env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
        command += [f"--compute_dtype={compute_dtype}", *flags]
        subprocess.run(command, cwd=root, env=env, check=True, capture_output=True)
    return find_export(export_dir)


class _Floor(tf.Module):
    """`serving_default` of an export (`text` [batch] string in) doing only
    kner's tokenization (`tokenizer` given) or nothing but the batch size."""

    def __init__(self, tokenizer: CharTokenizer | None):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.tokenizer is None:
            return {"num_texts": tf.shape(text)[0]}
        ids = self.tokenizer(text)  # split into characters, look up their ids, as `predict_text`
        return {"token_ids": ids.to_tensor(), "num_chars": tf.cast(ids.row_lengths(), tf.int32)}


def floor_exports(vocab_file: Path, directory: Path) -> dict[str, Path]:
    """Two SavedModels with an export's serving signature, for the fixed cost
    of a call through the same machinery (session or signature): "empty"
    returns the batch size (one op), "tokenize" runs kner's tokenizer on the
    texts of `vocab_file` and returns the padded ids and character counts."""
    paths = {"empty": directory / "floor_empty", "tokenize": directory / "floor_tokenize"}
    for name, path in paths.items():
        if not (path / "saved_model.pb").exists():
            module = _Floor(CharTokenizer(vocab_file) if name == "tokenize" else None)
            tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve.get_concrete_function()})
    return paths


# WNUT-17's entity types (its train file's tags, B-/I-).
WNUT17_TYPES = ("corporation", "creative-work", "group", "location", "person", "product")


def cluener_labels() -> LabelVocab:
    """CLUENER's types in BIOS tags."""
    return LabelVocab.from_types(CLUENER_TYPES, "bios")


def tagger(bert_config: dict, head: str = "softmax", labels: LabelVocab | None = None) -> Tagger:
    """A randomly initialised tagger over `labels` (default `cluener_labels()`)."""
    model = Tagger(backbone_from_config(bert_config), labels or cluener_labels(), head=head)
    model(dummy_batch())
    return model


def random_model_dir(size: str, path: Path, head: str = "softmax", english: bool = False) -> Path:
    """A model_dir like a finished training run's, with random weights:
    `size` (common.SIZES), `head` (a `kner.models.heads.HEADS` name),
    CLUENER's labels, the BERT vocab; `english`: WNUT-17's labels (BIO),
    Google's English cased vocab and WordPiece, labels on the first sub-token
    of each word, as `flags/english_cased.cfg`. A pair head's
    `decode_threshold` is set so that it finds as many entities as CLUENER
    dev has (one per 15 characters; with random weights half of all spans
    score above 0)."""
    vocabulary = read_vocab(ENGLISH_CASED_VOCAB if english else BERT_VOCAB)
    config = bert_config(size, len(vocabulary))
    labels = LabelVocab.from_types(WNUT17_TYPES, "bio") if english else cluener_labels()
    model = tagger(config, head, labels)
    text = (WordPieceTokenizer(vocabulary, lowercase=False), WordUnits()) if english else ()
    settings = tagger_settings(model, 128, *text)
    if not model.head.tagging:
        if english:
            raise ValueError("a pair head's decode threshold is set on CLUENER dev: english=False")
        settings["decode_threshold"] = entity_rate_threshold(model, CharTokenizer(vocabulary))
    save_artifacts(path, config, vocabulary, labels, settings)
    model.save_weights(str(path / "best.weights.h5"))
    return path


def entity_rate_threshold(model: Tagger, tokenizer: CharTokenizer, chars_per_entity: int = 15) -> float:
    """The span score above which a pair head finds one span per
    `chars_per_entity` characters of the first 64 CLUENER dev texts."""
    texts = [s.text for s in read_corpus(SHARED / "cluener" / "dev.json")[:64]]
    batch = to_features({"text": tf.constant(texts)}, tokenizer)
    scores = model(batch).numpy()
    valid = np.sort(scores[scores > MASKED / 2])[::-1]
    return float(valid[sum(len(t) for t in texts) // chars_per_entity])


def train_step(
    model: Tagger,
    jit_compile: bool,
    total_steps: int,
    learning_rate: float = 1e-3,
    head_learning_rate: float = 5e-3,
    weight_decay: float = 0.01,
    warmup_proportion: float = 0.06,
    label_mask: bool = False,
):
    """kner's full training step (forward, backward, clipping, AdamW) as a
    function of one batch, traced like the trainer traces it (shapes unknown);
    `label_mask`: batches carry one (`to_tensorflow` of a batch with units)."""
    schedule = WarmupLinearDecay(learning_rate, int(total_steps * warmup_proportion), total_steps)
    head_variables = [v for layer in model.head_layers() for v in layer.trainable_variables]
    optimizer = FineTuningAdamW(
        schedule,
        weight_decay=weight_decay,
        clip_norm=1.0,
        lr_multipliers={id(v): head_learning_rate / learning_rate for v in head_variables},
    )
    optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    trainer = Trainer(model, optimizer, strategy, tempfile.mkdtemp(), TrainConfig(jit_compile=jit_compile))
    signature = {
        "token_ids": tf.TensorSpec([None, None], tf.int32),
        "segment_ids": tf.TensorSpec([None, None], tf.int32),
        "padding_mask": tf.TensorSpec([None, None], tf.bool),
        **({"label_mask": tf.TensorSpec([None, None], tf.bool)} if label_mask else {}),
        **model.targets.specs,
    }
    # The step `Trainer.fit` runs for every batch (`fit` also checkpoints and
    # evaluates, which is not timed here).
    return tf.function(trainer.train_step, input_signature=[signature])


def to_tensorflow(batch: dict) -> dict[str, tf.Tensor]:
    """A numpy batch of `common` as the features of `kner.data.pipeline`.
    Its `label_ids` are at token positions; a head reads them per unit: the
    tokens after [CLS], or those of the batch's `label_mask` in order."""
    token_ids = tf.constant(batch["token_ids"])
    features = {
        "token_ids": token_ids,
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": tf.constant(batch["padding_mask"]),
    }
    if "label_mask" in batch:
        features["label_mask"] = tf.constant(batch["label_mask"])
    if "label_ids" in batch and "label_mask" in batch:
        units = np.zeros_like(batch["label_ids"][:, 1:])
        for row, (labels, mask) in enumerate(zip(batch["label_ids"], batch["label_mask"])):
            units[row, : mask.sum()] = labels[mask]
        features["label_ids"] = tf.constant(units)
    elif "label_ids" in batch:
        features["label_ids"] = tf.constant(batch["label_ids"][:, 1:])
    return features
