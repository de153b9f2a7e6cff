"""Token classification on top of the XLNet backbone: one tag per position.

:class:`XLNetTokenClassifier` = backbone -> dropout (the model's ``dropout`` rate) ->
``logit`` Dense(n_tags) at every position.  The original has no such head; its weights
are named under ``model/`` like the original's other heads, so
``checkpoint.save_original_checkpoint`` / ``load_original_checkpoint`` handle it::

    model/transformer/...                                  backbone
    model/token_classification_{scope}/logit/{kernel,bias} kernel [d_model, n_tags]

``scope`` defaults to ``ner``.  Hugging Face ``XLNetForTokenClassification`` weights load
into it (``classifier.weight`` transposed to the kernel, ``classifier.bias``) with the
backbone, through ``--init_checkpoint`` as any Hugging Face folder.  Fine-tuning runs without memory and bidirectionally (the
classifier's fine-tuning options, ``xlnet_tf.finetuning.finetune_config``).
"""
import keras
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config
from xlnet_tf.modeling.layers import dropout, fold_seed, initializer
from xlnet_tf.modeling.model import XLNetModel, model_from_config

MODEL_INPUT_KEYS = ("input_ids", "seg_ids", "input_mask")


def head_scope(scope=None):
    return f"token_classification_{scope or 'ner'}"


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetTokenClassifier(keras.Model):
    """XLNet backbone + a per-position tag logit.

    Call: ``model({"input_ids": [B, T] int32, "seg_ids": [B, T] int32, "input_mask":
    [B, T] float 1 = padding}, training)`` (other keys are ignored) ->
    ``{"logits": [B, T, n_tags] float32}``.
    """

    def __init__(self, config, n_tags, scope=None, **kwargs):
        kwargs.setdefault("name", "xlnet_token_classifier")
        super().__init__(**kwargs)
        config = finetune_config(config)
        if int(n_tags) < 2:
            raise ValueError(f"a tagger needs at least 2 tags, got {n_tags}")
        self.xlnet_config, self.n_tags, self.scope = config, int(n_tags), scope or None
        self.head_scope = head_scope(scope)
        dtype = self.dtype_policy
        self.transformer = XLNetModel(config, name="transformer", dtype=dtype)
        # mask_emb only feeds the pretraining query stream (see XLNetClassifier)
        self.transformer.mask_emb.trainable = False
        self.logit = keras.layers.Dense(self.n_tags, kernel_initializer=initializer(config),
                                        name="logit", dtype=dtype)
        self.logit.build((None, None, config.d_model))
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "n_tags": self.n_tags, "scope": self.scope, "dtype": self.dtype_policy.name}

    @classmethod
    def from_config(cls, cfg):
        return model_from_config(cls, cfg)

    def original_name_map(self):
        head = {f"model/{self.head_scope}/logit/{k}": getattr(self.logit, k)
                for k in ("kernel", "bias")}
        return {**self.transformer.original_name_map(include_mask_emb=False), **head}

    def hf_head_names(self):
        """Hugging Face ``XLNetForTokenClassification``'s ``classifier`` (weight
        [n_tags, d_model], bias) is this head."""
        return {"classifier": f"model/{self.head_scope}/logit"}

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or "input_ids" not in inputs:
            raise ValueError(f"XLNetTokenClassifier takes a dict with keys {MODEL_INPUT_KEYS}")
        training = bool(training)
        feats = {k: inputs[k] for k in MODEL_INPUT_KEYS if inputs.get(k) is not None}
        hidden = self.transformer(feats, training=training)["hidden"]        # [B, T, d]
        seed = None
        if training and self.xlnet_config.dropout > 0:
            seed = fold_seed(tf.cast(self.seed_generator.next(), tf.int32), 0)  # [2]
        hidden = dropout(hidden, self.xlnet_config.dropout, seed, training)  # [B, T, d]
        return {"logits": tf.cast(self.logit(hidden), tf.float32)}          # [B, T, C]
