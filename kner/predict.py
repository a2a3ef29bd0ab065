"""`python -m kner.predict`: entities of texts in a file, written to a file.

    python -m kner.predict --model_dir=runs/cluener \\
        --input=test.json --output=submission.json --output_format=submission
    python -m kner.predict --export_dir=serving/kner --input=texts.txt --output=out.jsonl --output_format=jsonl

Input is CLUENER JSON lines (labelled or not), CMeEE JSON (a list of
`{"text", "entities"}`), CoNLL word columns (`--input_format=conll`: the
words joined by one space are the text) or plain text, one text per line
(blank lines are empty texts, so output line i answers input line i);
`--input_format=auto` reads JSON objects as CLUENER, a JSON list as CMeEE and
anything else as text. Output is CLUENER JSON lines with the predicted
`label`, the leaderboard's submission format (`{"id", "label"}`; texts
without an id are numbered from 0), CMeEE JSON, CoNLL columns (`word tag`,
one tag per word in BIO, for CoNLL input), or JSON lines with the entities'
offsets and scores. Entities of CoNLL input cover whole words (a predicted
span widens to the words it overlaps), and are scored over words. When
every input text has labels, the evaluation against them is printed: exact
(start, end, type) spans, nested ones counted.
Text UTF-8 cannot encode is an error naming `file:line` before the model
loads (`--lenient` replaces it with U+FFFD), the output path is checked to
be writable first, and the output is written whole or not at all. The
Python API is `kner.Predictor` (`kner.serving.predictor`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from kner import cli
from kner.data.corpus import Sentence, read_corpus, write_cluener, write_cmeee, write_column
from kner.data.files import atomic_output, check_writable, numbered_lines
from kner.data.spans import Span
from kner.data.words import snap_to_words
from kner.errors import InputError, run_cli
from kner.serving.predictor import Entity, Predictor, find_export

INPUT_FORMATS = ("auto", "cluener", "cmeee", "conll", "text")
OUTPUT_FORMATS = ("cluener", "submission", "cmeee", "conll", "jsonl")


def read_texts(path: str | Path, input_format: str = "auto", lenient: bool = False) -> list[Sentence]:
    """Sentences to tag: CLUENER JSON lines or CMeEE JSON (spans when
    labelled), or plain text, one text per line (spans None). Text UTF-8
    cannot encode is an InputError naming `file:line`, or with `lenient`
    replaced by U+FFFD (see `kner.data.files`)."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {input_format!r}; expected one of {INPUT_FORMATS}")
    lines = [line for _, line in numbered_lines(path, lenient)]
    if input_format == "auto":
        input_format = _json_format(lines)
    if input_format != "text":
        return read_corpus(path, input_format, strict=not lenient)
    return [Sentence(line, None, None, str(path), n) for n, line in enumerate(lines, 1)]


def _json_format(lines: list[str]) -> str:
    """cluener when the first non-blank line is a JSON object, cmeee when the
    whole file is a JSON list, else text."""
    first = next((x for x in lines if x.strip()), "")
    try:
        if isinstance(json.loads(first), dict):
            return "cluener"
    except ValueError:
        pass
    if first.lstrip().startswith("["):
        try:
            return "cmeee" if isinstance(json.loads("\n".join(lines)), list) else "text"
        except ValueError:
            return "text"
    return "text"


