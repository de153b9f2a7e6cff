"""Fine-tune and evaluate XLNet on multiple-choice reading comprehension: RACE (the
original's run_race.py), DREAM, MCTest or any CSV/JSON-lines set; export a SavedModel that
TensorFlow Serving serves from raw text.

    # fine-tune a pretrained checkpoint on RACE (the original's large-model recipe) and
    # report dev accuracy on all, middle and high questions
    python run_race.py --data_dir=RACE --spiece_model=xlnet_cased_L-24_H-1024_A-16/spiece.model \\
        --init_checkpoint=xlnet_cased_L-24_H-1024_A-16/xlnet_model.ckpt \\
        --output_dir=runs/race --do_train --do_eval --train_batch_size=32 \\
        --learning_rate=2e-5 --train_steps=12000 --warmup_steps=1000

    # predictions for the test split and a SavedModel for serving
    python run_race.py --data_dir=RACE --output_dir=runs/race --do_predict \\
        --export_dir=export/race

    # any multiple-choice set with named columns, any number of options
    python run_race.py --task=generic --data_dir=my_data --context_column=passage \\
        --question_column=question --options_column=options --label_column=answer ...

--data_dir holds the RACE release ({train,dev,test}/{middle,high}/*.txt) or its JSON-lines
export ({split}_{middle,high}.jsonl); --task=dream reads {split}.json, --task=mctest
mc160/mc500.{split}.tsv with their .ans files.  --train_batch_size and --eval_batch_size
count questions (each is C sequences of --max_seq_length tokens, C the number of options).

Outputs in --output_dir: checkpoints (resumable), TensorBoard summaries (train/), task.json,
multiple_choice_config.json, xlnet_config.json, spiece.model, xlnet_model.ckpt (the final
weights under the original variable names, head logits/dense), eval_results.json
(accuracy, accuracy_middle, accuracy_high, loss), eval_predictions.jsonl and
predictions.jsonl (id, level, per-option logits and probabilities, predicted and gold
answer letter).  Every check (flags, every question of every split, the --init_checkpoint
against the model size, an output_dir of another model) runs before anything is written;
results are written to temporary names and renamed.
"""
import functools

from absl import flags

from xlnet_tf import quiet

quiet.quiet_tensorflow()  # before the library imports TensorFlow: its start-up lines

from xlnet_tf import cli  # noqa: E402
from xlnet_tf.multiple_choice import (MultipleChoiceRun, export_multiple_choice_run,  # noqa: E402
                                      fine_tune_multiple_choice)

GENERIC_FLAGS = ("context_column", "question_column", "options_column", "label_column",
                 "id_column")


def define_flags(fv):
    string, boolean, integer, enum = (
        functools.partial(define, flag_values=fv) for define in (
            flags.DEFINE_string, flags.DEFINE_bool, flags.DEFINE_integer, flags.DEFINE_enum))
    # ---- task and data
    string("task", "race", "Data set: race, dream, mctest (mc160 + mc500), mc160, mc500 or "
           "generic.")
    string("data_dir", None, "Folder of the data set's files.")
    boolean("high_only", False, "RACE: only the high-school questions (RACE-H).")
    boolean("middle_only", False, "RACE: only the middle-school questions (RACE-M).")
    string("cache_dir", None, "Where the cached TFRecords go (default: "
           "OUTPUT_DIR/data_cache).")
    boolean("overwrite_data", False, "Rebuild the cached records even if they match.")
    enum("eval_split", "dev", ["train", "dev", "test"], "Split for --do_eval.")
    enum("predict_split", "test", ["train", "dev", "test"], "Split for --do_predict.")
    # ---- generic task
    string("context_column", None, "generic: passage column (optional).")
    string("question_column", None, "generic: question column.")
    string("options_column", None, "generic: one column holding a list of options (a JSON "
           "list in CSV/TSV), or comma-separated columns, one per option.")
    string("label_column", None, "generic: answer column (letter A.. or 0-based index).")
    string("id_column", None, "generic: question id column.")
    # ---- model
    cli.define_finetune_model_flags(fv, "Start from ours, the original's (also one "
                                    "fine-tuned by its run_race.py, head included) or "
                                    "Hugging Face weights.")
    enum("summary_type", "last", ["last", "first", "mean", "attn"],
         "How each sequence is summarised (last = the <cls> token, the original's).")
    boolean("use_summ_proj", True, "tanh projection on the summary.")
    # ---- run
    string("output_dir", None, "Checkpoints, summaries, results.")
    boolean("do_train", False, "Fine-tune.")
    boolean("do_eval", False, "Evaluate on --eval_split: eval_results.json.")
    boolean("do_predict", False, "Predict --predict_split: predictions.jsonl.")
    integer("max_seq_length", 512, "Tokens per option sequence T.")
    integer("max_qa_length", 128, "The question + option part keeps its last N tokens.")
    integer("eval_batch_size", 32, "Evaluation / prediction batch size (questions).")
    cli.define_finetune_training_flags(fv, train_batch_size=8, learning_rate=2e-5,
                                       train_steps=12000, adam_epsilon=1e-6,
                                       lr_layer_decay_rate=1.0, iterations=100)
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags."""
    actions = cli.check_actions(F, ("do_train", "do_eval", "do_predict"))
    if actions and not F.data_dir:
        cli.fail("--data_dir is required with --do_train/--do_eval/--do_predict")
    from xlnet_tf.multiple_choice.features import check_lengths
    try:
        check_lengths(F.max_seq_length, F.max_qa_length)
    except ValueError as e:
        cli.fail(str(e))
    cli.check_finetune_flags(F, positive=("eval_batch_size",))


def task_options(F):
    """The reader options of --task (the column flags only for --task=generic)."""
    generic = {name: F[name].value for name in GENERIC_FLAGS}
    return {"high_only": F.high_only, "middle_only": F.middle_only, **generic}


def main(F):
    cli.setup_logging()
    check_flags(F)
    actions = F.do_train or F.do_eval or F.do_predict
    if actions:
        from xlnet_tf.multiple_choice.readers import get_reader
        try:
            get_reader(F.task, **task_options(F))
        except ValueError as e:
            cli.fail(str(e))
    run = MultipleChoiceRun(
        **cli.finetune_run_values(F), task=F.task, data_dir=F.data_dir,
        task_options=task_options(F) if actions else {}, eval_split=F.eval_split,
        predict_split=F.predict_split, summary_type=F.summary_type,
        use_summ_proj=F.use_summ_proj, do_train=F.do_train, do_eval=F.do_eval,
        do_predict=F.do_predict, max_qa_length=F.max_qa_length,
        eval_batch_size=F.eval_batch_size)
    return cli.dispatch_finetuning(F, run, export_only=not actions,
                                   export=export_multiple_choice_run,
                                   fine_tune=fine_tune_multiple_choice)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, interrupt_hint=cli.RESUME_HINT)


if __name__ == "__main__":
    entry()
