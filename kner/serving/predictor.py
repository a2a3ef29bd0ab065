"""Entities of raw texts through the serving graph: `kner.Predictor`.

`Predictor` runs the graph of `kner.serving.TextTagger`: built in-process
from a trained model_dir, or loaded from an export (`kner.export`), so the
Python API, the exported SavedModel and TF Serving give the same answers.

Offsets count Unicode code points, like Python's `str`. A lone surrogate
(which has no UTF-8 form) is sent to the graph as U+FFFD, one character for
one, so offsets and `len(tags) == len(text)` still hold, and the entity
texts are sliced from the original string.

Example:
>>> predictor = Predictor.from_dir("runs/cluener")  # or an export dir
>>> predictor.predict(["浙商银行企业信贷部叶老桂博士"])
[[Entity(type='company', start=0, end=3, text='浙商银行', score=0.98),
  Entity(type='name', start=9, end=11, text='叶老桂', score=0.99)]]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import tensorflow as tf

from kner.errors import InputError
from kner.models.artifacts import SETTINGS
from kner.startup_noise import notices_hidden

_SURROGATES = re.compile("[\ud800-\udfff]")


class Entity(NamedTuple):
    """An entity found in a text: `text[start : end + 1] == entity.text`."""

    type: str
    start: int
    end: int  # inclusive
    text: str
    # Tagging heads: mean probability of the chosen tags over its characters; pair heads: sigmoid(score); span:
    # mean probability of its start and its end.
    score: float


class Prediction(NamedTuple):
    """The tag of every labelled unit of a text (None for a head that tags no
    sequence: GlobalPointer), and its entities. Units are the characters of
    a character model, the sub-tokens or the words of a WordPiece one
    (`kner.data.units`; the export's `unit_start`, `unit_end` say where)."""

    tags: list[str] | None
    entities: list[Entity]


def find_export(path: str | Path) -> Path | None:
    """The SavedModel at `path`: `path` itself when it holds `saved_model.pb`,
    else its highest integer version subdirectory that does; None if none."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    if not path.is_dir():
        return None
    found = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    return max(found, key=lambda p: int(p.name), default=None)


class Predictor:
    """Entities of raw texts, through the exported graph.

    Args:
        module: a `kner.serving.TextTagger`, or its export loaded with
            `tf.saved_model.load`; anything with its `predict_text`.
    """

    # Whether a graph has run in this process: TensorFlow's first run prints
    # a notice (kner.startup_noise), hidden like those of loading.
    _graph_ran = False

    def __init__(self, module: tf.Module):
        self.module = module
        # A pair or span head's export answers `predict_ids` with entities, not tags.
        head = getattr(module, "head", None)
        self.tagging = head.tagging if head is not None else _tags_by_ids(module)

    @classmethod
    def from_dir(cls, path: str | Path, window_stride: int | None = None) -> Predictor:
        """A model_dir (the graph is built here, with `window_stride` if
        given) or an export: a version directory or the base directory
        holding versions (the highest is loaded)."""
        path = Path(path)
        if (path / SETTINGS).is_file():
            from kner.serving.text_tagger import TextTagger

            with notices_hidden():
                return cls(TextTagger.from_model_dir(path, window_stride))
        export = find_export(path)
        if export is None:
            raise InputError(path, None, "neither a model_dir (no settings.json) nor an export (no saved_model.pb)")
        if window_stride is not None:
            raise ValueError("window_stride is fixed when exporting (kner.export --window_stride)")
        _check_compute_dtype(export)
        with notices_hidden():
            return cls(tf.saved_model.load(str(export)))

    def _call(self, encoded: list[bytes]) -> dict:
        if Predictor._graph_ran:
            return self.module.predict_text(tf.constant(encoded, tf.string))
        with notices_hidden():
            outputs = self.module.predict_text(tf.constant(encoded, tf.string))
        Predictor._graph_ran = True
        return outputs

    def run(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], object] | None = None
    ) -> list[Prediction]:
        """Tags and entities of each text. Texts are batched by length (the
        results keep the input order); `progress(done)` is called after each
        batch with the number of texts done."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Prediction | None] = [None] * len(texts)
        for begin in range(0, len(order), batch_size):
            batch = order[begin : begin + batch_size]
            encoded = [_SURROGATES.sub("\ufffd", texts[i]).encode("utf-8") for i in batch]
            outputs = {k: v.numpy() for k, v in self._call(encoded).items()}
            for row, i in enumerate(batch):
                results[i] = _prediction(texts[i], outputs, row, self.tagging)
            if progress is not None:
                progress(begin + len(batch))
        return results

    def predict(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], object] | None = None
    ) -> list[list[Entity]]:
        """The entities of each text."""
        return [prediction.entities for prediction in self.run(texts, batch_size, progress)]


def _check_compute_dtype(export: Path) -> None:
    """An int8 export's product needs oneDNN (`kner.serving.int8`): refused
    here, before a call fails inside TensorFlow."""
    from kner.serving.int8 import check_onednn
    from kner.serving.saved_model import SOURCE

    source = export / SOURCE
    if source.is_file() and json.loads(source.read_text(encoding="utf-8")).get("compute_dtype") == "int8":
        try:
            check_onednn()
        except ValueError as error:
            raise InputError(export, None, str(error)) from None


def _tags_by_ids(module: tf.Module) -> bool:
    """Whether a loaded export's `predict_ids` returns tags."""
    return "tag_ids" in module.signatures["predict_ids"].structured_outputs


def _prediction(text: str, outputs: dict, row: int, tagging: bool) -> Prediction:
    units = outputs["num_units"][row] if "num_units" in outputs else outputs["num_chars"][row]  # older exports
    tags = [tag.decode() for tag in outputs["tags"][row, :units]] if tagging else None
    entities = []
    for k in range(outputs["num_entities"][row]):
        start, end = int(outputs["entity_start"][row, k]), int(outputs["entity_end"][row, k])
        entity_type = outputs["entity_type"][row, k].decode()
        entities.append(Entity(entity_type, start, end, text[start : end + 1], float(outputs["entity_score"][row, k])))
    return Prediction(tags, entities)
