"""tf.data input for XLNet pretraining: records -> permutation-LM batches (the original's
``data_utils.parser`` and ``_local_perm``).

Each record (:mod:`xlnet_tf.pretraining.records`) holds ``seq_len`` tokens laid out as
``reuse part (reuse_len) | A <sep> B <sep> <cls>`` with ``num_predict`` positions pre-selected
for prediction (``is_masked``). The reader turns it into the two-stream inputs:

* a factorization order is sampled separately for the reuse part and for the A/B part
  (:func:`local_perm`), and the whole reuse part precedes the whole A/B part::

      rows (query) \\ cols (key)   reuse part      A/B part
      reuse part                  perm_mask_0     all 1 (cannot see A/B)
      A/B part                    all 0 (sees)    perm_mask_1

* ``perm_mask[i, j] = 1`` means query i may NOT attend key j — the ORIGINAL convention
  (docs/CONTRACTS.md; the model converts it once in ``xlnet_tf/modeling/masks.py``);
* ``target_mapping`` one-hot rows of the predicted positions, zero-padded to ``num_predict``;
  ``target`` / ``target_mask`` likewise; ``input_q`` = 1 at predicted positions.

Batch (``pretrain_dataset``), every shape static, per replica::

    input_k        int32   [B, T]
    seg_ids        int32   [B, T]     (the records' ``seg_id``)
    perm_mask      float32 [B, T, T]
    target_mapping float32 [B, P, T]     P = num_predict
    target         int32   [B, P]
    target_mask    float32 [B, P]
    input_q        float32 [B, T]

Order and memory. Records are read file by file in manifest order (sorted by pass, then
task) and batched without any shuffling: the record files hold, per step, ``bsz_per_host``
rows = ``num_core_per_host`` consecutive per-core blocks, so ``batch(bsz_per_core)`` yields
exactly the per-core blocks, and ``distribute_datasets_from_function`` hands a pipeline's
consecutive per-replica batches round-robin to that worker's replicas: replica k gets block k
of every step, whose rows continue its rows of the previous step (the Transformer-XL memory). The
original shuffled the order of record FILES each epoch (unseeded); we keep the fixed order so
a resumed run sees exactly the data of an uninterrupted one (several passes give variety).

Determinism. The permutation of each example is drawn with stateless random ops keyed by
``(seed, epoch, file index in the merged manifest, record index in the file)``, so the
batches are identical for a given seed whatever the parallelism, the sharding across
pipelines, or a restart:
``skip_batches=n`` skips the raw records of the first n steps (without parsing them) and
yields exactly what an uninterrupted run yields from step n on.
"""
import os

import tensorflow as tf

from xlnet_tf.pretraining import records as records_lib
from xlnet_tf import manifest as manifest_lib
from xlnet_tf.tokenization.tokenizer import CLS_ID, SEP_ID

_RNG_ALG = "philox"  # explicit: "auto_select" may pick another algorithm on another device

# Record features used by the reader (``label`` is stored but no loss uses it).
_FEATURES = ("input", "is_masked", "target", "seg_id")


# --------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------
def load_manifest(record_dir):
    """The merged manifest of ``record_dir`` (all tasks and passes; raises if incomplete)."""
    return records_lib.merge_manifest_parts(record_dir, require_complete=True)


def check_manifest(record_dir, **expected):
    """Compares the records' build settings with the training settings; returns the manifest.

    Args:
      record_dir: folder written by ``create_pretrain_records``.
      **expected: settings to check, e.g. ``seq_len=512, reuse_len=256, bi_data=True,
        num_predict=85, uncased=False, bsz_per_host=32, num_core_per_host=8``. None values
        are not checked.
    Returns:
      the merged manifest (dict) — vocab_size, num_batches, record_files, ...
    Raises:
      ManifestMismatchError (a ValueError) naming every disagreeing key with both values.
    """
    manifest = load_manifest(record_dir)
    manifest_lib.compare(
        manifest, expected,
        source=f"Pretraining records in {os.fspath(record_dir)!r}",
        have_name="records built with", want_name="training uses",
        hint="Rebuild the records with `python -m xlnet_tf.pretraining.records` and "
             "the training values, or change the training flags to the record values.")
    return manifest


