"""TF Serving's warm-up requests for an XLA export (`kner.export --jit_compile`).

TF Serving runs the requests of `assets.extra/tf_serving_warmup_requests`
(a TFRecord file of `tensorflow.serving.PredictionLog`s) when it loads a
version, before the version takes traffic. An XLA export compiles each shape
bucket on its first call (`kner.serving.xla`), so `write_warmup_requests`
writes one single-text request for each bucket a one-text request can reach:
texts of lengths that hit every bucket of the encoder's positions (`[CLS]`,
the text, `[SEP]`) and of the decoding's (the text and one padding
position), up to one window. Requests of several texts compile their row
buckets on first use.

Format: tensorflow/serving, `tensorflow_serving/apis/prediction_log.proto`
and the SavedModel warm-up guide (https://www.tensorflow.org/tfx/serving/saved_model_warmup).

Example:
>>> write_warmup_requests(Path("serving/kner/1"), window=126, per_character=True)
PosixPath('serving/kner/1/assets.extra/tf_serving_warmup_requests')
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from kner.serving.xla import LENGTH_STEP, bucket

WARMUP_REQUESTS = Path("assets.extra") / "tf_serving_warmup_requests"


def warmup_lengths(window: int) -> list[int]:
    """Text lengths (tokens, 0..`window`) whose one-text requests reach every
    shape bucket of the encoder (length + 2 positions) and of the tag
    decoding (length + 1): the shortest length of each bucket."""
    lengths = tf.range(window + 1)
    chosen = set()
    for extra in (2, 1):
        buckets = bucket(lengths + extra, LENGTH_STEP).numpy()
        chosen |= {int(lengths[list(buckets).index(size)]) for size in set(buckets)}
    return sorted(chosen)


def warmup_text(length: int, per_character: bool) -> str:
    """A text of `length` tokens: "x" per character, or "x" words for a
    WordPiece vocabulary (each a single token)."""
    return "x" * length if per_character else " ".join(["x"] * length)


def write_warmup_requests(version_dir: Path, window: int, per_character: bool) -> Path:
    """Writes `version_dir/assets.extra/tf_serving_warmup_requests`: a
    `serving_default` request of one text per length of `warmup_lengths`.
    Returns the file's path."""
    path = version_dir / WARMUP_REQUESTS
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for length in warmup_lengths(window):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name="serving_default"))
            request.inputs["text"].CopyFrom(tf.make_tensor_proto([warmup_text(length, per_character).encode()]))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
