"""What the fine-tuning scripts (run_classifier.py, run_squad.py) share, once.

Every function takes plain values (never parsed flags) and reports a user mistake by
raising ``ValueError`` / ``FileNotFoundError`` with a message that names the flag, so a
script can let :func:`xlnet_tf.cli.run` print it as one line (exit 2).  The checks are meant
to run before anything is written: a run with a mistake leaves its folders untouched.

The order of a fine-tuning script:

1. :func:`check_training_flags` and :func:`check_writable_dir` (``--output_dir``): flags
   only, no TensorFlow; :func:`check_export_dir` (writable, version folder free).
2. :func:`resolve_spiece_model` + :func:`load_tokenizer`, :func:`resolve_model_config` +
   :func:`build_config`: the vocabulary and the model size.
3. :func:`check_init_checkpoint` on a freshly built model; :func:`default_cache_dir` for the
   cached features; :func:`check_train_config` once the number of steps is known.
   :func:`check_memory` right after the model size is known (before any record is built).
4. :func:`write_run_files` (with the first checkpoint of a training run: pass it as
   ``on_first_checkpoint`` to :func:`xlnet_tf.training.train`), then training, whose task's
   ``export`` calls :func:`save_final_checkpoint`.

Fine-tuning models run with :func:`finetune_config` (the original's fine-tuning RunConfig
copies neither the memory nor ``bi_data``).
"""
import dataclasses
import os
from typing import Optional

SPIECE_MODEL = "spiece.model"
XLNET_CONFIG = "xlnet_config.json"
FINAL_CHECKPOINT = "xlnet_model.ckpt"
#: the model-size flags the scripts define for a model without --model_config
SIZE_FLAGS = ("n_layer", "d_model", "n_head", "d_head", "d_inner", "ff_activation", "untie_r")


@dataclasses.dataclass
class FinetuneRun:
    """The settings every fine-tuning run has (the shared flag groups, as plain values:
    :func:`xlnet_tf.cli.finetune_run_values`); a task package's run settings add their own
    fields to these."""
    output_dir: str
    cache_dir: Optional[str] = None
    overwrite_data: bool = False
    max_seq_length: int = 128
    spiece_model: Optional[str] = None
    uncased: bool = False
    model_config: Optional[str] = None
    size: dict = dataclasses.field(default_factory=dict)      # SIZE_FLAGS
    size_given: bool = False
    run_options: dict = dataclasses.field(default_factory=dict)
    init_checkpoint: Optional[str] = None
    do_train: bool = False
    num_train_epochs: Optional[float] = None
    shuffle_buffer: int = 2048
    export_dir: Optional[str] = None
    export_version: Optional[int] = None
    distribution: dict = dataclasses.field(default_factory=dict)  # make_strategy arguments
    num_cpus: Optional[int] = None


@dataclasses.dataclass
class SummaryTaskRun(FinetuneRun):
    """A run over a data set read by a task reader, with the sequence-summary head
    (run_classifier.py, run_race.py): the data, the splits and the actions."""
    task: Optional[str] = None
    data_dir: Optional[str] = None
    task_options: dict = dataclasses.field(default_factory=dict)
    eval_split: str = "dev"
    predict_split: str = "test"
    summary_type: str = "last"
    use_summ_proj: bool = True
    do_eval: bool = False
    do_predict: bool = False


# ---------------------------------------------------------------------------- folders
def is_writable_dir(path):
    """True for an existing folder this process may write AND whose mode bits allow writing:
    root may write anywhere, but a folder marked read-only (a shared data folder) must not
    receive files."""
    return (os.path.isdir(path) and os.access(path, os.W_OK)
            and bool(os.stat(path).st_mode & 0o222))


def check_writable_dir(path, flag):
    """``--<flag> path`` must be a folder that can be written, or not exist yet with a
    writable folder as its nearest existing parent (it is created later).  Raises
    ValueError otherwise, so a run never trains for hours and then fails to write."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--{flag} {path!r} exists and is not a folder")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not is_writable_dir(probe):
        raise ValueError(f"--{flag} {path!r} cannot be written ({probe!r} is read-only); "
                         f"choose a writable location")


def check_writable_file(path, flag):
    """``--<flag> path`` names a file to write: not a folder, and its folder writable (or
    creatable, see :func:`check_writable_dir`).  Raises ValueError naming the flag."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise ValueError(f"--{flag} {path!r} is a folder; name a file")
    check_writable_dir(os.path.dirname(path), flag)


