"""SavedModel export of a SQuAD model: raw ``question`` and ``context`` strings in, the best
answer text, its score and the null score out - the whole Python prediction pipeline
(preprocessing, windows, beam heads, post-processing) as TensorFlow ops.

Signatures (TF Serving ``predict`` method), written by :func:`export_squad` through the
shared versioned writer :func:`xlnet_tf.serving.saved_model.write_archive`:

* ``serving_default``: inputs ``question`` and ``context`` (string ``[B]``, any batch size);
  outputs ``answer`` (string ``[B]``: the best non-null span, cut from the RAW context and
  stripped; ``""`` when no span is valid), ``answer_start`` (int32 ``[B]``: its character
  offset in the context, -1 for ``""``), ``score`` (float32 ``[B]``: ``start_log_prob +
  end_log_prob`` of that span, -2e6 when there is none) and ``null_score`` (float32 ``[B]``:
  the minimum ``cls_logits`` over the context's windows, what ``null_odds.json`` holds; the
  caller applies its own threshold, e.g. the ``best_f1_thresh`` of an evaluation, to decide
  "no answer").
* ``predict_features``: already-built features ``input_ids``, ``segment_ids`` int32 ``[B, T]``
  (the records' name; the model calls it ``seg_ids``),
  ``input_mask``, ``p_mask`` float32 ``[B, T]``, ``cls_index`` int32 ``[B]`` -> the raw beam
  outputs (``start_top_log_probs``, ``start_top_index``, ``end_top_log_probs``,
  ``end_top_index``, ``cls_logits``), as the Python pipeline gets them.
* ``encode``: ``text`` string ``[B]``; the fine-tuned backbone's states of the text packed
  as one segment (``xlnet_tf.serving.encode``).

How the context is handled in-graph (the same result as the Python pipeline:
:mod:`xlnet_tf.squad.features` + :mod:`xlnet_tf.squad.postprocess`): steps 1-4, the piece ids
and their raw-character maps, are :class:`xlnet_tf.squad.serving_align.ContextAligner`'s
(see that module); then

5. **Windows.**  ``P <sep> Q <sep> <cls>`` windows of ``max_seq_length`` with
   ``doc_stride``, ``p_mask``, segment ids and the max-context rule, all windows of the
   batch in one model call.
6. **Post-processing.**  Per example the best candidate of the ``start_n_top x end_n_top``
   beam over all its windows under the Python rules (start/end ``< paragraph_len - 1``,
   start token has max context, ``end >= start``, length ``<= max_answer_length``), ties
   going to the earlier (window, start, end) as the Python stable sort does; the text is
   ``context[tok_start_to_orig[s] : tok_end_to_orig[e] + 1].strip()``.

An empty context gives one window with no paragraph: ``answer`` ``""`` and the model's null
score (the Python pipeline skips such a question, and drops a context whose characters do
not align with its pieces - "MISMATCH DETECTED"; the export answers it anyway).

Loading the SavedModel needs the tensorflow-text ops registered (``import tensorflow_text``
first; see README.md, "Export for TensorFlow Serving" for TF Serving).
"""
import keras
import tensorflow as tf

from xlnet_tf.serving.encode import add_text_encode_endpoint
from xlnet_tf.squad.serving_align import WS_CLASS, ContextAligner
from xlnet_tf.tokenization import tokenizer as tok_lib
from xlnet_tf.tokenization.in_graph import XLNetTokenizerLayer, _read_model_proto

_STRIP = f"^{WS_CLASS}+|{WS_CLASS}+$"
_LSTRIP = f"^{WS_CLASS}+"
NO_ANSWER_SCORE = -2e6   # the Python n-best's empty entry: start and end log probs -1e6


