"""One fine-tuning run of run_classifier.py, from plain values: check everything, then train,
evaluate, predict and export.

:class:`ClassifierRun` holds the settings; :func:`fine_tune_classifier` runs
``--do_train`` / ``--do_eval`` / ``--do_predict`` (+ ``--export_dir``),
:func:`export_classifier_run` exports a finished output folder.  Every check (files, the
``--init_checkpoint`` against the model size, an output folder of another model, the export
folder) runs before the first write into ``output_dir``; a mistake raises ValueError /
FileNotFoundError with the message to show.  Progress lines go to ``say`` (the script passes
``print``; default: the ``xlnet_tf`` log).
"""
import dataclasses
import functools
import logging
import math
import os
from typing import Callable, Optional

from xlnet_tf import finetuning
from xlnet_tf.classification.readers import get_task, task_has_text_b

log = logging.getLogger("xlnet_tf")

CLASSIFIER_CONFIG = "classifier_config.json"
GENERIC_TASKS = ("generic", "csv", "tsv")
SCRIPT = "run_classifier.py"


@dataclasses.dataclass
class ClassifierRun(finetuning.SummaryTaskRun):
    """The settings of a run (the flags of run_classifier.py, as plain values)."""
    cls_scope: Optional[str] = None
    max_seq_length: int = 128
    eval_batch_size: int = 128
    eval_every: int = 0
    keep_best: bool = False
    # long documents: "memory" reads up to max_segments segments of max_seq_length carrying
    # mem_len of Transformer-XL memory (None = (max_segments - 1) * max_seq_length, exact)
    long_doc: str = "truncate"
    max_segments: int = 1
    mem_len: Optional[int] = None

    def long_doc_options(self):
        """The ClassifierTask / XLNetClassifier keywords of the long-document settings."""
        if self.long_doc != "memory":
            return {"long_doc": "truncate"}
        return {"long_doc": "memory", "max_segments": self.max_segments,
                "mem_len": self.mem_len or (self.max_segments - 1) * self.max_seq_length
                or self.max_seq_length}


def is_generic(task):
    return task.strip().lower() in GENERIC_TASKS


def export(model, export_dir, spiece_model, cfg, version, say):
    """The SavedModel of ``model`` with the settings ``cfg`` (classifier_config.json)."""
    from xlnet_tf.classification.export import export_classifier
    long_doc = cfg.get("long_doc")
    segments = long_doc["max_segments"] if long_doc else 1
    path = export_classifier(
        model, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"] * segments,
        label_list=cfg["label_list"], is_regression=cfg["is_regression"], pair=cfg["pair"],
        uncased=cfg["uncased"], task_name=cfg["task"], version=version,
        info={"summary_type": cfg["summary_type"], "use_summ_proj": cfg["use_summ_proj"],
              **({"long_doc": long_doc, "segment_length": cfg["max_seq_length"]}
                 if long_doc else {})})
    say(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: raw "
        f"text, predict_ids: packed ids). Serve it with TF Serving: see README.md, 'Export for "
        f"TensorFlow Serving'.")
    return path


def long_doc_model_options(cfg):
    """The XLNetClassifier keywords of a classifier_config.json's long-document settings."""
    long_doc = cfg.get("long_doc")
    if not long_doc:
        return {}
    return {"long_doc": "memory", "seq_len": cfg["max_seq_length"],
            "max_segments": long_doc["max_segments"], "mem_len": long_doc["mem_len"]}


def check_long_doc(run, processor, say):
    """--long_doc=memory: single-text tasks only; warns when --mem_len is too short for the
    last segment to see the whole document."""
    if run.long_doc not in ("truncate", "memory"):
        raise ValueError(f"--long_doc must be truncate or memory, got {run.long_doc!r}")
    if run.long_doc != "memory":
        return
    if run.max_segments < 1:
        raise ValueError(f"--max_segments must be >= 1, got {run.max_segments}")
    if run.mem_len is not None and run.mem_len < 1:
        raise ValueError(f"--mem_len must be >= 1 with --long_doc=memory (the memory carried "
                         f"between segments), got {run.mem_len}")
    if task_has_text_b(processor):
        raise ValueError(f"--long_doc=memory reads one text per example; --task={processor.name} "
                         f"has a second text (use --long_doc=truncate)")
    mem_len = run.long_doc_options()["mem_len"]
    exact = (run.max_segments - 1) * run.max_seq_length
    if mem_len < exact:
        say(f"warning: --mem_len={mem_len} < (--max_segments - 1) * --max_seq_length = {exact}: "
            f"the last segment attends to only the last {mem_len} positions of the earlier "
            f"ones (Transformer-XL's approximation, not the full document)")


