"""A SavedModel run in a TF1 session, as TF Serving and TensorFlow's C
loader run it (`serving_latency.py`, `distill.py`)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


class Session:
    """A SavedModel in a TF1 session, as TF Serving and the C loader run it."""

    def __init__(self, version: Path, threads: int):
        self.graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
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