# ============================================================================ windows
def build_windows(para_ids, query_ids, max_seq_length, doc_stride):
    """All windows of a batch (module docstring, step 5).

    Args:
      para_ids: ragged int32 ``[B, (n)]``; query_ids: ragged int32 ``[B, (q)]`` (already
        truncated to max_query_length, ``q <= max_seq_length - 4``).
    Returns:
      dict of ``input_ids``/``seg_ids`` int32 ``[F, T]``, ``input_mask``/``p_mask``
      float32 ``[F, T]``, ``cls_index``/``example``/``doc_start``/``paragraph_len``/``span``
      int32 ``[F]`` and ``is_max_context`` bool ``[F, T]`` (F = windows of all examples).
    """
    T = int(max_seq_length)
    n = tf.cast(para_ids.row_lengths(), tf.int32)                             # [B]
    q = tf.cast(query_ids.row_lengths(), tf.int32)                            # [B]
    room = T - q - 3                                                          # [B]
    step = tf.minimum(room, doc_stride)                                       # [B]
    extra = tf.maximum(n - room, 0)
    num = 1 + (extra + step - 1) // step                                      # [B]
    example = tf.repeat(tf.range(tf.size(n)), num)                            # [F]
    span = tf.ragged.range(num).flat_values                                   # [F]
    step_f, room_f = tf.gather(step, example), tf.gather(room, example)
    n_f, q_f = tf.gather(n, example), tf.gather(q, example)
    doc_start = span * step_f                                                 # [F]
    length = tf.minimum(n_f - doc_start, room_f)                              # [F]
    cls_index = length + q_f + 2                                              # [F]

    j = tf.range(T)[None, :]                                                  # [1, T]
    length2, q2, cls2 = length[:, None], q_f[:, None], cls_index[:, None]
    p_row = tf.gather(tf.cast(para_ids.row_starts(), tf.int32), example)[:, None]
    q_row = tf.gather(tf.cast(query_ids.row_starts(), tf.int32), example)[:, None]
    p_vals = tf.concat([para_ids.flat_values, [0]], 0)
    q_vals = tf.concat([query_ids.flat_values, [0]], 0)
    p_last = tf.size(p_vals) - 1
    q_last = tf.size(q_vals) - 1
    in_p = j < length2                                                        # [F, T]
    in_q = (j > length2) & (j <= length2 + q2)
    p_tok = tf.gather(p_vals, tf.where(in_p, p_row + doc_start[:, None] + j, p_last))
    q_tok = tf.gather(q_vals, tf.where(in_q, q_row + j - length2 - 1, q_last))
    is_sep = (j == length2) | (j == length2 + q2 + 1)
    input_ids = tf.where(in_p, p_tok, tf.where(in_q, q_tok, tf.where(
        is_sep, tok_lib.SEP_ID, tf.where(j == cls2, tok_lib.CLS_ID, 0))))    # [F, T]
    seg_ids = tf.where(j <= length2, tok_lib.SQUAD_SEG_ID_P, tf.where(
        j <= length2 + q2 + 1, tok_lib.SQUAD_SEG_ID_Q, tf.where(
            j == cls2, tok_lib.SQUAD_SEG_ID_CLS, tok_lib.SQUAD_SEG_ID_PAD)))  # [F, T]
    input_mask = tf.cast(j > cls2, tf.float32)                                # [F, T]
    p_mask = tf.cast(~in_p & (j != cls2), tf.float32)                         # [F, T]

    # max context: the span giving token t the largest min(left, right) + 0.01 * length
    spans = tf.RaggedTensor.from_value_rowids(
        tf.stack([doc_start, length], -1), example, nrows=tf.size(n))         # [B, (K), 2]
    # one extra empty span (-1, -1) at the end: an empty batch has K = 0 spans, and argmax
    # over an empty axis fails; the extra span is never inside, so no token chooses it
    spans = tf.pad(spans.to_tensor(default_value=-1), [[0, 0], [0, 1], [0, 0]],
                   constant_values=-1)                                        # [B, K+1, 2]
    g = tf.gather(spans, example)                                             # [F, K+1, 2]
    g_start, g_len = g[:, None, :, 0], g[:, None, :, 1]                       # [F, 1, K+1]
    t = (doc_start[:, None] + tf.range(T)[None, :])[:, :, None]               # [F, T, 1]
    g_end = g_start + g_len - 1
    inside = (g_len > 0) & (t >= g_start) & (t <= g_end)                      # [F, T, K+1]
    score = tf.cast(tf.minimum(t - g_start, g_end - t), tf.float32) + 0.01 * tf.cast(
        g_len, tf.float32)
    score = tf.where(inside, score, -1.0)                                     # [F, T, K+1]
    owner = tf.argmax(score, axis=-1, output_type=tf.int32)                   # [F, T]
    is_max = (owner == span[:, None]) & in_p                                  # [F, T]
    return {"input_ids": input_ids, "seg_ids": seg_ids, "input_mask": input_mask,
            "p_mask": p_mask, "cls_index": cls_index, "example": example,
            "doc_start": doc_start, "paragraph_len": length, "span": span,
            "is_max_context": is_max}


