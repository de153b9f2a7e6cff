"""One command-line style for every entry point: the ``run_*.py`` scripts and the
``python -m xlnet_tf...`` commands.

Each entry point defines its flags in a function ``define_flags(fv)`` on a FRESH
``absl.flags.FlagValues`` (never the process-global ``flags.FLAGS``), and its ``main(F)``
takes the parsed values.  So a script can be imported, and run in-process, any number of
times (tests do), two scripts can define the same flag with different defaults, and the
library never reads global flags.

:func:`run` parses (``--flagfile`` included), then calls ``main``; it turns every kind of
user error into ONE line on stderr and an exit code, never a traceback:

* ``--help`` / ``-h``: the entry point's documentation and flags, exit 0;
* a bad flag, or :class:`UsageError` / ``ValueError`` / ``FileNotFoundError`` /
  :class:`xlnet_tf.io.WriteError` from ``main``: ``prog: error: <message>``, exit 2;
* Ctrl-C: ``prog: interrupted ...`` with the entry point's hint (e.g. that rerunning the
  same command resumes), exit 130.

Set ``XLNET_TF_TRACEBACK=1`` to see the traceback of an error instead.
"""
import logging
import math
import os
import sys

from absl import flags

_HELP = ("--help", "-h", "--helpfull", "-help")


class UsageError(Exception):
    """A mistake in the command line or the inputs it names: the message says what to do."""


def fail(message):
    """Stop the entry point with ``message`` (exit 2)."""
    raise UsageError(message)


def setup_logging(verbose=False):
    """One logging style: ``time message`` lines of the ``xlnet_tf`` logger on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("xlnet_tf").setLevel(logging.DEBUG if verbose else logging.INFO)


def parse(define_flags, argv, prog):
    """A fresh FlagValues with the entry point's flags, parsed from ``argv`` (without the
    program name).  Raises UsageError for a bad command line.

    An entry point that takes positional arguments names the flags they fill, in order, in
    the attribute ``define_flags.positional`` (e.g. ``("data_file", "pred_file")``); without
    it arguments that are not flags are ignored."""
    fv = flags.FlagValues()
    define_flags(fv)
    positional = tuple(getattr(define_flags, "positional", ()))
    try:
        rest = fv([prog, *argv])[1:]
        if positional:
            if len(rest) > len(positional):
                raise UsageError(f"unexpected argument(s) {rest[len(positional):]}; expected "
                                 f"{' '.join(positional)} (see {prog} --help)")
            for name, value in zip(positional, rest):
                if fv[name].present:
                    raise UsageError(f"{name} given twice, as --{name} and as the argument "
                                     f"{value!r} (see {prog} --help)")
                fv[name].parse(value)
    except flags.Error as e:
        raise UsageError(f"{e} (see {prog} --help)") from None
    return fv


def help_text(define_flags, doc, prog):
    fv = flags.FlagValues()
    define_flags(fv)
    text = (doc or "").strip()
    listing = fv.get_help(include_special_flags=False)
    return f"{text}\n\nFlags of {prog}:\n{listing}\n" if text else f"{prog}\n{listing}\n"


def run(define_flags, main, argv=None, *, prog=None, doc=None, interrupt_hint=""):
    """Parse ``argv`` (default ``sys.argv[1:]``), run ``main(F)``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0] or "xlnet_tf")
    if any(a in _HELP for a in argv):
        sys.stdout.write(help_text(define_flags, doc, prog))
        return 0
    debug = os.environ.get("XLNET_TF_TRACEBACK") == "1"
    try:
        F = parse(define_flags, argv, prog)
        result = main(F)
        return int(result or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\n{prog}: interrupted{'; ' + interrupt_hint if interrupt_hint else ''}",
              file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, OSError) as e:
        if debug or not _is_user_error(e):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def _is_user_error(e):
    from xlnet_tf.io import WriteError
    if isinstance(e, (UsageError, ValueError, FileNotFoundError, WriteError)):
        return True
    # other OSErrors that name a path (permissions, a folder where a file is expected)
    return isinstance(e, OSError) and bool(getattr(e, "filename", None))


