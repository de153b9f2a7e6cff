"""SQuAD features on disk and back: TFRecords, the feature cache with its settings manifest,
and the tf.data pipeline.

Caching. :func:`load_or_build_features` writes the records plus a settings manifest
(SentencePiece sha256, lengths, ``uncased``, source file size + sha256, counts) beside them
and reuses them only when the manifest matches; the prediction side also gets the examples
and the Python feature objects (pickled next to the records). All files are written to a
temporary name and renamed.

The records keep the key ``segment_ids`` on disk; :func:`squad_dataset` renames it to
``seg_ids``, the name the model takes.
"""
import logging
import os
import pickle
import random
import time

from xlnet_tf import manifest as manifest_lib
from xlnet_tf.io import atomic_output, read_json, sha256_file, write_json_atomic
from xlnet_tf.squad.examples import read_squad_examples
from xlnet_tf.squad.features import convert_examples_to_features
from xlnet_tf.tokenization import tokenizer as tok_lib

log = logging.getLogger("xlnet_tf")

# 2: the pickled example and feature classes moved to xlnet_tf.squad.examples / .features
CACHE_FORMAT_VERSION = 2
# on-disk record key -> the name after parsing
_RENAME = {"segment_ids": "seg_ids"}


def feature_spec(seq_len, is_training):
    """The ``tf.io.parse_single_example`` spec of the SQuAD records (static shapes)."""
    import tensorflow as tf
    spec = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_len], tf.float32),
        "p_mask": tf.io.FixedLenFeature([seq_len], tf.float32),
        "segment_ids": tf.io.FixedLenFeature([seq_len], tf.int64),
        "cls_index": tf.io.FixedLenFeature([], tf.int64),
    }
    if is_training:
        spec["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
        spec["end_positions"] = tf.io.FixedLenFeature([], tf.int64)
        spec["is_impossible"] = tf.io.FixedLenFeature([], tf.float32)
    return spec


def _write_records(features, path, is_training):
    """Writes the records to ``path`` (a temporary name); returns the count."""
    import tensorflow as tf

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for f in features:
            feats = {
                "unique_ids": ints([f.unique_id]),
                "input_ids": ints(f.input_ids.tolist()),
                "input_mask": floats(f.input_mask.tolist()),
                "p_mask": floats(f.p_mask.tolist()),
                "segment_ids": ints(f.seg_ids.tolist()),
                "cls_index": ints([f.cls_index]),
            }
            if is_training:
                if f.start_position is None:
                    raise ValueError(f"feature {f.unique_id} has no training labels; build the "
                                     f"features with is_training=True.")
                feats["start_positions"] = ints([f.start_position])
                feats["end_positions"] = ints([f.end_position])
                feats["is_impossible"] = floats([f.is_impossible])
            example = tf.train.Example(features=tf.train.Features(feature=feats))
            writer.write(example.SerializeToString())
            count += 1
    return count


def write_squad_features(features, path, is_training):
    """Writes features as a TFRecord file, atomically (temporary name, then rename).

    Record features: ``unique_ids``, ``input_ids``, ``input_mask`` (float), ``p_mask``
    (float), ``segment_ids``, ``cls_index`` and, for training, ``start_positions``,
    ``end_positions``, ``is_impossible`` (float). Returns the number of records.
    """
    with atomic_output(path) as tmp:
        return _write_records(features, tmp, is_training)


class SquadFeatureCache:
    """What :func:`load_or_build_features` returns.

    Attributes:
      record_path: the TFRecord file.
      manifest_path, manifest: the settings manifest (dict).
      num_features: records in the file.
      examples, features: for prediction (``is_training=False``) the examples and the
        Python feature objects post-processing needs; None for training.
      rebuilt: True when the cache was (re)built by this call.
    """

    def __init__(self, record_path, manifest_path, manifest, examples, features, rebuilt):
        self.record_path = record_path
        self.manifest_path = manifest_path
        self.manifest = manifest
        self.num_features = manifest["num_features"]
        self.examples = examples
        self.features = features
        self.rebuilt = rebuilt


def _cache_paths(data_file, spiece_model_file, cache_dir, is_training, max_seq_length,
                 max_query_length, doc_stride, uncased):
    data_stem = os.path.splitext(os.path.basename(data_file))[0]
    spm_stem = os.path.splitext(os.path.basename(spiece_model_file))[0]
    split = "train" if is_training else "eval"
    name = (f"{data_stem}.{spm_stem}.slen-{max_seq_length}.qlen-{max_query_length}."
            f"stride-{doc_stride}{'.uncased' if uncased else ''}.{split}.tf_record")
    record = os.path.join(cache_dir, name)
    return record, record + ".manifest.json", record + ".features.pkl"


def _reuse(record, manifest_path, meta_path, settings, is_training):
    """The cache when its manifest matches ``settings`` and its files are complete, else
    None (logging why it is rebuilt)."""
    try:
        manifest = read_json(manifest_path, what="SQuAD feature manifest")
    except (OSError, ValueError):
        return None
    ok = (manifest.get("settings") == settings
          and os.path.isfile(record) and os.path.getsize(record) == manifest.get("record_bytes")
          and (is_training or os.path.isfile(meta_path)))
    if not ok:
        changed = [key for key, _, _ in manifest_lib.diff(manifest.get("settings") or {},
                                                          settings)]
        log.info("Cached SQuAD features %s do not match the requested settings%s; rebuilding.",
                 record, f" ({', '.join(changed)})" if changed else "")
        return None
    examples = features = None
    if not is_training:
        with open(meta_path, "rb") as f:
            examples, features = pickle.load(f)
    log.info("Reusing cached SQuAD features %s (%d features).", record, manifest["num_features"])
    return SquadFeatureCache(record, manifest_path, manifest, examples, features, rebuilt=False)


def load_or_build_features(data_file, spiece_model_file, cache_dir, is_training, max_seq_length=512,
                           doc_stride=128, max_query_length=64, uncased=False, num_workers=None,
                           overwrite=False, shuffle_seed=0):
    """Returns cached SQuAD records (and prediction metadata), building them when needed.

    The cache in ``cache_dir`` is ``<data>.<spm>.slen-L.qlen-Q.stride-S[.uncased].{train,eval}.tf_record``
    with ``.manifest.json`` (settings + counts) and, for prediction, ``.features.pkl``
    (examples and feature objects) beside it. It is reused only when the manifest's settings
    equal the requested ones -- SentencePiece model sha256, lengths, ``uncased``, the source
    file's size and sha256 -- and all files exist; otherwise (or with ``overwrite``) it is
    rebuilt. Training examples are shuffled with ``shuffle_seed`` before conversion (as the
    original pre-shuffled, so a 2048-record shuffle buffer mixes articles).
    """
    data_file, spiece_model_file = os.fspath(data_file), os.fspath(spiece_model_file)
    if not os.path.isfile(spiece_model_file):
        raise FileNotFoundError(f"SentencePiece model {spiece_model_file!r} does not exist "
                                f"(--spiece_model); pass the spiece.model of the checkpoint.")
    if not os.path.isfile(data_file):
        raise FileNotFoundError(f"SQuAD file {data_file!r} does not exist (check --train_file/--predict_file).")
    os.makedirs(cache_dir, exist_ok=True)
    record, manifest_path, meta_path = _cache_paths(
        data_file, spiece_model_file, cache_dir, is_training, max_seq_length, max_query_length,
        doc_stride, uncased)
    settings = {
        "format_version": CACHE_FORMAT_VERSION,
        "spiece_model_sha256": sha256_file(spiece_model_file),
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "uncased": bool(uncased),
        "is_training": bool(is_training),
        "source_size": os.path.getsize(data_file),
        "source_sha256": sha256_file(data_file),
        "shuffle_seed": int(shuffle_seed) if is_training else None,
    }
    if not overwrite and os.path.isfile(manifest_path):
        cache = _reuse(record, manifest_path, meta_path, settings, is_training)
        if cache is not None:
            return cache

    tokenizer = tok_lib.Tokenizer(spiece_model_file, lower=uncased)
    examples = read_squad_examples(data_file, is_training=is_training)
    if is_training:
        random.Random(shuffle_seed).shuffle(examples)
    features = convert_examples_to_features(
        examples, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride,
        max_query_length=max_query_length, is_training=is_training, num_workers=num_workers)
    if not features:
        raise ValueError(f"SQuAD file {data_file!r} produced no features ({len(examples)} examples).")

    # Invalidate first: a crash between the renames below leaves no manifest, so no reuse.
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)
    with atomic_output(record) as tmp_record:
        count = _write_records(features, tmp_record, is_training)
        if not is_training:
            with atomic_output(meta_path) as tmp_meta:
                with open(tmp_meta, "wb") as f:
                    pickle.dump((examples, features), f, protocol=pickle.HIGHEST_PROTOCOL)
    manifest = {
        "settings": settings,
        "spiece_model_file": os.path.abspath(spiece_model_file),
        "source_file": os.path.abspath(data_file),
        "source_mtime": os.path.getmtime(data_file),
        "num_examples": len(examples),
        "num_features": count,
        "num_bad_offsets": examples.num_bad_offsets,
        "num_skipped_questions": len(examples.skipped_qas_ids),
        "num_dropped_examples": len(features.dropped_qas_ids),
        "record_bytes": os.path.getsize(record),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(manifest_path, manifest)
    log.info("Wrote %d SQuAD features to %s.", count, record)
    if is_training:
        examples = features = None
    return SquadFeatureCache(record, manifest_path, manifest, examples, features, rebuilt=True)


def squad_dataset(path, batch_size, is_training, seq_len, shuffle_buffer=2048, seed=None,
                  repeat=None):
    """tf.data pipeline over SQuAD records with static shapes.

    Training: repeat (by default), shuffle with ``shuffle_buffer``, batch with
    ``drop_remainder=True`` (static batch dimension). Prediction: file order, no repeat, the
    last partial batch kept (every question needs its features).

    Yields dicts: ``unique_ids`` int64 ``[B]``, ``input_ids`` int32 ``[B, T]``,
    ``input_mask`` float32 ``[B, T]`` (1 = pad), ``p_mask`` float32 ``[B, T]``,
    ``seg_ids`` int32 ``[B, T]`` (the records' ``segment_ids``), ``cls_index`` int32 ``[B]`` and for training
    ``start_positions``/``end_positions`` int32 ``[B]``, ``is_impossible`` float32 ``[B]``.
    """
    import tensorflow as tf
    paths = [os.fspath(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"SQuAD record file {p!r} does not exist; build it with "
                                    f"load_or_build_features.")
    spec = feature_spec(seq_len, is_training)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        out = {}
        for name, value in ex.items():
            if value.dtype == tf.int64 and name != "unique_ids":
                value = tf.cast(value, tf.int32)
            out[_RENAME.get(name, name)] = value
        return out

    d = tf.data.TFRecordDataset(paths)
    if is_training:
        if repeat is None or repeat:
            d = d.repeat()
        d = d.shuffle(shuffle_buffer, seed=seed)
    d = d.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    d = d.batch(batch_size, drop_remainder=bool(is_training))
    return d.prefetch(tf.data.AUTOTUNE)
