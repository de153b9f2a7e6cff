"""xlnet_tf: XLNet in TensorFlow 2 / Keras 3, faithful to the original checkpoints."""
from xlnet_tf.config import XLNetConfig
from xlnet_tf.model import XLNetLMModel, XLNetModel

__all__ = ["XLNetConfig", "XLNetModel", "XLNetLMModel", "load_original_checkpoint",
           "load_hf_checkpoint", "save_original_checkpoint", "original_names"]


def __getattr__(name):  # lazy: checkpoint helpers import TensorFlow checkpoint readers
    if name in ("load_original_checkpoint", "load_hf_checkpoint", "save_original_checkpoint",
                "original_names"):
        from xlnet_tf import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(name)
