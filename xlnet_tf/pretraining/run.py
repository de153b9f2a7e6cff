"""Pretraining end to end from plain values (what ``run_pretrain.py`` runs).

:func:`check_settings` needs nothing but the settings, so a script calls it before
TensorFlow starts.  :func:`pretrain` then sets up the devices and the strategy, makes the
data (the demo corpus or raw text -> SentencePiece model + records, cached; or given
records), checks the records against the settings, builds the model configuration and the
task, and trains.  Every mistake in the settings raises ValueError / FileNotFoundError
before anything is written to the model folder.
"""
import glob
import logging
import os

from xlnet_tf import finetuning, training
from xlnet_tf import io as io_lib

log = logging.getLogger("xlnet_tf")

OBJECTIVES = ("plm", "dae")


def check_settings(*, seq_len, reuse_len, perm_size, record_dir=None, input_text=None,
                   objective="plm", train_batch_size=None, learning_rate=None, mem_len=None,
                   num_predict=None, mask_alpha=6, mask_beta=1, max_gram=5, bi_data=False,
                   vocab_size=None, spiece_model=None, model_size=None, model_config=None,
                   recompute=False, grad_accum_steps=1):
    """ValueError (naming the flag) for settings that are wrong or contradict each other, and
    for a batch x sequence that cannot fit in memory (with the estimate): every check that
    needs no TensorFlow, run before anything is written.  The optional settings are checked
    when given."""
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective={objective!r}: use one of {', '.join(OBJECTIVES)}")
    for name, value in (("seq_len", seq_len), ("perm_size", perm_size),
                        ("train_batch_size", train_batch_size)):
        if value is not None and value <= 0:
            raise ValueError(f"--{name} must be > 0, got {value}")
    if train_batch_size is not None and train_batch_size > 0:
        from xlnet_tf.training.memory import micro_batch_size
        micro = micro_batch_size(train_batch_size, grad_accum_steps)
        if bi_data and micro % 2:
            raise ValueError(f"--bi_data with --train_batch_size={train_batch_size} "
                             f"--grad_accum_steps={grad_accum_steps}: every micro-batch of "
                             f"{micro} rows must hold as many forward as backward rows; make "
                             f"train_batch_size / grad_accum_steps even")
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"--learning_rate must be > 0, got {learning_rate}")
    if mem_len is not None and mem_len < 0:
        raise ValueError(f"--mem_len must be >= 0 (0 = no memory), got {mem_len}")
    if reuse_len > seq_len:
        raise ValueError(f"--reuse_len={reuse_len} is larger than --seq_len={seq_len}")
    if reuse_len % perm_size or (seq_len - reuse_len) % perm_size:
        raise ValueError(f"--perm_size={perm_size} must divide --reuse_len={reuse_len} and "
                         f"--seq_len - --reuse_len={seq_len - reuse_len}")
    if record_dir and input_text:
        raise ValueError("give either --record_dir or --input_text, not both")
    if num_predict is not None:     # what records of these settings can hold
        from xlnet_tf.pretraining.records import validate_config
        validate_config(seq_len, reuse_len, bi_data, num_predict, mask_alpha, mask_beta,
                        bsz_per_host=2, num_core_per_host=1, max_gram=max_gram)
    if spiece_model and not os.path.isfile(spiece_model):
        raise FileNotFoundError(f"--spiece_model {spiece_model!r} does not exist; pass the "
                                f"spiece.model of the records (or leave it out to train one)")
    if vocab_size is not None and not (record_dir or spiece_model):   # a model is trained
        from xlnet_tf.tokenization.train_spm import check_vocab_size
        check_vocab_size(vocab_size)
    if train_batch_size is not None:
        _check_memory(model_size, model_config, vocab_size, train_batch_size, seq_len,
                      mem_len, objective, recompute, grad_accum_steps)


