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
import json
import logging
import math
import os
import shutil
import sys

from absl import app, flags

import common_flags

FLAGS = flags.FLAGS

# ---- task and data
flags.DEFINE_string("task", None, "Task: cola, sst-2, mrpc, qqp, sts-b, mnli_matched, "
                    "mnli_mismatched, qnli, rte, wnli, imdb, yelp2, yelp5 or generic.")
flags.DEFINE_string("data_dir", None, "Folder of the task's files.")
flags.DEFINE_string("cache_dir", None, "Where the cached TFRecords go (default: --data_dir "
                    "when writable, else OUTPUT_DIR/data_cache).")
flags.DEFINE_bool("overwrite_data", False, "Rebuild the cached records even if they match.")
flags.DEFINE_string("train_file", None, "Train file(s) in data_dir: name, list or glob.")
flags.DEFINE_string("dev_file", None, "Dev file (the eval split).")
flags.DEFINE_string("test_file", None, "Test file (the predict split).")
flags.DEFINE_bool("skip_malformed_rows", None, "Skip rows with a wrong number of fields "
                  "(default: an error naming file and line; QQP skips).")
flags.DEFINE_enum("eval_split", "dev", ["train", "dev", "test"], "Split for --do_eval.")
flags.DEFINE_enum("predict_split", "test", ["train", "dev", "test"], "Split for --do_predict.")
# ---- generic task
flags.DEFINE_string("text_a_column", None, "generic: first text column (header name or "
                    "0-based index).")
flags.DEFINE_string("text_b_column", None, "generic: second text column.")
flags.DEFINE_string("label_column", None, "generic: label column.")
flags.DEFINE_string("label_list", None, "generic: labels in id order, comma-separated.")
flags.DEFINE_bool("is_regression", False, "generic: float labels (regression).")
flags.DEFINE_string("header", None, "generic: true/false/auto - files start with a header.")
flags.DEFINE_string("delimiter", None, "generic: field delimiter (default from extension).")
flags.DEFINE_string("quotechar", None, "generic: quote character (default '\"' for CSV).")
flags.DEFINE_string("id_column", None, "generic: id column (guids).")
# ---- model
flags.DEFINE_string("spiece_model", None, "SentencePiece model (spiece.model); default "
                    "OUTPUT_DIR/spiece.model when present.")
flags.DEFINE_bool("uncased", False, "Lower-case text (uncased vocabulary).")
flags.DEFINE_string("model_config", None, "xlnet_config.json; default: the size flags below "
                    "when given, else OUTPUT_DIR/xlnet_config.json when present, else the "
                    "size flags' defaults.")
flags.DEFINE_integer("n_layer", 3, "Layers (no --model_config; from-scratch models).")
flags.DEFINE_integer("d_model", 128, "Hidden size (no --model_config).")
flags.DEFINE_integer("n_head", 4, "Attention heads (no --model_config).")
flags.DEFINE_integer("d_head", 32, "Head size (no --model_config).")
flags.DEFINE_integer("d_inner", 512, "Feed-forward size (no --model_config).")
flags.DEFINE_enum("ff_activation", "gelu", ["gelu", "relu"], "FF activation (no "
                  "--model_config).")
flags.DEFINE_bool("untie_r", True, "Per-layer attention biases (no --model_config).")
flags.DEFINE_string("init_checkpoint", None, "Start from ours, the original's (also a "
                    "fine-tuned one, head included) or Hugging Face weights.")
flags.DEFINE_enum("summary_type", "last", ["last", "first", "mean", "attn"],
                  "How the sequence is summarised (last = the <cls> token).")
flags.DEFINE_bool("use_summ_proj", True, "tanh projection on the summary.")
flags.DEFINE_string("cls_scope", None, "Head scope suffix: model/classification_<cls_scope> "
                    "(default the task name).")
