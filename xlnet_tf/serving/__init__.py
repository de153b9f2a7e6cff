"""Serving: the versioned SavedModel writer for TensorFlow Serving (``saved_model``), an
emulation of TF Serving's REST predict API (``rest``), and ``python -m xlnet_tf.serving``
(``saved_model_cli`` with the tensorflow-text ops registered, and a REST ``predict``).

Imports are lazy (PEP 562)."""

_LAZY = {
    "saved_model": ("EXPORT_INFO_NAME", "SPIECE_ASSET_NAME", "check_export_dir",
                    "load_saved_model", "next_version", "write_archive"),
    "rest": ("RestError", "RestPredictor", "rest_predict"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
