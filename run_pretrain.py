"""XLNet permutation-LM pretraining under tf.distribute.

With no flags it pretrains a small XLNet on English text that ships with Python (the
language reference behind ``help()``): it trains a SentencePiece model, builds the
records, trains a few hundred steps and prints where the model is.

    python run_pretrain.py                                   # the embedded demo
    python run_pretrain.py --input_text='corpus/*.txt' --model_dir=out ...
    python run_pretrain.py --record_dir=records --spiece_model=spiece.model ...
    python run_pretrain.py --flagfile=large.flags            # any flags from a file
"""
import os

from absl import flags

from xlnet_tf import cli


def define_flags(fv):
    def define(kind, name, default, help_text, *enum_values):
        args = (name, default, *enum_values, help_text)
        getattr(flags, f"DEFINE_{kind}")(*args, flag_values=fv)

    # ---- model size (or --model_config)
    define("string", "model_config", None, "xlnet_config.json; overrides the size flags.")
    define("integer", "n_layer", 3, "Number of layers.")
    define("integer", "d_model", 128, "Hidden size.")
    define("integer", "n_head", 4, "Attention heads.")
    define("integer", "d_head", 32, "Size of each head.")
    define("integer", "d_inner", 512, "Feed-forward inner size.")
    define("enum", "ff_activation", "gelu", "Feed-forward activation.", ["gelu", "relu"])
    define("bool", "untie_r", True, "Per-layer attention biases.")
    # ---- data
    define("string", "record_dir", None, "Records from xlnet_tf.pretraining.records.")
    define("string", "input_text", None, "Comma-separated globs of raw text (one sentence per "
           "line, blank line between documents): trains the SentencePiece model if "
           "--spiece_model is not given, builds the records, caches both in --data_dir.")
    define("string", "data_dir", None, "Cache for --input_text (default MODEL_DIR/data).")
    define("string", "spiece_model", None, "SentencePiece model (spiece.model).")
    define("integer", "vocab_size", 2000, "Vocabulary size when a SentencePiece model is "
           "trained.")
    define("bool", "uncased", False, "Lower-case text (uncased vocabulary).")
    define("integer", "seq_len", 64, "Sequence length.")
    define("integer", "reuse_len", 32, "Tokens cached as memory for the next step.")
    define("integer", "mem_len", 48, "Memory length (0 = no memory).")
    define("integer", "perm_size", 32, "Factorization-order chunk size.")
    define("bool", "bi_data", True, "Bidirectional data (forward + backward halves).")
    define("integer", "num_predict", 10, "Predicted tokens per sequence.")
    define("integer", "mask_alpha", 6, "Span masking: context of n*alpha/beta per n-gram.")
    define("integer", "mask_beta", 1, "Span masking beta.")
    define("integer", "max_gram", 5, "Longest predicted span in words (the original: 5); 1 = "
           "single-token prediction (the paper's ablation without span prediction).")
    define("enum", "objective", "plm", "plm: XLNet's permutation LM; dae: BERT's denoising "
           "objective (80/10/10 corruption of the same predicted positions, bidirectional "
           "content stream) on the same backbone -- the paper's Transformer-XL + DAE "
           "baseline.", ["plm", "dae"])
    define("bool", "same_length", False, "Same-length attention (attn_type uni only).")
    # ---- run
    define("string", "model_dir", "runs/pretrain_demo", "Checkpoints, summaries and the "
           "exported model.")
    define("string", "init_checkpoint", None, "Start from ours, the original's or HF weights.")
    define("integer", "train_batch_size", 16, "GLOBAL batch size of one optimizer step (all "
           "replicas, all --grad_accum_steps micro-batches); the records are built for it, "
           "with or without accumulation.")
    cli.define_grad_accum_flag(fv)
    define("float", "learning_rate", 1e-3, "Peak learning rate.")
    define("integer", "warmup_steps", 30, "Linear warm-up steps.")
    define("integer", "train_steps", 300, "Total training steps.")
    define("float", "min_lr_ratio", 0.001, "Final learning rate / peak.")
    define("enum", "decay_method", "poly", "Decay after warm-up.", ["poly", "cos"])
    define("float", "weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
    define("float", "adam_epsilon", 1e-8, "Adam epsilon.")
    define("float", "clip", 1.0, "Global-norm gradient clipping.")
    define("float", "lr_layer_decay_rate", 1.0, "Layer-wise gradient decay.")
    define("integer", "iterations", 50, "Steps per tf.function loop (and per log line).")
    define("integer", "save_steps", 100, "Checkpoint every N steps.")
    define("integer", "max_save", 5, "Checkpoints to keep.")
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def main(F):
    cli.setup_logging()
    from xlnet_tf import finetuning, pretraining

    data = dict(seq_len=F.seq_len, reuse_len=F.reuse_len, perm_size=F.perm_size,
                record_dir=F.record_dir, input_text=F.input_text)
    size = None if F.model_config else dict(
        n_layer=F.n_layer, d_model=F.d_model, n_head=F.n_head, d_head=F.d_head,
        d_inner=F.d_inner, ff_activation=F.ff_activation, untie_r=F.untie_r)
    pretraining.check_settings(     # every flag, before TensorFlow starts or a file is written
        objective=F.objective, train_batch_size=F.train_batch_size,
        learning_rate=F.learning_rate, mem_len=F.mem_len, num_predict=F.num_predict,
        mask_alpha=F.mask_alpha, mask_beta=F.mask_beta, max_gram=F.max_gram,
        bi_data=F.bi_data, vocab_size=F.vocab_size, spiece_model=F.spiece_model,
        model_size=size, model_config=F.model_config, recompute=F.recompute,
        grad_accum_steps=F.grad_accum_steps, **data)
    for name in ("model_dir", "data_dir"):
        if F[name].value:
            finetuning.check_writable_dir(F[name].value, name)
    result = pretraining.pretrain(
        cli.train_config(F, F.model_dir, F.train_steps, F.seq_len, F.max_save),
        model_size=size, model_config=F.model_config, run_options=cli.model_run_options(F),
        mem_len=F.mem_len or None, bi_data=F.bi_data, num_predict=F.num_predict,
        mask_alpha=F.mask_alpha, mask_beta=F.mask_beta, max_gram=F.max_gram,
        objective=F.objective, same_length=F.same_length,
        data_dir=F.data_dir, spiece_model=F.spiece_model, vocab_size=F.vocab_size,
        uncased=F.uncased, init_checkpoint=F.init_checkpoint, strategy=F.strategy, tpu=F.tpu,
        num_gpus=F.num_gpus, tpu_timeout=F.tpu_timeout, num_cpus=F.num_cpus,
        say=lambda line: print(line, flush=True), **data)

    hist = result["history"]
    if hist:
        print(f"loss: first loop {hist[0]['loss']:.3f} -> last loop {hist[-1]['loss']:.3f}")
    out = os.path.abspath(F.model_dir)
    print(f"\nPretrained XLNet written to {out}: xlnet_model.ckpt (original variable names), "
          f"xlnet_config.json, spiece.model; checkpoints and TensorBoard summaries "
          f"(tensorboard --logdir {out}) beside them.")
    from xlnet_tf.pretraining.run import finetune_command
    print("Fine-tune it on SST-2 (PATH/TO/glue/SST-2: your copy of the GLUE SST-2 folder, "
          "with train.tsv and dev.tsv):\n  "
          + finetune_command(F.model_dir, result["config"], F.uncased))


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, interrupt_hint=cli.RESUME_HINT)


if __name__ == "__main__":
    entry()
