"""The multiple-choice SavedModel for TensorFlow Serving: raw text in, the answer out.

Signatures (method name ``tensorflow/serving/predict``):

* ``serving_default``: ``article`` string ``[B]``, ``question`` string ``[B]``, ``options``
  string ``[B, C]`` (any B and C <= 26).  The QA text of every option (``_`` replaced by
  the option, else question + " " + option), the in-graph tokenization
  (``xlnet_tf.tokenization.in_graph``) and the packing (last ``max_qa_length`` QA ids, the
  article cut from its end, left padding) are exactly those of training
  (``xlnet_tf.multiple_choice.features``).  Outputs: ``probabilities`` float32 ``[B, C]``,
  ``logits`` float32 ``[B, C]``, ``answer_index`` int32 ``[B]`` and ``answer`` string
  ``[B]`` (the letter).
* ``predict_ids``: packed features ``input_ids`` int32 ``[B, C, T]``, ``seg_ids`` int32
  ``[B, C, T]``, ``input_mask`` float32 ``[B, C, T]`` (1 = padding); same outputs.
* ``encode``: ``text`` string ``[B]``; the fine-tuned backbone's states of the text packed
  as one segment (``xlnet_tf.serving.encode``).

Written by ``xlnet_tf.serving.write_archive`` (numbered version folder, atomic) with the
SentencePiece model as an asset and ``assets.extra/export_info.json``.
"""
import functools

import tensorflow as tf

from xlnet_tf.multiple_choice.features import pack_choices_tf, qa_text_tf
from xlnet_tf.multiple_choice.readers import MAX_CHOICES, letter
from xlnet_tf.serving import export_with_spiece, text_and_ids_archive
from xlnet_tf.serving.encode import add_text_encode_endpoint
from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer


def build_mc_archive(model, spiece_model, *, max_seq_length, max_qa_length, uncased=False):
    """A ``keras.export.ExportArchive`` with the two endpoints (see module docstring)."""
    T, Q = int(max_seq_length), int(max_qa_length)
    tokenizer = XLNetTokenizerLayer(spiece_model, lower=uncased, name="tokenizer")
    letters = tf.constant([letter(i) for i in range(MAX_CHOICES)])           # [26]

    def run(input_ids, seg_ids, input_mask):
        logits = model({"input_ids": input_ids, "seg_ids": seg_ids,
                        "input_mask": input_mask}, training=False)["logits"]  # [B, C]
        index = tf.argmax(logits, -1, output_type=tf.int32)                  # [B]
        return {"probabilities": tf.nn.softmax(logits, -1), "logits": logits,
                "answer_index": index, "answer": tf.gather(letters, index)}

    def serve_text(article, question, options):
        b, c = tf.shape(options)[0], tf.shape(options)[1]
        checks = [tf.debugging.assert_equal(tf.shape(article)[0], b, message=(
                      "article, question and options must hold the same number of "
                      "questions")),
                  tf.debugging.assert_equal(tf.shape(question)[0], b, message=(
                      "article, question and options must hold the same number of "
                      "questions")),
                  tf.debugging.assert_less_equal(c, MAX_CHOICES, message=(
                      f"options may hold at most {MAX_CHOICES} options per question"))]
        with tf.control_dependencies(checks):
            rows = tf.repeat(tf.range(b), c)                                 # [B*C]
            context = tf.gather(tokenizer(article), rows)                    # [B*C, (n)]
            qa = tokenizer(qa_text_tf(tf.gather(question, rows),
                                      tf.reshape(options, [-1])))            # [B*C, (m)]
            ids, mask, segs = pack_choices_tf(context, qa, T, Q)             # [B*C, T] x 3
        shape = tf.stack([b, c, T])
        return run(tf.reshape(ids, shape), tf.reshape(segs, shape), tf.reshape(mask, shape))

    text_spec = [tf.TensorSpec([None], tf.string, name="article"),
                 tf.TensorSpec([None], tf.string, name="question"),
                 tf.TensorSpec([None, None], tf.string, name="options")]
    archive = text_and_ids_archive(model, tokenizer, serve_text, text_spec, run,
                                   [None, None, T])
    return add_text_encode_endpoint(archive, model.transformer, tokenizer,
                                    sequence_length=T, uncased=uncased)


def export_multiple_choice(model, export_dir, spiece_model, *, max_seq_length, max_qa_length,
                           uncased=False, version=None, info=None):
    """Write ``export_dir/<version>/`` (default the next free number); returns its path."""
    export_info = {"task": "multiple_choice", "max_seq_length": int(max_seq_length),
                   "max_qa_length": int(max_qa_length), "uncased": bool(uncased),
                   "inputs": ["article", "question", "options"],
                   "outputs": ["probabilities", "logits", "answer_index", "answer"],
                   "xlnet_config": model.xlnet_config.checkpoint_dict(), **(info or {})}
    build = functools.partial(build_mc_archive, model, max_seq_length=max_seq_length,
                              max_qa_length=max_qa_length, uncased=uncased)
    return export_with_spiece(export_dir, version, spiece_model, build, export_info)
