"""Peak memory and time of decoding long texts with many tags: one text, two
and a batch of 32 at L = 512, 4,000 and 16,000 characters and T = 10
(People's Daily, BIOS), 41 (CLUENER, BIOES) and 265 tags (66 types, BIOES),
through `kner.Predictor` (the graph built in-process from a model_dir, what
`kner.predict --model_dir` runs) and through the exported SavedModel's
`serving_default` signature (TF Serving's graph, loaded with
`tf.saved_model.load`). Each measurement runs in a child process of its own,
so that its peak RSS (`ru_maxrss`) is its own.

The models are 2L/128 CRF taggers (flags/tiny_bert_config.json's shape,
`--size`) with random weights and the BERT vocab: memory and time do not
depend on the weights. Texts are CLUENER dev texts joined and cut to L
characters (each text of a batch from another offset). Per child: the model
is loaded and called once on a one-character text (tracing, start-up), then
timed on the batch once. "call peak" is the peak RSS during that call
(`VmHWM` reset just before it), "added" that peak less the RSS before the
call, "process peak" the process's peak RSS (`ru_maxrss`), start-up
included (importing TensorFlow peaks near 850 MiB here, above what short
texts need).

Issue 24 (kmkurn/pytorch-crf#35): a single text used to take the
pointer-doubling backtrace, whose [L, 1, T, T] float32 table made one
16,000-character text with 265 tags peak at 5.6 GiB, above two such texts
(1.2 GiB). `kner.models.crf.fits_quadratic_budget` now keeps that table
under 16 MiB (at 64 MiB one 4,000-character text with 41 tags still
peaked above two): the one-text figure must not exceed the two-text one.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/decoding_memory.py --json=bench/results/decoding_memory.json
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from absl import app, flags
from common import BERT_VOCAB, CLUENER_TYPES, ROOT, SHARED, bert_config, machine, print_table, run_child, write_json

FLAGS = flags.FLAGS
flags.DEFINE_list("lengths", ["512", "4000", "16000"], "Characters per text.")
flags.DEFINE_list("tags", ["10", "41", "265"], "Tag counts: 10 (BIOS, 3 types), 41 (BIOES, 10), 265 (BIOES, 66).")
flags.DEFINE_list("batch_sizes", ["1", "2", "32"], "Texts per call.")
flags.DEFINE_list("paths", ["predictor", "saved_model"], "kner.Predictor on a model_dir, or the SavedModel.")
flags.DEFINE_string("size", "2L/128", "Model size (common.SIZES).")
flags.DEFINE_string("work_dir", "runs/decoding_memory", "Where the model_dirs and exports go.")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_string("child", None, "Internal: run one measurement (JSON spec).")

# Tag count -> (scheme, entity types): O plus each type's tags.
LABELS = {
    10: ("bios", ("LOC", "ORG", "PER")),
    41: ("bioes", CLUENER_TYPES),
    265: ("bioes", tuple(f"type{i:02d}" for i in range(66))),
}


def model_dir(tags: int) -> Path:
    return ROOT / FLAGS.work_dir / f"{FLAGS.size.replace('/', '_')}_{tags}_tags"


def make_model(tags: int) -> tuple[Path, Path]:
    """A 2L/128 CRF model_dir with `tags` tags and its export (made once)."""
    import kner_side

    from kner.checkpoint import backbone_from_config
    from kner.data.labels import LabelVocab
    from kner.data.tokenizer import read_vocab
    from kner.models.artifacts import dummy_batch, save_artifacts
    from kner.models.tagger import Tagger

    path = model_dir(tags)
    scheme, types = LABELS[tags]
    labels = LabelVocab.from_types(types, scheme)
    assert len(labels) == tags, (tags, len(labels))
    if not (path / "best.weights.h5").exists():
        vocabulary = read_vocab(BERT_VOCAB)
        config = bert_config(FLAGS.size, len(vocabulary))
        model = Tagger(backbone_from_config(config), labels, head="crf")
        model(dummy_batch())
        settings = {"head": "crf", "dropout": 0.1, "max_seq_length": 128}
        save_artifacts(path, config, vocabulary, labels, settings)
        model.save_weights(str(path / "best.weights.h5"))
    return path, kner_side.export(path, path / "export")


def texts(length: int, count: int) -> list[str]:
    """`count` texts of `length` characters cut from CLUENER dev joined, each from another offset."""
    lines = (SHARED / "cluener" / "dev.json").read_text(encoding="utf-8").splitlines()
    joined = "".join(json.loads(line)["text"] for line in lines)
    return [(joined[i * 997 :] + joined)[:length] for i in range(count)]


def status_mib(field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (peak since the last `reset_peak`) of this process, MiB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) / 1024


def reset_peak() -> None:
    """Sets `VmHWM` to the current RSS (Linux >= 4.0), so that it then holds the peak of what follows."""
    Path("/proc/self/clear_refs").write_text("5")


def child(spec: dict) -> None:
    # isort: off
    import kner.cli  # noqa: F401  (first, as in the CLIs: it keeps tensorflow-text out)

    # isort: on
    import tensorflow as tf
    from common import child_result, set_threads

    set_threads(2)
    batch = texts(spec["length"], spec["batch_size"])
    if spec["path"] == "predictor":
        from kner import Predictor

        predictor = Predictor.from_dir(spec["model_dir"])

        def decode(batch: list[str]) -> None:
            predictor.run(batch, batch_size=len(batch))

    else:
        signature = tf.saved_model.load(spec["export"]).signatures["serving_default"]

        def decode(batch: list[str]) -> None:
            signature(text=tf.constant(batch))["num_entities"].numpy()

    decode(["王"])
    reset_peak()
    before = status_mib("VmRSS")
    started = time.perf_counter()
    decode(batch)
    seconds = time.perf_counter() - started
    peak = status_mib("VmHWM")
    child_result({"seconds": seconds, "rss_before_mib": before, "call_peak_mib": peak, "added_mib": peak - before})


def main(argv) -> None:
    del argv
    if FLAGS.child:
        child(json.loads(FLAGS.child))
        return
    facts = machine()
    results = {"machine": facts, "size": FLAGS.size, "head": "crf", "runs": []}
    models = {int(t): make_model(int(t)) for t in FLAGS.tags}
    rows = []
    cases = itertools.product(map(int, FLAGS.tags), map(int, FLAGS.lengths), FLAGS.paths, map(int, FLAGS.batch_sizes))
    for tags, length, path, batch_size in cases:
        directory, export = models[tags]
        spec = {"tags": tags, "length": length, "batch_size": batch_size, "path": path}
        measured = run_child(__file__, {**spec, "model_dir": str(directory), "export": str(export)})
        results["runs"].append({**spec, **measured})
        rows.append([tags, length, path, batch_size, measured["call_peak_mib"], measured["added_mib"],
                     measured["peak_rss_mib"], measured["seconds"]])  # fmt: skip
        print(f"  {spec}: call peak {measured['call_peak_mib']:.0f} MiB, {measured['seconds']:.2f} s", flush=True)
    print(f"{FLAGS.size} CRF, random weights; load at start {facts['loadavg_at_start']}")
    header = ["tags", "characters", "path", "texts", "call peak MiB", "added MiB", "process peak MiB", "seconds"]
    results["table"] = print_table(header, rows)
    write_json(FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