def best_answers(outputs, windows, contexts, tok_start, tok_end, num_examples,
                 max_answer_length, keep_paragraph_len_off_by_one=True):
    """The Python post-processing's top answer per example (module docstring, step 6).

    Args:
      outputs: the model's beam outputs for the windows ``[F, ...]``.
      windows: :func:`build_windows`' dict.
      contexts: raw strings ``[B]``; tok_start / tok_end: ragged ``[B, (n)]`` raw indices.
    Returns:
      (answer string [B], answer_start int32 [B], score float32 [B], null_score float32 [B]).
    """
    k = outputs["start_top_index"].shape[-1]
    kk = outputs["end_top_index"].shape[-1]
    k_end = kk // k
    example = windows["example"]                                              # [F]
    s = tf.repeat(outputs["start_top_index"], k_end, axis=1)                  # [F, kk]
    e = outputs["end_top_index"]                                              # [F, kk]
    score = tf.cast(tf.repeat(outputs["start_top_log_probs"], k_end, axis=1), tf.float64) \
        + tf.cast(outputs["end_top_log_probs"], tf.float64)                   # [F, kk]
    limit = windows["paragraph_len"][:, None] - (1 if keep_paragraph_len_off_by_one else 0)
    T = windows["is_max_context"].shape[-1]
    start_max = tf.gather(windows["is_max_context"], tf.clip_by_value(s, 0, T - 1),
                          batch_dims=1)                                       # [F, kk]
    valid = (s >= 0) & (e >= 0) & (s < limit) & (e < limit) & start_max & (e >= s) & (
        e - s + 1 <= max_answer_length)
    score = tf.where(valid, score, tf.constant(-float("inf"), tf.float64))   # [F, kk]

    per_example = tf.RaggedTensor.from_value_rowids(
        tf.reshape(score, [-1]), tf.repeat(example, kk), nrows=num_examples)  # [B, (F_b*kk)]
    # one -inf column more: an empty batch (no windows) must not take argmax of nothing
    dense = tf.pad(per_example.to_tensor(default_value=-float("inf")), [[0, 0], [0, 1]],
                   constant_values=-float("inf"))                             # [B, Fb*kk+1]
    best = tf.argmax(dense, axis=-1, output_type=tf.int32)                    # [B] first max
    best_score = tf.reduce_max(dense, axis=-1)                                # [B]
    has = best_score > -float("inf")
    first_feature = tf.cast(per_example.row_starts(), tf.int32) // kk         # [B]
    f = first_feature + best // kk                                            # [B]
    c = best % kk
    f = tf.minimum(f, tf.shape(example)[0] - 1)
    s_best = tf.gather_nd(s, tf.stack([f, c], -1))                            # [B]
    e_best = tf.gather_nd(e, tf.stack([f, c], -1))
    doc_start = tf.gather(windows["doc_start"], f)
    pos_s = tf.cast(tok_start.row_starts(), tf.int32) + doc_start + s_best
    pos_e = tf.cast(tok_end.row_starts(), tf.int32) + doc_start + e_best
    starts = tf.concat([tok_start.flat_values, [0]], 0)
    ends = tf.concat([tok_end.flat_values, [0]], 0)
    last = tf.size(starts) - 1
    raw_s = tf.gather(starts, tf.where(has, pos_s, last))
    raw_e = tf.gather(ends, tf.where(has, pos_e, last))
    raw_len = tf.maximum(raw_e - raw_s + 1, 0)
    cut = tf.strings.substr(contexts, raw_s, raw_len, unit="UTF8_CHAR")       # [B]
    answer = tf.strings.regex_replace(cut, _STRIP, "")
    lead = tf.strings.length(cut, unit="UTF8_CHAR") - tf.strings.length(
        tf.strings.regex_replace(cut, _LSTRIP, ""), unit="UTF8_CHAR")
    answer = tf.where(has, answer, "")
    answer_start = tf.where(has & (tf.strings.length(answer) > 0), raw_s + lead, -1)
    score_out = tf.cast(tf.where(has, best_score, NO_ANSWER_SCORE), tf.float32)
    null = tf.math.unsorted_segment_min(tf.cast(outputs["cls_logits"], tf.float32), example,
                                        num_examples)
    null = tf.minimum(null, 1e6)   # the Python starting value (also for an empty batch row)
    return answer, answer_start, score_out, null


