"""Training: the loop under every `tf.distribute` strategy (`trainer`), the
PyTorch-equivalent AdamW (`optimization`), strategy set-up (`distribute`)
and a GELU that keeps less for the backward pass (`lean_gelu`)."""
