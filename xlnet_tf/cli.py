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
* Ctrl-C: ``prog: interrupted while <stage> ...`` (the last :func:`note_stage`) with the
  entry point's hint (e.g. that rerunning the same command resumes), exit 130.

Set ``XLNET_TF_TRACEBACK=1`` to see the traceback of an error instead.
"""
import functools
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


_VERBOSE = [False]


def setup_logging(verbose=None):
    """One logging style: ``time message`` lines of the ``xlnet_tf`` logger on stderr; debug
    lines too with ``verbose`` (default: the entry point's ``--verbose``)."""
    verbose = _VERBOSE[0] if verbose is None else verbose
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("xlnet_tf").setLevel(logging.DEBUG if verbose else logging.INFO)


def parse(define_flags, argv, prog):
    """A fresh FlagValues with the entry point's flags, parsed from ``argv`` (without the
    program name).  Raises UsageError for a bad command line.

    An entry point that takes positional arguments names the flags they fill, in order, in
    the attribute ``define_flags.positional`` (e.g. ``("data_file", "pred_file")``); without
    it arguments that are not flags are ignored."""
    fv = _flag_values(define_flags)
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


_STAGE = [None]


def note_stage(text):
    """What the running entry point is doing now (e.g. "building the records", "training at
    step 200 (the checkpoint of step 200 is kept)"): the Ctrl-C line says where it stopped."""
    _STAGE[0] = text


def _flag_values(define_flags):
    """The entry point's flags on a fresh FlagValues, plus ``--verbose`` that every entry
    point has."""
    fv = flags.FlagValues()
    define_flags(fv)
    if "verbose" not in fv:
        flags.DEFINE_bool("verbose", False, "Keep TensorFlow's start-up lines (silenced by "
                          "default; also XLNET_TF_VERBOSE=1) and log debug details.",
                          flag_values=fv)
    return fv


def help_text(define_flags, doc, prog):
    fv = _flag_values(define_flags)
    text = (doc or "").strip()
    listing = fv.get_help(include_special_flags=False)
    return f"{text}\n\nFlags of {prog}:\n{listing}\n" if text else f"{prog}\n{listing}\n"


def run(define_flags, main, argv=None, *, prog=None, doc=None, interrupt_hint="",
        uses_tensorflow=True):
    """Parse ``argv`` (default ``sys.argv[1:]``), run ``main(F)``; returns the exit code.

    ``uses_tensorflow``: import TensorFlow (with its start-up lines silenced unless
    ``--verbose``: :mod:`xlnet_tf.quiet`) before ``main``; False for the light commands
    that must start without it (the SQuAD evaluation, SentencePiece training)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or os.path.basename(sys.argv[0] or "xlnet_tf")
    if any(a in _HELP for a in argv):
        sys.stdout.write(help_text(define_flags, doc, prog))
        return 0
    debug = os.environ.get("XLNET_TF_TRACEBACK") == "1"
    note_stage(None)
    try:
        F = parse(define_flags, argv, prog)
        _VERBOSE[0] = bool(F.verbose)
        if uses_tensorflow:
            from xlnet_tf import quiet
            quiet.quiet_tensorflow(verbose=_VERBOSE[0])    # main imports TensorFlow lazily
        result = main(F)
        return int(result or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        where = f" while {_STAGE[0]}" if _STAGE[0] else ""
        print(f"\n{prog}: interrupted{where}{'; ' + interrupt_hint if interrupt_hint else ''}",
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


def main_entry(define_flags, main, *, doc=None, interrupt_hint="", uses_tensorflow=True):
    """``if __name__ == "__main__": cli.main_entry(define_flags, main, doc=__doc__)``"""
    sys.exit(run(define_flags, main, doc=doc, interrupt_hint=interrupt_hint,
                 uses_tensorflow=uses_tensorflow))


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


def define_finetune_model_flags(fv, init_checkpoint_help):
    """The model a fine-tuning script starts from: --spiece_model --uncased --model_config,
    the size flags (from-scratch models) and --init_checkpoint."""
    def define(kind, name, default, help_text, *enum_values):
        getattr(flags, f"DEFINE_{kind}")(name, default, *enum_values, help_text, flag_values=fv)

    define("string", "spiece_model", None, "SentencePiece model (spiece.model); default "
           "OUTPUT_DIR/spiece.model when present.")
    define("bool", "uncased", False, "Lower-case text (uncased vocabulary).")
    define("string", "model_config", None, "xlnet_config.json; default: the size flags below "
           "when given, else OUTPUT_DIR/xlnet_config.json when present, else the "
           "xlnet_config.json beside --init_checkpoint, else the size flags' defaults.")
    define("integer", "n_layer", 3, "Layers (no --model_config; from-scratch models).")
    define("integer", "d_model", 128, "Hidden size (no --model_config).")
    define("integer", "n_head", 4, "Attention heads (no --model_config).")
    define("integer", "d_head", 32, "Head size (no --model_config).")
    define("integer", "d_inner", 512, "Feed-forward size (no --model_config).")
    define("enum", "ff_activation", "gelu", "FF activation (no --model_config).",
           ["gelu", "relu"])
    define("bool", "untie_r", True, "Per-layer attention biases (no --model_config).")
    define("string", "init_checkpoint", None, init_checkpoint_help)


def define_grad_accum_flag(fv):
    """--grad_accum_steps (every training script)."""
    flags.DEFINE_integer("grad_accum_steps", 1, "Gradient accumulation: each optimizer step "
                         "runs N micro-batches of train_batch_size / N one after the other and "
                         "applies their summed gradient (clipping, layer-wise decay and the "
                         "optimizer act on the sum): the results of the whole batch with the "
                         "activation memory of a micro-batch.", flag_values=fv)


def define_finetune_training_flags(fv, *, train_batch_size, learning_rate, train_steps,
                                   adam_epsilon, lr_layer_decay_rate, iterations,
                                   lr_layer_decay_help="Layer-wise gradient decay."):
    """The optimizer, schedule and checkpoint flags of a fine-tuning script, with the
    script's defaults (the original's for its task)."""
    def define(kind, name, default, help_text, *enum_values):
        getattr(flags, f"DEFINE_{kind}")(name, default, *enum_values, help_text, flag_values=fv)

    define("integer", "train_batch_size", train_batch_size, "GLOBAL training batch size (all "
           "replicas, all micro-batches of one optimizer step).")
    define_grad_accum_flag(fv)
    define("float", "learning_rate", learning_rate, "Peak learning rate.")
    define("integer", "train_steps", train_steps, "Training steps (or --num_train_epochs).")
    define("float", "num_train_epochs", None, "Epochs over the training data; sets "
           "train_steps.")
    define("integer", "warmup_steps", 0, "Linear warm-up steps.")
    define("float", "min_lr_ratio", 0.0, "Final learning rate / peak.")
    define("enum", "decay_method", "poly", "Decay after warm-up.", ["poly", "cos"])
    define("float", "weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
    define("float", "adam_epsilon", adam_epsilon, "Adam epsilon.")
    define("float", "clip", 1.0, "Global-norm gradient clipping.")
    define("float", "lr_layer_decay_rate", lr_layer_decay_rate, lr_layer_decay_help)
    define("integer", "iterations", iterations, "Steps per tf.function loop (and per log "
           "line).")
    define("integer", "save_steps", None, "Checkpoint every N steps (default: at the end).")
    define("integer", "max_save", 5, "Checkpoints to keep (0 = all).")
    define("integer", "shuffle_buffer", 2048, "Training shuffle buffer.")


def finetune_run_values(F):
    """The plain values every fine-tuning run takes from the shared flag groups
    (:func:`define_finetune_model_flags`, :func:`define_finetune_training_flags`, the
    export, distribution and model-run flags), keyed as the task packages' run settings."""
    from xlnet_tf.finetuning import SIZE_FLAGS
    return dict(
        output_dir=F.output_dir, cache_dir=F.cache_dir, overwrite_data=F.overwrite_data,
        max_seq_length=F.max_seq_length, spiece_model=F.spiece_model, uncased=F.uncased,
        model_config=F.model_config, size={name: F[name].value for name in SIZE_FLAGS},
        size_given=any(F[name].present for name in SIZE_FLAGS),
        run_options=model_run_options(F), init_checkpoint=F.init_checkpoint,
        num_train_epochs=F.num_train_epochs, shuffle_buffer=F.shuffle_buffer,
        export_dir=F.export_dir, export_version=F.export_version,
        distribution=dict(name=F.strategy, tpu=F.tpu, num_gpus=F.num_gpus,
                          tpu_timeout=F.tpu_timeout),
        num_cpus=F.num_cpus)


