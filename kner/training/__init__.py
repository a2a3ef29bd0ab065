"""Training: the loop under every `tf.distribute` strategy (`trainer`), the
PyTorch-equivalent AdamW (`optimization`) and strategy set-up
(`distribute`)."""