def write_predictions(
    path: str | Path, sentences: Sequence[Sentence], predictions: Sequence[Sequence[Entity]], output_format: str
) -> None:
    """Writes predicted entities as `cluener`, `submission`, `cmeee`,
    `conll` (word-level sentences only) or `jsonl`."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; expected one of {OUTPUT_FORMATS}")
    if output_format == "jsonl":
        with atomic_output(path) as out:
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
    if output_format == "cmeee":
        write_cmeee(path, predicted)
    elif output_format == "conll":
        if any(s.words is None for s in sentences):
            raise InputError("--output_format=conll", None, "CoNLL output needs CoNLL input (--input_format=conll)")
        words = [dataclasses.replace(p, words=s.words) for p, s in zip(predicted, sentences)]
        write_column(path, words, "bio")
    else:
        write_cluener(path, predicted, submission=submission)


def evaluate_predictions(sentences: Sequence[Sentence], predictions: Sequence[Sequence[Entity]]) -> dict | None:
    """The evaluation report (`kner.metrics.evaluate`) when every sentence is
    labelled, else None."""
    if not sentences or any(s.spans is None for s in sentences):
        return None
    from kner.metrics import evaluate

    predicted = [[Span(e.start, e.end, e.type) for e in entities] for entities in predictions]
    return evaluate([s.text for s in sentences], [s.spans for s in sentences], predicted)


def on_words(sentences: Sequence[Sentence], predictions: list[list[Entity]]) -> list[list[Entity]]:
    """Entities of word-level sentences widened to whole words
    (`kner.data.words.snap_to_words`); the others as they are."""
    result = []
    for sentence, entities in zip(sentences, predictions, strict=True):
        if sentence.words is not None:
            widened = []
            for e in entities:
                for span in snap_to_words([Span(e.start, e.end, e.type)], sentence.words):
                    widened.append(
                        e._replace(start=span.start, end=span.end, text=sentence.text[span.start : span.end + 1])
                    )
            entities = widened
        result.append(entities)
    return result


def describe_model(model_dir: str | None, export_dir: str | None) -> None:
    """Says which model tags: the model_dir, or the export's version and the
    model_dir it was exported from (`kner.serving.saved_model.export_source`)."""
    from kner.serving.saved_model import export_source

    if model_dir:
        cli.report("model", Path(model_dir), "built in-process")
        return
    version = find_export(export_dir)
    source = export_source(version)
    cli.report("model", version, f"exported from {source['model_dir']}" if source else "export")


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (`kner.train`
    has its own `--model_dir`, `--export_dir` and `--batch_size`)."""
    flags.DEFINE_string("model_dir", None, "A trained model_dir (the graph is built in-process).")
    flags.DEFINE_string("export_dir", None, "An export (kner.export): a version dir or the base dir (latest version).")
    flags.DEFINE_string(
        "input",
        None,
        "Texts: CLUENER JSON lines, CMeEE JSON or CoNLL columns (labelled or not), or plain text, one per line.",
    )
    flags.DEFINE_string("output", None, "Where the predictions go.")
    flags.DEFINE_enum(
        "input_format", "auto", list(INPUT_FORMATS), "auto: JSON objects mean cluener, a JSON list cmeee, else text."
    )
    flags.DEFINE_enum(
        "output_format",
        "cluener",
        list(OUTPUT_FORMATS),
        "CLUENER lines, a submission, CMeEE JSON, CoNLL columns (word tag, for CoNLL input), or JSON lines.",
    )
    flags.DEFINE_integer("batch_size", 32, "Texts per batch.")
    flags.DEFINE_bool("lenient", False, "Replace text UTF-8 cannot encode by U+FFFD (counted) instead of failing.")
    flags.DEFINE_integer("window_stride", None, "With --model_dir: characters between window starts (default half).")
    flags.mark_flags_as_required(["input", "output"])
    flags.mark_flags_as_mutual_exclusive(["model_dir", "export_dir"], required=True)


def main(argv: list[str]) -> None:
    del argv
    cli.quiet_tensorflow()
    import keras  # for its progress bar; not needed by the Python API

    values = flags.FLAGS
    sentences = read_texts(values.input, values.input_format, values.lenient)
    check_writable(values.output)  # before the model runs, not after
    if values.window_stride is not None and values.export_dir:
        raise InputError(values.export_dir, None, "--window_stride applies to --model_dir only (fixed at export)")
    try:
        predictor = Predictor.from_dir(values.model_dir or values.export_dir, values.window_stride)
    except InputError:
        raise
    except ValueError as error:  # a window stride the model cannot take
        raise InputError(values.model_dir, None, str(error)) from None
    describe_model(values.model_dir, values.export_dir)
    # A live bar on a terminal; one line at the end otherwise (no ANSI codes in a log).
    bar = keras.utils.Progbar(len(sentences), verbose=1 if sys.stdout.isatty() else 2, unit_name="text")
    predictions = predictor.predict([s.text for s in sentences], values.batch_size, progress=bar.update)
    predictions = on_words(sentences, predictions)
    write_predictions(values.output, sentences, predictions, values.output_format)
    report = evaluate_predictions(sentences, predictions)
    print(f"wrote {cli.count(len(sentences), 'prediction')} to {values.output}")
    if report is not None:
        from kner.metrics import format_report

        print(format_report(report))


if __name__ == "__main__":
    define_flags()
    run_cli(main)
