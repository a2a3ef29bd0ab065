"""Helpers shared by the benchmarks: model sizes, batches, child processes,
machine facts, tables and JSON.

Every measurement that reports memory runs in a child process of its own
(`run_child`), so that its peak RSS (`ru_maxrss`) belongs to one framework
and one configuration only. Batches are built once in the parent, with
kner's tokenizer and length bucketing, and handed to both sides as one
`.npz` file: kner and the PyTorch reference see the same token ids.

Example:
>>> batches = cluener_batches(batch_size=32, count=10)
>>> save_batches(batches, "runs/batches.npz")
>>> result = run_child(__file__, {"side": "torch", "batches": "runs/batches.npz"})
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

# PyTorch's OpenMP threads spin while they wait, by default. On this shared
# 2-core machine that made its steps 2-4x slower whenever other processes ran
# (see README); TensorFlow's thread pool backs off by itself. Set before torch
# loads its OpenMP runtime: import this module before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BERT_VOCAB = SHARED / "vocab" / "bert-base-chinese-vocab.txt"
ENGLISH_CASED_VOCAB = SHARED / "vocab" / "bert-base-cased-vocab.txt"

# The dataset's 10 types, as kner.metrics.CLUENER_TYPES. Repeated so that this module, imported before
# torch, loads nothing more (kner.metrics pulls in seqeval and scikit-learn, with an OpenMP runtime).
CLUENER_TYPES = (
    "address",
    "book",
    "company",
    "game",
    "government",
    "movie",
    "name",
    "organization",
    "position",
    "scene",
)
NUM_TAGS = 1 + 3 * len(CLUENER_TYPES)  # O, then B-, I-, S- of each type (BIOS)
# name -> (layers, hidden); heads = hidden / 64, FFN = 4 * hidden (2L/128 = flags/tiny_bert_config.json).
SIZES = {"2L/128": (2, 128), "4L/256": (4, 256), "12L/768": (12, 768)}


def bert_config(size: str, vocab_size: int) -> dict:
    """A Google `bert_config.json` of one of `SIZES`."""
    layers, hidden = SIZES[size]
    return {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": 512,
        "num_attention_heads": hidden // 64,
        "num_hidden_layers": layers,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }


def set_threads(threads: int) -> None:
    """The same thread counts for whichever framework this process imported:
    `threads` for the ops, one for running independent ops side by side."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)


