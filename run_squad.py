"""Fine-tune XLNet on SQuAD 1.1 / 2.0, predict with the answer-span beam and the
answerability head, score with the official evaluation, export a SavedModel that answers
raw (question, context) pairs.

    # fine-tune a pretrained checkpoint (original, Hugging Face or ours), predict dev, score
    python run_squad.py --spiece_model=xlnet_cased_L-24_H-1024_A-16/spiece.model \\
        --model_config=xlnet_cased_L-24_H-1024_A-16/xlnet_config.json \\
        --init_checkpoint=xlnet_cased_L-24_H-1024_A-16/xlnet_model.ckpt \\
        --train_file=squad/train-v2.0.json --predict_file=squad/dev-v2.0.json \\
        --version_2_with_negative --output_dir=runs/squad2 --do_train --do_predict \\
        --train_batch_size=48 --learning_rate=3e-5 --train_steps=8000 --warmup_steps=1000

    # predict with a fine-tuned checkpoint (unlike the original, --init_checkpoint is used)
    python run_squad.py --spiece_model=... --model_config=... \\
        --init_checkpoint=finetuned/xlnet_model.ckpt --predict_file=dev-v2.0.json \\
        --version_2_with_negative --output_dir=runs/predict --do_predict

    # export only, from a finished output_dir
    python run_squad.py --output_dir=runs/squad2 --export_dir=export/squad2

Outputs in --output_dir: checkpoints (resumable), TensorBoard summaries, task.json,
squad_config.json, xlnet_config.json, spiece.model, xlnet_model.ckpt (final weights under the
original variable names: an original fine-tuned SQuAD checkpoint has the same names),
eval_results.json; in --predict_dir (default --output_dir): predictions.json,
nbest_predictions.json, null_odds.json (the official formats).  Every check (flags, files,
the --init_checkpoint against the model, an output_dir of another model) runs before
anything is written to --output_dir; results are written to temporary names and renamed.
"""
import functools
import os

from absl import flags

from xlnet_tf import cli, finetuning
from xlnet_tf.squad import SquadRun, export_squad_run, fine_tune_squad


