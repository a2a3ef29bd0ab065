"""Does a change leave the exported graph's answers alone? Exports the same
random model_dirs with this checkout and with `--before` (a kner checkout,
for example `mkdir -p runs/kner_before && git archive main | tar -x -C runs/kner_before`), runs both
SavedModels in a TF1 session (as TF Serving and the C loader do) on every
CLUENER dev text in batches of 32 and on the first `--single` one by one
(plus a 340-character text, an empty one and emoji with control
characters), checks that every output is identical, and counts the ops the
executor runs per call (batch 1 and batch 32; ops are deterministic, so the
counts do not depend on the machine's load). No timing.

Each of `--heads` x `--max_seq_lengths` is one export pair (2L/128, CLUENER's
labels, the BERT vocab; `--heads=softmax_argmax` is a softmax model saved
with `--decode=argmax`).

    PYTHONPATH=. .venv/bin/python bench/export_diff.py --before=runs/kner_before \\
        # -> bench/results/export_diff.json
"""

from __future__ import annotations

# isort: off
import common  # noqa: F401  (first: thread settings shared by the benchmarks)

# isort: on
import json
import tempfile
from pathlib import Path

import numpy as np
from absl import app, flags
from common import JSON_HELP, ROOT, SHARED, machine, print_table, result_file, write_json
from kner_side import export, random_model_dir
from tf_session import Session

from kner.data.corpus import read_corpus
from kner.models.artifacts import SETTINGS

FLAGS = flags.FLAGS
flags.DEFINE_string("before", None, "The kner checkout to compare with.", required=True)
flags.DEFINE_list("heads", ["crf", "softmax", "softmax_argmax"], "Models to export.")
flags.DEFINE_list("max_seq_lengths", ["128", "24"], "Export window sizes (24: CLUENER texts span windows).")
flags.DEFINE_integer("single", 150, "Texts sent one by one.")
flags.DEFINE_integer("trace_calls", 20, "Calls whose ops are counted, per batch size.")
flags.DEFINE_string("work_dir", None, "Where model_dirs and exports go (default: a temporary directory).")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/export_diff.json.")


def model_dir(work: Path, head: str) -> Path:
    path = work / f"model_{head}"
    if not (path / "best.weights.h5").exists():
        name, _, decode = head.partition("_")
        random_model_dir("2L/128", path, name)
        if decode:
            settings = json.loads((path / SETTINGS).read_text())
            (path / SETTINGS).write_text(json.dumps({**settings, "decode": decode}))
    return path


def differences(sessions: dict[str, Session], texts: list[bytes]) -> list[str]:
    """The outputs that differ between the two exports, per call."""
    found = []
    calls = [texts[i : i + 32] for i in range(0, len(texts), 32)] + [[t] for t in texts[: FLAGS.single]]
    for batch in calls:
        before, after = (session(batch) for session in sessions.values())
        if sorted(before) != sorted(after):
            return [f"outputs {sorted(before)} against {sorted(after)}"]
        found += [f"{key} of {len(batch)} texts" for key in before if not np.array_equal(before[key], after[key])]
    return found


def ops_per_call(session: Session, texts: list[bytes], size: int) -> float:
    for begin in range(0, 3 * size, size):  # warm-up: grappler runs on the first call
        session(texts[begin : begin + size])
    counts = [len(session.trace(texts[i : i + size])) for i in range(0, FLAGS.trace_calls * size, size)]
    return float(np.mean(counts))


def main(argv) -> None:
    del argv
    work = Path(FLAGS.work_dir or tempfile.mkdtemp())
    texts = [s.text.encode() for s in read_corpus(SHARED / "cluener" / "dev.json")]
    texts += ["张三在北京出差，李小四去了上海市。".encode() * 20, b"", "😀\x01\t".encode()]
    roots = {"before": Path(FLAGS.before), "after": ROOT}
    rows, runs = [], {}
    for head in FLAGS.heads:
        for length in FLAGS.max_seq_lengths:
            name = f"{head}_{length}"
            versions = {
                side: export(model_dir(work, head), work / name / side, "float32", root, f"--max_seq_length={length}")
                for side, root in roots.items()
            }
            sessions = {side: Session(version, 1) for side, version in versions.items()}
            found = differences(sessions, texts)
            ops = {side: {size: ops_per_call(s, texts, size) for size in (1, 32)} for side, s in sessions.items()}
            runs[name] = {"differences": found, "ops_per_call": ops}
            rows.append(
                [name, "identical" if not found else "; ".join(found[:3]), *(ops[s][n] for n in (1, 32) for s in roots)]
            )
            print(json.dumps({name: runs[name]}), flush=True)
    header = ["export", "outputs", "ops batch-1 before", "after", "ops batch-32 before", "after"]
    results = {"machine": machine(), "runs": runs, "table": print_table(header, rows)}
    write_json(result_file("export_diff") if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
