"""The tagger's SavedModel for TensorFlow Serving: sentences in, one tag per word out.

Signatures (method name ``tensorflow/serving/predict``):

* ``serving_default``: ``text`` string ``[B]``, one sentence each, split into words at
  whitespace in-graph.  Each word is tokenized in-graph exactly as training tokenized it
  and labelled on the same piece (``xlnet_tf.token_classification.alignment``: a word
  without piece reads as ``<unk>``, a leading lone ``▁`` is skipped), the pieces are packed
  as in training (``<sep> <cls>`` at the end, left padding).  A sentence longer than
  ``max_seq_length - 2`` pieces is read in every window run_ner.py reads (one every
  ``doc_stride`` pieces, the last ending at the sentence's end; all windows of the batch go
  through the model as one batch) and each word is predicted from the window where its
  label piece has the most context (``xlnet_tf.token_classification.features``), so the
  answer is --do_predict's.  Outputs: ``tags`` string ``[B, W]`` (W = the most words in
  the batch; "" past a sentence's end), ``scores`` float32 ``[B, W]`` (the probability of
  the tag), ``num_words`` int32 ``[B]``.
* ``predict_words``: the same from ``words`` string ``[B, W]`` (padded with "").
* ``predict_ids``: packed ``input_ids`` int32 ``[B, T]``, ``seg_ids`` int32 ``[B, T]``,
  ``input_mask`` float32 ``[B, T]`` (1 = padding) -> ``logits`` float32 ``[B, T, C]`` and
  ``probabilities``.
* ``encode``: ``text`` string ``[B]`` -> the fine-tuned backbone's states of the text packed
  as one segment (``xlnet_tf.serving.encode``).

A tagger trained with a document context (run_ner.py --doc_context_len) is exported too,
but the export reads every sentence WITHOUT context (as the first sentence of a document
is read in training); ``export_info.json`` says so (``doc_context_len``, ``context``).
"""
import functools

import keras
import tensorflow as tf

from xlnet_tf.classification.features import pack_ids_tf
from xlnet_tf.serving import EXPORT_INFO_NAME, SPIECE_ASSET_NAME, check_export_dir, write_archive
from xlnet_tf.serving.encode import add_text_encode_endpoint
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


def window_layout(n_pieces, T, stride):
    """In-graph ``features.window_starts`` of sentences of ``n_pieces`` int64 ``[B]``:
    (sentence of each window int64 ``[NW]``, its first piece ``[NW]``, its length ``[NW]``,
    index of each sentence's first window ``[B]``, windows per sentence ``[B]``)."""
    budget = tf.constant(T - 2, tf.int64)
    extra = tf.maximum(n_pieces - budget, 0)                                 # [B]
    count = 1 + (extra + stride - 1) // stride                               # [B]
    k = tf.ragged.range(count)                                               # [B, (k)]
    row = k.value_rowids()                                                   # [NW]
    start = tf.minimum(k.flat_values * stride, tf.gather(extra, row))        # [NW]
    length = tf.minimum(budget, tf.gather(n_pieces, row) - start)            # [NW]
    return row, start, length, tf.cumsum(count, exclusive=True), count


def window_pieces(sentence_ids, T, stride):
    """The piece ids of every window of ``sentence_ids`` ragged ``[B, (P)]``: ragged
    ``[NW, (p)]``, the windows of sentence 0 first."""
    row, start, length, _, _ = window_layout(sentence_ids.row_lengths(), T, stride)
    begin = tf.gather(sentence_ids.row_starts(), row) + start                # [NW]
    return tf.gather(sentence_ids.flat_values, tf.ragged.range(begin, begin + length))


