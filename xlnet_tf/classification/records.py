"""The cached classification features: one TFRecord file per (task, split, length,
vocabulary) with a JSON manifest beside it.

Cached records
--------------
``prepare_classifier_records`` writes a TFRecord file (features ``input_ids`` int64,
``input_mask`` float, ``segment_ids`` int64, ``label_ids`` int64 or float for regression,
``is_real_example`` int64) plus ``<record>.manifest.json`` stating the settings it was made
with; a later call reuses it only when the manifest matches. ``classifier_dataset`` reads it.

Long documents (``max_segments=S``, run_classifier's ``--long_doc=memory``): the same layout
packed to ``S * max_seq_length`` positions (the first ``S*T - 2`` pieces kept, left padding),
so that cut into segments of T from the end only the first non-empty segment holds padding
and only the last ends with ``<sep> <cls>``.  The manifest then records ``long_doc`` and the
file name says ``len-{T}x{S}``: these records never stand in for the truncated ones.

The record keys on disk are the original's (``segment_ids``, ``label_ids``); the input
pipeline (``xlnet_tf.classification.dataset``) renames them right after parsing.
"""
import logging
import os
import time
from typing import Dict, List, NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf

from xlnet_tf.classification.features import InputFeatures, check_max_seq_length, convert_example
from xlnet_tf.classification.readers import DataProcessor, InputExample, PaddingInputExample
from xlnet_tf.finetuning import is_writable_dir
from xlnet_tf.io import atomic_output, read_json, sha256_bytes, sha256_file, write_json_atomic

log = logging.getLogger("xlnet_tf")

MANIFEST_SUFFIX = ".manifest.json"
# 2: an empty text_b is packed as a single text (records cached by version 1 are rebuilt)
MANIFEST_FORMAT_VERSION = 2