def _check_memory(model_size, model_config, vocab_size, batch_size, seq_len, mem_len,
                  objective, recompute, grad_accum_steps=1):
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.training.memory import check_training_fits
    config = XLNetConfig.from_json(model_config) if model_config else \
        XLNetConfig(**(model_size or {}), n_token=vocab_size or 32000)
    check_training_fits(
        f"--train_batch_size={batch_size} --seq_len={seq_len}"
        + (f" --mem_len={mem_len}" if mem_len else "")
        + (f" --grad_accum_steps={grad_accum_steps}" if grad_accum_steps > 1 else ""),
        n_params=config.num_parameters(), n_layer=config.n_layer, d_model=config.d_model,
        n_head=config.n_head, batch_size=batch_size // grad_accum_steps, seq_len=seq_len,
        mem_len=mem_len or 0,
        two_stream=objective == "plm", recompute=recompute)


def _host_layout(strategy, batch_size, bi_data, record_dir, grad_accum_steps=1):
    """(records' bsz_per_host, num_core_per_host) for this strategy and global batch.

    The records hold the batch of one optimizer step whatever ``grad_accum_steps``: the loop
    cuts every replica's rows into the micro-batches, each keeping its rows' memory."""
    replicas = strategy.num_replicas_in_sync
    workers = getattr(strategy.extended, "_num_workers", None) or getattr(
        strategy.extended, "num_hosts", 1)
    if workers > 1 and not record_dir:
        raise ValueError("with several workers/hosts build the records first (python -m "
                         "xlnet_tf.pretraining.records --num_tasks=<hosts> ...) and pass "
                         "--record_dir, so the hosts do not race to build them")
    parts = (2 if bi_data else 1) * replicas * grad_accum_steps
    if batch_size % parts:
        why = " (bi_data puts a forward and a backward half on every replica)"
        accum = f" x {grad_accum_steps} micro-batches" if grad_accum_steps > 1 else ""
        raise ValueError(f"--train_batch_size={batch_size} must be divisible by "
                         f"{'2 x ' if bi_data else ''}{replicas} replicas{accum}"
                         f"{why if bi_data else ''}")
    return batch_size // workers, replicas // workers


def _input_files(input_text, data_dir, say):
    """The raw text to pretrain on: --input_text's files, or the demo corpus."""
    from xlnet_tf.pretraining.data import python_docs_corpus
    if not input_text:
        path = python_docs_corpus(os.path.join(data_dir, "python_docs.txt"))
        say(f"No --record_dir/--input_text: pretraining on the Python documentation text "
            f"({path})")
        return [path]
    files = sorted({f for g in input_text.split(",") for f in glob.glob(g.strip())})
    if not files:
        raise ValueError(f"--input_text={input_text!r} matches no files")
    return files


def _model_config(model_size, model_config, n_token, run_options):
    from xlnet_tf.modeling.config import XLNetConfig
    if model_config:
        config = XLNetConfig.from_json(model_config, **run_options)
        if config.n_token != n_token:
            raise ValueError(f"--model_config has n_token={config.n_token} but the records use "
                             f"a vocabulary of {n_token}")
        return config
    return XLNetConfig(**model_size, n_token=n_token, **run_options)


