"""Token classification on top of the XLNet backbone: one tag per position.

:class:`XLNetTokenClassifier` = backbone -> dropout (the model's ``dropout`` rate) ->
``logit`` Dense(n_tags) at every position.  The original has no such head; its weights
are named under ``model/`` like the original's other heads, so
``checkpoint.save_original_checkpoint`` / ``load_original_checkpoint`` handle it::

    model/transformer/...                                  backbone
    model/token_classification_{scope}/logit/{kernel,bias} kernel [d_model, n_tags]

``scope`` defaults to ``ner``.  Hugging Face ``XLNetForTokenClassification`` weights load
into it (``classifier.weight`` transposed to the kernel, ``classifier.bias``) with the
backbone, through ``--init_checkpoint`` as any Hugging Face folder.  Fine-tuning runs
bidirectionally with the classifier's fine-tuning options
(``xlnet_tf.finetuning.finetune_config``).

Document context (``context_len`` N > 0, run_ner.py's ``--doc_context_len``): the inputs
also hold ``context_ids`` / ``context_mask`` ``[B, N]``, the N pieces of the document before
the window (left padding, 1 = padding, no ``<sep> <cls>``).  The context is read first as a
segment of its own and its hidden states are the Transformer-XL memory of the window
(``xlnet_tf.modeling.model.read_segments`` with segment lengths ``(N, T)``, the backbone
keeping ``mem_len = N``; no gradient through the memory).  This equals one forward over
``[context; window]`` in which the context does not see the window and the window sees
both.  The context's pieces have segment id 0 (the window's text segment; memory counts as
segment 0 anyway), its padding is masked out of every attention, so a window without
context (the first sentence of a document, or inputs without ``context_ids``) gives the
same logits as a model without memory.  The weights and their names do not change.
"""
import keras
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config
from xlnet_tf.modeling.layers import dropout, fold_seed, initializer
from xlnet_tf.modeling.model import XLNetModel, model_from_config, read_segments

MODEL_INPUT_KEYS = ("input_ids", "seg_ids", "input_mask")
CONTEXT_KEYS = ("context_ids", "context_mask")
SEG_ID_CONTEXT, SEG_ID_CONTEXT_PAD = 0, 4     # the window's text segment; pack_ids' padding


def head_scope(scope=None):
    return f"token_classification_{scope or 'ner'}"


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetTokenClassifier(keras.Model):
    """XLNet backbone + a per-position tag logit.

    Call: ``model({"input_ids": [B, T] int32, "seg_ids": [B, T] int32, "input_mask":
    [B, T] float 1 = padding}, training)`` (other keys are ignored) ->
    ``{"logits": [B, T, n_tags] float32}``.  With ``context_len`` N > 0 the inputs may also
    hold ``context_ids`` int32 and ``context_mask`` float (1 = padding) ``[B, N]``: the
    window is then read with them as memory (module docstring).
    """

    def __init__(self, config, n_tags, scope=None, context_len=0, **kwargs):
        kwargs.setdefault("name", "xlnet_token_classifier")
        super().__init__(**kwargs)
        config = finetune_config(config)
        if int(n_tags) < 2:
            raise ValueError(f"a tagger needs at least 2 tags, got {n_tags}")
        self.xlnet_config, self.n_tags, self.scope = config, int(n_tags), scope or None
        self.head_scope = head_scope(scope)
        self.context_len = int(context_len or 0)
        if self.context_len < 0:
            raise ValueError(f"context_len must be >= 0, got {context_len}")
        dtype = self.dtype_policy
        backbone_config = config.replace(mem_len=self.context_len) if self.context_len \
            else config
        self.transformer = XLNetModel(backbone_config, name="transformer", dtype=dtype)
        # mask_emb only feeds the pretraining query stream (see XLNetClassifier)
        self.transformer.mask_emb.trainable = False
        self.logit = keras.layers.Dense(self.n_tags, kernel_initializer=initializer(config),
                                        name="logit", dtype=dtype)
        self.logit.build((None, None, config.d_model))
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True

    def get_config(self):
        return {"name": self.name, "config": self.xlnet_config.to_dict(),
                "n_tags": self.n_tags, "scope": self.scope, "context_len": self.context_len,
                "dtype": self.dtype_policy.name}

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
        if self.context_len and inputs.get("context_ids") is not None:
            hidden = self.read_with_context(feats, inputs["context_ids"],
                                            inputs["context_mask"], training)   # [B, T, d]
        else:
            hidden = self.transformer(feats, training=training)["hidden"]    # [B, T, d]
        seed = None
        if training and self.xlnet_config.dropout > 0:
            seed = fold_seed(tf.cast(self.seed_generator.next(), tf.int32), 0)  # [2]
        hidden = dropout(hidden, self.xlnet_config.dropout, seed, training)  # [B, T, d]
        return {"logits": tf.cast(self.logit(hidden), tf.float32)}          # [B, T, C]

    def read_with_context(self, feats, context_ids, context_mask, training=False):
        """The window's hidden states [B, T, d] read with the context [B, N] as memory."""
        N, T = self.context_len, feats["input_ids"].shape[1]
        if context_ids.shape[1] != N:
            raise ValueError(f"context_ids has {context_ids.shape[1]} positions; this model "
                             f"reads a context of {N}")
        context_mask = tf.cast(context_mask, tf.float32)                     # [B, N]
        batch = tf.shape(context_ids)[0]
        seg = tf.where(context_mask > 0.5, SEG_ID_CONTEXT_PAD, SEG_ID_CONTEXT)  # [B, N]
        window_mask = feats.get("input_mask")
        if window_mask is None:
            window_mask = tf.zeros([batch, T], tf.float32)
        window_seg = feats.get("seg_ids")
        if window_seg is None:
            window_seg = tf.zeros([batch, T], tf.int32)
        joined = {
            "input_ids": tf.concat([tf.cast(context_ids, tf.int32),
                                    tf.cast(feats["input_ids"], tf.int32)], 1),  # [B, N+T]
            "seg_ids": tf.concat([seg, tf.cast(window_seg, tf.int32)], 1),      # [B, N+T]
            "input_mask": tf.concat([context_mask, tf.cast(window_mask, tf.float32)], 1)}
        hidden, _ = read_segments(self.transformer, joined, (N, T), training=training)
        return hidden
