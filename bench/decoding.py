"""Dev F1 of trained models under each decoding, on the same weights: the
softmax head by argmax and by Viterbi within the tag scheme's grammar, and
the CRF head (always Viterbi). Decoding runs through the serving graph
(`kner.serving.TextTagger`, what export and predict use) on the whole dev
set, and the report counts the rows the strict reader rejects.

    python -m kner.train --flagfile=flags/tiny.cfg --model_dir=runs/tiny_crf
    python -m kner.train --flagfile=flags/tiny.cfg --head=softmax --model_dir=runs/tiny_softmax
    PYTHONPATH=. python bench/decoding.py --model_dirs=runs/tiny_softmax,runs/tiny_crf   # -> decoding.json#best_epoch
    PYTHONPATH=. python bench/decoding.py --model_dirs=runs/tiny_softmax --last_checkpoint   # -> #last_epoch
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import tensorflow as tf
from absl import app, flags
from common import JSON_HELP, SHARED, machine, print_table, result_file, write_json

from kner.data.corpus import read_corpus
from kner.data.spans import Span
from kner.data.tags import TagError, tags_to_spans
from kner.metrics import evaluate
from kner.models.artifacts import SETTINGS, load_tagger
from kner.models.heads import HEADS
from kner.serving.predictor import Predictor
from kner.serving.text_tagger import TextTagger
from kner.training.trainer import CHECKPOINTS

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dirs", None, "Trained model_dirs (kner.train).")
flags.DEFINE_string("dev_file", str(SHARED / "cluener" / "dev.json"), "Labelled dev data.")
flags.DEFINE_integer("batch_size", 64, "Texts per batch.")
flags.DEFINE_bool("last_checkpoint", False, "Score the last training checkpoint instead of the best weights.")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/decoding.json#best_epoch (#last_epoch).")
flags.mark_flag_as_required("model_dirs")


def strictly_invalid(rows: list[list[str]], scheme: str) -> int:
    """How many tag rows the strict reader rejects."""
    invalid = 0
    for tags in rows:
        try:
            tags_to_spans(tags, scheme, strict=True)
        except TagError:
            invalid += 1
    return invalid


def score(model_dir: str, decoding: str, dev) -> dict:
    model, tokenizer, settings = load_tagger(model_dir)
    weights = "best"
    if FLAGS.last_checkpoint:
        weights = tf.train.latest_checkpoint(str(Path(model_dir) / CHECKPOINTS))
        tf.train.Checkpoint(model=model).restore(weights).expect_partial()
    model.head.decoding = decoding
    predictor = Predictor(TextTagger(model, tokenizer, settings["max_seq_length"]))
    started = time.perf_counter()
    results = predictor.run([s.text for s in dev], FLAGS.batch_size)
    seconds = time.perf_counter() - started
    predicted = [[Span(e.start, e.end, e.type) for e in r.entities] for r in results]
    tags = [r.tags for r in results]
    scheme = model.labels.scheme
    report = evaluate([s.text for s in dev], [s.spans for s in dev], predicted, tags, scheme)
    return {
        "model_dir": model_dir,
        "head": settings["head"],
        "saved_decode": settings.get("decode"),
        "decode": decoding,
        "weights": weights,
        "micro_f1": report["micro"]["f1"],
        "type_macro_f1": report["type_macro_f1"],
        "cluener_score_f1": report.get("cluener_score_f1"),
        "seqeval_f1": report["seqeval"]["f1-score"],
        "invalid_rows": strictly_invalid(tags, scheme),
        "dev_seconds": seconds,
    }


def main(argv) -> None:
    del argv
    facts = machine()
    dev = read_corpus(FLAGS.dev_file)
    rows = []
    for model_dir in FLAGS.model_dirs:
        head = json.loads((Path(model_dir) / SETTINGS).read_text())["head"]
        for decoding in HEADS[head].decodings:
            row = score(model_dir, decoding, dev)
            print(json.dumps(row), flush=True)
            rows.append(row)
    header = ["model_dir", "head", "decode", "micro F1", "type macro F1", "score.py F1", "seqeval F1", "invalid rows"]
    table = print_table(
        header,
        [
            [
                r["model_dir"],
                r["head"],
                r["decode"],
                r["micro_f1"],
                r["type_macro_f1"],
                r["cluener_score_f1"],
                r["seqeval_f1"],
                r["invalid_rows"],
            ]
            for r in rows
        ],
    )
    default = result_file("decoding", "last_epoch" if FLAGS.last_checkpoint else "best_epoch")
    results = {"machine": facts, "dev_file": FLAGS.dev_file, "rows": rows, "table": table}
    write_json(default if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