def _file_fingerprint(path: str) -> Dict[str, object]:
    """Size and mtime of a file, or (for a folder) count, total size and newest mtime of its files."""
    if os.path.isdir(path):
        count, size, mtime = 0, 0, 0
        for root, _, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                count += 1
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
        return {"path": os.path.abspath(path), "kind": "dir", "files": count, "size": size, "mtime_ns": mtime}
    st = os.stat(path)
    return {"path": os.path.abspath(path), "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def tokenizer_settings(tokenizer) -> Dict[str, object]:
    """What of the tokenizer changes the ids: SentencePiece model hash and text options."""
    proto = tokenizer.serialized_model_proto() if hasattr(tokenizer, "serialized_model_proto") else None
    path = getattr(tokenizer, "spiece_model_path", None)
    if proto is None and not path:
        raise ValueError("cannot identify the tokenizer's SentencePiece model for the cache manifest; "
                         "use xlnet_tf.tokenization.tokenizer.Tokenizer.")
    return {
        "spm_sha256": sha256_bytes(proto) if proto is not None else sha256_file(path),
        "spm_basename": os.path.basename(path) if path else "spiece",
        "uncased": bool(getattr(tokenizer, "lower", False)),
        "keep_accents": bool(getattr(tokenizer, "keep_accents", False)),
    }


def _int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _serialize(features: InputFeatures, is_regression: bool) -> bytes:
    feats = {
        "input_ids": _int64_feature(features.input_ids),
        "input_mask": _float_feature(features.input_mask),
        "segment_ids": _int64_feature(features.seg_ids),
        "label_ids": _float_feature([features.label_id]) if is_regression else _int64_feature([features.label_id]),
        "is_real_example": _int64_feature([int(features.is_real_example)]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def file_based_convert_examples_to_features(examples, label_list, max_seq_length, tokenizer, output_file,
                                            is_regression=None, num_passes=1, log_every_secs=10.0,
                                            description=""):
    """Writes the features of ``examples`` to the TFRecord file ``output_file``.

    The file is written under a temporary name and renamed at the end, so an interrupted run
    never leaves a complete-looking file. Logs progress (examples/s) about every
    ``log_every_secs``. ``num_passes > 1`` repeats the example list (the original's option).

    Returns a dict of counts: ``num_records``, ``num_real``, ``num_padding``, ``num_truncated``.
    """
    if is_regression is None:
        is_regression = label_list is None
    if num_passes > 1:
        examples = list(examples) * int(num_passes)
    total = len(examples)
    counts = {"num_records": 0, "num_real": 0, "num_padding": 0, "num_truncated": 0}
    start = last_log = time.time()
    with atomic_output(output_file) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for i, ex in enumerate(examples):
            feats, truncated = convert_example(ex, label_list, max_seq_length, tokenizer, is_regression)
            if feats.is_real_example:
                counts["num_real"] += 1
                counts["num_truncated"] += int(truncated)
                if counts["num_real"] <= 2:
                    log.info("%s example %s: input_ids=%s seg_ids=%s label=%r", description, ex.guid,
                                 [t for t, m in zip(feats.input_ids, feats.input_mask) if m == 0],
                                 [s for s, m in zip(feats.seg_ids, feats.input_mask) if m == 0],
                                 feats.label_id)
            else:
                counts["num_padding"] += 1
            writer.write(_serialize(feats, is_regression))
            counts["num_records"] += 1
            now = time.time()
            if now - last_log >= log_every_secs:
                last_log = now
                log.info("%s: %d/%d examples (%.0f examples/s)", description or output_file, i + 1, total,
                             (i + 1) / max(now - start, 1e-9))
    elapsed = max(time.time() - start, 1e-9)
    log.info("%s: wrote %d records (%d real, %d padding, %d truncated) to %s in %.1fs (%.0f examples/s)",
                 description or "records", counts["num_records"], counts["num_real"], counts["num_padding"],
                 counts["num_truncated"], output_file, elapsed, counts["num_records"] / elapsed)
    return counts


class RecordInfo(NamedTuple):
    path: str
    manifest: Dict[str, object]
    reused: bool


def record_file_name(task_name: str, spm_sha256: str, max_seq_length: int, split: str, is_training: bool,
                     max_segments: Optional[int] = None) -> str:
    """``{task}.sp-{sha}.len-{T}.train.tf_record`` / ``….{split}.eval.tf_record``: the
    original's names with the task in front (several tasks can share one cache folder) and
    the first 12 hex digits of the SentencePiece model's sha256 where the original put the
    model's file name (two different models both called spiece.model get different files).
    Long-document records (``max_segments``) say ``len-{T}x{S}``."""
    if is_training:
        kind = "train" if split == "train" else f"{split}.train"
    else:
        kind = f"{split}.eval"
    length = f"{int(max_seq_length)}x{int(max_segments)}" if max_segments else str(int(max_seq_length))
    return f"{task_name}.sp-{spm_sha256[:12]}.len-{length}.{kind}.tf_record"


def prepare_classifier_records(processor: DataProcessor, data_dir, split: str, tokenizer, max_seq_length: int, *,
                               is_training: Optional[bool] = None, eval_batch_size: Optional[int] = None,
                               cache_dir, overwrite_data: bool = False, shuffle_seed: int = 12345,
                               num_passes: int = 1, max_segments: Optional[int] = None) -> RecordInfo:
    """Builds (or reuses) the cached TFRecord file of ``split`` and its manifest.

    Args:
      processor: from ``get_task``.
      data_dir: folder of the task's files.
      split: "train", "dev" or "test".
      tokenizer: ``xlnet_tf.tokenization.tokenizer.Tokenizer``.
      max_seq_length: T.
      is_training: shuffle the examples once (numpy, ``shuffle_seed``) before writing, and
        repeat them ``num_passes`` times; default: ``split == "train"``.
      eval_batch_size: for evaluation files, pad with ``PaddingInputExample`` to a multiple of
        this so every batch is full and metrics (weighted by ``is_real_example``) stay exact.
      cache_dir: where the records go (must be writable; the scripts pass
        ``OUTPUT_DIR/data_cache`` or ``--cache_dir``, never the data folder).
      overwrite_data: rebuild even if a matching cache exists (the original's flag).
      max_segments: long documents read with memory: pack each example to
        ``max_segments * max_seq_length`` positions (see module docstring); None = one
        segment, truncated to ``max_seq_length`` (today's records, unchanged).
    Returns:
      ``RecordInfo(path, manifest, reused)``; the manifest holds the settings and counts
      (``num_records``, ``num_real``, ``num_padding``, ``num_truncated``) and ``label_list``.
    """
    if is_training is None:
        is_training = split == "train"
    T = check_max_seq_length(max_seq_length, pair=False)
    if max_segments is not None and (int(max_segments) != max_segments or max_segments < 1):
        raise ValueError(f"max_segments must be an integer >= 1, got {max_segments!r}")
    data_dir = os.fspath(data_dir)
    cache_dir = os.fspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    # Mode bits are checked too: root may write anywhere, but a folder marked read-only (such as
    # a shared data folder) must not get cache files.
    if not is_writable_dir(cache_dir):
        raise PermissionError(
            f"cannot write the cached records to {cache_dir!r} (read-only folder); pass cache_dir=<a "
            f"writable folder> (run_classifier: --output_dir).")
    tok = tokenizer_settings(tokenizer)
    sources = processor.source_files(data_dir, split)
    settings = {
        "format_version": MANIFEST_FORMAT_VERSION,
        "task": processor.name,
        "task_options": processor.options(),
        "split": split,
        "is_training": bool(is_training),
        "max_seq_length": T,
        "spm_sha256": tok["spm_sha256"],
        "uncased": tok["uncased"],
        "keep_accents": tok["keep_accents"],
        "is_regression": bool(processor.is_regression),
        "label_list": None if processor.is_regression else list(processor.label_list),
        "source_files": [_file_fingerprint(p) for p in sources],
        "shuffle_seed": int(shuffle_seed) if is_training else None,
        "num_passes": int(num_passes) if is_training else 1,
        "pad_to_multiple": None if is_training or not eval_batch_size else int(eval_batch_size),
    }
    if max_segments is not None:
        # only in long-document records: the manifests of truncated records stay as they were
        settings["long_doc"] = {"mode": "memory", "max_segments": int(max_segments)}
    path = os.path.join(cache_dir, record_file_name(processor.name, tok["spm_sha256"], T, split, is_training,
                                                    max_segments))
    manifest_path = path + MANIFEST_SUFFIX
    old = reusable_manifest(path, settings, overwrite_data)
    if old is not None:
        return RecordInfo(path, old, True)
    examples: List[Union[InputExample, PaddingInputExample]] = processor.get_examples(data_dir, split)
    if is_training:
        rng = np.random.RandomState(shuffle_seed)
        order = rng.permutation(len(examples))
        examples = [examples[i] for i in order]
    elif eval_batch_size:
        while len(examples) % eval_batch_size != 0:
            examples.append(PaddingInputExample())
    label_list = None if processor.is_regression else list(processor.label_list)
    # Drop the old manifest first: a crash between the two renames below then leaves a record
    # file without manifest (rebuilt next time), never a manifest describing another file.
    if os.path.exists(manifest_path):
        os.remove(manifest_path)
    counts = file_based_convert_examples_to_features(
        examples, label_list, T * (max_segments or 1), tokenizer, path, is_regression=processor.is_regression,
        num_passes=num_passes if is_training else 1, description=f"{processor.name}/{split}")
    manifest = {"settings": settings, "counts": counts, "record_file": os.path.basename(path),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(manifest_path, manifest)
    return RecordInfo(path, manifest, False)


def reusable_manifest(path, settings, overwrite_data=False) -> Optional[Dict[str, object]]:
    """The manifest of the cached record file ``path`` when the file and its manifest exist
    and were written with ``settings`` (and ``overwrite_data`` is off), else None (a change
    of settings is logged, naming them)."""
    manifest_path = os.fspath(path) + MANIFEST_SUFFIX
    if overwrite_data or not (os.path.exists(path) and os.path.exists(manifest_path)):
        return None
    try:
        old = read_json(manifest_path, what="record manifest")
    except (OSError, ValueError):
        return None
    if old.get("settings") == settings:
        log.info("Reusing cached records %s", path)
        return old
    changed = sorted(k for k in set(settings) | set(old.get("settings", {}))
                     if settings.get(k) != old.get("settings", {}).get(k))
    log.info("Rebuilding %s: settings changed (%s)", path, ", ".join(changed))
    return None


def read_manifest(record_path) -> Optional[Dict[str, object]]:
    """The manifest beside ``record_path``, or None if there is none."""
    mpath = os.fspath(record_path) + MANIFEST_SUFFIX
    if not os.path.exists(mpath):
        return None
    return read_json(mpath, what="record manifest")
