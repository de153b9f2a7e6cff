"""SQuAD question answering on top of the XLNet backbone: the original's ``get_qa_outputs``
heads (the loss, the fine-tuning task and the prediction loop are in
:mod:`xlnet_tf.squad.task`).

Heads (all on the backbone output ``hidden [B, T, d]``; ``p_mask [B, T]`` 1 = this position
cannot be an answer boundary; ``cls_index [B]`` = position of ``<cls>``):

* **start**: ``start_logits/dense`` ([d, 1] + bias) -> ``[B, T]``, masked as the original:
  ``logit * (1 - p_mask) - 1e30 * p_mask``; ``start_log_probs = log_softmax``.
* **end**, conditioned on a start:
  ``end_logits/dense_0`` ([2d, d] + bias, tanh) on ``concat([hidden[t], start_feature])``
  (token FIRST, start SECOND: the first d kernel rows multiply the token, the last d the
  start) -> ``end_logits/LayerNorm`` -> ``end_logits/dense_1`` ([d, 1] + bias) -> masked
  with ``p_mask`` -> log_softmax over T.

  - teacher forcing (``start_positions`` given, as in training): the start feature is the
    hidden state at the GOLD start;
  - beam (no ``start_positions``, as at inference): the ``start_n_top`` best starts, each
    with its ``end_n_top`` best ends, flattened so that entry ``i * end_n_top + j`` is the
    j-th end of the i-th start.

* **answer_class**: ``concat([start_feature, cls_feature])`` (start FIRST, ``<cls>``
  second) -> ``answer_class/dense_0`` ([2d, d] + bias, tanh) -> dropout ->
  ``answer_class/dense_1`` ([d, 1], NO bias) -> ``cls_logits [B]``.  The start feature here
  is the EXPECTED start state ``sum_t softmax(masked start logits)[t] * hidden[t]`` in
  training and inference alike (the original; Hugging Face uses the gold start in
  training).

The concatenations are computed without materialising them: ``concat([a, b]) @ W`` equals
``a @ W[:d] + b @ W[d:]``, so the token half of ``end_logits/dense_0`` is applied once per
position and the start half once per start, then broadcast ([B, k, T, d] instead of the
original's [B, k, T, 2d] products).  The kernel is still one ``[2d, d]`` variable under the
original name.

Variable names (``original_name_map()``): the backbone under ``model/transformer/`` and the
heads at the TOP level, exactly as an original fine-tuned SQuAD checkpoint::

    start_logits/dense/{kernel,bias}
    end_logits/dense_0/{kernel,bias}   end_logits/LayerNorm/{gamma,beta}
    end_logits/dense_1/{kernel,bias}
    answer_class/dense_0/{kernel,bias} answer_class/dense_1/kernel

Fine-tuning uses neither memory nor bi_data (forced on the config, as the classifier does);
``mask_emb`` is not part of a fine-tuning graph, so it is frozen and left out of the names.
"""
import keras
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config
from xlnet_tf.modeling.layers import NEG_INF, LayerNorm, initializer
from xlnet_tf.modeling.model import XLNetModel, model_from_config




def mask_logits(logits, p_mask):
    """The original's masking ``logits * (1 - p_mask) - 1e30 * p_mask`` in float32
    (1e30 does not fit float16).  ``p_mask`` broadcasts against ``logits``."""
    logits = tf.cast(logits, tf.float32)
    p_mask = tf.cast(p_mask, tf.float32)
    return logits * (1.0 - p_mask) + NEG_INF * p_mask


