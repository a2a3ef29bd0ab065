"""WordPiece tokenizer throughput, kner's graph tokenizer against
transformers' BertTokenizerFast, and the serving graph's share of time spent
tokenizing, in one run, on WNUT-17 (English tweets).

Cases, each producing ids and character offsets of every token:

- `kner_graph`: `WordPieceTokenizer.tokenize` (the tf.function the tf.data
  pipeline and the serving graph run), on batches already made string
  tensors, as a served signature receives them; TensorFlow with
  `--threads` intra-op threads;
- `hf_fast`: `BertTokenizerFast(vocab=..., do_lower_case=...)` (its Rust
  WordPiece, `max_input_chars_per_word` set to 200 as kner's) called on
  Python lists with `return_offsets_mapping=True`, Rust's thread pool at
  `--threads` (`RAYON_NUM_THREADS`);
- `kner_python`: `WordPieceTokenizer.encode_with_offsets` per text (the
  Python path; for scale, not a serving path);
- `serving_<size>` for each of `--serving_sizes`: a whole English export
  (`python -m kner.export` of a random-weight model_dir as
  `flags/english_cased.cfg` trains one: cased vocab, WordPiece, labels on
  the first sub-token of each word, CRF head) called in a TF1 session as TF
  Serving runs it, texts in, entities out.

Texts run in consecutive batches of each of `--batch_sizes`, the cases
interleaved over `--rounds`; the best round counts. Besides wall-clock
sentences/s, sentences per CPU-second of the process are reported (all its
threads), which move less with the load of a shared machine. Tokens are
checked equal between the tokenizer cases before timing.

The serving graph's share of time spent tokenizing, two ways per size and
batch size: `kner_graph`'s time over `serving_<size>`'s (untimed stages
excluded, the same texts and batches), and the share of the `tokenize`
stage in a full trace of `--trace_calls` calls (`tf_session.breakdown`;
tracing inflates small ops, which the tokenizer has many of).

    PYTHONPATH=. python bench/tokenizer_speed.py --json=bench/results/tokenizer_speed.json
    PYTHONPATH=. python bench/tokenizer_speed.py --sentences=64 --rounds=1 --batch_sizes=1,32 \\
        --serving_sizes=2L/128 --trace_calls=2 --json=   # a smoke run
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("threads", 2, "Intra-op threads of TensorFlow and Rust's thread pool.")
flags.DEFINE_list("batch_sizes", ["1", "32", "256"], "Batch sizes.")
flags.DEFINE_integer("sentences", 2000, "Use the first N WNUT-17 sentences (0: all 5,690 of train, dev and test).")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds; the best counts.")
flags.DEFINE_enum("vocab", "cased", ["cased", "uncased"], "Google's English vocab, with its own casing.")
flags.DEFINE_list("serving_sizes", ["2L/128", "12L/768"], "Model sizes of the English exports timed whole.")
flags.DEFINE_integer("trace_calls", 20, "Traced serving calls per size and batch size, for the stage breakdown.")
flags.DEFINE_string("work_dir", None, "Where the model_dirs and exports go (default: a temporary directory).")
flags.DEFINE_string("json", "bench/results/tokenizer_speed.json", "Where the results go ('' for nowhere).")


def main(argv: list[str]) -> None:
    del argv
    # Before the Rust thread pool starts (on the first call).
    os.environ["RAYON_NUM_THREADS"] = str(FLAGS.threads)
    import tensorflow as tf
    from common import SHARED, machine, print_table, set_threads, write_json
    from kner_side import export, random_model_dir
    from tf_session import Session, breakdown
    from transformers import BertTokenizerFast

    from kner.data.corpus import read_corpus
    from kner.data.wordpiece import MAX_INPUT_CHARS_PER_WORD, WordPieceTokenizer

    set_threads(FLAGS.threads)
    facts = machine()
    vocab = SHARED / f"vocab/bert-base-{FLAGS.vocab}-vocab.txt"
    lowercase = FLAGS.vocab == "uncased"
    texts = [s.text for split in ("train", "dev", "test") for s in read_corpus(SHARED / f"wnut17/{split}.conll")]
    texts = texts[: FLAGS.sentences or None]
    kner = WordPieceTokenizer(vocab, lowercase=lowercase)
    # transformers 5.x: BertTokenizerFast(vocab_file=...) ignores the file (a 5-token vocab); vocab= reads it.
    hf = BertTokenizerFast(vocab=str(vocab), do_lower_case=lowercase)
    hf.backend_tokenizer.model.max_input_chars_per_word = MAX_INPUT_CHARS_PER_WORD

    def hf_tokens(batch: list[str]) -> list[tuple]:
        out = hf(batch, add_special_tokens=False, return_offsets_mapping=True)
        return [(ids, [s for s, _ in o], [e for _, e in o]) for ids, o in zip(out["input_ids"], out["offset_mapping"])]

    check = texts[:256]
    graph = kner.tokenize(tf.constant(check))
    graph_rows = list(zip(*(t.to_list() for t in graph)))
    assert graph_rows == [tuple(kner.encode_with_offsets(t)) for t in check] == hf_tokens(check)

    work = Path(FLAGS.work_dir or tempfile.mkdtemp())
    sessions = {}
    for size in FLAGS.serving_sizes:
        name = size.replace("/", "_")
        model_dir = work / f"english_{name}"
        if not (model_dir / "best.weights.h5").exists():
            random_model_dir(size, model_dir, "crf", english=True)
        print(f"exporting {size} ...", flush=True)
        sessions[size] = export(model_dir, work / f"english_{name}_export")
    encoded = [text.encode() for text in texts]

    rows, results, shares = [], [], []
    for batch_size in map(int, FLAGS.batch_sizes):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        tensors = [tf.constant(batch) for batch in batches]
        byte_batches = [encoded[i : i + batch_size] for i in range(0, len(encoded), batch_size)]
        cases = {
            "kner_graph": lambda tensors=tensors: [kner.tokenize(t) for t in tensors],
            "hf_fast": lambda batches=batches: [hf_tokens(b) for b in batches],
            "kner_python": lambda: [kner.encode_with_offsets(t) for t in texts],
        }
        for size, version in sessions.items():
            session = Session(version, FLAGS.threads)
            cases[f"serving_{size}"] = lambda session=session, byte_batches=byte_batches: [
                session(b) for b in byte_batches
            ]
        for run in cases.values():  # warm-up: tracing, the thread pools, grappler
            run()
        best = {}
        for _ in range(FLAGS.rounds):
            for name, run in cases.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu)
        hf_rate = len(texts) / best["hf_fast"][0]
        for name, (wall, cpu) in best.items():
            rate, per_cpu = len(texts) / wall, len(texts) / cpu
            rows.append([batch_size, name, rate, per_cpu, rate / hf_rate])
            results.append({"batch_size": batch_size, "case": name, "sentences_per_s": rate, "per_cpu_s": per_cpu})
        for size, version in sessions.items():
            calls = min(FLAGS.trace_calls, len(byte_batches))
            traced = breakdown(version, encoded, FLAGS.threads, batch_size, calls)["traced_ms_per_call"]
            wall_share = best["kner_graph"][0] / best[f"serving_{size}"][0]
            traced_share = traced["tokenize"] / sum(traced.values())
            shares.append([size, batch_size, wall_share, traced["tokenize"], sum(traced.values()), traced_share])
    print(
        f"\nWNUT-17, {len(texts)} sentences, {FLAGS.vocab} vocab, {FLAGS.threads} threads, best of {FLAGS.rounds}; "
        f"load {facts['loadavg_at_start']}"
    )
    table = print_table(["batch", "case", "sentences/s", "per CPU-second", "vs hf_fast"], rows)
    header = ["export", "batch", "kner_graph / serving (wall)", "traced tokenize ms", "traced call ms", "traced share"]
    share_table = print_table(header, shares)
    keys = ("size", "batch_size", "wall_share", "traced_tokenize_ms", "traced_call_ms", "traced_share")
    write_json(
        FLAGS.json,
        {
            "machine": facts,
            "threads": FLAGS.threads,
            "vocab": FLAGS.vocab,
            "sentences": len(texts),
            "results": results,
            "serving_share": [dict(zip(keys, row)) for row in shares],
            "table": table,
            "share_table": share_table,
        },
    )


if __name__ == "__main__":
    app.run(main)
