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

from xlnet_tf import quiet

quiet.quiet_tensorflow()  # before the library imports TensorFlow: its start-up lines

from xlnet_tf import cli  # noqa: E402, finetuning
from xlnet_tf.squad import SquadRun, export_squad_run, fine_tune_squad  # noqa: E402


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
    string("cache_dir", None, "Where the cached features go (default: "
           "OUTPUT_DIR/data_cache).")
    boolean("overwrite_data", False, "Rebuild the cached features even if they match.")
    integer("num_workers", None, "Processes for preprocessing (default: all cores).")
    integer("max_seq_length", 512, "Window length T (paragraph + question + 3).")
    integer("doc_stride", 128, "Stride between the windows of a long paragraph.")
    integer("max_query_length", 64, "Questions are cut to this many pieces.")
    # ---- model
    cli.define_finetune_model_flags(fv, "Start from ours, the original's (pretrained or "
                                    "fine-tuned on SQuAD, heads included) or Hugging Face "
                                    "weights; also used by --do_predict when --output_dir "
                                    "holds no checkpoint.")
    # ---- run
    string("output_dir", None, "Checkpoints, summaries, results.")
    string("predict_dir", None, "Where predictions go (default --output_dir).")
    boolean("do_train", False, "Fine-tune on --train_file.")
    boolean("do_predict", False, "Predict --predict_file (and score it).")
    integer("predict_batch_size", 32, "Prediction batch size.")
    cli.define_finetune_training_flags(
        fv, train_batch_size=48, learning_rate=3e-5, train_steps=8000, adam_epsilon=1e-6,
        lr_layer_decay_rate=0.75, iterations=1000,
        lr_layer_decay_help="Layer-wise gradient decay (0.75: the paper's SQuAD value).")
    integer("n_best_size", 5, "Answers per question in nbest_predictions.json.")
    integer("start_n_top", 5, "Beam: best starts per window.")
    integer("end_n_top", 5, "Beam: best ends per start.")
    integer("max_answer_length", 64, "Longest answer in pieces.")
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags."""
    cli.check_actions(F, ("do_train", "do_predict"))
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
    cli.check_finetune_flags(F, positive=("predict_batch_size", "n_best_size", "start_n_top",
                                          "end_n_top", "max_answer_length"))
    for name in ("train_file", "predict_file"):
        path = F[name].value
        if path and not os.path.isfile(path):
            cli.fail(f"--{name} {path!r} does not exist")
    if F.predict_dir:
        finetuning.check_writable_dir(F.predict_dir, "predict_dir")


def main(F):
    cli.setup_logging()
    check_flags(F)
    run = SquadRun(
        **cli.finetune_run_values(F), predict_dir=F.predict_dir, train_file=F.train_file,
        predict_file=F.predict_file, version_2_with_negative=F.version_2_with_negative,
        num_workers=F.num_workers, doc_stride=F.doc_stride,
        max_query_length=F.max_query_length, do_train=F.do_train, do_predict=F.do_predict,
        predict_batch_size=F.predict_batch_size, n_best_size=F.n_best_size,
        start_n_top=F.start_n_top, end_n_top=F.end_n_top,
        max_answer_length=F.max_answer_length)
    return cli.dispatch_finetuning(F, run, export_only=not (F.do_train or F.do_predict), export=export_squad_run,
                                   fine_tune=fine_tune_squad)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, interrupt_hint=cli.RESUME_HINT)


if __name__ == "__main__":
    entry()