def define_flags(fv):
    string, boolean, integer, real, enum = (
        functools.partial(define, flag_values=fv) for define in (
            flags.DEFINE_string, flags.DEFINE_bool, flags.DEFINE_integer, flags.DEFINE_float,
            flags.DEFINE_enum))
    # ---- data
    string("train_file", None, "SQuAD JSON for training (v1.1 or v2.0).")
    string("predict_file", None, "SQuAD JSON to predict (and score, when it has "
           "answers).")
    boolean("version_2_with_negative", False, "SQuAD 2.0: questions may have no answer; "
            "scoring uses the null odds (best_exact/best_f1 and their thresholds).")
    string("cache_dir", None, "Where the cached feature TFRecords go (default: beside "
           "the data file when writable, else OUTPUT_DIR/data_cache).")
    boolean("overwrite_data", False, "Rebuild the cached features even if they match.")
    integer("num_workers", None, "Processes for preprocessing (default: all cores).")
    integer("max_seq_length", 512, "Window length T (paragraph + question + 3).")
    integer("doc_stride", 128, "Stride between the windows of a long paragraph.")
    integer("max_query_length", 64, "Questions are cut to this many pieces.")
    # ---- model
    string("spiece_model", None, "SentencePiece model (spiece.model); default "
           "OUTPUT_DIR/spiece.model when present.")
    boolean("uncased", False, "Lower-case text (uncased vocabulary).")
    string("model_config", None, "xlnet_config.json; default: the size flags below "
           "when given, else OUTPUT_DIR/xlnet_config.json when present, else the "
           "xlnet_config.json beside --init_checkpoint, else the size flags' defaults.")
    integer("n_layer", 3, "Layers (no --model_config; from-scratch models).")
    integer("d_model", 128, "Hidden size (no --model_config).")
    integer("n_head", 4, "Attention heads (no --model_config).")
    integer("d_head", 32, "Head size (no --model_config).")
    integer("d_inner", 512, "Feed-forward size (no --model_config).")
    enum("ff_activation", "gelu", ["gelu", "relu"], "FF activation (no "
         "--model_config).")
    boolean("untie_r", True, "Per-layer attention biases (no --model_config).")
    string("init_checkpoint", None, "Start from ours, the original's (pretrained or "
           "fine-tuned on SQuAD, heads included) or Hugging Face weights; also used "
           "by --do_predict when --output_dir holds no checkpoint.")
    # ---- run
    string("output_dir", None, "Checkpoints, summaries, results.")
    string("predict_dir", None, "Where predictions go (default --output_dir).")
    boolean("do_train", False, "Fine-tune on --train_file.")
    boolean("do_predict", False, "Predict --predict_file (and score it).")
    integer("train_batch_size", 48, "GLOBAL training batch size (all replicas).")
    integer("predict_batch_size", 32, "Prediction batch size.")
    real("learning_rate", 3e-5, "Peak learning rate.")
    integer("train_steps", 8000, "Training steps (or --num_train_epochs).")
    real("num_train_epochs", None, "Epochs over the training features; sets "
         "train_steps.")
    integer("warmup_steps", 0, "Linear warm-up steps.")
    real("min_lr_ratio", 0.0, "Final learning rate / peak.")
    enum("decay_method", "poly", ["poly", "cos"], "Decay after warm-up.")
    real("weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
    real("adam_epsilon", 1e-6, "Adam epsilon.")
    real("clip", 1.0, "Global-norm gradient clipping.")
    real("lr_layer_decay_rate", 0.75, "Layer-wise gradient decay (0.75: the paper's "
         "SQuAD value).")
    integer("iterations", 1000, "Steps per tf.function loop (and per log line).")
    integer("save_steps", None, "Checkpoint every N steps (default: at the end).")
    integer("max_save", 5, "Checkpoints to keep (0 = all).")
    integer("shuffle_buffer", 2048, "Training shuffle buffer.")
    integer("n_best_size", 5, "Answers per question in nbest_predictions.json.")
    integer("start_n_top", 5, "Beam: best starts per window.")
    integer("end_n_top", 5, "Beam: best ends per start.")
    integer("max_answer_length", 64, "Longest answer in pieces.")
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags."""
    if not F.output_dir:
        cli.fail("--output_dir is required")
    if not (F.do_train or F.do_predict or F.export_dir):
        cli.fail("nothing to do: pass --do_train, --do_predict and/or --export_dir")
    if F.do_train and not F.train_file:
        cli.fail("--do_train needs --train_file (a SQuAD v1.1 or v2.0 JSON file)")
    if F.do_predict and not F.predict_file:
        cli.fail("--do_predict needs --predict_file (a SQuAD v1.1 or v2.0 JSON file)")
    if F.max_query_length < 1 or F.doc_stride < 1:
        cli.fail(f"--max_query_length ({F.max_query_length}) and --doc_stride "
                 f"({F.doc_stride}) must be >= 1")
    if F.max_seq_length - F.max_query_length - 3 < 1:
        cli.fail(f"--max_seq_length={F.max_seq_length} leaves no room for the paragraph after "
                 f"a --max_query_length={F.max_query_length} question and <sep> <sep> <cls>; "
                 f"use --max_seq_length > --max_query_length + 3 (the original: 512 and 64)")
    for name in ("train_batch_size", "predict_batch_size", "iterations", "shuffle_buffer",
                 "n_best_size", "start_n_top", "end_n_top", "max_answer_length"):
        if F[name].value <= 0:
            cli.fail(f"--{name} must be > 0, got {F[name].value}")
    finetuning.check_training_flags(
        output_dir=F.output_dir, learning_rate=F.learning_rate, train_steps=F.train_steps,
        train_steps_given=F["train_steps"].present, num_train_epochs=F.num_train_epochs,
        warmup_steps=F.warmup_steps, dropout=F.dropout, dropatt=F.dropatt,
        save_steps=F.save_steps, lr_layer_decay_rate=F.lr_layer_decay_rate,
        export_dir=F.export_dir, export_version=F.export_version,
        init_checkpoint=F.init_checkpoint)
    for name in ("train_file", "predict_file"):
        path = F[name].value
        if path and not os.path.isfile(path):
            cli.fail(f"--{name} {path!r} does not exist")
    finetuning.check_writable_dir(F.output_dir, "output_dir")
    if F.predict_dir:
        finetuning.check_writable_dir(F.predict_dir, "predict_dir")
    if F.export_dir:
        finetuning.check_writable_dir(F.export_dir, "export_dir")


def main(F):
    cli.setup_logging()
    check_flags(F)
    run = SquadRun(
        output_dir=F.output_dir, predict_dir=F.predict_dir, train_file=F.train_file,
        predict_file=F.predict_file, version_2_with_negative=F.version_2_with_negative,
        cache_dir=F.cache_dir, overwrite_data=F.overwrite_data, num_workers=F.num_workers,
        max_seq_length=F.max_seq_length, doc_stride=F.doc_stride,
        max_query_length=F.max_query_length, spiece_model=F.spiece_model, uncased=F.uncased,
        model_config=F.model_config,
        size={name: F[name].value for name in finetuning.SIZE_FLAGS},
        size_given=any(F[name].present for name in finetuning.SIZE_FLAGS),
        run_options=cli.model_run_options(F), init_checkpoint=F.init_checkpoint,
        do_train=F.do_train, do_predict=F.do_predict,
        predict_batch_size=F.predict_batch_size, num_train_epochs=F.num_train_epochs,
        shuffle_buffer=F.shuffle_buffer, n_best_size=F.n_best_size,
        start_n_top=F.start_n_top, end_n_top=F.end_n_top,
        max_answer_length=F.max_answer_length, export_dir=F.export_dir,
        export_version=F.export_version,
        distribution=dict(name=F.strategy, tpu=F.tpu, num_gpus=F.num_gpus,
                          tpu_timeout=F.tpu_timeout),
        num_cpus=F.num_cpus)
    say = functools.partial(print, flush=True)
    if not (F.do_train or F.do_predict):
        export_squad_run(run, say)
    else:
        fine_tune_squad(run, cli.train_config(F, F.output_dir, F.train_steps,
                                              F.max_seq_length, F.max_save or None), say)
    return 0


if __name__ == "__main__":
    cli.main_entry(define_flags, main, doc=__doc__,
                   interrupt_hint="rerun the same command to resume from the last checkpoint")