def check_export_dir(export_dir, export_version):
    """``--export_dir`` / ``--export_version`` before any work: a writable folder (or one that
    can be created) whose version folder does not exist yet.  Returns the version number to
    write (default: the next free one); raises ValueError."""
    from xlnet_tf.serving import check_export_dir as check_versions
    check_writable_dir(export_dir, "export_dir")
    try:
        return check_versions(export_dir, export_version)
    except FileExistsError as e:
        raise ValueError(str(e)) from None


def resolve_model(run):
    """The vocabulary and model of a fine-tuning ``run`` (a task package's run settings:
    spiece_model, uncased, model_config, size, size_given, run_options, init_checkpoint,
    output_dir).  Returns (spiece_model path, Tokenizer, XLNetConfig)."""
    spiece = resolve_spiece_model(run.spiece_model, run.output_dir)
    check_spiece_matches_checkpoint(spiece, run.init_checkpoint)
    tokenizer = load_tokenizer(spiece, run.uncased)
    config_path, _ = resolve_model_config(run.model_config, run.output_dir, run.size_given,
                                          run.init_checkpoint)
    config = build_config(config_path, run.size, run.run_options, tokenizer.vocab_size,
                          spiece)
    return spiece, tokenizer, config


def open_run(run, train_config):
    """The first steps of every fine-tuning run (a task package's run settings): the CPU
    devices, then the vocabulary and model (:func:`resolve_model`), the memory check of
    training (:func:`check_memory`) and of evaluation / prediction
    (:func:`check_eval_memory`).  Returns (spiece_model path, Tokenizer,
    XLNetConfig)."""
    from xlnet_tf.training import configure_cpu_devices
    configure_cpu_devices(run.num_cpus)
    spiece, tokenizer, config = resolve_model(run)
    if run.do_train:
        check_memory(config, train_config, run.max_seq_length)
    if (getattr(run, "do_eval", False) or getattr(run, "do_predict", False)) and \
            getattr(run, "eval_batch_size", None):
        check_eval_memory(config, "eval_batch_size", run.eval_batch_size, run.max_seq_length)
    return spiece, tokenizer, config


def train_task(run, task, train_config, strategy, write_files, say, what, callback=None):
    """Fine-tune ``task`` with the shared loop (resuming from the newest checkpoint in
    ``run.output_dir``; ``write_files()`` writes the run's settings with the first
    checkpoint) after a line saying ``what`` is fine-tuned and how; returns the loop's
    result (``model``, ``step``, ``history``)."""
    from xlnet_tf import training
    config = task.config
    say(f"fine-tuning {what}: {train_config.train_steps} steps, batch "
        f"{train_config.global_batch_size}, {strategy.num_replicas_in_sync} replica(s), model "
        f"{config.n_layer}x{config.d_model}, lr {train_config.learning_rate}, layer decay "
        f"{train_config.lr_layer_decay_rate}, precision {train_config.precision}")
    return training.train(task, train_config, strategy, init_checkpoint=run.init_checkpoint,
                          callback=callback, dir_flag="--output_dir",
                          on_first_checkpoint=write_files)


def prepare_export(output_dir, spiece_model, export_dir, export_version, config_name,
                   script):
    """--export_dir on a finished output_dir: its saved settings (``config_name``), the
    SentencePiece model to bundle and the version folder to write, all checked before any
    work; the float32 policy for the serving copy.  Returns (cfg, spiece_model, version)."""
    import keras
    cfg = read_run_config(output_dir, config_name, script)
    spiece = spiece_model or os.path.join(output_dir, SPIECE_MODEL)
    if not os.path.isfile(spiece):
        raise FileNotFoundError(f"SentencePiece model {spiece!r} does not exist; pass "
                                f"--spiece_model")
    version = check_export_dir(export_dir, export_version) if export_dir else None
    keras.mixed_precision.set_global_policy("float32")
    return cfg, spiece, version


def default_cache_dir(cache_dir, output_dir):
    """Where cached features go: ``cache_dir`` when given, else ``OUTPUT_DIR/data_cache`` -
    never the data folder, which other people read (and a cache found there could have been
    planted by anyone who can write it)."""
    return cache_dir or os.path.join(output_dir, "data_cache")


