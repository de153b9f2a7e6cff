"""Flags shared by run_pretrain.py, run_classifier.py and run_squad.py: where and in which
precision to run, the model's run options, and the training configuration built from the
optimizer flags.  Only the scripts import this module; the library never reads FLAGS."""
import math
import os

from absl import flags


def define_distribution_flags():
    """--strategy --tpu --num_gpus --num_cpus --precision --seed (defined once per process)."""
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
    flags.DEFINE_integer("seed", 0, "Random seed.")


def define_export_flags():
    """--export_dir --export_version (run_classifier.py, run_squad.py)."""
    if "export_dir" in flags.FLAGS:
        return
    flags.DEFINE_string("export_dir", None, "Write a SavedModel for TF Serving to "
                        "EXPORT_DIR/<version>/.")
    flags.DEFINE_integer("export_version", None, "Version folder number (default: next "
                         "free).")


def define_model_run_flags():
    """--dropout --dropatt --clamp_len --init --init_std --init_range --recompute: the model's
    run options (defined once per process)."""
    if "dropout" in flags.FLAGS:
        return
    flags.DEFINE_float("dropout", 0.1, "Dropout.")
    flags.DEFINE_float("dropatt", 0.1, "Attention dropout.")
    flags.DEFINE_integer("clamp_len", -1, "Clamp relative distances (-1 = off).")
    flags.DEFINE_enum("init", "normal", ["normal", "uniform"], "Initializer.")
    flags.DEFINE_float("init_std", 0.02, "Normal initializer stddev.")
    flags.DEFINE_float("init_range", 0.1, "Uniform initializer range.")
    flags.DEFINE_bool("recompute", False, "Recompute each layer in the backward pass instead "
                      "of keeping its activations (same results, less memory for long "
                      "sequences or large batches, a slower step).")


# one definition of each, shared with the entry points already on xlnet_tf.cli
from xlnet_tf.cli import model_run_options, train_config  # noqa: E402,F401


def fine_tuning_train_config(F, model_dir, count_examples, unit, strategy):
    """TrainConfig of run_classifier.py / run_squad.py: --train_steps, or --num_train_epochs
    over `count_examples()` training examples (`unit` names them in the printed line);
    with --do_train it is validated, and the global batch must split over the replicas.
    Raises ValueError with the message to report."""
    train_steps = F.train_steps
    if F.do_train and F.num_train_epochs is not None:
        n = count_examples()
        train_steps = max(1, math.ceil(n * F.num_train_epochs / F.train_batch_size))
        print(f"--num_train_epochs={F.num_train_epochs}: {n} {unit} / batch "
              f"{F.train_batch_size} -> {train_steps} steps", flush=True)
    tconf = train_config(F, model_dir, train_steps, F.max_seq_length, F.max_save or None)
    if F.do_train:
        tconf.validate()
        if F.train_batch_size % strategy.num_replicas_in_sync:
            raise ValueError(f"--train_batch_size={F.train_batch_size} is not divisible "
                             f"by the {strategy.num_replicas_in_sync} replicas")
    return tconf


def fine_tuning_flag_error(F):
    """The first problem with the training flags run_classifier.py and run_squad.py share
    (schedule, dropout, checkpoints, export version, --init_checkpoint inside
    --output_dir), or None."""
    if F.learning_rate <= 0:
        return f"--learning_rate must be > 0, got {F.learning_rate}"
    if F.num_train_epochs is not None:
        if F["train_steps"].present:
            return "give either --train_steps or --num_train_epochs, not both"
        if not F.num_train_epochs > 0:
            return f"--num_train_epochs must be > 0, got {F.num_train_epochs}"
    elif F.train_steps <= 0:
        return f"--train_steps must be > 0, got {F.train_steps}"
    if F.warmup_steps < 0:
        return f"--warmup_steps must be >= 0, got {F.warmup_steps}"
    for name in ("dropout", "dropatt"):
        if not 0.0 <= getattr(F, name) < 1.0:
            return f"--{name} must be in [0, 1), got {getattr(F, name)}"
    if F.save_steps is not None and F.save_steps <= 0:
        return f"--save_steps must be > 0, got {F.save_steps}"
    if F.export_version is not None and not F.export_dir:
        return "--export_version needs --export_dir"
    if F.init_checkpoint:
        ckpt_dir = F.init_checkpoint if os.path.isdir(F.init_checkpoint) else \
            os.path.dirname(F.init_checkpoint)
        if os.path.abspath(ckpt_dir or ".") == os.path.abspath(F.output_dir):
            return (f"--output_dir {F.output_dir!r} is the folder of --init_checkpoint; "
                    f"fine-tune into a new folder (the original README asks the same)")
    return None