def restore_classifier(run: ClassifierRun, say, what="exporting"):
    """The fine-tuned classifier of a finished ``run.output_dir`` (best/ when kept), its
    settings and SentencePiece model: (model, cfg, spiece, version)."""
    from xlnet_tf.classification.model import XLNetClassifier
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.training import restore_for_inference

    cfg, spiece, version = finetuning.prepare_export(
        run.output_dir, run.spiece_model, run.export_dir, run.export_version,
        CLASSIFIER_CONFIG, SCRIPT)
    if run.task and not is_generic(run.task) and get_task(run.task).name != cfg["task"]:
        raise ValueError(f"--task={run.task} but {run.output_dir!r} was fine-tuned on "
                         f"{cfg['task']!r}")
    model = XLNetClassifier(XLNetConfig.from_dict(cfg["xlnet_config"]),
                            n_class=1 if cfg["is_regression"] else len(cfg["label_list"]),
                            task_name=cfg["task"], is_regression=cfg["is_regression"],
                            summary_type=cfg["summary_type"],
                            use_summ_proj=cfg["use_summ_proj"], cls_scope=cfg["cls_scope"],
                            **long_doc_model_options(cfg))
    source, step = restore_for_inference(model, run.output_dir, None, prefer_best=True)
    say(f"{what} the weights of {source} (step {step})")
    return model, cfg, spiece, version


def export_classifier_run(run: ClassifierRun, say: Optional[Callable[[str], None]] = None):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    say = say or log.info
    model, cfg, spiece, version = restore_classifier(run, say)
    return export(model, run.export_dir, spiece, cfg, version, say)


PAIR_SEPARATOR = " ||| "


def predict_texts(run: ClassifierRun, texts, say: Optional[Callable[[str], None]] = None,
                  batch_size=32):
    """Predictions for raw ``texts`` from a finished ``run.output_dir``, without exporting:
    a list of dicts ``{"text", "label", "label_name", "probability", "probabilities"}``
    (``{"text", "score"}`` for regression).  A pair task takes each text as
    ``"first ||| second"``.  Tokenized and packed as in training (the Python features)."""
    import numpy as np

    from xlnet_tf.classification.features import pack_ids
    from xlnet_tf.classification.readers import label_names
    from xlnet_tf.tokenization.tokenizer import Tokenizer

    say = say or log.info
    if not texts:
        raise ValueError("--predict_text: no text given")
    model, cfg, spiece, _ = restore_classifier(run, say, what="predicting with")
    tokenizer = Tokenizer(spiece, lower=cfg["uncased"])
    long_doc = cfg.get("long_doc")
    length = cfg["max_seq_length"] * (long_doc["max_segments"] if long_doc else 1)
    rows = []
    for text in texts:
        parts = text.split(PAIR_SEPARATOR) if cfg["pair"] else [text]
        if len(parts) > 2 or (cfg["pair"] and len(parts) != 2):
            raise ValueError(f"--predict_text {text!r}: task {cfg['task']!r} takes a pair of "
                             f"texts; separate them with {PAIR_SEPARATOR!r}")
        ids_b = tokenizer.encode_ids(parts[1]) if len(parts) == 2 else None
        rows.append(pack_ids(tokenizer.encode_ids(parts[0]), ids_b, length))
    names = label_names(cfg["task"], cfg["label_list"])
    results = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        feats = {"input_ids": np.array([r[0] for r in chunk], np.int32),
                 "input_mask": np.array([r[1] for r in chunk], np.float32),
                 "seg_ids": np.array([r[2] for r in chunk], np.int32)}
        logits = np.asarray(model(feats, training=False)["logits"], np.float64)
        for i, row_logits in enumerate(logits):
            text = texts[start + i]
            if cfg["is_regression"]:
                results.append({"text": text, "score": float(row_logits.reshape(-1)[0])})
                continue
            probs = np.exp(row_logits - row_logits.max())
            probs /= probs.sum()
            k = int(probs.argmax())
            results.append({"text": text, "label": cfg["label_list"][k],
                            "label_name": names[k], "probability": float(probs[k]),
                            "probabilities": {names[j]: float(p) for j, p in enumerate(probs)}})
    return results


