"""Sequence classification / regression on top of the XLNet backbone.

The original's ``summarize_sequence`` and the logit layer of ``get_classification_loss`` /
``get_regression_loss`` (``modeling.py``, ``function_builder.py``) as Keras 3 objects; the
losses and the fine-tuning task are in ``xlnet_tf.classification.task``:

* :class:`SequenceSummary` — ``summarize_sequence``: one vector per example from the
  backbone output ``hidden [B, T, d]``, by ``summary_type``

  ``last``   the last position: the ``<cls>`` token, since classification inputs put CLS at
             the END and pad on the LEFT (the default);
  ``first``  position 0 (a padding position for every input shorter than T);
  ``mean``   mean over all T positions, padding INCLUDED (the original does not mask);
  ``attn``   a learned query ``summary_bias [d]`` attends over ``hidden`` with plain
             (absolute, non-relative) multi-head attention, padding masked, then the output
             projection and a LayerNorm WITHOUT residual (scope ``abs_attn``);

  then, if ``use_summ_proj``, ``tanh(Dense_d(summary))`` (scope ``summary``), and always
  dropout with the model's ``dropout`` rate.

* :class:`XLNetClassifier` — backbone + summary + ``logit`` Dense(n_class) (or Dense(1) for
  regression).  Its ``original_name_map()`` names every weight as the original fine-tuned
  checkpoint does, so ``checkpoint.load_original_checkpoint`` reads a checkpoint fine-tuned
  by the original code and ``save_original_checkpoint`` writes one it can read::

      model/transformer/...                                 backbone
      model/sequnece_summary/summary/{kernel,bias}          (sic: "sequnece")
      model/sequnece_summary/summary_bias                   summary_type=attn only
      model/sequnece_summary/abs_attn/{q,k,v,o}/kernel      summary_type=attn only
      model/sequnece_summary/abs_attn/LayerNorm/{gamma,beta}
      model/classification_{task}/logit/{kernel,bias}       or model/regression_{task}/...

Fine-tuning never uses the Transformer-XL memory nor bi_data (the original's RunConfig for
fine-tuning copies neither), so the classifier forces ``mem_len=None, reuse_len=None,
bi_data=False, same_length=False, attn_type='bi'`` on the config it is given.

Long documents (``long_doc='memory'``): the input is ``max_segments * seq_len`` positions
(the same left-padded layout, only longer) read as ``max_segments`` segments of
``seq_len`` carrying Transformer-XL memory of ``mem_len`` positions
(``xlnet_tf.modeling.model.read_segments``); the summary is taken over the LAST segment,
which ends with ``<sep> <cls>``.  The backbone then runs with ``mem_len`` (only the memory
differs; the weights and their names are the same as in truncate mode).
"""
import math

import keras
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config
from xlnet_tf.modeling.layers import NEG_INF, LayerNorm, dropout, fold_seed, initializer
from xlnet_tf.modeling.model import XLNetModel, model_from_config, read_segments

SUMMARY_TYPES = ("last", "first", "mean", "attn")
LONG_DOC_MODES = ("truncate", "memory")
MODEL_INPUT_KEYS = ("input_ids", "seg_ids", "input_mask")


def head_scope(task_name, is_regression=False, cls_scope=None):
    """Variable scope of the logit layer: ``classification_{cls_scope or task}`` or
    ``regression_{task}`` (task name lower-cased, as the original's ``FLAGS.task_name.lower()``)."""
    if not task_name and not cls_scope:
        raise ValueError("a task name (or cls_scope) is needed to name the head variables")
    if is_regression:
        return f"regression_{str(task_name).lower()}"
    return f"classification_{cls_scope if cls_scope else str(task_name).lower()}"


