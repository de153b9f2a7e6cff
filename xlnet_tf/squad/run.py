"""One fine-tuning run of run_squad.py, from plain values: check everything, then train,
predict, score and export.

:class:`SquadRun` holds the settings; :func:`fine_tune_squad` runs ``--do_train`` /
``--do_predict`` (+ ``--export_dir``), :func:`export_squad_run` exports a finished output
folder.  Every check (the SQuAD files, the ``--init_checkpoint`` against the model, an
output folder of another model, the export folder) runs before the first write into
``output_dir``; a mistake raises ValueError / FileNotFoundError with the message to show.
Progress lines go to ``say`` (the script passes ``print``; default: the ``xlnet_tf`` log).
"""
import dataclasses
import functools
import logging
import os
from typing import Callable, Optional

from xlnet_tf import finetuning

log = logging.getLogger("xlnet_tf")

SQUAD_CONFIG = "squad_config.json"
SCRIPT = "run_squad.py"


@dataclasses.dataclass
class SquadRun(finetuning.FinetuneRun):
    """The settings of a run (the flags of run_squad.py, as plain values)."""
    predict_dir: Optional[str] = None            # default output_dir
    train_file: Optional[str] = None
    predict_file: Optional[str] = None
    version_2_with_negative: bool = False
    num_workers: Optional[int] = None
    max_seq_length: int = 512
    doc_stride: int = 128
    max_query_length: int = 64
    do_train: bool = False
    do_predict: bool = False
    predict_batch_size: int = 32
    n_best_size: int = 5
    start_n_top: int = 5
    end_n_top: int = 5
    max_answer_length: int = 64


def export(model, export_dir, spiece_model, cfg, version, say):
    """The SavedModel of ``model`` with the settings ``cfg`` (squad_config.json)."""
    from xlnet_tf.squad.export import export_squad
    path = export_squad(
        model, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"],
        doc_stride=cfg["doc_stride"], max_query_length=cfg["max_query_length"],
        max_answer_length=cfg["max_answer_length"], uncased=cfg["uncased"], version=version)
    say(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: "
        f"question + context -> answer, answer_start, score, null_score; predict_features: "
        f"built features -> beam outputs). Serving: see README.md, 'Export for TensorFlow "
        f"Serving'.")
    return path


def export_squad_run(run: SquadRun, say: Optional[Callable[[str], None]] = None):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    say = say or log.info

    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.squad.model import XLNetSquadModel
    from xlnet_tf.training import restore_for_inference

    cfg, spiece, version = finetuning.prepare_export(
        run.output_dir, run.spiece_model, run.export_dir, run.export_version, SQUAD_CONFIG,
        SCRIPT)
    model = XLNetSquadModel(XLNetConfig.from_dict(cfg["xlnet_config"]), cfg["start_n_top"],
                            cfg["end_n_top"])
    source, step = restore_for_inference(model, run.output_dir, None, head_name="SQuAD")
    say(f"exporting the weights of {source} (step {step})")
    return export(model, run.export_dir, spiece, cfg, version, say)


def read_examples(kind, path, is_training, tokenizer, max_query_length, v2, say):
    """Read a SQuAD file up front (a bad file fails before anything is written) and report
    what reading skipped or will truncate.  Returns the examples."""
    from xlnet_tf.squad.examples import read_squad_examples
    examples = read_squad_examples(path, is_training=is_training)
    notes = []
    if examples.num_bad_offsets:
        notes.append(f"{examples.num_bad_offsets} answer(s) whose answer_start does not point "
                     f"at their text")
    if examples.num_empty_context:
        notes.append(f"{examples.num_empty_context} question(s) with an empty context")
    if examples.skipped_qas_ids:
        notes.append(f"{len(examples.skipped_qas_ids)} question(s) skipped (e.g. "
                     f"{list(examples.skipped_qas_ids[:3])})")
    # questions longer than max_query_length pieces keep their first pieces, as the original
    long_ids = [ex.qas_id for ex in examples
                if len(tokenizer.encode_ids(ex.question_text)) > max_query_length]
    if long_ids:
        notes.append(f"{len(long_ids)} question(s) longer than --max_query_length="
                     f"{max_query_length} pieces, truncated (e.g. {long_ids[:3]})")
    impossible = sum(1 for ex in examples if ex.is_impossible)
    say(f"{kind} file {path}: {len(examples)} questions"
        f"{f', {impossible} unanswerable' if impossible else ''}"
        + (f"; WARNING: {'; '.join(notes)}" if notes else ""))
    if impossible and not v2:
        say(f"WARNING: {path} has {impossible} unanswerable (SQuAD 2.0) questions but "
            f"--version_2_with_negative is not set: scores will not use the null odds")
    if not examples:
        raise ValueError(f"{kind} file {path!r} holds no usable questions")
    return examples


