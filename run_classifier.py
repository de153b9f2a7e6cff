"""Fine-tune and evaluate XLNet on GLUE, IMDB, Yelp or any CSV/TSV; export a SavedModel that
TensorFlow Serving serves from raw text.

    # fine-tune a pretrained checkpoint (original, Hugging Face or ours) and evaluate on dev
    python run_classifier.py --task=sts-b --data_dir=glue/STS-B \\
        --spiece_model=xlnet_cased_L-12_H-768_A-12/spiece.model \\
        --model_config=xlnet_cased_L-12_H-768_A-12/xlnet_config.json \\
        --init_checkpoint=xlnet_cased_L-12_H-768_A-12/xlnet_model.ckpt \\
        --output_dir=runs/stsb --do_train --do_eval --train_batch_size=32 \\
        --learning_rate=5e-5 --train_steps=1200 --warmup_steps=120

    # predictions for the test split (GLUE submission format) and a SavedModel for serving
    python run_classifier.py --task=sts-b --data_dir=glue/STS-B --output_dir=runs/stsb \\
        --do_predict --export_dir=export/stsb

    # export only, from a finished output_dir
    python run_classifier.py --output_dir=runs/stsb --export_dir=export/stsb

    # any CSV/TSV file set
    python run_classifier.py --task=generic --data_dir=my_data --text_a_column=review \\
        --label_column=stars --label_list=1,2,3,4,5 ...

Outputs in --output_dir: checkpoints (resumable), TensorBoard summaries (train/, eval/),
task.json, classifier_config.json, xlnet_config.json, spiece.model, xlnet_model.ckpt (the
final weights under the original variable names), eval_results.json, predictions.tsv,
predict_results.jsonl, best/ (with --keep_best).  Every check (flags, files, the
--init_checkpoint against the model size, an output_dir of another model) runs before
anything is written; results are written to temporary names and renamed.
"""
import functools

from absl import flags

from xlnet_tf import cli, finetuning
from xlnet_tf.classification import ClassifierRun, export_classifier_run, fine_tune_classifier
from xlnet_tf.classification.run import is_generic