@keras.saving.register_keras_serializable(package="xlnet_tf")
class SquadHeads(keras.layers.Layer):
    """The three SQuAD heads (start, end, answer_class) as one layer; see the module
    docstring for the exact computation.  Weights are created in ``build`` (float32 master
    copies, cast to the compute dtype at use)."""

    def __init__(self, d_model, dropout=0.1, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.d_model = int(d_model)
        self.dropout_rate = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.end_layer_norm = LayerNorm(name="end_logits_LayerNorm", dtype=self.dtype_policy)
        self.cls_dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        d, init = self.d_model, self.kernel_initializer

        def weight(name, shape, bias=False):
            return self.add_weight(name=name, shape=shape, autocast=False,
                                   initializer="zeros" if bias else init)

        self.start_kernel = weight("start_logits_dense_kernel", (d, 1))
        self.start_bias = weight("start_logits_dense_bias", (1,), bias=True)
        self.end_kernel_0 = weight("end_logits_dense_0_kernel", (2 * d, d))
        self.end_bias_0 = weight("end_logits_dense_0_bias", (d,), bias=True)
        self.end_layer_norm.build((d,))
        self.end_kernel_1 = weight("end_logits_dense_1_kernel", (d, 1))
        self.end_bias_1 = weight("end_logits_dense_1_bias", (1,), bias=True)
        self.cls_kernel_0 = weight("answer_class_dense_0_kernel", (2 * d, d))
        self.cls_bias_0 = weight("answer_class_dense_0_bias", (d,), bias=True)
        self.cls_kernel_1 = weight("answer_class_dense_1_kernel", (d, 1))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "dropout": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}

    def original_name_map(self):
        return {
            "start_logits/dense/kernel": self.start_kernel,
            "start_logits/dense/bias": self.start_bias,
            "end_logits/dense_0/kernel": self.end_kernel_0,
            "end_logits/dense_0/bias": self.end_bias_0,
            "end_logits/LayerNorm/gamma": self.end_layer_norm.gamma,
            "end_logits/LayerNorm/beta": self.end_layer_norm.beta,
            "end_logits/dense_1/kernel": self.end_kernel_1,
            "end_logits/dense_1/bias": self.end_bias_1,
            "answer_class/dense_0/kernel": self.cls_kernel_0,
            "answer_class/dense_0/bias": self.cls_bias_0,
            "answer_class/dense_1/kernel": self.cls_kernel_1,
        }

    def _w(self, var):
        return tf.cast(var, self.compute_dtype)

    # ---------------------------------------------------------------- start
    def start_logits(self, hidden, p_mask):
        """Masked start logits, float32 ``[B, T]``."""
        logits = tf.einsum("btd,do->bto", hidden, self._w(self.start_kernel))  # [B, T, 1]
        logits = logits[..., 0] + self._w(self.start_bias)                    # [B, T]
        return mask_logits(logits, p_mask)                                    # [B, T]

    # ---------------------------------------------------------------- end
    def _end_token_part(self, hidden):
        """``hidden @ W0[:d] + b0``: the token half of end_logits/dense_0, [B, T, d]."""
        w_token = self._w(self.end_kernel_0)[:self.d_model]                   # [d, d]
        return tf.einsum("btd,de->bte", hidden, w_token) + self._w(self.end_bias_0)

    def _end_from_pre_activation(self, pre):
        """tanh -> LayerNorm -> dense_1 on ``pre [..., d]`` -> raw end logits ``[...]``."""
        x = self.end_layer_norm(tf.tanh(pre))                                 # [..., d]
        logits = tf.einsum("...d,do->...o", x, self._w(self.end_kernel_1))    # [..., 1]
        return logits[..., 0] + self._w(self.end_bias_1)                      # [...]

    def end_logits_given_start(self, hidden, start_features, p_mask):
        """Teacher forcing: ``start_features [B, d]`` (gold start states) -> masked end
        logits float32 ``[B, T]``."""
        w_start = self._w(self.end_kernel_0)[self.d_model:]                   # [d, d]
        start_part = tf.einsum("bd,de->be", start_features, w_start)          # [B, d]
        pre = self._end_token_part(hidden) + start_part[:, None, :]          # [B, T, d]
        return mask_logits(self._end_from_pre_activation(pre), p_mask)        # [B, T]

    def end_logits_beam(self, hidden, start_features, p_mask):
        """Beam: ``start_features [B, k, d]`` (one per top start) -> masked end logits
        float32 ``[B, k, T]``."""
        w_start = self._w(self.end_kernel_0)[self.d_model:]                   # [d, d]
        start_part = tf.einsum("bkd,de->bke", start_features, w_start)        # [B, k, d]
        pre = self._end_token_part(hidden)[:, None] + start_part[:, :, None]  # [B, k, T, d]
        logits = self._end_from_pre_activation(pre)                           # [B, k, T]
        return mask_logits(logits, p_mask[:, None, :])                        # [B, k, T]

    # ---------------------------------------------------------------- answer_class
    def answer_class_logits(self, hidden, start_logits_masked, cls_index, training=False):
        """``cls_logits`` float32 ``[B]`` from the expected start state and the ``<cls>``
        state (start first)."""
        start_p = tf.nn.softmax(start_logits_masked, axis=-1)                 # [B, T] f32
        start_feature = tf.einsum("bt,btd->bd", tf.cast(start_p, hidden.dtype),
                                  hidden)                                     # [B, d]
        cls_feature = tf.gather(hidden, tf.cast(cls_index, tf.int32),
                                batch_dims=1)                                 # [B, d]
        w0 = self._w(self.cls_kernel_0)                                       # [2d, d]
        d = self.d_model
        x = tf.tanh(tf.matmul(start_feature, w0[:d]) + tf.matmul(cls_feature, w0[d:])
                    + self._w(self.cls_bias_0))                              # [B, d]
        x = self.cls_dropout(x, training=training)
        logits = tf.matmul(x, self._w(self.cls_kernel_1))                     # [B, 1]
        return tf.cast(logits[:, 0], tf.float32)                              # [B]


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetSquadModel(keras.Model):
    """XLNet backbone + SQuAD heads.

    Args:
      config: ``XLNetConfig`` (or its dict); fine-tuning options are forced (module
        docstring); ``dropout`` also drives the answer_class dropout.
      start_n_top, end_n_top: beam sizes of the inference outputs (the original's 5 and 5).

    Call: ``model(inputs, training)`` with a dict holding ``input_ids [B, T]`` int,
    ``seg_ids [B, T]`` int, ``input_mask [B, T]`` float 1 = padding,
    ``p_mask [B, T]`` float 1 = not an answer boundary, ``cls_index [B]`` int and optionally
    ``start_positions [B]`` (other keys are ignored).  Returns float32 tensors:

    * always: ``start_logits [B, T]`` (masked), ``start_log_probs [B, T]``,
      ``cls_logits [B]``;
    * with ``start_positions`` (teacher forcing): ``end_logits [B, T]`` (masked),
      ``end_log_probs [B, T]``;
    * without (beam): ``start_top_log_probs``, ``start_top_index`` ``[B, start_n_top]``,
      ``end_top_log_probs``, ``end_top_index`` ``[B, start_n_top * end_n_top]``.
    """

    def __init__(self, config, start_n_top=5, end_n_top=5, **kwargs):
        kwargs.setdefault("name", "xlnet_squad")
        super().__init__(**kwargs)
        config = finetune_config(config)
        self.xlnet_config = config
        self.start_n_top, self.end_n_top = int(start_n_top), int(end_n_top)
        if self.start_n_top < 1 or self.end_n_top < 1:
            raise ValueError(f"start_n_top ({start_n_top}) and end_n_top ({end_n_top}) must "
                             f"be >= 1")
        dtype = self.dtype_policy
        self.transformer = XLNetModel(config, name="transformer", dtype=dtype)
        # mask_emb only feeds the pretraining query stream (see xlnet_tf.classification.model)
        self.transformer.mask_emb.trainable = False
        self.heads = SquadHeads(config.d_model, config.dropout, initializer(config),
                                name="squad_heads", dtype=dtype)
        self.heads.build()
        self.built = True

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "start_n_top": self.start_n_top, "end_n_top": self.end_n_top,
                "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    def original_name_map(self):
        """{original TF1 name: variable}: ``model/transformer/...`` + top-level heads."""
        names = self.transformer.original_name_map(include_mask_emb=False)
        names.update(self.heads.original_name_map())
        return names

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict):
            raise TypeError(f"XLNetSquadModel takes a dict of inputs, got "
                            f"{type(inputs).__name__}")
        missing = [k for k in ("input_ids", "seg_ids", "p_mask", "cls_index")
                   if k not in inputs]
        if missing:
            raise ValueError(f"XLNetSquadModel inputs lack {missing}; it needs input_ids, "
                             f"seg_ids, input_mask, p_mask and cls_index")
        feats = {"input_ids": inputs["input_ids"], "seg_ids": inputs["seg_ids"]}
        if inputs.get("input_mask") is not None:
            feats["input_mask"] = inputs["input_mask"]
        hidden = self.transformer(feats, training=training)["hidden"]        # [B, T, d]
        p_mask = tf.cast(inputs["p_mask"], tf.float32)                        # [B, T]
        heads = self.heads

        start_logits = heads.start_logits(hidden, p_mask)                     # [B, T]
        start_log_probs = tf.nn.log_softmax(start_logits, axis=-1)            # [B, T]
        out = {"start_logits": start_logits, "start_log_probs": start_log_probs}
        start_positions = inputs.get("start_positions")
        if start_positions is not None:
            start_features = tf.gather(hidden, tf.cast(start_positions, tf.int32),
                                       batch_dims=1)                          # [B, d]
            end_logits = heads.end_logits_given_start(hidden, start_features, p_mask)
            out["end_logits"] = end_logits                                    # [B, T]
            out["end_log_probs"] = tf.nn.log_softmax(end_logits, axis=-1)     # [B, T]
        else:
            k, k_end = self.start_n_top, self.end_n_top
            start_top_log_probs, start_top_index = tf.math.top_k(start_log_probs, k)  # [B, k]
            start_features = tf.gather(hidden, start_top_index, batch_dims=1)  # [B, k, d]
            end_logits = heads.end_logits_beam(hidden, start_features, p_mask)  # [B, k, T]
            end_log_probs = tf.nn.log_softmax(end_logits, axis=-1)            # [B, k, T]
            end_top_log_probs, end_top_index = tf.math.top_k(end_log_probs, k_end)  # [B,k,k']
            out["start_top_log_probs"] = start_top_log_probs
            out["start_top_index"] = start_top_index
            out["end_top_log_probs"] = tf.reshape(end_top_log_probs, [-1, k * k_end])
            out["end_top_index"] = tf.reshape(end_top_index, [-1, k * k_end])
        out["cls_logits"] = heads.answer_class_logits(
            hidden, start_logits, inputs["cls_index"], training=training)     # [B]
        return out