def fine_tune_classifier(run: ClassifierRun, train_config,
                         say: Optional[Callable[[str], None]] = None):
    """--do_train / --do_eval / --do_predict (and --export_dir) in ``run.output_dir``.

    ``train_config`` is the TrainConfig of the optimizer flags (``model_dir`` =
    ``run.output_dir``); with ``run.num_train_epochs`` its ``train_steps`` is replaced by the
    steps of that many epochs over the training examples.  Returns the evaluation results
    (or None without --do_eval).
    """
    from xlnet_tf.classification.task import ClassifierTask
    from xlnet_tf import training

    say = say or log.info
    training.configure_cpu_devices(run.num_cpus)
    out = run.output_dir

    # ---- files: tokenizer, config, task reader and its files
    spiece, tokenizer, config = finetuning.resolve_model(run)
    if run.do_train:
        finetuning.check_memory(config, train_config, run.max_seq_length)
    if run.do_eval or run.do_predict or run.eval_every:
        finetuning.check_eval_memory(config, "eval_batch_size", run.eval_batch_size,
                                     run.max_seq_length)
    processor = get_task(run.task, **run.task_options)
    splits = ([("train", "train")] if run.do_train else []) + \
        ([("eval", run.eval_split)] if run.do_eval or run.eval_every else []) + \
        ([("predict", run.predict_split)] if run.do_predict else [])
    for _, split in splits:
        processor.source_files(run.data_dir, split)
    check_long_doc(run, processor, say)
    task = ClassifierTask(config, processor, None, run.max_seq_length,
                          summary_type=run.summary_type, use_summ_proj=run.use_summ_proj,
                          cls_scope=run.cls_scope, seed=train_config.seed,
                          shuffle_buffer=run.shuffle_buffer, **run.long_doc_options())
    identity = task.identity
    training.check_output_dir(out, identity, CLASSIFIER_CONFIG)
    version = finetuning.check_export_dir(run.export_dir, run.export_version) \
        if run.export_dir else None

    strategy = finetuning.make_strategy(train_config, run.distribution)

    # ---- the init checkpoint must fit the model: checked before anything is written
    model = finetuning.check_start_weights(run, task.build_model, say, head="classification head",
                                           action="evaluate")

    records = build_records(run, processor, tokenizer, splits, say, task.record_segments)
    if run.do_train:
        train_config = finetuning.training_steps(
            train_config, run.num_train_epochs,
            lambda: records["train"].manifest["counts"]["num_real"], "examples",
            strategy.num_replicas_in_sync, say)

    step, source = 0, None
    if not run.do_train:
        # evaluation / prediction only: the weights are found and loaded before any write
        model = model or task.build_model()
        source, step = training.restore_for_inference(model, out, run.init_checkpoint,
                                                      prefer_best=run.keep_best)

    # ---- from here on files are written into output_dir
    cfg = {"task": processor.name, "task_options": processor.options(),
           "label_list": task.label_list, "is_regression": task.is_regression,
           "pair": task_has_text_b(processor), "max_seq_length": run.max_seq_length,
           "uncased": run.uncased, "summary_type": run.summary_type,
           "use_summ_proj": run.use_summ_proj, "cls_scope": run.cls_scope,
           "xlnet_config": task.config.to_dict(), "spiece_model": finetuning.SPIECE_MODEL,
           "identity": identity}
    if task.long_doc_settings():
        cfg["long_doc"] = task.long_doc_settings()
    # (a training run writes them with its first checkpoint)
    write_files = functools.partial(finetuning.write_run_files, out, CLASSIFIER_CONFIG, cfg,
                                    task.config, spiece)
    if not run.do_train:
        write_files()

    evaluation = Evaluation(run, processor, records, say, task.record_segments)
    if run.do_train:
        model, step, source = train(run, task, train_config, strategy, records, evaluation,
                                    say, write_files)
    say(f"using {source} (step {step})")
    results = evaluation.final(model, step) if run.do_eval else None
    if run.do_predict:
        predict(run, processor, task, records["predict"].path, model, say)
    if run.export_dir:
        export(training.copy_for_export(model, task.build_model), run.export_dir, spiece, cfg,
               version, say)
    return results


def build_records(run, processor, tokenizer, splits, say, max_segments=None):
    """The cached TFRecords of every split the run needs: {kind: RecordInfo}."""
    from xlnet_tf.classification.records import prepare_classifier_records
    cache_dir = finetuning.default_cache_dir(run.cache_dir, run.output_dir)
    records = {}
    for kind, split in splits:
        try:
            info = prepare_classifier_records(
                processor, run.data_dir, split, tokenizer, run.max_seq_length,
                is_training=kind == "train",
                eval_batch_size=None if kind == "train" else run.eval_batch_size,
                cache_dir=cache_dir, overwrite_data=run.overwrite_data,
                max_segments=max_segments)
        except PermissionError as e:
            raise ValueError(str(e)) from None
        records[kind] = info
        c = info.manifest["counts"]
        say(f"{kind} records ({split}): {info.path} - {c['num_real']} examples, "
            f"{c['num_truncated']} truncated to {run.max_seq_length * (max_segments or 1)} "
            f"tokens"
            f"{' (reused)' if info.reused else ''}")
    return records