def word_windows(sentence_ids, row_of_word, label_piece, T, stride):
    """(window index int64 ``[N]``, position of the label piece in that packed window
    ``[N]``) of each word: among the windows holding its label piece, the one where it has
    the most context on its shorter side (+ 0.01 x the window's length), the first on a
    tie - ``features.sentence_windows``' rule, in the same float64 arithmetic."""
    _, start, length, first, count = window_layout(sentence_ids.row_lengths(), T, stride)
    j = tf.ragged.range(tf.gather(count, row_of_word))                       # [N, (k)]
    g = j.flat_values + tf.gather(tf.gather(first, row_of_word), j.value_rowids())
    s, n = tf.gather(start, g), tf.gather(length, g)                         # [N*k]
    p = tf.gather(label_piece, j.value_rowids())                             # [N*k]
    end = s + n - 1
    f64 = functools.partial(tf.cast, dtype=tf.float64)
    score = f64(tf.minimum(p - s, end - p)) + 0.01 * f64(n) - 1e-9 * f64(j.flat_values)
    score = tf.where((s <= p) & (p <= end), score, -float("inf"))           # [N*k]
    dense = j.with_flat_values(score).to_tensor(-float("inf"))              # [N, K]
    # a last column that never wins keeps the reduction defined for a batch without words
    dense = tf.concat([dense, tf.fill([tf.shape(dense)[0], 1],
                                      tf.constant(-float("inf"), tf.float64))], axis=1)
    best = tf.argmax(dense, axis=1)                                          # [N]
    window = tf.gather(first, row_of_word) + best                           # [N]
    n_pad = T - 2 - tf.gather(length, window)
    return window, n_pad + label_piece - tf.gather(start, window)


def without_context_note(context_len):
    """What the export of a tagger trained with a document context does without it."""
    return (f"the tagger was trained with --doc_context_len={context_len}; the SavedModel "
            f"reads every sentence without document context (as the first sentence of a "
            f"document is read in training)")


def build_tagger_archive(model, spiece_model, *, max_seq_length, tag_list, doc_stride=None,
                         uncased=False):
    """A ``keras.export.ExportArchive`` with the endpoints of the module docstring
    (``doc_stride``: between the windows of a long sentence, default ``max_seq_length - 2``)."""
    T = int(max_seq_length)
    stride = int(doc_stride or T - 2)
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
        window, position = word_windows(sentence_ids, words.value_rowids(), label_piece,
                                        T, stride)                            # [N] x 2
        window_ids = window_pieces(sentence_ids, T, stride)                   # [NW, (p)]
        input_ids, input_mask, seg_ids = pack_ids_tf(window_ids, None, T)     # [NW, T] x 3
        logits = run_ids(input_ids, seg_ids, input_mask)                      # [NW, T, C]
        probs = tf.nn.softmax(tf.gather_nd(logits, tf.stack([window, position], 1)))  # [N, C]
        best = tf.argmax(probs, axis=-1, output_type=tf.int32)               # [N]
        tags = tf.gather(tag_names, best)                                     # [N]
        scores = tf.reduce_max(probs, axis=-1)                                # [N]
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
    return add_text_encode_endpoint(archive, model.transformer, tokenizer, sequence_length=T,
                                    uncased=uncased)


def export_tagger(model, export_dir, spiece_model, *, max_seq_length, tag_list,
                  doc_stride=None, tag_scheme=None, uncased=False, doc_context_len=0,
                  version=None):
    """Write ``export_dir/<version>/`` (a SavedModel TF Serving can load); returns its path."""
    with open(spiece_model, "rb") as f:
        spm_bytes = f.read()
    version = check_export_dir(export_dir, version)
    doc_stride = int(doc_stride or max_seq_length - 2)
    archive = build_tagger_archive(model, spm_bytes, max_seq_length=max_seq_length,
                                   tag_list=tag_list, doc_stride=doc_stride, uncased=uncased)
    info = {"task": "token_classification", "max_seq_length": int(max_seq_length),
            "doc_stride": doc_stride, "tag_list": list(tag_list), "tag_scheme": tag_scheme,
            "uncased": bool(uncased), "doc_context_len": int(doc_context_len),
            "context": without_context_note(doc_context_len) if doc_context_len else
            "none: the tagger was trained without document context",
            "inputs": ["text"], "outputs": ["tags", "scores", "num_words"],
            "xlnet_config": model.xlnet_config.checkpoint_dict()}
    return write_archive(archive, export_dir, version,
                         assets={"spiece_model": (SPIECE_ASSET_NAME, spm_bytes)},
                         extra_files={EXPORT_INFO_NAME: info})