# ---------------------------------------------------------------------------- flags
def check_training_flags(*, output_dir, learning_rate, train_steps, train_steps_given,
                         num_train_epochs, warmup_steps, dropout, dropatt, save_steps,
                         lr_layer_decay_rate, export_dir, export_version, init_checkpoint):
    """The checks of the training flags both scripts have; raises ValueError for the first
    problem.

    Args:
      train_steps_given: ``--train_steps`` was on the command line (it may not be combined
        with ``--num_train_epochs``).
      lr_layer_decay_rate: must be in (0, 1]: layer ``l`` of ``n`` learns at
        ``rate ** (n - 1 - l)`` times the peak rate (the original's ``lr_layer_decay_rate``).
      init_checkpoint: its folder may not be ``output_dir`` (the original README asks for a
        new folder: the fine-tuned weights would sit beside the pretrained ones).
    """
    if learning_rate <= 0:
        raise ValueError(f"--learning_rate must be > 0, got {learning_rate}")
    if num_train_epochs is not None:
        if train_steps_given:
            raise ValueError("give either --train_steps or --num_train_epochs, not both")
        if not num_train_epochs > 0:
            raise ValueError(f"--num_train_epochs must be > 0, got {num_train_epochs}")
    elif train_steps <= 0:
        raise ValueError(f"--train_steps must be > 0, got {train_steps}")
    if warmup_steps < 0:
        raise ValueError(f"--warmup_steps must be >= 0, got {warmup_steps}")
    for name, value in (("dropout", dropout), ("dropatt", dropatt)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"--{name} must be in [0, 1), got {value}")
    if save_steps is not None and save_steps <= 0:
        raise ValueError(f"--save_steps must be > 0, got {save_steps}")
    if not 0.0 < lr_layer_decay_rate <= 1.0:
        raise ValueError(f"--lr_layer_decay_rate must be in (0, 1], got {lr_layer_decay_rate}")
    if export_version is not None and not export_dir:
        raise ValueError("--export_version needs --export_dir")
    if init_checkpoint:
        ckpt_dir = init_checkpoint if os.path.isdir(init_checkpoint) else \
            os.path.dirname(init_checkpoint)
        if os.path.abspath(ckpt_dir or ".") == os.path.abspath(output_dir):
            raise ValueError(f"--output_dir {output_dir!r} is the folder of --init_checkpoint; "
                             f"fine-tune into a new folder (the original README asks the same)")


def check_train_config(train_config, num_replicas):
    """A TrainConfig about to be trained: its own checks, and the global batch must split
    evenly over the replicas (and their micro-batches).  Raises ValueError."""
    from xlnet_tf.training.memory import per_replica_batch_size
    train_config.validate()
    per_replica_batch_size(train_config.global_batch_size, num_replicas,
                           train_config.grad_accum_steps)


def make_strategy(train_config, distribution):
    """The precision policy and random seed of ``train_config`` set, and the
    tf.distribute strategy of ``distribution`` (``make_strategy`` arguments); a TPU that
    does not answer raises ValueError (a mistake in --tpu)."""
    import tensorflow as tf

    from xlnet_tf import training
    training.set_precision(train_config.precision)
    tf.keras.utils.set_random_seed(train_config.seed)
    try:
        return training.make_strategy(**distribution)
    except RuntimeError as e:
        raise ValueError(str(e)) from None


def training_steps(train_config, num_train_epochs, count_examples, what, num_replicas, say):
    """``train_config`` ready to train: with ``num_train_epochs`` its ``train_steps`` are
    the steps of that many epochs over ``count_examples()`` training ``what`` (e.g.
    "examples", said in the progress line), and it passes :func:`check_train_config`."""
    if num_train_epochs is not None:
        from xlnet_tf.cli import epochs_to_steps
        n = count_examples()
        steps = epochs_to_steps(n, num_train_epochs, train_config.global_batch_size)
        say(f"--num_train_epochs={num_train_epochs}: {n} {what} / batch "
            f"{train_config.global_batch_size} -> {steps} steps")
        train_config = dataclasses.replace(train_config, train_steps=steps)
    check_train_config(train_config, num_replicas)
    return train_config


