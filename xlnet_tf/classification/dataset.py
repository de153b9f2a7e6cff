"""tf.data input over the cached classification records
(``xlnet_tf.classification.records``)."""
import os
from typing import Optional

import tensorflow as tf

from xlnet_tf.classification.records import read_manifest


def classifier_dataset(record_path, batch_size: int, is_training: bool, max_seq_length: int,
                       is_regression: bool = False, input_context=None, seed: Optional[int] = 0,
                       shuffle_buffer: int = 2048, repeat: Optional[bool] = None,
                       max_segments: Optional[int] = None):
    """tf.data pipeline over a classification TFRecord file.

    Args:
      record_path: file written by ``prepare_classifier_records``.
      batch_size: global batch size; with ``input_context`` each input pipeline gets
        ``input_context.get_per_replica_batch_size(batch_size)``.
      is_training: shuffle (buffer ``shuffle_buffer``, ``seed``), repeat forever and drop the
        last partial batch (static batch dimension). Evaluation keeps file order and the last
        batch (files padded with ``eval_batch_size`` have only full batches).
      max_seq_length: T; must match the file (checked against the manifest when present).
      is_regression: labels are float32 instead of int32.
      input_context: ``tf.distribute.InputContext``; the records are sharded over its input
        pipelines.
      repeat: override the default (repeat only when training).
      max_segments: long-document records (``prepare_classifier_records(max_segments=S)``):
        rows of ``S * T`` positions; must match the file's manifest.
    Yields:
      dicts ``input_ids`` int32 ``[b, T]`` (``[b, S*T]`` with max_segments), ``seg_ids`` int32 ``[b, T]``, ``input_mask`` float32
      ``[b, T]`` (1 = padding), ``label`` ``[b]`` int32 (float32 for regression),
      ``is_real_example`` float32 ``[b]`` (a weight: 0 for eval padding rows).
    """
    record_path = os.fspath(record_path)
    if not os.path.isfile(record_path):
        raise FileNotFoundError(f"classifier record file {record_path!r} does not exist; build it with "
                                f"prepare_classifier_records.")
    T = int(max_seq_length)
    manifest = read_manifest(record_path)
    if manifest is not None:
        s = manifest["settings"]
        if s["max_seq_length"] != T:
            raise ValueError(f"{record_path} was written with max_seq_length={s['max_seq_length']}, but "
                             f"max_seq_length={T} was requested; rebuild the records or pass the same length.")
        made = (s.get("long_doc") or {}).get("max_segments")
        if made != max_segments:
            def said(n):
                return f"long_doc=memory with max_segments={n}" if n else "long_doc=truncate"
            raise ValueError(f"{record_path} was written with {said(made)}, but {said(max_segments)} "
                             f"was requested; rebuild the records or pass the same settings.")
        if bool(s["is_regression"]) != bool(is_regression):
            raise ValueError(f"{record_path} was written with is_regression={s['is_regression']}, but "
                             f"is_regression={is_regression} was requested.")
    if repeat is None:
        repeat = is_training
    per_batch = int(batch_size)
    d = tf.data.TFRecordDataset(record_path)
    if input_context is not None:
        per_batch = input_context.get_per_replica_batch_size(batch_size)
        d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        d = d.repeat()
    d = d.batch(per_batch, drop_remainder=is_training)
    L = T * (max_segments or 1)
    spec = {
        "input_ids": tf.io.FixedLenFeature([L], tf.int64),
        "input_mask": tf.io.FixedLenFeature([L], tf.float32),
        "segment_ids": tf.io.FixedLenFeature([L], tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.float32 if is_regression else tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized):
        ex = tf.io.parse_example(serialized, spec)
        return {
            "input_ids": tf.cast(ex["input_ids"], tf.int32),  # [b, T]
            "seg_ids": tf.cast(ex["segment_ids"], tf.int32),  # [b, T]
            "input_mask": ex["input_mask"],  # [b, T] float32, 1 = padding
            "label": ex["label_ids"] if is_regression else tf.cast(ex["label_ids"], tf.int32),  # [b]
            "is_real_example": tf.cast(ex["is_real_example"], tf.float32),  # [b]
        }

    d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return d.prefetch(tf.data.AUTOTUNE)
