"""One fine-tuning run of run_race.py, from plain values: check everything, then train,
evaluate, predict and export.

:class:`MultipleChoiceRun` holds the settings; :func:`fine_tune_multiple_choice` runs
``--do_train`` / ``--do_eval`` / ``--do_predict`` (+ ``--export_dir``),
:func:`export_multiple_choice_run` exports a finished output folder.  Every check (files and
their contents, the ``--init_checkpoint`` against the model size, an output folder of
another model, the export folder) runs before the first write into ``output_dir``; a mistake
raises ValueError / FileNotFoundError with the message to show.
"""
import dataclasses
import functools
import logging
import os
from typing import Callable, Optional

from xlnet_tf import finetuning
from xlnet_tf.multiple_choice.readers import get_reader

log = logging.getLogger("xlnet_tf")

MC_CONFIG = "multiple_choice_config.json"
SCRIPT = "run_race.py"


@dataclasses.dataclass
class MultipleChoiceRun(finetuning.SummaryTaskRun):
    """The settings of a run (the flags of run_race.py, as plain values)."""
    task: str = "race"
    max_seq_length: int = 512
    max_qa_length: int = 128
    eval_batch_size: int = 32


def export(model, export_dir, spiece_model, cfg, version, say):
    from xlnet_tf.multiple_choice.export import export_multiple_choice
    path = export_multiple_choice(
        model, export_dir, spiece_model, max_seq_length=cfg["max_seq_length"],
        max_qa_length=cfg["max_qa_length"], uncased=cfg["uncased"], version=version,
        info={"task_name": cfg["task"], "num_choices": cfg["num_choices"],
              "summary_type": cfg["summary_type"], "use_summ_proj": cfg["use_summ_proj"]})
    say(f"SavedModel written to {os.path.abspath(path)} (signatures serving_default: article, "
        f"question, options [B, C] text; predict_ids: packed ids [B, C, T]). Serve it with TF "
        f"Serving: see README.md, 'Export for TensorFlow Serving'.")
    return path


def export_multiple_choice_run(run: MultipleChoiceRun,
                               say: Optional[Callable[[str], None]] = None):
    """--export_dir on a finished output_dir (no --do_* flags)."""
    from xlnet_tf.modeling.config import XLNetConfig
    from xlnet_tf.multiple_choice.model import XLNetMultipleChoice
    from xlnet_tf.training import restore_for_inference

    say = say or log.info
    cfg, spiece, version = finetuning.prepare_export(
        run.output_dir, run.spiece_model, run.export_dir, run.export_version, MC_CONFIG,
        SCRIPT)
    model = XLNetMultipleChoice(XLNetConfig.from_dict(cfg["xlnet_config"]),
                                summary_type=cfg["summary_type"],
                                use_summ_proj=cfg["use_summ_proj"])
    source, step = restore_for_inference(model, run.output_dir, None)
    say(f"exporting the weights of {source} (step {step})")
    return export(model, run.export_dir, spiece, cfg, version, say)


def fine_tune_multiple_choice(run: MultipleChoiceRun, train_config,
                              say: Optional[Callable[[str], None]] = None):
    """--do_train / --do_eval / --do_predict (and --export_dir) in ``run.output_dir``.
    Returns the evaluation results (or None without --do_eval)."""
    from xlnet_tf import training
    from xlnet_tf.multiple_choice.task import MultipleChoiceTask

    say = say or log.info
    training.configure_cpu_devices(run.num_cpus)
    out = run.output_dir

    # ---- files: tokenizer, config, the reader and every split it must read
    spiece, tokenizer, config = finetuning.resolve_model(run)
    if run.do_train:
        finetuning.check_memory(config, train_config,
                                run.max_seq_length * _choices_guess(run.task))
    if run.do_eval or run.do_predict:
        finetuning.check_eval_memory(config, "eval_batch_size", run.eval_batch_size,
                                     run.max_seq_length, _choices_guess(run.task))
    reader = get_reader(run.task, **run.task_options)
    splits = ([("train", "train")] if run.do_train else []) + \
        ([("eval", run.eval_split)] if run.do_eval else []) + \
        ([("predict", run.predict_split)] if run.do_predict else [])
    for _, split in splits:
        reader.source_files(run.data_dir, split)
    version = finetuning.check_export_dir(run.export_dir, run.export_version) \
        if run.export_dir else None

    # every question is read and checked before anything is written; the records are
    # written once the output folder is known to fit (the default cache is inside it)
    plans, num_choices = plan_records(run, reader, tokenizer, splits)
    # a question is num_choices sequences: the progress line's tokens/s counts them all
    train_config = dataclasses.replace(
        train_config, tokens_per_example=run.max_seq_length * num_choices)
    task = MultipleChoiceTask(config, reader.name, num_choices, run.max_seq_length,
                              run.max_qa_length, summary_type=run.summary_type,
                              use_summ_proj=run.use_summ_proj, seed=train_config.seed,
                              shuffle_buffer=run.shuffle_buffer)
    training.check_output_dir(out, task.identity, MC_CONFIG)

    strategy = finetuning.make_strategy(train_config, run.distribution)

    model = finetuning.check_start_weights(run, task.build_model, say,
                                           head="multiple-choice head (logits/dense)",
                                           action="evaluate")
    if run.do_train:
        train_config = finetuning.training_steps(
            train_config, run.num_train_epochs, lambda: plans["train"].num_questions,
            "questions", strategy.num_replicas_in_sync, say)

    model, source, step = finetuning.inference_weights(run, model, task.build_model, "multiple-choice")

    # ---- from here on files are written into output_dir
    records = write_records(run, plans, tokenizer, splits, say)
    cfg = {"task": reader.name, "task_options": reader.options(), "num_choices": num_choices,
           "max_seq_length": run.max_seq_length, "max_qa_length": run.max_qa_length,
           "uncased": run.uncased, "summary_type": run.summary_type,
           "use_summ_proj": run.use_summ_proj, "xlnet_config": task.config.to_dict(),
           "spiece_model": finetuning.SPIECE_MODEL, "identity": task.identity}
    write_files = functools.partial(finetuning.write_run_files, out, MC_CONFIG, cfg,
                                    task.config, spiece)
    if run.do_train:
        task.train_record = records["train"].path
        result = finetuning.train_task(
            run, task, train_config, strategy, write_files, say,
            f"{reader.name} (batches of questions, {num_choices} options each)")
        model, step, source = result["model"], result["step"], "the final weights"
    else:
        write_files()
    say(f"using {source} (step {step})")
    results = None
    if run.do_eval:
        results = evaluate(run, records["eval"], num_choices, model, step, say)
    if run.do_predict:
        predict(run, records["predict"], num_choices, model, say)
    if run.export_dir:
        export(training.copy_for_export(model, task.build_model), run.export_dir, spiece, cfg,
               version, say)
    return results


