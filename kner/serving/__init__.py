"""Text in, entities out, as one graph: `TextTagger` (`text_tagger`), long
texts cut into windows (`windows`), the SavedModel export (`saved_model`)
and the Python API `Predictor` (`predictor`)."""
