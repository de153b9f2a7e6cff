"""The tagger's SavedModel for TensorFlow Serving: sentences in, one tag per word out.

Signatures (method name ``tensorflow/serving/predict``):

* ``serving_default``: ``text`` string ``[B]``, one sentence each, split into words at
  whitespace in-graph.  Each word is tokenized in-graph exactly as training tokenized it
  and labelled on the same piece (``xlnet_tf.token_classification.alignment``: a word
  without piece reads as ``<unk>``, a leading lone ``▁`` is skipped), the pieces are packed
  as in training (``<sep> <cls>`` at the end, left padding).  Outputs: ``tags`` string
  ``[B, W]`` (W = the most words in the batch; "" past a sentence's end), ``scores``
  float32 ``[B, W]`` (the probability of the tag), ``num_words`` int32 ``[B]``.
  A sentence longer than ``max_seq_length - 2`` pieces is read in its first window only:
  its later words get tag ``O`` with score 0 (run_ner.py --do_predict reads every window).
* ``predict_words``: the same from ``words`` string ``[B, W]`` (padded with "").
* ``predict_ids``: packed ``input_ids`` int32 ``[B, T]``, ``seg_ids`` int32 ``[B, T]``,
  ``input_mask`` float32 ``[B, T]`` (1 = padding) -> ``logits`` float32 ``[B, T, C]`` and
  ``probabilities``.
"""
import keras
import tensorflow as tf

from xlnet_tf.classification.features import pack_ids_tf
from xlnet_tf.serving import EXPORT_INFO_NAME, SPIECE_ASSET_NAME, check_export_dir, write_archive
from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer
from xlnet_tf.tokenization.tokenizer import UNK_ID, Tokenizer
from xlnet_tf.token_classification.alignment import underline_id


def align_words_tf(tokenizer, words, lone_id):
    """In-graph ``align_words`` over a batch: ``words`` ragged string ``[B, (W)]`` ->
    (sentence ids ragged int32 ``[B, (P)]``, label piece index in its sentence int64 ``[N]``
    for the N words in row order)."""
    n_sentences = words.nrows()
    row_of_word = words.value_rowids()                                       # [N]
    ids = tokenizer(words.flat_values)                                       # [N, (p)]
    empty = tf.equal(ids.row_lengths(), 0)                                   # [N]
    unk = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.math.count_nonzero(empty)], tf.constant(UNK_ID, tf.int32)),
        tf.cast(empty, tf.int64))                                            # [N, (0|1)]
    ids = tf.concat([ids, unk], axis=1)                                      # [N, (p >= 1)]
    lengths = ids.row_lengths()                                              # [N]
    offsets = tf.ragged.range(lengths)                                       # [N, (p)]
    big = tf.constant(1 << 40, tf.int64)
    content = tf.where(tf.not_equal(ids.flat_values, lone_id), offsets.flat_values, big)
    first = tf.reduce_min(ids.with_flat_values(content), axis=1)             # [N]
    first = tf.where(first >= big, tf.zeros_like(first), first)              # all lone: 0
    per_sentence = tf.math.unsorted_segment_sum(lengths, row_of_word, n_sentences)  # [B]
    sentence_start = tf.cumsum(per_sentence, exclusive=True)                 # [B]
    word_start = tf.cumsum(lengths, exclusive=True) - tf.gather(sentence_start, row_of_word)
    sentence_ids = tf.RaggedTensor.from_row_lengths(ids.flat_values, per_sentence)  # [B, (P)]
    return sentence_ids, word_start + first


