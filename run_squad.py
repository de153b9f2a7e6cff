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
import json
import logging
import os
import shutil
import sys

from absl import app, flags

import common_flags

FLAGS = flags.FLAGS

# ---- data
flags.DEFINE_string("train_file", None, "SQuAD JSON for training (v1.1 or v2.0).")
flags.DEFINE_string("predict_file", None, "SQuAD JSON to predict (and score, when it has "
                    "answers).")
flags.DEFINE_bool("version_2_with_negative", False, "SQuAD 2.0: questions may have no answer; "
                  "scoring uses the null odds (best_exact/best_f1 and their thresholds).")
flags.DEFINE_string("cache_dir", None, "Where the cached feature TFRecords go (default: beside "
                    "the data file when writable, else OUTPUT_DIR/data_cache).")
flags.DEFINE_bool("overwrite_data", False, "Rebuild the cached features even if they match.")
flags.DEFINE_integer("num_workers", None, "Processes for preprocessing (default: all cores).")
flags.DEFINE_integer("max_seq_length", 512, "Window length T (paragraph + question + 3).")
flags.DEFINE_integer("doc_stride", 128, "Stride between the windows of a long paragraph.")
flags.DEFINE_integer("max_query_length", 64, "Questions are cut to this many pieces.")
# ---- model
flags.DEFINE_string("spiece_model", None, "SentencePiece model (spiece.model); default "
                    "OUTPUT_DIR/spiece.model when present.")
flags.DEFINE_bool("uncased", False, "Lower-case text (uncased vocabulary).")
flags.DEFINE_string("model_config", None, "xlnet_config.json; default OUTPUT_DIR/"
                    "xlnet_config.json when present, else the size flags below.")
flags.DEFINE_integer("n_layer", 3, "Layers (no --model_config; from-scratch models).")
flags.DEFINE_integer("d_model", 128, "Hidden size (no --model_config).")
flags.DEFINE_integer("n_head", 4, "Attention heads (no --model_config).")
flags.DEFINE_integer("d_head", 32, "Head size (no --model_config).")
flags.DEFINE_integer("d_inner", 512, "Feed-forward size (no --model_config).")
flags.DEFINE_enum("ff_activation", "gelu", ["gelu", "relu"], "FF activation (no "
                  "--model_config).")
flags.DEFINE_bool("untie_r", True, "Per-layer attention biases (no --model_config).")
flags.DEFINE_string("init_checkpoint", None, "Start from ours, the original's (pretrained or "
                    "fine-tuned on SQuAD, heads included) or Hugging Face weights; also used "
                    "by --do_predict when --output_dir holds no checkpoint.")
# ---- run
flags.DEFINE_string("output_dir", None, "Checkpoints, summaries, results.")
flags.DEFINE_string("predict_dir", None, "Where predictions go (default --output_dir).")
flags.DEFINE_bool("do_train", False, "Fine-tune on --train_file.")
flags.DEFINE_bool("do_predict", False, "Predict --predict_file (and score it).")
flags.DEFINE_integer("train_batch_size", 48, "GLOBAL training batch size (all replicas).")
flags.DEFINE_integer("predict_batch_size", 32, "Prediction batch size.")
flags.DEFINE_float("learning_rate", 3e-5, "Peak learning rate.")
flags.DEFINE_integer("train_steps", 8000, "Training steps (or --num_train_epochs).")
flags.DEFINE_float("num_train_epochs", None, "Epochs over the training features; sets "
                   "train_steps.")
flags.DEFINE_integer("warmup_steps", 0, "Linear warm-up steps.")
flags.DEFINE_float("min_lr_ratio", 0.0, "Final learning rate / peak.")
flags.DEFINE_enum("decay_method", "poly", ["poly", "cos"], "Decay after warm-up.")
flags.DEFINE_float("weight_decay", 0.0, "AdamW weight decay (0 = Adam).")
flags.DEFINE_float("adam_epsilon", 1e-6, "Adam epsilon.")
flags.DEFINE_float("clip", 1.0, "Global-norm gradient clipping.")
flags.DEFINE_float("lr_layer_decay_rate", 0.75, "Layer-wise gradient decay (0.75: the paper's "
                   "SQuAD value).")