# --------------------------------------------------------------------------------------
# Permutation (the original's _local_perm)
# --------------------------------------------------------------------------------------
def sample_factorization_ranks(seq_len, perm_size, seed):
    """Factorization rank of every position.

    Positions are viewed as ``[seq_len/perm_size, perm_size]`` chunks; one random
    permutation pi of ``{0..perm_size-1}`` is shared by all chunks, so position
    ``c*perm_size + j`` gets rank ``c*perm_size + pi(j)``: chunks keep their order, the order
    inside a chunk is random.

    Args:
      seq_len, perm_size: python ints, perm_size divides seq_len.
      seed: int tensor [2] (stateless seed).
    Returns:
      int32 [seq_len].
    """
    if seq_len % perm_size:
        raise ValueError(f"perm_size={perm_size} must divide the length {seq_len}.")
    keys = tf.random.stateless_uniform([perm_size], seed, minval=None, maxval=None,
                                       dtype=tf.int64, alg=_RNG_ALG)   # [P] iid full-range
    pi = tf.argsort(keys, stable=True)                                 # [P] uniform perm
    chunk_base = tf.range(0, seq_len, perm_size)[:, None]              # [C, 1]
    return tf.reshape(chunk_base + pi[None, :], [seq_len])             # [seq_len]


def perm_mask_from_ranks(inputs, targets, is_masked, ranks):
    """The permutation-LM view of one half given its factorization ranks.

    Works on any leading batch shape ``[..., L]``.

    * context tokens (not selected, not <sep>/<cls>) get effective rank -1: every query sees
      them, and they see only each other;
    * selected tokens and <sep>/<cls> keep their rank; a target sees keys of strictly smaller
      rank, a <sep>/<cls> keys of smaller or equal rank (itself included);
    * a target never sees itself (``perm_mask[i, i] = 1``).

    Returns:
      perm_mask float32 [..., L, L] (1 = query i may not attend key j), new_targets int32
      [..., L] (targets shifted back: each position's own token), target_mask float32 [..., L]
      (1 = selected and not <sep>/<cls>), input_k int32 [..., L], input_q float32 [..., L].
    """
    inputs = tf.cast(inputs, tf.int32)                                 # [..., L]
    targets = tf.cast(targets, tf.int32)                               # [..., L]
    is_masked = tf.cast(is_masked, tf.bool)                            # [..., L]
    ranks = tf.cast(ranks, tf.int32)                                   # [..., L]
    func = tf.equal(inputs, SEP_ID) | tf.equal(inputs, CLS_ID)         # [..., L]
    non_mask = tf.logical_not(is_masked) & tf.logical_not(func)        # [..., L]
    masked_or_func = tf.logical_not(non_mask)                          # [..., L]
    target_tokens = is_masked & tf.logical_not(func)                   # [..., L]
    rev_index = tf.where(non_mask, -tf.ones_like(ranks), ranks)        # [..., L]
    self_rev_index = tf.where(target_tokens, rev_index, rev_index + 1)  # [..., L]
    blocked = ((self_rev_index[..., :, None] <= rev_index[..., None, :])
               & masked_or_func[..., None, :])                         # [..., L, L]
    perm_mask = tf.cast(blocked, tf.float32)                           # [..., L, L]
    new_targets = tf.concat([inputs[..., :1], targets[..., :-1]], axis=-1)  # [..., L]
    target_mask = tf.cast(target_tokens, tf.float32)                   # [..., L]
    return perm_mask, new_targets, target_mask, inputs, target_mask


def local_perm(inputs, targets, is_masked, perm_size, seq_len, seed):
    """The original ``_local_perm`` for one half of a record: ranks + masks.

    Args:
      inputs, targets, is_masked: [seq_len] int (is_masked may be bool).
      perm_size: chunk size of the permutation (divides seq_len).
      seq_len: python int, the half's length.
      seed: int tensor [2], stateless seed.
    Returns:
      (perm_mask float32 [seq_len, seq_len], new_targets int32 [seq_len],
       target_mask float32 [seq_len], input_k int32 [seq_len], input_q float32 [seq_len]).
    """
    ranks = sample_factorization_ranks(seq_len, perm_size, seed)       # [seq_len]
    return perm_mask_from_ranks(inputs, targets, is_masked, ranks)