# ============================================================================ export
def build_squad_archive(model, spiece_model, *, max_seq_length, doc_stride, max_query_length,
                        max_answer_length, uncased=False):
    """A ``keras.export.ExportArchive`` with ``serving_default`` (question + context text)
    and ``predict_features`` (module docstring)."""
    T = int(max_seq_length)
    if int(max_query_length) > T - 4:
        raise ValueError(f"max_query_length={max_query_length} leaves no paragraph room in "
                         f"max_seq_length={T} windows (needs max_query_length <= "
                         f"max_seq_length - 4)")
    proto = _read_model_proto(spiece_model)
    question_tokenizer = XLNetTokenizerLayer(proto, lower=uncased, name="question_tokenizer")
    aligner = ContextAligner(proto, lower=uncased)
    max_query_length, doc_stride = int(max_query_length), int(doc_stride)
    max_answer_length = int(max_answer_length)
    beam_keys = ("start_top_log_probs", "start_top_index", "end_top_log_probs",
                 "end_top_index", "cls_logits")

    def beam(feats):
        out = model({k: feats[k] for k in ("input_ids", "seg_ids", "input_mask",
                                           "p_mask", "cls_index")}, training=False)
        return {k: out[k] for k in beam_keys}

    def serve(question, context):
        check = tf.debugging.assert_equal(
            tf.shape(question)[0], tf.shape(context)[0],
            message="question and context must hold the same number of strings")
        with tf.control_dependencies([check]):
            query_ids = question_tokenizer(question)[:, :max_query_length]    # [B, (q)]
        para_ids, tok_start, tok_end = aligner.align(context)                 # [B, (n)] x 3
        windows = build_windows(para_ids, query_ids, T, doc_stride)
        outputs = beam(windows)
        answer, answer_start, score, null = best_answers(
            outputs, windows, context, tok_start, tok_end, tf.shape(context)[0],
            max_answer_length)
        return {"answer": answer, "answer_start": answer_start, "score": score,
                "null_score": null}

    def predict_features(input_ids, segment_ids, input_mask, p_mask, cls_index):
        return beam({"input_ids": input_ids, "seg_ids": segment_ids,
                     "input_mask": input_mask, "p_mask": p_mask, "cls_index": cls_index})

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(question_tokenizer)
    archive.track(aligner)
    archive.add_endpoint("serving_default", serve, input_signature=[
        tf.TensorSpec([None], tf.string, name="question"),
        tf.TensorSpec([None], tf.string, name="context")])
    archive.add_endpoint("predict_features", predict_features, input_signature=[
        tf.TensorSpec([None, T], tf.int32, name="input_ids"),
        tf.TensorSpec([None, T], tf.int32, name="segment_ids"),
        tf.TensorSpec([None, T], tf.float32, name="input_mask"),
        tf.TensorSpec([None, T], tf.float32, name="p_mask"),
        tf.TensorSpec([None], tf.int32, name="cls_index")])
    return add_text_encode_endpoint(archive, model.transformer, question_tokenizer,
                                    sequence_length=T, uncased=uncased)


def export_squad(model, export_dir, spiece_model, *, max_seq_length, doc_stride,
                 max_query_length, max_answer_length, uncased=False, version=None, info=None):
    """Write ``export_dir/<version>/`` (next free version by default; never overwritten;
    temporary name then rename) with the spiece.model asset and
    ``assets.extra/export_info.json``.  Returns the version folder."""
    from xlnet_tf.serving import saved_model as export_lib

    with open(spiece_model, "rb") as f:
        spm_bytes = f.read()
    version = export_lib.check_export_dir(export_dir, version)
    archive = build_squad_archive(
        model, spm_bytes, max_seq_length=max_seq_length, doc_stride=doc_stride,
        max_query_length=max_query_length, max_answer_length=max_answer_length,
        uncased=uncased)
    export_info = {
        "task": "squad", "max_seq_length": int(max_seq_length), "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length), "max_answer_length": int(max_answer_length),
        "start_n_top": model.start_n_top, "end_n_top": model.end_n_top,
        "uncased": bool(uncased), "inputs": ["question", "context"],
        "outputs": ["answer", "answer_start", "score", "null_score"],
        "xlnet_config": model.xlnet_config.checkpoint_dict(), **(info or {})}
    return export_lib.write_archive(
        archive, export_dir, version,
        assets={"spiece_model": (export_lib.SPIECE_ASSET_NAME, spm_bytes)},
        extra_files={export_lib.EXPORT_INFO_NAME: export_info})
