"""Keras tasks on raw strings: ``XLNetTextClassifier``.

A ``keras.Model`` made of an :class:`xlnet_tf.preprocessing.XLNetPreprocessor` (raw text ->
packed features, in the graph) and the library's
:class:`xlnet_tf.classification.XLNetClassifier` (backbone, the original's sequence summary
and logit layer), so ``fit`` / ``evaluate`` / ``predict`` take Python lists or ``tf.data``
of strings, or of string pairs ``(text_a, text_b)``, and already-packed feature dicts too::

    clf = XLNetTextClassifier.from_preset("xlnet_cased_L-12_H-768_A-12", num_classes=2)
    clf.compile(learning_rate=2e-5)           # the original's Adam/AdamW recipe
    clf.fit(["a gorgeous film", "a bore"], [1, 0], batch_size=8, epochs=3)
    logits = clf.predict(["an instant classic"])
    clf.save("sst2.keras")                    # the SentencePiece model travels inside
    clf.export("export_dir")                  # the SavedModel of run_classifier.py --export_dir

``num_classes=1`` is regression (one score, squared error).  Outputs are logits
``[B, num_classes]``; :meth:`predict_proba` gives the softmax.
"""
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from xlnet_tf.classification.model import XLNetClassifier
from xlnet_tf.preprocessing import FEATURE_KEYS, XLNetPreprocessor


