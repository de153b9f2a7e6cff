"""Checkpoints as the original code writes them, for the loading tests."""
import numpy as np
import tensorflow as tf


def write_original_checkpoint(weights, prefix):
    """Write {original name: array} as a TF1-style name-based checkpoint (float32)."""
    names = sorted(weights)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(np.asarray(weights[n], np.float32)) for n in names])
    return prefix
