"""SQuAD features on disk and back: TFRecords, the feature cache with its settings manifest,
and the tf.data pipeline.

Caching. :func:`load_or_build_features` writes the records plus a settings manifest
(SentencePiece sha256, lengths, ``uncased``, source file size + sha256, counts) beside them
and reuses them only when the manifest matches; the prediction side also gets the examples
(``.examples.json``) and what post-processing needs of the features (``.features.npz``,
read without pickle: a cache folder is data, and loading it must not run code).  File names
carry the first 12 hex digits of the SentencePiece model's sha256, not its file name.  All
files are written to a temporary name and renamed.

The records keep the key ``segment_ids`` on disk; :func:`squad_dataset` renames it to
``seg_ids``, the name the model takes.
"""
import logging
import json
import os
import random
import time
import zipfile

import numpy as np

from xlnet_tf import manifest as manifest_lib
from xlnet_tf.io import (atomic_output, read_json, sha256_file, write_json_atomic,
                         write_text_atomic)
from xlnet_tf.squad.examples import ExampleList, SquadExample, read_squad_examples
from xlnet_tf.squad.features import FeatureList, InputFeatures, convert_examples_to_features
from xlnet_tf.tokenization import tokenizer as tok_lib

log = logging.getLogger("xlnet_tf")

# 2: the pickled example and feature classes moved to xlnet_tf.squad.examples / .features
# 3: no pickle: examples as JSON, features as .npz; names keyed by the vocabulary's sha256
CACHE_FORMAT_VERSION = 3
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


def _cache_paths(data_file, spiece_sha256, cache_dir, is_training, max_seq_length,
                 max_query_length, doc_stride, uncased):
    """(record, manifest, examples JSON, features npz) paths of one cache."""
    data_stem = os.path.splitext(os.path.basename(data_file))[0]
    split = "train" if is_training else "eval"
    name = (f"{data_stem}.sp-{spiece_sha256[:12]}.slen-{max_seq_length}.qlen-"
            f"{max_query_length}.stride-{doc_stride}{'.uncased' if uncased else ''}."
            f"{split}.tf_record")
    record = os.path.join(cache_dir, name)
    return record, record + ".manifest.json", record + ".examples.json", record + ".features.npz"


# ---------------------------------------------------------------- prediction metadata
_EXAMPLE_FIELDS = ("qas_id", "question_text", "paragraph_text", "orig_answer_text",
                   "start_position", "is_impossible", "answers")
# one number per feature; the ragged arrays are concatenated (lengths: paragraph_len for the
# raw-character maps and token_is_max_context, paragraph_len + query_len + 3 for tokens)
_FEATURE_SCALARS = ("unique_id", "example_index", "doc_span_index", "query_len",
                    "paragraph_len")
_FEATURE_RAGGED = ("tok_start_to_orig_index", "tok_end_to_orig_index",
                   "token_is_max_context", "tokens")


def _write_examples(examples, path):
    """The prediction examples (and what reading skipped) as JSON."""
    obj = {"examples": [{k: getattr(ex, k) for k in _EXAMPLE_FIELDS} for ex in examples],
           "num_bad_offsets": examples.num_bad_offsets,
           "num_empty_context": examples.num_empty_context,
           "skipped_qas_ids": list(examples.skipped_qas_ids)}
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False))


def _read_examples(path):
    obj = read_json(path, what="cached SQuAD examples")
    examples = ExampleList(SquadExample(**{k: row[k] for k in _EXAMPLE_FIELDS})
                           for row in obj["examples"])
    for ex in examples:
        ex.answers = [tuple(a) for a in ex.answers]
    examples.num_bad_offsets = obj["num_bad_offsets"]
    examples.num_empty_context = obj["num_empty_context"]
    examples.skipped_qas_ids = tuple(obj["skipped_qas_ids"])
    return examples


