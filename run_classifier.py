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

    # predict raw texts from a finished output_dir (label, label name, probability)
    python run_classifier.py --output_dir=runs/sst2 --predict_text="a gorgeous film" \\
        --predict_text="a bore"

    # export only, from a finished output_dir
    python run_classifier.py --output_dir=runs/stsb --export_dir=export/stsb

    # long documents: up to 4 segments of 128 pieces read with Transformer-XL memory
    python run_classifier.py --task=imdb --data_dir=imdb --max_seq_length=128 \\
        --long_doc=memory --max_segments=4 ...

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

from xlnet_tf import quiet

quiet.quiet_tensorflow()  # before the library imports TensorFlow: its start-up lines

from xlnet_tf import cli  # noqa: E402
from xlnet_tf.classification import ClassifierRun, export_classifier_run, fine_tune_classifier  # noqa: E402
from xlnet_tf.classification.run import is_generic  # noqa: E402


def define_flags(fv):
    string, boolean, integer, real, enum = (
        functools.partial(define, flag_values=fv) for define in (
            flags.DEFINE_string, flags.DEFINE_bool, flags.DEFINE_integer, flags.DEFINE_float,
            flags.DEFINE_enum))
    # ---- task and data
    string("task", None, "Task: cola, sst-2, mrpc, qqp, sts-b, mnli_matched, "
           "mnli_mismatched, qnli, rte, wnli, imdb, yelp2, yelp5 or generic.")
    string("data_dir", None, "Folder of the task's files.")
    string("cache_dir", None, "Where the cached TFRecords go (default: "
           "OUTPUT_DIR/data_cache).")
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
    cli.define_finetune_model_flags(fv, "Start from ours, the original's (also a fine-tuned "
                                    "one, head included) or Hugging Face weights.")
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
    flags.DEFINE_multi_string("predict_text", None, "Predict these raw texts with the "
                              "fine-tuned model of --output_dir and print label, label name "
                              "and probability (repeat the flag; a pair task takes "
                              "'first ||| second'). No export needed.", flag_values=fv)
    integer("max_seq_length", 128, "Sequence length T (the segment length with "
            "--long_doc=memory).")
    enum("long_doc", "truncate", ["truncate", "memory"],
         "Documents longer than --max_seq_length: truncate (keep the first pieces) or read "
         "them as up to --max_segments segments carrying Transformer-XL memory, classified "
         "from the last segment (single-text tasks).")
    integer("max_segments", 4, "--long_doc=memory: segments per document (its first "
            "max_segments * max_seq_length - 2 pieces are kept).")
    integer("mem_len", None, "--long_doc=memory: memory length (default (max_segments - 1) "
            "* max_seq_length: the last segment sees the whole document; shorter warns).")
    integer("eval_batch_size", 128, "Evaluation / prediction batch size.")
    cli.define_finetune_training_flags(fv, train_batch_size=8, learning_rate=1e-5,
                                       train_steps=1000, adam_epsilon=1e-8,
                                       lr_layer_decay_rate=1.0, iterations=100)
    integer("eval_every", 0, "Evaluate on --eval_split every N training steps (at the "
            "first --iterations boundary at or after each multiple; 0 = off).")
    boolean("keep_best", False, "With --eval_every: keep the best evaluated weights in "
            "OUTPUT_DIR/best/ and use them for --do_eval/--do_predict/--export_dir.")
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags."""
    actions = cli.check_actions(F, ("do_train", "do_eval", "do_predict"))
    if actions and not F.task:
        cli.fail("--task is required (e.g. --task=sst-2; --task=generic for any CSV/TSV)")
    if actions and not F.data_dir:
        cli.fail("--data_dir is required with --do_train/--do_eval/--do_predict")
    if F.max_seq_length < 3:
        cli.fail(f"--max_seq_length={F.max_seq_length} is too small: the layout needs at "
                 f"least <sep> <sep> <cls>")
    cli.check_finetune_flags(F, positive=("eval_batch_size",))
    if F.long_doc == "memory":
        if F.max_segments < 1:
            cli.fail(f"--max_segments must be >= 1, got {F.max_segments}")
        if F.mem_len is not None and F.mem_len < 1:
            cli.fail(f"--mem_len must be >= 1 with --long_doc=memory (the memory carried "
                     f"between segments), got {F.mem_len}")
    elif F["max_segments"].present or F["mem_len"].present:
        cli.fail("--max_segments and --mem_len apply to --long_doc=memory only")
    if F.eval_every < 0:
        cli.fail(f"--eval_every must be >= 0, got {F.eval_every}")
    if F.eval_every and not F.do_train:
        cli.fail("--eval_every evaluates during training; it needs --do_train")
    if F.keep_best and F.do_train and not F.eval_every:
        cli.fail("--keep_best needs --eval_every=N (the best of the periodic evaluations is "
                 "kept)")


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


def predict_from_command_line(F):
    """--predict_text: the fine-tuned model of --output_dir on the given texts, printed as a
    small table (and nothing written)."""
    import os

    from xlnet_tf.classification.run import predict_texts
    others = [f"--{name}" for name in ("do_train", "do_eval", "do_predict", "export_dir")
              if F[name].value]
    if others:
        cli.fail(f"--predict_text predicts from a finished --output_dir; run {', '.join(others)} "
                 f"separately")
    if not F.output_dir:
        cli.fail("--predict_text needs --output_dir (the folder of a fine-tuning run)")
    if not os.path.isdir(F.output_dir):
        cli.fail(f"--output_dir {F.output_dir!r} does not exist: fine-tune first (--do_train)")
    if not os.path.isfile(os.path.join(F.output_dir, "classifier_config.json")):
        cli.fail(f"--output_dir {F.output_dir!r} holds no classifier_config.json: "
                 f"--predict_text needs the folder of a run_classifier.py fine-tuning run")
    run = ClassifierRun(output_dir=F.output_dir, spiece_model=F.spiece_model, task=F.task,
                        eval_batch_size=F.eval_batch_size)
    results = predict_texts(run, list(F.predict_text), say=lambda line: print(line),
                            batch_size=F.eval_batch_size)
    if "score" in results[0]:
        print("score      text")
        for r in results:
            print(f"{r['score']:<10.4f} {r['text']}")
        return 0
    width = max(len("label name"), *(len(f"{r['label']} {r['label_name']}") for r in results))
    print(f"{'label name':<{width}}  probability  text")
    for r in results:
        print(f"{r['label'] + ' ' + r['label_name']:<{width}}  {r['probability']:<11.4f}  "
              f"{r['text']}")
    return 0


def main(F):
    cli.setup_logging()
    if F.predict_text:
        return predict_from_command_line(F)
    check_flags(F)
    actions = F.do_train or F.do_eval or F.do_predict
    run = ClassifierRun(
        **cli.finetune_run_values(F), task=F.task, data_dir=F.data_dir,
        task_options=task_options(F) if actions else {}, eval_split=F.eval_split,
        predict_split=F.predict_split, summary_type=F.summary_type,
        use_summ_proj=F.use_summ_proj, cls_scope=F.cls_scope, do_train=F.do_train,
        do_eval=F.do_eval, do_predict=F.do_predict, eval_batch_size=F.eval_batch_size,
        eval_every=F.eval_every, keep_best=F.keep_best, long_doc=F.long_doc,
        max_segments=F.max_segments if F.long_doc == "memory" else 1, mem_len=F.mem_len)
    return cli.dispatch_finetuning(F, run, export_only=not actions, export=export_classifier_run,
                                   fine_tune=fine_tune_classifier)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, interrupt_hint=cli.RESUME_HINT)


if __name__ == "__main__":
    entry()
