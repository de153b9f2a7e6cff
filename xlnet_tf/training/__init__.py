"""Training shared by every stage (pretraining, classification, SQuAD).

Public API (imported lazily, so ``import xlnet_tf.training`` does not load TensorFlow):

* the loop (``loop``): :class:`TrainConfig`, :func:`train`, :func:`evaluate_dataset`;
* the task protocol (``task``): :class:`Task`;
* where it runs (``distribute``): :func:`configure_cpu_devices`, :func:`set_precision`,
  :func:`make_strategy`, :func:`is_chief`, :func:`release_host_memory`, ``STRATEGIES``,
  ``PRECISIONS``;
* what a run folder holds (``run_dir``): :func:`check_model_dir`, :func:`check_output_dir`;
* which weights (``checkpoints``): :func:`init_from_checkpoint`,
  :func:`restore_for_inference`, :func:`restore_latest`, :func:`checkpoint_step`,
  :func:`copy_for_export`;
* memory (``memory``): :func:`estimate_training_bytes`, :func:`check_training_fits`,
  :func:`micro_batch_size`, :func:`per_replica_batch_size` (``--grad_accum_steps``);
* the optimizer (``optimization``): :class:`AdamWeightDecay`, :class:`WarmupPolyDecay`,
  :func:`create_optimizer`, :func:`clip_by_global_norm`, :func:`layerwise_decay_scales`,
  :func:`apply_layerwise_decay`.
"""
_MODULES = {
    "xlnet_tf.training.loop": ("TrainConfig", "train", "evaluate_dataset"),
    "xlnet_tf.training.task": ("Task",),
    "xlnet_tf.training.distribute": ("configure_cpu_devices", "set_precision", "make_strategy",
                                     "is_chief", "release_host_memory", "STRATEGIES",
                                     "PRECISIONS"),
    "xlnet_tf.training.run_dir": ("check_model_dir", "check_output_dir"),
    "xlnet_tf.training.checkpoints": ("init_from_checkpoint", "restore_for_inference",
                                      "restore_latest", "checkpoint_step", "copy_for_export"),
    "xlnet_tf.training.memory": ("estimate_training_bytes", "check_training_fits",
                                "micro_batch_size", "per_replica_batch_size"),
    "xlnet_tf.training.optimization": ("AdamWeightDecay", "WarmupPolyDecay", "create_optimizer",
                                       "clip_by_global_norm", "layerwise_decay_scales",
                                       "apply_layerwise_decay"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: module for module, names in _MODULES.items() for name in names})
