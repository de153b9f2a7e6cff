"""Pretraining data from raw text: the embedded demo corpus (English text that ships with
Python itself) and :func:`prepare_data`, which trains the SentencePiece model and builds
the records once, caching both (rebuilt when a setting changes)."""
import logging
import os
import re
import shutil

from xlnet_tf import io as io_lib
from xlnet_tf.manifest import ManifestMismatchError
from xlnet_tf.pretraining import records as records_lib
from xlnet_tf.pretraining.input_pipeline import check_manifest

log = logging.getLogger("xlnet_tf")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")


def python_docs_corpus(out_path):
    """Write English text that ships with Python (the pydoc topic help: the language
    reference as plain text) in the pretraining format: one sentence per line, a blank line
    between documents.  Indented code and grammar blocks are left out."""
    import pydoc_data.topics as topics

    docs = []
    for name in sorted(topics.topics):
        paragraphs, current = [], []
        for line in topics.topics[name].splitlines():
            if not line.strip() or line.startswith((" ", "\t")) or set(line.strip()) <= set("*=-"):
                if current:
                    paragraphs.append(" ".join(current))
                    current = []
                continue
            current.append(line.strip())
        if current:
            paragraphs.append(" ".join(current))
        sentences = [s.strip() for p in paragraphs for s in _SENTENCE_END.split(p)
                     if len(s.split()) >= 3]
        if sentences:
            docs.append("\n".join(sentences))
    text = "\n\n".join(docs) + "\n"
    if os.path.isfile(out_path) and _read_text(out_path) == text:
        return out_path       # the copy of an earlier run: left as it is (the cache stamp)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    io_lib.write_text_atomic(out_path, text)
    return out_path


def _read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def prepare_data(work_dir, input_files, *, spiece_model=None, vocab_size=2000,
                 character_coverage=0.9995, seq_len, reuse_len, bi_data, num_predict,
                 mask_alpha, mask_beta, uncased, bsz_per_host, num_core_per_host, seed=0,
                 num_workers=1, max_gram=5):
    """--input_text: train the SentencePiece model if none is given and build the records,
    caching both under ``work_dir`` (rebuilt when a setting changes).  Returns
    (record_dir, spiece_model)."""
    from xlnet_tf.tokenization.train_spm import train_sentencepiece

    os.makedirs(work_dir, exist_ok=True)
    if not spiece_model:
        spiece_model = os.path.join(work_dir, "spiece.model")
        stamp = os.path.join(work_dir, "spiece.json")
        want = {"inputs": sorted(input_files), "vocab_size": vocab_size,
                "character_coverage": character_coverage, "uncased": bool(uncased)}
        have = None
        if os.path.exists(stamp) and os.path.exists(spiece_model):
            have = io_lib.read_json(stamp, "SentencePiece settings")
        if have != want:
            log.info("training a SentencePiece model (vocab %d) on %s", vocab_size, input_files)
            train_sentencepiece(input_files, os.path.join(work_dir, "spiece"),
                                vocab_size=vocab_size, character_coverage=character_coverage,
                                # an uncased vocabulary is trained on the text as encoding
                                # will see it (text rules + lower case); a cased one on the
                                # raw text, as the original's README trained its model
                                preprocess=bool(uncased), lower=bool(uncased),
                                overwrite=True, seed=seed)
            io_lib.write_json_atomic(stamp, want)
    record_dir = os.path.join(work_dir, "records")
    settings = dict(seq_len=seq_len, reuse_len=reuse_len, bi_data=bi_data,
                    num_predict=num_predict, mask_alpha=mask_alpha, mask_beta=mask_beta,
                    uncased=uncased, bsz_per_host=bsz_per_host,
                    num_core_per_host=num_core_per_host, max_gram=max_gram)
    try:
        check_manifest(record_dir, **settings)
        log.info("reusing pretraining records in %s", record_dir)
    except (FileNotFoundError, ManifestMismatchError, ValueError):
        if os.path.isdir(record_dir):
            shutil.rmtree(record_dir)
        log.info("building pretraining records in %s", record_dir)
        records_lib.create_pretrain_records(",".join(input_files), record_dir, spiece_model,
                                    seed=seed, num_workers=num_workers, **settings)
    return record_dir, spiece_model
