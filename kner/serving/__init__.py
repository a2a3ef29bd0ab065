"""Text in, entities out, as one graph: `TextTagger` (`text_tagger`), long
texts cut into windows (`windows`), the SavedModel export (`saved_model`)
and the Python API `Predictor` (`predictor`)."""

import sys

from kner.startup_noise import notices_hidden

if "tensorflow" not in sys.modules:  # its start-up notices, when the Python API (kner.Predictor) imports it
    with notices_hidden():
        import tensorflow  # noqa: F401
