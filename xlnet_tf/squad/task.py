"""SQuAD fine-tuning and prediction around :class:`xlnet_tf.squad.model.XLNetSquadModel`:
the original's loss, the :class:`SquadTask` that :func:`xlnet_tf.training.train` runs,
and the prediction loop that turns beam outputs into ``RawResult`` objects for
:mod:`xlnet_tf.squad.postprocess`.

Loss (the original's): ``0.5 * (CE_start + CE_end) + 0.5 * mean(sigmoid_xent(cls_logits,
is_impossible))``, the cross entropies averaged over the batch; unanswerable windows point
start and end at ``cls_index`` (the data pipeline does that).
"""
import logging
import time

import numpy as np
import tensorflow as tf

from xlnet_tf.finetuning import finetune_config, save_final_checkpoint
from xlnet_tf.squad.model import XLNetSquadModel
from xlnet_tf.squad.postprocess import RawResult
from xlnet_tf.squad.records import squad_dataset
from xlnet_tf.training import Task

log = logging.getLogger("xlnet_tf")


def squad_loss(outputs, start_positions, end_positions, is_impossible):
    """The original's SQuAD loss and its three parts (scalars, float32):
    ``total = 0.5 * (start + end) + 0.5 * answer_class`` where start/end are the batch-mean
    cross entropies of the gold positions under ``start_log_probs`` / ``end_log_probs`` and
    answer_class is the batch-mean sigmoid cross entropy of ``cls_logits`` against
    ``is_impossible``."""
    def xent(log_probs, positions):
        picked = tf.gather(log_probs, tf.cast(positions, tf.int32), batch_dims=1)  # [B]
        return -tf.reduce_mean(picked)

    start_loss = xent(outputs["start_log_probs"], start_positions)
    end_loss = xent(outputs["end_log_probs"], end_positions)
    cls_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(is_impossible, tf.float32), logits=outputs["cls_logits"]))
    total = 0.5 * (start_loss + end_loss) + 0.5 * cls_loss
    return total, {"start_loss": start_loss, "end_loss": end_loss, "cls_loss": cls_loss}


# ============================================================================ fine-tuning
def squad_identity(config, max_seq_length):
    """What makes two SQuAD runs share an output_dir (model_dir/task.json)."""
    return {"task": "squad", "xlnet_config": finetune_config(config).checkpoint_dict(),
            "max_seq_length": int(max_seq_length)}


class SquadTask(Task):
    """Fine-tuning job for :func:`xlnet_tf.training.train`.

    Args:
      config: the XLNetConfig (fine-tuning options are forced by the model).
      train_record: TFRecord file of the training features
        (``xlnet_tf.squad.records.load_or_build_features(..., is_training=True)``).
      max_seq_length: T of the records.
      start_n_top, end_n_top: beam sizes of the model's inference outputs.
      seed, shuffle_buffer: training input order.
    """

    def __init__(self, config, train_record, max_seq_length, *, start_n_top=5, end_n_top=5,
                 seed=0, shuffle_buffer=2048):
        self.config = finetune_config(config)
        self.train_record = train_record
        self.max_seq_length = int(max_seq_length)
        self.start_n_top, self.end_n_top = int(start_n_top), int(end_n_top)
        self.seed, self.shuffle_buffer = seed, int(shuffle_buffer)
        self.identity = squad_identity(self.config, self.max_seq_length)

    def build_model(self, dtype=None):
        kwargs = {"dtype": dtype} if dtype else {}
        return XLNetSquadModel(self.config, self.start_n_top, self.end_n_top, **kwargs)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        pipelines = input_context.num_input_pipelines if input_context is not None else 1
        pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
        ds = squad_dataset(self.train_record, per_replica_batch, True, self.max_seq_length,
                           shuffle_buffer=self.shuffle_buffer, seed=self.seed)
        if pipelines > 1:
            # same shuffled stream on every host, every host takes its own batches
            ds = ds.shard(pipelines, pipeline_id)
        return ds.skip(skip_batches) if skip_batches else ds

    def loss(self, model, batch, state, training):
        out = model(batch, training=training)
        total, parts = squad_loss(out, batch["start_positions"], batch["end_positions"],
                                  batch["is_impossible"])
        start_pred = tf.argmax(out["start_logits"], -1, output_type=tf.int32)  # [b]
        start_acc = tf.reduce_mean(tf.cast(tf.equal(
            start_pred, tf.cast(batch["start_positions"], tf.int32)), tf.float32))
        cls_acc = tf.reduce_mean(tf.cast(tf.equal(
            tf.cast(out["cls_logits"] > 0, tf.float32),
            tf.cast(batch["is_impossible"], tf.float32)), tf.float32))
        return total, state, dict(parts, start_acc=start_acc, cls_acc=cls_acc)

    def export(self, model, model_dir):
        """The final weights under the original names: ``model_dir/xlnet_model.ckpt`` (with
        the training step as ``global_step``)."""
        save_final_checkpoint(model, model_dir)


# ============================================================================ prediction
PREDICT_KEYS = ("unique_ids", "start_top_log_probs", "start_top_index", "end_top_log_probs",
                "end_top_index", "cls_logits")


def predict_raw_results(model, record_path, batch_size, max_seq_length, log_every=50):
    """Runs the beam heads over every feature of a prediction record file (file order, the
    last partial batch included) -> list of :class:`xlnet_tf.squad.postprocess.RawResult`."""
    ds = squad_dataset(record_path, batch_size, False, max_seq_length)

    @tf.function
    def step(batch):
        feats = {k: batch[k] for k in ("input_ids", "seg_ids", "input_mask", "p_mask",
                                       "cls_index")}
        out = model(feats, training=False)
        return {"unique_ids": batch["unique_ids"],
                **{k: out[k] for k in PREDICT_KEYS if k != "unique_ids"}}

    chunks = {k: [] for k in PREDICT_KEYS}
    t0 = time.time()
    n = 0
    for i, batch in enumerate(ds):
        out = step(batch)
        for k in PREDICT_KEYS:
            chunks[k].append(out[k].numpy())
        n += int(out["unique_ids"].shape[0])
        if log_every and (i + 1) % log_every == 0:
            log.info("predicted %d features (%.1f features/s)", n, n / (time.time() - t0))
    if not chunks["unique_ids"]:
        return []
    arrays = {k: np.concatenate(v, 0) for k, v in chunks.items()}
    return [RawResult(unique_id=int(arrays["unique_ids"][i]),
                      start_top_log_probs=arrays["start_top_log_probs"][i],
                      start_top_index=arrays["start_top_index"][i],
                      end_top_log_probs=arrays["end_top_log_probs"][i],
                      end_top_index=arrays["end_top_index"][i],
                      cls_logits=float(arrays["cls_logits"][i]))
            for i in range(len(arrays["unique_ids"]))]