def assemble_features(inputs, targets, is_masked, seg_id, ranks, reuse_len, num_predict):
    """Full examples from the two halves (as the original's ``parser`` joins them), batched.

    Args:
      inputs, targets, is_masked, seg_id: [B, T] from the records.
      ranks: int32 [B, T]; positions [0, reuse_len) hold the reuse half's ranks, the rest
        the A/B half's (each half's ranks count from 0).
      reuse_len, num_predict: python ints.
    Returns:
      dict of the batch keys listed in the module docstring.
    """
    seq_len = inputs.shape[-1]
    # Both halves in one broadcast compare; cross-half entries are overwritten below.
    perm_mask, new_targets, target_mask, input_k, input_q = perm_mask_from_ranks(
        inputs, targets, is_masked, ranks)                             # [B, T, T], [B, T] ...
    pos = tf.range(seq_len)
    in_reuse = pos < reuse_len                                         # [T]
    same_half = tf.equal(in_reuse[:, None], in_reuse[None, :])         # [T, T]
    reuse_sees_ab = in_reuse[:, None] & tf.logical_not(in_reuse)[None, :]  # [T, T] blocked
    perm_mask = tf.where(same_half[None], perm_mask,
                         tf.cast(reuse_sees_ab, tf.float32)[None])     # [B, T, T]

    # target_mapping: slot s of the k-th predicted position is k (k = running count - 1).
    is_tgt = target_mask > 0                                           # [B, T]
    slot = tf.cumsum(tf.cast(is_tgt, tf.int32), axis=-1) - 1           # [B, T]
    onehot = (tf.equal(slot[:, None, :], tf.range(num_predict)[None, :, None])
              & is_tgt[:, None, :])                                    # [B, P, T]
    target_mapping = tf.cast(onehot, tf.float32)                       # [B, P, T]
    target = tf.reduce_sum(tf.cast(onehot, tf.int32) * new_targets[:, None, :], axis=-1)  # [B, P]
    target_mask_p = tf.cast(tf.reduce_any(onehot, axis=-1), tf.float32)  # [B, P]
    return {
        "input_k": input_k,                                            # [B, T]
        "seg_ids": tf.cast(seg_id, tf.int32),                          # [B, T]
        "perm_mask": perm_mask,                                        # [B, T, T]
        "target_mapping": target_mapping,                              # [B, P, T]
        "target": target,                                              # [B, P]
        "target_mask": target_mask_p,                                  # [B, P]
        "input_q": input_q,                                            # [B, T]
    }


def example_seed(seed, epoch, file_index, record_index):
    """Stateless seed [2] of one example: ``seed`` folded with epoch, file and record index."""
    key = tf.stack([tf.constant(0, tf.int64), tf.cast(seed, tf.int64)])
    for data in (epoch, file_index, record_index):
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(data, tf.int64),
                                                       alg=_RNG_ALG)
    return key


def example_ranks(seed, epoch, file_index, record_index, seq_len, reuse_len, perm_size):
    """int32 [seq_len]: the reuse half's ranks then the A/B half's, for one example."""
    key = example_seed(seed, epoch, file_index, record_index)
    k0 = tf.random.experimental.stateless_fold_in(key, 0, alg=_RNG_ALG)
    k1 = tf.random.experimental.stateless_fold_in(key, 1, alg=_RNG_ALG)
    return tf.concat([sample_factorization_ranks(reuse_len, perm_size, k0),
                      sample_factorization_ranks(seq_len - reuse_len, perm_size, k1)], 0)


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------
def shard_files(record_files, num_pipelines, pipeline_id):
    """This pipeline's contiguous share of the files; the last one takes the remainder.

    (The original's split across hosts.) Returns a list of ``(global_index, entry)``.
    """
    n = len(record_files)
    if n < num_pipelines:
        raise ValueError(
            f"{num_pipelines} input pipelines but only {n} record file(s): every pipeline needs "
            f"at least one. Build the records with --num_tasks >= {num_pipelines} (or more "
            f"passes), or use fewer input pipelines / hosts.")
    per = n // num_pipelines
    start = pipeline_id * per
    end = n if pipeline_id == num_pipelines - 1 else start + per
    return [(i, record_files[i]) for i in range(start, end)]


def _check_layout(manifest, batch_size, replicas_per_pipeline, record_dir):
    bsz_per_host = manifest["bsz_per_host"]
    cores = manifest["num_core_per_host"]
    bsz_per_core = bsz_per_host // cores
    how = (f"Rebuild the records with --bsz_per_host={batch_size * replicas_per_pipeline} "
           f"--num_core_per_host={replicas_per_pipeline}, or train with a per-replica batch of "
           f"{bsz_per_core} on {cores} replica(s) per input pipeline (pass check_layout=False "
           f"only if neither memory nor bi_data depend on the row layout).")
    if batch_size != bsz_per_core:
        raise ValueError(
            f"Records in {record_dir!r} hold per-core blocks of bsz_per_host/num_core_per_host = "
            f"{bsz_per_host}/{cores} = {bsz_per_core} rows, but the per-replica batch size is "
            f"{batch_size}: rows would not continue from step to step (memory) and forward/"
            f"backward halves would not line up (bi_data). " + how)
    if replicas_per_pipeline != cores:
        raise ValueError(
            f"Records in {record_dir!r} were built for num_core_per_host={cores} replicas per "
            f"host, but each input pipeline feeds {replicas_per_pipeline} replica(s): replica k "
            f"would not get block k of every step. " + how)


