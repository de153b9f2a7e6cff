"""Tests of xlnet_tf/pretraining/input_pipeline.py: _local_perm, example assembly, the dataset."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from pretrain_test_utils import build, read_records, write_corpus
from xlnet_tf import manifest as manifest_lib
from xlnet_tf.pretraining import input_pipeline as pi
from xlnet_tf.tokenization.tokenizer import CLS_ID, SEP_ID

SEQ, REUSE, NP = 32, 16, 6


# --------------------------------------------------------------------------------------
# Independent reference: the consequences of the original _local_perm, written as rules.
# --------------------------------------------------------------------------------------
def reference_perm_mask(inputs, is_masked, ranks):
    n = len(inputs)
    func = [int(t) in (SEP_ID, CLS_ID) for t in inputs]
    ctx = [not is_masked[k] and not func[k] for k in range(n)]
    tgt = [bool(is_masked[k]) and not func[k] for k in range(n)]
    pm = np.zeros([n, n], np.float32)
    for i in range(n):
        for j in range(n):
            if ctx[j]:
                blocked = False                      # everyone sees context
            elif ctx[i]:
                blocked = True                       # context sees no masked/func token
            elif tgt[i]:
                blocked = not ranks[j] < ranks[i]    # target: strictly earlier only
            else:
                blocked = not ranks[j] <= ranks[i]   # sep/cls: earlier or itself
            pm[i, j] = float(blocked)
    return pm


# --------------------------------------------------------------------------------------
# Spec 4.9 worked example
# --------------------------------------------------------------------------------------
X = [21, 22, 23, 24]  # x0..x3
WORKED_INPUTS = np.array(X + [SEP_ID, CLS_ID])
# stored targets are next-token targets: x1 x2 x3 SEP CLS CLS(pad)
WORKED_TARGETS = np.array([22, 23, 24, SEP_ID, CLS_ID, CLS_ID])
WORKED_MASKED = np.array([0, 1, 0, 1, 0, 0])
WORKED_RANKS = np.array([3, 5, 1, 0, 4, 2])
WORKED_PERM_MASK = np.array([
    # x0 x1 x2 x3 SEP CLS
    [0, 1, 0, 1, 1, 1],  # x0
    [0, 1, 0, 0, 0, 0],  # x1
    [0, 1, 0, 1, 1, 1],  # x2
    [0, 1, 0, 1, 1, 1],  # x3
    [0, 1, 0, 0, 0, 0],  # SEP
    [0, 1, 0, 0, 1, 0],  # CLS
], np.float32)


def test_worked_example_of_spec_4_9():
    perm_mask, new_targets, target_mask, input_k, input_q = pi.perm_mask_from_ranks(
        WORKED_INPUTS, WORKED_TARGETS, WORKED_MASKED, WORKED_RANKS)
    np.testing.assert_array_equal(perm_mask.numpy(), WORKED_PERM_MASK)
    np.testing.assert_array_equal(target_mask.numpy(), [0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(input_q.numpy(), [0, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(input_k.numpy(), WORKED_INPUTS)
    # targets shifted back: every non-functional position predicts its own token
    np.testing.assert_array_equal(new_targets.numpy(), [21, 22, 23, 24, SEP_ID, CLS_ID])
    # the independent rule-based reference agrees
    np.testing.assert_array_equal(
        reference_perm_mask(WORKED_INPUTS, WORKED_MASKED, WORKED_RANKS), WORKED_PERM_MASK)


def test_worked_example_target_mapping_padded_to_num_predict():
    # reuse_len = 0: the whole example is one half, exactly the worked example.
    feats = pi.assemble_features(WORKED_INPUTS[None], WORKED_TARGETS[None], WORKED_MASKED[None],
                                 np.zeros([1, 6], np.int64), WORKED_RANKS[None], reuse_len=0,
                                 num_predict=4)
    expected_mapping = np.zeros([4, 6], np.float32)
    expected_mapping[0, 1] = 1
    expected_mapping[1, 3] = 1
    np.testing.assert_array_equal(feats["target_mapping"].numpy()[0], expected_mapping)
    np.testing.assert_array_equal(feats["target"].numpy()[0], [22, 24, 0, 0])
    np.testing.assert_array_equal(feats["target_mask"].numpy()[0], [1, 1, 0, 0])
    np.testing.assert_array_equal(feats["perm_mask"].numpy()[0], WORKED_PERM_MASK)


def test_perm_mask_matches_rule_reference_on_random_examples():
    rng = np.random.default_rng(3)
    n, batch = 12, 16
    inputs = rng.integers(10, 50, [batch, n])
    inputs[rng.random([batch, n]) < 0.15] = SEP_ID
    inputs[rng.random([batch, n]) < 0.1] = CLS_ID
    masked = (rng.random([batch, n]) < 0.4).astype(np.int64)
    ranks = np.stack([rng.permutation(n) for _ in range(batch)])
    targets = rng.integers(10, 50, [batch, n])
    pm, new_t, tmask, _, _ = pi.perm_mask_from_ranks(inputs, targets, masked, ranks)
    for b in range(batch):
        np.testing.assert_array_equal(pm.numpy()[b], reference_perm_mask(inputs[b], masked[b],
                                                                         ranks[b]))
        func = np.isin(inputs[b], [SEP_ID, CLS_ID])
        np.testing.assert_array_equal(tmask.numpy()[b], (masked[b] == 1) & ~func)
        np.testing.assert_array_equal(new_t.numpy()[b], np.concatenate([inputs[b, :1],
                                                                        targets[b, :-1]]))


def test_factorization_ranks_share_one_permutation_across_chunks():
    seq_len, perm_size = 12, 4
    ranks = pi.sample_factorization_ranks(seq_len, perm_size, tf.constant([1, 2], tf.int64))
    ranks = ranks.numpy().reshape(3, 4)
    pi0 = ranks[0]
    assert sorted(pi0) == [0, 1, 2, 3]
    for c in range(3):  # chunk c: c*perm_size + the same permutation
        np.testing.assert_array_equal(ranks[c], c * perm_size + pi0)
    with pytest.raises(ValueError, match="perm_size=5 must divide the length 12"):
        pi.sample_factorization_ranks(12, 5, tf.constant([1, 2], tf.int64))


def test_example_ranks_are_uniform_and_independent_between_halves():
    # the pipeline's per-example ranks for 6000 record indices, two halves of 3 (perm_size 3)
    n = 6000
    ds = tf.data.Dataset.range(n).map(lambda i: pi.example_ranks(
        tf.constant(7, tf.int64), tf.constant(0, tf.int64), tf.constant(0, tf.int64), i,
        seq_len=6, reuse_len=3, perm_size=3)).batch(n)
    ranks = next(iter(ds)).numpy()                                   # [n, 6]
    codes = []
    for half in (ranks[:, :3], ranks[:, 3:]):
        assert (np.sort(half, 1) == [0, 1, 2]).all()
        codes.append(half[:, 0] * 3 + half[:, 1])                    # identifies the perm
    joint = np.bincount(codes[0] * 9 + codes[1], minlength=81)
    cells = joint[joint > 0]
    assert len(cells) == 36                                          # 6 x 6 combinations
    expected = n / 36
    chi2 = ((cells - expected) ** 2 / expected).sum()
    assert chi2 < 75, chi2                                           # 35 dof: p ~ 1e-4
    for code in codes:
        marg = np.bincount(code)[np.bincount(code) > 0]
        assert len(marg) == 6 and (np.abs(marg - n / 6) < 5 * np.sqrt(n * 5 / 36)).all()


def test_local_perm_is_seeded_ranks_plus_masks():
    rng = np.random.default_rng(0)
    inputs = rng.integers(10, 40, 8)
    inputs[5] = SEP_ID
    targets = rng.integers(10, 40, 8)
    masked = np.array([1, 0, 0, 1, 1, 1, 0, 0])
    seed = tf.constant([4, 9], tf.int64)
    out1 = pi.local_perm(inputs, targets, masked, 4, 8, seed)
    out2 = pi.local_perm(inputs, targets, masked, 4, 8, seed)
    ranks = pi.sample_factorization_ranks(8, 4, seed).numpy()
    np.testing.assert_array_equal(out1[0].numpy(), out2[0].numpy())
    np.testing.assert_array_equal(out1[0].numpy(), reference_perm_mask(inputs, masked, ranks))


# --------------------------------------------------------------------------------------
# Dataset from real records
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rec3(tmp_path_factory):
    """3 record files (num_tasks=3), bsz_per_host=4, one core, bi_data."""
    root = tmp_path_factory.mktemp("pretrain_input")
    write_corpus(root / "corpus", num_files=3, docs_per_file=10, seed=1)
    out = root / "rec3"
    for t in range(3):
        build(str(root / "corpus" / "*.txt"), str(out), num_tasks=3, task_id=t)
    return str(out)


@pytest.fixture(scope="module")
def rec_2core(tmp_path_factory):
    """One record file laid out for 2 cores: bsz_per_host=4 -> blocks of 2 rows (fwd, bwd)."""
    root = tmp_path_factory.mktemp("pretrain_input_2core")
    write_corpus(root / "corpus", num_files=1, docs_per_file=12, seed=2)
    out = root / "rec"
    build(str(root / "corpus" / "*.txt"), str(out), num_core_per_host=2)
    return str(out)


def dataset(record_dir, batch_size=4, **kw):
    return pi.pretrain_dataset(record_dir, batch_size, SEQ, REUSE, REUSE, NP, True, **kw)


def take(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def all_raw_records(record_dir):
    manifest = pi.load_manifest(record_dir)
    recs = [read_records(os.path.join(record_dir, e["record_file"]))
            for e in manifest["record_files"]]
    return {k: np.concatenate([r[k] for r in recs]) for k in recs[0]}


def check_total_order(pm, idx):
    """Among positions idx, "i sees j" must be a strict total order (a factorization order)."""
    sees = 1 - pm[np.ix_(idx, idx)]
    n = len(idx)
    off = ~np.eye(n, dtype=bool)
    # for every pair exactly one sees the other (a tournament) ...
    np.testing.assert_array_equal((sees + sees.T)[off], np.ones(n * n - n))
    # ... and it is transitive: the out-degrees are 0..n-1, and i sees j iff j comes earlier
    score = (sees * off).sum(1)
    assert sorted(score.tolist()) == list(range(n))
    np.testing.assert_array_equal(sees[off], (score[None, :] < score[:, None])[off])


def test_dataset_examples_have_the_permutation_structure(rec3):
    raw = all_raw_records(rec3)
    batches = take(dataset(rec3), 6)
    row = 0
    for b in batches:
        for e in range(4):
            inp = b["input_k"][e]
            np.testing.assert_array_equal(inp, raw["input"][row])
            np.testing.assert_array_equal(b["seg_ids"][e], raw["seg_id"][row])  # renamed
            masked = raw["is_masked"][row].astype(bool)
            row += 1
            pm = b["perm_mask"][e]
            func = np.isin(inp, [SEP_ID, CLS_ID])
            is_tgt = masked & ~func
            ctx = ~masked & ~func
            reuse = np.arange(SEQ) < REUSE
            # block structure between the halves
            assert (pm[np.ix_(reuse, ~reuse)] == 1).all()  # reuse part never sees A/B part
            assert (pm[np.ix_(~reuse, reuse)] == 0).all()  # A/B part sees the whole reuse part
            for half in (reuse, ~reuse):
                rows = np.flatnonzero(half)
                # context tokens are seen by every query of the half and see each other
                assert (pm[np.ix_(rows, np.flatnonzero(half & ctx))] == 0).all()
                # context tokens never see a masked or functional token of the half
                assert (pm[np.ix_(np.flatnonzero(half & ctx), np.flatnonzero(half & ~ctx))]
                        == 1).all()
                check_total_order(pm, np.flatnonzero(half & ~ctx))
            np.testing.assert_array_equal(np.diag(pm)[is_tgt], 1)  # no target sees itself
            np.testing.assert_array_equal(np.diag(pm)[~is_tgt], 0)
            np.testing.assert_array_equal(b["input_q"][e], is_tgt.astype(np.float32))
            # target_mapping: one-hot rows over the real targets in order, zero padded
            k = int(is_tgt.sum())
            assert 1 <= k <= NP
            expected = np.zeros([NP, SEQ], np.float32)
            expected[np.arange(k), np.flatnonzero(is_tgt)] = 1
            np.testing.assert_array_equal(b["target_mapping"][e], expected)
            np.testing.assert_array_equal(b["target_mask"][e], [1] * k + [0] * (NP - k))
            np.testing.assert_array_equal(b["target"][e][:k], inp[is_tgt])  # own token
            np.testing.assert_array_equal(b["target"][e][k:], 0)


def test_dataset_shapes_are_static(rec3):
    spec = dataset(rec3).element_spec
    expected = {"input_k": ([4, SEQ], tf.int32), "seg_ids": ([4, SEQ], tf.int32),
                "perm_mask": ([4, SEQ, SEQ], tf.float32),
                "target_mapping": ([4, NP, SEQ], tf.float32), "target": ([4, NP], tf.int32),
                "target_mask": ([4, NP], tf.float32), "input_q": ([4, SEQ], tf.float32)}
    assert set(spec) == set(expected)
    for k, (shape, dtype) in expected.items():
        assert spec[k].shape.as_list() == shape, k
        assert spec[k].dtype == dtype, k


def test_dataset_is_deterministic_and_seeded(rec3):
    a = take(dataset(rec3, seed=5), 4)
    b = take(dataset(rec3, seed=5, num_parallel_calls=1), 4)
    c = take(dataset(rec3, seed=6), 4)
    for x, y, z in zip(a, b, c):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
        np.testing.assert_array_equal(x["input_k"], z["input_k"])  # same records
    assert any((x["perm_mask"] != z["perm_mask"]).any() for x, z in zip(a, c))


def test_skip_batches_resumes_exactly(rec3):
    manifest = pi.load_manifest(rec3)
    per_epoch = manifest["num_records"] // 4
    first_file = manifest["record_files"][0]["num_batches"]  # batches of file 0 (4 rows each)
    full = take(dataset(rec3, seed=3), per_epoch + 3)
    for skip in (2, first_file - 1, per_epoch - 1):  # inside a file, across files, across epochs
        resumed = take(dataset(rec3, seed=3, skip_batches=skip), 3)
        for x, y in zip(resumed, full[skip:skip + 3]):
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"skip={skip} key={k}")
    # the second epoch reads the same records with fresh permutations
    np.testing.assert_array_equal(full[per_epoch]["input_k"], full[0]["input_k"])
    assert (full[per_epoch]["perm_mask"] != full[0]["perm_mask"]).any()


def test_input_context_shards_files_contiguously(rec3):
    manifest = pi.load_manifest(rec3)
    files = [read_records(os.path.join(rec3, e["record_file"])) for e in manifest["record_files"]]
    ctx0 = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0,
                                      num_replicas_in_sync=2)
    ctx1 = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                      num_replicas_in_sync=2)
    n0 = len(files[0]["input"]) // 4
    got0 = take(dataset(rec3, input_context=ctx0), n0 + 1)
    got1 = take(dataset(rec3, input_context=ctx1), n0 + 1)
    # pipeline 0 reads file 0 and wraps around to it; pipeline 1 reads files 1 then 2
    stream0 = np.concatenate([files[0]["input"], files[0]["input"][:4]])
    stream1 = np.concatenate([files[1]["input"], files[2]["input"]])
    np.testing.assert_array_equal(np.concatenate([b["input_k"] for b in got0]), stream0)
    np.testing.assert_array_equal(np.concatenate([b["input_k"] for b in got1]),
                                  stream1[:4 * (n0 + 1)])
    # same records in two sharding layouts get the same permutation (keyed by file, record)
    single = take(dataset(rec3), n0 + 1)
    np.testing.assert_array_equal(single[0]["perm_mask"], got0[0]["perm_mask"])
    ctx4 = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=0,
                                      num_replicas_in_sync=4)
    with pytest.raises(ValueError, match=r"4 input pipelines but only 3 record file\(s\)"):
        dataset(rec3, input_context=ctx4)


def test_per_core_layout_is_checked(rec_2core):
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                     num_replicas_in_sync=2)
    raw = all_raw_records(rec_2core)
    got = take(dataset(rec_2core, batch_size=2, input_context=ctx), 4)
    # consecutive per-replica batches are the per-core blocks in record order
    np.testing.assert_array_equal(np.concatenate([b["input_k"] for b in got]), raw["input"][:8])
    with pytest.raises(ValueError, match=r"per-core blocks of bsz_per_host/num_core_per_host = "
                                         r"4/2 = 2 rows, but the per-replica batch size is 4"):
        dataset(rec_2core, batch_size=4, input_context=ctx)
    with pytest.raises(ValueError, match=r"built for num_core_per_host=2 replicas per host, but "
                                         r"each input pipeline feeds 1 replica"):
        dataset(rec_2core, batch_size=2)
    take(dataset(rec_2core, batch_size=2, check_layout=False), 1)  # opt-out works
    # resume after 3 steps: each step took one batch per replica, so 6 batches are skipped
    full = take(dataset(rec_2core, batch_size=2, input_context=ctx), 8)
    resumed = take(dataset(rec_2core, batch_size=2, input_context=ctx, skip_batches=3), 2)
    for x, y in zip(resumed, full[6:8]):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_check_manifest_names_every_mismatch(rec3):
    manifest = pi.check_manifest(rec3, seq_len=SEQ, reuse_len=REUSE, bi_data=True, uncased=False,
                                 num_predict=NP, bsz_per_host=4, num_core_per_host=1)
    assert manifest["vocab_size"] == 2000
    with pytest.raises(manifest_lib.ManifestMismatchError) as info:
        pi.check_manifest(rec3, seq_len=64, reuse_len=REUSE, uncased=True, num_predict=NP)
    msg = str(info.value)
    assert "seq_len: records built with 32, training uses 64" in msg
    assert "uncased: records built with False, training uses True" in msg
    assert "reuse_len" not in msg and "num_predict" not in msg
    assert "python -m xlnet_tf.pretraining.records" in msg and "change the training flags" in msg
    with pytest.raises(manifest_lib.ManifestMismatchError, match="num_predict: records built "
                                                                 "with 6, training uses 8"):
        pi.pretrain_dataset(rec3, 4, SEQ, REUSE, REUSE, 8, True)


def test_bad_dataset_arguments(rec3, tmp_path):
    with pytest.raises(ValueError, match="perm_size=5 must divide reuse_len=16"):
        pi.pretrain_dataset(rec3, 4, SEQ, REUSE, 5, NP, True)
    with pytest.raises(FileNotFoundError, match="holds no pretraining manifest"):
        pi.pretrain_dataset(str(tmp_path), 4, SEQ, REUSE, REUSE, NP, True)


def test_distribute_strategy_gives_replica_k_block_k(rec_2core, repo_root):
    """Real MirroredStrategy on 2 logical CPUs (a fresh process: devices are set at start)."""
    code = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from xlnet_tf.pretraining import input_pipeline as pi
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        dist = strategy.distribute_datasets_from_function(
            lambda ctx: pi.pretrain_dataset({rec_2core!r}, 2, {SEQ}, {REUSE}, {REUSE}, {NP}, True,
                                            input_context=ctx))
        it = iter(dist)
        for step in range(3):
            b = next(it)
            for k, t in enumerate(strategy.experimental_local_results(b["input_k"])):
                print(step, k, " ".join(map(str, t.numpy().ravel().tolist())))
    """)
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    raw = all_raw_records(rec_2core)["input"]
    lines = [ln.split() for ln in out.stdout.strip().splitlines()]
    assert len(lines) == 6
    for step, k, *vals in lines:
        step, k = int(step), int(k)
        block = raw[step * 4 + k * 2: step * 4 + k * 2 + 2]  # rows of core k at this step
        np.testing.assert_array_equal(np.array(vals, np.int64).reshape(2, SEQ), block)
