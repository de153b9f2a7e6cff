"""The classifier's SavedModel for TensorFlow Serving: raw text in, labels out.

Signatures (method name ``tensorflow/serving/predict``):

* ``serving_default``: raw text.  Inputs ``text_a`` (string ``[B]``) and, for tasks with
  a second text (MRPC, STS-B, MNLI, ...), ``text_b`` (string ``[B]``); any batch size.  The
  text is cleaned as the task's reader cleaned it (e.g. IMDB's ``<br />``), tokenized
  in-graph with tensorflow-text exactly as training tokenized it, packed into
  ``A <sep> [B <sep>] <cls>`` with left padding to ``max_seq_length`` (truncation as in
  training) - all by ``xlnet_tf.preprocessing.XLNetPreprocessor``, the layer training
  pipelines and ``XLNetTextClassifier`` use - and run through the model.  Outputs:
  classification ``probabilities`` float32 ``[B, C]``, ``logits`` float32 ``[B, C]`` and
  ``label`` string ``[B]`` (the arg-max's label as in the data, e.g. SST-2's ``1``) and
  ``label_name`` string ``[B]`` (its readable name, e.g. ``positive``; the label itself
  for tasks whose labels are names); regression ``score`` float32
  ``[B]`` and ``logits`` float32 ``[B, 1]``.
A classifier with ``long_doc='memory'`` is exported with ``max_seq_length`` = segments x
segment length: the text is packed to that many positions and the segments and their
memory are read in-graph (a fixed number of segments, unrolled); ``encode`` then returns
the last segment's states.

* ``predict_ids``: already-packed features ``input_ids`` int32 ``[B, T]``, ``seg_ids`` int32
  ``[B, T]``, ``input_mask`` float32 ``[B, T]`` (1 = padding); same outputs.
* ``encode``: the same text inputs as ``serving_default``; outputs the fine-tuned
  backbone's last hidden states ``token_states`` float32 ``[B, T, d]``, ``token_mask``
  float32 ``[B, T]`` (1 = a piece of the text(s); padding, ``<sep>`` and ``<cls>`` are 0)
  and ``pooled`` float32 ``[B, d]`` (the mean over the text pieces, as
  ``python -m xlnet_tf.extract_features --pooling=mean``).

The version folder is written by ``xlnet_tf.serving.write_archive`` (numbered, atomic, never
overwritten) with the SentencePiece model as an asset and ``assets.extra/export_info.json``.
"""
import functools

import tensorflow as tf

from xlnet_tf.preprocessing import XLNetPreprocessor
from xlnet_tf.classification.readers import label_names
from xlnet_tf.serving import export_with_spiece, text_and_ids_archive
from xlnet_tf.serving.encode import encode_outputs  # noqa: F401  (re-exported)


def _classifier_outputs(logits, labels, readable, is_regression):
    logits = tf.cast(logits, tf.float32)                                     # [B, C]
    if is_regression:
        return {"score": logits[:, 0], "logits": logits}                     # [B], [B, 1]
    probs = tf.nn.softmax(logits, axis=-1)                                   # [B, C]
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)                  # [B]
    return {"probabilities": probs, "logits": logits, "label": tf.gather(labels, best),
            "label_name": tf.gather(readable, best)}                         # [B] strings


