"""WordPiece tokenizer throughput: kner's graph tokenizer against
transformers' BertTokenizerFast, in one run, on WNUT-17 (English tweets).

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
  Python path; for scale, not a serving path).

Texts run in consecutive batches of each of `--batch_sizes`, the cases
interleaved over `--rounds`; the best round counts. Besides wall-clock
sentences/s, sentences per CPU-second of the process are reported (all its
threads), which move less with the load of a shared machine. Tokens are
checked equal between the cases before timing.

    PYTHONPATH=. python bench/tokenizer_speed.py --json=bench/results/tokenizer_speed.json
    PYTHONPATH=. python bench/tokenizer_speed.py --sentences=200 --rounds=1 --batch_sizes=32   # a smoke run
"""

from __future__ import annotations

import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("threads", 2, "Intra-op threads of TensorFlow and Rust's thread pool.")
flags.DEFINE_list("batch_sizes", ["1", "32", "256"], "Batch sizes.")
flags.DEFINE_integer("sentences", 0, "Use the first N WNUT-17 sentences (0: all 5,690 of train, dev and test).")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds; the best counts.")
flags.DEFINE_enum("vocab", "cased", ["cased", "uncased"], "Google's English vocab, with its own casing.")
flags.DEFINE_string("json", None, "Also write the results here.")


def main(argv: list[str]) -> None:
    del argv
    # Before the Rust thread pool starts (on the first call).
    os.environ["RAYON_NUM_THREADS"] = str(FLAGS.threads)
    import tensorflow as tf
    from common import SHARED, machine, print_table, set_threads, write_json
    from transformers import BertTokenizerFast

    from kner.data.corpus import read_corpus
    from kner.data.wordpiece import MAX_INPUT_CHARS_PER_WORD, WordPieceTokenizer

    set_threads(FLAGS.threads)
    vocab = SHARED / f"vocab/bert-base-{FLAGS.vocab}-vocab.txt"
    lowercase = FLAGS.vocab == "uncased"
    texts = [s.text for split in ("train", "dev", "test") for s in read_corpus(SHARED / f"wnut17/{split}.conll")]
    texts = texts[: FLAGS.sentences or None]
    kner = WordPieceTokenizer(vocab, lowercase=lowercase)
    hf = BertTokenizerFast(vocab=str(vocab), do_lower_case=lowercase)
    hf.backend_tokenizer.model.max_input_chars_per_word = MAX_INPUT_CHARS_PER_WORD

    def hf_tokens(batch: list[str]) -> list[tuple]:
        out = hf(batch, add_special_tokens=False, return_offsets_mapping=True)
        return [(ids, [s for s, _ in o], [e for _, e in o]) for ids, o in zip(out["input_ids"], out["offset_mapping"])]

    check = texts[:256]
    graph = kner.tokenize(tf.constant(check))
    graph_rows = list(zip(*(t.to_list() for t in graph)))
    assert graph_rows == [tuple(kner.encode_with_offsets(t)) for t in check] == hf_tokens(check)

    rows, results = [], []
    for batch_size in map(int, FLAGS.batch_sizes):
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        tensors = [tf.constant(batch) for batch in batches]
        cases = {
            "kner_graph": lambda tensors=tensors: [kner.tokenize(t) for t in tensors],
            "hf_fast": lambda batches=batches: [hf_tokens(b) for b in batches],
            "kner_python": lambda: [kner.encode_with_offsets(t) for t in texts],
        }
        for run in cases.values():  # warm-up: tracing, the thread pools
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
    print(f"WNUT-17, {len(texts)} sentences, {FLAGS.vocab} vocab, {FLAGS.threads} threads, best of {FLAGS.rounds}")
    print_table(["batch", "case", "sentences/s", "per CPU-second", "vs hf_fast"], rows)
    write_json(FLAGS.json, {"machine": machine(), "threads": FLAGS.threads, "vocab": FLAGS.vocab, "results": results})


if __name__ == "__main__":
    app.run(main)
