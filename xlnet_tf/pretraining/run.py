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

log = logging.getLogger("xlnet_tf")

OBJECTIVES = ("plm", "dae")


def check_settings(*, seq_len, reuse_len, perm_size, record_dir=None, input_text=None,
                   objective="plm"):
    """ValueError for settings that contradict each other (no TensorFlow needed)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"--objective={objective!r}: use one of {', '.join(OBJECTIVES)}")
    if reuse_len > seq_len:
        raise ValueError(f"--reuse_len={reuse_len} is larger than --seq_len={seq_len}")
    if perm_size <= 0 or reuse_len % perm_size or (seq_len - reuse_len) % perm_size:
        raise ValueError(f"--perm_size={perm_size} must divide --reuse_len={reuse_len} and "
                         f"--seq_len - --reuse_len={seq_len - reuse_len}")
    if record_dir and input_text:
        raise ValueError("give either --record_dir or --input_text, not both")


def _host_layout(strategy, batch_size, bi_data, record_dir):
    """(records' bsz_per_host, num_core_per_host) for this strategy and global batch."""
    replicas = strategy.num_replicas_in_sync
    workers = getattr(strategy.extended, "_num_workers", None) or getattr(
        strategy.extended, "num_hosts", 1)
    if workers > 1 and not record_dir:
        raise ValueError("with several workers/hosts build the records first (python -m "
                         "xlnet_tf.pretraining.records --num_tasks=<hosts> ...) and pass "
                         "--record_dir, so the hosts do not race to build them")
    if batch_size % (2 * replicas if bi_data else replicas):
        why = " (bi_data puts a forward and a backward half on every replica)"
        raise ValueError(f"--train_batch_size={batch_size} must be divisible by "
                         f"{'2 x ' if bi_data else ''}{replicas} replicas"
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
    check_settings(seq_len=seq_len, reuse_len=reuse_len, perm_size=perm_size,
                   record_dir=record_dir, input_text=input_text, objective=objective)
    import tensorflow as tf
    from xlnet_tf.pretraining.data import prepare_data
    from xlnet_tf.pretraining.input_pipeline import check_manifest
    from xlnet_tf.pretraining.task import PretrainTask, pretrain_identity

    tc = train_config
    training.configure_cpu_devices(num_cpus)
    training.set_precision(tc.precision)
    tf.keras.utils.set_random_seed(tc.seed)
    try:
        dist = training.make_strategy(strategy, tpu=tpu, num_gpus=num_gpus,
                                      tpu_timeout=tpu_timeout)
    except RuntimeError as e:   # no TPU answered: a mistake in --tpu, not a crash
        raise ValueError(str(e)) from None
    bsz_per_host, cores_per_host = _host_layout(dist, tc.global_batch_size, bi_data,
                                                record_dir)
    tc.validate()
    # a model_dir that holds another model's checkpoint is refused before anything is written
    training.check_model_dir(tc.model_dir, pretrain_identity(
        model_size or {}, seq_len=seq_len, reuse_len=reuse_len, mem_len=mem_len,
        num_predict=num_predict, bi_data=bi_data, objective=objective))

    if not record_dir:
        data_dir = data_dir or os.path.join(tc.model_dir, "data")
        record_dir, spiece_model = prepare_data(
            data_dir, _input_files(input_text, data_dir, say), spiece_model=spiece_model,
            vocab_size=vocab_size, seq_len=seq_len, reuse_len=reuse_len, bi_data=bi_data,
            num_predict=num_predict, mask_alpha=mask_alpha, mask_beta=mask_beta,
            uncased=uncased, bsz_per_host=bsz_per_host, num_core_per_host=cores_per_host,
            seed=tc.seed, num_workers=os.cpu_count() or 1, max_gram=max_gram)
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
    say(f"strategy {type(dist).__name__}: {replicas} replica(s), global batch "
        f"{tc.global_batch_size}, per-replica batch {tc.global_batch_size // replicas}; model "
        f"{config.n_layer}x{config.d_model}, {config.num_parameters():,} parameters; "
        f"precision {tc.precision}; objective {objective}")
    result = training.train(task, tc, dist, init_checkpoint=init_checkpoint)
    return dict(result, config=config)
