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

from xlnet_tf.classification.model import MODEL_INPUT_KEYS, XLNetClassifier

HEAD_SCOPE = "logits/dense"


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetMultipleChoice(XLNetClassifier):
    """XLNet backbone + sequence summary + one score per option: the classifier's stack
    with a one-unit logit layer, run on the ``B*C`` option sequences and named as the
    original's RACE head.

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
        # one score per sequence: the classifier's one-output (regression-shaped) logit
        super().__init__(config, n_class=1, task_name="race", is_regression=True,
                         summary_type=summary_type, use_summ_proj=use_summ_proj, **kwargs)

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "summary_type": self.summary_type, "use_summ_proj": self.use_summ_proj,
                "dtype": self.dtype_policy.name}

    def original_name_map(self):
        """{original TF1 name: variable} (see module docstring)."""
        names = {n: v for n, v in super().original_name_map().items()
                 if not n.startswith(f"model/{self.head_scope}/")}
        names[f"{HEAD_SCOPE}/kernel"] = self.logit.kernel
        names[f"{HEAD_SCOPE}/bias"] = self.logit.bias
        return names

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or "input_ids" not in inputs:
            return super().call(inputs, training=training)     # the classifier's error
        shape = tf.shape(inputs["input_ids"])                                # [B, C, T]
        flat = {k: tf.reshape(inputs[k], [-1, shape[2]]) for k in MODEL_INPUT_KEYS
                if inputs.get(k) is not None}                                # [B*C, T]
        scores = super().call(flat, training=training)["logits"]            # [B*C, 1]
        return {"logits": tf.reshape(scores, shape[:2])}                     # [B, C]
