"""Predicting entities: the Python API (`Predictor`) and `python -m kner.predict`.

`Predictor` runs the graph of `kner.serving.TextTagger`: built in-process
from a trained model_dir, or loaded from an export (`kner.export`), so the
Python API, the exported SavedModel and TF Serving give the same answers.

    python -m kner.predict --model_dir=runs/cluener \\
        --input=test.json --output=submission.json --output_format=submission
    python -m kner.predict --export_dir=serving/kner --input=texts.txt --output=out.jsonl --output_format=jsonl

Input is CLUENER JSON lines (labelled or not) or plain text, one text per
line (blank lines are empty texts, so output line i answers input line i);
`--input_format=auto` reads JSON objects as CLUENER and anything else as
text. Output is CLUENER JSON lines with the predicted `label`, the
leaderboard's submission format (`{"id", "label"}`; texts without an id are
numbered from 0), or JSON lines with the entities' offsets and scores. When
every input text has labels, the evaluation against them is printed.

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
from absl import flags

from kner.artifacts import SETTINGS
from kner.corpus import Sentence, read_corpus, write_cluener
from kner.errors import InputError, run_cli
from kner.spans import Span

INPUT_FORMATS = ("auto", "cluener", "text")
OUTPUT_FORMATS = ("cluener", "submission", "jsonl")
_SURROGATES = re.compile("[\ud800-\udfff]")


class Entity(NamedTuple):
    """An entity found in a text: `text[start : end + 1] == entity.text`."""

    type: str
    start: int
    end: int  # inclusive
    text: str
    score: float  # mean probability of the chosen tags over its characters


class Prediction(NamedTuple):
    """The tag of every character of a text, and its entities."""

    tags: list[str]
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

    def __init__(self, module: tf.Module):
        self.module = module

    @classmethod
    def from_dir(cls, path: str | Path, window_stride: int | None = None) -> Predictor:
        """A model_dir (the graph is built here, with `window_stride` if
        given) or an export: a version directory or the base directory
        holding versions (the highest is loaded)."""
        path = Path(path)
        if (path / SETTINGS).is_file():
            from kner.serving import TextTagger

            return cls(TextTagger.from_model_dir(path, window_stride))
        export = find_export(path)
        if export is None:
            raise InputError(path, None, "neither a model_dir (no settings.json) nor an export (no saved_model.pb)")
        if window_stride is not None:
            raise ValueError("window_stride is fixed when exporting (kner.export --window_stride)")
        return cls(tf.saved_model.load(str(export)))

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
            outputs = {k: v.numpy() for k, v in self.module.predict_text(tf.constant(encoded, tf.string)).items()}
            for row, i in enumerate(batch):
                results[i] = _prediction(texts[i], outputs, row)
            if progress is not None:
                progress(begin + len(batch))
        return results

    def predict(
        self, texts: Sequence[str], batch_size: int = 32, progress: Callable[[int], object] | None = None
    ) -> list[list[Entity]]:
        """The entities of each text."""
        return [prediction.entities for prediction in self.run(texts, batch_size, progress)]


def _prediction(text: str, outputs: dict, row: int) -> Prediction:
    tags = [tag.decode() for tag in outputs["tags"][row, : outputs["num_chars"][row]]]
    entities = []
    for k in range(outputs["num_entities"][row]):
        start, end = int(outputs["entity_start"][row, k]), int(outputs["entity_end"][row, k])
        entity_type = outputs["entity_type"][row, k].decode()
        entities.append(Entity(entity_type, start, end, text[start : end + 1], float(outputs["entity_score"][row, k])))
    return Prediction(tags, entities)


def read_texts(path: str | Path, input_format: str = "auto") -> list[Sentence]:
    """Sentences to tag: CLUENER JSON lines (spans when labelled) or plain
    text, one text per line (spans None)."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {INPUT_FORMATS}")
    try:
        content = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InputError.from_os_error(path, error) from None
    except UnicodeDecodeError as error:
        raise InputError(path, None, f"not valid UTF-8 ({error.reason})") from None
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if input_format == "auto":
        input_format = "cluener" if _is_json_object(next((x for x in lines if x.strip()), "")) else "text"
    if input_format == "cluener":
        return read_corpus(path, "cluener")
    if not lines:
        raise InputError(path, None, "file is empty")
    return [Sentence(line.removesuffix("\r"), None, None, str(path), n) for n, line in enumerate(lines, 1)]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def write_predictions(
    path: str | Path, sentences: Sequence[Sentence], predictions: Sequence[Sequence[Entity]], output_format: str
) -> None:
    """Writes predicted entities as `cluener`, `submission` or `jsonl` lines."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; expected one of {OUTPUT_FORMATS}")
    if output_format == "jsonl":
        with open(path, "w", encoding="utf-8") as out:
            for sentence, entities in zip(sentences, predictions, strict=True):
                record = {} if sentence.id is None else {"id": sentence.id}
                record["text"] = sentence.text
                record["entities"] = [{**e._asdict(), "score": round(e.score, 4)} for e in entities]
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    submission = output_format == "submission"
    predicted = [
        Sentence(s.text, [Span(e.start, e.end, e.type) for e in entities], i if submission and s.id is None else s.id)
        for i, (s, entities) in enumerate(zip(sentences, predictions, strict=True))
    ]
    write_cluener(path, predicted, submission=submission)


def evaluate_predictions(sentences: Sequence[Sentence], predictions: Sequence[Sequence[Entity]]) -> dict | None:
    """The evaluation report (`kner.metrics.evaluate`) when every sentence is
    labelled, else None."""
    if not sentences or any(s.spans is None for s in sentences):
        return None
    from kner.metrics import evaluate

    predicted = [[Span(e.start, e.end, e.type) for e in entities] for entities in predictions]
    return evaluate([s.text for s in sentences], [s.spans for s in sentences], predicted)


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (`kner.train`
    has its own `--model_dir`, `--export_dir` and `--batch_size`)."""
    flags.DEFINE_string("model_dir", None, "A trained model_dir (the graph is built in-process).")
    flags.DEFINE_string("export_dir", None, "An export (kner.export): a version dir or the base dir (latest version).")
    flags.DEFINE_string("input", None, "Texts: CLUENER JSON lines (labelled or not) or plain text, one per line.")
    flags.DEFINE_string("output", None, "Where the predictions go.")
    flags.DEFINE_enum("input_format", "auto", list(INPUT_FORMATS), "auto: JSON objects mean cluener, else text.")
    flags.DEFINE_enum("output_format", "cluener", list(OUTPUT_FORMATS), "CLUENER lines, a submission, or JSON lines.")
    flags.DEFINE_integer("batch_size", 32, "Texts per batch.")
    flags.DEFINE_integer("window_stride", None, "With --model_dir: characters between window starts (default half).")
    flags.mark_flags_as_required(["input", "output"])
    flags.mark_flags_as_mutual_exclusive(["model_dir", "export_dir"], required=True)


def main(argv: list[str]) -> None:
    del argv
    import keras  # for its progress bar; not needed by the Python API

    values = flags.FLAGS
    sentences = read_texts(values.input, values.input_format)
    if values.window_stride is not None and values.export_dir:
        raise InputError(values.export_dir, None, "--window_stride applies to --model_dir only (fixed at export)")
    try:
        predictor = Predictor.from_dir(values.model_dir or values.export_dir, values.window_stride)
    except InputError:
        raise
    except ValueError as error:  # a window stride the model cannot take
        raise InputError(values.model_dir, None, str(error)) from None
    bar = keras.utils.Progbar(len(sentences), unit_name="text")
    predictions = predictor.predict([s.text for s in sentences], values.batch_size, progress=bar.update)
    write_predictions(values.output, sentences, predictions, values.output_format)
    report = evaluate_predictions(sentences, predictions)
    print(f"wrote {len(sentences)} predictions to {values.output}")
    if report is not None:
        from kner.metrics import format_report

        print(format_report(report))


if __name__ == "__main__":
    define_flags()
    run_cli(main)
