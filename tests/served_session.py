"""Running an export as TF Serving runs it: a TF1 session over the
SavedModel, one call of `serving_default`, with what TensorFlow reports."""

from pathlib import Path

import tensorflow as tf


def served_call(version: Path, texts: list[str], **options) -> tf.compat.v1.RunMetadata:
    """Calls `serving_default` of the export `version` on `texts` in a TF1
    session; `options` are `tf.compat.v1.RunOptions` fields (a trace level,
    `output_partition_graphs`). Returns the call's RunMetadata."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version))
        signature = meta.signature_def["serving_default"]
        metadata = tf.compat.v1.RunMetadata()
        session.run(
            signature.outputs["num_entities"].name,
            {signature.inputs["text"].name: texts},
            options=tf.compat.v1.RunOptions(**options),
            run_metadata=metadata,
        )
    return metadata
