"""A SavedModel run in a TF1 session, as TF Serving and TensorFlow's C
loader run it (`serving_latency.py`, `distill.py`), and where a call's time
goes by stage of the serving graph (`breakdown`: `serving_latency.py`,
`tokenizer_speed.py`)."""

from __future__ import annotations

import collections
from pathlib import Path

import tensorflow as tf


class Session:
    """A SavedModel in a TF1 session, as TF Serving and the C loader run it:
    `threads` intra-op threads per op, `inter_op_threads` for ops (and
    concurrent calls) side by side."""

    def __init__(self, version: Path, threads: int, inter_op_threads: int = 1):
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=inter_op_threads
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(version))
        signature = meta.signature_def["serving_default"]
        self.feed = signature.inputs["text"].name
        self.fetches = {key: value.name for key, value in signature.outputs.items()}
        library = meta.graph_def.library.function
        self.static_ops = len(meta.graph_def.node) + sum(len(f.node_def) for f in library)

    def __call__(self, texts: list[bytes], **kwargs) -> dict:
        return self.session.run(self.fetches, {self.feed: texts}, **kwargs)

    def trace(self, texts: list[bytes]) -> list[tuple[str, str, float]]:
        """(node name, op, microseconds) of every op run for one call."""
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        metadata = tf.compat.v1.RunMetadata()
        self(texts, options=options, run_metadata=metadata)
        return [
            (node.node_name, _op_type(node.timeline_label), node.all_end_rel_micros)
            for device in metadata.step_stats.dev_stats
            for node in device.node_stats
            if node.node_name not in ("_SOURCE", "_SINK")
        ]


def _op_type(timeline_label: str) -> str:
    """The op of a step-stats timeline label, `name = Op(inputs)`."""
    return timeline_label.split(" = ")[-1].split("(")[0]


# `kner.serving.text_tagger.TextTagger.predict_text`'s name scopes.
STAGES = ("tokenize", "windows", "encoder", "merge", "decode", "entities")


def stage(node_name: str) -> str:
    """The `predict_text` stage an op belongs to, from its name scopes."""
    parts = node_name.split("/")
    return next((part for part in parts if part in STAGES), "other")


def breakdown(version: Path, texts: list[bytes], threads: int, batch: int, calls: int) -> dict:
    """Ops run per call of `batch` consecutive `texts` by stage, their traced
    time (ms, the mean of `calls` traced calls after three untraced), the
    most run op types, the op types' traced time, and the graph's static op
    count, of the export at `version` in a session of `threads` threads."""
    session = Session(version, threads)
    for begin in range(0, 3 * batch, batch):  # warm-up: grappler runs on the first call
        session(texts[begin : begin + batch])
    counts, micros, by_op, op_micros = (collections.Counter() for _ in range(4))
    for begin in range(0, calls * batch, batch):
        for name, op, us in session.trace(texts[begin : begin + batch]):
            counts[stage(name)] += 1
            micros[stage(name)] += us
            by_op[op] += 1
            op_micros[op] += us
    return {
        "traced_ms_by_op": {op: us / calls / 1e3 for op, us in op_micros.most_common(15)},
        "static_ops": session.static_ops,
        "ops_per_call": {name: counts[name] / calls for name in (*STAGES, "other")},
        "traced_ms_per_call": {name: micros[name] / calls / 1e3 for name in (*STAGES, "other")},
        "most_run_ops": {op: n / calls for op, n in by_op.most_common(12)},
    }
