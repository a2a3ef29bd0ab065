"""kner: Chinese NER on Keras 3.

The folders are the pipeline, and imports run one way through them:

    data/       text and labels in, padded id batches out
    backbones/  each checkpoint family, read and written
    models/     the CRF, the tagger, a model_dir's artifacts
    serving/    text in, entities out, one graph (and its export)
    training/   the loop, the optimizer, strategies

`python -m kner.X` entry points: `data`, `checkpoint`, `train`, `export`,
`predict`. `kner.Predictor` and `kner.Entity` (`kner.serving.predictor`) are
imported on first use, so that `import kner` stays light.
"""


def __getattr__(name: str):
    if name in ("Predictor", "Entity"):
        from kner.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'kner' has no attribute {name!r}")
