"""Fine-tuning a classifier: the losses (the original's ``get_classification_loss`` /
``get_regression_loss``), the task the shared training loop runs for run_classifier.py
(:class:`ClassifierTask`), what makes two runs share an output folder
(:func:`classifier_identity`), evaluation over the cached records (:class:`Evaluator`) and
the prediction files (:func:`write_predictions`: the GLUE submission format).
"""
import json
import os

import numpy as np
import tensorflow as tf

from xlnet_tf.classification.dataset import classifier_dataset
from xlnet_tf.classification.metrics import compute_metrics
from xlnet_tf.classification.model import XLNetClassifier, head_scope
from xlnet_tf.finetuning import finetune_config, save_final_checkpoint
from xlnet_tf.io import write_text_atomic
from xlnet_tf.training import Task, evaluate_dataset


def classification_loss(logits, labels, weights=None):
    """Per-example ``-log softmax(logits)[label]`` [B] (weights multiply it)."""
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))  # [B]
    return loss if weights is None else loss * tf.cast(weights, tf.float32)


def regression_loss(logits, labels, weights=None):
    """Per-example ``(score - label)^2`` [B]; ``logits`` [B, 1] or [B]."""
    score = tf.reshape(tf.cast(logits, tf.float32), [-1])                    # [B]
    loss = tf.square(score - tf.cast(labels, tf.float32))                    # [B]
    return loss if weights is None else loss * tf.cast(weights, tf.float32)


class ClassifierTask(Task):
    """Fine-tuning job for :func:`xlnet_tf.training.train`.

    Args:
      config: the XLNetConfig (fine-tuning options are forced by the model).
      processor: task reader from ``xlnet_tf.classification.readers.get_task``.
      train_record: TFRecord file of the training split (``prepare_classifier_records``).
      max_seq_length: T.
      summary_type, use_summ_proj, cls_scope: head options.
      seed, shuffle_buffer: training input order.
      long_doc, max_segments, mem_len: ``memory`` reads documents of up to
        ``max_segments * max_seq_length`` positions as segments carrying ``mem_len`` of
        Transformer-XL memory (records from ``prepare_classifier_records(max_segments=...)``);
        ``truncate`` (the default) is one segment.
    """

    def __init__(self, config, processor, train_record, max_seq_length, *, summary_type="last",
                 use_summ_proj=True, cls_scope=None, seed=0, shuffle_buffer=2048,
                 long_doc="truncate", max_segments=1, mem_len=None):
        self.config = finetune_config(config)
        self.processor = processor
        self.train_record = train_record
        self.max_seq_length = int(max_seq_length)
        self.summary_type, self.use_summ_proj = summary_type, bool(use_summ_proj)
        self.cls_scope = cls_scope or None
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.is_regression = bool(processor.is_regression)
        self.label_list = None if self.is_regression else list(processor.label_list)
        self.long_doc = long_doc
        self.max_segments = int(max_segments) if long_doc == "memory" else 1
        self.mem_len = mem_len if long_doc == "memory" else None
        self.identity = classifier_identity(self.config, processor, self.max_seq_length,
                                            summary_type, use_summ_proj, cls_scope,
                                            self.long_doc_settings())

    def long_doc_settings(self):
        """None in truncate mode, else {"mode", "max_segments", "mem_len"}."""
        if self.long_doc != "memory":
            return None
        return {"mode": "memory", "max_segments": self.max_segments, "mem_len": self.mem_len}

    @property
    def record_segments(self):
        """``max_segments`` of the records (None = truncated records)."""
        return self.max_segments if self.long_doc == "memory" else None

    def build_model(self, dtype=None):
        kwargs = {"dtype": dtype} if dtype else {}
        return XLNetClassifier(
            self.config, n_class=1 if self.is_regression else len(self.label_list),
            task_name=self.processor.name, is_regression=self.is_regression,
            summary_type=self.summary_type, use_summ_proj=self.use_summ_proj,
            cls_scope=self.cls_scope, long_doc=self.long_doc, seq_len=self.max_seq_length,
            max_segments=self.max_segments, mem_len=self.mem_len, **kwargs)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        replicas = input_context.num_replicas_in_sync if input_context is not None else 1
        ds = classifier_dataset(self.train_record, per_replica_batch * replicas, True,
                                self.max_seq_length, self.is_regression,
                                input_context=input_context, seed=self.seed,
                                shuffle_buffer=self.shuffle_buffer,
                                max_segments=self.record_segments)
        return ds.skip(skip_batches) if skip_batches else ds

    def loss(self, model, batch, state, training):
        logits = model(batch, training=training)["logits"]                   # [b, C]
        if self.is_regression:
            per_example = regression_loss(logits, batch["label"])            # [b]
            return tf.reduce_mean(per_example), state, {}
        per_example = classification_loss(logits, batch["label"])            # [b]
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                   tf.cast(batch["label"], tf.int32)), tf.float32)
        return tf.reduce_mean(per_example), state, {"accuracy": tf.reduce_mean(correct)}

    def export(self, model, model_dir):
        """The final weights under the original names: ``model_dir/xlnet_model.ckpt`` (its
        ``global_step`` = the step of the newest loop checkpoint)."""
        save_final_checkpoint(model, model_dir)