@keras.saving.register_keras_serializable(package="xlnet_tf")
class XLNetTextClassifier(keras.Model):
    """Raw strings (or pairs) -> classification logits (see the module docstring).

    Args:
      classifier: an ``XLNetClassifier`` (its ``n_class`` / ``is_regression`` decide the task).
      preprocessor: an ``XLNetPreprocessor`` of the classifier's vocabulary.
      label_names: names of the labels in id order (the export's ``label`` output);
        default ``"0", "1", ...``.
    """

    def __init__(self, classifier, preprocessor, label_names=None, **kwargs):
        kwargs.setdefault("name", "xlnet_text_classifier")
        super().__init__(**kwargs)
        if isinstance(classifier, dict):
            classifier = keras.saving.deserialize_keras_object(classifier)
        if isinstance(preprocessor, dict):
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        if preprocessor.vocab_size > classifier.xlnet_config.n_token:
            raise ValueError(f"the preprocessor's SentencePiece model has "
                             f"{preprocessor.vocab_size} pieces but the model has n_token="
                             f"{classifier.xlnet_config.n_token}; use the checkpoint's "
                             f"spiece.model")
        self.classifier = classifier
        self.preprocessor = preprocessor
        n = classifier.n_class
        if label_names is None:
            label_names = [] if classifier.is_regression else [str(i) for i in range(n)]
        label_names = [str(x) for x in label_names]
        if not classifier.is_regression and len(label_names) != n:
            raise ValueError(f"label_names {label_names} must name the {n} classes")
        self.label_names = label_names
        self.built = True

    @property
    def is_regression(self):
        return self.classifier.is_regression

    @property
    def num_classes(self):
        return self.classifier.n_class

    @classmethod
    def from_preset(cls, path, num_classes=2, sequence_length=128, lower=False,
                    label_names=None, summary_type="last", use_summ_proj=True,
                    dropout=0.1, dropatt=0.1, task_name="", **kwargs):
        """A classifier on the checkpoint in folder ``path`` (any layout of
        :mod:`xlnet_tf.presets`: an original release, one of our output folders, a Hugging
        Face folder).  The backbone (and, for a run of ours fine-tuned with the same number
        of classes, the head) comes from the checkpoint; a new head starts as the original
        initialises it.

        Args:
          num_classes: labels; 1 = regression.
          sequence_length: T of the packed inputs (``--max_seq_length``).
          lower: lower-case the text (an uncased checkpoint).
          dropout, dropatt: fine-tuning dropout (the original's 0.1).
          task_name: the text clean-up of a task reader (e.g. ``imdb``), "" for none.
        """
        from xlnet_tf.presets import detect_preset, load_weights
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1 (1 = regression), got "
                             f"{num_classes!r}")
        preset = detect_preset(path, dropout=dropout, dropatt=dropatt)
        regression = int(num_classes) == 1
        classifier = XLNetClassifier(preset.config, n_class=max(int(num_classes), 2),
                                     task_name=task_name or "task", is_regression=regression,
                                     summary_type=summary_type, use_summ_proj=use_summ_proj)
        load_weights(classifier, preset)
        preprocessor = XLNetPreprocessor(preset.spiece_model, sequence_length=sequence_length,
                                         lower=lower, task_name=task_name, name="preprocessor")
        return cls(classifier, preprocessor, label_names=label_names, **kwargs)

    def features(self, inputs):
        """Packed features of raw inputs (a dict of features passes through)."""
        if isinstance(inputs, dict) and "input_ids" in inputs:
            return {k: inputs[k] for k in FEATURE_KEYS if k in inputs}
        return self.preprocessor(inputs)

    def call(self, inputs, training=False):
        return self.classifier(self.features(inputs), training=training)["logits"]  # [B, C]

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (str, bytes)) or (isinstance(inputs, (list, tuple, np.ndarray))
                                                and _is_text(inputs)):
            inputs = _to_string_tensors(inputs)
        return super().__call__(inputs, *args, **kwargs)

    # Python lists (or numpy arrays) of strings and pairs of them become string tensors,
    # which Keras' data adapters slice into batches like any array
    def fit(self, x=None, y=None, *args, **kwargs):
        return super().fit(_adapt(x), y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        return super().evaluate(_adapt(x), y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(_adapt(x), *args, **kwargs)

    def compile(self, optimizer="auto", loss="auto", metrics="auto", *, learning_rate=1e-5,
                train_steps=None, warmup_steps=0, min_lr_ratio=0.0, weight_decay=0.0,
                adam_epsilon=1e-8, clip=1.0, **kwargs):
        """``keras.Model.compile`` with the original fine-tuning defaults.

        ``optimizer="auto"``: :func:`xlnet_tf.optimizers.xlnet_optimizer` - Adam (AdamW
        with ``weight_decay > 0``), linear warm-up over ``warmup_steps``, then linear decay
        to ``learning_rate * min_lr_ratio`` at ``train_steps`` (constant when None),
        global-norm clipping at ``clip``.  ``loss="auto"``: cross-entropy on logits (squared
        error for regression); ``metrics="auto"``: accuracy (none for regression).  String
        pipelines cannot be XLA-compiled, so ``jit_compile`` defaults to False.
        """
        from xlnet_tf.optimizers import xlnet_optimizer
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = xlnet_optimizer(self.classifier, learning_rate=learning_rate,
                                        train_steps=train_steps, warmup_steps=warmup_steps,
                                        min_lr_ratio=min_lr_ratio, weight_decay=weight_decay,
                                        adam_epsilon=adam_epsilon, clip=clip)
        if isinstance(loss, str) and loss == "auto":
            loss = (keras.losses.MeanSquaredError() if self.is_regression else
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        if isinstance(metrics, str) and metrics == "auto":
            metrics = None if self.is_regression else \
                [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def predict_proba(self, x, **kwargs):
        """Softmax of :meth:`predict` (classification)."""
        if self.is_regression:
            raise ValueError("predict_proba is for classification; a regression model's "
                             "predict() gives its scores")
        logits = self.predict(x, **kwargs)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def export(self, export_dir, pair=False, version=None, info=None):
        """Write ``export_dir/<version>/``: the same TF-Serving SavedModel as
        ``run_classifier.py --export_dir`` (raw-text ``serving_default`` with ``text_a``
        and, with ``pair``, ``text_b``; ``predict_ids``; ``encode``).  Returns its path."""
        from xlnet_tf.classification.export import export_classifier
        from xlnet_tf.finetuning import check_export_dir
        version = check_export_dir(export_dir, version)
        pre = self.preprocessor
        with tempfile.TemporaryDirectory() as tmp:
            spiece = os.path.join(tmp, "spiece.model")
            with open(spiece, "wb") as f:
                f.write(pre.serialized_model_proto())
            return export_classifier(
                self.classifier, export_dir, spiece, max_seq_length=pre.sequence_length,
                label_list=None if self.is_regression else self.label_names,
                is_regression=self.is_regression, pair=bool(pair), uncased=pre.lower,
                task_name=pre.task_name, version=version, info=info)

    def get_config(self):
        return {"name": self.name,
                "classifier": keras.saving.serialize_keras_object(self.classifier),
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "label_names": list(self.label_names)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _is_text(x):
    """A Python list / numpy array of strings, or a pair of them (tensors are not)."""
    if not isinstance(x, (list, tuple, np.ndarray)):
        return False
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "USO"
    if isinstance(x, tuple) and len(x) == 2 and not all(isinstance(v, (str, bytes)) for v in x):
        return all(_is_text(v) for v in x)
    return len(x) > 0 and all(isinstance(v, (str, bytes)) for v in x)


def _adapt(x):
    if isinstance(x, (str, bytes)):
        raise ValueError("pass a list of texts (or a pair of lists), not one string")
    if isinstance(x, (list, tuple, np.ndarray)) and len(x) and _is_text(x):
        return _to_string_tensors(x)
    return x


def _to_string_tensors(x):
    if isinstance(x, tuple) and len(x) == 2 and not all(isinstance(v, (str, bytes)) for v in x):
        return tuple(tf.convert_to_tensor(list(v) if isinstance(v, np.ndarray) else v,
                                          tf.string) for v in x)
    return tf.convert_to_tensor(list(x) if isinstance(x, np.ndarray) else x, tf.string)
