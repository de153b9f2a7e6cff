"""Flags shared by run_pretrain.py, run_classifier.py and run_squad.py: where and in which
precision to run.  Only the scripts import this module; the library never reads FLAGS."""
from absl import flags


def define_distribution_flags():
    """--strategy --tpu --num_gpus --num_cpus --precision --recompute --seed (defined once
    per process)."""
    if "strategy" in flags.FLAGS:
        return
    flags.DEFINE_enum("strategy", "one_device", ["one_device", "mirrored",
                                                 "multi_worker_mirrored", "tpu"],
                      "tf.distribute strategy.")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (--strategy=tpu).")
    flags.DEFINE_float("tpu_timeout", 60.0, "Seconds to wait for the TPU (--strategy=tpu) before "
                       "giving up: an unserved grpc:// address would hang.")
    flags.DEFINE_integer("num_gpus", None, "GPUs for --strategy=mirrored (default all).")
    flags.DEFINE_integer("num_cpus", None, "Split the CPU into N logical devices (mirrored on "
                         "a machine without GPUs).")
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                      "Compute precision (variables stay float32).")
    flags.DEFINE_bool("recompute", False, "Recompute each layer in the backward pass instead "
                      "of keeping its activations (same results, less memory for long "
                      "sequences or large batches, a slower step).")
    flags.DEFINE_integer("seed", 0, "Random seed.")


def define_export_flags():
    """--export_dir --export_version (run_classifier.py, run_squad.py)."""
    if "export_dir" in flags.FLAGS:
        return
    flags.DEFINE_string("export_dir", None, "Write a SavedModel for TF Serving to "
                        "EXPORT_DIR/<version>/.")
    flags.DEFINE_integer("export_version", None, "Version folder number (default: next "
                         "free).")
