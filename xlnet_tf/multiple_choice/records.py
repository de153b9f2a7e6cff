"""The cached multiple-choice features: one TFRecord file per (task, split, lengths,
vocabulary) with a JSON manifest beside it, and their ``tf.data`` input.

A record is one question: ``input_ids`` int64, ``input_mask`` float and ``segment_ids``
int64 of ``C * T`` values (the C option sequences one after another, as the original's
``[4*L]`` features), ``label_ids`` int64 (-1 when unknown), and ``qid`` / ``level`` bytes
(for the prediction file and the per-level accuracy).  The manifest states the settings
the file was made with; a later run reuses the file only when they match.
"""
import logging
import os
import time
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from xlnet_tf.classification.records import (MANIFEST_SUFFIX, _file_fingerprint, read_manifest,
                                             reusable_manifest, tokenizer_settings)
from xlnet_tf.finetuning import check_writable_dir
from xlnet_tf.io import atomic_output, write_json_atomic
from xlnet_tf.multiple_choice.features import check_lengths, convert_example

log = logging.getLogger("xlnet_tf")

MANIFEST_FORMAT_VERSION = 1


class RecordInfo(NamedTuple):
    path: str
    manifest: dict
    reused: bool


class RecordPlan(NamedTuple):
    """What :func:`plan_mc_records` found: the record file, its settings, the manifest of a
    cached file that can be reused (else None) and the checked questions to write."""
    path: str
    settings: dict
    manifest: Optional[dict]
    examples: Optional[list]

    @property
    def num_questions(self):
        if self.manifest is not None:
            return self.manifest["counts"]["num_real"]
        return len(self.examples)

    @property
    def num_choices(self):
        if self.manifest is not None:
            return self.manifest["counts"]["num_choices"]
        return len(self.examples[0].options)


def _example_proto(feats, ex):
    def ints(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(v).tolist()))
    return tf.train.Example(features=tf.train.Features(feature={
        "input_ids": ints(feats.input_ids),
        "input_mask": tf.train.Feature(float_list=tf.train.FloatList(
            value=np.ravel(feats.input_mask).tolist())),
        "segment_ids": ints(feats.seg_ids),
        "label_ids": ints([feats.label]),
        "qid": tf.train.Feature(bytes_list=tf.train.BytesList(value=[ex.qid.encode()])),
        "level": tf.train.Feature(bytes_list=tf.train.BytesList(value=[ex.level.encode()])),
    })).SerializeToString()


def plan_mc_records(reader, data_dir, split, tokenizer, max_seq_length, max_qa_length, *,
                    is_training, cache_dir, overwrite_data=False, shuffle_seed=12345):
    """Everything before the record file of ``split`` is written, writing nothing: the
    cache folder must be writable, and unless a cached file with the same settings exists
    every question is read and checked (a bad file raises here, naming it)."""
    check_lengths(max_seq_length, max_qa_length)
    check_writable_dir(cache_dir, "cache_dir")
    tok = tokenizer_settings(tokenizer)
    settings = {
        "format_version": MANIFEST_FORMAT_VERSION, "task": reader.name,
        "task_options": reader.options(), "split": split, "is_training": bool(is_training),
        "max_seq_length": int(max_seq_length), "max_qa_length": int(max_qa_length),
        "spm_sha256": tok["spm_sha256"], "uncased": tok["uncased"],
        "keep_accents": tok["keep_accents"],
        "source_files": [_file_fingerprint(p) for p in reader.source_files(data_dir, split)],
        "shuffle_seed": int(shuffle_seed) if is_training else None}
    kind = "train" if is_training else "eval"
    path = os.path.join(cache_dir, f"{reader.name}.sp-{tok['spm_sha256'][:12]}.len-"
                                   f"{int(max_seq_length)}.qa-{int(max_qa_length)}.{split}."
                                   f"{kind}.tf_record")
    old = reusable_manifest(path, settings, overwrite_data)
    if old is not None:
        return RecordPlan(path, settings, old, None)
    examples = reader.get_examples(data_dir, split)
    if not examples:
        raise ValueError(f"the {split} split of --data_dir {data_dir!r} has no questions")
    if is_training:
        unlabelled = next((ex for ex in examples if ex.label is None), None)
        if unlabelled is not None:
            raise ValueError(f"question {unlabelled.qid!r} of the {split} split has no answer; "
                             f"training needs answers")
        order = np.random.RandomState(shuffle_seed).permutation(len(examples))
        examples = [examples[i] for i in order]
    return RecordPlan(path, settings, None, examples)


