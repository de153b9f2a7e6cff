"""Multiple choice on top of the XLNet backbone: the original's ``get_race_loss`` head.

Each of the C option sequences of a question runs through the backbone on its own (the
original reshapes ``[B, C*T]`` to ``[B*C, T]``); the sequence summary (the ``<cls>`` token,
``tanh`` projection, dropout: ``summarize_sequence``) goes through one ``Dense(1)`` whose
score is the option's logit, and the C scores of a question are compared by a softmax::

    input_ids [B, C, T] -> [B*C, T] -> hidden [B*C, T, d] -> summary [B*C, d]
                        -> logit [B*C, 1] -> logits [B, C]

:class:`XLNetMultipleChoice` names its weights as a checkpoint fine-tuned by the original
``run_race.py``: the backbone and the summary under ``model/``, the head at the TOP level::

    model/transformer/...                               backbone
    model/sequnece_summary/summary/{kernel,bias}        (sic: "sequnece")
    logits/dense/kernel [d, 1], logits/dense/bias [1]   top-level, not under model/

so ``load_original_checkpoint`` / ``--init_checkpoint`` read such a checkpoint and
``save_original_checkpoint`` writes one the original can read.
"""
import keras
import tensorflow as tf

from xlnet_tf.classification.model import MODEL_INPUT_KEYS, SequenceSummary
from xlnet_tf.finetuning import finetune_config
from xlnet_tf.modeling.layers import initializer
from xlnet_tf.modeling.model import XLNetModel, model_from_config

HEAD_SCOPE = "logits/dense"


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetMultipleChoice(keras.Model):
    """XLNet backbone + sequence summary + one score per option.

    Args:
      config: ``XLNetConfig`` (or its dict); fine-tuning run options are forced (no memory,
        no bi_data).  Its ``dropout`` / ``dropatt`` apply to the summary too.
      summary_type, use_summ_proj: as the original's flags (``last`` = the ``<cls>``
        token, the original ``run_race.py``'s setting).

    Call: ``model({"input_ids": [B, C, T] int32, "seg_ids": [B, C, T] int32,
    "input_mask": [B, C, T] float 1 = padding}, training)`` (other keys are ignored) ->
    ``{"logits": [B, C] float32}``.
    """

    def __init__(self, config, summary_type="last", use_summ_proj=True, **kwargs):
        kwargs.setdefault("name", "xlnet_multiple_choice")
        super().__init__(**kwargs)
        config = finetune_config(config)
        self.xlnet_config = config
        self.summary_type, self.use_summ_proj = summary_type, bool(use_summ_proj)
        init, dtype = initializer(config), self.dtype_policy
        self.transformer = XLNetModel(config, name="transformer", dtype=dtype)
        # the original fine-tuning graph has no mask_emb (pretraining query stream only)
        self.transformer.mask_emb.trainable = False
        self.sequence_summary = SequenceSummary(
            config.d_model, config.n_head, config.d_head, summary_type, use_summ_proj,
            config.dropout, config.dropatt, init, name="sequnece_summary", dtype=dtype)
        self.sequence_summary.build()
        self.logit = keras.layers.Dense(1, kernel_initializer=init, name="logits_dense",
                                        dtype=dtype)
        self.logit.build((None, config.d_model))
        self.built = True

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "summary_type": self.summary_type, "use_summ_proj": self.use_summ_proj,
                "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    def original_name_map(self):
        """{original TF1 name: variable} (see module docstring)."""
        names = self.transformer.original_name_map(include_mask_emb=False)
        names.update(self.sequence_summary.original_name_map())
        names[f"{HEAD_SCOPE}/kernel"] = self.logit.kernel
        names[f"{HEAD_SCOPE}/bias"] = self.logit.bias
        return names

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or "input_ids" not in inputs:
            raise ValueError(f"XLNetMultipleChoice takes a dict with keys {MODEL_INPUT_KEYS}")
        ids = inputs["input_ids"]                                            # [B, C, T]
        shape = tf.shape(ids)
        flat = {k: tf.reshape(inputs[k], [-1, shape[2]]) for k in MODEL_INPUT_KEYS
                if inputs.get(k) is not None}                                # [B*C, T]
        hidden = self.transformer(flat, training=training)["hidden"]        # [B*C, T, d]
        summary = self.sequence_summary(hidden, flat.get("input_mask"),
                                        training=training)                   # [B*C, d]
        scores = tf.cast(self.logit(summary), tf.float32)                    # [B*C, 1]
        return {"logits": tf.reshape(scores, shape[:2])}                     # [B, C]
