r"""Pretraining records for XLNet, built like the original ``data_utils.py``.

Command line (flags at the bottom; the library functions take plain arguments)::

    python -m xlnet_tf.pretraining.records \
        --input_glob "corpus/*.txt" --save_dir records/ --spiece_model spiece.model \
        --seq_len 512 --reuse_len 256 --bi_data --num_predict 85 \
        --bsz_per_host 32 --num_core_per_host 8 --num_tasks 1 --task_id 0 --pass_id 0

Pipeline, per task (the original's ``data_utils.py``):

1. **Corpus.** Every file matched by ``--input_glob`` (sorted; this task takes
   ``files[task_id::num_tasks]``) holds one sentence per line; a blank line ends a document.
   Each line is encoded as ``encode_ids(sp, preprocess_text(line, lower=uncased))``; a blank
   line becomes ``<eod>`` (with ``use_eod``) or is skipped. Every token carries a boolean
   *sentence flag* that flips after each line, so sentence boundaries are the places where the
   flag changes. ``<eod>`` gets the flag of the sentence before it (it is glued to the last
   sentence of its document). Tokenisation runs in ``num_workers`` processes.
2. **Stream.** The per-file shards are shuffled (seeded) and concatenated; a shard whose first
   flag equals the previous shard's last flag is inverted so the boundary stays visible.
3. **Batchify** (the original's ``batchify``). Without ``bi_data`` the stream is cut into
   ``bsz_per_host`` rows. With ``bi_data`` it is cut into ``bsz_per_host/2`` forward rows;
   per core the block is ``[its bsz_per_core/2 forward rows, the same rows reversed in
   time]``::

       bsz_per_host = 8, num_core_per_host = 2  ->  rows
         core 0: f0 f1 rev(f0) rev(f1)    core 1: f2 f3 rev(f2) rev(f3)

4. **Records** (the original's ``create_tfrecords``). Every ``reuse_len`` steps along the
   rows, each row yields one example of ``seq_len`` tokens:
   ``reuse part (reuse_len) | A <sep> B <sep> <cls>`` where B is the true continuation of A
   (label 1) or, half of the time, a random span of the same row (label 0)
   (:func:`split_a_and_b`). ``num_predict`` positions are selected for prediction by
   n-gram span masking (:func:`sample_mask`), ``num_predict - num_predict//2`` of them in the
   reuse part and ``num_predict//2`` in the A/B part. Records go out step by step (all
   ``bsz_per_host`` rows of step 0, then step 1, ...), never shuffled: row r of step s+1
   continues row r of step s, which is what makes the Transformer-XL memory valid.

Record features (int64)::

    input     [seq_len]  token ids
    is_masked [seq_len]  1 = selected for prediction
    target    [seq_len]  next-token targets (shifted back by the reader's _local_perm)
    seg_id    [seq_len]  0 reuse+A+first <sep>, 1 B+second <sep>, 2 <cls>
    label     [1]        1 = B continues A (stored, unused by any loss)

Outputs in ``save_dir`` (race-free with several tasks writing into the same folder):

* ``train-{task_id}-{pass_id}.tfrecord`` — this task's records;
* ``manifest-task{task_id}-pass{pass_id}.json`` — every build setting (seq_len, reuse_len,
  bi_data, num_predict, mask_alpha, mask_beta, uncased, use_eod, bsz_per_host,
  num_core_per_host, vocab_size, spiece sha256, input_glob, num_tasks, seed), this task's
  input files, token counts and the number of batches/records in its file. Written only
  after the record file is complete, so its presence certifies that file;
* ``manifest.json`` — the merge of every part present, rewritten by each finishing task
  under an exclusive file lock (so the last task to finish leaves the complete merge).
  Readers (``input_pipeline.check_manifest``) always merge the parts themselves, so they
  never depend on which task finished last.

Every file is written to a temporary name and renamed, so an interrupted run never leaves
output that looks complete. Randomness comes from one ``numpy.random.Generator`` seeded with
``(seed, task_id, pass_id)``: the same command gives byte-identical records.

Differences from the original, on purpose: the RNG is seeded per (seed, task, pass) instead of
the global numpy/Python RNGs; a line that encodes to no piece at all does not flip the sentence
flag (the original flipped it, merging its neighbours into one "sentence"); a top-up of masked
positions that cannot reach ``num_predict`` raises instead of looping forever; ``reuse_len``
need not be ``seq_len/2`` (the original asserted that indirectly); ``--num_core_per_host`` is
used as given (the original forced it to 1 when ``--use_tpu=False``); outputs are named
``train-{task}-{pass}.tfrecord`` + JSON manifests instead of the original's long suffixed names
and ``record_info-*.json`` / ``corpus_info.json``.
"""
import bisect
import functools
import glob
import logging
import multiprocessing
import os
import re
import signal
import string
import time

import numpy as np
from absl import flags

from xlnet_tf import cli
from xlnet_tf import io as io_lib
from xlnet_tf import manifest as manifest_lib
from xlnet_tf import progress as progress_lib
from xlnet_tf.tokenization.tokenizer import CLS_ID, EOD_ID, SEP_ID, SPIECE_UNDERLINE, Tokenizer

log = logging.getLogger("xlnet_tf")

FORMAT_NAME = "xlnet_tf.pretrain_records"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".manifest.lock"
MAX_GRAM = 5  # longest n-gram span of _sample_mask (a constant in the original; --max_gram).
RECORD_FEATURES = ("input", "is_masked", "target", "seg_id", "label")  # all int64

# Settings that every task/pass in one save_dir must share (compared when merging parts and
# by the reader against the training flags).
BUILD_KEYS = ("seq_len", "reuse_len", "bi_data", "num_predict", "mask_alpha", "mask_beta",
              "uncased", "use_eod", "bsz_per_host", "num_core_per_host", "vocab_size",
              "spiece_sha256", "input_glob", "num_tasks", "seed", "max_gram")