def pretrain_dataset(record_dir, batch_size, seq_len, reuse_len, perm_size, num_predict,
                     bi_data, *, input_context=None, seed=0, skip_batches=0, expected=None,
                     check_layout=True, num_parallel_calls=tf.data.AUTOTUNE,
                     read_buffer_bytes=8 << 20):
    """Infinite dataset of per-replica pretraining batches (keys in the module docstring).

    Args:
      record_dir: folder written by ``create_pretrain_records`` (all parts are used).
      batch_size: PER-REPLICA batch; must equal the records' bsz_per_host/num_core_per_host.
      seq_len, reuse_len, num_predict, bi_data: must match the records (checked).
      perm_size: chunk size of the factorization order; divides reuse_len and
        seq_len - reuse_len (the original's assertion perm_size <= both halves).
      input_context: ``tf.distribute.InputContext`` (from
        ``distribute_datasets_from_function``); pipeline i of n reads its share of the files.
      seed: seed of the permutations.
      skip_batches: training steps already done (resume): this pipeline skips
        ``skip_batches * replicas_per_pipeline`` per-replica batches of raw records.
      expected: more settings to check against the manifest, e.g. ``{"uncased": False}``.
      check_layout: require the per-host/per-core row layout of the records to fit
        ``batch_size`` and the replicas per pipeline.
      num_parallel_calls: parallelism of the map stages (order stays deterministic).
    Returns:
      tf.data.Dataset of dicts with static shapes (drop_remainder=True).
    """
    record_dir = os.fspath(record_dir)
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len),
                        ("reuse_len", reuse_len), ("perm_size", perm_size),
                        ("num_predict", num_predict)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(skip_batches, int) or skip_batches < 0:
        raise ValueError(f"skip_batches must be an integer >= 0, got {skip_batches!r}.")
    ab_len = seq_len - reuse_len
    if reuse_len % perm_size or ab_len % perm_size:
        raise ValueError(
            f"perm_size={perm_size} must divide reuse_len={reuse_len} and seq_len - reuse_len = "
            f"{ab_len} (the permutation is sampled per half, in chunks of perm_size; the usual "
            f"choice is perm_size = reuse_len = seq_len/2).")
    want = dict(seq_len=seq_len, reuse_len=reuse_len, num_predict=num_predict,
                bi_data=bool(bi_data))
    want.update(expected or {})
    manifest = check_manifest(record_dir, **want)

    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    replicas = input_context.num_replicas_in_sync if input_context else 1
    if replicas % num_pipelines:
        raise ValueError(f"{replicas} replicas do not split evenly over {num_pipelines} "
                         f"input pipelines.")
    replicas_per_pipeline = replicas // num_pipelines
    if check_layout:
        _check_layout(manifest, batch_size, replicas_per_pipeline, record_dir)

    files = shard_files(manifest["record_files"], num_pipelines, pipeline_id)
    paths = [os.path.join(record_dir, e["record_file"]) for _, e in files]
    counts = [int(e["num_records"]) for _, e in files]
    per_epoch = sum(counts)
    if per_epoch < batch_size:
        raise ValueError(f"{paths} hold {per_epoch} records, fewer than one batch "
                         f"of {batch_size}.")

    # Resume: find (epoch, file position, offset) of the first record to yield.
    start = skip_batches * replicas_per_pipeline * batch_size
    epoch, within = divmod(start, per_epoch)
    pos = 0
    while within >= counts[pos]:
        within -= counts[pos]
        pos += 1
    num_files = len(files)
    first_visit = epoch * num_files + pos

    paths_t = tf.constant(paths)
    file_ids_t = tf.constant([i for i, _ in files], tf.int64)
    seed_t = tf.constant(seed, tf.int64)

    def visit(v):  # v-th file visit of this pipeline: epoch v // F, file v % F
        k = v % num_files
        records = tf.data.TFRecordDataset(paths_t[k], buffer_size=read_buffer_bytes)
        records = records.enumerate()
        records = records.skip(tf.where(tf.equal(v, first_visit), tf.constant(within, tf.int64),
                                        tf.constant(0, tf.int64)))  # raw records, not parsed
        epoch_v, fid = v // num_files, file_ids_t[k]
        return records.map(lambda idx, rec: (rec, epoch_v, fid, idx))

    def add_ranks(rec, epoch_v, fid, idx):
        return rec, example_ranks(seed_t, epoch_v, fid, idx, seq_len, reuse_len, perm_size)

    feature_spec = {k: tf.io.FixedLenFeature([seq_len], tf.int64) for k in _FEATURES}

    def parse_batch(recs, ranks):  # recs [B] strings, ranks [B, T]
        f = tf.io.parse_example(recs, feature_spec)                    # each [B, T] int64
        return assemble_features(f["input"], f["target"], f["is_masked"], f["seg_id"], ranks,
                                 reuse_len, num_predict)

    ds = tf.data.Dataset.range(first_visit, tf.int64.max)
    ds = ds.flat_map(visit)
    ds = ds.map(add_ranks, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(parse_batch, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
