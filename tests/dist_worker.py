"""Subprocess worker for the distribution tests (logical CPU devices and TF_CONFIG must be
set before TensorFlow initialises, so these run in their own processes).

  python tests/dist_worker.py mirrored_equivalence OUT_DIR
  python tests/dist_worker.py mwms RECORD_DIR MODEL_DIR      (TF_CONFIG set by the caller)
Prints one JSON line starting with 'RESULT '.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # the test helpers

MODE = sys.argv[1]
if MODE == "mirrored_equivalence":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import numpy as np
import tensorflow as tf

from xlnet_tf import training
from xlnet_tf.modeling import checkpoint
from xlnet_tf.modeling.config import XLNetConfig
from xlnet_tf.modeling.model import XLNetLMModel
from xlnet_tf.pretraining import PretrainTask
from pretrain_test_utils import synthetic_rows  # noqa: E402

CONFIG = XLNetConfig(n_layer=2, d_model=16, n_head=2, d_head=8, d_inner=32, n_token=50,
                     mem_len=6, reuse_len=4, dropout=0.0, dropatt=0.0)
T, P, B = 8, 3, 2   # per-replica batch B


def synthetic_batches(n, seed=0):
    rows = synthetic_rows(np.random.default_rng(seed), n * B, T, P, 50)
    return [{k: v[i * B:(i + 1) * B] for k, v in rows.items()} for i in range(n)]


class SyntheticTask(PretrainTask):
    def __init__(self, batches):
        super().__init__(CONFIG, None, seq_len=T, reuse_len=4, perm_size=4, num_predict=P,
                         bi_data=False)
        self.batches = batches

    def dataset(self, ctx, per_replica_batch, skip):
        stacked = {k: np.stack([b[k] for b in self.batches]) for k in self.batches[0]}
        return tf.data.Dataset.from_tensor_slices(stacked).skip(skip * 2)

    def export(self, model, model_dir):
        pass


def mirrored_equivalence(out_dir):
    steps = int(os.environ.get("DBG_STEPS", 3))
    batches = synthetic_batches(2 * steps)
    init = XLNetLMModel(CONFIG)
    init_prefix = checkpoint.save_original_checkpoint(init, os.path.join(out_dir, "init.ckpt"))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    conf = training.TrainConfig(model_dir=os.path.join(out_dir, "mirrored"), train_steps=steps,
                                learning_rate=1e-2, iterations=steps, global_batch_size=2 * B,
                                clip=0.5, lr_layer_decay_rate=0.8, weight_decay=0.01)
    result = training.train(SyntheticTask(batches), conf, strategy, init_checkpoint=init_prefix)
    model = result["model"]
    def local(v):
        return [x.numpy() for x in strategy.experimental_local_results(v.value)]
    replica_diff = max(float(np.abs(local(v)[0] - local(v)[1]).max())
                       for v in model.trainable_variables)

    # the matching single-device computation: each half of the global batch is one replica's
    # batch with its own memory; loss = mean of the two per-replica losses
    ref = XLNetLMModel(CONFIG)
    checkpoint.load_original_checkpoint(ref, init_prefix)
    names_map = {id(v): n for n, v in ref.original_name_map().items()}
    variables = ref.trainable_variables
    names = [names_map[id(v)] for v in variables]
    opt, _ = training.create_optimizer(1e-2, steps, 0, 0.0, 0.01, 1e-8, variables=variables,
                                           names=names)
    scales = training.layerwise_decay_scales(names, CONFIG.n_layer, 0.8)
    task = SyntheticTask(batches)
    mems = [task.initial_state(B), task.initial_state(B)]
    for s in range(steps):
        with tf.GradientTape() as tape:
            losses = []
            for r in range(2):
                batch = {k: tf.constant(v) for k, v in batches[2 * s + r].items()}
                loss, mems[r], _ = task.loss(ref, batch, mems[r], True)
                losses.append(loss)
            total = (losses[0] + losses[1]) / 2
        grads = tape.gradient(total, variables)
        grads = [tf.convert_to_tensor(g) for g in grads]
        grads, _ = training.clip_by_global_norm(grads, 0.5)
        grads = training.apply_layerwise_decay(grads, scales)
        opt.apply_gradients(zip(grads, variables))
    mirrored = model.original_name_map()
    ref_map = ref.original_name_map()
    diff = max(float(np.abs(local(mirrored[n])[0] - ref_map[n].numpy()).max())
               for n in ref_map)
    if os.environ.get("DBG_STEPS"):
        for n in sorted(ref_map):
            print(n, float(np.abs(local(mirrored[n])[0] - ref_map[n].numpy()).max()),
                  float(np.abs(local(mirrored[n])[0] - init.original_name_map()[n].numpy()).max()),
                  float(np.abs(ref_map[n].numpy() - init.original_name_map()[n].numpy()).max()))
    moved = max(float(np.abs(ref_map[n].numpy() - init.original_name_map()[n].numpy()).max())
                for n in ref_map)
    print("RESULT " + json.dumps({"replica_diff": replica_diff, "vs_single_device": diff,
                                  "moved": moved}), flush=True)


def mwms(record_dir, model_dir):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    config = CONFIG.replace(n_token=int(json.load(open(os.path.join(
        record_dir, "manifest.json")))["vocab_size"]), mem_len=16, reuse_len=16)
    task = PretrainTask(config, record_dir, seq_len=32, reuse_len=16, perm_size=16,
                        num_predict=5, bi_data=True)
    conf = training.TrainConfig(model_dir=model_dir, train_steps=6, learning_rate=1e-3,
                                iterations=3, save_steps=3, global_batch_size=8)
    result = training.train(task, conf, strategy)
    weights = result["model"].original_name_map()
    checksum = {n: float(strategy.experimental_local_results(v.value)[0].numpy().sum())
                for n, v in sorted(weights.items())}
    print("RESULT " + json.dumps({"checksum": checksum, "replicas":
                                  strategy.num_replicas_in_sync,
                                  "losses": [h["loss"] for h in result["history"]]}), flush=True)


if __name__ == "__main__":
    if MODE == "mirrored_equivalence":
        mirrored_equivalence(sys.argv[2])
    elif MODE == "mwms":
        mwms(sys.argv[2], sys.argv[3])
