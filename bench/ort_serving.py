"""kner's exported SavedModel against ONNX Runtime, the runtime a CPU user
picks instead, each set up fairly and carrying the same weights: texts in,
entities out on both sides, batch 1, 8 and 32, every size of `--sizes` (or
one trained `--model_dir`).

For each model (random weights, CRF head, CLUENER's labels, the BERT vocab,
unless `--model_dir`; speed does not depend on the weights):

- **kner**: `python -m kner.export`, float32, `--compute_dtype=bfloat16`,
  `--compute_dtype=int8` (dynamic int8 projections, `kner.serving.int8`)
  and float32 `--jit_compile` (XLA regions, `kner.serving.xla`), each
  called through a TF1 session as TF Serving and TensorFlow's C loader run
  it (`tf_session.Session`) and through the TF2 `serving_default`
  signature: 8 configurations, end to end (tokenization, windows, encoder,
  Viterbi, entity reading all in the graph);
- **ONNX Runtime** (`ort_side.py`): the same weights as a transformers
  `BertForTokenClassification`, exported by the TorchScript exporter,
  optimized by ONNX Runtime's transformer optimizer (the fused-op counts are
  printed, and the run stops unless each is what a BERT of that depth gives),
  float32 and dynamic int8 (QInt8 weights), the session's thread pool
  spinning or not: 4 configurations; kner's character tokenizer and a NumPy
  Viterbi within the scheme's grammar around it (`numpy_tagger.py`). It takes
  texts of at most `max_seq_length - 2` characters (no windowing): all of
  CLUENER dev (the longest has 50);
- **floor** (kner's machinery, for what a call costs before any model): a
  SavedModel whose signature returns the batch size, and one that only
  tokenizes, through the same session and signature.

Before timing, the run checks, and stops with an error when a check fails:
transformers' logits equal the kner model's, ONNX Runtime's float32 logits
equal transformers', and on the first `--check_sentences` dev texts (all by
default) the float32 ONNX Runtime side returns the same entities (type,
start, end, text) as kner's float32 export. It reports how often kner's
bfloat16 and int8 exports and ONNX Runtime's int8 model agree with float32, and with a trained
`--model_dir` each side's dev F1 (exact-match spans, micro).

Timing runs in one child process per `--threads` value (intra-op threads;
one inter-op thread on both sides), over `--rounds`: for each batch size the
first N dev texts in consecutive batches (file order, as requests come), N =
`--latency_sentences` for batch 1 and `--sentences` otherwise. The
configurations take turns every `--turn_calls` batch-1 calls and every
larger batch, in an order rotated at each turn, so that a slow phase of a
shared machine (seconds long on a cloud VM) falls on all of them alike; a
turn of consecutive calls keeps one model's weights warm in the caches, as a
server's would be. Per call p50/p95 latency pooled over rounds, and the best
round's sentences/s (its texts over the sum of its calls' times). A ratio
compares each side's best configuration at the same thread count (lowest
p50, highest sentences/s).

With T >= 2 threads a second child times the *split* layout: each batch
split into T parts that run at once, from T Python threads (TensorFlow and
ONNX Runtime release the GIL while they compute), each part on one
intra-op thread (kner: a session of one intra-op and T inter-op threads):
how a server with T concurrent batch threads of one intra-op thread each
uses T cores (TF Serving: `--tensorflow_intra_op_parallelism=1
--tensorflow_inter_op_parallelism=T`, batching with `num_batch_threads: T`).
A batch of one text is one call on one thread. Both sides get it; the
ratios take each side's best of both layouts. That child also times kner's
int8 export in two parts (`--tensor_parallel=2`, Megatron-LM's tensor
parallelism, `kner.serving.fused_encoder`): in a session of one intra-op
and two inter-op threads one text runs on two cores, each part's products
on its own thread.

    PYTHONPATH=. python bench/ort_serving.py --json=bench/results/ort_serving.json
    python -m kner.train --flagfile=flags/tiny.cfg --model_dir=runs/tiny_crf
    PYTHONPATH=. python bench/ort_serving.py --model_dir=runs/tiny_crf --threads= \\
        --json=bench/results/ort_serving_tiny_f1.json

(`--threads=` times nothing: the checks and the F1 only.)
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: it configures OpenMP before torch loads)

# isort: on
import gc
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from absl import app, flags
from common import ROOT, SHARED, child_result, machine, print_table, run_child, set_threads, write_json
from numpy_tagger import Entity, check_same_entities, encode_batch, serving_entities

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["2L/128", "4L/256", "12L/768"], "Model sizes, when no --model_dir is given.")
flags.DEFINE_string("model_dir", None, "A trained kner model_dir (default: random weights of each of --sizes).")
flags.DEFINE_list("batch_sizes", ["1", "8", "32"], "Texts per call.")
flags.DEFINE_list("threads", ["1", "2"], "Intra-op threads of both sides; one timing process each.")
flags.DEFINE_list("sentences", ["640", "640", "128"], "Per size (the last repeats): texts per round, batches > 1.")
flags.DEFINE_list("latency_sentences", ["200", "200", "50"], "Per size (the last repeats): batch-1 calls per round.")
flags.DEFINE_integer("rounds", 3, "Rounds of all configurations.")
flags.DEFINE_integer("turn_calls", 10, "Batch-1 calls of one configuration before the next takes its turn.")
flags.DEFINE_integer("check_sentences", 0, "Dev texts of the entity check, agreement rates and F1 (0: all).")
flags.DEFINE_string("work_dir", None, "Where model_dirs, exports and ONNX files go (default: a temporary directory).")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_string("child", None, "Internal: time one thread count (JSON spec).")

# kner's exports: case -> (`--compute_dtype`, more `kner.export` flags).
KNER_DTYPES = {
    "f32": ("float32", ()),
    "bf16": ("bfloat16", ()),
    "int8": ("int8", ()),
    "xla": ("float32", ("--jit_compile",)),
}
KNER_CASES = [f"kner {dtype} {path}" for dtype in KNER_DTYPES for path in ("session", "signature")]
# Exported and checked like those, timed in the split layout's child only, whose
# sessions have the inter-op threads its parts run on (module doc).
PARALLEL_KNER_DTYPES = {"int8 tp2": ("int8", ("--tensor_parallel=2",))}
ORT_CASES = [f"ORT {dtype} spin {spin}" for dtype in ("fp32", "int8") for spin in ("on", "off")]
# The split layout's configurations (module doc), each timed in its own child.
SPLIT_KNER_DTYPES = ("f32", "int8", "xla", *PARALLEL_KNER_DTYPES)
SPLIT = " split"
KNER_CASES += [f"kner {dtype} session{SPLIT}" for dtype in SPLIT_KNER_DTYPES]
ORT_CASES += [f"{case}{SPLIT}" for case in ORT_CASES]
FLOOR_CASES = [f"floor {what} {path}" for what in ("empty", "tokenize") for path in ("session", "signature")]
# Largest absolute logit difference the checks accept between frameworks (float32 sums in another order).
LOGITS_TOLERANCE = 1e-3


def dev_sentences() -> list:
    from kner.data.corpus import read_corpus

    return read_corpus(SHARED / "cluener" / "dev.json")


# ---- preparing and checking one model (parent process) ---------------------


def prepare(model_dir: Path, work: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Both sides' files of `model_dir` (kner's exports, the transformers
    directory, the optimized float32 and the int8 ONNX models, the floor
    SavedModels), and the fused ops' counts."""
    from kner_side import export, floor_exports
    from ort_side import export_onnx, optimize, quantize, write_huggingface

    paths = {"model_dir": model_dir}
    paths |= {
        f"kner_{case}": export(model_dir, work / f"export_{case.replace(' ', '_')}", dtype, ROOT, *more)
        for case, (dtype, more) in (KNER_DTYPES | PARALLEL_KNER_DTYPES).items()
    }
    paths["hf"] = write_huggingface(model_dir, work / "hf")
    exports = ", ".join(str(paths[f"kner_{case}"]) for case in KNER_DTYPES | PARALLEL_KNER_DTYPES)
    print(f"{model_dir}: kner exports {exports}; transformers model {paths['hf']}")
    raw = export_onnx(paths["hf"], work / "model.onnx")
    paths["ort_fp32"] = work / "model_fp32.onnx"
    fused = optimize(raw, paths["ort_fp32"], paths["hf"])
    print(f"ONNX Runtime's optimizer fused: {', '.join(f'{op} {n}' for op, n in fused.items())}")
    paths["ort_int8"] = quantize(paths["ort_fp32"], work / "model_int8.onnx")
    print(f"ONNX models: {paths['ort_fp32']} (float32), {paths['ort_int8']} (dynamic int8)")
    paths.update({f"floor_{name}": path for name, path in floor_exports(model_dir / "vocab.txt", work).items()})
    return {key: str(value) for key, value in paths.items()}, fused


