"""Tests of xlnet_tf/pretraining/records.py (+ manifest.py)."""
import hashlib
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from pretrain_test_utils import FIXTURE_MODEL, TINY, build, read_records, write_corpus
from xlnet_tf.pretraining import input_pipeline as pi
from xlnet_tf.pretraining import records as cpr
from xlnet_tf import manifest as manifest_lib
from xlnet_tf.tokenization.tokenizer import CLS_ID, EOD_ID, SEP_ID, Tokenizer

SEQ, REUSE, NP = TINY["seq_len"], TINY["reuse_len"], TINY["num_predict"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(str(FIXTURE_MODEL))


@pytest.fixture(scope="module")
def start_table(tokenizer):
    return cpr.start_piece_table(tokenizer)


# --------------------------------------------------------------------------------------
# Literal references (the loops of the original _split_a_and_b / _sample_mask written out)
# --------------------------------------------------------------------------------------
def literal_split(data, flags, begin_idx, tot_len, rng):
    n = len(data)
    if begin_idx + tot_len >= n:
        return None
    end_idx = begin_idx + 1
    cut_points = []
    while end_idx < n:
        if flags[end_idx] != flags[end_idx - 1]:
            if end_idx - begin_idx >= tot_len:
                break
            cut_points.append(end_idx)
        end_idx += 1
    a_begin = begin_idx
    if not cut_points or rng.random() < 0.5:
        label = 0
        a_end = end_idx if not cut_points else cut_points[rng.integers(len(cut_points))]
        b_len = max(1, tot_len - (a_end - a_begin))
        b_begin = int(rng.integers(0, n - 1 - b_len + 1))
        b_end = b_begin + b_len
        while b_begin > 0 and flags[b_begin - 1] == flags[b_begin]:
            b_begin -= 1
        while b_end < n - 1 and flags[b_end - 1] == flags[b_end]:
            b_end += 1
    else:
        label = 1
        a_end = cut_points[rng.integers(len(cut_points))]
        b_begin, b_end = a_end, end_idx
    while (a_end - a_begin) + (b_end - b_begin) > tot_len:
        if a_end - a_begin > b_end - b_begin:
            a_end -= 1
        else:
            b_end -= 1
    if a_end >= n or b_end >= n:
        return None
    return a_begin, a_end, b_begin, b_end, label


def literal_sample_mask(seg, start_table, reverse, goal, rng, alpha=6, beta=1, max_gram=5):
    """The original loop, including its test of the piece at ``beg`` (piece-count bug)."""
    seg = np.asarray(seg)
    n_seg = len(seg)
    if reverse:
        seg = seg[::-1]
    pvals = 1.0 / np.arange(1, max_gram + 1)
    cdf = np.cumsum(pvals / pvals.sum())
    u_n, u_ctx = rng.random(n_seg), rng.random(n_seg)
    mask = np.zeros(n_seg, bool)
    num, cur_len, it = 0, 0, 0
    while cur_len < n_seg:
        if num >= goal:
            break
        n = min(int(np.searchsorted(cdf, u_n[it], side="right")) + 1, max_gram)
        n = min(n, goal - num)
        ctx_size = (n * alpha) // beta
        l_ctx = min(int(u_ctx[it] * ctx_size), ctx_size - 1)
        r_ctx = ctx_size - l_ctx
        it += 1
        beg = cur_len + l_ctx
        while beg < n_seg and not start_table[seg[beg]]:
            beg += 1
        if beg >= n_seg:
            break
        end, cnt = beg + 1, 1
        while end < n_seg:
            if start_table[seg[beg]]:  # the original tests beg, not end
                cnt += 1
                if cnt > n:
                    break
            end += 1
        if end >= n_seg:
            break
        mask[beg:end] = True
        num += end - beg
        cur_len = end + r_ctx
    if num < goal:
        free = np.flatnonzero(~mask)
        mask[rng.choice(free, size=goal - num, replace=False)] = True
    return mask[::-1] if reverse else mask


def literal_truncate(la, lb, max_len):
    while la + lb > max_len:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return la, lb


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------
def test_sentence_flags_glue_eod_to_the_last_sentence():
    # units: S(2) S(1) EOD S(3) EOD S(1)
    flags = cpr.sentence_flags([2, 1, 1, 3, 1, 1], [0, 0, 1, 0, 1, 0])
    expected = [1, 1, 0, 0, 1, 1, 1, 1, 0]
    np.testing.assert_array_equal(flags.astype(int), expected)


def test_tokenize_files_keeps_ids_and_sentence_boundaries(tmp_path, tokenizer):
    lines = ["First sentence here.", "Second one, with 2000, numbers!", "", "New document.",
             "   ", "Last line of it."]
    path = tmp_path / "a.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shards, stats = cpr.tokenize_files([str(path)], str(FIXTURE_MODEL))
    (_, ids, flags), = shards
    expected_ids, expected_flags, f = [], [], True
    for line in lines:  # the original's flag rule, written out
        if not line.strip():
            f = not f
            expected_ids.append(EOD_ID)
            expected_flags.append(f)
        else:
            cur = tokenizer.encode_ids(line)
            expected_ids += cur
            expected_flags += [f] * len(cur)
        f = not f
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(flags, expected_flags)
    # boundaries: exactly at every sentence start except where EOD is glued on
    starts = np.cumsum([0] + [len(tokenizer.encode_ids(ln)) if ln.strip() else 1
                              for ln in lines])[:-1]
    glued = [s for s, ln in zip(starts, lines) if not ln.strip()]
    boundaries = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    assert sorted(boundaries) == sorted(set(starts[1:]) - set(glued))
    assert stats[0]["lines"] == 6 and stats[0]["tokens"] == len(ids)
    # without use_eod blank lines vanish and do not flip the flag
    (_, ids2, flags2), = cpr.tokenize_files([str(path)], str(FIXTURE_MODEL), use_eod=False)[0]
    assert EOD_ID not in ids2
    assert len(np.flatnonzero(flags2[1:] != flags2[:-1])) == 3  # 4 sentences -> 3 boundaries


def test_concat_shards_inverts_shards_to_keep_boundaries():
    shards = [(np.array([1, 2]), np.array([True, False])),
              (np.array([3, 4, 5]), np.array([False, False, True])),
              (np.array([6]), np.array([True]))]
    for seed in range(6):
        data, flags = cpr.concat_shards(shards, np.random.default_rng(seed))
        # every shard start is a boundary, plus the two inside-shard boundaries
        assert int((flags[1:] != flags[:-1]).sum()) == 2 + 2
        assert sorted(data.tolist()) == [1, 2, 3, 4, 5, 6]


def test_batchify_bi_data_layout_per_core():
    data = np.arange(40)
    rows = cpr.batchify(data, bsz_per_host=8, bi_data=True, num_core_per_host=2)
    fwd = np.arange(40).reshape(4, 10)  # 4 forward rows of 10 steps
    expected = np.stack([fwd[0], fwd[1], fwd[0][::-1], fwd[1][::-1],
                         fwd[2], fwd[3], fwd[2][::-1], fwd[3][::-1]])
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(cpr.batchify(np.arange(43), 4), np.arange(40).reshape(4, 10))


def test_truncate_pair_closed_form_matches_loop():
    for la in range(0, 14):
        for lb in range(0, 14):
            for m in range(1, 20):
                assert cpr.truncate_pair(la, lb, m) == literal_truncate(la, lb, m), (la, lb, m)


def test_split_a_and_b_matches_literal_reference():
    rng_data = np.random.default_rng(0)
    checked = 0
    for trial in range(60):
        n = int(rng_data.integers(30, 120))
        sent_len = int(rng_data.integers(1, 12))
        flips = rng_data.random(n) < 1.0 / sent_len
        flags = (np.cumsum(flips) % 2).astype(bool)
        data = rng_data.integers(10, 100, n)
        boundaries = np.flatnonzero(flags[1:] != flags[:-1]) + 1
        for begin in range(0, n, 7):
            tot = int(rng_data.integers(2, 30))
            seed = trial * 1000 + begin
            got = cpr.split_a_and_b(data, boundaries, begin, tot, np.random.default_rng(seed))
            want = literal_split(data, flags, begin, tot, np.random.default_rng(seed))
            assert got == want, (trial, begin, tot)
            if got is not None:
                checked += 1
                a_begin, a_end, b_begin, b_end, _ = got
                assert (a_end - a_begin) + (b_end - b_begin) == tot
    assert checked > 200


def test_random_b_rate_is_one_half():
    n = 4000
    flags = (np.arange(n) // 5 % 2).astype(bool)  # sentences of 5 tokens: cut points exist
    boundaries = np.flatnonzero(flags[1:] != flags[:-1]) + 1
    rng = np.random.default_rng(1)
    labels = []
    for begin in range(0, n - 100, 3):
        labels.append(cpr.split_a_and_b(np.zeros(n), boundaries, begin, 40, rng)[4])
    rate = 1 - np.mean(labels)
    assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / len(labels)), rate


def test_sample_mask_matches_literal_reference(start_table):
    rng = np.random.default_rng(5)
    for trial in range(80):
        seg_len = int(rng.integers(8, 80))
        seg = rng.integers(0, len(start_table), seg_len)
        goal = int(rng.integers(1, max(2, seg_len // 3)))
        reverse = bool(trial % 2)
        got = cpr.sample_mask(seg, start_table, reverse, goal, np.random.default_rng(trial))
        want = literal_sample_mask(seg, start_table, reverse, goal, np.random.default_rng(trial))
        np.testing.assert_array_equal(got, want)
        assert got.sum() == goal


def test_sample_mask_spans_count_pieces_not_words():
    # start pieces only every 4th position: n-word spans would average ~9 pieces,
    # the original's piece-count behaviour gives n pieces (mean 5/H_5 = 2.19).
    table = np.zeros(10, bool)
    table[1] = True
    seg = np.where(np.arange(512) % 4 == 0, 1, 2)
    rng = np.random.default_rng(0)
    run_lengths = []
    for _ in range(60):
        # goal 40 of 512: the span loop reaches it long before the end, so no top-up
        mask = cpr.sample_mask(seg, table, False, 40, rng)
        assert mask.sum() == 40
        edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        run_lengths += (ends - starts).tolist()
        assert table[seg[starts]].all()  # every span begins at a word start
    assert max(run_lengths) <= 5
    assert 1.9 < np.mean(run_lengths) < 2.5, np.mean(run_lengths)


def _runs(mask):
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def test_max_gram_one_predicts_single_tokens():
    """--max_gram=1 (the paper's ablation without span prediction): every span is one
    token and two spans never touch (each lives in its own context of mask_alpha tokens);
    the default 5 gives multi-token spans on the same text."""
    table = np.ones(10, bool)
    seg = np.full(512, 3)
    rng = np.random.default_rng(0)
    single, spans = [], []
    for _ in range(40):
        mask = cpr.sample_mask(seg, table, False, 40, rng, max_gram=1)
        assert mask.sum() == 40
        single += _runs(mask).tolist()
        spans += _runs(cpr.sample_mask(seg, table, False, 40, rng)).tolist()
    assert set(single) == {1}
    assert max(spans) == 5 and np.mean(spans) > 1.9


def test_max_gram_is_a_record_setting(tmp_path):
    write_corpus(tmp_path / "corpus", num_files=1, docs_per_file=10, seed=4)
    part = build(str(tmp_path / "corpus" / "*.txt"), str(tmp_path / "out"), max_gram=1)
    assert part["build"]["max_gram"] == 1
    recs = read_records(tmp_path / "out" / part["record_file"])
    runs = np.concatenate([_runs(m[:REUSE].astype(bool)) for m in recs["is_masked"]])
    # the reuse part holds no <sep>/<cls>; spans of one piece, top-ups may touch them
    assert np.mean(runs == 1) > 0.9, np.bincount(runs)
    with pytest.raises(manifest_lib.ManifestMismatchError, match="max_gram: records built "
                                                                 "with 1, training uses 5"):
        pi.check_manifest(str(tmp_path / "out"), max_gram=5)
    with pytest.raises(ValueError, match="--max_gram must be an integer >= 1"):
        build(str(tmp_path / "corpus" / "*.txt"), str(tmp_path / "bad"), max_gram=0)


def test_sample_mask_guard_instead_of_hang(start_table):
    with pytest.raises(ValueError, match="cannot mask 9 positions in a segment of 8 tokens"):
        cpr.sample_mask(np.arange(8), start_table, False, 9, np.random.default_rng(0))


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    write_corpus(root / "corpus", num_files=2, docs_per_file=10, seed=3)
    part = build(str(root / "corpus" / "*.txt"), str(root / "out"), num_core_per_host=2,
                 bsz_per_host=8)
    recs = read_records(root / "out" / part["record_file"])
    return root, part, recs


def test_record_layout(built):
    _, part, recs = built
    assert len(recs["input"]) == part["num_records"] == part["num_batches"] * 8
    for inp, seg, tgt, lab in zip(recs["input"], recs["seg_id"], recs["target"], recs["label"]):
        # ... A <sep> B <sep> <cls>
        assert inp[-1] == CLS_ID and inp[-2] == SEP_ID and seg[-1] == 2
        len_a = int((seg == 0).sum()) - REUSE - 1
        len_b = int((seg == 1).sum()) - 1
        assert len_a >= 1 and len_b >= 1 and len_a + len_b == SEQ - REUSE - 3
        sep1 = REUSE + len_a
        assert inp[sep1] == SEP_ID
        np.testing.assert_array_equal(seg, [0] * (sep1 + 1) + [1] * (len_b + 1) + [2])
        assert SEP_ID not in inp[:sep1] and CLS_ID not in inp[:-1]
        # next-token targets: reuse part and A continue the row, the first <sep> predicts B[0]
        np.testing.assert_array_equal(tgt[:REUSE - 1], inp[1:REUSE])
        np.testing.assert_array_equal(tgt[REUSE:sep1 - 1], inp[REUSE + 1:sep1])
        assert tgt[sep1] == inp[sep1 + 1]
        np.testing.assert_array_equal(tgt[sep1 + 1:SEQ - 3], inp[sep1 + 2:SEQ - 2])
        np.testing.assert_array_equal(tgt[-2:], [CLS_ID, CLS_ID])
        assert lab[0] in (0, 1)


def test_masked_count_is_exact_and_rate_is_num_predict_over_seq_len(built):
    _, _, recs = built
    masked = recs["is_masked"]
    np.testing.assert_array_equal(masked.sum(1), NP)
    np.testing.assert_array_equal(masked[:, :REUSE].sum(1), NP - NP // 2)
    func = np.isin(recs["input"], [SEP_ID, CLS_ID])
    real = (masked.astype(bool) & ~func).sum(1)
    assert (real >= NP - 3).all()
    assert abs(masked.mean() - NP / SEQ) < 1e-12


def test_rows_continue_from_step_to_step(built):
    """Row r of step s+1 continues row r of step s (what makes the memory valid)."""
    _, part, recs = built
    inp = recs["input"].reshape(part["num_batches"], 8, SEQ)
    tgt = recs["target"].reshape(part["num_batches"], 8, SEQ)
    np.testing.assert_array_equal(inp[1:, :, 0], tgt[:-1, :, REUSE - 1])


def test_bi_data_backward_rows_are_time_reversed_forward_rows(built):
    _, part, recs = built
    s = part["num_batches"]
    reuse = recs["input"].reshape(s, 8, SEQ)[:, :, :REUSE]            # [S, 8, R]
    # per step, rows of the stream: row position k covers tokens [k*R, (k+1)*R)
    streams = reuse.transpose(1, 0, 2).reshape(8, s * REUSE)          # [8, S*R]
    # bsz_per_core = 4: rows 0,1 forward, 2,3 their reversals; rows 4,5 / 6,7 likewise
    num_step = part["num_tokens"] // 4  # 4 forward rows of the stream
    for fwd_row, bwd_row in ((0, 2), (1, 3), (4, 6), (5, 7)):
        # bwd row = fwd row reversed over the full num_step tokens; compare where both are known
        fwd_full = np.full(num_step, -1)
        fwd_full[:s * REUSE] = streams[fwd_row]
        bwd_from_fwd = fwd_full[::-1][:s * REUSE]
        known = bwd_from_fwd >= 0
        assert known.sum() > 0
        np.testing.assert_array_equal(streams[bwd_row][known], bwd_from_fwd[known])
    # and directly from the stream
    data_rows = cpr.batchify(np.arange(part["num_tokens"]), 8, True, 2)
    assert data_rows[2][0] == data_rows[0][-1] and data_rows[6][0] == data_rows[4][-1]


def test_manifest_round_trip(built):
    root, part, recs = built
    out = root / "out"
    names = sorted(os.listdir(out))
    assert names == [".manifest.lock", "manifest-task0-pass0.json", "manifest.json",
                     "train-0-0.tfrecord"]
    merged = cpr.merge_manifest_parts(out)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == merged
    expected = dict(TINY, bsz_per_host=8, num_core_per_host=2, uncased=False, use_eod=True,
                    vocab_size=2000, num_tasks=1, seed=0, max_gram=5,
                    spiece_sha256=hashlib.sha256(FIXTURE_MODEL.read_bytes()).hexdigest())
    for k, v in expected.items():
        assert merged[k] == v, k
        assert part["build"][k] == v, k
    assert merged["spiece_model"] == str(FIXTURE_MODEL)
    assert merged["complete"] is True and merged["passes"] == [0]
    (entry,) = merged["record_files"]
    assert entry["num_records"] == len(recs["input"]) == merged["num_records"]
    assert entry["record_bytes"] == os.path.getsize(out / "train-0-0.tfrecord")
    assert [os.path.basename(f["path"]) for f in entry["input_files"]] == ["part-00.txt",
                                                                          "part-01.txt"]
    assert sum(f["tokens"] for f in entry["input_files"]) == part["num_tokens"]


def test_compare_reports_both_values():
    with pytest.raises(manifest_lib.ManifestMismatchError) as info:
        manifest_lib.compare({"a": 1, "b": True}, {"a": 2, "b": True, "c": 3, "d": None},
                             source="Data in /x", hint="Fix it.")
    msg = str(info.value)
    assert "a: built with 1, given 2" in msg and "c: built with '(absent)', given 3" in msg
    assert "b:" not in msg and "d:" not in msg and msg.endswith("Fix it.")


def test_same_seed_gives_identical_bytes(tmp_path):
    write_corpus(tmp_path / "c", num_files=3, docs_per_file=6, seed=4)
    glob_ = str(tmp_path / "c" / "*.txt")
    build(glob_, str(tmp_path / "a"))
    build(glob_, str(tmp_path / "b"), num_workers=2)
    build(glob_, str(tmp_path / "s1"), seed=1)
    build(glob_, str(tmp_path / "p1"), pass_id=1)
    a = (tmp_path / "a" / "train-0-0.tfrecord").read_bytes()
    assert a == (tmp_path / "b" / "train-0-0.tfrecord").read_bytes()
    assert a != (tmp_path / "s1" / "train-0-0.tfrecord").read_bytes()
    assert a != (tmp_path / "p1" / "train-0-1.tfrecord").read_bytes()


def test_tasks_split_files_and_merge(tmp_path):
    write_corpus(tmp_path / "c", num_files=3, docs_per_file=6, seed=5)
    glob_ = str(tmp_path / "c" / "*.txt")
    out = str(tmp_path / "out")
    p1 = build(glob_, out, num_tasks=2, task_id=1)
    assert [os.path.basename(f["path"]) for f in p1["input_files"]] == ["part-01.txt"]
    with pytest.raises(ValueError, match=r"missing pass 0: task\(s\) \[0\]"):
        cpr.merge_manifest_parts(out)
    assert json.loads(open(os.path.join(out, "manifest.json")).read())["complete"] is False
    p0 = build(glob_, out, num_tasks=2, task_id=0)
    assert [os.path.basename(f["path"]) for f in p0["input_files"]] == ["part-00.txt",
                                                                        "part-02.txt"]
    merged = json.loads(open(os.path.join(out, "manifest.json")).read())
    assert merged["complete"] is True
    assert [e["task_id"] for e in merged["record_files"]] == [0, 1]
    assert merged["num_records"] == p0["num_records"] + p1["num_records"]
    # a different build into the same folder is refused, naming the key and both values
    with pytest.raises(manifest_lib.ManifestMismatchError,
                       match="seq_len: existing records have 32, this run has 64"):
        build(glob_, out, num_tasks=2, task_id=0, pass_id=1, seq_len=64, reuse_len=32)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        build(glob_, out, num_tasks=2, task_id=0)
    build(glob_, out, num_tasks=2, task_id=0, overwrite=True)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
def _looks_complete(folder):
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if n.endswith((".tfrecord", ".json"))]


@pytest.mark.parametrize("overrides,pattern", [
    (dict(reuse_len=29), r"--reuse_len=29 must be smaller than --seq_len - 3 = 29"),
    (dict(num_predict=40), r"--num_predict=40 is larger than possible for --seq_len=32"),
    (dict(bsz_per_host=6, num_core_per_host=2),
     r"--bsz_per_host=6 must be divisible by 2 \* --num_core_per_host = 4"),
    (dict(bi_data=False, bsz_per_host=5, num_core_per_host=2),
     r"--bsz_per_host=5 must be divisible by --num_core_per_host = 2"),
    (dict(mask_alpha=1, mask_beta=2), r"--mask_alpha=1 must be >= --mask_beta=2"),
])
def test_bad_settings(tmp_path, overrides, pattern):
    write_corpus(tmp_path / "c", num_files=1, docs_per_file=2)
    with pytest.raises(ValueError, match=pattern):
        build(str(tmp_path / "c" / "*.txt"), str(tmp_path / "out"), **overrides)
    assert not os.path.exists(tmp_path / "out")


def test_no_file_matches(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--input_glob='.*nothing\*.txt' matches no file"):
        build(str(tmp_path / "nothing*.txt"), str(tmp_path / "out"))


def test_empty_files_are_skipped_and_empty_corpus_is_an_error(tmp_path, caplog):
    write_corpus(tmp_path / "c", num_files=1, docs_per_file=8)
    (tmp_path / "c" / "empty.txt").write_text("")
    (tmp_path / "c" / "blank.txt").write_text("\n\n  \n")
    with caplog.at_level(logging.WARNING):
        part = build(str(tmp_path / "c" / "*.txt"), str(tmp_path / "out"))
    assert "skipping" in caplog.text and "empty.txt" in caplog.text and "blank.txt" in caplog.text
    skipped = {os.path.basename(f["path"]): f["skipped"] for f in part["input_files"]}
    assert skipped == {"blank.txt": True, "empty.txt": True, "part-00.txt": False}
    with pytest.raises(ValueError, match=r"the corpus of task 0 is empty: its 2 file\(s\)"):
        build(str(tmp_path / "c" / "[be]*.txt"), str(tmp_path / "out2"))
    assert _looks_complete(tmp_path / "out2") == []


def test_non_utf8_file_names_file_and_line(tmp_path):
    write_corpus(tmp_path / "c", num_files=1, docs_per_file=3)
    bad = tmp_path / "c" / "zz-latin1.txt"
    bad.write_bytes("Good line.\nAnother good line.\nBrunetière line.\n".encode("latin-1"))
    for workers in (1, 2):
        with pytest.raises(ValueError, match=r"zz-latin1.txt: line 3 is not valid UTF-8"):
            build(str(tmp_path / "c" / "*.txt"), str(tmp_path / "out"), num_workers=workers)
        assert _looks_complete(tmp_path / "out") == []


def test_corpus_too_small_says_how_many_tokens(tmp_path):
    (tmp_path / "tiny.txt").write_text("One short sentence.\nAnd another.\n")
    with pytest.raises(ValueError, match=r"too small for one batch of records: found \d+ tokens "
                                         r"in 1 file\(s\); one step needs at least 2 rows x "
                                         r"seq_len 32 = 64 tokens"):
        build(str(tmp_path / "tiny.txt"), str(tmp_path / "out"))
    assert _looks_complete(tmp_path / "out") == []


def test_failed_write_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    write_corpus(tmp_path / "c", num_files=1, docs_per_file=8)
    real = cpr.build_batches

    def failing(*args, **kwargs):
        gen = real(*args, **kwargs)
        yield next(gen)
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(cpr, "build_batches", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        build(str(tmp_path / "c" / "*.txt"), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


# --------------------------------------------------------------------------------------
# Real text and the command line
# --------------------------------------------------------------------------------------
def test_real_text_sample(shared_data, tmp_path):
    text = shared_data / "pretrain_text" / "gutenberg" / "blake-poems.txt"
    part = build(str(text), str(tmp_path / "out"), seq_len=64, reuse_len=32, num_predict=10,
                 bsz_per_host=4)
    recs = read_records(tmp_path / "out" / part["record_file"])
    assert part["num_records"] == len(recs["input"]) > 100
    np.testing.assert_array_equal(recs["is_masked"].sum(1), 10)
    assert (recs["input"][:, -1] == CLS_ID).all() and (recs["input"][:, -2] == SEP_ID).all()
    assert EOD_ID in recs["input"]  # stanzas are separated by blank lines
    labels = recs["label"][:, 0]
    assert 0.35 < labels.mean() < 0.65
    # a real latin-1 file of the shared corpus is rejected with its line number
    latin = shared_data / "pretrain_text" / "gutenberg" / "chesterton-ball.txt"
    with pytest.raises(ValueError, match=r"chesterton-ball.txt: line 4631 is not valid UTF-8"):
        build(str(latin), str(tmp_path / "out2"), seq_len=64, reuse_len=32, num_predict=10)


def test_command_line(tmp_path, repo_root):
    write_corpus(tmp_path / "c", num_files=2, docs_per_file=6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "xlnet_tf.pretraining.records",
           f"--input_glob={tmp_path / 'c' / '*.txt'}", f"--save_dir={out}",
           f"--spiece_model={FIXTURE_MODEL}", "--seq_len=32", "--reuse_len=16",
           "--num_predict=6", "--bsz_per_host=4", "--num_core_per_host=1", "--num_workers=1"]
    env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "records in" in res.stderr
    merged = cpr.merge_manifest_parts(out)
    assert merged["seq_len"] == 32 and merged["uncased"] is False and merged["bi_data"] is True
    # same command through the library gives the same bytes
    build(str(tmp_path / "c" / "*.txt"), str(tmp_path / "lib"))
    assert ((out / "train-0-0.tfrecord").read_bytes()
            == (tmp_path / "lib" / "train-0-0.tfrecord").read_bytes())


def test_progress_lines_of_record_building_carry_an_eta(tmp_path, caplog):
    """With a progress line at every chunk/batch: tokenisation reports the share of the text
    done and an ETA, record writing 'N of about M batches' with M never below the batches
    actually written (the estimate is build_batches' own bound)."""
    import re
    from xlnet_tf import progress
    assert progress.eta(0, 10, 5.0) == "--:--:--"
    assert progress.eta(1, 10, 2.0) == "00:00:18"          # 9 left at 2 s each
    assert progress.eta(30, 20, 9.0) == "00:00:00"         # an estimate overrun: nothing left
    files = write_corpus(tmp_path / "c", num_files=2, docs_per_file=30)
    kwargs = dict(TINY)
    with caplog.at_level(logging.INFO, logger="xlnet_tf"):
        cpr.create_pretrain_records(os.path.join(tmp_path, "c", "*.txt"), str(tmp_path / "r"),
                                    str(FIXTURE_MODEL), log_every_s=0.0, **kwargs)
    text = caplog.text
    shares = [float(m) for m in re.findall(r"tokenised \d+ lines, \d+ tokens \(\d+ tokens/s, "
                                           r"(\d+)% of the text, ETA \d\d:\d\d:\d\d\)", text)]
    assert len(shares) == 2 and 0 < shares[0] < 100 and shares == sorted(shares) and shares[-1] == 100.0
    written = [(int(a), int(b)) for a, b in re.findall(
        r"wrote (\d+) of about (\d+) batches \(\d+ records, \d+ tokens/s, ETA "
        r"\d\d:\d\d:\d\d\)", text)]
    total = int(re.search(r"task 0 pass 0: (\d+) batches", text).group(1))
    assert written and written[-1][0] == total
    assert all(b >= total and b <= total + 2 for _, b in written), (written, total)
