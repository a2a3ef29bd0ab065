"""Text and labels in, padded id batches out: corpus formats (`corpus`:
CLUENER JSON, character columns, CoNLL words), tag schemes (`tags`), entity
spans (`spans`), word-level sentences (`words`), the label vocabulary
(`labels`), vocab files (`vocab`), the tokenizers behind one interface
(`tokenizer_base`; `tokenizer`: one token per character; `wordpiece` with
`basic_tokenizer`: BERT's WordPiece; `tokenizer_registry`: by name), the
labelled units among the tokens (`units`) and the tf.data pipeline
(`pipeline`). `python -m kner.data` is its command line
(`__main__`)."""
