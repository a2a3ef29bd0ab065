"""Command line tools for NER corpora: statistics, conversion, validation,
and carving a dev split.

Usage:

```
python -m kner.data stats ../shared/data/cluener/train.json
python -m kner.data convert IN OUT --output_format=bioes   # or cluener, cmeee, bio, bios, bmes
python -m kner.data convert people.txt people.json --output_format=cluener --lenient
python -m kner.data convert eng.train eng.bioes --input_tag_scheme=iob1 --output_format=bioes  # CoNLL-2003
python -m kner.data validate dev.json   # "OK: ..." or one error line, exit 2
python -m kner.data split ../shared/data/cmeee/train.json train.json dev.json \\
    --dev_size=1000 --train_size=5000 --seed=42 --lenient
```

The input format and tag scheme are detected unless `--input_format` and
`--input_tag_scheme` say otherwise. Invalid tag sequences and text UTF-8
cannot encode (a broken `\\u` escape in JSON, a line that is not UTF-8) are
errors unless `--lenient` is given, which repairs them and logs how many.
`validate` reads a file exactly as `kner.train` and `kner.predict` do, so a
file it passes does not fail them at reading. `stats` counts the pairs of
entities that overlap: nested (one inside another), crossing, and the same
characters under two types (only the GlobalPointer heads train on the last
two). `split` draws `--dev_size` sentences at random (`--seed`) for dev and,
from the rest, `--train_size` (default: all of them) for train, each kept in
file order and written in the input's format unless `--output_format`
says otherwise. `convert` and `split` write their output whole or not at
all.
"""

import collections
import math
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from kner import cli
from kner.data.corpus import Sentence, detect_format, read_corpus, write_corpus
from kner.data.files import check_writable
from kner.data.spans import Overlaps, flatten_spans, overlaps
from kner.data.tags import SCHEMES
from kner.errors import InputError, run_cli

cli.define_data_flags()
flags.adopt_module_key_flags(cli)
FLAGS = flags.FLAGS
_OUTPUT_FORMAT = flags.DEFINE_enum(
    "output_format",
    None,
    ("cluener", "cmeee", *SCHEMES),
    "convert, split: CLUENER JSON lines, CMeEE JSON, or a column file in this tag scheme (one tag per word for "
    "CoNLL input, per character otherwise; split: default the input's JSON format).",
)
_DEV_SIZE = flags.DEFINE_integer("dev_size", None, "split: sentences drawn for dev.", lower_bound=1)
_TRAIN_SIZE = flags.DEFINE_integer("train_size", None, "split: sentences of the rest kept for train (default all).")
_SEED = flags.DEFINE_integer("seed", 42, "split: seed of the random draw.")
_COMMANDS = {"stats": 1, "convert": 2, "validate": 1, "split": 3}
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
    pairs = [overlaps(sentence.spans or ()) for sentence in sentences]
    total = Overlaps(*(sum(column) for column in zip(*pairs)))
    in_sentences = [sum(p[i] > 0 for p in pairs) for i in range(len(Overlaps._fields))]
    lines.append("overlapping entity pairs (in sentences)")
    for name, number, where in zip(("nested", "crossing", "same extent"), total, in_sentences):
        lines.append(f"  {name:<11}  {number:>6}  ({where})")
    return "\n".join(lines)


def _convert(source: str, target: str) -> None:
    if _OUTPUT_FORMAT.value is None:
        raise app.UsageError("convert needs --output_format")
    check_writable(target)
    _write(source, target, _read(source), _OUTPUT_FORMAT.value)


def _write(source: str, target: str, sentences: list[Sentence], output_format: str) -> None:
    try:
        if output_format in SCHEMES:
            dropped = sum(flatten_spans(s.spans or ())[1] for s in sentences)
            if dropped:
                logging.warning("dropped %s nested in another", cli.count(dropped, "entity", "entities"))
        write_corpus(target, sentences, output_format)
    except ValueError as error:
        raise InputError(source, None, f"cannot write {output_format}: {error}") from None
    print(f"wrote {cli.count(len(sentences), 'sentence')} to {target} ({output_format})")


def _split(source: str, train_target: str, dev_target: str) -> None:
    if _DEV_SIZE.value is None:
        raise app.UsageError("split needs --dev_size")
    output_format = _OUTPUT_FORMAT.value
    if output_format is None:
        output_format = FLAGS.input_format if FLAGS.input_format != "auto" else detect_format(source)
        if output_format in ("column", "conll"):
            raise app.UsageError("split of a column file needs --output_format (the tag scheme to write)")
    for target in (train_target, dev_target):
        check_writable(target)
    sentences = _read(source)
    rest = len(sentences) - _DEV_SIZE.value
    train_size = rest if _TRAIN_SIZE.value is None else _TRAIN_SIZE.value
    if rest < 1 or not 1 <= train_size <= rest:
        message = f"cannot draw {_DEV_SIZE.value} dev and {train_size} train sentences from {len(sentences)}"
        raise InputError(source, None, f"{message}: lower --dev_size or --train_size")
    order = np.random.default_rng(_SEED.value).permutation(len(sentences))
    dev, train = sorted(order[: _DEV_SIZE.value]), sorted(order[_DEV_SIZE.value : _DEV_SIZE.value + train_size])
    _write(source, train_target, [sentences[i] for i in train], output_format)
    _write(source, dev_target, [sentences[i] for i in dev], output_format)


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
    elif command == "split":
        _split(*args)
    else:
        _validate(*args)


if __name__ == "__main__":
    run_cli(main, takes_arguments=True)
