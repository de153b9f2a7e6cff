"""Helpers shared by the pretraining-data tests (not a test module).

``write_corpus`` writes small deterministic text files (one sentence per line, blank line
between documents); ``build`` runs ``create_pretrain_records`` with tiny settings;
``synthetic_rows`` makes random two-stream model inputs without records.
"""
import pathlib

import numpy as np

from xlnet_tf.pretraining import records as cpr

FIXTURE_MODEL = pathlib.Path(__file__).resolve().parent / "fixtures" / "spiece_test.model"

WORDS = ("the of and to in a is that for it as was with be by on not he I this are or his "
         "from at which but have an they you were her she there one all we their been has "
         "when who will more no if out so said what up its about into than them can only "
         "other new some could time these two may then do first any my now such like our "
         "over man me even most made after also did many before must through back years "
         "where much your way well down should because each just those people Mr how too "
         "little state good very make world still own see men work long get here between "
         "both life being under never day same another know while last might us great old "
         "year off come since against go came right used take three London river garden "
         "window letter morning evening journey question answer family village").split()


def make_sentence(rng, min_words=3, max_words=12):
    n = int(rng.integers(min_words, max_words + 1))
    words = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def write_corpus(folder, num_files=2, docs_per_file=12, seed=0, name="part"):
    """Writes ``num_files`` files of documents; returns their paths (sorted)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for f in range(num_files):
        lines = []
        for _ in range(docs_per_file):
            lines.extend(make_sentence(rng) for _ in range(int(rng.integers(3, 9))))
            lines.append("")
        path = folder / f"{name}-{f:02d}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(str(path))
    return sorted(paths)


TINY = dict(seq_len=32, reuse_len=16, bi_data=True, num_predict=6, mask_alpha=6, mask_beta=1,
            bsz_per_host=4, num_core_per_host=1)


def build(corpus_glob, save_dir, **overrides):
    kwargs = dict(TINY)
    kwargs.update(overrides)
    return cpr.create_pretrain_records(corpus_glob, save_dir, str(FIXTURE_MODEL),
                                       log_every_s=1e9, **kwargs)


def read_records(path):
    """All records of a tfrecord file as a dict of int64 arrays [N, ...]."""
    import tensorflow as tf
    out = {k: [] for k in ("input", "is_masked", "target", "seg_id", "label")}
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        ex = tf.train.Example.FromString(raw)
        for k in out:
            out[k].append(list(ex.features.feature[k].int64_list.value))
    return {k: np.asarray(v, np.int64) for k, v in out.items()}


def synthetic_rows(rng, n, seq_len, num_predict, n_token):
    """``n`` random rows of the pretraining batch keys (NumPy, rows first): ``num_predict``
    distinct predicted positions per row, each blocked from seeing itself in ``perm_mask``;
    ``target_mask`` all ones."""
    tm = np.zeros((n, num_predict, seq_len), np.float32)
    perm = (rng.random((n, seq_len, seq_len)) < 0.3).astype(np.float32)
    for r in range(n):
        for p, j in enumerate(rng.choice(seq_len, num_predict, replace=False)):
            tm[r, p, j] = 1
            perm[r, j, j] = 1
    return {"input_k": rng.integers(0, n_token, (n, seq_len)).astype(np.int32),
            "seg_ids": rng.integers(0, 2, (n, seq_len)).astype(np.int32),
            "perm_mask": perm, "target_mapping": tm,
            "target": rng.integers(0, n_token, (n, num_predict)).astype(np.int32),
            "target_mask": np.ones((n, num_predict), np.float32), "input_q": tm.sum(1)}