def pretrain(train_config, *, model_size=None, model_config=None, run_options=None,
             seq_len, reuse_len, mem_len, perm_size, bi_data, num_predict, mask_alpha,
             mask_beta, max_gram=5, objective="plm", same_length=False, record_dir=None, input_text=None, data_dir=None,
             spiece_model=None, vocab_size=2000, uncased=False, init_checkpoint=None,
             strategy="one_device", tpu=None, num_gpus=None, tpu_timeout=60.0, num_cpus=None,
             say=log.info):
    """Pretrain (or resume) into ``train_config.model_dir``.

    Args:
      train_config: :class:`xlnet_tf.training.TrainConfig` (its precision and seed are the
        run's).
      model_size: XLNetConfig size keys (n_layer, d_model, ...), or ``model_config``: the
        path of an xlnet_config.json.
      run_options: XLNetConfig run options (dropout, dropatt, clamp_len, init, ...).
      seq_len ... mask_beta, max_gram, same_length, uncased: the data and memory settings.
      objective: ``"plm"`` (XLNet's permutation LM) or ``"dae"`` (BERT's denoising
        objective on the same backbone and records: :mod:`xlnet_tf.pretraining.dae`).
      mem_len: memory length (None = no memory).
      record_dir: records of ``python -m xlnet_tf.pretraining.records``; else the records
        are built from ``input_text`` (comma-separated globs; the demo corpus when empty)
        in ``data_dir`` (default MODEL_DIR/data), with the SentencePiece model
        ``spiece_model`` (trained there with ``vocab_size`` pieces when not given).
      init_checkpoint: start from ours, the original's or Hugging Face weights.
      strategy, tpu, num_gpus, tpu_timeout, num_cpus: where to run.
      say: receives the user-facing lines (what data, what model, where).
    Returns:
      the result of :func:`xlnet_tf.training.train` plus ``config`` (the XLNetConfig).
    """
    tc = train_config
    check_settings(seq_len=seq_len, reuse_len=reuse_len, perm_size=perm_size,
                   record_dir=record_dir, input_text=input_text, objective=objective,
                   train_batch_size=tc.global_batch_size, learning_rate=tc.learning_rate,
                   mem_len=mem_len, num_predict=num_predict, mask_alpha=mask_alpha,
                   mask_beta=mask_beta, max_gram=max_gram, bi_data=bi_data,
                   vocab_size=vocab_size, spiece_model=spiece_model, model_size=model_size,
                   model_config=model_config,
                   recompute=bool((run_options or {}).get("recompute")),
                   grad_accum_steps=tc.grad_accum_steps)
    tc.validate()
    import tensorflow as tf
    from xlnet_tf.pretraining.data import prepare_data
    from xlnet_tf.pretraining.task import pretrain_identity

    training.configure_cpu_devices(num_cpus)
    training.set_precision(tc.precision)
    tf.keras.utils.set_random_seed(tc.seed)
    try:
        dist = training.make_strategy(strategy, tpu=tpu, num_gpus=num_gpus,
                                      tpu_timeout=tpu_timeout)
    except RuntimeError as e:   # no TPU answered: a mistake in --tpu, not a crash
        raise ValueError(str(e)) from None
    bsz_per_host, cores_per_host = _host_layout(dist, tc.global_batch_size, bi_data,
                                                record_dir, tc.grad_accum_steps)
    # a model_dir that holds another model's checkpoint is refused before anything is written
    training.check_model_dir(tc.model_dir, pretrain_identity(
        model_size or {}, seq_len=seq_len, reuse_len=reuse_len, mem_len=mem_len,
        num_predict=num_predict, bi_data=bi_data, objective=objective))
    # one run at a time in a model_dir: a second one is refused, naming the first
    with io_lib.folder_lock(tc.model_dir, "--model_dir"):
        if not record_dir:
            data_dir = data_dir or os.path.join(tc.model_dir, "data")
            # a data folder this run creates goes again when preparing the data fails (a
            # --vocab_size the corpus cannot give, a corpus too small for one batch, ...)
            with io_lib.removed_on_error(data_dir):
                record_dir, spiece_model = prepare_data(
                    data_dir, _input_files(input_text, data_dir, say),
                    spiece_model=spiece_model, vocab_size=vocab_size, seq_len=seq_len,
                    reuse_len=reuse_len, bi_data=bi_data, num_predict=num_predict,
                    mask_alpha=mask_alpha, mask_beta=mask_beta, uncased=uncased,
                    bsz_per_host=bsz_per_host, num_core_per_host=cores_per_host,
                    seed=tc.seed, num_workers=os.cpu_count() or 1, max_gram=max_gram)
        return _train(tc, dist, record_dir, spiece_model, model_size, model_config,
                      run_options, seq_len=seq_len, reuse_len=reuse_len, mem_len=mem_len,
                      perm_size=perm_size, bi_data=bi_data, num_predict=num_predict,
                      max_gram=max_gram, objective=objective, same_length=same_length,
                      uncased=uncased, bsz_per_host=bsz_per_host,
                      cores_per_host=cores_per_host, init_checkpoint=init_checkpoint,
                      say=say)