# ASCII punctuation that counts as a word start in _sample_mask: string.punctuation minus
# "'", "=", ">" (the original's set literal repeats '"' where "'" was presumably meant) and
# minus "<", which is covered anyway because every piece starting with "<" counts.
_START_PUNCT = frozenset(string.punctuation) - {"'", "=", ">", "<"}


def record_file_name(task_id, pass_id):
    return f"train-{task_id}-{pass_id}.tfrecord"


def manifest_part_name(task_id, pass_id):
    return f"manifest-task{task_id}-pass{pass_id}.json"


_PART_RE = re.compile(r"^manifest-task(\d+)-pass(\d+)\.json$")


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------
def validate_config(seq_len, reuse_len, bi_data, num_predict, mask_alpha, mask_beta,
                    bsz_per_host, num_core_per_host, max_gram=MAX_GRAM):
    """Raises ValueError (naming the flag) for settings that cannot produce records."""
    def _int(name, value, minimum):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"--{name} must be an integer >= {minimum}, got {value!r}.")

    _int("seq_len", seq_len, 5)
    _int("reuse_len", reuse_len, 1)
    _int("num_predict", num_predict, 1)
    _int("mask_alpha", mask_alpha, 1)
    _int("mask_beta", mask_beta, 1)
    _int("max_gram", max_gram, 1)
    _int("bsz_per_host", bsz_per_host, 1)
    _int("num_core_per_host", num_core_per_host, 1)
    if reuse_len >= seq_len - 3:
        raise ValueError(
            f"--reuse_len={reuse_len} must be smaller than --seq_len - 3 = {seq_len - 3}: every "
            f"record needs room for A <sep> B <sep> <cls> after the reuse part "
            f"(the usual choice is reuse_len = seq_len / 2).")
    if mask_alpha < mask_beta:
        raise ValueError(
            f"--mask_alpha={mask_alpha} must be >= --mask_beta={mask_beta}: the context of an "
            f"n-gram span is n*mask_alpha//mask_beta tokens and must hold at least one token.")
    num_predict_ab = num_predict // 2
    num_predict_reuse = num_predict - num_predict_ab
    ab_len = seq_len - reuse_len
    if num_predict_reuse > reuse_len or num_predict_ab > ab_len:
        raise ValueError(
            f"--num_predict={num_predict} is larger than possible for --seq_len={seq_len} "
            f"--reuse_len={reuse_len}: {num_predict_reuse} predictions go to the reuse part "
            f"({reuse_len} tokens) and {num_predict_ab} to the A/B part ({ab_len} tokens). "
            f"Use at most {2 * min(reuse_len, ab_len)} (the usual ratio is seq_len/6, e.g. 85 "
            f"for 512).")
    split = 2 * num_core_per_host if bi_data else num_core_per_host
    if bsz_per_host % split:
        raise ValueError(
            f"--bsz_per_host={bsz_per_host} must be divisible by "
            + ("2 * --num_core_per_host" if bi_data else "--num_core_per_host")
            + f" = {split}"
            + (" (with --bi_data every core's block holds forward rows and their reversals)"
               if bi_data else "")
            + ".")


# --------------------------------------------------------------------------------------
# Corpus loading
# --------------------------------------------------------------------------------------
def resolve_input_files(input_glob):
    """Sorted, de-duplicated files matched by comma-separated glob patterns.

    Raises FileNotFoundError naming the patterns when nothing matches, ValueError naming a
    file that is UTF-16 or compressed (its first bytes; :func:`xlnet_tf.io.check_text_file`).
    """
    patterns = [p.strip() for p in str(input_glob).split(",") if p.strip()]
    if not patterns:
        raise ValueError("--input_glob is empty: pass one or more comma-separated glob patterns.")
    files = set()
    for pattern in patterns:
        files.update(f for f in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(f))
    if not files:
        raise FileNotFoundError(
            f"--input_glob={input_glob!r} matches no file. Check the path (quote the pattern "
            f"so the shell does not expand it) and that the files exist.")
    for path in sorted(files):
        io_lib.check_text_file(path, "--input_glob file")
    return sorted(files)


def sentence_flags(unit_lengths, unit_is_eod, first_flag=True):
    """Per-token sentence flags from the units (sentences / EODs) of one file.

    The original flips a boolean after every sentence; for an EOD it flips before and after
    emitting it, so the EOD carries the flag of the sentence before it. Hence the flag of unit
    u is ``first_flag XOR (number of sentences before u is odd) XOR (u is an EOD)``.

    Returns bool [sum(unit_lengths)].
    """
    unit_is_eod = np.asarray(unit_is_eod, bool)
    is_sentence = ~unit_is_eod
    sentences_before = np.cumsum(is_sentence) - is_sentence                     # [U]
    unit_flag = (bool(first_flag) ^ (sentences_before % 2 == 1)) ^ unit_is_eod    # [U]
    return np.repeat(unit_flag, np.asarray(unit_lengths, np.int64))


# Each worker process keeps one Tokenizer (loading a SentencePiece model per chunk is slow).
_WORKER_TOKENIZER = {}


def _get_tokenizer(spiece_model, uncased):
    key = (spiece_model, bool(uncased))
    tok = _WORKER_TOKENIZER.get(key)
    if tok is None:
        tok = Tokenizer(spiece_model, lower=uncased)
        _WORKER_TOKENIZER.clear()
        _WORKER_TOKENIZER[key] = tok
    return tok


