"""xlnet_tf.classification.records and .dataset: the cached TFRecords (padding, manifest
reuse and rebuild, refusals, atomic writes) and the tf.data input over them."""
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from xlnet_tf import classification as cd
from xlnet_tf.classification import get_task
from xlnet_tf.classification.records import MANIFEST_SUFFIX
from xlnet_tf.io import sha256_file
from xlnet_tf.tokenization.tokenizer import Tokenizer

FIXTURE_SPM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "spiece_test.model"


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(FIXTURE_SPM))


def _write(path, text, encoding="utf-8"):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding=encoding)
    return path


def _small_task(tmp_path, n_dev=5):
    data = tmp_path / "data"
    rows = ["sentence\tlabel"] + [f"the cat sat {'good movie ' * i}\t{i % 2}" for i in range(n_dev)]
    _write(data / "dev.tsv", "\n".join(rows) + "\n")
    rows = ["sentence\tlabel"] + [f"good movie {i}\t{i % 2}" for i in range(23)]
    _write(data / "train.tsv", "\n".join(rows) + "\n")
    return data


def _read_records(path):
    """Decodes every tf.train.Example of a record file with protobuf (independent of tf.data parsing)."""
    out = []
    for raw in tf.data.TFRecordDataset(str(path)):
        ex = tf.train.Example.FromString(raw.numpy())
        f = ex.features.feature
        out.append({
            "input_ids": list(f["input_ids"].int64_list.value),
            "input_mask": list(f["input_mask"].float_list.value),
            "segment_ids": list(f["segment_ids"].int64_list.value),
            "label_ids": list(f["label_ids"].int64_list.value) or list(f["label_ids"].float_list.value),
            "is_real_example": list(f["is_real_example"].int64_list.value),
        })
    return out