class Evaluation:
    """Evaluation on --eval_split: the periodic one during training (--eval_every, with
    --keep_best the best weights in OUTPUT_DIR/best/) and the final one."""

    def __init__(self, run, processor, records, say, max_segments=None):
        from xlnet_tf.classification.task import Evaluator
        self.run, self.say = run, say
        self.evaluator = Evaluator(processor, records["eval"].path, run.eval_batch_size,
                                   run.max_seq_length, max_segments) \
            if "eval" in records else None
        self.main_metric = processor.metric_names[0] if hasattr(processor, "metric_names") \
            else None
        self.best_dir = os.path.join(run.output_dir, "best")
        self.best_file = os.path.join(self.best_dir, "eval_results.json")

    def evaluate(self, model, step, what="eval", table=False):
        results = dict(self.evaluator.evaluate(model), step=int(step))
        title = f"{what} at step {step} ({self.run.eval_split})"
        self.say(finetuning.results_table(title + ":", results, skip=("step",)) if table else
                 f"{title}: {finetuning.format_results(results, skip=('step',))}")
        finetuning.write_eval_summaries(self.run.output_dir, step, results)
        return results

    def best_value(self):
        from xlnet_tf.io import read_json
        if self.run.keep_best and os.path.exists(self.best_file):
            return read_json(self.best_file).get(self.main_metric)
        return None

    def keep_if_best(self, model, results, best):
        """Keeps the weights in best/ when ``results`` beat ``best``; returns the new best."""
        from xlnet_tf.io import write_json_atomic
        from xlnet_tf.modeling.checkpoint import save_original_checkpoint
        value = results.get(self.main_metric)
        if value is None or math.isnan(value) or (best is not None and value <= best):
            return best
        os.makedirs(self.best_dir, exist_ok=True)
        save_original_checkpoint(model, os.path.join(self.best_dir, finetuning.FINAL_CHECKPOINT),
                                 global_step=results["step"])
        write_json_atomic(self.best_file, results)
        self.say(f"new best {self.main_metric} {value:.4f} at step {results['step']}: kept in "
                 f"{self.best_dir}")
        return value

    def final(self, model, step):
        from xlnet_tf.io import write_json_atomic
        results = self.evaluate(model, step, "final eval", table=True)
        path = os.path.join(self.run.output_dir, "eval_results.json")
        write_json_atomic(path, results)
        self.say(f"wrote {path}")
        return results


def train(run, task, train_config, strategy, records, evaluation, say, write_files):
    """Fine-tune (resuming from the newest checkpoint in output_dir; ``write_files()`` writes
    the run's settings with the first checkpoint); returns (model, step, source) of the
    weights to use afterwards: the final ones, or with --keep_best the best evaluated
    ones."""
    import tensorflow as tf

    from xlnet_tf.io import read_json
    from xlnet_tf.modeling.checkpoint import load_original_checkpoint
    from xlnet_tf import training

    out = run.output_dir
    task.train_record = records["train"].path
    latest = tf.train.latest_checkpoint(out) if os.path.isdir(out) else None
    state = {"last": training.checkpoint_step(latest) if latest else 0,
             "best": evaluation.best_value()}

    def callback(step, metrics, model):
        if not run.eval_every:
            return
        due = step // run.eval_every > state["last"] // run.eval_every
        if not due and not (run.keep_best and step == train_config.train_steps):
            return
        state["last"] = step
        results = evaluation.evaluate(model, step)
        if run.keep_best:
            state["best"] = evaluation.keep_if_best(model, results, state["best"])

    result = finetuning.train_task(run, task, train_config, strategy, write_files, say,
                                   task.processor.name, callback=callback)
    model, step, source = result["model"], result["step"], "the final weights"
    best = os.path.join(evaluation.best_dir, finetuning.FINAL_CHECKPOINT)
    if run.keep_best and os.path.exists(best + ".index"):
        load_original_checkpoint(model, best)
        step = read_json(evaluation.best_file)["step"]
        source = f"the best weights ({evaluation.main_metric} {state['best']:.4f})"
    return model, step, source


def predict(run, processor, task, record_path, model, say):
    """predictions.tsv + predict_results.jsonl of --predict_split."""
    from xlnet_tf.classification.task import Evaluator, write_predictions
    predictor = Evaluator(processor, record_path, run.eval_batch_size, run.max_seq_length,
                          task.record_segments)
    logits = predictor.outputs(model)["logits"]
    tsv, jsonl = write_predictions(run.output_dir, logits, task.label_list, task.is_regression)
    say(f"wrote {len(logits)} predictions of the {run.predict_split} split to {tsv} and "
        f"{jsonl}")