def _tokenize_chunk(job):
    """Tokenises consecutive lines of one file (runs in a worker process).

    Args:
      job: (path, first_line_number, list of raw byte lines, spiece_model, uncased, use_eod).
    Returns:
      (ids int32 [N], unit_lengths int32 [U], unit_is_eod bool [U], num_lines) or, for a line
      that is not UTF-8, ("utf8-error", line_number, byte_offset_in_line, reason).
    """
    path, first_line, lines, spiece_model, uncased, use_eod = job
    tok = _get_tokenizer(spiece_model, uncased)
    ids, lengths, is_eod = [], [], []
    for k, raw in enumerate(lines):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return ("utf8-error", first_line + k, e.start, e.reason)
        if first_line + k == 1 and line.startswith("\ufeff"):
            line = line[1:]  # byte-order mark
        if not line.strip():
            if use_eod:
                ids.append(EOD_ID)
                lengths.append(1)
                is_eod.append(True)
            continue
        cur = tok.encode_ids(line.strip())
        if not cur:
            continue  # nothing to emit: do not flip the flag (see module docstring)
        ids.extend(cur)
        lengths.append(len(cur))
        is_eod.append(False)
    return (np.asarray(ids, np.int32), np.asarray(lengths, np.int32),
            np.asarray(is_eod, bool), len(lines))


def _chunk_jobs(files, spiece_model, uncased, use_eod, lines_per_chunk):
    """Yields (file_index, job) with at most ``lines_per_chunk`` lines per job, in order."""
    for fi, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline that ends the last line does not start a new one
        lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        if not lines:
            yield fi, (path, 1, [], spiece_model, uncased, use_eod)
            continue
        for start in range(0, len(lines), lines_per_chunk):
            yield fi, (path, start + 1, lines[start:start + lines_per_chunk], spiece_model,
                       uncased, use_eod)


