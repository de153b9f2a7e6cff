"""``XLNetPreprocessor``: raw text in, XLNet classification features out, in the graph.

One Keras layer for training input pipelines (``tf.data.Dataset.map``), for the
raw-string tasks (``xlnet_tf.tasks.XLNetTextClassifier``) and for the exported SavedModel
(``xlnet_tf.classification.export`` packs its ``serving_default`` inputs with it):

1. the task's text clean-up (e.g. IMDB's ``<br />``; none by default);
2. XLNet's text rules and SentencePiece, in-graph
   (:class:`xlnet_tf.tokenization.in_graph.XLNetTokenizerLayer`, the same ids as the Python
   ``Tokenizer.encode_ids``);
3. the original ``convert_single_example`` packing
   (:func:`xlnet_tf.classification.features.pack_ids_tf`): ``A <sep> [B <sep>] <cls>`` with
   ``<cls>`` last, left padding with id 0, segment ids A=0, B=1, CLS=2, padding 4, the
   original's pair truncation (pop from the longer side) and ``input_mask`` 1 on padding.

Call with a string tensor ``[B]`` (one segment), a pair ``(text_a, text_b)`` or a dict
``{"text_a": ..., "text_b": ...}``; a scalar string is taken as a batch of one and the
result is then unbatched, so ``dataset.map(preprocessor)`` works before or after
``batch()``.  Returns ``{"input_ids": int32 [B, T], "seg_ids": int32 [B, T],
"input_mask": float32 [B, T]}``, the inputs of every model of this package.
"""
import keras
import tensorflow as tf

from xlnet_tf.classification.features import check_max_seq_length, pack_ids_tf
from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer, spiece_model_from_config
from xlnet_tf.tokenization.text import clean_text_tf, task_cleanups

FEATURE_KEYS = ("input_ids", "seg_ids", "input_mask")


def split_text_inputs(inputs):
    """``(text_a, text_b or None)`` of a preprocessor input: a string tensor / list, a
    2-tuple or 2-list of them, or a dict with ``text_a`` (and ``text_b``)."""
    if isinstance(inputs, dict):
        unknown = sorted(set(inputs) - {"text_a", "text_b"})
        if "text_a" not in inputs or unknown:
            raise ValueError(f"XLNetPreprocessor takes a dict with keys 'text_a' and optionally "
                             f"'text_b'; got keys {sorted(inputs)}")
        return inputs["text_a"], inputs.get("text_b")
    if isinstance(inputs, (tuple, list)) and len(inputs) == 2 and not all(
            isinstance(x, (str, bytes)) for x in inputs):
        return inputs[0], inputs[1]
    return inputs, None


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetPreprocessor(keras.layers.Layer):
    """Raw strings → ``{"input_ids", "seg_ids", "input_mask"}`` (see the module docstring).

    Args:
      spiece_model: path of the checkpoint's ``spiece.model``, or its bytes (the bytes are
        stored in ``get_config``, so a saved ``.keras`` file carries the vocabulary).
      sequence_length: T, the packed length (the scripts' ``--max_seq_length``).
      lower: lower-case the text (the original ``--uncased``).
      task_name: selects the task reader's text clean-up
        (``xlnet_tf.tokenization.text.TASK_CLEANUPS``); "" for none.
    """

    def __init__(self, spiece_model, sequence_length=128, lower=False, task_name="",
                 **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.sequence_length = check_max_seq_length(sequence_length, pair=False)
        self.lower = bool(lower)
        self.task_name = str(task_name or "")
        task_cleanups(self.task_name)  # a lookup only; unknown tasks have no clean-up
        if isinstance(spiece_model, XLNetTokenizerLayer):
            self.tokenizer = spiece_model
            self.lower = spiece_model.lower
        else:
            self.tokenizer = XLNetTokenizerLayer(spiece_model, lower=self.lower,
                                                 name="tokenizer")
        self.built = True

    @classmethod
    def from_preset(cls, path, sequence_length=128, lower=False, task_name="", **kwargs):
        """The preprocessor of a preset folder (an original release, a Hugging Face folder
        or one of our output folders: :mod:`xlnet_tf.presets`): its ``spiece.model``, packed
        to ``sequence_length``."""
        from xlnet_tf.presets import spiece_of_preset
        return cls(spiece_of_preset(path), sequence_length=sequence_length, lower=lower,
                   task_name=task_name, **kwargs)

    @property
    def vocab_size(self):
        return self.tokenizer.vocab_size

    def serialized_model_proto(self):
        """The SentencePiece model's bytes."""
        return self.tokenizer.serialized_model_proto()

    def tokenize(self, texts):
        """Cleaned, tokenized ``texts`` ``[B]`` → ragged int32 ids ``[B, (n)]``."""
        return self.tokenizer(clean_text_tf(tf.convert_to_tensor(texts, tf.string),
                                            self.task_name))

    def __call__(self, inputs, *args, **kwargs):
        # Python strings and lists become string tensors first (Keras takes only tensors as
        # positional arguments)
        a, b = split_text_inputs(inputs)
        a = tf.convert_to_tensor(a, tf.string)
        inputs = a if b is None else (a, tf.convert_to_tensor(b, tf.string))
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs):
        text_a, text_b = split_text_inputs(inputs)
        text_a = tf.convert_to_tensor(text_a, tf.string)
        scalar = text_a.shape.rank == 0
        if text_a.shape.rank is not None and text_a.shape.rank > 1:
            text_a = tf.reshape(text_a, [-1]) if text_a.shape[-1] == 1 else text_a
        if scalar:
            text_a = text_a[None]
        if text_b is not None:
            text_b = tf.convert_to_tensor(text_b, tf.string)
            if scalar:
                text_b = tf.reshape(text_b, [1])
            elif text_b.shape.rank is not None and text_b.shape.rank > 1 \
                    and text_b.shape[-1] == 1:
                text_b = tf.reshape(text_b, [-1])
            check = tf.debugging.assert_equal(
                tf.shape(text_a)[0], tf.shape(text_b)[0],
                message="text_a and text_b must hold the same number of texts")
            with tf.control_dependencies([check]):
                ids_b = self.tokenize(text_b)                                 # [B, (m)]
        else:
            ids_b = None
        ids_a = self.tokenize(text_a)                                         # [B, (n)]
        if ids_b is not None:
            check_max_seq_length(self.sequence_length, pair=True)
        input_ids, input_mask, seg_ids = pack_ids_tf(ids_a, ids_b,
                                                     self.sequence_length)    # [B, T] x 3
        out = {"input_ids": input_ids, "seg_ids": seg_ids, "input_mask": input_mask}
        if scalar:
            out = {k: v[0] for k, v in out.items()}                           # [T]
        return out

    def get_config(self):
        config = super().get_config()
        tok = self.tokenizer.get_config()
        config.update({"spiece_model": None, "spiece_model_b64": tok["spiece_model_b64"],
                       "sequence_length": self.sequence_length, "lower": self.lower,
                       "task_name": self.task_name})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**spiece_model_from_config(config))