def check_memory(config, train_config, max_seq_length):
    """Refuses (ValueError naming the flags, with the estimate) a --train_batch_size x
    --max_seq_length that cannot fit in this machine's memory, before any record is built.
    The activations are a micro-batch's with --grad_accum_steps."""
    from xlnet_tf.training.memory import check_training_fits
    n = train_config.grad_accum_steps
    check_training_fits(
        f"--train_batch_size={train_config.global_batch_size} "
        + (f"--grad_accum_steps={n} " if n > 1 else "")
        + f"--max_seq_length={max_seq_length}",
        n_params=config.num_parameters(with_lm_head=False), n_layer=config.n_layer,
        d_model=config.d_model, n_head=config.n_head,
        batch_size=train_config.micro_batch_size, seq_len=max_seq_length,
        recompute=bool(getattr(config, "recompute", False)))


def check_eval_memory(config, batch_flag, batch_size, max_seq_length, sequences_per_row=1):
    """Refuses (ValueError naming the flags, with the estimate) an evaluation / prediction
    batch that cannot fit in this machine's memory, before any record is built (also for
    runs that do not train).  ``sequences_per_row``: sequences of one batch row (a
    multiple-choice question has one per option)."""
    from xlnet_tf.training.memory import check_inference_fits
    check_inference_fits(
        f"--{batch_flag}={batch_size} --max_seq_length={max_seq_length}",
        n_params=config.num_parameters(with_lm_head=False), d_model=config.d_model,
        n_head=config.n_head, batch_size=batch_size * sequences_per_row,
        seq_len=max_seq_length)


# ---------------------------------------------------------------------------- vocabulary, model
def resolve_spiece_model(spiece_model, output_dir):
    """``--spiece_model``, else the ``spiece.model`` an earlier run copied into
    ``output_dir``; raises ValueError when there is neither."""
    if spiece_model:
        return spiece_model
    copied = os.path.join(output_dir, SPIECE_MODEL)
    if os.path.isfile(copied):
        return copied
    raise ValueError("--spiece_model is required (the spiece.model that came with the "
                     "checkpoint)")


def check_spiece_matches_checkpoint(spiece_model, init_checkpoint):
    """``spiece_model`` must be the vocabulary ``init_checkpoint`` was trained with when the
    checkpoint's folder has its own ``spiece.model`` (the original's and our exports ship
    one): a model of the same size with other pieces would load without complaint and then
    read every id as another word.  Raises ValueError naming both files."""
    if not spiece_model or not init_checkpoint:
        return
    folder = init_checkpoint if os.path.isdir(init_checkpoint) else \
        os.path.dirname(init_checkpoint)
    theirs = os.path.join(folder or ".", SPIECE_MODEL)
    if not os.path.isfile(theirs) or not os.path.isfile(spiece_model):
        return
    from xlnet_tf.io import sha256_file
    if os.path.samefile(theirs, spiece_model) or sha256_file(theirs) == sha256_file(spiece_model):
        return
    ours, checkpoint_pieces = _pieces(spiece_model), _pieces(theirs)
    if ours == checkpoint_pieces:
        return
    if len(ours) != len(checkpoint_pieces):
        detail = f"{len(ours)} pieces against {len(checkpoint_pieces)}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(ours, checkpoint_pieces)) if a != b)
        detail = (f"the same size ({len(ours)} pieces) but id {i} is {ours[i]!r} in it and "
                  f"{checkpoint_pieces[i]!r} in the checkpoint's")
    raise ValueError(f"--spiece_model {spiece_model!r} is not the vocabulary --init_checkpoint "
                     f"{init_checkpoint!r} was trained with ({theirs!r}): {detail}; pass "
                     f"--spiece_model={theirs}")


def _pieces(spiece_model):
    """The pieces of a SentencePiece model, by id (ValueError naming an unreadable file)."""
    import sentencepiece as spm
    try:
        sp = spm.SentencePieceProcessor(model_file=spiece_model)
    except (OSError, RuntimeError) as e:
        raise ValueError(f"cannot read SentencePiece model {spiece_model!r}: {e}") from None
    return [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]


def load_tokenizer(spiece_model, uncased):
    """The Python tokenizer of ``spiece_model``; a missing or unreadable file raises
    ValueError naming --spiece_model."""
    from xlnet_tf.tokenization.tokenizer import Tokenizer
    try:
        return Tokenizer(spiece_model, lower=uncased)
    except (ValueError, OSError) as e:
        raise ValueError(f"--spiece_model: {e}") from None


