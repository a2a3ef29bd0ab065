"""Heads and whole models: the CRF layer (`crf`), the heads a tagger can
have (`heads`, with their registry `HEADS`), the tagger (`tagger`), what a
trained model_dir holds (`artifacts`), and the pretraining recipes behind one
interface (`pretraining`)."""