# ---- run
flags.DEFINE_string("output_dir", None, "Checkpoints, summaries, results.")
flags.DEFINE_bool("do_train", False, "Fine-tune.")
flags.DEFINE_bool("do_eval", False, "Evaluate on --eval_split: eval_results.json.")
flags.DEFINE_bool("do_predict", False, "Predict --predict_split: predictions.tsv.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length T.")
flags.DEFINE_integer("train_batch_size", 8, "GLOBAL training batch size (all replicas).")
flags.DEFINE_integer("eval_batch_size", 128, "Evaluation / prediction batch size.")
flags.DEFINE_float("learning_rate", 1e-5, "Peak learning rate.")
flags.DEFINE_integer("train_steps", 1000, "Training steps (or --num_train_epochs).")
flags.DEFINE_float("num_train_epochs", None, "Epochs over the train split; sets train_steps.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.")
flags.DEFINE_float("min_lr_ratio", 0.0, "Final learning rate / peak.")
flags.DEFINE_enum("decay_method", "poly", ["poly", "cos"], "Decay after warm-up.")
flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.")
flags.DEFINE_float("clip", 1.0, "Global-norm gradient clipping.")
flags.DEFINE_float("lr_layer_decay_rate", 1.0, "Layer-wise gradient decay.")
flags.DEFINE_integer("iterations", 100, "Steps per tf.function loop (and per log line).")
flags.DEFINE_integer("save_steps", None, "Checkpoint every N steps (default: at the end).")
flags.DEFINE_integer("max_save", 5, "Checkpoints to keep (0 = all).")
flags.DEFINE_integer("shuffle_buffer", 2048, "Training shuffle buffer.")
flags.DEFINE_integer("eval_every", 0, "Evaluate on --eval_split every N training steps (at the "
                     "first --iterations boundary at or after each multiple; 0 = off).")
flags.DEFINE_bool("keep_best", False, "With --eval_every: keep the best evaluated weights in "
                  "OUTPUT_DIR/best/ and use them for --do_eval/--do_predict/--export_dir.")
common_flags.define_export_flags()
common_flags.define_distribution_flags()
common_flags.define_model_run_flags()

log = logging.getLogger("xlnet_tf")

CLASSIFIER_CONFIG = "classifier_config.json"


