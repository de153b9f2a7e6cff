"""XLNet permutation-LM pretraining under tf.distribute.

With no flags it pretrains a small XLNet on English text that ships with Python (the
language reference behind ``help()``): it trains a SentencePiece model, builds the
records, trains a few hundred steps and prints where the model is.

    python run_pretrain.py                                   # the embedded demo
    python run_pretrain.py --input_text='corpus/*.txt' --model_dir=out ...
    python run_pretrain.py --record_dir=records --spiece_model=spiece.model ...
    python run_pretrain.py --flagfile=large.flags            # any flags from a file
"""
import logging
import os
import sys

from absl import app, flags

import common_flags

FLAGS = flags.FLAGS

# ---- model size (or --model_config)
flags.DEFINE_string("model_config", None, "xlnet_config.json; overrides the size flags.")
flags.DEFINE_integer("n_layer", 3, "Number of layers.")
flags.DEFINE_integer("d_model", 128, "Hidden size.")
flags.DEFINE_integer("n_head", 4, "Attention heads.")
flags.DEFINE_integer("d_head", 32, "Size of each head.")
flags.DEFINE_integer("d_inner", 512, "Feed-forward inner size.")
flags.DEFINE_enum("ff_activation", "gelu", ["gelu", "relu"], "Feed-forward activation.")
flags.DEFINE_bool("untie_r", True, "Per-layer attention biases.")
# ---- data
flags.DEFINE_string("record_dir", None, "Records from xlnet_tf.pretraining.records.")
flags.DEFINE_string("input_text", None, "Comma-separated globs of raw text (one sentence per "
                    "line, blank line between documents): trains the SentencePiece model if "
                    "--spiece_model is not given, builds the records, caches both in "
                    "--data_dir.")
flags.DEFINE_string("data_dir", None, "Cache for --input_text (default MODEL_DIR/data).")
flags.DEFINE_string("spiece_model", None, "SentencePiece model (spiece.model).")
flags.DEFINE_integer("vocab_size", 2000, "Vocabulary size when a SentencePiece model is trained.")
flags.DEFINE_bool("uncased", False, "Lower-case text (uncased vocabulary).")
flags.DEFINE_integer("seq_len", 64, "Sequence length.")
flags.DEFINE_integer("reuse_len", 32, "Tokens cached as memory for the next step.")
flags.DEFINE_integer("mem_len", 48, "Memory length (0 = no memory).")
flags.DEFINE_integer("perm_size", 32, "Factorization-order chunk size.")
flags.DEFINE_bool("bi_data", True, "Bidirectional data (forward + backward halves).")
flags.DEFINE_integer("num_predict", 10, "Predicted tokens per sequence.")
flags.DEFINE_integer("mask_alpha", 6, "Span masking: context of n*alpha/beta per n-gram.")
flags.DEFINE_integer("mask_beta", 1, "Span masking beta.")
flags.DEFINE_bool("same_length", False, "Same-length attention (attn_type uni only).")
# ---- run
flags.DEFINE_string("model_dir", "runs/pretrain_demo", "Checkpoints, summaries and the "
                    "exported model.")
flags.DEFINE_string("init_checkpoint", None, "Start from ours, the original's or HF weights.")
flags.DEFINE_integer("train_batch_size", 16, "GLOBAL batch size (all replicas).")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate.")
flags.DEFINE_integer("warmup_steps", 30, "Linear warm-up steps.")
flags.DEFINE_integer("train_steps", 300, "Total training steps.")
flags.DEFINE_float("min_lr_ratio", 0.001, "Final learning rate / peak.")
flags.DEFINE_enum("decay_method", "poly", ["poly", "cos"], "Decay after warm-up.")
flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.")
flags.DEFINE_float("clip", 1.0, "Global-norm gradient clipping.")
flags.DEFINE_float("lr_layer_decay_rate", 1.0, "Layer-wise gradient decay.")
flags.DEFINE_integer("iterations", 50, "Steps per tf.function loop (and per log line).")
flags.DEFINE_integer("save_steps", 100, "Checkpoint every N steps.")
flags.DEFINE_integer("max_save", 5, "Checkpoints to keep.")
common_flags.define_distribution_flags()
common_flags.define_model_run_flags()