def check_logits(paths: dict, texts: list[str]) -> dict:
    """Largest logit difference of transformers against the kner model, and
    of ONNX Runtime float32 against transformers, on `texts` as one batch;
    RuntimeError beyond `LOGITS_TOLERANCE`."""
    from ort_side import OrtTagger, huggingface_model, torch_logits

    from kner.models.artifacts import load_tagger

    model, tokenizer, settings = load_tagger(paths["model_dir"])
    batch = encode_batch(tokenizer, texts, settings["max_seq_length"])
    # kner's head scores the positions after [CLS] (kner.models.Tagger): compare those.
    kner_logits = model(batch.kner_features()).numpy()
    hf_logits = torch_logits(huggingface_model(Path(paths["hf"])), batch.input_ids, batch.attention_mask)[:, 1:]
    ort = OrtTagger(Path(paths["ort_fp32"]), Path(paths["hf"]), tokenizer, settings["max_seq_length"], 2, False)
    ort_logits = ort.logits(batch.input_ids, batch.attention_mask)[:, 1:]
    real = batch.attention_mask.astype(bool)[:, 1:]
    result = {
        "transformers_vs_kner": float(np.abs(hf_logits - kner_logits)[real].max()),
        "ort_fp32_vs_transformers": float(np.abs(ort_logits - hf_logits)[real].max()),
        "largest_logit": float(np.abs(kner_logits[real]).max()),
    }
    print(
        f"logits on {len(texts)} dev texts: transformers - kner {result['transformers_vs_kner']:.2e}, "
        f"ORT float32 - transformers {result['ort_fp32_vs_transformers']:.2e} (largest |logit| "
        f"{result['largest_logit']:.2f})"
    )
    if max(result["transformers_vs_kner"], result["ort_fp32_vs_transformers"]) > LOGITS_TOLERANCE:
        raise RuntimeError(f"logits differ by more than {LOGITS_TOLERANCE}: {result}")
    return result


