"""One fine-tuning run of run_ner.py, from plain values: check everything, then train,
evaluate, predict and export.

:class:`TaggerRun` holds the settings; :func:`fine_tune_tagger` runs ``--do_train`` /
``--do_eval`` / ``--do_predict`` (+ ``--export_dir``), :func:`export_tagger_run` exports a
finished output folder.  Every check (the data files and their tags, the
``--init_checkpoint`` against the model size, an output folder of another model, the export
folder) runs before the first write into ``output_dir``; a mistake raises ValueError /
FileNotFoundError with the message to show.
"""
import dataclasses
import functools
import logging
import os
from typing import Callable, Optional

from xlnet_tf import finetuning
from xlnet_tf.token_classification.readers import split_file

log = logging.getLogger("xlnet_tf")

TAGGER_CONFIG = "tagger_config.json"
SCRIPT = "run_ner.py"
SPLIT_OF = {"train": "train", "eval": None, "predict": None}
# --doc_context_len's bound: XLNet was pretrained with a memory of 384 positions; a context
# longer than 1024 pieces costs every window many times its own attention
MAX_DOC_CONTEXT_LEN = 1024


@dataclasses.dataclass
class TaggerRun(finetuning.FinetuneRun):
    """The settings of a run (the flags of run_ner.py, as plain values)."""
    data_dir: Optional[str] = None
    files: dict = dataclasses.field(default_factory=dict)   # split -> --*_file
    label_column: int = -1
    tag_scheme: Optional[str] = None
    label_all_pieces: bool = False
    doc_stride: int = 64
    eval_split: str = "dev"
    predict_split: str = "test"
    scope: Optional[str] = None
    doc_context_len: Optional[int] = None   # None: the output folder's, else 0
    do_eval: bool = False
    do_predict: bool = False
    eval_batch_size: int = 64


def export(model, export_dir, spiece_model, cfg, version, say):
    from xlnet_tf.token_classification.export import export_tagger, without_context_note
    context_len = cfg.get("doc_context_len", 0)
    path = export_tagger(model, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"],
                         doc_stride=cfg["doc_stride"], tag_list=cfg["tag_list"],
                         tag_scheme=cfg["tag_scheme"], uncased=cfg["uncased"],
                         doc_context_len=context_len, version=version)
    say(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: raw "
        f"sentences, predict_words: words, predict_ids: packed ids, encode: backbone states)")
    if context_len:
        say(without_context_note(context_len))
    return path


def build_model(cfg):
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.token_classification.model import XLNetTokenClassifier
    return XLNetTokenClassifier(XLNetConfig.from_dict(cfg["xlnet_config"]),
                                len(cfg["tag_list"]), scope=cfg["scope"],
                                context_len=cfg.get("doc_context_len", 0))


def export_tagger_run(run: TaggerRun, say: Optional[Callable[[str], None]] = None):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    from xlnet_tf.training import restore_for_inference
    say = say or log.info
    cfg, spiece, version = finetuning.prepare_export(
        run.output_dir, run.spiece_model, run.export_dir, run.export_version, TAGGER_CONFIG,
        SCRIPT)
    model = build_model(cfg)
    source, step = restore_for_inference(model, run.output_dir, None)
    say(f"exporting the weights of {source} (step {step})")
    return export(model, run.export_dir, spiece, cfg, version, say)


def _split_names(run):
    return ([("train", "train")] if run.do_train else []) + \
        ([("eval", run.eval_split)] if run.do_eval else []) + \
        ([("predict", run.predict_split)] if run.do_predict else [])


