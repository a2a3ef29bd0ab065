"""`tf.distribute` strategies by name, and who writes files in a cluster.

Example:
>>> strategy = make_strategy("mirrored")
>>> with strategy.scope():
...     model = build()
>>> if is_chief(strategy):
...     write_report()
"""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (all local devices),
    `multi_worker` (hosts from `TF_CONFIG`), `tpu` (`tpu` address or name)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def worker_id(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task id) of this process; (None, 0) outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes reports, summaries and exports."""
    task_type, task_id = worker_id(strategy)
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