flags.DEFINE_integer("iterations", 1000, "Steps per tf.function loop (and per log line).")
flags.DEFINE_integer("save_steps", None, "Checkpoint every N steps (default: at the end).")
flags.DEFINE_integer("max_save", 5, "Checkpoints to keep (0 = all).")
flags.DEFINE_integer("shuffle_buffer", 2048, "Training shuffle buffer.")
flags.DEFINE_integer("n_best_size", 5, "Answers per question in nbest_predictions.json.")
flags.DEFINE_integer("start_n_top", 5, "Beam: best starts per window.")
flags.DEFINE_integer("end_n_top", 5, "Beam: best ends per start.")
flags.DEFINE_integer("max_answer_length", 64, "Longest answer in pieces.")
common_flags.define_export_flags()
common_flags.define_distribution_flags()
common_flags.define_model_run_flags()

log = logging.getLogger("xlnet_tf")

SQUAD_CONFIG = "squad_config.json"


def fail(msg):
    print(f"run_squad.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_flags(F):
    """Checks that need nothing but the flags."""
    if not F.output_dir:
        fail("--output_dir is required")
    if F.output_dir and os.path.exists(F.output_dir) and not os.path.isdir(F.output_dir):
        fail(f"--output_dir {F.output_dir!r} exists and is not a folder")
    if not (F.do_train or F.do_predict or F.export_dir):
        fail("nothing to do: pass --do_train, --do_predict and/or --export_dir")
    if F.do_train and not F.train_file:
        fail("--do_train needs --train_file (a SQuAD v1.1 or v2.0 JSON file)")
    if F.do_predict and not F.predict_file:
        fail("--do_predict needs --predict_file (a SQuAD v1.1 or v2.0 JSON file)")
    if F.max_query_length < 1 or F.doc_stride < 1:
        fail(f"--max_query_length ({F.max_query_length}) and --doc_stride ({F.doc_stride}) "
             f"must be >= 1")
    if F.max_seq_length - F.max_query_length - 3 < 1:
        fail(f"--max_seq_length={F.max_seq_length} leaves no room for the paragraph after a "
             f"--max_query_length={F.max_query_length} question and <sep> <sep> <cls>; use "
             f"--max_seq_length > --max_query_length + 3 (the original: 512 and 64)")
    for name in ("train_batch_size", "predict_batch_size", "iterations", "shuffle_buffer",
                 "n_best_size", "start_n_top", "end_n_top", "max_answer_length"):
        if getattr(F, name) <= 0:
            fail(f"--{name} must be > 0, got {getattr(F, name)}")
    error = common_flags.fine_tuning_flag_error(F)
    if error:
        fail(error)
    if not 0.0 < F.lr_layer_decay_rate <= 1.0:
        fail(f"--lr_layer_decay_rate must be in (0, 1], got {F.lr_layer_decay_rate}")
    for name in ("train_file", "predict_file"):
        path = getattr(F, name)
        if path and not os.path.isfile(path):
            fail(f"--{name} {path!r} does not exist")


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def writable_dir(path):
    return os.path.isdir(path) and os.access(path, os.W_OK)


def count_long_questions(examples, tokenizer, max_query_length):
    """(number of questions longer than max_query_length pieces, first few ids): they are
    truncated to their first max_query_length pieces, as the original does."""
    long_ids = [ex.qas_id for ex in examples
                if len(tokenizer.encode_ids(ex.question_text)) > max_query_length]
    return len(long_ids), long_ids[:3]


def read_examples(kind, path, is_training, tokenizer, max_query_length, v2):
    """Read a SQuAD file up front (a bad file fails before anything is written) and report
    what reading skipped or will truncate.  Returns the examples."""
    from xlnet_tf.squad import data as sd
    examples = sd.read_squad_examples(path, is_training=is_training)
    notes = []
    if examples.num_bad_offsets:
        notes.append(f"{examples.num_bad_offsets} answer(s) whose answer_start does not point "
                     f"at their text")
    if examples.num_empty_context:
        notes.append(f"{examples.num_empty_context} question(s) with an empty context")
    if examples.skipped_qas_ids:
        notes.append(f"{len(examples.skipped_qas_ids)} question(s) skipped (e.g. "
                     f"{list(examples.skipped_qas_ids[:3])})")
    n_long, first = count_long_questions(examples, tokenizer, max_query_length)
    if n_long:
        notes.append(f"{n_long} question(s) longer than --max_query_length={max_query_length} "
                     f"pieces, truncated (e.g. {first})")
    impossible = sum(1 for ex in examples if ex.is_impossible)
    print(f"{kind} file {path}: {len(examples)} questions"
          f"{f', {impossible} unanswerable' if impossible else ''}"
          + (f"; WARNING: {'; '.join(notes)}" if notes else ""), flush=True)
    if impossible and not v2:
        print(f"WARNING: {path} has {impossible} unanswerable (SQuAD 2.0) questions but "
              f"--version_2_with_negative is not set: scores will not use the null odds",
              flush=True)
    if not examples:
        raise ValueError(f"{kind} file {path!r} holds no usable questions")
    return examples


def squad_config_dict(F, config, identity):
    return {"task": "squad", "max_seq_length": F.max_seq_length, "doc_stride": F.doc_stride,
            "max_query_length": F.max_query_length, "max_answer_length": F.max_answer_length,
            "n_best_size": F.n_best_size, "start_n_top": F.start_n_top,
            "end_n_top": F.end_n_top, "uncased": F.uncased,
            "version_2_with_negative": F.version_2_with_negative,
            "xlnet_config": config.to_dict(), "spiece_model": "spiece.model",
            "identity": identity}


def do_export(model, export_dir, spiece_model, cfg, version):
    from xlnet_tf.squad.export import export_squad
    path = export_squad(
        model, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"],
        doc_stride=cfg["doc_stride"], max_query_length=cfg["max_query_length"],
        max_answer_length=cfg["max_answer_length"], uncased=cfg["uncased"], version=version)
    print(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: "
          f"question + context -> answer, answer_start, score, null_score; predict_features: "
          f"built features -> beam outputs). Serving: see README.md, 'Export for TensorFlow Serving'.", flush=True)
    return path


def export_only(F):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    import keras
    from xlnet_tf import training
    from xlnet_tf.serving import saved_model as export
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.squad.model import XLNetSquadModel

    cfg_path = os.path.join(F.output_dir, SQUAD_CONFIG)
    if not os.path.exists(cfg_path):
        fail(f"{cfg_path!r} does not exist: --export_dir without --do_train/--do_predict needs "
             f"an --output_dir written by run_squad.py")
    cfg = load_json(cfg_path)
    spiece = F.spiece_model or os.path.join(F.output_dir, "spiece.model")
    if not os.path.isfile(spiece):
        fail(f"SentencePiece model {spiece!r} does not exist; pass --spiece_model")
    try:
        version = export.check_export_dir(F.export_dir, F.export_version)
    except (ValueError, FileExistsError) as e:
        fail(str(e))
    keras.mixed_precision.set_global_policy("float32")
    model = XLNetSquadModel(XLNetConfig.from_dict(cfg["xlnet_config"]), cfg["start_n_top"],
                            cfg["end_n_top"])
    try:
        source, step = training.restore_for_inference(model, F.output_dir, None, head_name="SQuAD")
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    print(f"exporting the weights of {source} (step {step})", flush=True)
    do_export(model, F.export_dir, spiece, cfg, version)


def has_gold_answers(dataset):
    """True when the SQuAD ``data`` list has answers to score against."""
    for article in dataset:
        for paragraph in article.get("paragraphs", ()):
            for qa in paragraph.get("qas", ()):
                if qa.get("answers") or qa.get("is_impossible"):
                    return True
    return False


def predict_and_evaluate(F, model, cache, predict_dir, output_dir):
    """Beam outputs for every feature -> predictions.json, nbest_predictions.json,
    null_odds.json (predict_dir) and, when the file has answers, eval_results.json
    (output_dir)."""
    from xlnet_tf.squad import evaluate as squad_eval
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.squad.model import predict_raw_results
    from xlnet_tf.squad.postprocess import write_predictions

    print(f"predicting {len(cache.examples)} questions ({cache.num_features} windows, batch "
          f"{F.predict_batch_size})", flush=True)
    results = predict_raw_results(model, cache.record_path, F.predict_batch_size,
                                  F.max_seq_length)
    os.makedirs(predict_dir, exist_ok=True)
    preds, _, null_odds = write_predictions(
        cache.examples, cache.features, results, F.n_best_size, F.max_answer_length,
        F.start_n_top, F.end_n_top, output_dir=predict_dir)
    print(f"wrote predictions.json, nbest_predictions.json, null_odds.json for {len(preds)} "
          f"questions to {os.path.abspath(predict_dir)}", flush=True)
    dataset = squad_eval.load_dataset(F.predict_file)
    if not has_gold_answers(dataset):
        print(f"{F.predict_file} has no answers: not scored", flush=True)
        return None
    v2 = F.version_2_with_negative
    results = squad_eval.evaluate(dataset, dict(preds), na_probs=dict(null_odds) if v2 else None,
                                  xlnet_v2=v2)
    results = dict(results)
    path = os.path.join(output_dir, "eval_results.json")
    write_json_atomic(path, results)
    line = " | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in results.items())
    print(f"eval ({F.predict_file}): {line}", flush=True)
    if v2 and results.get("total"):
        print(f"null baseline (no answer everywhere): exact = f1 = "
              f"{100.0 * results.get('NoAns_total', 0) / results['total']:.2f}", flush=True)
    print(f"wrote {path}", flush=True)
    return results


def main(argv):
    del argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("xlnet_tf").setLevel(logging.INFO)
    F = FLAGS
    check_flags(F)
    if not (F.do_train or F.do_predict):
        export_only(F)
        return

    import tensorflow as tf
    from xlnet_tf import training
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.squad import data as sd
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.squad.model import SquadTask, squad_identity
    from xlnet_tf.tokenization.tokenizer import Tokenizer

    training.configure_cpu_devices(F.num_cpus)
    out = F.output_dir
    predict_dir = F.predict_dir or out

    # ---- tokenizer and model config
    spiece = F.spiece_model or (os.path.join(out, "spiece.model")
                                if os.path.isfile(os.path.join(out, "spiece.model")) else None)
    if not spiece:
        fail("--spiece_model is required (the spiece.model that came with the checkpoint)")
    try:
        tokenizer = Tokenizer(spiece, lower=F.uncased)
    except (ValueError, FileNotFoundError, OSError) as e:
        fail(f"--spiece_model: {e}")
    run = common_flags.model_run_options(F)
    model_config = F.model_config or (os.path.join(out, "xlnet_config.json") if os.path.isfile(
        os.path.join(out, "xlnet_config.json")) else None)
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

    # ---- the input files, read before anything is written
    v2 = F.version_2_with_negative
    try:
        if F.do_train:
            read_examples("train", F.train_file, True, tokenizer, F.max_query_length, v2)
        if F.do_predict:
            read_examples("predict", F.predict_file, False, tokenizer, F.max_query_length, v2)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))

    # ---- output_dir, export_dir: refuse another model's folder
    identity = squad_identity(config, F.max_seq_length)
    try:
        training.check_output_dir(out, identity, SQUAD_CONFIG)
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
    task = SquadTask(config, None, F.max_seq_length, start_n_top=F.start_n_top,
                     end_n_top=F.end_n_top, seed=F.seed, shuffle_buffer=F.shuffle_buffer)

    # ---- the init checkpoint must fit the model: checked before anything is written
    has_ckpt = os.path.isdir(out) and tf.train.latest_checkpoint(out) is not None
    has_final = os.path.exists(os.path.join(out, "xlnet_model.ckpt.index"))
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
        if not F.do_train and getattr(result, "missing", None):
            print(f"WARNING: --init_checkpoint {F.init_checkpoint!r} has no SQuAD heads "
                  f"({len(result.missing)} variables such as {result.missing[0]} keep random "
                  f"values): predictions are meaningless unless it was fine-tuned on SQuAD",
                  flush=True)
        if F.do_train:
            del probe
        elif not has_final:
            inference_model = probe
    elif F.init_checkpoint and not F.do_train:
        print(f"WARNING: --output_dir {out!r} holds a fine-tuned checkpoint; predicting with "
              f"it, not with --init_checkpoint {F.init_checkpoint!r} (use another "
              f"--output_dir to predict with that one)", flush=True)
    elif not F.do_train and not has_ckpt and not has_final:
        fail(f"nothing to predict with: --output_dir {out!r} holds no checkpoint; pass "
             f"--init_checkpoint (a SQuAD fine-tuned one) or --do_train")

    # ---- cached features (beside the data when writable)
    def cache_dir_for(path):
        if F.cache_dir:
            return F.cache_dir
        folder = os.path.dirname(os.path.abspath(path))
        return folder if writable_dir(folder) else os.path.join(out, "data_cache")

    caches = {}
    try:
        for kind, path in (("train", F.train_file if F.do_train else None),
                           ("predict", F.predict_file if F.do_predict else None)):
            if not path:
                continue
            cache = sd.load_or_build_features(
                path, spiece, cache_dir_for(path), kind == "train",
                max_seq_length=F.max_seq_length, doc_stride=F.doc_stride,
                max_query_length=F.max_query_length, uncased=F.uncased,
                num_workers=F.num_workers, overwrite=F.overwrite_data, shuffle_seed=F.seed)
            caches[kind] = cache
            m = cache.manifest
            print(f"{kind} features: {cache.record_path} - {m['num_examples']} questions -> "
                  f"{m['num_features']} windows; {m['num_dropped_examples']} question(s) "
                  f"dropped (text/piece mismatch), {m['num_bad_offsets']} bad answer "
                  f"offset(s), {m['num_skipped_questions']} skipped"
                  f"{' (reused)' if not cache.rebuilt else ''}", flush=True)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        fail(str(e))

    try:
        tconf = common_flags.fine_tuning_train_config(
            F, out, lambda: caches["train"].num_features, "windows", strategy)
    except ValueError as e:
        fail(str(e))

    # ---- from here on files are written into output_dir
    os.makedirs(out, exist_ok=True)
    cfg = squad_config_dict(F, task.config, identity)
    write_json_atomic(os.path.join(out, SQUAD_CONFIG), cfg)
    task.config.to_json(os.path.join(out, "xlnet_config.json"))
    if os.path.abspath(spiece) != os.path.abspath(os.path.join(out, "spiece.model")):
        tmp = os.path.join(out, ".spiece.model.tmp")
        shutil.copyfile(spiece, tmp)
        os.replace(tmp, os.path.join(out, "spiece.model"))

    model, step, source = inference_model, 0, None
    if F.do_train:
        task.train_record = caches["train"].record_path
        print(f"fine-tuning on SQuAD: {tconf.train_steps} steps, batch {F.train_batch_size}, "
              f"{strategy.num_replicas_in_sync} replica(s), model {config.n_layer}x"
              f"{config.d_model}, lr {F.learning_rate}, layer decay {F.lr_layer_decay_rate}, "
              f"precision {F.precision}", flush=True)
        try:
            result = training.train(task, tconf, strategy, init_checkpoint=F.init_checkpoint)
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))
        model, step, source = result["model"], result["step"], "the final weights"
        hist = result["history"]
        if hist:
            print(f"loss: first loop {hist[0]['loss']:.4f} -> last loop {hist[-1]['loss']:.4f}",
                  flush=True)
    else:
        if model is None:
            model = task.build_model()
            try:
                source, step = training.restore_for_inference(model, out, F.init_checkpoint, head_name="SQuAD")
            except (ValueError, FileNotFoundError) as e:
                fail(str(e))
        else:
            source = F.init_checkpoint
    print(f"using {source} (step {step})", flush=True)

    if F.do_predict:
        try:
            predict_and_evaluate(F, model, caches["predict"], predict_dir, out)
        except ValueError as e:
            fail(str(e))
    if F.export_dir:
        export_model = model if F.precision == "float32" else training.copy_for_export(
            model, task.build_model)
        do_export(export_model, F.export_dir, spiece, cfg, version)


if __name__ == "__main__":
    app.run(main)
