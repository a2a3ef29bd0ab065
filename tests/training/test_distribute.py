import types

import pytest
import tensorflow as tf

from kner.training.distribute import is_chief, make_strategy, worker_id


def in_cluster(cluster: dict, task_type: str, task_id: int):
    """A stand-in strategy that only has a cluster resolver."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_one_process_is_the_chief():
    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy()
    assert worker_id(strategy) == (None, 0) and is_chief(strategy)


@pytest.mark.parametrize(
    "cluster, task, chief",
    [
        ({"worker": ["a:1", "b:1"]}, ("worker", 0), True),
        ({"worker": ["a:1", "b:1"]}, ("worker", 1), False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, ("chief", 0), True),
        ({"chief": ["c:1"], "worker": ["a:1"]}, ("worker", 0), False),
    ],
)
def test_the_chief_of_a_cluster(cluster, task, chief):
    strategy = in_cluster(cluster, *task)
    assert worker_id(strategy) == task
    assert is_chief(strategy) == chief


def test_unknown_strategy():
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("parameter_server")