def fail(msg):
    print(f"run_pretrain.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("xlnet_tf").setLevel(logging.INFO)
    F = FLAGS
    # checks that need nothing but the flags: before any TensorFlow work or file writes
    if F.reuse_len > F.seq_len:
        fail(f"--reuse_len={F.reuse_len} is larger than --seq_len={F.seq_len}")
    if F.perm_size <= 0 or F.reuse_len % F.perm_size or (F.seq_len - F.reuse_len) % F.perm_size:
        fail(f"--perm_size={F.perm_size} must divide --reuse_len={F.reuse_len} and "
             f"--seq_len - --reuse_len={F.seq_len - F.reuse_len}")
    if F.record_dir and F.input_text:
        fail("give either --record_dir or --input_text, not both")

    import tensorflow as tf
    from xlnet_tf.training import loop as training
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.pretraining.task import PretrainTask, prepare_data, python_docs_corpus

    training.configure_cpu_devices(F.num_cpus)
    training.set_precision(F.precision)
    tf.keras.utils.set_random_seed(F.seed)
    try:
        strategy = training.make_strategy(F.strategy, tpu=F.tpu, num_gpus=F.num_gpus,
                                          tpu_timeout=F.tpu_timeout)
    except (RuntimeError, ValueError) as e:
        fail(str(e))
    replicas = strategy.num_replicas_in_sync
    workers = getattr(strategy.extended, "_num_workers", None) or getattr(
        strategy.extended, "num_hosts", 1)
    if workers > 1 and not F.record_dir:
        fail("with several workers/hosts build the records first (python -m "
             "xlnet_tf.pretraining.records --num_tasks=<hosts> ...) and pass "
             "--record_dir, so the hosts do not race to build them")
    unit = 2 * replicas if F.bi_data else replicas
    if F.train_batch_size % unit:
        fail(f"--train_batch_size={F.train_batch_size} must be divisible by "
             f"{'2 x ' if F.bi_data else ''}{replicas} replicas"
             f"{' (bi_data puts a forward and a backward half on every replica)' if F.bi_data else ''}")
    bsz_per_host = F.train_batch_size // workers
    cores_per_host = replicas // workers

    tconf = common_flags.train_config(F, F.model_dir, F.train_steps, F.seq_len, F.max_save)
    try:
        tconf.validate()
    except ValueError as e:
        fail(str(e))
    # a model_dir that holds another model's checkpoint is refused before anything is written
    from xlnet_tf.pretraining.task import pretrain_identity
    size = {} if F.model_config else dict(
        n_layer=F.n_layer, d_model=F.d_model, n_head=F.n_head, d_head=F.d_head,
        d_inner=F.d_inner, ff_activation=F.ff_activation, untie_r=F.untie_r)
    try:
        training.check_model_dir(F.model_dir, pretrain_identity(
            size, seq_len=F.seq_len, reuse_len=F.reuse_len, mem_len=F.mem_len or None,
            num_predict=F.num_predict, bi_data=F.bi_data))
    except ValueError as e:
        fail(str(e))

    demo = not F.record_dir and not F.input_text
    record_dir, spiece_model = F.record_dir, F.spiece_model
    if not record_dir:
        data_dir = F.data_dir or os.path.join(F.model_dir, "data")
        if demo:
            inputs = [python_docs_corpus(os.path.join(data_dir, "python_docs.txt"))]
            print(f"No --record_dir/--input_text: pretraining on the Python documentation "
                  f"text ({inputs[0]})", flush=True)
        else:
            import glob
            inputs = sorted({f for g in F.input_text.split(",") for f in glob.glob(g.strip())})
            if not inputs:
                fail(f"--input_text={F.input_text!r} matches no files")
        record_dir, spiece_model = prepare_data(
            data_dir, inputs, spiece_model=spiece_model, vocab_size=F.vocab_size,
            seq_len=F.seq_len, reuse_len=F.reuse_len, bi_data=F.bi_data,
            num_predict=F.num_predict, mask_alpha=F.mask_alpha, mask_beta=F.mask_beta,
            uncased=F.uncased, bsz_per_host=bsz_per_host, num_core_per_host=cores_per_host,
            seed=F.seed, num_workers=os.cpu_count() or 1)

    from xlnet_tf.pretraining.input_pipeline import check_manifest
    try:
        manifest = check_manifest(record_dir, seq_len=F.seq_len, reuse_len=F.reuse_len,
                                  bi_data=F.bi_data, num_predict=F.num_predict,
                                  uncased=F.uncased, bsz_per_host=bsz_per_host,
                                  num_core_per_host=cores_per_host)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    n_token = int(manifest["vocab_size"])
    if not spiece_model:
        spiece_model = manifest.get("spiece_model")

    run = common_flags.model_run_options(F, mem_len=F.mem_len or None, reuse_len=F.reuse_len,
                                         bi_data=F.bi_data, same_length=F.same_length)
    try:
        if F.model_config:
            config = XLNetConfig.from_json(F.model_config, **run)
            if config.n_token != n_token:
                fail(f"--model_config has n_token={config.n_token} but the records use a "
                     f"vocabulary of {n_token}")
        else:
            config = XLNetConfig(n_layer=F.n_layer, d_model=F.d_model, n_head=F.n_head,
                                 d_head=F.d_head, d_inner=F.d_inner,
                                 ff_activation=F.ff_activation, untie_r=F.untie_r,
                                 n_token=n_token, **run)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))

    task = PretrainTask(config, record_dir, seq_len=F.seq_len, reuse_len=F.reuse_len,
                        perm_size=F.perm_size, num_predict=F.num_predict, bi_data=F.bi_data,
                        seed=F.seed, spiece_model=spiece_model, expected={"uncased": F.uncased})
    print(f"strategy {type(strategy).__name__}: {replicas} replica(s), global batch "
          f"{F.train_batch_size}, per-replica batch {F.train_batch_size // replicas}; model "
          f"{config.n_layer}x{config.d_model}, {config.num_parameters():,} parameters; "
          f"precision {F.precision}", flush=True)
    try:
        result = training.train(task, tconf, strategy, init_checkpoint=F.init_checkpoint)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    hist = result["history"]
    if hist:
        print(f"loss: first loop {hist[0]['loss']:.3f} -> last loop {hist[-1]['loss']:.3f}")
    out = os.path.abspath(F.model_dir)
    print(f"\nPretrained XLNet written to {out}: xlnet_model.ckpt (original variable names), "
          f"xlnet_config.json, spiece.model; checkpoints and TensorBoard summaries "
          f"(tensorboard --logdir {out}) beside them.")
    print("Fine-tune it, e.g. on SST-2:\n"
          f"  python run_classifier.py --task=sst-2 --data_dir=../shared/data/glue/SST-2 "
          f"--spiece_model={out}/spiece.model --model_config={out}/xlnet_config.json "
          f"--init_checkpoint={out}/xlnet_model.ckpt --output_dir=runs/sst2 --do_train "
          f"--do_eval")


if __name__ == "__main__":
    app.run(main)
