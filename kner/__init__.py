"""kner: Chinese NER on Keras 3.

`kner.Predictor` (see `kner.predict`) is imported on first use, so that
`import kner` stays light.
"""


def __getattr__(name: str):
    if name in ("Predictor", "Entity"):
        from kner import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'kner' has no attribute {name!r}")
