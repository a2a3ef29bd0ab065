"""Backbones: each checkpoint family, read from and written to its original
format. `tf1_checkpoint` is the shared TF1 reader/writer, `weight_table` maps
checkpoint names to Keras variables, `config_file` reads the JSON configs,
`encoder` is the `EncoderBackbone` of ALBERT and ELECTRA; `bert`, `albert`
and `electra` are the Google-layout families, `huggingface` safetensors
directories, `keras_hub_preset` keras-hub presets, and `loader` the entry
points (find, detect the family, load, write back, inspect).
`kner.checkpoint` is the public face of this package."""