def fine_tune_squad(run: SquadRun, train_config, say: Optional[Callable[[str], None]] = None):
    """--do_train / --do_predict (and --export_dir) in ``run.output_dir``.

    ``train_config`` is the TrainConfig of the optimizer flags (``model_dir`` =
    ``run.output_dir``); with ``run.num_train_epochs`` its ``train_steps`` is replaced by the
    steps of that many epochs over the training windows.  Returns the evaluation results
    (or None when nothing was scored).
    """
    from xlnet_tf.squad.task import SquadTask, squad_identity
    from xlnet_tf import training

    say = say or log.info
    training.configure_cpu_devices(run.num_cpus)
    out = run.output_dir

    # ---- tokenizer, model config, the input files: read before anything is written
    spiece, tokenizer, config = finetuning.resolve_model(run)
    if run.do_train:
        finetuning.check_memory(config, train_config, run.max_seq_length)
    if run.do_predict:
        finetuning.check_eval_memory(config, "predict_batch_size", run.predict_batch_size,
                                     run.max_seq_length)
    files = ([("train", run.train_file)] if run.do_train else []) + \
        ([("predict", run.predict_file)] if run.do_predict else [])
    for kind, path in files:
        read_examples(kind, path, kind == "train", tokenizer, run.max_query_length,
                      run.version_2_with_negative, say)

    # ---- output_dir, export_dir: refuse another model's folder
    identity = squad_identity(config, run.max_seq_length)
    training.check_output_dir(out, identity, SQUAD_CONFIG)
    version = finetuning.check_export_dir(run.export_dir, run.export_version) if run.export_dir else None

    strategy = finetuning.make_strategy(train_config, run.distribution)
    task = SquadTask(config, None, run.max_seq_length, start_n_top=run.start_n_top,
                     end_n_top=run.end_n_top, seed=train_config.seed,
                     shuffle_buffer=run.shuffle_buffer)
    model = finetuning.check_start_weights(run, task.build_model, say, head="SQuAD heads",
                                           fine_tuned="a SQuAD fine-tuned one")

    caches = build_features(run, spiece, files, train_config.seed, say)
    if run.do_train:
        train_config = finetuning.training_steps(
            train_config, run.num_train_epochs, lambda: caches["train"].num_features,
            "windows", strategy.num_replicas_in_sync, say)

    step, source = 0, run.init_checkpoint
    if not run.do_train and model is None:
        # prediction only: the weights are found and loaded before any write
        model = task.build_model()
        source, step = training.restore_for_inference(model, out, run.init_checkpoint,
                                                      head_name="SQuAD")

    # ---- from here on files are written into output_dir
    cfg = {"task": "squad", "max_seq_length": run.max_seq_length,
           "doc_stride": run.doc_stride, "max_query_length": run.max_query_length,
           "max_answer_length": run.max_answer_length, "n_best_size": run.n_best_size,
           "start_n_top": run.start_n_top, "end_n_top": run.end_n_top,
           "uncased": run.uncased, "version_2_with_negative": run.version_2_with_negative,
           "xlnet_config": task.config.to_dict(), "spiece_model": finetuning.SPIECE_MODEL,
           "identity": identity}
    # (a training run writes them with its first checkpoint)
    write_files = functools.partial(finetuning.write_run_files, out, SQUAD_CONFIG, cfg,
                                    task.config, spiece)
    if not run.do_train:
        write_files()

    if run.do_train:
        task.train_record = caches["train"].record_path
        result = finetuning.train_task(run, task, train_config, strategy, write_files, say,
                                       "on SQuAD")
        model, step, source = result["model"], result["step"], "the final weights"
        hist = result["history"]
        if hist:
            say(f"loss: first loop {hist[0]['loss']:.4f} -> last loop {hist[-1]['loss']:.4f}")
    say(f"using {source} (step {step})")

    results = None
    if run.do_predict:
        results = predict_and_evaluate(run, model, caches["predict"], say, step)
    if run.export_dir:
        export_model = model if train_config.precision == "float32" else \
            training.copy_for_export(model, task.build_model)
        export(export_model, run.export_dir, spiece, cfg, version, say)
    return results


