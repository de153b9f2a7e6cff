"""Fine-tune and evaluate XLNet on named-entity recognition (or any CoNLL-format tagging)
with one tag per word and the conlleval score; export a SavedModel that tags raw sentences.

    # CoNLL-2003 English (eng.train / eng.testa / eng.testb, IOB1 tags detected)
    python run_ner.py --data_dir=conll2003 \\
        --spiece_model=xlnet_cased_L-12_H-768_A-12/spiece.model \\
        --init_checkpoint=xlnet_cased_L-12_H-768_A-12/xlnet_model.ckpt \\
        --output_dir=runs/ner --do_train --do_eval --do_predict \\
        --train_batch_size=16 --learning_rate=3e-5 --num_train_epochs=3 --warmup_steps=500

    # export only, from a finished output_dir
    python run_ner.py --output_dir=runs/ner --export_dir=export/ner

Words are column 0, tags --label_column (default the last); sentences end at blank lines,
documents at -DOCSTART- lines.  Each word's tag goes to its first SentencePiece piece (the
others are left out of the loss; --label_all_pieces labels them all), predictions come back
per word; sentences longer than --max_seq_length - 2 pieces are read in windows every
--doc_stride pieces.  --doc_context_len=N reads each window with the N pieces of its
document before it as Transformer-XL memory (recorded in the output folder, so
--do_predict and the export use it too; the export reads sentences without context).

Outputs in --output_dir: checkpoints (resumable), TensorBoard summaries (train/, eval/),
task.json, tagger_config.json, xlnet_config.json, spiece.model, xlnet_model.ckpt (the final
weights under original-style names), eval_results.json (entity precision/recall/F1 overall
and per type, token accuracy), predictions.txt (word gold predicted: conlleval's input) and
predict_results.json.  Every check runs before anything is written.
"""
import functools

from absl import flags

from xlnet_tf import quiet

quiet.quiet_tensorflow()  # before the library imports TensorFlow: its start-up lines

from xlnet_tf import cli  # noqa: E402
from xlnet_tf.token_classification import TaggerRun, export_tagger_run, fine_tune_tagger  # noqa: E402
from xlnet_tf.token_classification.readers import SCHEMES  # noqa: E402
from xlnet_tf.token_classification.run import check_doc_context_len  # noqa: E402


def define_flags(fv):
    string, boolean, integer, enum = (
        functools.partial(define, flag_values=fv) for define in (
            flags.DEFINE_string, flags.DEFINE_bool, flags.DEFINE_integer, flags.DEFINE_enum))
    # ---- data
    string("data_dir", None, "Folder of the CoNLL files (train.txt/dev.txt/test.txt or "
           "eng.train/eng.testa/eng.testb).")
    string("train_file", None, "Train file (in --data_dir unless absolute).")
    string("dev_file", None, "Dev file (the eval split).")
    string("test_file", None, "Test file (the predict split; may hold words only).")
    integer("label_column", -1, "Column of the tags (0-based; negative counts from the end).")
    enum("tag_scheme", None, list(SCHEMES), "Tag scheme (default: detected from the files).")
    boolean("label_all_pieces", False, "Train on every piece of a word, not only its first.")
    integer("doc_stride", 64, "Pieces between the starts of the windows of a long sentence.")
    integer("doc_context_len", None, "Read each sentence with up to this many pieces of the "
            "previous sentences of its document (-DOCSTART- lines separate documents) as "
            "Transformer-XL memory; 0 = none (default: the output folder's setting, else 0).")
    string("cache_dir", None, "Where the cached windows go (default OUTPUT_DIR/data_cache).")
    boolean("overwrite_data", False, "Rebuild the cached windows even if they match.")
    enum("eval_split", "dev", ["train", "dev", "test"], "Split for --do_eval.")
    enum("predict_split", "test", ["train", "dev", "test"], "Split for --do_predict.")
    # ---- model
    cli.define_finetune_model_flags(fv, "Start from ours, the original's or Hugging Face "
                                    "weights (the tagger head is new).")
    string("tagger_scope", None, "Head scope suffix: model/token_classification_<scope> "
           "(default ner).")
    # ---- run
    string("output_dir", None, "Checkpoints, summaries, results.")
    boolean("do_train", False, "Fine-tune.")
    boolean("do_eval", False, "Evaluate on --eval_split: eval_results.json.")
    boolean("do_predict", False, "Tag --predict_split: predictions.txt.")
    integer("max_seq_length", 128, "Sequence length T (pieces + <sep> <cls>).")
    integer("eval_batch_size", 64, "Evaluation / prediction batch size.")
    cli.define_finetune_training_flags(fv, train_batch_size=16, learning_rate=3e-5,
                                       train_steps=1000, adam_epsilon=1e-8,
                                       lr_layer_decay_rate=1.0, iterations=100)
    cli.define_export_flags(fv)
    cli.define_distribution_flags(fv)
    cli.define_model_run_flags(fv)


def check_flags(F):
    """Checks that need nothing but the flags (--output_dir and the shared ones:
    cli.check_finetune_flags, last)."""
    actions = F.do_train or F.do_eval or F.do_predict
    if not actions and not F.export_dir:
        cli.fail("nothing to do: pass --do_train, --do_eval, --do_predict and/or --export_dir")
    if actions and not F.data_dir and not (F.train_file or F.dev_file or F.test_file):
        cli.fail("--data_dir (or --train_file/--dev_file/--test_file) is required with "
                 "--do_train/--do_eval/--do_predict")
    if F.max_seq_length < 3:
        cli.fail(f"--max_seq_length={F.max_seq_length} is too small: a window needs at least "
                 f"one piece and <sep> <cls>")
    if not 0 < F.doc_stride <= F.max_seq_length - 2:
        cli.fail(f"--doc_stride={F.doc_stride} must be in [1, --max_seq_length - 2 = "
                 f"{F.max_seq_length - 2}] (windows may not leave pieces out)")
    if F.doc_context_len is not None:
        try:
            check_doc_context_len(F.doc_context_len)
        except ValueError as e:
            cli.fail(str(e))
    if F.label_column == 0:
        cli.fail("--label_column=0 is the word column; the tags are in another one")
    cli.check_finetune_flags(F, positive=("eval_batch_size",))


def main(F):
    cli.setup_logging()
    check_flags(F)
    run = TaggerRun(
        **cli.finetune_run_values(F), data_dir=F.data_dir,
        files={"train": F.train_file, "dev": F.dev_file, "test": F.test_file},
        label_column=F.label_column, tag_scheme=F.tag_scheme,
        label_all_pieces=F.label_all_pieces, doc_stride=F.doc_stride,
        doc_context_len=F.doc_context_len,
        eval_split=F.eval_split, predict_split=F.predict_split, scope=F.tagger_scope,
        do_train=F.do_train, do_eval=F.do_eval, do_predict=F.do_predict,
        eval_batch_size=F.eval_batch_size)
    actions = F.do_train or F.do_eval or F.do_predict
    return cli.dispatch_finetuning(F, run, export_only=not actions, export=export_tagger_run,
                                   fine_tune=fine_tune_tagger)


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__, interrupt_hint=cli.RESUME_HINT)


if __name__ == "__main__":
    entry()