def main_entry(define_flags, main, *, doc=None, interrupt_hint=""):
    """``if __name__ == "__main__": cli.main_entry(define_flags, main, doc=__doc__)``"""
    sys.exit(run(define_flags, main, doc=doc, interrupt_hint=interrupt_hint))


# ----------------------------------------------------------------- flags the scripts share
def define_distribution_flags(fv):
    """--strategy --tpu --tpu_timeout --num_gpus --num_cpus --precision --seed."""
    flags.DEFINE_enum("strategy", "one_device", ["one_device", "mirrored",
                                                 "multi_worker_mirrored", "tpu"],
                      "tf.distribute strategy.", flag_values=fv)
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address (--strategy=tpu).",
                        flag_values=fv)
    flags.DEFINE_float("tpu_timeout", 60.0, "Seconds to wait for the TPU (--strategy=tpu) "
                       "before giving up: an unserved grpc:// address would hang.",
                       flag_values=fv)
    flags.DEFINE_integer("num_gpus", None, "GPUs for --strategy=mirrored (default all).",
                         flag_values=fv)
    flags.DEFINE_integer("num_cpus", None, "Split the CPU into N logical devices (mirrored "
                         "on a machine without GPUs).", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                      "Compute precision (variables stay float32).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=fv)


def define_export_flags(fv):
    """--export_dir --export_version."""
    flags.DEFINE_string("export_dir", None, "Write a SavedModel for TF Serving to "
                        "EXPORT_DIR/<version>/.", flag_values=fv)
    flags.DEFINE_integer("export_version", None, "Version folder number (default: next "
                         "free).", flag_values=fv)


def define_model_run_flags(fv):
    """--dropout --dropatt --clamp_len --init --init_std --init_range --recompute."""
    flags.DEFINE_float("dropout", 0.1, "Dropout.", flag_values=fv)
    flags.DEFINE_float("dropatt", 0.1, "Attention dropout.", flag_values=fv)
    flags.DEFINE_integer("clamp_len", -1, "Clamp relative distances (-1 = off).",
                         flag_values=fv)
    flags.DEFINE_enum("init", "normal", ["normal", "uniform"], "Initializer.", flag_values=fv)
    flags.DEFINE_float("init_std", 0.02, "Normal initializer stddev.", flag_values=fv)
    flags.DEFINE_float("init_range", 0.1, "Uniform initializer range.", flag_values=fv)
    flags.DEFINE_bool("recompute", False, "Recompute each layer in the backward pass "
                      "instead of keeping its activations (same results, less memory for "
                      "long sequences or large batches, a slower step).", flag_values=fv)


def model_run_options(F, **extra):
    """The XLNetConfig run options given by the flags of :func:`define_model_run_flags`."""
    return dict(dropout=F.dropout, dropatt=F.dropatt, clamp_len=F.clamp_len, init=F.init,
                init_std=F.init_std, init_range=F.init_range, recompute=F.recompute, **extra)


def train_config(F, model_dir, train_steps, tokens_per_example, max_to_keep):
    """TrainConfig from the optimizer / schedule / checkpoint flags."""
    from xlnet_tf.training import TrainConfig
    return TrainConfig(
        model_dir=model_dir, train_steps=train_steps, learning_rate=F.learning_rate,
        warmup_steps=F.warmup_steps, min_lr_ratio=F.min_lr_ratio, weight_decay=F.weight_decay,
        adam_epsilon=F.adam_epsilon, decay_method=F.decay_method, clip=F.clip,
        lr_layer_decay_rate=F.lr_layer_decay_rate, iterations=F.iterations,
        save_steps=F.save_steps, max_to_keep=max_to_keep,
        global_batch_size=F.train_batch_size, tokens_per_example=tokens_per_example,
        precision=F.precision, seed=F.seed)


def epochs_to_steps(num_examples, num_train_epochs, train_batch_size):
    """--num_train_epochs over ``num_examples`` -> optimizer steps (at least 1)."""
    return max(1, math.ceil(num_examples * num_train_epochs / train_batch_size))
