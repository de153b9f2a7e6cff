"""XLNet permutation-LM pretraining.

Public API (imported lazily: ``records`` and ``check_settings`` start without TensorFlow):

* ``run``: :func:`pretrain` (end to end from plain values), :func:`check_settings`;
* ``task``: :class:`PretrainTask`, :func:`export_pretrained`, :func:`pretrain_identity`;
* ``data``: :func:`prepare_data` (raw text -> SentencePiece model + records, cached),
  :func:`python_docs_corpus` (the demo corpus);
* ``records``: :func:`create_pretrain_records` (the original's ``data_utils.py``; also
  ``python -m xlnet_tf.pretraining.records``), :func:`merge_manifest_parts`;
* ``input_pipeline``: :func:`pretrain_dataset` (records -> permutation-LM batches),
  :func:`check_manifest`, :func:`load_manifest`;
* ``dae``: the denoising baseline (``--objective=dae``): :func:`corrupt`,
  :func:`dae_dataset`, :func:`dae_loss`.
"""
_MODULES = {
    "xlnet_tf.pretraining.task": ("PretrainTask", "export_pretrained", "pretrain_identity"),
    "xlnet_tf.pretraining.data": ("prepare_data", "python_docs_corpus"),
    "xlnet_tf.pretraining.records": ("create_pretrain_records", "merge_manifest_parts"),
    "xlnet_tf.pretraining.input_pipeline": ("pretrain_dataset", "check_manifest",
                                            "load_manifest"),
    "xlnet_tf.pretraining.dae": ("corrupt", "dae_dataset", "dae_loss"),
    "xlnet_tf.pretraining.run": ("pretrain", "check_settings", "OBJECTIVES"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: module for module, names in _MODULES.items() for name in names})
