"""float32 against bfloat16 `tf.matmul` on this CPU: GFLOP/s of square
matrices, 2 intra-op threads, best of 3 timed passes of about 20 GFLOP each.
Is it worth computing in bfloat16 here (AVX512-BF16 or AMX)?

    PYTHONPATH=. .venv/bin/python bench/matmul.py
"""

import os
import time

import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
print("load", os.getloadavg())
for n in (768, 2048):
    rates = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((n, n)), dtype)
        b = tf.cast(tf.random.normal((n, n)), dtype)
        matmul = tf.function(tf.matmul)
        matmul(a, b).numpy()
        repeats = max(3, int(2e10 / (2 * n**3)))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(repeats):
                product = matmul(a, b)
            product.numpy()
            best = min(best, (time.perf_counter() - started) / repeats)
        rates[dtype.name] = 2 * n**3 / best / 1e9
    print(
        f"{n}x{n}: float32 {rates['float32']:.1f}, bfloat16 {rates['bfloat16']:.1f} GFLOP/s, "
        f"ratio {rates['bfloat16'] / rates['float32']:.2f}"
    )
