"""Where peak training memory goes: RSS after importing the framework, after
building the model and optimizer, and after each of the first training steps,
kner against the PyTorch reference, each in a child process of its own.

Same step as `train_speed.py` (softmax head, batch 32, 128-token sentences).
The kner child imports `kner.cli` first, as `python -m kner.train` does.
Peak = `ru_maxrss` at that point; now = `VmRSS`.

    PYTHONPATH=. .venv/bin/python bench/memory.py --size=4L/256   # -> bench/results/memory.json#4L
"""

from __future__ import annotations

import json

from absl import app, flags
from common import (
    JSON_HELP,
    NUM_TAGS,
    bert_config,
    child_result,
    machine,
    print_table,
    random_batches,
    result_file,
    rss,
    run_child,
    write_json,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "4L/256", "Model size.")
flags.DEFINE_list("sides", ["torch", "torch_bf16", "kner", "kner_bf16"], "What to measure.")
flags.DEFINE_integer("steps", 3, "Training steps.")
flags.DEFINE_string("json", None, JSON_HELP + "bench/results/memory.json#<layers>L.")
flags.DEFINE_string("child", None, "Internal: run one measurement (JSON spec).")


def child(spec: dict) -> None:
    from common import set_threads

    side, config = spec["side"], bert_config(spec["size"], 21128)
    batch = random_batches(32, 128, 1, 21128, NUM_TAGS)[0]
    stages = {}
    if side.startswith("torch"):
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from torch_reference import TorchTagger, make_optimizer, to_torch, train_step

        stages["import"] = rss()
        set_threads(2)
        model = TorchTagger(config, NUM_TAGS)
        optimizer, scheduler = make_optimizer(model, 1e-3, 5e-3, 0.01, 10, 10_000)
        stages["model and optimizer"] = rss()
        inputs = to_torch(batch)
        for step in range(spec["steps"]):
            train_step(model, optimizer, scheduler, inputs, bfloat16=side == "torch_bf16")
            stages[f"step {step + 1}"] = rss()
    else:
        # isort: off
        import kner.cli  # noqa: F401  (first, as in kner.train: it keeps tensorflow-text out)

        # isort: on
        import keras
        import kner_side

        stages["import"] = rss()
        set_threads(2)
        if side == "kner_bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        step_function = kner_side.train_step(kner_side.tagger(config), False, total_steps=10_000)
        stages["model and optimizer"] = rss()
        inputs = kner_side.to_tensorflow(batch)
        for step in range(spec["steps"]):
            step_function(inputs).numpy()
            stages[f"step {step + 1}"] = rss()
    child_result({"stages": stages})


def main(argv) -> None:
    del argv
    if FLAGS.child:
        child(json.loads(FLAGS.child))
        return
    results = {"machine": machine(), "size": FLAGS.size, "sides": {}}
    for side in FLAGS.sides:
        results["sides"][side] = run_child(__file__, {"side": side, "size": FLAGS.size, "steps": FLAGS.steps})
    names = list(next(iter(results["sides"].values()))["stages"])
    rows = [[name, *(r["stages"][name][0] for r in results["sides"].values())] for name in names]
    print(f"{FLAGS.size}, batch 32 x 128 tokens: peak RSS MiB after each stage")
    results["table"] = print_table(["stage", *FLAGS.sides], rows)
    default = result_file("memory", FLAGS.size.split("/")[0])
    write_json(default if FLAGS.json is None else FLAGS.json, results)


if __name__ == "__main__":
    app.run(main)