def classifier_identity(config, processor, max_seq_length, summary_type, use_summ_proj,
                        cls_scope, long_doc=None):
    """What makes two fine-tuning runs share an output_dir (written to task.json).
    ``long_doc``: the memory-mode settings, None in truncate mode (a folder written before
    the key existed has none, and only keys a folder has are compared)."""
    return {"long_doc": dict(long_doc) if long_doc else None,"task": "classifier", "task_name": processor.name,
            "xlnet_config": finetune_config(config).checkpoint_dict(),
            "max_seq_length": int(max_seq_length),
            "label_list": None if processor.is_regression else list(processor.label_list),
            "is_regression": bool(processor.is_regression), "summary_type": summary_type,
            "use_summ_proj": bool(use_summ_proj),
            "head_scope": head_scope(processor.name, processor.is_regression, cls_scope)}


class Evaluator:
    """Logits, loss and metrics of a classifier over a cached (eval or predict) record file.

    The model call is one ``tf.function`` kept for the evaluator's life, so periodic
    evaluation during training traces once.  Padding rows (``is_real_example = 0``, added so
    every batch is full) are dropped from the outputs.
    """

    def __init__(self, processor, record_path, batch_size, max_seq_length, max_segments=None):
        self.processor = processor
        self.record_path = record_path
        self.batch_size = int(batch_size)
        self.max_seq_length = int(max_seq_length)
        self.is_regression = bool(processor.is_regression)
        self.max_segments = max_segments
        self._fns = {}

    def _fn(self, model):
        fn = self._fns.get(id(model))
        if fn is None:
            @tf.function
            def fn(batch):
                logits = model(batch, training=False)["logits"]              # [b, C]
                return {"logits": logits, "label": batch["label"],
                        "weight": batch["is_real_example"]}
            self._fns = {id(model): fn}
        return fn

    def outputs(self, model):
        """{"logits": [N, C] float32, "label": [N], "weight": [N]} for the N real examples,
        in file order."""
        ds = classifier_dataset(self.record_path, self.batch_size, False, self.max_seq_length,
                                self.is_regression, max_segments=self.max_segments)
        out = evaluate_dataset(self._fn(model), ds)
        keep = out["weight"] > 0.5
        return {k: v[keep] for k, v in out.items()}

    def evaluate(self, model):
        """{metric: value, ..., "loss": mean loss, "num_examples": N}."""
        out = self.outputs(model)
        logits, labels = out["logits"], out["label"]
        if self.is_regression:
            loss = float(np.mean((logits[:, 0].astype(np.float64) - labels) ** 2))
            preds = logits[:, 0]
        else:
            logp = log_softmax_np(logits)
            loss = float(-np.mean(logp[np.arange(len(labels)), labels.astype(np.int64)]))
            preds = np.argmax(logits, axis=-1)
        results = {k: float(v) for k, v in compute_metrics(self.processor, preds, labels).items()}
        results["loss"] = loss
        results["num_examples"] = int(len(labels))
        return results


def log_softmax_np(logits):
    """``log softmax`` over the last axis in float64 (numerically stable)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def write_predictions(out_dir, logits, label_list, is_regression, guids=None):
    """GLUE submission file ``predictions.tsv`` (header ``index<TAB>prediction``; label names,
    or regression scores with 6 decimals) and ``predict_results.jsonl`` (one JSON object per
    example: index, prediction, logits, probabilities), both written atomically."""
    logits = np.asarray(logits, np.float32)
    rows, details = [], []
    if is_regression:
        for i, score in enumerate(logits[:, 0]):
            rows.append(f"{i}\t{float(score):.6f}")
            details.append({"index": i, "prediction": float(score),
                            "logits": [float(score)]})
    else:
        probs = np.exp(log_softmax_np(logits))
        for i, (lg, pr) in enumerate(zip(logits, probs)):
            label = label_list[int(np.argmax(lg))]
            rows.append(f"{i}\t{label}")
            details.append({"index": i, "prediction": label,
                            "logits": [float(x) for x in lg],
                            "probabilities": [float(x) for x in pr]})
    if guids is not None:
        for d, g in zip(details, guids):
            d["guid"] = g
    tsv = os.path.join(out_dir, "predictions.tsv")
    write_text_atomic(tsv, "index\tprediction\n" + "".join(r + "\n" for r in rows))
    jsonl = os.path.join(out_dir, "predict_results.jsonl")
    write_text_atomic(jsonl, "".join(json.dumps(d) + "\n" for d in details))
    return tsv, jsonl