def check_actions(F, actions):
    """A fine-tuning script's first check: --output_dir is given, and at least one of the
    ``actions`` flags (e.g. ``("do_train", "do_predict")``) or --export_dir.  Returns
    whether an action flag was given (else the run only exports)."""
    if not F.output_dir:
        fail("--output_dir is required")
    given = any(F[name].value for name in actions)
    if not given and not F.export_dir:
        fail(f"nothing to do: pass {', '.join('--' + a for a in actions)} and/or --export_dir")
    return given


def check_finetune_flags(F, positive=()):
    """The checks a fine-tuning script's shared flags need (no TensorFlow): the training
    flags (:func:`xlnet_tf.finetuning.check_training_flags`), ``positive`` flag names that
    must be > 0, and --output_dir / --export_dir writable.  Exits 2 naming the flag."""
    from xlnet_tf import finetuning
    if not F.output_dir:
        fail("--output_dir is required")
    for name in ("train_batch_size", "iterations", "shuffle_buffer", *positive):
        if F[name].value <= 0:
            fail(f"--{name} must be > 0, got {F[name].value}")
    check_grad_accum(F)
    finetuning.check_training_flags(
        output_dir=F.output_dir, learning_rate=F.learning_rate, train_steps=F.train_steps,
        train_steps_given=F["train_steps"].present, num_train_epochs=F.num_train_epochs,
        warmup_steps=F.warmup_steps, dropout=F.dropout, dropatt=F.dropatt,
        save_steps=F.save_steps, lr_layer_decay_rate=F.lr_layer_decay_rate,
        export_dir=F.export_dir, export_version=F.export_version,
        init_checkpoint=F.init_checkpoint)
    finetuning.check_writable_dir(F.output_dir, "output_dir")
    if F.export_dir:
        finetuning.check_writable_dir(F.export_dir, "export_dir")


