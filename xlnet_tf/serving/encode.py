"""The ``encode`` signature of the exports: raw text in, the fine-tuned backbone's states out.

Every task export (classifier, SQuAD, multiple choice, tagging) carries it, so a served
model also gives sentence and token embeddings:

* outputs ``token_states`` float32 ``[B, T, d]`` (the backbone's last hidden states),
  ``token_mask`` float32 ``[B, T]`` (1 = a piece of the text; padding, ``<sep>`` and
  ``<cls>`` are 0) and ``pooled`` float32 ``[B, d]`` (the mean over the text's pieces, as
  ``python -m xlnet_tf.extract_features --pooling=mean``), dropout off.  Padding is left
  out of the mean and masked out of the attention, so a text's vectors do not depend on
  the batch it is sent in.
* tasks whose ``serving_default`` takes one text (the classifier) take the same inputs; the
  others take ``text`` string ``[B]``, packed as one segment ``pieces <sep> <cls>`` with left
  padding to the export's ``max_seq_length`` (the layout XLNet was pretrained with), longer
  texts keeping their first pieces.
"""
import tensorflow as tf


def encode_outputs(hidden, input_ids, input_mask):
    """``token_states`` [B, T, d], ``token_mask`` [B, T] (text pieces only) and their mean
    ``pooled`` [B, d]."""
    from xlnet_tf.tokenization.tokenizer import CLS_ID, SEP_ID
    hidden = tf.cast(hidden, tf.float32)                                     # [B, T, d]
    ids = tf.cast(input_ids, tf.int32)
    mask = tf.cast((tf.cast(input_mask, tf.float32) < 0.5) & tf.not_equal(ids, SEP_ID)
                   & tf.not_equal(ids, CLS_ID), tf.float32)                   # [B, T]
    total = tf.reduce_sum(hidden * mask[:, :, None], axis=1)                 # [B, d]
    pooled = total / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
    return {"token_states": hidden, "token_mask": mask, "pooled": pooled}


def add_text_encode_endpoint(archive, transformer, tokenizer, *, sequence_length,
                             uncased=False):
    """Add ``encode(text [B])`` to ``archive``: one-segment packing with
    ``xlnet_tf.preprocessing.XLNetPreprocessor`` (tracked by the archive) over ``tokenizer``
    (the export's ``XLNetTokenizerLayer``, shared, or a SentencePiece model's path or
    bytes), the ``transformer`` (an ``XLNetModel``) without dropout, :func:`encode_outputs`."""
    from xlnet_tf.preprocessing import XLNetPreprocessor

    preprocessor = XLNetPreprocessor(tokenizer, sequence_length=int(sequence_length),
                                     lower=uncased, name="encode_preprocessor")
    archive.track(preprocessor)

    def encode(text):
        feats = preprocessor(text)                                           # [B, T] x 3
        hidden = transformer({"input_ids": feats["input_ids"], "seg_ids": feats["seg_ids"],
                              "input_mask": feats["input_mask"]}, training=False)["hidden"]
        return encode_outputs(hidden, feats["input_ids"], feats["input_mask"])

    archive.add_endpoint("encode", encode,
                         input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    return archive
