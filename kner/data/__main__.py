"""Command line tools for NER corpora: statistics, conversion, validation.

Usage:

```
python -m kner.data stats ../shared/data/cluener/train.json
python -m kner.data convert IN OUT --output_format=bioes   # or cluener, bio, bios, bmes
python -m kner.data convert people.txt people.json --output_format=cluener --lenient
python -m kner.data convert eng.train eng.bioes --input_tag_scheme=iob1 --output_format=bioes  # CoNLL-2003
python -m kner.data validate dev.json   # "OK: ..." or one error line, exit 2
```

The input format and tag scheme are detected unless `--input_format` and
`--input_tag_scheme` say otherwise. Invalid tag sequences and text UTF-8
cannot encode (a broken `\\u` escape in JSON, a line that is not UTF-8) are
errors unless `--lenient` is given, which repairs them and logs how many.
`validate` reads a file exactly as `kner.train` and `kner.predict` do, so a
file it passes does not fail them at reading. `convert` writes its output
whole or not at all.
"""

import collections
import math
from collections.abc import Sequence

from absl import app, flags, logging

from kner import cli
from kner.data.corpus import Sentence, read_corpus, write_cluener, write_column
from kner.data.files import check_writable
from kner.data.spans import flatten_spans
from kner.data.tags import SCHEMES
from kner.errors import InputError, run_cli

cli.define_data_flags()
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS
_OUTPUT_FORMAT = flags.DEFINE_enum(
    "output_format",
    None,
    ("cluener", *SCHEMES),
    "convert: CLUENER JSON lines, or a column file in this tag scheme (one tag per word for CoNLL input, "
    "per character otherwise).",
)
_COMMANDS = {"stats": 1, "convert": 2, "validate": 1}
PERCENTILES = (50, 90, 95, 99)


def _read(path: str) -> list[Sentence]:
    return read_corpus(path, FLAGS.input_format, FLAGS.input_tag_scheme, not FLAGS.lenient)


def _percentile(ordered: Sequence[int], percent: float) -> int:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def describe(sentences: Sequence[Sentence]) -> str:
    """A report of sentence, word (for word-level data), character and
    entity counts; lengths are in characters."""
    lengths = sorted(len(sentence.text) for sentence in sentences)
    spread = "  ".join(f"p{p} {_percentile(lengths, p)}" for p in PERCENTILES)
    counts = collections.Counter(span.type for sentence in sentences for span in sentence.spans or ())
    lines = [f"sentences   {len(sentences)}"]
    if any(sentence.words is not None for sentence in sentences):
        lines.append(f"words       {sum(len(sentence.words or ()) for sentence in sentences)}")
    lines += [
        f"characters  {sum(lengths)}",
        f"length      {spread}  max {lengths[-1]}",
    ]
    if all(sentence.spans is None for sentence in sentences):
        return "\n".join([*lines, "entities    none (unlabelled)"])
    lines.append(f"entities    {counts.total()} in {len(counts)} types")
    width = max((len(name) for name in counts), default=0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    lines += [f"  {name:<{width}}  {count:>6}" for name, count in ranked]
    return "\n".join(lines)


def _convert(source: str, target: str) -> None:
    if _OUTPUT_FORMAT.value is None:
        raise app.UsageError("convert needs --output_format")
    check_writable(target)
    sentences = _read(source)
    try:
        if _OUTPUT_FORMAT.value == "cluener":
            write_cluener(target, sentences)
        else:
            dropped = sum(flatten_spans(s.spans or ())[1] for s in sentences)
            if dropped:
                logging.warning("dropped %s nested in another", cli.count(dropped, "entity", "entities"))
            write_column(target, sentences, _OUTPUT_FORMAT.value)
    except ValueError as error:
        raise InputError(source, None, f"cannot write {_OUTPUT_FORMAT.value}: {error}") from None
    print(f"wrote {cli.count(len(sentences), 'sentence')} to {target} ({_OUTPUT_FORMAT.value})")


def _validate(path: str) -> None:
    sentences = _read(path)
    if all(sentence.spans is None for sentence in sentences):
        print(f"OK: {cli.count(len(sentences), 'sentence')}, unlabelled")
        return
    entities = sum(len(sentence.spans or ()) for sentence in sentences)
    print(f"OK: {cli.count(len(sentences), 'sentence')}, {cli.count(entities, 'entity', 'entities')}")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in _COMMANDS:
        raise app.UsageError(f"expected a command: {', '.join(_COMMANDS)}")
    command, args = argv[1], argv[2:]
    if len(args) != _COMMANDS[command]:
        raise app.UsageError(f"{command} takes {_COMMANDS[command]} file argument(s)")
    if command == "stats":
        print(describe(_read(args[0])))
    elif command == "convert":
        _convert(*args)
    else:
        _validate(*args)


if __name__ == "__main__":
    run_cli(main, takes_arguments=True)