def kner_session(path: str, threads: int, inter_op_threads: int = 1):
    """A kner export in a TF1 session (as TF Serving runs it) as a function of a list of texts."""
    from tf_session import Session

    run = Session(Path(path), threads, inter_op_threads)
    return lambda texts: run([text.encode() for text in texts])


def split_calls(run, parts: int):
    """`run` on a batch split into `parts` nearly equal parts at once, one
    Python thread each (the split layout, module doc); a list of their results."""
    pool = ThreadPoolExecutor(parts)

    def call(texts: list[str]) -> list:
        if len(texts) < 2:
            return [run(texts)]
        size = -(-len(texts) // parts)
        return list(pool.map(run, [texts[begin : begin + size] for begin in range(0, len(texts), size)]))

    return call


def run_all(run, texts: list[str], batch_size: int = 32) -> list[list[Entity]]:
    return [entity for begin in range(0, len(texts), batch_size) for entity in run(texts[begin : begin + batch_size])]


def check_entities(paths: dict, sentences: list) -> dict:
    """The same entities on both float32 sides (SameEntitiesError if not);
    how often kner's bfloat16 and int8 and ORT's int8 agree with float32;
    each side's F1."""
    from ort_side import OrtTagger

    from kner.data.spans import Span
    from kner.data.tokenizer import CharTokenizer
    from kner.metrics import span_scores

    texts = [s.text for s in sentences]
    settings = json.loads((Path(paths["model_dir"]) / "settings.json").read_text())
    tokenizer = CharTokenizer(Path(paths["model_dir"]) / "vocab.txt")
    entities, kner_runs, ort_runs = {}, {}, {}
    for case in KNER_DTYPES | PARALLEL_KNER_DTYPES:
        run = kner_runs[case] = kner_session(paths[f"kner_{case}"], 2)
        entities[f"kner {case}"] = run_all(lambda batch, run=run: serving_entities(run(batch)), texts)
    for case in ("fp32", "int8"):
        ort = ort_runs[case] = OrtTagger(
            Path(paths[f"ort_{case}"]), Path(paths["hf"]), tokenizer, settings["max_seq_length"], 2, False
        )
        entities[f"ORT {case}"] = run_all(ort, texts)
    kner, ort = entities["kner f32"], entities["ORT fp32"]
    differ = [i for i, (a, b) in enumerate(zip(kner, ort)) if a != b]
    ties = float_ties(kner_runs["f32"], ort_runs["fp32"], [texts[i] for i in differ], differ)
    compared = check_same_entities(texts, kner, ort, ("kner float32", "ORT float32"), frozenset(ties))
    tied = f", but for {len(ties)} float32 tie(s) of two paths (score gaps {sorted(ties.values())})" if ties else ""
    print(
        f"same entities: kner float32 and ORT float32 agree on all {len(texts)} dev texts{tied} ({compared} entities)"
    )

    def agreement(a: str, b: str) -> float:
        return float(np.mean([x == y for x, y in zip(entities[a], entities[b])]))

    result = {
        "texts": len(texts),
        "entities": compared,
        "float_ties": ties,
        "same_entities_kner_bf16_vs_f32": agreement("kner bf16", "kner f32"),
        "same_entities_kner_int8_vs_f32": agreement("kner int8", "kner f32"),
        "same_entities_kner_xla_vs_f32": agreement("kner xla", "kner f32"),
        "same_entities_kner_int8_tp2_vs_f32": agreement("kner int8 tp2", "kner f32"),
        "same_entities_ort_int8_vs_fp32": agreement("ORT int8", "ORT fp32"),
    }
    print(
        f"same entities as float32: kner bfloat16 {result['same_entities_kner_bf16_vs_f32']:.2%}, "
        f"kner int8 {result['same_entities_kner_int8_vs_f32']:.2%}, "
        f"kner XLA {result['same_entities_kner_xla_vs_f32']:.2%}, "
        f"kner int8 in 2 parts {result['same_entities_kner_int8_tp2_vs_f32']:.2%}, "
        f"ORT int8 {result['same_entities_ort_int8_vs_fp32']:.2%} of texts"
    )
    if FLAGS.model_dir:
        gold = [s.spans for s in sentences]

        def f1(found: list[list[Entity]]) -> float:
            spans = [[Span(start, end, kind) for kind, start, end, _ in row] for row in found]
            return span_scores(gold, spans)["micro"]["f1"]

        result["f1"] = {case: f1(found) for case, found in entities.items()}
        print("dev F1 (exact spans, micro): " + ", ".join(f"{case} {f1:.4f}" for case, f1 in result["f1"].items()))
    return result


def float_ties(kner, ort, texts: list[str], rows: list[int]) -> dict[int, float]:
    """Of `texts` (dev rows `rows`) where kner float32 (`kner`, a
    `kner_session`) and ORT float32 (`ort`, an `OrtTagger`) differ, those
    whose two tag paths score within float32 noise under ORT's logits: kner's
    path is the best under logits within `LOGITS_TOLERANCE` of ORT's
    (`check_logits`), so under ORT's it scores at most 2 x length x that
    below ORT's path. Dev row -> score gap."""
    if not texts:
        return {}
    batch = encode_batch(ort.tokenizer, texts, ort.max_seq_length)
    index = {tag: i for i, tag in enumerate(ort.decoder.labels.tags)}
    tags = np.zeros((len(texts), int(batch.lengths.max())), np.int32)
    for row, (names, length) in enumerate(zip(kner(texts)["tags"], batch.lengths)):
        tags[row, :length] = [index[name.decode()] for name in names[:length]]
    gaps = ort.decoder.score_gaps(ort.logits(batch.input_ids, batch.attention_mask), batch.lengths, tags)
    bounds = 2 * batch.lengths * LOGITS_TOLERANCE
    return {i: float(gap) for i, gap, bound in zip(rows, gaps, bounds) if gap <= bound}


# ---- timing (one child process per thread count) ---------------------------


def cases(spec: dict) -> dict:
    """Every configuration as a function of a list of texts."""
    import tensorflow as tf
    from ort_side import OrtTagger

    from kner.data.tokenizer import CharTokenizer

    paths, threads = spec["paths"], spec["threads"]
    tokenizer = CharTokenizer(Path(paths["model_dir"]) / "vocab.txt")

    def ort(dtype: str, threads: int, spin: str) -> OrtTagger:
        path = Path(paths[f"ort_{dtype}"])
        return OrtTagger(path, Path(paths["hf"]), tokenizer, spec["max_seq_length"], threads, spin == "on")

    if spec.get("split"):
        found = {
            f"kner {dtype} session{SPLIT}": split_calls(kner_session(paths[f"kner_{dtype}"], 1, threads), threads)
            for dtype in SPLIT_KNER_DTYPES
        }
        for dtype in ("fp32", "int8"):
            for spin in ("on", "off"):
                found[f"ORT {dtype} spin {spin}{SPLIT}"] = split_calls(ort(dtype, 1, spin), threads)
        return found

    def signature(path: str):
        function = tf.saved_model.load(path).signatures["serving_default"]
        return lambda texts: {key: value.numpy() for key, value in function(text=tf.constant(texts)).items()}

    found = {}
    for dtype in KNER_DTYPES:
        found[f"kner {dtype} session"] = kner_session(paths[f"kner_{dtype}"], threads)
        found[f"kner {dtype} signature"] = signature(paths[f"kner_{dtype}"])
    for dtype in ("fp32", "int8"):
        for spin in ("on", "off"):
            found[f"ORT {dtype} spin {spin}"] = ort(dtype, threads, spin)
    for what in ("empty", "tokenize"):
        found[f"floor {what} session"] = kner_session(paths[f"floor_{what}"], threads)
        found[f"floor {what} signature"] = signature(paths[f"floor_{what}"])
    return found


def time_child(spec: dict) -> dict:
    """Per configuration and batch size: p50 and p95 call latency (ms, all
    rounds pooled) and each round's sentences/s and sentences per CPU-second."""
    set_threads(1 if spec.get("split") else spec["threads"])
    texts = [s.text for s in dev_sentences()]
    runs = cases(spec)
    batch_sizes = spec["batch_sizes"]

    def work(batch_size: int) -> list[list[str]]:
        count = spec["latency_sentences"] if batch_size == 1 else spec["sentences"]
        return [texts[begin : begin + batch_size] for begin in range(0, count, batch_size)]

    batches = {size: work(size) for size in batch_sizes}
    for run in runs.values():  # warm-up: graph optimisation and allocations on the first calls
        for size in batch_sizes:
            for batch in batches[size][:3]:
                run(batch)
    results = {
        name: {str(size): {"latency_ms": [], "sentences_per_s": [], "sentences_per_cpu_s": []} for size in batch_sizes}
        for name in runs
    }
    names = list(runs)
    for _ in range(spec["rounds"]):
        for size in batch_sizes:
            per_turn = spec["turn_calls"] if size == 1 else 1
            calls = batches[size]
            seconds, cpu_seconds = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
            for turn, begin in enumerate(range(0, len(calls), per_turn)):
                for name in names[turn % len(names) :] + names[: turn % len(names)]:
                    latency = results[name][str(size)]["latency_ms"]
                    for batch in calls[begin : begin + per_turn]:
                        started, cpu = time.perf_counter(), time.process_time()
                        runs[name](batch)
                        elapsed = time.perf_counter() - started
                        cpu_seconds[name] += time.process_time() - cpu
                        seconds[name] += elapsed
                        latency.append(1e3 * elapsed)
            count = sum(len(batch) for batch in calls)
            for name in names:
                results[name][str(size)]["sentences_per_s"].append(count / seconds[name])
                results[name][str(size)]["sentences_per_cpu_s"].append(count / max(cpu_seconds[name], 1e-9))
    for by_size in results.values():
        for result in by_size.values():
            result["p50_ms"] = float(np.median(result["latency_ms"]))
            result["p95_ms"] = float(np.percentile(result["latency_ms"], 95))
            result["best_sentences_per_s"] = max(result["sentences_per_s"])
            result["best_sentences_per_cpu_s"] = max(result["sentences_per_cpu_s"])
            result["calls"] = len(result.pop("latency_ms"))
    return results


def best(results: dict, names: list[str], size: str) -> dict:
    """The lowest p50 and the highest sentences/s among those of `names`
    that were timed, with which configuration gave each."""
    names = [name for name in names if name in results]
    fastest = min(names, key=lambda n: results[n][size]["p50_ms"])
    busiest = max(names, key=lambda n: results[n][size]["best_sentences_per_s"])
    return {
        "p50_ms": results[fastest][size]["p50_ms"],
        "p50_by": fastest,
        "sentences_per_s": results[busiest][size]["best_sentences_per_s"],
        "sentences_per_s_by": busiest,
    }


def tables(name: str, threads: int, results: dict, batch_sizes: list[str]) -> dict:
    """Prints the configurations' table and the best-against-best summary."""
    header = ["configuration"] + [f"b{size} {what}" for size in batch_sizes for what in ("p50 ms", "sent/s")]
    rows = [
        [case, *(value for size in batch_sizes for value in (r[size]["p50_ms"], r[size]["best_sentences_per_s"]))]
        for case, r in results.items()
    ]
    print(f"\n{name}, {threads} thread(s): p50 latency per call and the best round's sentences/s")
    table = print_table(header, rows)
    summary = []
    for size in batch_sizes:
        kner = best(results, KNER_CASES, size)
        fp32 = best(results, [case for case in ORT_CASES if "fp32" in case], size)
        int8 = best(results, [case for case in ORT_CASES if "int8" in case], size)
        summary.append(
            {"batch_size": int(size), "kner": kner, "ort_fp32": fp32, "ort_int8": int8,
             "p50_ort_fp32_over_kner": fp32["p50_ms"] / kner["p50_ms"],
             "p50_ort_int8_over_kner": int8["p50_ms"] / kner["p50_ms"],
             "sentences_kner_over_ort_fp32": kner["sentences_per_s"] / fp32["sentences_per_s"],
             "sentences_kner_over_ort_int8": kner["sentences_per_s"] / int8["sentences_per_s"]}
        )  # fmt: skip
    header = ["batch", "kner best p50 ms", "ORT fp32", "ORT int8", "ORT fp32 p50 / kner", "ORT int8 p50 / kner",
              "kner best sent/s", "ORT fp32", "ORT int8", "kner / ORT fp32", "kner / ORT int8"]  # fmt: skip
    rows = [
        [s["batch_size"], s["kner"]["p50_ms"], s["ort_fp32"]["p50_ms"], s["ort_int8"]["p50_ms"],
         s["p50_ort_fp32_over_kner"], s["p50_ort_int8_over_kner"], s["kner"]["sentences_per_s"],
         s["ort_fp32"]["sentences_per_s"], s["ort_int8"]["sentences_per_s"], s["sentences_kner_over_ort_fp32"],
         s["sentences_kner_over_ort_int8"]]
        for s in summary
    ]  # fmt: skip
    print(f"{name}, {threads} thread(s): each side's best configuration (ratios above 1: kner faster)")
    summary_table = print_table(header, rows)
    for s in summary:
        print(
            f"  batch {s['batch_size']}: best p50 kner {s['kner']['p50_by']!r}, ORT {s['ort_fp32']['p50_by']!r}, "
            f"{s['ort_int8']['p50_by']!r}; best sent/s kner {s['kner']['sentences_per_s_by']!r}, "
            f"ORT {s['ort_fp32']['sentences_per_s_by']!r}, {s['ort_int8']['sentences_per_s_by']!r}"
        )
    return {"table": table, "summary": summary, "summary_table": summary_table}


def per_size(values: list[str], i: int) -> int:
    return int(values[min(i, len(values) - 1)])


def main(argv) -> None:
    del argv
    if FLAGS.child:
        spec = json.loads(FLAGS.child)
        child_result({"results": time_child(spec), "load": os.getloadavg()})
        return
    from kner_side import random_model_dir

    facts = machine()
    work = Path(FLAGS.work_dir or tempfile.mkdtemp(prefix="kner-ort-"))
    sentences = dev_sentences()
    checked = sentences[: FLAGS.check_sentences or None]
    models = [Path(FLAGS.model_dir)] if FLAGS.model_dir else FLAGS.sizes
    runs = {}
    for i, model in enumerate(models):
        if FLAGS.model_dir:
            model_dir, model_work = Path(model), work / "trained"
        else:
            model_work = work / model.replace("/", "_")
            model_dir = model_work / "model"
            if not (model_dir / "best.weights.h5").exists():
                random_model_dir(model, model_dir, "crf")
        shape = json.loads((model_dir / "bert_config.json").read_text())
        name = f"{shape['num_hidden_layers']}L/{shape['hidden_size']}"
        print(f"\n== {name} ({'trained: ' + str(model_dir) if FLAGS.model_dir else 'random weights, CRF head'})")
        paths, fused = prepare(model_dir, model_work)
        run = {"fused_ops": fused, "logits": check_logits(paths, [s.text for s in sentences[:32]])}
        run["entities"] = check_entities(paths, checked)
        gc.collect()
        settings = json.loads((model_dir / "settings.json").read_text())
        spec = {
            "paths": paths,
            "max_seq_length": settings["max_seq_length"],
            "batch_sizes": [int(size) for size in FLAGS.batch_sizes],
            "sentences": per_size(FLAGS.sentences, i),
            "latency_sentences": per_size(FLAGS.latency_sentences, i),
            "rounds": FLAGS.rounds,
            "turn_calls": FLAGS.turn_calls,
        }
        run.update(model=shape, sentences=spec["sentences"], latency_sentences=spec["latency_sentences"], timing={})
        for threads in (int(t) for t in FLAGS.threads):
            load = os.getloadavg()[0]
            child = run_child(__file__, {**spec, "threads": threads})
            timing = {"load": [load, child["load"][0]], "peak_rss_mib": child["peak_rss_mib"]}
            timing["cases"] = child["results"]
            if threads >= 2:
                split = run_child(__file__, {**spec, "threads": threads, "split": True})
                timing["load"].append(split["load"][0])
                timing["cases"].update(split["results"])
            print(f"\n{name}, {threads} thread(s): load {load:.1f} -> {child['load'][0]:.1f}")
            timing.update(tables(name, threads, child["results"], FLAGS.batch_sizes))
            run["timing"][str(threads)] = timing
        runs[name] = run
    facts["versions"].update(versions())
    settings = {"model_dir": FLAGS.model_dir, "threads": FLAGS.threads, "batch_sizes": FLAGS.batch_sizes}
    settings.update(rounds=FLAGS.rounds, turn_calls=FLAGS.turn_calls, check_sentences=len(checked))
    write_json(FLAGS.json, {"machine": facts, **settings, "runs": runs})
    if FLAGS.json:
        print(f"\nwrote {FLAGS.json}")


def versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("onnxruntime", "onnx")}


if __name__ == "__main__":
    app.run(main)