def define_flags(fv):
    string, boolean, integer, real, enum = (
        functools.partial(define, flag_values=fv) for define in (
            flags.DEFINE_string, flags.DEFINE_bool, flags.DEFINE_integer, flags.DEFINE_float,
            flags.DEFINE_enum))
    # ---- task and data
    string("task", None, "Task: cola, sst-2, mrpc, qqp, sts-b, mnli_matched, "
           "mnli_mismatched, qnli, rte, wnli, imdb, yelp2, yelp5 or generic.")
    string("data_dir", None, "Folder of the task's files.")
    string("cache_dir", None, "Where the cached TFRecords go (default: --data_dir "
           "when writable, else OUTPUT_DIR/data_cache).")
    boolean("overwrite_data", False, "Rebuild the cached records even if they match.")
    string("train_file", None, "Train file(s) in data_dir: name, list or glob.")
    string("dev_file", None, "Dev file (the eval split).")
    string("test_file", None, "Test file (the predict split).")
    boolean("skip_malformed_rows", None, "Skip rows with a wrong number of fields "
            "(default: an error naming file and line; QQP skips).")
    enum("eval_split", "dev", ["train", "dev", "test"], "Split for --do_eval.")
    enum("predict_split", "test", ["train", "dev", "test"], "Split for --do_predict.")
    # ---- generic task
    string("text_a_column", None, "generic: first text column (header name or "
           "0-based index).")
    string("text_b_column", None, "generic: second text column.")
    string("label_column", None, "generic: label column.")
    string("label_list", None, "generic: labels in id order, comma-separated.")
    boolean("is_regression", False, "generic: float labels (regression).")
    string("header", None, "generic: true/false/auto - files start with a header.")
    string("delimiter", None, "generic: field delimiter (default from extension).")
    string("quotechar", None, "generic: quote character (default '\"' for CSV).")
    string("id_column", None, "generic: id column (guids).")
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
    string("init_checkpoint", None, "Start from ours, the original's (also a "
           "fine-tuned one, head included) or Hugging Face weights.")
    enum("summary_type", "last", ["last", "first", "mean", "attn"],
         "How the sequence is summarised (last = the <cls> token).")
    boolean("use_summ_proj", True, "tanh projection on the summary.")
    string("cls_scope", None, "Head scope suffix: model/classification_<cls_scope> "
           "(default the task name).")
    # ---- run
    string("output_dir", None, "Checkpoints, summaries, results.")
    boolean("do_train", False, "Fine-tune.")
    boolean("do_eval", False, "Evaluate on --eval_split: eval_results.json.")
    boolean("do_predict", False, "Predict --predict_split: predictions.tsv.")
    integer("max_seq_length", 128, "Sequence length T.")
    integer("train_batch_size", 8, "GLOBAL training batch size (all replicas).")
    integer("eval_batch_size", 128, "Evaluation / prediction batch size.")
    real("learning_rate", 1e-5, "Peak learning rate.")
    integer("train_steps", 1000, "Training steps (or --num_train_epochs).")
    real("num_train_epochs", None, "Epochs over the train split; sets train_steps.")
    integer("warmup_steps", 0, "Linear warm-up steps.")
    real("min_lr_ratio", 0.0, "Final learning rate / peak.")
    enum("decay_method", "poly", ["poly", "cos"], "Decay after warm-up.")
    real("weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
    real("adam_epsilon", 1e-8, "Adam epsilon.")
    real("clip", 1.0, "Global-norm gradient clipping.")
    real("lr_layer_decay_rate", 1.0, "Layer-wise gradient decay.")
    integer("iterations", 100, "Steps per tf.function loop (and per log line).")
    integer("save_steps", None, "Checkpoint every N steps (default: at the end).")
    integer("max_save", 5, "Checkpoints to keep (0 = all).")
    integer("shuffle_buffer", 2048, "Training shuffle buffer.")
    integer("eval_every", 0, "Evaluate on --eval_split every N training steps (at the "
            "first --iterations boundary at or after each multiple; 0 = off).")
    boolean("keep_best", False, "With --eval_every: keep the best evaluated weights in "
            "OUTPUT_DIR/best/ and use them for --do_eval/--do_predict/--export_dir.")
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags."""
    if not F.output_dir:
        cli.fail("--output_dir is required")
    actions = F.do_train or F.do_eval or F.do_predict
    if not actions and not F.export_dir:
        cli.fail("nothing to do: pass --do_train, --do_eval, --do_predict and/or --export_dir")
    if actions and not F.task:
        cli.fail("--task is required (e.g. --task=sst-2; --task=generic for any CSV/TSV)")
    if actions and not F.data_dir:
        cli.fail("--data_dir is required with --do_train/--do_eval/--do_predict")
    if F.max_seq_length < 3:
        cli.fail(f"--max_seq_length={F.max_seq_length} is too small: the layout needs at "
                 f"least <sep> <sep> <cls>")
    for name in ("train_batch_size", "eval_batch_size", "iterations", "shuffle_buffer"):
        if getattr(F, name) <= 0:
            cli.fail(f"--{name} must be > 0, got {getattr(F, name)}")
    finetuning.check_training_flags(
        output_dir=F.output_dir, learning_rate=F.learning_rate, train_steps=F.train_steps,
        train_steps_given=F["train_steps"].present, num_train_epochs=F.num_train_epochs,
        warmup_steps=F.warmup_steps, dropout=F.dropout, dropatt=F.dropatt,
        save_steps=F.save_steps, lr_layer_decay_rate=F.lr_layer_decay_rate,
        export_dir=F.export_dir, export_version=F.export_version,
        init_checkpoint=F.init_checkpoint)
    if F.eval_every < 0:
        cli.fail(f"--eval_every must be >= 0, got {F.eval_every}")
    if F.eval_every and not F.do_train:
        cli.fail("--eval_every evaluates during training; it needs --do_train")
    if F.keep_best and F.do_train and not F.eval_every:
        cli.fail("--keep_best needs --eval_every=N (the best of the periodic evaluations is "
                 "kept)")
    finetuning.check_writable_dir(F.output_dir, "output_dir")
    if F.export_dir:
        finetuning.check_writable_dir(F.export_dir, "export_dir")


GENERIC_FLAGS = ("text_a_column", "text_b_column", "label_column", "label_list",
                 "is_regression", "header", "delimiter", "quotechar", "id_column")


def task_options(F):
    """The reader options of --task (the column flags only for --task=generic)."""
    opts = {"train_file": F.train_file, "dev_file": F.dev_file, "test_file": F.test_file,
            "skip_malformed_rows": F.skip_malformed_rows}
    generic = {name: F[name].value for name in GENERIC_FLAGS}
    generic["is_regression"] = F.is_regression or None
    if is_generic(F.task):
        return {**opts, **generic}
    given = [f"--{k}" for k, v in generic.items() if v is not None]
    if given:
        cli.fail(f"{', '.join(given)} only apply to --task=generic, not --task={F.task}")
    return opts


def main(F):
    cli.setup_logging()
    check_flags(F)
    actions = F.do_train or F.do_eval or F.do_predict
    run = ClassifierRun(
        output_dir=F.output_dir, task=F.task, data_dir=F.data_dir,
        task_options=task_options(F) if actions else {}, cache_dir=F.cache_dir,
        overwrite_data=F.overwrite_data, eval_split=F.eval_split,
        predict_split=F.predict_split, spiece_model=F.spiece_model, uncased=F.uncased,
        model_config=F.model_config,
        size={name: F[name].value for name in finetuning.SIZE_FLAGS},
        size_given=any(F[name].present for name in finetuning.SIZE_FLAGS),
        run_options=cli.model_run_options(F), init_checkpoint=F.init_checkpoint,
        summary_type=F.summary_type, use_summ_proj=F.use_summ_proj, cls_scope=F.cls_scope,
        do_train=F.do_train, do_eval=F.do_eval, do_predict=F.do_predict,
        max_seq_length=F.max_seq_length, eval_batch_size=F.eval_batch_size,
        num_train_epochs=F.num_train_epochs, eval_every=F.eval_every, keep_best=F.keep_best,
        shuffle_buffer=F.shuffle_buffer, export_dir=F.export_dir,
        export_version=F.export_version,
        distribution=dict(name=F.strategy, tpu=F.tpu, num_gpus=F.num_gpus,
                          tpu_timeout=F.tpu_timeout),
        num_cpus=F.num_cpus)
    say = functools.partial(print, flush=True)
    if not actions:
        export_classifier_run(run, say)
    else:
        fine_tune_classifier(run, cli.train_config(F, F.output_dir, F.train_steps,
                                                   F.max_seq_length, F.max_save or None), say)
    return 0


if __name__ == "__main__":
    cli.main_entry(define_flags, main, doc=__doc__,
                   interrupt_hint="rerun the same command to resume from the last checkpoint")
