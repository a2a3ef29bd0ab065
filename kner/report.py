"""`python -m kner.report`: predictions against gold data, as one HTML page to look at.

    python -m kner.predict --model_dir=runs/demo --input=data/demo/dev.json \\
        --output=runs/demo/dev.predictions.jsonl --output_format=jsonl
    python -m kner.report --gold=data/demo/dev.json \\
        --predictions=runs/demo/dev.predictions.jsonl --output=runs/demo/dev.report.html

The gold file is read as `kner.train` reads data (`--input_format`,
`--input_tag_scheme`, `--lenient`); the predictions are any output of
`kner.predict` (`jsonl`, `cluener` or `submission` lines) or a column file,
joined to the gold sentences by id when every record has one (the
submission format has no text), else line by line (`kner.data.predictions`).
The page (`kner.error_report`) is self-contained: scores equal to
`kner.metrics`', the type-confusion matrix, boundary errors, and the
sentences with their gold and predicted entities side by side, filterable
by type and error kind (`report.html#type=name&kind=missed`). The scores
are also printed. Bad input is one `error: file:line: problem` line on
stderr and exit status 2, and the page is written whole or not at all.
"""

from __future__ import annotations

from absl import flags

from kner import cli
from kner.data.corpus import read_corpus
from kner.data.files import check_writable
from kner.data.predictions import read_predictions
from kner.error_report import write_report
from kner.errors import InputError, run_cli
from kner.metrics import evaluate, format_report


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (so that tests
    may import it beside other CLIs)."""
    cli.define_data_flags()
    flags.DEFINE_string("gold", None, "Labelled data: CLUENER JSON lines or a column file (see --input_format).")
    flags.DEFINE_string(
        "predictions",
        None,
        "kner.predict's output for the gold texts (jsonl, cluener or submission lines) or a column file.",
    )
    flags.DEFINE_string("output", None, "Where the HTML report goes.")
    flags.adopt_module_key_flags(cli)  # --input_format, --input_tag_scheme, --lenient in --help
    flags.mark_flags_as_required(["gold", "predictions", "output"])


def main(argv: list[str]) -> None:
    del argv
    values = flags.FLAGS
    gold = read_corpus(values.gold, values.input_format, values.input_tag_scheme, strict=not values.lenient)
    unlabelled = next((s for s in gold if s.spans is None), None)
    if unlabelled is not None:
        raise InputError(values.gold, unlabelled.line, "no label: the gold data must be labelled")
    check_writable(values.output)
    predicted, joined = read_predictions(values.predictions, gold, values.lenient)
    print(f"read {cli.count(len(gold), 'gold sentence')} from {values.gold}")
    print(f"read their predictions from {values.predictions} (joined {joined})")
    scores = evaluate([s.text for s in gold], [s.spans for s in gold], predicted)
    subtitle = f"gold {values.gold} · predictions {values.predictions}"
    write_report(values.output, gold, predicted, "kner error report", subtitle, scores)
    print(format_report(scores))
    cli.report("error report", values.output, "open it in a browser")


if __name__ == "__main__":
    define_flags()
    run_cli(main)
