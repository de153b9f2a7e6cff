"""Serving: the versioned SavedModel writer for TensorFlow Serving (``saved_model``), an
emulation of TF Serving's REST predict API (``rest``), and ``python -m xlnet_tf.serving``
(``saved_model_cli`` with the tensorflow-text ops registered, and a REST ``predict``).

Imports are lazy (PEP 562)."""

_LAZY = {
    "saved_model": ("EXPORT_INFO_NAME", "SPIECE_ASSET_NAME", "check_export_dir",
                    "check_version_dir", "export_with_spiece", "load_saved_model", "next_version",
                    "text_and_ids_archive", "write_archive"),
    "rest": ("RestError", "RestPredictor", "rest_predict"),
}
from xlnet_tf._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: f"{__name__}.{module}" for module, names in _LAZY.items() for name in names})