def resolve_model_config(model_config, output_dir, size_flags_given, init_checkpoint):
    """Which xlnet_config.json defines the model; returns ``(path or None, where)``.

    In this order: ``--model_config``; the size flags when any was given on the command line
    (None: the caller builds the config from them); ``OUTPUT_DIR/xlnet_config.json`` (a
    finished or interrupted run in this folder); the ``xlnet_config.json`` beside
    ``--init_checkpoint`` (the original's checkpoints ship one in their folder); else None
    (the size flags' defaults).  ``where`` says which, for the progress line.
    """
    if model_config:
        return model_config, "--model_config"
    if size_flags_given:
        return None, "the size flags"
    in_output = os.path.join(output_dir, XLNET_CONFIG)
    if os.path.isfile(in_output):
        return in_output, "--output_dir"
    if init_checkpoint:
        folder = init_checkpoint if os.path.isdir(init_checkpoint) else \
            os.path.dirname(init_checkpoint)
        beside = os.path.join(folder or ".", XLNET_CONFIG)
        if os.path.isfile(beside):
            return beside, "the folder of --init_checkpoint"
    return None, "the size flags' defaults"


def build_config(config_path, size, run_options, vocab_size,
                 spiece_model="the SentencePiece model"):
    """The XLNetConfig of a fine-tuning run.

    Args:
      config_path: an xlnet_config.json (from :func:`resolve_model_config`) or None.
      size: {size flag: value} (``SIZE_FLAGS``) used when ``config_path`` is None.
      run_options: dropout, initializer, ... (``xlnet_tf.cli.model_run_options``).
      vocab_size: pieces of the tokenizer; the model's ``n_token`` must cover them.
      spiece_model: names the tokenizer's file in the error message.
    """
    from xlnet_tf import XLNetConfig
    if config_path:
        config = XLNetConfig.from_json(config_path, **run_options)
    else:
        config = XLNetConfig(**size, n_token=vocab_size, **run_options)
    if config.n_token < vocab_size:
        raise ValueError(f"the model has n_token={config.n_token} but --spiece_model "
                         f"{spiece_model!r} has {vocab_size} pieces; use the SentencePiece "
                         f"model of the checkpoint")
    return config


def finetune_config(config):
    """The config a fine-tuning model runs with: no memory, no bi_data, bidirectional
    attention (the original's fine-tuning RunConfig sets neither mem_len nor bi_data)."""
    from xlnet_tf import XLNetConfig
    if isinstance(config, dict):
        config = XLNetConfig.from_dict(config)
    return config.replace(mem_len=None, reuse_len=None, bi_data=False, same_length=False,
                          attn_type="bi")


# ---------------------------------------------------------------------------- checkpoints
def check_init_checkpoint(model, init_checkpoint):
    """Load ``init_checkpoint`` into ``model`` (a freshly built one) to prove it fits before
    anything is written; returns what the loader reports (loaded / missing names).  Raises
    ValueError naming the model's size when it does not fit."""
    from xlnet_tf.training import init_from_checkpoint
    config = model.xlnet_config
    try:
        return init_from_checkpoint(model, init_checkpoint)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise ValueError(f"--init_checkpoint {init_checkpoint!r} does not fit the model "
                         f"({config.n_layer} layers, d_model {config.d_model}, n_token "
                         f"{config.n_token}): {e}") from None


def inference_weights(run, model, build_model, head_name):
    """A run without --do_train: ``model`` (or a new ``build_model()``) with the weights it
    evaluates / predicts with (the output folder's, else --init_checkpoint).  Returns
    (model, source, step); with --do_train (None, None, 0): the weights come from training."""
    from xlnet_tf.training import restore_for_inference
    if run.do_train:
        return model, None, 0
    model = model or build_model()
    source, step = restore_for_inference(model, run.output_dir, run.init_checkpoint,
                                         head_name=head_name)
    return model, source, step