def check_grad_accum(F):
    """--grad_accum_steps >= 1 dividing --train_batch_size (exit 2 naming both flags)."""
    from xlnet_tf.training.memory import micro_batch_size
    try:
        micro_batch_size(F.train_batch_size, F.grad_accum_steps)
    except ValueError as e:
        fail(str(e))


RESUME_HINT = "rerun the same command to resume from the last checkpoint"


def dispatch_finetuning(F, run, *, export_only, export, fine_tune):
    """The end of a fine-tuning script's main: ``export(run, say)`` for --export_dir alone,
    else ``fine_tune(run, train_config, say)``; user-facing lines go to stdout.  The run
    holds --output_dir's lock throughout: a second run in the same folder is refused."""
    from xlnet_tf.io import folder_lock
    say = functools.partial(print, flush=True)
    with folder_lock(F.output_dir, "--output_dir"):
        if export_only:
            export(run, say)
        else:
            fine_tune(run, train_config(F, F.output_dir, F.train_steps, F.max_seq_length,
                                        F.max_save or None), say)
    return 0


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
        precision=F.precision, seed=F.seed, grad_accum_steps=F.grad_accum_steps)


def epochs_to_steps(num_examples, num_train_epochs, train_batch_size):
    """--num_train_epochs over ``num_examples`` -> optimizer steps (at least 1)."""
    return max(1, math.ceil(num_examples * num_train_epochs / train_batch_size))