def machine() -> dict:
    """Date, CPU, load and library versions, for the JSON of every run."""
    versions = {}
    for name in ("tensorflow", "keras", "keras-hub", "torch", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "versions": versions,
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# ---- batches ---------------------------------------------------------------


def cluener_batches(batch_size: int, count: int, max_seq_length: int = 128, seed: int = 0) -> list[dict]:
    """`count` training batches of CLUENER train as kner makes them: bucketed
    by length, padded to their longest sentence, BERT vocab, BIOS labels.
    Each is a dict of numpy arrays: token_ids, padding_mask, label_ids."""
    from kner.data.corpus import read_corpus
    from kner.data.labels import LabelVocab
    from kner.data.pipeline import plan_batches
    from kner.data.tokenizer import CharTokenizer

    sentences = read_corpus(SHARED / "cluener" / "train.json")
    labels = LabelVocab.from_sentences(sentences, "bios")
    tokenizer = CharTokenizer(BERT_VOCAB)
    texts = [s.text[: max_seq_length - 2] for s in sentences]
    plan = plan_batches([len(t) for t in texts], batch_size, seed=seed)[:count]
    return [
        pad_batch(
            [tokenizer.encode(texts[i]) for i in indices],
            [labels.encode(sentences[i].spans, len(sentences[i].text))[: max_seq_length - 2] for i in indices],
            tokenizer,
        )
        for indices in plan
    ]


def wnut17_batches(batch_size: int, count: int, max_seq_length: int = 128, seed: int = 0) -> tuple[list[dict], object]:
    """`count` training batches of WNUT-17 train (word-level CoNLL, BIO) as
    `python -m kner.train --flagfile=flags/english_cased.cfg` makes them:
    Google's English cased WordPiece vocab, labels on the first sub-token of
    each word (`kner.data.units.WordUnits`), bucketed and padded by kner's
    pipeline. Each batch is a dict of numpy arrays as `cluener_batches`'s,
    `label_ids` at token positions (0 off the units), plus `label_mask`
    (True on the labelled units) and `text` (the sentences, for checks).
    Returns the batches and the `LabelVocab`."""
    from kner.data.corpus import read_corpus
    from kner.data.labels import LabelVocab
    from kner.data.pipeline import encode, plan_batches
    from kner.data.units import WordUnits
    from kner.data.wordpiece import WordPieceTokenizer

    sentences = read_corpus(SHARED / "wnut17" / "train.conll", tag_scheme="bio")
    labels = LabelVocab.from_sentences(sentences, "bio")
    tokenizer = WordPieceTokenizer(ENGLISH_CASED_VOCAB, lowercase=False)
    data = encode(sentences, tokenizer, labels, max_seq_length - 2, WordUnits())
    features = data.batch_function(tokenizer)
    batches = []
    for indices in plan_batches(data.lengths, batch_size, seed=seed)[:count]:
        batch = {key: value.numpy() for key, value in features(indices.astype(np.int64)).items()}
        mask = batch["label_mask"]
        units = batch["label_ids"]  # [B, L - 1], unit i of a row at its i-th True of `label_mask`
        label_ids = np.zeros(mask.shape, np.int32)
        for row in range(len(mask)):
            positions = np.flatnonzero(mask[row])
            label_ids[row, positions] = units[row, : len(positions)]
        batches.append(
            {
                "token_ids": batch["token_ids"],
                "padding_mask": batch["padding_mask"],
                "label_mask": mask,
                "label_ids": label_ids,
                "text": np.array([sentences[i].text for i in indices], object),
            }
        )
    return batches, labels


def pad_batch(char_ids: list[list[int]], label_ids: list[list[int]] | None, tokenizer) -> dict:
    """`[CLS] chars [SEP]` padded to the longest row, as `kner.data.pipeline.to_features`."""
    length = max(len(row) for row in char_ids) + 2
    batch = {
        "token_ids": np.full((len(char_ids), length), tokenizer.pad_id, np.int32),
        "padding_mask": np.zeros((len(char_ids), length), bool),
        "label_ids": np.zeros((len(char_ids), length), np.int32),
    }
    for row, chars in enumerate(char_ids):
        batch["token_ids"][row, : len(chars) + 2] = [tokenizer.cls_id, *chars, tokenizer.sep_id]
        batch["padding_mask"][row, : len(chars) + 2] = True
        if label_ids is not None:
            batch["label_ids"][row, 1 : len(chars) + 1] = label_ids[row]
    return batch


def random_batches(batch_size: int, length: int, count: int, vocab_size: int, num_labels: int) -> list[dict]:
    """`count` batches of `length` tokens, every position real (no padding)."""
    rng = np.random.default_rng(0)
    return [
        {
            "token_ids": rng.integers(6, vocab_size, (batch_size, length), dtype=np.int32),
            "padding_mask": np.ones((batch_size, length), bool),
            "label_ids": rng.integers(0, num_labels, (batch_size, length), dtype=np.int32),
        }
        for _ in range(count)
    ]


def subset(path: Path, limit: int, work_dir: Path) -> Path:
    """A file of the first `limit` sentences of corpus `path` (read leniently),
    in `work_dir`, in the same format (column files in BIO); `path` itself
    when `limit` is 0."""
    if not limit:
        return path
    from kner.data.corpus import detect_format, read_corpus, write_corpus

    sentences = read_corpus(path, strict=False)[:limit]
    target = work_dir / f"{path.parent.name}_{path.stem}_{limit}{path.suffix}"
    fmt = detect_format(path)
    write_corpus(target, sentences, "bio" if fmt == "column" else fmt)
    return target


def save_batches(batches: list[dict], path: str | Path) -> None:
    np.savez(path, **{f"{i}/{key}": value for i, batch in enumerate(batches) for key, value in batch.items()})


def load_batches(path: str | Path) -> list[dict]:
    data = np.load(path)
    batches: dict[int, dict] = {}
    for name in data.files:
        index, key = name.split("/")
        batches.setdefault(int(index), {})[key] = data[name]
    return [batches[i] for i in sorted(batches)]


def char_mask(padding_mask: np.ndarray) -> np.ndarray:
    """True on character positions (not [CLS], [SEP] or padding)."""
    lengths = padding_mask.sum(axis=1) - 2
    positions = np.arange(padding_mask.shape[1])[None]
    return (positions >= 1) & (positions <= lengths[:, None])


# ---- child processes -------------------------------------------------------


def run_child(script: str | Path, spec: dict) -> dict:
    """Runs `python script --child=<spec as JSON>` in a fresh interpreter and
    returns the JSON object it printed last (see `child_result`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(script), f"--child={json.dumps(spec)}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if done.returncode:
        raise RuntimeError(f"child {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rss() -> list[int]:
    """[peak, current] RSS of this process in MiB (`ru_maxrss`, `VmRSS`)."""
    current = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS"))
    return [round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), round(int(current.split()[1]) / 1024)]


def child_result(result: dict) -> None:
    """Prints `result` plus this process's peak RSS in MiB, for `run_child`."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({**result, "peak_rss_mib": peak}), flush=True)


# ---- output ----------------------------------------------------------------


def print_table(header: list[str], rows: list[list]) -> str:
    """Prints (and returns) an aligned Markdown table."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return "—" if value is None else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 1) + (":" if n else "-") for w, n in zip(widths, numeric)) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


RESULTS = "bench/results"
JSON_HELP = (
    "Where the results go: FILE, or FILE#KEY to put this run under KEY of FILE beside its other runs "
    "('' for nowhere). Default: "
)


def result_file(name: str, key: str | None = None) -> str:
    """The stable place of a table's current result, `bench/results/NAME.json`,
    or `bench/results/NAME.json#KEY` for one run of a table fed by several."""
    return f"{RESULTS}/{name}.json" + (f"#{key}" if key else "")


def write_json(path: str | Path | None, results: dict) -> None:
    """Writes `results` with the load at the end. `FILE#KEY` replaces the run
    under KEY of FILE and keeps its other runs. Paths inside the checkout are
    written relative to it (`runs/...`, `../shared/data/...`), so a result
    file names no machine's folders."""
    if not path:
        return
    file, _, key = str(path).partition("#")
    results = _relative({**results, "loadavg_at_end": os.getloadavg()})
    if key:
        runs = json.loads(Path(file).read_text(encoding="utf-8")) if Path(file).exists() else {}
        results = {**runs, key: results}
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    Path(file).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)


def _relative(value):
    """`value` with the checkout's absolute path (and its parent's) made relative."""
    if isinstance(value, str):
        return value.replace(f"{ROOT}/", "").replace(f"{ROOT.parent}/", "../")
    if isinstance(value, dict):
        return {key: _relative(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(item) for item in value]
    return value