def check_start_weights(run, build_model, say, *, head, action="predict with",
                        fine_tuned="a fine-tuned one"):
    """The weights of a run that does not start from its own checkpoint, checked before any
    write: ``--init_checkpoint`` must fit the model (``build_model()`` makes one), and a run
    without --do_train needs some weights.  Returns the model to evaluate / predict with
    when that is the --init_checkpoint one, else None (the output folder's own weights are
    loaded later).

    Args:
      run: a :class:`FinetuneRun` with ``do_train``.
      head: names the task head in the warning for a checkpoint without it.
      action, fine_tuned: complete the refusal ``nothing to <action>: ... pass
        --init_checkpoint (<fine_tuned>) or --do_train``.
    """
    import tensorflow as tf
    out = run.output_dir
    has_ckpt = os.path.isdir(out) and tf.train.latest_checkpoint(out) is not None
    has_final = os.path.exists(os.path.join(out, FINAL_CHECKPOINT + ".index"))
    if run.init_checkpoint and not has_ckpt:
        probe = build_model()
        result = check_init_checkpoint(probe, run.init_checkpoint)
        say(f"--init_checkpoint fits the model: {result}")
        if not run.do_train and getattr(result, "missing", None):
            say(f"WARNING: --init_checkpoint {run.init_checkpoint!r} has no {head} "
                f"({len(result.missing)} variables such as {result.missing[0]} keep random "
                f"values): predictions are meaningless unless it was fine-tuned for this task")
        return probe if not run.do_train and not has_final else None
    if run.init_checkpoint and not run.do_train:
        say(f"WARNING: --output_dir {out!r} holds a fine-tuned checkpoint; using it, not "
            f"--init_checkpoint {run.init_checkpoint!r} (use another --output_dir to use "
            f"that one)")
    elif not run.do_train and not has_ckpt and not has_final:
        raise ValueError(f"nothing to {action}: --output_dir {out!r} holds no checkpoint; "
                         f"pass --init_checkpoint ({fine_tuned}) or --do_train")
    return None


def save_final_checkpoint(model, model_dir):
    """The final weights under the original variable names,
    ``model_dir/xlnet_model.ckpt``, with ``global_step`` = the step of the newest training
    checkpoint in ``model_dir`` (0 when there is none), so the file says how long the model
    was trained, as the original's checkpoints do.  Returns the checkpoint prefix."""
    import tensorflow as tf

    from xlnet_tf import save_original_checkpoint
    from xlnet_tf.training import checkpoint_step
    latest = tf.train.latest_checkpoint(model_dir)
    step = checkpoint_step(latest) if latest else 0
    return save_original_checkpoint(model, os.path.join(model_dir, FINAL_CHECKPOINT),
                                    global_step=step)


# ---------------------------------------------------------------------------- output files
def write_run_files(output_dir, config_name, run_config, config, spiece_model):
    """The first files a run writes into ``output_dir`` (created): ``config_name`` (the
    script's settings, JSON), ``xlnet_config.json`` and a copy of ``spiece_model`` as
    ``spiece.model`` - what a later evaluation or export-only run reads back.  Every file
    goes through a temporary name and a rename."""
    from xlnet_tf.io import copy_file_atomic, write_json_atomic
    os.makedirs(output_dir, exist_ok=True)
    write_json_atomic(os.path.join(output_dir, config_name), run_config)
    config.to_json(os.path.join(output_dir, XLNET_CONFIG))
    copy_file_atomic(spiece_model, os.path.join(output_dir, SPIECE_MODEL))


def read_run_config(output_dir, config_name, script):
    """The settings file a finished run of ``script`` left in ``output_dir`` (for an
    export-only run); FileNotFoundError says which run writes it."""
    from xlnet_tf.io import read_json
    path = os.path.join(output_dir, config_name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r} does not exist: --export_dir without --do_* flags "
                                f"needs an --output_dir written by {script}")
    return read_json(path, what="run settings")


_EVAL_WRITERS = {}


def write_eval_summaries(output_dir, step, results, keys=None):
    """The evaluation's numbers as TensorBoard scalars in OUTPUT_DIR/eval at ``step`` (every
    int/float of ``results``, or ``keys``; nested per-type dicts are left to the caller)."""
    import tensorflow as tf
    keys = keys or [k for k, v in results.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and k not in ("step", "num_examples")]
    logdir = os.path.abspath(os.path.join(output_dir, "eval"))
    writer = _EVAL_WRITERS.get(logdir) if os.path.isdir(logdir) else None
    if writer is None:          # one event file per folder and process, not one per call
        writer = _EVAL_WRITERS[logdir] = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=int(step)):
        for k in keys:
            tf.summary.scalar(k, float(results[k]))
    writer.flush()


def results_table(title, results, skip=()):
    """The final metrics as a small table: ``title`` then one ``name  value`` row each
    (floats with 4 decimals, names aligned), for the end of a run."""
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v))
            for k, v in results.items() if k not in skip and not isinstance(v, (dict, list))]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join([title] + [f"  {k:<{width}}  {v:>10}" for k, v in rows])


def format_results(results, skip=()):
    """``name value | name value ...`` (floats with 4 decimals) for a results line."""
    return " | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in results.items() if k not in skip)
