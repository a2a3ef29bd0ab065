"""`python -m kner.export`: a trained model_dir as a SavedModel for TF Serving.

    python -m kner.export --model_dir=runs/cluener --export_dir=serving/kner

writes `serving/kner/<version>/`, the layout `tensorflow_model_server
--model_base_path=serving/kner` watches (`kner.serving.saved_model`).
"""

from __future__ import annotations

from absl import flags

from kner import cli
from kner.errors import InputError, run_cli
from kner.serving.saved_model import export_model
from kner.serving.text_tagger import COMPUTE_DTYPES


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program: `kner.train`
    imports this module and has its own `--model_dir` and `--export_dir`."""
    flags.DEFINE_string("model_dir", None, "The trained model_dir to export.")
    flags.DEFINE_string("export_dir", None, "TF Serving base path; the version goes in a subdirectory.")
    flags.DEFINE_integer(
        "version", None, "Version number (default: next after the existing ones, or 1).", lower_bound=0
    )
    flags.DEFINE_integer("window_stride", None, "Characters between window starts for long texts (default: half).")
    flags.DEFINE_integer("max_seq_length", None, "Tokens per window (default: the training max_seq_length).")
    flags.DEFINE_enum(
        "compute_dtype",
        "float32",
        list(COMPUTE_DTYPES),
        "bfloat16: store the encoder's weights rounded to bfloat16 and compute its matmuls in bfloat16 (faster on "
        "CPUs with AVX512-BF16 or AMX), the rest in float32; int8: the encoder's projections as dynamic int8 "
        "products (oneDNN; VNNI CPUs), the rest in float32. Tag scores, decoding and entities stay float32.",
    )
    flags.DEFINE_boolean(
        "jit_compile",
        False,
        "Compile the model call and the tag decoding with XLA: lower batch-1 latency for small models, one compile "
        "per batch shape bucket on first use; TF Serving then needs --xla_cpu_compilation_enabled=true. Softmax, "
        "CRF and span heads; float32 only.",
    )
    flags.DEFINE_integer(
        "tensor_parallel",
        1,
        "Split each encoder layer into N independent parts (its attention heads and feed-forward units; "
        "Megatron-LM's tensor parallelism) that TensorFlow runs at once on N inter-op threads: one text on N "
        "cores when served with --tensorflow_intra_op_parallelism=1 --tensorflow_inter_op_parallelism=N. "
        "Divides the heads and the intermediate size.",
        lower_bound=1,
    )
    flags.mark_flags_as_required(["model_dir", "export_dir"])


def main(argv: list[str]) -> None:
    del argv
    cli.quiet_tensorflow()
    values = flags.FLAGS
    try:
        path = export_model(
            values.model_dir,
            values.export_dir,
            values.version,
            values.window_stride,
            values.max_seq_length,
            values.compute_dtype,
            values.jit_compile,
            values.tensor_parallel,
        )
    except InputError:
        raise
    except ValueError as error:  # a window setting the model cannot take
        raise InputError(values.model_dir, None, str(error)) from None
    notes = [f"encoder in {values.compute_dtype}"]
    if values.jit_compile:
        notes.append("under XLA: serve with --xla_cpu_compilation_enabled=true")
    if values.tensor_parallel > 1:
        parts = values.tensor_parallel
        notes.append(
            f"in {parts} parts: serve with --tensorflow_intra_op_parallelism=1 "
            f"--tensorflow_inter_op_parallelism={parts}"
        )
    print(f"exported {path} ({', '.join(notes)})")


if __name__ == "__main__":
    define_flags()
    run_cli(main)