def write_mc_records(plan, tokenizer, description=""):
    """The record file and manifest of ``plan`` (reused when it has a manifest); returns
    :class:`RecordInfo` whose manifest ``counts`` hold ``num_real`` (questions),
    ``num_truncated``, ``num_choices`` and ``levels`` ({level: questions})."""
    if plan.manifest is not None:
        return RecordInfo(plan.path, plan.manifest, True)
    s = plan.settings
    counts = {"num_real": 0, "num_truncated": 0, "num_choices": plan.num_choices,
              "levels": {}}
    start = time.time()
    os.makedirs(os.path.dirname(plan.path), exist_ok=True)
    with atomic_output(plan.path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for ex in plan.examples:
            feats = convert_example(ex, tokenizer, s["max_seq_length"], s["max_qa_length"])
            writer.write(_example_proto(feats, ex))
            counts["num_real"] += 1
            counts["num_truncated"] += int(feats.truncated)
            if ex.level:
                counts["levels"][ex.level] = counts["levels"].get(ex.level, 0) + 1
    log.info("%s: wrote %d questions to %s in %.1fs", description or s["task"],
             counts["num_real"], plan.path, time.time() - start)
    manifest = {"settings": s, "counts": counts, "record_file": os.path.basename(plan.path),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json_atomic(plan.path + MANIFEST_SUFFIX, manifest)
    return RecordInfo(plan.path, manifest, False)


def mc_dataset(record_path, batch_size, is_training, num_choices, max_seq_length,
               input_context=None, seed=0, shuffle_buffer=2048):
    """Batches ``{"input_ids" int32 [b, C, T], "seg_ids" int32 [b, C, T], "input_mask"
    float32 [b, C, T], "label" int32 [b], "qid" string [b], "level" string [b]}``.
    Training shuffles, repeats and drops the last partial batch; evaluation keeps file
    order and every question."""
    manifest = read_manifest(record_path)
    C, T = int(num_choices), int(max_seq_length)
    if manifest is not None:
        s, c = manifest["settings"], manifest["counts"]
        if s["max_seq_length"] != T or c["num_choices"] != C:
            raise ValueError(f"{record_path} holds {c['num_choices']} options x "
                             f"{s['max_seq_length']} tokens, not {C} x {T}; rebuild it")
    d = tf.data.TFRecordDataset(record_path)
    per_batch = int(batch_size)
    if input_context is not None:
        per_batch = input_context.get_per_replica_batch_size(batch_size)
        d = d.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if is_training:
        d = d.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    d = d.batch(per_batch, drop_remainder=is_training)
    spec = {"input_ids": tf.io.FixedLenFeature([C * T], tf.int64),
            "input_mask": tf.io.FixedLenFeature([C * T], tf.float32),
            "segment_ids": tf.io.FixedLenFeature([C * T], tf.int64),
            "label_ids": tf.io.FixedLenFeature([], tf.int64),
            "qid": tf.io.FixedLenFeature([], tf.string),
            "level": tf.io.FixedLenFeature([], tf.string)}

    def parse(serialized):
        ex = tf.io.parse_example(serialized, spec)
        shape = [-1, C, T]
        return {"input_ids": tf.reshape(tf.cast(ex["input_ids"], tf.int32), shape),   # [b, C, T]
                "seg_ids": tf.reshape(tf.cast(ex["segment_ids"], tf.int32), shape),   # [b, C, T]
                "input_mask": tf.reshape(ex["input_mask"], shape),                    # [b, C, T]
                "label": tf.cast(ex["label_ids"], tf.int32),                          # [b]
                "qid": ex["qid"], "level": ex["level"]}                               # [b]

    return d.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