def build_classifier_archive(model, spiece_model, *, max_seq_length, label_list=None,
                             is_regression=False, pair=False, uncased=False, task_name=""):
    """A ``keras.export.ExportArchive`` with the ``serving_default`` (raw text) and
    ``predict_ids`` endpoints of a classifier (see module docstring).

    Args:
      model: an ``XLNetClassifier`` (built; its weights are what gets exported).
      spiece_model: path of the SentencePiece model used for training.
      max_seq_length: T of the training features.
      label_list: label names in id order (classification).
      is_regression: one score per example.
      pair: the task has a second text (``text_b`` becomes a required input).
      uncased: lower-case text, as the ``--uncased`` training flag.
      task_name: selects the task reader's text cleanup (``xlnet_tf.tokenization.text.TASK_CLEANUPS``).
    """
    T = int(max_seq_length)
    if not is_regression and (not label_list or len(label_list) != model.n_class):
        raise ValueError(f"label_list {label_list} does not match the model's "
                         f"{model.n_class} classes")
    preprocessor = XLNetPreprocessor(spiece_model, sequence_length=T, lower=uncased,
                                     task_name=task_name, name="preprocessor")
    labels = tf.constant([str(x) for x in (label_list or [""])], tf.string)  # [C]
    readable = tf.constant(label_names(task_name, label_list) or [""], tf.string)  # [C]

    def run(input_ids, seg_ids, input_mask):
        out = model({"input_ids": input_ids, "seg_ids": seg_ids, "input_mask": input_mask},
                    training=False)
        return _classifier_outputs(out["logits"], labels, readable, is_regression)

    def features(feats):
        return feats["input_ids"], feats["input_mask"], feats["seg_ids"]      # [B, T] x 3

    def encode(input_ids, seg_ids, input_mask):
        # the states the head summarises: with long_doc='memory' the last segment's
        hidden, _ = model.backbone_states({"input_ids": input_ids, "seg_ids": seg_ids,
                                           "input_mask": input_mask}, training=False)
        t = hidden.shape[1]                                                  # T (last segment)
        return encode_outputs(hidden, input_ids[:, -t:], input_mask[:, -t:])

    if pair:
        def packed(text_a, text_b):
            return features(preprocessor((text_a, text_b)))                  # [B, T] x 3

        def serve_text(text_a, text_b):
            input_ids, input_mask, seg_ids = packed(text_a, text_b)
            return run(input_ids, seg_ids, input_mask)

        def encode_text(text_a, text_b):
            input_ids, input_mask, seg_ids = packed(text_a, text_b)
            return encode(input_ids, seg_ids, input_mask)
        text_spec = [tf.TensorSpec([None], tf.string, name="text_a"),
                     tf.TensorSpec([None], tf.string, name="text_b")]
    else:
        def serve_text(text_a):
            input_ids, input_mask, seg_ids = features(preprocessor(text_a))  # [B, T] x 3
            return run(input_ids, seg_ids, input_mask)

        def encode_text(text_a):
            input_ids, input_mask, seg_ids = features(preprocessor(text_a))  # [B, T] x 3
            return encode(input_ids, seg_ids, input_mask)
        text_spec = [tf.TensorSpec([None], tf.string, name="text_a")]

    archive = text_and_ids_archive(model, preprocessor, serve_text, text_spec, run, [None, T])
    archive.add_endpoint("encode", encode_text, input_signature=text_spec)
    return archive


def export_classifier(model, export_dir, spiece_model, *, max_seq_length, label_list=None,
                      is_regression=False, pair=False, uncased=False, task_name="",
                      version=None, info=None):
    """Write ``export_dir/<version>/`` (a SavedModel TF Serving can load); returns its path.

    ``version`` defaults to the next free number.  ``info`` (a JSON-able dict) is stored
    with the export settings in ``assets.extra/export_info.json``.
    """
    export_info = {
        "task": task_name, "max_seq_length": int(max_seq_length),
        "label_list": None if is_regression else [str(x) for x in label_list],
        "label_names": None if is_regression else label_names(task_name, label_list),
        "is_regression": bool(is_regression), "pair": bool(pair), "uncased": bool(uncased),
        "inputs": ["text_a", "text_b"] if pair else ["text_a"],
        "outputs": ["score", "logits"] if is_regression else ["probabilities", "logits",
                                                               "label", "label_name"],
        "xlnet_config": model.xlnet_config.checkpoint_dict(),
        **(info or {})}
    build = functools.partial(
        build_classifier_archive, model, max_seq_length=max_seq_length,
        label_list=label_list, is_regression=is_regression, pair=pair, uncased=uncased,
        task_name=task_name)
    return export_with_spiece(export_dir, version, spiece_model, build, export_info)