def fine_tune_tagger(run: TaggerRun, train_config, say: Optional[Callable[[str], None]] = None):
    """--do_train / --do_eval / --do_predict (and --export_dir) in ``run.output_dir``;
    returns the evaluation results (or None without --do_eval)."""
    import tensorflow as tf

    from xlnet_tf import training
    from xlnet_tf.io import read_json
    from xlnet_tf.token_classification import data as tagging_data
    from xlnet_tf.token_classification.task import TaggerTask, tagger_identity

    say = say or log.info
    out = run.output_dir

    # ---- files: tokenizer, config, the data files and their tags
    spiece, tokenizer, config = finetuning.open_run(run, train_config)
    saved_path = os.path.join(out, TAGGER_CONFIG)
    saved = read_json(saved_path, what="run settings") if os.path.isfile(saved_path) else None
    paths = {split: split_file(run.data_dir, split, run.files.get(split))
             for _, split in _split_names(run)}
    scheme = run.tag_scheme or (saved["tag_scheme"] if saved else None)
    loaded = {}
    for split, path in paths.items():
        has_labels = split != "test" or _has_tag_column(path, run.label_column)
        sentences, found = tagging_data.load_sentences(path, run.label_column, scheme,
                                                       has_labels)
        if has_labels and scheme is None:
            scheme = found
            say(f"--tag_scheme not given: {path} reads as {scheme}")
        loaded[split] = sentences
    if run.do_train:
        tag_list = tagging_data.tag_list_of(loaded["train"])
    elif saved:
        tag_list = saved["tag_list"]
    else:
        raise ValueError(f"nothing to evaluate: --output_dir {out!r} holds no "
                         f"{TAGGER_CONFIG}; pass --do_train")
    context_len = doc_context_len(run, saved)
    identity = tagger_identity(config, tag_list, run.max_seq_length, run.scope, context_len)
    training.check_output_dir(out, identity, TAGGER_CONFIG)
    version = finetuning.check_export_dir(run.export_dir, run.export_version) \
        if run.export_dir else None

    strategy = finetuning.make_strategy(train_config, run.distribution)
    task = TaggerTask(config, tag_list, run.max_seq_length, scope=run.scope,
                      context_len=context_len, seed=train_config.seed,
                      shuffle_buffer=run.shuffle_buffer)
    has_ckpt = os.path.isdir(out) and tf.train.latest_checkpoint(out) is not None
    model = None
    if run.init_checkpoint and not has_ckpt:
        probe = task.build_model()
        say(f"--init_checkpoint fits the model: "
            f"{finetuning.check_init_checkpoint(probe, run.init_checkpoint)}")
        model = None if run.do_train else probe

    # ---- the windows of every split (cached in OUTPUT_DIR/data_cache or --cache_dir)
    cache_dir = finetuning.default_cache_dir(run.cache_dir, out)
    data = {}
    context_note = (f"; each window read with up to {context_len} pieces of its document "
                    f"before it as memory") if context_len else ""
    for kind, split in _split_names(run):
        data[kind] = tagging_data.prepare_data(
            paths[split], loaded[split], tokenizer, tag_list, run.max_seq_length,
            run.doc_stride, label_all_pieces=run.label_all_pieces and kind == "train",
            context_len=context_len, cache_dir=cache_dir, overwrite=run.overwrite_data,
            settings={"label_column": run.label_column})
        say(f"{kind} data ({paths[split]}): "
            f"{tagging_data.describe(data[kind].counts, run.max_seq_length)}"
            f"{' (reused)' if data[kind].reused else ''}{context_note}")
    if run.do_train:
        train_config = finetuning.training_steps(
            train_config, run.num_train_epochs, lambda: data["train"].counts["num_windows"],
            "windows", strategy.num_replicas_in_sync, say)

    model, source, step = finetuning.inference_weights(run, model, task.build_model, "tagger")

    # ---- from here on files are written into output_dir
    cfg = {"tag_list": tag_list, "tag_scheme": scheme, "label_column": run.label_column,
           "max_seq_length": run.max_seq_length, "doc_stride": run.doc_stride,
           "label_all_pieces": run.label_all_pieces, "uncased": run.uncased,
           "scope": run.scope, "doc_context_len": context_len,
           "xlnet_config": task.config.to_dict(),
           "spiece_model": finetuning.SPIECE_MODEL, "identity": identity}
    write_files = functools.partial(finetuning.write_run_files, out, TAGGER_CONFIG, cfg,
                                    task.config, spiece)
    if run.do_train:   # the settings are written with the first checkpoint
        task.train_arrays = data["train"].arrays
        result = finetuning.train_task(run, task, train_config, strategy, write_files, say,
                                       f"a tagger of {len(tag_list)} tags")
        model, step, source = result["model"], result["step"], "the final weights"
    else:
        write_files()
    say(f"using {source} (step {step})")
    results = None
    if run.do_eval:
        results = evaluate(run, model, step, data["eval"], tag_list, scheme, say)
    if run.do_predict:
        predict(run, model, step, data["predict"], tag_list, scheme, say)
    if run.export_dir:
        export(training.copy_for_export(model, task.build_model), run.export_dir, spiece, cfg,
               version, say)
    return results