def build_features(run, spiece, files, seed, say):
    """The cached features of every file the run needs: {kind: SquadFeatureCache}."""
    from xlnet_tf.squad.records import load_or_build_features
    caches = {}
    for kind, path in files:
        cache_dir = finetuning.default_cache_dir(run.cache_dir, run.output_dir)
        try:
            cache = load_or_build_features(
                path, spiece, cache_dir, kind == "train", max_seq_length=run.max_seq_length,
                doc_stride=run.doc_stride, max_query_length=run.max_query_length,
                uncased=run.uncased, num_workers=run.num_workers,
                overwrite=run.overwrite_data, shuffle_seed=seed)
        except PermissionError as e:
            raise ValueError(str(e)) from None
        caches[kind] = cache
        m = cache.manifest
        say(f"{kind} features: {cache.record_path} - {m['num_examples']} questions -> "
            f"{m['num_features']} windows; {m['num_dropped_examples']} question(s) dropped "
            f"(text/piece mismatch), {m['num_bad_offsets']} bad answer offset(s), "
            f"{m['num_skipped_questions']} skipped{' (reused)' if not cache.rebuilt else ''}")
    return caches


def has_gold_answers(dataset):
    """True when the SQuAD ``data`` list has answers to score against."""
    for article in dataset:
        for paragraph in article.get("paragraphs", ()):
            for qa in paragraph.get("qas", ()):
                if qa.get("answers") or qa.get("is_impossible"):
                    return True
    return False


def predict_and_evaluate(run, model, cache, say, step=0):
    """Beam outputs for every feature -> predictions.json, nbest_predictions.json,
    null_odds.json (predict_dir) and, when the file has answers, eval_results.json
    (output_dir) and the scores in TensorBoard (OUTPUT_DIR/eval at ``step``).  Returns the
    evaluation (or None)."""
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.squad import evaluate as squad_eval
    from xlnet_tf.squad.postprocess import write_predictions
    from xlnet_tf.squad.task import predict_raw_results

    predict_dir = run.predict_dir or run.output_dir
    say(f"predicting {len(cache.examples)} questions ({cache.num_features} windows, batch "
        f"{run.predict_batch_size})")
    results = predict_raw_results(model, cache.record_path, run.predict_batch_size,
                                  run.max_seq_length)
    os.makedirs(predict_dir, exist_ok=True)
    preds, _, null_odds = write_predictions(
        cache.examples, cache.features, results, run.n_best_size, run.max_answer_length,
        run.start_n_top, run.end_n_top, output_dir=predict_dir)
    say(f"wrote predictions.json, nbest_predictions.json, null_odds.json for {len(preds)} "
        f"questions to {os.path.abspath(predict_dir)}")
    dataset = squad_eval.load_dataset(run.predict_file)
    if not has_gold_answers(dataset):
        say(f"{run.predict_file} has no answers: not scored")
        return None
    v2 = run.version_2_with_negative
    scores = dict(squad_eval.evaluate(dataset, dict(preds),
                                      na_probs=dict(null_odds) if v2 else None, xlnet_v2=v2))
    path = os.path.join(run.output_dir, "eval_results.json")
    write_json_atomic(path, scores)
    finetuning.write_eval_summaries(run.output_dir, step, scores)
    say(finetuning.results_table(f"eval ({run.predict_file}):", scores))
    if v2 and scores.get("total"):
        say(f"null baseline (no answer everywhere): exact = f1 = "
            f"{100.0 * scores.get('NoAns_total', 0) / scores['total']:.2f}")
    say(f"wrote {path}")
    return scores