@keras.saving.register_keras_serializable(package="xlnet_tf")
class SequenceSummary(keras.layers.Layer):
    """The original ``summarize_sequence`` (scope ``model/sequnece_summary``).

    Call: ``summary = layer(hidden [B, T, d], input_mask [B, T] float 1 = padding or None,
    training)`` -> ``[B, d]``.  ``input_mask`` is only used by ``summary_type='attn'``.
    """

    def __init__(self, d_model, n_head, d_head, summary_type="last", use_proj=True,
                 dropout=0.1, dropatt=0.1, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if summary_type not in SUMMARY_TYPES:
            raise ValueError(f"summary_type must be one of {SUMMARY_TYPES}, got "
                             f"{summary_type!r}")
        self.d_model, self.n_head, self.d_head = int(d_model), int(n_head), int(d_head)
        self.summary_type = summary_type
        self.use_proj = bool(use_proj)
        self.dropout_rate, self.dropatt_rate = float(dropout), float(dropatt)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if summary_type == "attn":
            self.layer_norm = LayerNorm(name="LayerNorm", dtype=self.dtype_policy)
        # stateless dropout as in the backbone: one draw per training call, checkpointed by
        # the training loop with the other generators (exact resume)
        self.seed_generator = keras.random.SeedGenerator()

    def build(self, input_shape=None):
        d, init = self.d_model, self.kernel_initializer
        if self.summary_type == "attn":
            self.summary_bias = self.add_weight(name="summary_bias", shape=(d,),
                                                initializer=init, autocast=False)
            shape = (d, self.n_head, self.d_head)
            for k in ("q", "k", "v", "o"):
                setattr(self, f"{k}_kernel", self.add_weight(
                    name=f"abs_attn_{k}_kernel", shape=shape, initializer=init,
                    autocast=False))
            self.layer_norm.build((d,))
        if self.use_proj:
            self.summary_kernel = self.add_weight(name="summary_kernel", shape=(d, d),
                                                  initializer=init, autocast=False)
            self.summary_bias_proj = self.add_weight(name="summary_proj_bias", shape=(d,),
                                                     initializer="zeros", autocast=False)
        self.built = True

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "n_head": self.n_head,
                "d_head": self.d_head, "summary_type": self.summary_type,
                "use_proj": self.use_proj, "dropout": self.dropout_rate,
                "dropatt": self.dropatt_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}

    def original_name_map(self, prefix="model/sequnece_summary"):
        names = {}
        if self.summary_type == "attn":
            names[f"{prefix}/summary_bias"] = self.summary_bias
            for k in ("q", "k", "v", "o"):
                names[f"{prefix}/abs_attn/{k}/kernel"] = getattr(self, f"{k}_kernel")
            names[f"{prefix}/abs_attn/LayerNorm/gamma"] = self.layer_norm.gamma
            names[f"{prefix}/abs_attn/LayerNorm/beta"] = self.layer_norm.beta
        if self.use_proj:
            names[f"{prefix}/summary/kernel"] = self.summary_kernel
            names[f"{prefix}/summary/bias"] = self.summary_bias_proj
        return names

    def _w(self, var):
        return tf.cast(var, self.compute_dtype)

    def _attn_summary(self, hidden, input_mask, training, seed):
        """The original's ``multihead_attn(summary_bias, hidden, hidden, mask, residual=False)``
        with one query per example; returns row 0 of its output, [B, d]."""
        batch = tf.shape(hidden)[0]
        query = tf.tile(self._w(self.summary_bias)[None, None, :], [batch, 1, 1])  # [B, 1, d]
        q_head = tf.einsum("bid,dnh->binh", query, self._w(self.q_kernel))   # [B, 1, H, Dh]
        k_head = tf.einsum("bjd,dnh->bjnh", hidden, self._w(self.k_kernel))  # [B, T, H, Dh]
        v_head = tf.einsum("bjd,dnh->bjnh", hidden, self._w(self.v_kernel))  # [B, T, H, Dh]
        score = tf.einsum("binh,bjnh->bnij", q_head, k_head)                 # [B, H, 1, T]
        score = tf.cast(score, tf.float32) * (1.0 / math.sqrt(self.d_head))
        if input_mask is not None:
            pad = tf.cast(input_mask, tf.float32)[:, None, None, :] > 0.5    # [B, 1, 1, T]
            score = tf.where(pad, NEG_INF, score)                            # = score - 1e30
        prob = tf.cast(tf.nn.softmax(score, axis=-1), self.compute_dtype)    # [B, H, 1, T]
        prob = dropout(prob, self.dropatt_rate, fold_seed(seed, 1), training)
        vec = tf.einsum("bnij,bjnh->binh", prob, v_head)                     # [B, 1, H, Dh]
        out = tf.einsum("binh,dnh->bid", vec, self._w(self.o_kernel))        # [B, 1, d]
        out = dropout(out, self.dropout_rate, fold_seed(seed, 2), training)
        return self.layer_norm(out)[:, 0]                                    # [B, d]

    def call(self, hidden, input_mask=None, training=False):
        training = bool(training)
        seed = None
        if training and (self.dropout_rate > 0 or self.dropatt_rate > 0):
            seed = tf.cast(self.seed_generator.next(), tf.int32)            # [2]
        if self.summary_type == "last":
            summary = hidden[:, -1]                                           # [B, d]
        elif self.summary_type == "first":
            summary = hidden[:, 0]                                            # [B, d]
        elif self.summary_type == "mean":
            summary = tf.reduce_mean(hidden, axis=1)                          # [B, d]
        else:
            summary = self._attn_summary(hidden, input_mask, training, seed)  # [B, d]
        if self.use_proj:
            summary = tf.tanh(tf.matmul(summary, self._w(self.summary_kernel))
                              + self._w(self.summary_bias_proj))              # [B, d]
        return dropout(summary, self.dropout_rate, fold_seed(seed, 0), training)


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetClassifier(keras.Model):
    """XLNet backbone + sequence summary + classification (or regression) logit.

    Args:
      config: ``XLNetConfig`` (or its dict); fine-tuning run options are forced (see module
        docstring).  ``dropout``/``dropatt`` of the config apply to the head too.
      n_class: number of labels (ignored for regression, which has one output).
      task_name: names the head scope, e.g. ``sts-b`` -> ``model/regression_sts-b/logit``.
      is_regression: one score per example, trained with squared error.
      summary_type, use_summ_proj: as the original's flags.
      cls_scope: the original's ``--cls_scope`` (classification head scope suffix).
      long_doc: ``truncate`` (one segment) or ``memory`` (see module docstring; then
        ``seq_len`` = the segment length T, ``max_segments`` = S and ``mem_len`` are needed,
        and the inputs are [B, S*T]).

    Call: ``model({"input_ids": [B, T] int32, "seg_ids": [B, T] int32, "input_mask": [B, T]
    float 1 = padding}, training)`` (other keys, such as ``label``, are ignored) ->
    ``{"logits": [B, n_class] float32}`` (``[B, 1]`` for regression).
    """

    def __init__(self, config, n_class=2, task_name="task", is_regression=False,
                 summary_type="last", use_summ_proj=True, cls_scope=None,
                 long_doc="truncate", seq_len=None, max_segments=1, mem_len=None, **kwargs):
        kwargs.setdefault("name", "xlnet_classifier")
        super().__init__(**kwargs)
        config = finetune_config(config)
        self.xlnet_config = config
        self.is_regression = bool(is_regression)
        self.n_class = 1 if self.is_regression else int(n_class)
        if self.n_class < 1 or (not self.is_regression and self.n_class < 2):
            raise ValueError(f"a classifier needs n_class >= 2, got {n_class}")
        self.task_name = str(task_name)
        self.cls_scope = cls_scope or None
        self.summary_type = summary_type
        self.use_summ_proj = bool(use_summ_proj)
        self.head_scope = head_scope(task_name, self.is_regression, self.cls_scope)
        if long_doc not in LONG_DOC_MODES:
            raise ValueError(f"long_doc must be one of {LONG_DOC_MODES}, got {long_doc!r}")
        self.long_doc = long_doc
        self.seq_len = None if seq_len is None else int(seq_len)
        self.max_segments, self.mem_len = int(max_segments), mem_len
        backbone_config = config
        if long_doc == "memory":
            if not self.seq_len or self.max_segments < 1 or not mem_len or mem_len < 1:
                raise ValueError(f"long_doc='memory' needs seq_len >= 1, max_segments >= 1 and "
                                 f"mem_len >= 1, got seq_len={seq_len}, max_segments="
                                 f"{max_segments}, mem_len={mem_len}")
            self.mem_len = int(mem_len)
            backbone_config = config.replace(mem_len=self.mem_len)
        init = initializer(config)
        dtype = self.dtype_policy
        self.transformer = XLNetModel(backbone_config, name="transformer", dtype=dtype)
        # mask_emb only feeds the pretraining query stream; the original fine-tuning graph
        # does not create it, so it is neither trained nor part of the original names here
        # (a checkpoint fine-tuned by the original code has no mask_emb to load).
        self.transformer.mask_emb.trainable = False
        self.sequence_summary = SequenceSummary(
            config.d_model, config.n_head, config.d_head, summary_type, use_summ_proj,
            config.dropout, config.dropatt, init, name="sequnece_summary", dtype=dtype)
        self.sequence_summary.build()
        self.logit = keras.layers.Dense(self.n_class, kernel_initializer=init,
                                        name="logit", dtype=dtype)
        self.logit.build((None, config.d_model))
        self.built = True

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "n_class": self.n_class, "task_name": self.task_name,
                "is_regression": self.is_regression, "summary_type": self.summary_type,
                "use_summ_proj": self.use_summ_proj, "cls_scope": self.cls_scope,
                "long_doc": self.long_doc, "seq_len": self.seq_len,
                "max_segments": self.max_segments, "mem_len": self.mem_len,
                "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    def original_name_map(self):
        """{original TF1 name: variable}: backbone, summary and head (see module docstring)."""
        names = self.transformer.original_name_map(include_mask_emb=False)
        names.update(self.sequence_summary.original_name_map())
        names[f"model/{self.head_scope}/logit/kernel"] = self.logit.kernel
        names[f"model/{self.head_scope}/logit/bias"] = self.logit.bias
        return names

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or "input_ids" not in inputs:
            raise ValueError(f"{type(self).__name__} takes a dict with keys {MODEL_INPUT_KEYS}")
        hidden, mask = self.backbone_states(inputs, training=training)      # [B, T, d]
        summary = self.sequence_summary(hidden, mask, training=training)     # [B, d]
        logits = tf.cast(self.logit(summary), tf.float32)                    # [B, C]
        return {"logits": logits}

    def backbone_states(self, inputs, training=False):
        """``(hidden [B, T, d], input_mask [B, T] or None)`` of the part that is summarised:
        the whole input, or with ``long_doc='memory'`` the last segment read with memory."""
        feats = {k: inputs[k] for k in MODEL_INPUT_KEYS if inputs.get(k) is not None}
        if self.long_doc == "memory":
            total = feats["input_ids"].shape[1]
            if total != self.seq_len * self.max_segments:
                raise ValueError(f"long_doc='memory' takes inputs of max_segments * seq_len = "
                                 f"{self.max_segments} * {self.seq_len} positions, got {total}")
            return read_segments(self.transformer, feats, self.seq_len, training=training)
        hidden = self.transformer(feats, training=training)["hidden"]        # [B, T, d]
        return hidden, feats.get("input_mask")