def _ignore_sigint():
    """Tokenising workers leave Ctrl-C to the parent (which stops them): one message, not a
    traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def tokenize_files(files, spiece_model, uncased=False, use_eod=True, num_workers=1,
                   lines_per_chunk=2000, log_every_s=10.0):
    """Tokenises every file into one shard ``(ids int32 [N], flags bool [N])``.

    Files are cut into chunks of lines that ``num_workers`` processes tokenise in parallel;
    results are reassembled in file and line order, so the output does not depend on
    ``num_workers``. Files with no sentence (empty or blank lines only) are skipped with a
    warning.

    Returns:
      (shards, stats): shards = list of (path, ids, flags) for the non-empty files in input
      order; stats = list of dicts {path, lines, tokens, skipped}.
    Raises:
      ValueError: a line is not valid UTF-8 (names the file, line and byte offset).
    """
    per_file = [dict(ids=[], lengths=[], is_eod=[], lines=0) for _ in files]
    jobs = _chunk_jobs(files, os.fspath(spiece_model), uncased, use_eod, lines_per_chunk)
    t0 = last_log = time.time()
    total_lines = total_tokens = done_bytes = 0
    total_bytes = sum(os.path.getsize(f) for f in files)

    def consume(fi, job, result):
        nonlocal total_lines, total_tokens, done_bytes, last_log
        path = job[0]
        done_bytes += sum(len(ln) + 1 for ln in job[2])
        if isinstance(result[0], str):
            _, line_no, offset, reason = result
            raise ValueError(
                f"{path}: line {line_no} is not valid UTF-8 ({reason} at byte {offset} of the "
                f"line). Convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or remove it "
                f"from --input_glob.")
        ids, lengths, is_eod, n_lines = result
        rec = per_file[fi]
        rec["ids"].append(ids)
        rec["lengths"].append(lengths)
        rec["is_eod"].append(is_eod)
        rec["lines"] += n_lines
        total_lines += n_lines
        total_tokens += len(ids)
        now = time.time()
        if now - last_log >= log_every_s:
            last_log = now
            log.info("tokenised %d lines, %d tokens (%.0f tokens/s, %.0f%% of the text, "
                     "ETA %s)", total_lines, total_tokens, total_tokens / max(now - t0, 1e-9),
                     100.0 * min(done_bytes / max(total_bytes, 1), 1.0),
                     progress_lib.eta(done_bytes, total_bytes, now - t0))

    if num_workers <= 1:
        for fi, job in jobs:
            consume(fi, job, _tokenize_chunk(job))
    else:
        # "fork": workers inherit the imported modules (importing xlnet_tf in a fresh
        # interpreter would load TensorFlow in every worker). They only use SentencePiece.
        ctx = multiprocessing.get_context("fork")
        job_list = list(jobs)
        with ctx.Pool(num_workers, initializer=_ignore_sigint) as pool:
            for (fi, job), result in zip(job_list,
                                         pool.imap(_tokenize_chunk, [j for _, j in job_list])):
                consume(fi, job, result)
    elapsed = max(time.time() - t0, 1e-9)
    log.info("tokenised %d files: %d lines, %d tokens in %.1f s (%.0f tokens/s)",
                 len(files), total_lines, total_tokens, elapsed, total_tokens / elapsed)

    shards, stats = [], []
    for path, rec in zip(files, per_file):
        ids = np.concatenate(rec["ids"]) if rec["ids"] else np.zeros([0], np.int32)
        lengths = np.concatenate(rec["lengths"]) if rec["lengths"] else np.zeros([0], np.int32)
        is_eod = np.concatenate(rec["is_eod"]) if rec["is_eod"] else np.zeros([0], bool)
        skipped = not np.any(~is_eod)
        stats.append(dict(path=path, lines=rec["lines"], tokens=int(len(ids)), skipped=skipped))
        if skipped:
            log.warning("skipping %s: it holds no sentence (%d lines, all blank)", path,
                            rec["lines"])
            continue
        shards.append((path, ids, sentence_flags(lengths, is_eod)))
    return shards, stats


def concat_shards(shards, rng):
    """Shuffles the shards and concatenates them, keeping every boundary visible.

    A shard whose first flag equals the previous shard's last flag is inverted.
    Args:
      shards: list of (ids [N_k], flags bool [N_k]).
      rng: numpy Generator.
    Returns:
      (data int32 [N], flags bool [N]).
    """
    order = rng.permutation(len(shards))
    datas, flags = [], []
    prev_last = None
    for k in order:
        ids, fl = shards[k]
        if prev_last is not None and fl[0] == prev_last:
            fl = ~fl
        datas.append(np.asarray(ids, np.int32))
        flags.append(np.asarray(fl, bool))
        prev_last = fl[-1]
    return np.concatenate(datas), np.concatenate(flags)


def batchify(data, bsz_per_host, bi_data=False, num_core_per_host=1):
    """Cuts a stream into rows ``[bsz_per_host, num_step]`` (the original's ``batchify``).

    With ``bi_data`` the stream is cut into ``bsz_per_host/2`` forward rows; each core's
    block of ``bsz_per_core`` rows is its forward rows followed by the same rows reversed
    in time.
    """
    data = np.asarray(data)
    if not bi_data:
        num_step = len(data) // bsz_per_host
        return data[:bsz_per_host * num_step].reshape(bsz_per_host, num_step)
    half = bsz_per_host // 2
    num_step = len(data) // half
    fwd = data[:half * num_step].reshape(num_core_per_host, 1, half // num_core_per_host,
                                         num_step)                 # [C, 1, bsz_per_core/2, S]
    bwd = fwd[..., ::-1]                                           # [C, 1, bsz_per_core/2, S]
    both = np.concatenate([fwd, bwd], axis=1)                      # [C, 2, bsz_per_core/2, S]
    return both.reshape(bsz_per_host, num_step)                    # [bsz_per_host, S]


# --------------------------------------------------------------------------------------
# A/B split
# --------------------------------------------------------------------------------------
def truncate_pair(len_a, len_b, max_len):
    """Lengths after the original's loop "while |A|+|B| > max_len: shorten the longer one
    (A if strictly longer, else B) by one token from its right end", in closed form."""
    excess = len_a + len_b - max_len
    if excess <= 0:
        return len_a, len_b
    if len_a > len_b:
        step = min(excess, len_a - len_b)  # A shrinks until both are equal
        len_a -= step
        excess -= step
        # now equal: B, A, B, A, ...
        len_b -= (excess + 1) // 2
        len_a -= excess // 2
    else:
        step = min(excess, len_b - len_a + 1)  # B shrinks until A is strictly longer
        len_b -= step
        excess -= step
        # now len_a = len_b + 1: A, B, A, B, ...
        len_a -= (excess + 1) // 2
        len_b -= excess // 2
    return len_a, len_b


def split_a_and_b(data, boundaries, begin_idx, tot_len, rng):
    """Picks segments A and B for one record (the original's ``_split_a_and_b`` with extend_target).

    Args:
      data: int [L] one row of the batchified stream.
      boundaries: sorted int array of the sentence boundaries of that row (positions p where
        flag[p] != flag[p-1]).
      begin_idx: where A starts.
      tot_len: |A| + |B| of the record (seq_len - reuse_len - 3).
      rng: numpy Generator.
    Returns:
      None when the row has no room left, else
      (a_begin, a_end, b_begin, b_end, label); A = data[a_begin:a_end], B = data[b_begin:b_end],
      label 1 if B continues A, 0 if B is a random span of the same row.
    """
    data_len = len(data)
    if begin_idx + tot_len >= data_len:
        return None
    # Cut points: sentence boundaries p > begin_idx with p - begin_idx < tot_len; end_idx is
    # the first boundary at or beyond tot_len (or the end of the row).
    lo = bisect.bisect_left(boundaries, begin_idx + 1)
    hi = bisect.bisect_left(boundaries, begin_idx + tot_len)
    num_cut = hi - lo
    end_idx = int(boundaries[hi]) if hi < len(boundaries) else data_len

    a_begin = begin_idx
    if num_cut == 0 or rng.random() < 0.5:
        # Random B (label 0): from anywhere in the same row, extended to sentence edges.
        label = 0
        a_end = end_idx if num_cut == 0 else int(boundaries[lo + rng.integers(num_cut)])
        b_len = max(1, tot_len - (a_end - a_begin))
        b_begin = int(rng.integers(0, data_len - 1 - b_len + 1))  # in [0, len-1-b_len]
        b_end = b_begin + b_len
        # extend left to the sentence start: the last boundary <= b_begin (or 0)
        k = bisect.bisect_right(boundaries, b_begin)
        b_begin = int(boundaries[k - 1]) if k > 0 else 0
        # extend right to the sentence end: the first boundary >= b_end, at most len-1
        k = bisect.bisect_left(boundaries, b_end)
        b_end = min(int(boundaries[k]) if k < len(boundaries) else data_len, data_len - 1)
    else:
        # True continuation (label 1).
        label = 1
        a_end = int(boundaries[lo + rng.integers(num_cut)])
        b_begin = a_end
        b_end = end_idx
    len_a, len_b = truncate_pair(a_end - a_begin, b_end - b_begin, tot_len)
    a_end = a_begin + len_a
    b_end = b_begin + len_b
    if a_end >= data_len or b_end >= data_len:
        return None
    return a_begin, a_end, b_begin, b_end, label


# --------------------------------------------------------------------------------------
# Span masking
# --------------------------------------------------------------------------------------
def start_piece_table(tokenizer_or_pieces):
    """bool [vocab]: True for pieces that start a word in _sample_mask's sense.

    A start piece begins with "▁" or "<" (so every special symbol, <sep>/<cls> included) or is
    exactly one ASCII punctuation character other than "'", "=", ">".
    """
    if hasattr(tokenizer_or_pieces, "vocab_size"):
        tok = tokenizer_or_pieces
        pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    else:
        pieces = list(tokenizer_or_pieces)
    return np.array([p.startswith(SPIECE_UNDERLINE) or p.startswith("<") or p in _START_PUNCT
                     for p in pieces], bool)


@functools.lru_cache(maxsize=8)
def _ngram_cdf(max_gram):
    """Cumulative p(n) ∝ 1/n over n = 1..max_gram."""
    pvals = 1.0 / np.arange(1, max_gram + 1)
    return np.cumsum(pvals / pvals.sum())


def sample_mask(seg, is_start_piece, reverse, goal_num_predict, rng, mask_alpha=6,
                mask_beta=1, max_gram=MAX_GRAM):
    """Selects exactly ``goal_num_predict`` positions of ``seg`` by n-gram span masking.

    Spans: draw n in {1..max_gram} with p(n) ∝ 1/n (capped at the number still needed); the
    span lives in a context of ``ctx = n*mask_alpha//mask_beta`` tokens: skip ``l_ctx ~
    U[0, ctx)`` tokens, move to the next start piece ``beg``, mask ``[beg, beg+n)``, continue
    ``ctx - l_ctx`` tokens after the span. Stop when the context runs past the segment, or
    when a span would reach the segment end (that span is not masked).

    Piece-count behaviour (reproduced on purpose): the original meant a span of n
    *words* (advance ``end`` until the (n+1)-th start piece) but tests the piece at ``beg``
    instead of at ``end`` when counting, so the count grows at every step and every span is
    exactly n *pieces* long. We do the same: ``end = beg + n``.

    Top-up: while fewer than ``goal_num_predict`` positions are masked, unmasked positions
    are added uniformly at random (drawn without replacement, which is the distribution of
    the original's repeated uniform draws with rejection, minus its infinite loop when the
    goal exceeds the segment: that case raises ValueError here).

    With ``reverse`` the segment is processed in natural reading order (flipped first) and
    the mask flipped back, so spans still start at word starts in backward rows.

    Args:
      seg: int [L] token ids.
      is_start_piece: bool [vocab] (:func:`start_piece_table`).
      reverse: bool.
      goal_num_predict: number of positions to select.
      rng: numpy Generator.
    Returns:
      bool [L] with exactly goal_num_predict True.
    """
    seg = np.asarray(seg)
    seg_len = len(seg)
    if goal_num_predict > seg_len:
        raise ValueError(
            f"cannot mask {goal_num_predict} positions in a segment of {seg_len} tokens: "
            f"lower --num_predict or raise --seq_len/--reuse_len.")
    if reverse:
        seg = seg[::-1]
    starts = is_start_piece[seg]                                    # [L]
    # next_start[k] = first start piece at or after k (seg_len if none)
    idx = np.where(starts, np.arange(seg_len), seg_len)
    next_start = np.minimum.accumulate(idx[::-1])[::-1]             # [L]
    cdf = _ngram_cdf(max_gram)

    # Every iteration advances cur_len by >= 1, so seg_len draws always suffice. Drawn in
    # bulk and turned into python numbers: the loop is scalar work.
    n_draw = np.minimum(np.searchsorted(cdf, rng.random(seg_len), side="right") + 1,
                        max_gram).tolist()                          # [L] n in 1..max_gram
    u_ctx = rng.random(seg_len).tolist()                            # [L] in [0, 1)
    next_start = next_start.tolist()
    spans = []
    num_predict = 0
    cur_len = 0
    it = 0
    while cur_len < seg_len and num_predict < goal_num_predict:
        n = min(n_draw[it], goal_num_predict - num_predict)
        ctx_size = (n * mask_alpha) // mask_beta
        l_ctx = min(int(u_ctx[it] * ctx_size), ctx_size - 1)       # uniform in [0, ctx_size)
        r_ctx = ctx_size - l_ctx
        it += 1
        beg = cur_len + l_ctx
        if beg >= seg_len:
            break
        beg = next_start[beg]
        if beg >= seg_len:
            break
        end = beg + n  # piece-count behaviour, see docstring
        if end >= seg_len:
            break
        spans.append((beg, end))
        num_predict += n
        cur_len = end + r_ctx
    mask = np.zeros(seg_len, bool)
    for beg, end in spans:
        mask[beg:end] = True

    missing = goal_num_predict - num_predict
    if missing > 0:
        free = np.flatnonzero(~mask)
        if len(free) < missing:  # cannot happen after the check above; kept as a guard
            raise ValueError(f"cannot top up {missing} masked positions: only {len(free)} left.")
        mask[rng.choice(free, size=missing, replace=False)] = True
    if reverse:
        mask = mask[::-1]
    return mask


# --------------------------------------------------------------------------------------
# Record construction
# --------------------------------------------------------------------------------------
def build_batches(data, flags, rng, is_start_piece, *, seq_len, reuse_len, bi_data,
                  num_predict, mask_alpha, mask_beta, bsz_per_host, num_core_per_host,
                  max_gram=MAX_GRAM):
    """Yields one dict of numpy arrays per step (all ``bsz_per_host`` rows), in order.

    Keys: input, is_masked, target, seg_id int64 [bsz_per_host, seq_len]; label [bsz, 1].
    Stops at the first step where any row has no room for an A/B split (no partial batch).
    """
    rows = batchify(data, bsz_per_host, bi_data, num_core_per_host)      # [bsz, S]
    row_flags = batchify(flags, bsz_per_host, bi_data, num_core_per_host)  # [bsz, S]
    num_step = rows.shape[1]
    boundaries = [np.flatnonzero(f[1:] != f[:-1]) + 1 for f in row_flags]
    bsz_per_core = bsz_per_host // num_core_per_host
    num_predict_ab = num_predict // 2
    num_predict_reuse = num_predict - num_predict_ab
    tot_len = seq_len - reuse_len - 3
    sep_cls = np.array([SEP_ID, CLS_ID], np.int64)

    i = 0
    while i + seq_len <= num_step:
        batch = {k: np.zeros([bsz_per_host, seq_len], np.int64) for k in RECORD_FEATURES[:4]}
        batch["label"] = np.zeros([bsz_per_host, 1], np.int64)
        for idx in range(bsz_per_host):
            row = rows[idx]
            split = split_a_and_b(row, boundaries[idx], i + reuse_len, tot_len, rng)
            if split is None:
                return
            a_begin, a_end, b_begin, b_end, label = split
            reverse = bool(bi_data and (idx // (bsz_per_core // 2)) % 2 == 1)
            inp = row[i:i + reuse_len]
            tgt = row[i + 1:i + reuse_len + 1]
            a, b = row[a_begin:a_end], row[b_begin:b_end]
            ab = np.concatenate([a, sep_cls[:1], b, sep_cls])             # [seq_len - reuse]
            mask_0 = sample_mask(inp, is_start_piece, reverse, num_predict_reuse, rng,
                                 mask_alpha, mask_beta, max_gram)
            mask_1 = sample_mask(ab, is_start_piece, reverse, num_predict_ab, rng,
                                 mask_alpha, mask_beta, max_gram)
            batch["input"][idx] = np.concatenate([inp, ab])
            batch["is_masked"][idx] = np.concatenate([mask_0, mask_1])
            batch["target"][idx] = np.concatenate(
                [tgt, row[a_begin + 1:a_end + 1], row[b_begin:b_end + 1], [CLS_ID, CLS_ID]])
            batch["seg_id"][idx] = np.concatenate(
                [np.zeros(reuse_len + len(a) + 1, np.int64), np.ones(len(b) + 1, np.int64),
                 [2]])
            batch["label"][idx, 0] = label
        yield batch
        i += reuse_len


def _example_bytes(example, batch, r):
    """Serialises row r of a batch into ``example`` (a reused tf.train.Example: ~2x faster)."""
    for k in RECORD_FEATURES:
        example.features.feature[k].int64_list.value[:] = batch[k][r].tolist()
    # deterministic=True: map entries in key order, so the bytes do not depend on the
    # process's string-hash seed (byte-identical output for the same seed).
    return example.SerializeToString(deterministic=True)



# --------------------------------------------------------------------------------------
# Manifest parts and merging
# --------------------------------------------------------------------------------------
def _part_paths(save_dir):
    out = []
    for name in sorted(os.listdir(save_dir)):
        m = _PART_RE.match(name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), os.path.join(save_dir, name)))
    return out


def merge_manifest_parts(save_dir, require_complete=True, check_files=True):
    """Merges every ``manifest-task*-pass*.json`` of ``save_dir`` into one manifest.

    The merged manifest has the shared build settings (:data:`BUILD_KEYS`) at the top level,
    ``record_files`` (one entry per task/pass, sorted by pass then task, with its file name,
    num_batches, num_records, record_bytes and input files), ``passes``, and totals
    ``num_batches`` / ``num_records``.

    Raises:
      FileNotFoundError: no part (no records, or no run finished).
      ValueError: parts disagree on a build setting (records of different builds mixed in one
        folder), a pass lacks some task (``require_complete``), or a record file is missing
        or has another size than its part says (``check_files``).
    """
    save_dir = os.fspath(save_dir)
    if not os.path.isdir(save_dir):
        raise FileNotFoundError(f"record directory {save_dir!r} does not exist.")
    parts = _part_paths(save_dir)
    if not parts:
        raise FileNotFoundError(
            f"{save_dir!r} holds no pretraining manifest (manifest-task*-pass*.json): build the "
            f"records with `python -m xlnet_tf.pretraining.records --save_dir={save_dir}`"
            f" (a run that failed or is still running leaves none).")
    merged = None
    first_name = None
    entries = []
    for task_id, pass_id, path in parts:
        part = io_lib.read_json(path, "pretraining manifest part")
        if part.get("format") != FORMAT_NAME:
            raise ValueError(f"{path!r} is not a {FORMAT_NAME} manifest.")
        build = part["build"]
        if merged is None:
            merged = dict(build)
            merged["spiece_model"] = part.get("spiece_model")
            first_name = os.path.basename(path)
        else:
            manifest_lib.compare(
                build, {k: merged.get(k) for k in BUILD_KEYS},
                source=f"Records in {save_dir!r}: {os.path.basename(path)} and {first_name}",
                have_name=f"{os.path.basename(path)} has", want_name=f"{first_name} has",
                hint="Every task and pass in one --save_dir must be built with the same "
                     "settings: rebuild the odd one out or use separate folders.")
        record_path = os.path.join(save_dir, part["record_file"])
        if check_files:
            if not os.path.isfile(record_path):
                raise FileNotFoundError(
                    f"{record_path!r} (listed in {os.path.basename(path)}) is missing: rebuild "
                    f"task {task_id} pass {pass_id}.")
            size = os.path.getsize(record_path)
            if size != part["record_bytes"]:
                raise ValueError(
                    f"{record_path!r} has {size} bytes but {os.path.basename(path)} says "
                    f"{part['record_bytes']}: the file was changed after it was built. Rebuild "
                    f"task {task_id} pass {pass_id} with --overwrite.")
        entries.append(dict(task_id=task_id, pass_id=pass_id, record_file=part["record_file"],
                            num_batches=part["num_batches"], num_records=part["num_records"],
                            num_tokens=part["num_tokens"], record_bytes=part["record_bytes"],
                            input_files=part["input_files"]))
    entries.sort(key=lambda e: (e["pass_id"], e["task_id"]))
    passes = sorted({e["pass_id"] for e in entries})
    missing = []
    for p in passes:
        have = {e["task_id"] for e in entries if e["pass_id"] == p}
        lack = sorted(set(range(merged["num_tasks"])) - have)
        if lack:
            missing.append(f"pass {p}: task(s) {lack}")
    merged["complete"] = not missing
    if missing and require_complete:
        raise ValueError(
            f"Records in {save_dir!r} are incomplete (num_tasks={merged['num_tasks']}): missing "
            + "; ".join(missing) + ". Run (or rerun) those tasks with --task_id, or wait for them "
            "to finish.")
    merged.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, passes=passes,
                  record_files=entries,
                  num_batches=sum(e["num_batches"] for e in entries),
                  num_records=sum(e["num_records"] for e in entries))
    return merged


