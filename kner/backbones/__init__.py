"""Backbones: each checkpoint family, read from and written to its original
format (`tf1_checkpoint` is the shared TF1 reader/writer, `bert` the Google
BERT layout, `huggingface` safetensors directories, `loader` the entry
points). `kner.checkpoint` is the public face of this package."""