def check_doc_context_len(n):
    """``n``, or ValueError naming --doc_context_len outside [0, MAX_DOC_CONTEXT_LEN]."""
    if not 0 <= n <= MAX_DOC_CONTEXT_LEN:
        raise ValueError(f"--doc_context_len={n} must be in [0, {MAX_DOC_CONTEXT_LEN}] "
                         f"(pieces of the document read as memory before each sentence)")
    return int(n)


def doc_context_len(run, saved):
    """--doc_context_len, or the output folder's (its tagger_config.json) when not given,
    else 0."""
    n = run.doc_context_len
    if n is None:
        n = int(saved.get("doc_context_len", 0)) if saved else 0
    return check_doc_context_len(n)


def _has_tag_column(path, label_column):
    """A test file may hold words only: it has tags when its first line has more than one
    column."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            columns = line.split()
            if columns and columns[0] != "-DOCSTART-":
                return len(columns) > 1
    return False


def _scores(data, tags, scheme):
    from xlnet_tf.token_classification.data import scoring_tags
    from xlnet_tf.token_classification.metrics import conll_scores
    gold = [scoring_tags(s.tags, scheme) for s in data.sentences]
    pred = [scoring_tags(t, scheme) for t in tags]
    return conll_scores(gold, pred), gold, pred


def evaluate(run, model, step, data, tag_list, scheme, say):
    """eval_results.json of --eval_split (entity precision / recall / F1 overall and per
    type, token accuracy) and its TensorBoard scalars in OUTPUT_DIR/eval."""
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.token_classification.task import Predictor
    tags, _ = Predictor(run.eval_batch_size).predict(model, data, tag_list)
    results, _, _ = _scores(data, tags, scheme)
    results = dict(results, step=int(step), split=run.eval_split, tag_scheme=scheme)
    say(f"eval at step {step} ({run.eval_split}): f1 {results['f1']:.4f} | precision "
        f"{results['precision']:.4f} | recall {results['recall']:.4f} | accuracy "
        f"{results['accuracy']:.4f} | " + " | ".join(
            f"{k} f1 {v['f1']:.4f}" for k, v in results["per_type"].items()))
    per_type = {f"f1_{kind}": v["f1"] for kind, v in results["per_type"].items()}
    finetuning.write_eval_summaries(run.output_dir, step, {**results, **per_type},
                                    keys=["f1", "precision", "recall", "accuracy", *per_type])
    path = os.path.join(run.output_dir, "eval_results.json")
    write_json_atomic(path, results)
    say(f"wrote {path}")
    return results


def predict(run, model, step, data, tag_list, scheme, say):
    """predictions.txt (``word gold predicted``, conlleval's input; bioes written as iob2)
    and, when the split has tags, predict_results.json with its scores."""
    from xlnet_tf.io import write_json_atomic, write_text_atomic
    from xlnet_tf.token_classification.metrics import format_conll_predictions
    from xlnet_tf.token_classification.data import scoring_tags
    from xlnet_tf.token_classification.task import Predictor
    tags, _ = Predictor(run.eval_batch_size).predict(model, data, tag_list)
    words = [s.words for s in data.sentences]
    if data.sentences[0].tags is not None:
        results, gold, pred = _scores(data, tags, scheme)
        path = os.path.join(run.output_dir, "predict_results.json")
        write_json_atomic(path, dict(results, step=int(step), split=run.predict_split,
                                     tag_scheme=scheme))
        say(f"{run.predict_split}: f1 {results['f1']:.4f} | accuracy "
            f"{results['accuracy']:.4f}; wrote {path}")
    else:
        gold, pred = None, [scoring_tags(t, scheme) for t in tags]
    text = format_conll_predictions(words, gold or [None] * len(words), pred)
    path = os.path.join(run.output_dir, "predictions.txt")
    write_text_atomic(path, text)
    say(f"wrote {sum(map(len, words))} word predictions of the {run.predict_split} split to "
        f"{path}")