def write_merged_manifest(save_dir):
    """Rewrites ``save_dir/manifest.json`` from the parts present, under a file lock."""
    with io_lib.exclusive_lock(os.path.join(save_dir, LOCK_NAME)):
        merged = merge_manifest_parts(save_dir, require_complete=False)
        io_lib.write_json_atomic(os.path.join(save_dir, MANIFEST_NAME), merged)
    return merged


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
def create_pretrain_records(input_glob, save_dir, spiece_model, *, seq_len=512, reuse_len=256,
                            bi_data=True, num_predict=85, mask_alpha=6, mask_beta=1,
                            uncased=False, use_eod=True, bsz_per_host=32, num_core_per_host=8,
                            num_tasks=1, task_id=0, pass_id=0, seed=0, num_workers=1,
                            overwrite=False, log_every_s=10.0, max_gram=MAX_GRAM):
    """Builds this task's record file and manifest part in ``save_dir`` (see module doc).

    Returns the manifest part (dict).
    Raises ValueError / FileNotFoundError with what to change for bad settings or input.
    """
    validate_config(seq_len, reuse_len, bi_data, num_predict, mask_alpha, mask_beta,
                    bsz_per_host, num_core_per_host, max_gram)
    if not (isinstance(num_tasks, int) and num_tasks >= 1):
        raise ValueError(f"--num_tasks must be an integer >= 1, got {num_tasks!r}.")
    if not (isinstance(task_id, int) and 0 <= task_id < num_tasks):
        raise ValueError(f"--task_id={task_id!r} must be in [0, --num_tasks={num_tasks}).")
    if not (isinstance(pass_id, int) and pass_id >= 0):
        raise ValueError(f"--pass_id must be an integer >= 0, got {pass_id!r}.")
    spiece_model = os.path.abspath(os.fspath(spiece_model))
    tokenizer = Tokenizer(spiece_model, lower=uncased)  # fails early on a bad model
    is_start_piece = start_piece_table(tokenizer)

    all_files = resolve_input_files(input_glob)
    files = all_files[task_id::num_tasks]
    if not files:
        raise ValueError(
            f"--task_id={task_id} of --num_tasks={num_tasks} gets no file: --input_glob matches "
            f"only {len(all_files)} file(s). Use --num_tasks <= {len(all_files)}.")

    save_dir = os.fspath(save_dir)
    os.makedirs(save_dir, exist_ok=True)
    record_name = record_file_name(task_id, pass_id)
    record_path = os.path.join(save_dir, record_name)
    part_path = os.path.join(save_dir, manifest_part_name(task_id, pass_id))
    if not overwrite:
        for p in (part_path, record_path):
            if os.path.exists(p):
                raise FileExistsError(
                    f"{p!r} already exists: pass --overwrite to rebuild task {task_id} pass "
                    f"{pass_id}, or choose another --save_dir.")

    build = dict(seq_len=seq_len, reuse_len=reuse_len, bi_data=bool(bi_data),
                 num_predict=num_predict, mask_alpha=mask_alpha, mask_beta=mask_beta,
                 uncased=bool(uncased), use_eod=bool(use_eod), bsz_per_host=bsz_per_host,
                 num_core_per_host=num_core_per_host, vocab_size=tokenizer.vocab_size,
                 spiece_sha256=io_lib.sha256_file(spiece_model), input_glob=str(input_glob),
                 num_tasks=num_tasks, seed=seed, max_gram=max_gram)
    # Refuse early (before hours of work) to mix builds in one folder.
    for t, p, other in _part_paths(save_dir):
        if (t, p) == (task_id, pass_id):
            continue
        other_build = io_lib.read_json(other, "pretraining manifest part")["build"]
        manifest_lib.compare(
            other_build, build,
            source=f"Records already in {save_dir!r} ({os.path.basename(other)})",
            have_name="existing records have", want_name="this run has",
            hint="Use the same settings for every task and pass of one --save_dir, or another "
                 "--save_dir.")

    cli.note_stage(f"building the records of task {task_id} pass {pass_id} in {save_dir} "
                   f"(nothing of them written yet)")
    log.info("task %d/%d pass %d: %d of %d input files", task_id, num_tasks, pass_id,
                 len(files), len(all_files))
    shards, file_stats = tokenize_files(files, spiece_model, uncased, use_eod, num_workers,
                                        log_every_s=log_every_s)
    if not shards:
        raise ValueError(
            f"the corpus of task {task_id} is empty: its {len(files)} file(s) hold no sentence "
            f"(first: {files[0]!r}). Check --input_glob.")
    rng = np.random.default_rng([seed, task_id, pass_id])
    data, flags = concat_shards([(ids, fl) for _, ids, fl in shards], rng)
    num_tokens = int(len(data))
    rows_per_stream = bsz_per_host // 2 if bi_data else bsz_per_host
    needed = rows_per_stream * seq_len
    if num_tokens < needed:
        raise ValueError(
            f"the corpus of task {task_id} is too small for one batch of records: found "
            f"{num_tokens} tokens in {len(shards)} file(s); one step needs at least "
            f"{rows_per_stream} rows x seq_len {seq_len} = {needed} tokens. Add text, or lower "
            f"--bsz_per_host / --seq_len (or use fewer --num_tasks).")

    import tensorflow as tf  # only needed for writing; keeps tokenisation workers light

    cfg = dict(seq_len=seq_len, reuse_len=reuse_len, bi_data=bi_data, num_predict=num_predict,
               mask_alpha=mask_alpha, mask_beta=mask_beta, bsz_per_host=bsz_per_host,
               num_core_per_host=num_core_per_host, max_gram=max_gram)
    num_batches = 0
    # at most this many batches: each advances the rows by reuse_len (build_batches)
    num_step = num_tokens // rows_per_stream
    expected = max((num_step - seq_len) // reuse_len + 1, 1)
    t0 = last_log = time.time()
    with io_lib.atomic_output(record_path) as tmp:
        example = tf.train.Example()
        with tf.io.TFRecordWriter(tmp) as writer:
            for batch in build_batches(data, flags, rng, is_start_piece, **cfg):
                for r in range(bsz_per_host):
                    writer.write(_example_bytes(example, batch, r))
                num_batches += 1
                now = time.time()
                if now - last_log >= log_every_s:
                    last_log = now
                    log.info("wrote %d of about %d batches (%d records, %.0f tokens/s, ETA %s)",
                             num_batches, expected, num_batches * bsz_per_host,
                             num_batches * bsz_per_host * seq_len / (now - t0),
                             progress_lib.eta(num_batches, expected, now - t0))
        if num_batches == 0:
            raise ValueError(
                f"the corpus of task {task_id} ({num_tokens} tokens) gave no complete batch: "
                f"each of the {rows_per_stream} rows needs more than seq_len={seq_len} tokens "
                f"plus room for an A/B split. Add text or lower --bsz_per_host / --seq_len.")
        if overwrite and os.path.exists(part_path):
            os.remove(part_path)  # never let an old part describe the new file
    elapsed = max(time.time() - t0, 1e-9)
    log.info("task %d pass %d: %d batches = %d records in %s (%.1f s, %.0f tokens/s)",
                 task_id, pass_id, num_batches, num_batches * bsz_per_host, record_path,
                 elapsed, num_batches * bsz_per_host * seq_len / elapsed)

    part = dict(format=FORMAT_NAME, format_version=FORMAT_VERSION, build=build,
                task_id=task_id, pass_id=pass_id, spiece_model=spiece_model,
                record_file=record_name, record_bytes=os.path.getsize(record_path),
                num_batches=num_batches, num_records=num_batches * bsz_per_host,
                num_tokens=num_tokens,
                input_files=[dict(path=os.path.abspath(s["path"]), lines=s["lines"],
                                  tokens=s["tokens"], skipped=s["skipped"]) for s in file_stats],
                created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    io_lib.write_json_atomic(part_path, part)
    write_merged_manifest(save_dir)
    cli.note_stage(None)
    return part


def define_flags(fv):
    """The flags of ``python -m xlnet_tf.pretraining.records`` on the FlagValues ``fv``."""
    def define(kind, name, default, help_text):
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=fv)

    define("string", "input_glob", None, "Comma-separated globs of text files: one sentence "
           "per line, a blank line ends a document.")
    define("string", "save_dir", None, "Output folder for records and manifests.")
    define("string", "spiece_model", None, "SentencePiece model (spiece.model).")
    define("integer", "seq_len", 512, "Tokens per record.")
    define("integer", "reuse_len", 256, "Tokens of each record that later steps reuse as "
           "memory (the first part of the record).")
    define("bool", "bi_data", True, "Half of every per-core block is the other half "
           "reversed in time.")
    define("integer", "num_predict", 85, "Predicted positions per record.")
    define("integer", "mask_alpha", 6, "A span of n tokens lives in n*alpha/beta tokens.")
    define("integer", "mask_beta", 1, "See mask_alpha.")
    define("integer", "max_gram", MAX_GRAM, "Longest predicted span, in words (the original: "
           "5); 1 predicts single tokens (the paper's ablation without span prediction).")
    define("bool", "uncased", False, "Lower-case the text (for an uncased vocabulary).")
    define("bool", "use_eod", True, "Emit <eod> for a blank line (end of document).")
    define("integer", "bsz_per_host", 32, "Rows per step for one host (= training batch "
           "per host).")
    define("integer", "num_core_per_host", 8, "Replicas per host in training (cores/GPUs).")
    define("integer", "num_tasks", 1, "Number of tasks splitting the input files.")
    define("integer", "task_id", 0, "This task: takes files[task_id::num_tasks].")
    define("integer", "pass_id", 0, "Pass over the data (another shuffle and masks).")
    define("integer", "seed", 0, "Random seed (with task_id and pass_id).")
    define("integer", "num_workers", max(1, os.cpu_count() or 1),
           "Local processes that tokenise the corpus.")
    define("bool", "overwrite", False, "Replace this task/pass's existing output.")
    flags.mark_flags_as_required(["input_glob", "save_dir", "spiece_model"], flag_values=fv)


def main(F):
    cli.setup_logging()
    from xlnet_tf.finetuning import check_writable_dir
    check_writable_dir(F.save_dir, "save_dir")
    try:
        create_pretrain_records(
            F.input_glob, F.save_dir, F.spiece_model, seq_len=F.seq_len, reuse_len=F.reuse_len,
            bi_data=F.bi_data, num_predict=F.num_predict, mask_alpha=F.mask_alpha,
            mask_beta=F.mask_beta, uncased=F.uncased, use_eod=F.use_eod,
            bsz_per_host=F.bsz_per_host, num_core_per_host=F.num_core_per_host,
            num_tasks=F.num_tasks, task_id=F.task_id, pass_id=F.pass_id, seed=F.seed,
            num_workers=F.num_workers, overwrite=F.overwrite, max_gram=F.max_gram)
    except FileExistsError as e:
        cli.fail(str(e))


def entry():
    """The console command (pyproject.toml's [project.scripts])."""
    cli.main_entry(define_flags, main, doc=__doc__,
                   interrupt_hint="rerun the same command (with --overwrite if it reports "
                                  "existing output of this task)")


if __name__ == "__main__":
    entry()
