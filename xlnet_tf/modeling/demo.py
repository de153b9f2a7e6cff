"""A small demonstration of the model core: builds a tiny XLNet, runs the content stream on
a padded batch, then a two-stream pretraining forward with memory, and prints the shapes
and a loss.  ``python -m xlnet_tf.modeling.demo``"""
import numpy as np
import tensorflow as tf

import xlnet_tf


def main():
    config = xlnet_tf.XLNetConfig(n_layer=2, d_model=64, n_head=4, d_head=16, d_inner=128,
                                  n_token=1000, mem_len=8, reuse_len=8, dropout=0.0,
                                  dropatt=0.0)
    model = xlnet_tf.XLNetLMModel(config)
    rng = np.random.default_rng(0)
    b, t, p = 4, 16, 3
    ids = rng.integers(9, 1000, (b, t)).astype(np.int32)
    perm = np.zeros((b, t, t), np.float32)
    tm = np.zeros((b, p, t), np.float32)
    targets = np.zeros((b, p), np.int32)
    for row in range(b):
        pos = rng.choice(t, p, replace=False)
        for k, j in enumerate(pos):
            perm[row, :, j] = 1.0          # nobody sees the predicted tokens ...
            tm[row, k, j] = 1.0
            targets[row, k] = ids[row, j]
        perm[row, pos[:, None], pos[None, :]] = np.tril(np.ones((p, p)), -1)  # ... except later targets
    out = model({"input_ids": ids, "seg_ids": np.zeros_like(ids), "perm_mask": perm,
                 "target_mapping": tm})
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, out["logits"]))
    print(f"parameters: {model.count_params():,}")
    print(f"hidden {out['hidden'].shape}, query_hidden {out['query_hidden'].shape}, "
          f"logits {out['logits'].shape}, {len(out['new_mems'])} memories of "
          f"{out['new_mems'][0].shape}")
    print(f"permutation-LM loss of the random model: {float(loss):.3f} "
          f"(log(n_token) = {np.log(config.n_token):.3f})")


if __name__ == "__main__":
    main()