def test_eval_records_padding_and_dataset(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    info = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, eval_batch_size=4, cache_dir=cache)
    assert not info.reused
    sha = sha256_file(FIXTURE_SPM)[:12]   # named by the vocabulary's hash
    assert os.path.basename(info.path) == f"sst-2.sp-{sha}.len-12.dev.eval.tf_record"
    # Row i has 4 + 4*i tokens (+ SEP + CLS): rows 2, 3, 4 (14, 18, 22 > 12) are truncated.
    assert info.manifest["counts"] == {"num_records": 8, "num_real": 5, "num_padding": 3, "num_truncated": 3}
    recs = _read_records(info.path)
    assert [r["is_real_example"] for r in recs] == [[1]] * 5 + [[0]] * 3
    examples = p.get_dev_examples(data)
    for rec, ex in zip(recs, examples):
        f = cd.convert_single_example(ex, ["0", "1"], 12, tokenizer)
        assert rec["input_ids"] == f.input_ids and rec["segment_ids"] == f.seg_ids
        assert rec["input_mask"] == f.input_mask and rec["label_ids"] == [f.label_id]
    assert recs[5] == {"input_ids": [0] * 12, "input_mask": [1.0] * 12, "segment_ids": [0] * 12,
                       "label_ids": [0], "is_real_example": [0]}
    assert recs[0]["input_ids"] == [0] * 6 + [20, 125, 134, 924, 4, 3]
    # Manifest on disk, with sources, tokenizer hash and settings.
    m = json.loads((cache / (os.path.basename(info.path) + ".manifest.json")).read_text())
    s = m["settings"]
    assert s["max_seq_length"] == 12 and s["split"] == "dev" and s["pad_to_multiple"] == 4
    assert s["uncased"] is False and len(s["spm_sha256"]) == 64
    assert s["source_files"][0]["path"].endswith("dev.tsv") and s["source_files"][0]["size"] > 0
    assert [n for n in os.listdir(cache) if ".tmp" in n] == []
    # Dataset: batches of 4, file order, exact weights.
    batches = list(cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=12))
    assert len(batches) == 2
    b0 = batches[0]
    assert b0["input_ids"].dtype == tf.int32 and b0["seg_ids"].dtype == tf.int32
    assert b0["input_mask"].dtype == tf.float32 and b0["label"].dtype == tf.int32
    assert b0["input_ids"].shape == (4, 12)
    np.testing.assert_array_equal(b0["input_ids"][0], recs[0]["input_ids"])
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), [0, 1, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(np.concatenate([b["is_real_example"] for b in batches]), [1, 1, 1, 1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="was written with max_seq_length=12, but max_seq_length=16"):
        cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=16)


def test_manifest_reuse_and_rebuild(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    kw = dict(eval_batch_size=4, cache_dir=cache)
    first = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, **kw)
    mtime = os.stat(first.path).st_mtime_ns
    again = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, **kw)
    assert again.reused and os.stat(first.path).st_mtime_ns == mtime
    # Eval batch size changes the padding -> rebuild.
    r = cd.prepare_classifier_records(p, data, "dev", tokenizer, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_records"] == 6
    # uncased tokenizer -> rebuild (lower-casing changes the ids).
    lower = Tokenizer(str(FIXTURE_SPM), lower=True)
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["settings"]["uncased"] is True
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert r.reused
    # Source file changed (size) -> rebuild with the new count.
    with open(data / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("one more\t1\n")
    r = cd.prepare_classifier_records(p, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_real"] == 6
    # Task options (which files) are part of the settings.
    _write(data / "dev_extra.tsv", "sentence\tlabel\nx\t0\n")
    p2 = get_task("sst-2", dev_file="dev.tsv,dev_extra.tsv")
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused and r.manifest["counts"]["num_real"] == 7
    # overwrite_data forces a rebuild; a record file without manifest is rebuilt too.
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache,
                                      overwrite_data=True)
    assert not r.reused
    os.remove(r.path + MANIFEST_SUFFIX)
    r = cd.prepare_classifier_records(p2, data, "dev", lower, 12, eval_batch_size=3, cache_dir=cache)
    assert not r.reused


def test_read_only_cache_dir_is_refused(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    os.chmod(data, 0o555)
    try:
        with pytest.raises(PermissionError, match=r"read-only folder.*pass cache_dir"):
            cd.prepare_classifier_records(get_task("sst-2"), data, "dev", tokenizer, 12,
                                          cache_dir=data)
        assert sorted(os.listdir(data)) == ["dev.tsv", "train.tsv"]
    finally:
        os.chmod(data, 0o755)


def test_failed_conversion_leaves_no_files(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"

    class Exploding:
        lower = False
        keep_accents = False
        spiece_model_path = str(FIXTURE_SPM)

        def __init__(self):
            self.n = 0

        def serialized_model_proto(self):
            return FIXTURE_SPM.read_bytes()

        def encode_ids(self, text):
            self.n += 1
            if self.n == 3:
                raise RuntimeError("boom")
            return tokenizer.encode_ids(text)

    with pytest.raises(RuntimeError, match="boom"):
        cd.prepare_classifier_records(get_task("sst-2"), data, "dev", Exploding(), 12, cache_dir=cache)
    assert os.listdir(cache) == []


def test_train_records_and_dataset(tmp_path, tokenizer):
    data = _small_task(tmp_path)
    cache = tmp_path / "cache"
    p = get_task("sst-2")
    info = cd.prepare_classifier_records(p, data, "train", tokenizer, 10, cache_dir=cache, shuffle_seed=3)
    sha = sha256_file(FIXTURE_SPM)[:12]
    assert os.path.basename(info.path) == f"sst-2.sp-{sha}.len-10.train.tf_record"
    assert info.manifest["counts"]["num_records"] == 23
    recs = _read_records(info.path)
    examples = p.get_train_examples(data)
    order = np.random.RandomState(3).permutation(23)  # shuffled once before writing, seeded
    for rec, i in zip(recs, order):
        assert rec["input_ids"] == cd.convert_single_example(examples[i], ["0", "1"], 10, tokenizer).input_ids

    def first_batches(seed):
        d = cd.classifier_dataset(info.path, 8, is_training=True, max_seq_length=10, seed=seed)
        return [b["input_ids"].numpy() for b in d.take(6)]

    a, b = first_batches(1), first_batches(1)
    assert all(x.shape == (8, 10) for x in a)  # static, partial batches dropped, repeats forever
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    d = cd.classifier_dataset(info.path, 8, is_training=True, max_seq_length=10, seed=1)
    assert d.element_spec["input_ids"].shape.as_list() == [8, 10]
    # Sharding with an InputContext: 2 pipelines, global batch 4 -> per-replica 2, disjoint halves.
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        d = cd.classifier_dataset(info.path, 4, is_training=False, max_seq_length=10, input_context=ctx)
        rows = [tuple(r) for bt in d for r in bt["input_ids"].numpy()]
        assert all(bt["input_ids"].shape[0] <= 2 for bt in d)
        seen.append(rows)
    assert len(seen[0]) == 12 and len(seen[1]) == 11
    assert sorted(seen[0] + seen[1]) == sorted(tuple(r["input_ids"]) for r in recs)


def test_regression_records(tmp_path, tokenizer, shared_data):
    p = get_task("sts-b")
    info = cd.prepare_classifier_records(p, shared_data / "glue" / "STS-B", "dev", tokenizer, 32,
                                         eval_batch_size=64, cache_dir=tmp_path)
    assert info.manifest["counts"]["num_real"] == 1500 and info.manifest["counts"]["num_records"] == 1536
    d = cd.classifier_dataset(info.path, 64, is_training=False, max_seq_length=32, is_regression=True)
    first = next(iter(d))
    assert first["label"].dtype == tf.float32
    np.testing.assert_allclose(first["label"][:2], [5.0, 4.75])
    total = sum(float(b["is_real_example"].numpy().sum()) for b in d)
    assert total == 1500