def _write_features(features, path):
    """The prediction features as plain arrays in an ``.npz`` (no Python objects)."""
    arrays = {k: np.asarray([getattr(f, k) for f in features], np.int64)
              for k in _FEATURE_SCALARS}
    for k in _FEATURE_RAGGED:
        arrays[k] = np.concatenate([np.asarray(getattr(f, k)) for f in features])
    arrays["max_seq_length"] = np.asarray(features[0].max_seq_length, np.int64)
    arrays["num_examples"] = np.asarray(features.num_examples, np.int64)
    arrays["dropped_qas_ids"] = np.asarray(list(features.dropped_qas_ids), dtype=np.str_)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:          # a file object: np.savez would add ".npz"
            np.savez(f, **arrays)


def _read_features(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    p_len, q_len = arrays["paragraph_len"], arrays["query_len"]
    ends = {"tokens": np.cumsum(p_len + q_len + 3)}
    ends.update({k: np.cumsum(p_len) for k in _FEATURE_RAGGED if k != "tokens"})
    pieces = {k: np.split(arrays[k], ends[k][:-1]) for k in _FEATURE_RAGGED}
    features = FeatureList()
    max_seq_length = int(arrays["max_seq_length"])
    for i in range(len(p_len)):
        features.append(InputFeatures(
            **{k: int(arrays[k][i]) for k in _FEATURE_SCALARS},
            **{k: pieces[k][i] for k in _FEATURE_RAGGED}, max_seq_length=max_seq_length))
    features.num_examples = int(arrays["num_examples"])
    features.dropped_qas_ids = tuple(str(x) for x in arrays["dropped_qas_ids"])
    return features


def _reuse(paths, settings, is_training):
    """The cache when its manifest matches ``settings`` and its files are complete, else
    None (logging why it is rebuilt)."""
    record, manifest_path, examples_path, features_path = paths
    try:
        manifest = read_json(manifest_path, what="SQuAD feature manifest")
    except (OSError, ValueError):
        return None
    ok = (manifest.get("settings") == settings
          and os.path.isfile(record) and os.path.getsize(record) == manifest.get("record_bytes")
          and (is_training or (os.path.isfile(examples_path) and os.path.isfile(features_path))))
    if not ok:
        changed = [key for key, _, _ in manifest_lib.diff(manifest.get("settings") or {},
                                                          settings)]
        log.info("Cached SQuAD features %s do not match the requested settings%s; rebuilding.",
                 record, f" ({', '.join(changed)})" if changed else "")
        return None
    examples = features = None
    if not is_training:
        try:
            examples, features = _read_examples(examples_path), _read_features(features_path)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            log.info("Cached SQuAD features %s are incomplete (%s); rebuilding.", record, e)
            return None
        if len(features) != manifest["num_features"]:
            log.info("Cached SQuAD features %s are incomplete; rebuilding.", record)
            return None
    log.info("Reusing cached SQuAD features %s (%d features).", record, manifest["num_features"])
    return SquadFeatureCache(record, manifest_path, manifest, examples, features, rebuilt=False)


def load_or_build_features(data_file, spiece_model_file, cache_dir, is_training, max_seq_length=512,
                           doc_stride=128, max_query_length=64, uncased=False, num_workers=None,
                           overwrite=False, shuffle_seed=0):
    """Returns cached SQuAD records (and prediction metadata), building them when needed.

    The cache in ``cache_dir`` is
    ``<data>.sp-<sha>.slen-L.qlen-Q.stride-S[.uncased].{train,eval}.tf_record`` (``<sha>``:
    the first 12 hex digits of the SentencePiece model's sha256) with ``.manifest.json``
    (settings + counts) and, for prediction, ``.examples.json`` and ``.features.npz`` beside
    it (read back without pickle). It is reused only when the manifest's settings
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
    spiece_sha256 = sha256_file(spiece_model_file)
    paths = _cache_paths(data_file, spiece_sha256, cache_dir, is_training, max_seq_length,
                         max_query_length, doc_stride, uncased)
    record, manifest_path, examples_path, features_path = paths
    settings = {
        "format_version": CACHE_FORMAT_VERSION,
        "spiece_model_sha256": spiece_sha256,
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
        cache = _reuse(paths, settings, is_training)
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
        _write_examples(examples, examples_path)
        _write_features(features, features_path)
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
