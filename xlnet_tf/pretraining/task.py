"""Permutation-LM pretraining: the task the shared training loop runs (loss, per-replica
memory, input) and the export of the published-checkpoint trio."""
import os

import tensorflow as tf

from xlnet_tf import io as io_lib
from xlnet_tf.modeling import checkpoint as ckpt_lib
from xlnet_tf.modeling.model import XLNetLMModel
from xlnet_tf.training import Task


def pretrain_identity(model_keys, **settings):
    """What a pretraining model_dir is tied to (model_dir/task.json); keys that are unknown
    yet (e.g. n_token before the vocabulary exists) may be left out of an early check."""
    return {"task": "pretrain", **model_keys, **settings}


class PretrainTask(Task):
    """Two-stream permutation LM with Transformer-XL memory carried across steps
    (``objective="dae"``: the denoising baseline of :mod:`xlnet_tf.pretraining.dae` on the
    same records, memory, model and checkpoints).

    The per-replica loop state is the memory: n_layer tensors [b, mem_len, d] (zeros at the
    start of every ``iterations`` loop), replaced each step by the model's ``new_mems``.
    Row r of a replica's batch at step s+1 continues row r of step s (the records' layout),
    so the memory is the text that precedes each row.

    Gradient accumulation (``grad_accum_steps = N``) does not change the records: they are
    built for the batch of one optimizer step, as without it.  Each replica's rows are cut
    into N micro-batches (with ``bi_data`` each takes the same share of the forward and of
    the backward half, which the model needs in that order), and micro-batch k carries the
    memory of its own rows: micro-batch k of step s continues micro-batch k of step s-1, the
    text that precedes each of its rows.  Its loss counts in proportion to its predicted
    tokens (:meth:`loss_weight`), so N micro-batches give the gradient of the whole batch.
    """

    def __init__(self, config, record_dir, *, seq_len, reuse_len, perm_size, num_predict,
                 bi_data, seed=0, spiece_model=None, expected=None, objective="plm"):
        self.config = config
        self.record_dir = record_dir
        self.seq_len, self.reuse_len, self.perm_size = seq_len, reuse_len, perm_size
        self.num_predict, self.bi_data, self.seed = num_predict, bi_data, seed
        self.spiece_model = spiece_model
        self.expected = expected or {}
        self.objective = objective
        self.identity = pretrain_identity(config.checkpoint_dict(), seq_len=seq_len,
                                          reuse_len=reuse_len, mem_len=config.mem_len,
                                          num_predict=num_predict, bi_data=bi_data,
                                          objective=objective)

    def build_model(self):
        return XLNetLMModel(self.config)

    def dataset(self, input_context, per_replica_batch, skip_batches):
        from xlnet_tf.pretraining.input_pipeline import pretrain_dataset
        ds = pretrain_dataset(self.record_dir, per_replica_batch, self.seq_len,
                              self.reuse_len, self.perm_size, self.num_predict, self.bi_data,
                              input_context=input_context, seed=self.seed,
                              skip_batches=skip_batches, expected=self.expected)
        if self.objective != "dae":
            return ds
        from xlnet_tf.pretraining.dae import dae_dataset
        # the corruption is drawn from (seed, replica, step): a resumed run corrupts as an
        # uninterrupted one, and the replicas do not share one mask pattern
        pipeline = input_context.input_pipeline_id if input_context is not None else 0
        return dae_dataset(ds, self.seed * 1009 + pipeline, self.config.n_token,
                           start_step=skip_batches)

    def initial_state(self, per_replica_batch):
        c = self.config
        if not c.mem_len:
            return []
        return [tf.zeros([per_replica_batch, c.mem_len, c.d_model], tf.float32)
                for _ in range(c.n_layer)]

    def loss_weight(self, batch):
        """Both objectives average over the predicted tokens of the batch."""
        return tf.reduce_sum(tf.cast(batch["target_mask"], tf.float32))

    def micro_batch_rows(self, per_replica_batch, num_micro_batches):
        if not self.bi_data:
            return super().micro_batch_rows(per_replica_batch, num_micro_batches)
        if per_replica_batch % (2 * num_micro_batches):
            raise ValueError(f"--bi_data with --grad_accum_steps={num_micro_batches}: the "
                             f"per-replica batch {per_replica_batch} must be divisible by 2 x "
                             f"{num_micro_batches} (every micro-batch takes as many forward as "
                             f"backward rows)")
        half, size = per_replica_batch // 2, per_replica_batch // (2 * num_micro_batches)
        return [list(range(k * size, (k + 1) * size))
                + list(range(half + k * size, half + (k + 1) * size))
                for k in range(num_micro_batches)]

    def loss(self, model, batch, state, training):
        if self.objective == "dae":
            from xlnet_tf.pretraining.dae import dae_loss
            loss, new_mems = dae_loss(model, batch, list(state) if state else None, training)
            return loss, new_mems, {}
        inputs = {"input_ids": batch["input_k"], "seg_ids": batch["seg_ids"],
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
    if spiece_model:
        io_lib.copy_file_atomic(spiece_model, os.path.join(out_dir, "spiece.model"))
    return prefix
