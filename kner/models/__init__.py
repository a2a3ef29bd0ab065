"""Heads and whole models: the CRF (`crf`), the tagger (`tagger`), what a
trained model_dir holds (`artifacts`), and the pretraining recipes behind one
interface (`pretraining`)."""