def _choices_guess(task):
    """Options per question for the memory check before any file is read (the model runs
    C sequences per question): the data sets' counts; 4 for a generic set."""
    return 3 if str(task).lower() == "dream" else 4


def plan_records(run, reader, tokenizer, splits):
    """The record plans of every split the run needs (questions read and checked, nothing
    written) -> ({kind: RecordPlan}, C); all splits must have the same number of options."""
    from xlnet_tf.multiple_choice.records import plan_mc_records
    cache_dir = finetuning.default_cache_dir(run.cache_dir, run.output_dir)
    plans, num_choices = {}, None
    for kind, split in splits:
        plan = plan_mc_records(reader, run.data_dir, split, tokenizer, run.max_seq_length,
                               run.max_qa_length, is_training=kind == "train",
                               cache_dir=cache_dir, overwrite_data=run.overwrite_data)
        if num_choices is not None and plan.num_choices != num_choices:
            raise ValueError(f"the {split} split of --data_dir {run.data_dir!r} has "
                             f"{plan.num_choices} options per question but the "
                             f"{splits[0][1]} split {num_choices}; every split needs the "
                             f"same number")
        num_choices = plan.num_choices
        plans[kind] = plan
    return plans, num_choices


def write_records(run, plans, tokenizer, splits, say):
    """The cached records of the plans: {kind: RecordInfo}."""
    from xlnet_tf.multiple_choice.records import write_mc_records
    records, written = {}, {}
    for kind, split in splits:
        plan = plans[kind]
        if plan.path in written:                     # eval and predict of the same split
            records[kind] = written[plan.path]
            continue
        info = written[plan.path] = write_mc_records(plan, tokenizer, f"{run.task}/{split}")
        records[kind] = info
        c = info.manifest["counts"]
        levels = ", ".join(f"{k} {v}" for k, v in c["levels"].items())
        say(f"{kind} records ({split}): {info.path} - {c['num_real']} questions"
            f"{' (' + levels + ')' if levels else ''} x {c['num_choices']} options, "
            f"{c['num_truncated']} truncated to {run.max_seq_length} tokens"
            f"{' (reused)' if info.reused else ''}")
    return records


def evaluate(run, info, num_choices, model, step, say):
    """eval_results.json (accuracy, per level, loss) and eval_predictions.jsonl."""
    from xlnet_tf.io import write_json_atomic
    from xlnet_tf.multiple_choice.task import Evaluator, mc_results, write_predictions
    out = Evaluator(info.path, run.eval_batch_size, num_choices,
                    run.max_seq_length).outputs(model)
    results = dict(mc_results(out), step=int(step))
    say(finetuning.results_table(f"eval at step {step} ({run.eval_split}):", results,
                                 skip=("step",)))
    write_predictions(os.path.join(run.output_dir, "eval_predictions.jsonl"), out)
    finetuning.write_eval_summaries(run.output_dir, step, results)
    path = os.path.join(run.output_dir, "eval_results.json")
    write_json_atomic(path, results)
    say(f"wrote {path}")
    return results


def predict(run, info, num_choices, model, say):
    """predictions.jsonl of --predict_split."""
    from xlnet_tf.multiple_choice.task import Evaluator, write_predictions
    out = Evaluator(info.path, run.eval_batch_size, num_choices,
                    run.max_seq_length).outputs(model)
    path = write_predictions(os.path.join(run.output_dir, "predictions.jsonl"), out)
    say(f"wrote {len(out['qid'])} predictions of the {run.predict_split} split to {path}")