def build_tagger_archive(model, spiece_model, *, max_seq_length, tag_list, uncased=False):
    """A ``keras.export.ExportArchive`` with the endpoints of the module docstring."""
    T = int(max_seq_length)
    if len(tag_list) != model.n_tags:
        raise ValueError(f"tag_list {tag_list} does not match the model's {model.n_tags} tags")
    tokenizer = XLNetTokenizerLayer(spiece_model, lower=uncased, name="tokenizer")
    lone_id = underline_id(Tokenizer.from_serialized_proto(tokenizer.serialized_model_proto()))
    tag_names = tf.constant([str(t) for t in tag_list], tf.string)           # [C]

    def run_ids(input_ids, seg_ids, input_mask):
        logits = model({"input_ids": input_ids, "seg_ids": seg_ids, "input_mask": input_mask},
                       training=False)["logits"]                             # [B, T, C]
        return tf.cast(logits, tf.float32)

    def tag_words(words):                                                    # [B, (W)]
        sentence_ids, label_piece = align_words_tf(tokenizer, words, lone_id)
        input_ids, input_mask, seg_ids = pack_ids_tf(sentence_ids, None, T)  # [B, T] x 3
        kept = tf.minimum(sentence_ids.row_lengths(), T - 2)                 # [B]
        rows = words.value_rowids()                                          # [N]
        position = T - 2 - tf.gather(kept, rows) + label_piece               # [N]
        inside = label_piece < tf.gather(kept, rows)                         # [N]
        logits = run_ids(input_ids, seg_ids, input_mask)                     # [B, T, C]
        index = tf.stack([rows, tf.minimum(position, T - 1)], axis=1)        # [N, 2]
        probs = tf.nn.softmax(tf.gather_nd(logits, index), axis=-1)          # [N, C]
        best = tf.argmax(probs, axis=-1, output_type=tf.int32)               # [N]
        tags = tf.where(inside, tf.gather(tag_names, best), "O")             # [N]
        scores = tf.where(inside, tf.reduce_max(probs, axis=-1), 0.0)        # [N]
        return {"tags": words.with_flat_values(tags).to_tensor(""),          # [B, W]
                "scores": words.with_flat_values(scores).to_tensor(0.0),     # [B, W]
                "num_words": tf.cast(words.row_lengths(), tf.int32)}         # [B]

    def serve_text(text):
        return tag_words(tf.strings.split(text))

    def predict_words(words):
        return tag_words(tf.RaggedTensor.from_tensor(words, padding=""))

    def predict_ids(input_ids, seg_ids, input_mask):
        logits = run_ids(tf.cast(input_ids, tf.int32), tf.cast(seg_ids, tf.int32),
                         tf.cast(input_mask, tf.float32))
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    archive.add_endpoint("serving_default", serve_text,
                         input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.add_endpoint("predict_words", predict_words,
                         input_signature=[tf.TensorSpec([None, None], tf.string, name="words")])
    archive.add_endpoint("predict_ids", predict_ids, input_signature=[
        tf.TensorSpec([None, T], tf.int32, name="input_ids"),
        tf.TensorSpec([None, T], tf.int32, name="seg_ids"),
        tf.TensorSpec([None, T], tf.float32, name="input_mask")])
    return archive


def export_tagger(model, export_dir, spiece_model, *, max_seq_length, tag_list,
                  tag_scheme=None, uncased=False, version=None):
    """Write ``export_dir/<version>/`` (a SavedModel TF Serving can load); returns its path."""
    with open(spiece_model, "rb") as f:
        spm_bytes = f.read()
    version = check_export_dir(export_dir, version)
    archive = build_tagger_archive(model, spm_bytes, max_seq_length=max_seq_length,
                                   tag_list=tag_list, uncased=uncased)
    info = {"task": "token_classification", "max_seq_length": int(max_seq_length),
            "tag_list": list(tag_list), "tag_scheme": tag_scheme, "uncased": bool(uncased),
            "inputs": ["text"], "outputs": ["tags", "scores", "num_words"],
            "xlnet_config": model.xlnet_config.checkpoint_dict()}
    return write_archive(archive, export_dir, version,
                         assets={"spiece_model": (SPIECE_ASSET_NAME, spm_bytes)},
                         extra_files={EXPORT_INFO_NAME: info})
