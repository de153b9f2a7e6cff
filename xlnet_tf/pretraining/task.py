"""Permutation-LM pretraining: the task the shared training loop runs for run_pretrain.py,
and the embedded demo corpus (English text that ships with Python itself)."""
import json
import logging
import os
import re
import shutil

import tensorflow as tf

from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.modeling.model import XLNetLMModel
from xlnet_tf.training.loop import Task

log = logging.getLogger("xlnet_tf")


def pretrain_identity(model_keys, **settings):
    """What a pretraining model_dir is tied to (model_dir/task.json); keys that are unknown
    yet (e.g. n_token before the vocabulary exists) may be left out of an early check."""
    return {"task": "pretrain", **model_keys, **settings}


class PretrainTask(Task):
    """Two-stream permutation LM with Transformer-XL memory carried across steps.

    The per-replica loop state is the memory: n_layer tensors [b, mem_len, d] (zeros at the
    start of every ``iterations`` loop), replaced each step by the model's ``new_mems``.
    Row r of a replica's batch at step s+1 continues row r of step s (the records' layout),
    so the memory is the text that precedes each row.
    """

    def __init__(self, config, record_dir, *, seq_len, reuse_len, perm_size, num_predict,
                 bi_data, seed=0, spiece_model=None, expected=None):
        self.config = config
        self.record_dir = record_dir
        self.seq_len, self.reuse_len, self.perm_size = seq_len, reuse_len, perm_size
        self.num_predict, self.bi_data, self.seed = num_predict, bi_data, seed
        self.spiece_model = spiece_model
        self.expected = expected or {}
        self.identity = pretrain_identity(config.checkpoint_dict(), seq_len=seq_len,
                                          reuse_len=reuse_len, mem_len=config.mem_len,
                                          num_predict=num_predict, bi_data=bi_data)

    def build_model(self):
        return XLNetLMModel(self.config)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        from xlnet_tf.pretraining.input_pipeline import pretrain_dataset
        return pretrain_dataset(self.record_dir, per_replica_batch, self.seq_len,
                                self.reuse_len, self.perm_size, self.num_predict, self.bi_data,
                                input_context=input_context, seed=self.seed,
                                skip_batches=skip_batches, expected=self.expected)

    def initial_state(self, per_replica_batch):
        c = self.config
        if not c.mem_len:
            return []
        return [tf.zeros([per_replica_batch, c.mem_len, c.d_model], tf.float32)
                for _ in range(c.n_layer)]

    def loss(self, model, batch, state, training):
        inputs = {"input_ids": batch["input_k"], "seg_ids": batch["seg_id"],
                  "perm_mask": batch["perm_mask"], "target_mapping": batch["target_mapping"],
                  "inp_q": batch["input_q"]}
        if state:
            inputs["mems"] = list(state)
        out = model(inputs, training=training)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=batch["target"], logits=out["logits"])                   # [b, P]
        mask = tf.cast(batch["target_mask"], tf.float32)                     # [b, P]
        loss = tf.reduce_sum(xent * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        return loss, (list(out["new_mems"]) if state else []), {}

    def export(self, model, model_dir):
        export_pretrained(model, self.config, model_dir, self.spiece_model)


def export_pretrained(model, config, out_dir, spiece_model=None):
    """Write the published-checkpoint trio: xlnet_model.ckpt (original names),
    xlnet_config.json and spiece.model."""
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, "xlnet_model.ckpt")
    ckpt_lib.save_original_checkpoint(model, prefix)
    config.to_json(os.path.join(out_dir, "xlnet_config.json"))
    if spiece_model and os.path.abspath(spiece_model) != os.path.abspath(
            os.path.join(out_dir, "spiece.model")):
        tmp = os.path.join(out_dir, ".spiece.model.tmp")
        shutil.copyfile(spiece_model, tmp)
        os.replace(tmp, os.path.join(out_dir, "spiece.model"))
    return prefix


# ---------------------------------------------------------------------------- demo corpus
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
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    os.replace(tmp, out_path)
    return out_path


def prepare_data(work_dir, input_files, *, spiece_model=None, vocab_size=2000,
                 character_coverage=0.9995, seq_len, reuse_len, bi_data, num_predict,
                 mask_alpha, mask_beta, uncased, bsz_per_host, num_core_per_host, seed=0,
                 num_workers=1):
    """--input_text: train the SentencePiece model if none is given and build the records,
    caching both under ``work_dir`` (rebuilt when a setting changes).  Returns
    (record_dir, spiece_model)."""
    from xlnet_tf.pretraining import records as cpr
    from xlnet_tf.manifest import ManifestMismatchError
    from xlnet_tf.pretraining.input_pipeline import check_manifest
    from xlnet_tf.tokenization.train_spm import train_sentencepiece

    os.makedirs(work_dir, exist_ok=True)
    if not spiece_model:
        spiece_model = os.path.join(work_dir, "spiece.model")
        stamp = os.path.join(work_dir, "spiece.json")
        want = {"inputs": sorted(input_files), "vocab_size": vocab_size,
                "character_coverage": character_coverage, "uncased": bool(uncased)}
        have = None
        if os.path.exists(stamp) and os.path.exists(spiece_model):
            with open(stamp) as f:
                have = json.load(f)
        if have != want:
            log.info("training a SentencePiece model (vocab %d) on %s", vocab_size, input_files)
            train_sentencepiece(input_files, os.path.join(work_dir, "spiece"),
                                vocab_size=vocab_size, character_coverage=character_coverage,
                                # an uncased vocabulary is trained on the text as encoding
                                # will see it (text rules + lower case); a cased one on the
                                # raw text, as the original's README trained its model
                                preprocess=bool(uncased), lower=bool(uncased),
                                overwrite=True, seed=seed)
            with open(stamp + ".tmp", "w") as f:
                json.dump(want, f)
            os.replace(stamp + ".tmp", stamp)
    record_dir = os.path.join(work_dir, "records")
    settings = dict(seq_len=seq_len, reuse_len=reuse_len, bi_data=bi_data,
                    num_predict=num_predict, mask_alpha=mask_alpha, mask_beta=mask_beta,
                    uncased=uncased, bsz_per_host=bsz_per_host,
                    num_core_per_host=num_core_per_host)
    try:
        check_manifest(record_dir, **settings)
        log.info("reusing pretraining records in %s", record_dir)
    except (FileNotFoundError, ManifestMismatchError, ValueError):
        if os.path.isdir(record_dir):
            shutil.rmtree(record_dir)
        log.info("building pretraining records in %s", record_dir)
        cpr.create_pretrain_records(",".join(input_files), record_dir, spiece_model,
                                    seed=seed, num_workers=num_workers, **settings)
    return record_dir, spiece_model