def _train(tc, dist, record_dir, spiece_model, model_size, model_config, run_options, *,
           seq_len, reuse_len, mem_len, perm_size, bi_data, num_predict, max_gram, objective,
           same_length, uncased, bsz_per_host, cores_per_host, init_checkpoint, say):
    """The records against the settings, the model configuration and the task; trains."""
    from xlnet_tf.pretraining.input_pipeline import check_manifest
    from xlnet_tf.pretraining.task import PretrainTask
    manifest = check_manifest(record_dir, seq_len=seq_len, reuse_len=reuse_len,
                              bi_data=bi_data, num_predict=num_predict, uncased=uncased,
                              bsz_per_host=bsz_per_host, num_core_per_host=cores_per_host,
                              max_gram=max_gram)
    spiece_model = spiece_model or manifest.get("spiece_model")
    finetuning.check_spiece_matches_checkpoint(spiece_model, init_checkpoint)
    config = _model_config(model_size, model_config, int(manifest["vocab_size"]),
                           dict(run_options or {}, mem_len=mem_len, reuse_len=reuse_len,
                                bi_data=bi_data, same_length=same_length))

    task = PretrainTask(config, record_dir, seq_len=seq_len, reuse_len=reuse_len,
                        perm_size=perm_size, num_predict=num_predict, bi_data=bi_data,
                        seed=tc.seed, spiece_model=spiece_model, expected={"uncased": uncased},
                        objective=objective)
    replicas = dist.num_replicas_in_sync
    accum = tc.grad_accum_steps
    say(f"strategy {type(dist).__name__}: {replicas} replica(s), global batch "
        f"{tc.global_batch_size}, per-replica batch {tc.global_batch_size // replicas}"
        + (f" in {accum} micro-batches of {tc.global_batch_size // replicas // accum}"
           if accum > 1 else "") + "; model "
        f"{config.n_layer}x{config.d_model}, {config.num_parameters():,} parameters; "
        f"precision {tc.precision}; objective {objective}")
    result = training.train(task, tc, dist, init_checkpoint=init_checkpoint)
    return dict(result, config=config)


# the committed fine-tuning flags for a model as small as the demo's: the repository's
# configs/ folder, or where `pip install` puts it (PREFIX/share/xlnet_tf/configs)
def _config_file(name):
    import sys
    for folder in (os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "configs"),
            os.path.join(sys.prefix, "share", "xlnet_tf", "configs")):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


DEMO_FINETUNE_FLAGS = _config_file("finetune_demo_sst2.flags")


def finetune_command(model_dir, config, uncased, data_dir="PATH/TO/glue/SST-2",
                     output_dir="runs/sst2"):
    """The run_classifier.py command that fine-tunes a pretrained ``model_dir`` on SST-2 (what
    run_pretrain.py prints): every path of the model is absolute and exists; the data folder
    is the user's.  Small models (d_model <= 256) get the committed small-model flags (the
    original's defaults are meant for XLNet-Large and leave a small model at the majority
    class); an uncased vocabulary gets --uncased."""
    out = os.path.abspath(model_dir)
    parts = ["python run_classifier.py"]
    if config.d_model <= 256 and DEMO_FINETUNE_FLAGS:
        parts.append(f"--flagfile={DEMO_FINETUNE_FLAGS}")
    else:
        parts += ["--task=sst-2", "--do_train", "--do_eval"]
    parts += [f"--data_dir={data_dir}", f"--init_checkpoint={out}/xlnet_model.ckpt",
              f"--model_config={out}/xlnet_config.json", f"--spiece_model={out}/spiece.model"]
    if uncased:
        parts.append("--uncased")
    parts.append(f"--output_dir={output_dir}")
    return " ".join(parts)