def fail(msg):
    print(f"run_classifier.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_flags(F):
    """Checks that need nothing but the flags."""
    if not F.output_dir:
        fail("--output_dir is required")
    actions = F.do_train or F.do_eval or F.do_predict
    if not actions and not F.export_dir:
        fail("nothing to do: pass --do_train, --do_eval, --do_predict and/or --export_dir")
    if actions and not F.task:
        fail("--task is required (e.g. --task=sst-2; --task=generic for any CSV/TSV)")
    if actions and not F.data_dir:
        fail("--data_dir is required with --do_train/--do_eval/--do_predict")
    if F.max_seq_length < 3:
        fail(f"--max_seq_length={F.max_seq_length} is too small: the layout needs at least "
             f"<sep> <sep> <cls>")
    for name in ("train_batch_size", "eval_batch_size", "iterations", "shuffle_buffer"):
        if getattr(F, name) <= 0:
            fail(f"--{name} must be > 0, got {getattr(F, name)}")
    error = common_flags.fine_tuning_flag_error(F)
    if error:
        fail(error)
    if F.eval_every < 0:
        fail(f"--eval_every must be >= 0, got {F.eval_every}")
    if F.eval_every and not F.do_train:
        fail("--eval_every evaluates during training; it needs --do_train")
    if F.keep_best and F.do_train and not F.eval_every:
        fail("--keep_best needs --eval_every=N (the best of the periodic evaluations is kept)")
    if F.output_dir and os.path.exists(F.output_dir) and not os.path.isdir(F.output_dir):
        fail(f"--output_dir {F.output_dir!r} exists and is not a folder")


def task_options(F):
    opts = {"train_file": F.train_file, "dev_file": F.dev_file, "test_file": F.test_file,
            "skip_malformed_rows": F.skip_malformed_rows}
    generic = {"text_a_column": F.text_a_column, "text_b_column": F.text_b_column,
               "label_column": F.label_column, "label_list": F.label_list,
               "is_regression": F.is_regression or None, "header": F.header,
               "delimiter": F.delimiter, "quotechar": F.quotechar, "id_column": F.id_column}
    is_generic = F.task.strip().lower() in ("generic", "csv", "tsv")
    if is_generic:
        opts.update(generic)
    else:
        given = [f"--{k}" for k, v in generic.items() if v is not None]
        if given:
            fail(f"{', '.join(given)} only apply to --task=generic, not --task={F.task}")
    return opts


def writable_dir(path):
    return os.path.isdir(path) and os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def do_export(model_or_copy, export_dir, spiece_model, cfg, version):
    from xlnet_tf.serving import saved_model as export
    path = export.export_classifier(
        model_or_copy, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"],
        label_list=cfg["label_list"], is_regression=cfg["is_regression"], pair=cfg["pair"],
        uncased=cfg["uncased"], task_name=cfg["task"], version=version,
        info={"summary_type": cfg["summary_type"], "use_summ_proj": cfg["use_summ_proj"]})
    print(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: raw "
          f"text, predict_ids: packed ids). Serve it with TF Serving: see README.md, 'Export for TensorFlow Serving'.",
          flush=True)
    return path


def export_only(F):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    import keras
    from xlnet_tf import training
    from xlnet_tf.serving import saved_model as export
    from xlnet_tf.classification.model import XLNetClassifier
    from xlnet_tf.modeling.config import XLNetConfig

    cfg_path = os.path.join(F.output_dir, CLASSIFIER_CONFIG)
    if not os.path.exists(cfg_path):
        fail(f"{cfg_path!r} does not exist: --export_dir without --do_train needs an "
             f"--output_dir written by run_classifier.py")
    cfg = load_json(cfg_path)
    if F.task and F.task.strip().lower() not in ("generic", "csv", "tsv"):
        from xlnet_tf.classification.data import get_task
        try:
            name = get_task(F.task).name
        except ValueError as e:
            fail(str(e))
        if name != cfg["task"]:
            fail(f"--task={F.task} but {F.output_dir!r} was fine-tuned on {cfg['task']!r}")
    spiece = F.spiece_model or os.path.join(F.output_dir, "spiece.model")
    if not os.path.isfile(spiece):
        fail(f"SentencePiece model {spiece!r} does not exist; pass --spiece_model")
    try:
        version = export.check_export_dir(F.export_dir, F.export_version)
    except (ValueError, FileExistsError) as e:
        fail(str(e))
    keras.mixed_precision.set_global_policy("float32")
    model = XLNetClassifier(XLNetConfig.from_dict(cfg["xlnet_config"]),
                            n_class=1 if cfg["is_regression"] else len(cfg["label_list"]),
                            task_name=cfg["task"], is_regression=cfg["is_regression"],
                            summary_type=cfg["summary_type"],
                            use_summ_proj=cfg["use_summ_proj"], cls_scope=cfg["cls_scope"])
    try:
        source, step = training.restore_for_inference(model, F.output_dir, None, prefer_best=True)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    print(f"exporting the weights of {source} (step {step})", flush=True)
    do_export(model, F.export_dir, spiece, cfg, version)


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("xlnet_tf").setLevel(logging.INFO)
    F = FLAGS
    check_flags(F)
    if not (F.do_train or F.do_eval or F.do_predict):
        export_only(F)
        return

    import tensorflow as tf
    from xlnet_tf.modeling import checkpoint as ckpt_lib
    from xlnet_tf import training
    from xlnet_tf.classification.model import (ClassifierTask, Evaluator, classifier_identity,
                                     task_has_text_b, write_predictions)
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.classification import data as cd
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.tokenization.tokenizer import Tokenizer

    training.configure_cpu_devices(F.num_cpus)
    out = F.output_dir

    # ---- files: tokenizer, config, task reader and its files
    spiece = F.spiece_model or (os.path.join(out, "spiece.model")
                                if os.path.isfile(os.path.join(out, "spiece.model")) else None)
    if not spiece:
        fail("--spiece_model is required (the spiece.model that came with the checkpoint)")
    try:
        tokenizer = Tokenizer(spiece, lower=F.uncased)
    except (ValueError, FileNotFoundError) as e:
        fail(f"--spiece_model: {e}")
    run = common_flags.model_run_options(F)
    size_flags = ("n_layer", "d_model", "n_head", "d_head", "d_inner", "ff_activation",
                  "untie_r")
    model_config = F.model_config
    if not model_config and not any(F[n].present for n in size_flags) and os.path.isfile(
            os.path.join(out, "xlnet_config.json")):
        model_config = os.path.join(out, "xlnet_config.json")   # a finished output_dir
    try:
        if model_config:
            config = XLNetConfig.from_json(model_config, **run)
        else:
            config = XLNetConfig(n_layer=F.n_layer, d_model=F.d_model, n_head=F.n_head,
                                 d_head=F.d_head, d_inner=F.d_inner,
                                 ff_activation=F.ff_activation, untie_r=F.untie_r,
                                 n_token=tokenizer.vocab_size, **run)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    if config.n_token < tokenizer.vocab_size:
        fail(f"the model has n_token={config.n_token} but --spiece_model {spiece!r} has "
             f"{tokenizer.vocab_size} pieces; use the SentencePiece model of the checkpoint")
    try:
        processor = cd.get_task(F.task, **task_options(F))
        pair = task_has_text_b(processor)
        splits = ([("train", "train")] if F.do_train else []) + \
            ([("eval", F.eval_split)] if F.do_eval or F.eval_every else []) + \
            ([("predict", F.predict_split)] if F.do_predict else [])
        for _, split in splits:
            processor.source_files(F.data_dir, split)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    identity = classifier_identity(config, processor, F.max_seq_length, F.summary_type,
                                   F.use_summ_proj, F.cls_scope)
    try:
        training.check_output_dir(out, identity, CLASSIFIER_CONFIG)
        version = None
        if F.export_dir:
            from xlnet_tf.serving import saved_model as export
            version = export.check_export_dir(F.export_dir, F.export_version)
    except (ValueError, FileExistsError) as e:
        fail(str(e))

    training.set_precision(F.precision)
    tf.keras.utils.set_random_seed(F.seed)
    try:
        strategy = training.make_strategy(F.strategy, tpu=F.tpu, num_gpus=F.num_gpus,
                                          tpu_timeout=F.tpu_timeout)
    except (ValueError, RuntimeError) as e:
        fail(str(e))
    task = ClassifierTask(config, processor, None, F.max_seq_length,
                          summary_type=F.summary_type, use_summ_proj=F.use_summ_proj,
                          cls_scope=F.cls_scope, seed=F.seed, shuffle_buffer=F.shuffle_buffer,
                          spiece_model=spiece)

    # ---- the init checkpoint must fit the model: checked before anything is written
    has_ckpt = os.path.isdir(out) and tf.train.latest_checkpoint(out) is not None
    inference_model = None
    if F.init_checkpoint and not has_ckpt:
        probe = task.build_model()
        try:
            result = training.init_from_checkpoint(probe, F.init_checkpoint)
        except (ValueError, FileNotFoundError, ImportError) as e:
            fail(f"--init_checkpoint {F.init_checkpoint!r} does not fit the model "
                 f"({config.n_layer} layers, d_model {config.d_model}, n_token "
                 f"{config.n_token}): {e}")
        print(f"--init_checkpoint fits the model: {result}", flush=True)
        if F.do_train:
            del probe
        else:
            inference_model = probe
    elif not F.do_train and not has_ckpt and not os.path.exists(
            os.path.join(out, "xlnet_model.ckpt.index")):
        fail(f"nothing to evaluate: --output_dir {out!r} holds no checkpoint; pass "
             f"--init_checkpoint (e.g. a fine-tuned one) or --do_train")

    # ---- cached records (beside the data when writable)
    cache_dir = F.cache_dir or (F.data_dir if writable_dir(F.data_dir)
                                else os.path.join(out, "data_cache"))
    records = {}
    try:
        for kind, split in splits:
            info = cd.prepare_classifier_records(
                processor, F.data_dir, split, tokenizer, F.max_seq_length,
                is_training=kind == "train",
                eval_batch_size=None if kind == "train" else F.eval_batch_size,
                cache_dir=cache_dir, overwrite_data=F.overwrite_data)
            records[kind] = info
            c = info.manifest["counts"]
            print(f"{kind} records ({split}): {info.path} - {c['num_real']} examples, "
                  f"{c['num_truncated']} truncated to {F.max_seq_length} tokens"
                  f"{' (reused)' if info.reused else ''}", flush=True)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        fail(str(e))

    try:
        tconf = common_flags.fine_tuning_train_config(
            F, out, lambda: records["train"].manifest["counts"]["num_real"], "examples", strategy)
    except ValueError as e:
        fail(str(e))

    model, step, source = inference_model, 0, None
    if not F.do_train:
        # evaluation / prediction only: the weights are found and loaded before any write
        if model is None:
            model = task.build_model()
        try:
            source, step = training.restore_for_inference(model, out, F.init_checkpoint, prefer_best=F.keep_best)
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))

    # ---- from here on files are written into output_dir
    os.makedirs(out, exist_ok=True)
    cfg = {"task": processor.name, "task_options": processor.options(),
           "label_list": task.label_list, "is_regression": task.is_regression, "pair": pair,
           "max_seq_length": F.max_seq_length, "uncased": F.uncased,
           "summary_type": F.summary_type, "use_summ_proj": F.use_summ_proj,
           "cls_scope": F.cls_scope, "xlnet_config": task.config.to_dict(),
           "spiece_model": "spiece.model", "identity": identity}
    write_json_atomic(os.path.join(out, CLASSIFIER_CONFIG), cfg)
    task.config.to_json(os.path.join(out, "xlnet_config.json"))
    if os.path.abspath(spiece) != os.path.abspath(os.path.join(out, "spiece.model")):
        tmp = os.path.join(out, ".spiece.model.tmp")
        shutil.copyfile(spiece, tmp)
        os.replace(tmp, os.path.join(out, "spiece.model"))

    evaluator = Evaluator(processor, records["eval"].path, F.eval_batch_size,
                          F.max_seq_length) if "eval" in records else None
    eval_writer = tf.summary.create_file_writer(os.path.join(out, "eval")) if evaluator \
        else None
    main_metric = processor.metric_names[0] if hasattr(processor, "metric_names") else None
    best_dir = os.path.join(out, "best")

    def report(results, step, what="eval"):
        line = " | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in results.items() if k != "step")
        print(f"{what} at step {step} ({F.eval_split}): {line}", flush=True)
        with eval_writer.as_default(step=step):
            for k, v in results.items():
                if k != "num_examples":
                    tf.summary.scalar(k, v)
        eval_writer.flush()

    if F.do_train:
        task.train_record = records["train"].path
        state = {"last": training.checkpoint_step(tf.train.latest_checkpoint(out)) if has_ckpt else 0}
        best_file = os.path.join(best_dir, "eval_results.json")
        state["best"] = load_json(best_file).get(main_metric) if F.keep_best and \
            os.path.exists(best_file) else None

        def callback(step, metrics, model):
            if not F.eval_every:
                return
            due = step // F.eval_every > state["last"] // F.eval_every
            if not due and not (F.keep_best and step == tconf.train_steps):
                return
            state["last"] = step
            results = dict(evaluator.evaluate(model), step=step)
            report(results, step)
            if F.keep_best:
                value = results.get(main_metric)
                if value is not None and not math.isnan(value) and (
                        state["best"] is None or value > state["best"]):
                    state["best"] = value
                    os.makedirs(best_dir, exist_ok=True)
                    ckpt_lib.save_original_checkpoint(
                        model, os.path.join(best_dir, "xlnet_model.ckpt"), global_step=step)
                    write_json_atomic(best_file, results)
                    print(f"new best {main_metric} {value:.4f} at step {step}: kept in "
                          f"{best_dir}", flush=True)

        print(f"fine-tuning {processor.name}: {tconf.train_steps} steps, batch "
              f"{F.train_batch_size}, {strategy.num_replicas_in_sync} replica(s), model "
              f"{config.n_layer}x{config.d_model}, precision {F.precision}", flush=True)
        try:
            result = training.train(task, tconf, strategy, init_checkpoint=F.init_checkpoint,
                                    callback=callback)
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))
        model, step, source = result["model"], result["step"], "the final weights"
        if F.keep_best and os.path.exists(os.path.join(best_dir, "xlnet_model.ckpt.index")):
            ckpt_lib.load_original_checkpoint(model, os.path.join(best_dir, "xlnet_model.ckpt"))
            step = load_json(best_file)["step"]
            source = f"the best weights ({main_metric} {state['best']:.4f})"
    print(f"using {source} (step {step})", flush=True)

    if F.do_eval:
        results = dict(evaluator.evaluate(model), step=int(step))
        report(results, step, "final eval")
        write_json_atomic(os.path.join(out, "eval_results.json"), results)
        print(f"wrote {os.path.join(out, 'eval_results.json')}", flush=True)
    if F.do_predict:
        predictor = Evaluator(processor, records["predict"].path, F.eval_batch_size,
                              F.max_seq_length)
        logits = predictor.outputs(model)["logits"]
        tsv, jsonl = write_predictions(out, logits, task.label_list, task.is_regression)
        print(f"wrote {len(logits)} predictions of the {F.predict_split} split to {tsv} and "
              f"{jsonl}", flush=True)
    if F.export_dir:
        do_export(training.copy_for_export(model, task.build_model), F.export_dir, spiece, cfg, version)


if __name__ == "__main__":
    app.run(main)
