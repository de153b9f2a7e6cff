"""Fine-tuning for multiple choice: the loss (the original's ``get_race_loss``: softmax
cross-entropy over the C option scores), the task the shared training loop runs for
run_race.py (:class:`MultipleChoiceTask`), what makes two runs share an output folder
(:func:`mc_identity`), evaluation over the cached records as the original reports it
(accuracy on all questions and per level: RACE middle / high) and the prediction file.
"""
import json
import os

import numpy as np
import tensorflow as tf

from xlnet_tf.classification.task import log_softmax_np
from xlnet_tf.finetuning import finetune_config, save_final_checkpoint
from xlnet_tf.io import write_text_atomic
from xlnet_tf.multiple_choice.model import HEAD_SCOPE, XLNetMultipleChoice
from xlnet_tf.multiple_choice.readers import letter
from xlnet_tf.multiple_choice.records import mc_dataset
from xlnet_tf.training import Task, evaluate_dataset


def choice_loss(logits, labels):
    """Per-question ``-log softmax(logits)[label]`` [B]; ``logits`` [B, C]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))  # [B]


class MultipleChoiceTask(Task):
    """Fine-tuning job for :func:`xlnet_tf.training.train`; ``train_record`` is set once
    the records exist.  ``--train_batch_size`` counts questions (each C sequences)."""

    def __init__(self, config, reader_name, num_choices, max_seq_length, max_qa_length, *,
                 summary_type="last", use_summ_proj=True, seed=0, shuffle_buffer=2048,
                 train_record=None):
        self.config = finetune_config(config)
        self.reader_name = reader_name
        self.num_choices = int(num_choices)
        self.max_seq_length, self.max_qa_length = int(max_seq_length), int(max_qa_length)
        self.summary_type, self.use_summ_proj = summary_type, bool(use_summ_proj)
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.train_record = train_record
        self.identity = mc_identity(self.config, reader_name, num_choices, max_seq_length,
                                    max_qa_length, summary_type, use_summ_proj)

    def build_model(self, dtype=None):
        kwargs = {"dtype": dtype} if dtype else {}
        return XLNetMultipleChoice(self.config, summary_type=self.summary_type,
                                   use_summ_proj=self.use_summ_proj, **kwargs)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        replicas = input_context.num_replicas_in_sync if input_context is not None else 1
        ds = mc_dataset(self.train_record, per_replica_batch * replicas, True,
                        self.num_choices, self.max_seq_length, input_context=input_context,
                        seed=self.seed, shuffle_buffer=self.shuffle_buffer)
        ds = ds.map(lambda b: {k: b[k] for k in ("input_ids", "seg_ids", "input_mask",
                                                 "label")})
        return ds.skip(skip_batches) if skip_batches else ds

    def loss(self, model, batch, state, training):
        logits = model(batch, training=training)["logits"]                   # [b, C]
        per_question = choice_loss(logits, batch["label"])                   # [b]
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                   tf.cast(batch["label"], tf.int32)), tf.float32)
        return tf.reduce_mean(per_question), state, {"accuracy": tf.reduce_mean(correct)}

    def export(self, model, model_dir):
        """The final weights under the original names: ``model_dir/xlnet_model.ckpt``."""
        save_final_checkpoint(model, model_dir)


def mc_identity(config, reader_name, num_choices, max_seq_length, max_qa_length,
                summary_type, use_summ_proj):
    """What makes two fine-tuning runs share an output_dir (written to task.json)."""
    return {"task": "multiple_choice", "task_name": reader_name,
            "xlnet_config": finetune_config(config).checkpoint_dict(),
            "num_choices": int(num_choices), "max_seq_length": int(max_seq_length),
            "max_qa_length": int(max_qa_length), "summary_type": summary_type,
            "use_summ_proj": bool(use_summ_proj), "head_scope": HEAD_SCOPE}


class Evaluator:
    """Logits over a cached record file (one ``tf.function`` kept for the evaluator's life,
    so periodic evaluation traces once) and the original's report."""

    def __init__(self, record_path, batch_size, num_choices, max_seq_length):
        self.record_path = record_path
        self.batch_size, self.num_choices = int(batch_size), int(num_choices)
        self.max_seq_length = int(max_seq_length)
        self._fns = {}

    def _fn(self, model):
        fn = self._fns.get(id(model))
        if fn is None:
            def fn(batch):
                logits = model(batch, training=False)["logits"]              # [b, C]
                return {"logits": logits, "label": batch["label"], "qid": batch["qid"],
                        "level": batch["level"]}
            self._fns = {id(model): fn}
        return fn

    def outputs(self, model):
        """{"logits": [N, C], "label": [N] (-1 unknown), "qid": [N], "level": [N]}."""
        ds = mc_dataset(self.record_path, self.batch_size, False, self.num_choices,
                        self.max_seq_length)
        out = evaluate_dataset(self._fn(model), ds)
        out["qid"] = [q.decode() for q in out["qid"]]
        out["level"] = [lv.decode() for lv in out["level"]]
        return out

    def evaluate(self, model):
        return mc_results(self.outputs(model))


def mc_results(out):
    """``accuracy`` on every labelled question, ``accuracy_<level>`` and ``num_<level>``
    per level, ``loss`` (mean cross-entropy) and ``num_examples``."""
    logits, labels = np.asarray(out["logits"]), np.asarray(out["label"])
    keep = labels >= 0
    if not keep.any():
        raise ValueError("the evaluated split has no answers; use --do_predict for "
                         "unlabelled questions")
    logits, labels = logits[keep], labels[keep]
    levels = [lv for lv, k in zip(out["level"], keep) if k]
    correct = np.argmax(logits, -1) == labels
    logp = log_softmax_np(logits)
    results = {"accuracy": float(correct.mean()),
               "loss": float(-logp[np.arange(len(labels)), labels].mean())}
    for level in sorted(set(lv for lv in levels if lv)):
        mask = np.array([lv == level for lv in levels])
        results[f"accuracy_{level}"] = float(correct[mask].mean())
        results[f"num_{level}"] = int(mask.sum())
    results["num_examples"] = int(len(labels))
    return results


def write_predictions(path, out):
    """One JSON object per question: ``id``, ``level``, per-option ``logits`` and
    ``probabilities``, ``prediction`` (letter) and ``answer`` (gold letter, or null)."""
    probs = np.exp(log_softmax_np(out["logits"]))
    lines = []
    for qid, level, lg, pr, gold in zip(out["qid"], out["level"], out["logits"], probs,
                                        out["label"]):
        lines.append(json.dumps({
            "id": qid, "level": level, "logits": [float(x) for x in lg],
            "probabilities": [float(x) for x in pr], "prediction": letter(np.argmax(lg)),
            "answer": letter(gold) if gold >= 0 else None}) + "\n")
    write_text_atomic(path, "".join(lines))
    return os.path.abspath(path)
