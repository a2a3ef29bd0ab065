"""Heads and whole models: the CRF (`crf`), the tagger (`tagger`) and what a
trained model_dir holds (`artifacts`)."""
