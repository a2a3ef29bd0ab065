"""Text and labels in, padded id batches out: corpus formats (`corpus`), tag
schemes (`tags`), entity spans (`spans`), the label vocabulary (`labels`),
the character tokenizer (`tokenizer`) and the tf.data pipeline
(`pipeline`). `python -m kner.data` is its command line (`__main__`)."""
