"""Fine-tuning a tagger: the masked per-token loss, the task the shared training loop runs
for run_ner.py (:class:`TaggerTask`), what makes two runs share an output folder
(:func:`tagger_identity`) and word-level prediction over the windows (:class:`Predictor`).
"""
import numpy as np
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config, save_final_checkpoint
from xlnet_tf.token_classification.model import XLNetTokenClassifier, head_scope
from xlnet_tf.training import Task, evaluate_dataset

FEATURE_KEYS = ("input_ids", "input_mask", "seg_ids", "label_ids")
CONTEXT_KEYS = ("context_ids", "context_mask")       # [N, context_len], --doc_context_len


def token_loss(logits, label_ids):
    """Mean ``-log softmax(logits)[label]`` over the positions with ``label_ids >= 0``
    (0 when there are none), and the accuracy there: (loss, accuracy, count)."""
    labels = tf.cast(label_ids, tf.int32)                                    # [b, T]
    weight = tf.cast(labels >= 0, tf.float32)                                # [b, T]
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(labels, 0), logits=tf.cast(logits, tf.float32))    # [b, T]
    count = tf.reduce_sum(weight)
    loss = tf.math.divide_no_nan(tf.reduce_sum(per_token * weight), count)
    right = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
    accuracy = tf.math.divide_no_nan(tf.reduce_sum(right * weight), count)
    return loss, accuracy, count


def features_dataset(arrays, batch_size, is_training, input_context=None, seed=0,
                     shuffle_buffer=2048):
    """tf.data over the window arrays (``FEATURE_KEYS`` -> [N, T], and ``CONTEXT_KEYS`` ->
    [N, context_len] when present): training shuffles, repeats and drops the last partial
    batch; evaluation keeps the order and every window.  Yields ``input_ids`` / ``seg_ids``
    / ``label_ids`` (/ ``context_ids``) int32 and ``input_mask`` (/ ``context_mask``)
    float32."""
    data = {k: np.asarray(arrays[k], np.float32 if k.endswith("_mask") else np.int32)
            for k in FEATURE_KEYS + CONTEXT_KEYS if k in arrays}
    d = tf.data.Dataset.from_tensor_slices(data)
    per_batch = int(batch_size)
    if input_context is not None:
        per_batch = input_context.get_per_replica_batch_size(batch_size)
        d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    return d.batch(per_batch, drop_remainder=is_training).prefetch(tf.data.AUTOTUNE)


def tagger_identity(config, tag_list, max_seq_length, scope, context_len=0):
    """What makes two fine-tuning runs share an output_dir (written to task.json); the
    document context is part of it (a folder written before it, without the key, is not
    compared on it)."""
    return {"task": "token_classification",
            "xlnet_config": finetune_config(config).checkpoint_dict(),
            "max_seq_length": int(max_seq_length), "tag_list": list(tag_list),
            "head_scope": head_scope(scope), "doc_context_len": int(context_len)}


class TaggerTask(Task):
    """Fine-tuning job for :func:`xlnet_tf.training.train` over in-memory window arrays
    (``train_arrays``: ``FEATURE_KEYS`` -> [N, T])."""

    def __init__(self, config, tag_list, max_seq_length, *, scope=None, context_len=0,
                 train_arrays=None, seed=0, shuffle_buffer=2048):
        self.config = finetune_config(config)
        self.tag_list = list(tag_list)
        self.max_seq_length = int(max_seq_length)
        self.scope = scope or None
        self.context_len = int(context_len)
        self.train_arrays = train_arrays
        self.seed, self.shuffle_buffer = seed, shuffle_buffer
        self.identity = tagger_identity(self.config, self.tag_list, max_seq_length, scope,
                                        self.context_len)

    def build_model(self, dtype=None):
        kwargs = {"dtype": dtype} if dtype else {}
        return XLNetTokenClassifier(self.config, len(self.tag_list), scope=self.scope,
                                    context_len=self.context_len, **kwargs)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        replicas = input_context.num_replicas_in_sync if input_context is not None else 1
        ds = features_dataset(self.train_arrays, per_replica_batch * replicas, True,
                              input_context=input_context, seed=self.seed,
                              shuffle_buffer=self.shuffle_buffer)
        return ds.skip(skip_batches) if skip_batches else ds

    def loss(self, model, batch, state, training):
        logits = model(batch, training=training)["logits"]                   # [b, T, C]
        loss, accuracy, _ = token_loss(logits, batch["label_ids"])
        return loss, state, {"accuracy": accuracy}

    def export(self, model, model_dir):
        """The final weights under the original names: ``model_dir/xlnet_model.ckpt``."""
        save_final_checkpoint(model, model_dir)


class Predictor:
    """Per-word tags and scores of a tagger over the windows of a data set; the model call
    is one ``tf.function`` kept for the predictor's life."""

    def __init__(self, batch_size):
        self.batch_size = int(batch_size)
        self._model = self._call = None

    def _fn(self, model):
        if self._model is not model:   # one trace per model
            self._model = model
            self._call = tf.function(
                lambda batch: {"logits": model(batch, training=False)["logits"]})  # [b, T, C]
        return self._call

    def word_logits(self, model, data):
        """[sentence][word] -> logits [C] (float32) for the windows of ``data``
        (a :class:`xlnet_tf.token_classification.data.TaggingData`)."""
        ds = features_dataset(data.arrays, self.batch_size, False)
        logits = evaluate_dataset(self._fn(model), ds)["logits"]             # [N, T, C]
        out = [[None] * len(s.words) for s in data.sentences]
        for window, feats in enumerate(data.windows):
            for word, pos in feats.positions.items():
                out[feats.sentence][word] = logits[window, pos]
        return out

    def predict(self, model, data, tag_list):
        """(tags [sentence][word], scores [sentence][word]: the softmax probability of the
        chosen tag)."""
        tags, scores = [], []
        for row in self.word_logits(model, data):
            z = np.asarray(row, np.float64).reshape(len(row), -1)            # [W, C]
            z = z - z.max(-1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            best = p.argmax(-1)
            tags.append([tag_list[i] for i in best])
            scores.append([float(p[i, j]) for i, j in enumerate(best)])
        return tags, scores
