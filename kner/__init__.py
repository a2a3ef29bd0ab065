"""kner: Chinese NER on Keras 3.

The folders are the pipeline, and imports run one way through them:

    data/       text and labels in, padded id batches out
    backbones/  each checkpoint family, read and written
    models/     the CRF, the tagger, a model_dir's artifacts
    serving/    text in, entities out, one graph (and its export)
    training/   the loop, the optimizer, strategies

`python -m kner.X` entry points: `data`, `checkpoint`, `train`, `export`,
`predict`, `report`. `kner.Predictor` and `kner.Entity` (`kner.serving.predictor`) are
imported on first use, so that `import kner` stays light.

Started as `python -m kner.X`, kner first hides TensorFlow's start-up
notices (`kner.cli.quiet_startup`; `--verbosity=1` shows them): this file
runs before the entry point imports TensorFlow. Imported as a library, it
changes nothing.
"""

import sys


def _run_as_cli() -> bool:
    """Whether this process is `python -m kner...` (checked while Python is
    still locating that module, before it imports TensorFlow)."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"]:
        return False
    for i, arg in enumerate(argv[1:], 1):
        module = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else arg[2:] if arg.startswith("-m") else None
        if module is not None:
            return module == "kner" or module.startswith("kner.")
    return False


if _run_as_cli():
    from kner import cli

    cli.quiet_startup(sys.argv)


def __getattr__(name: str):
    if name in ("Predictor", "Entity"):
        from kner.serving import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'kner' has no attribute {name!r}")
