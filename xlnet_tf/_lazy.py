"""Lazy package exports (PEP 562), the one way every ``__init__.py`` of xlnet_tf declares its
public API without importing its modules (so light modules never load TensorFlow)::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"Name": "xlnet_tf.pkg.module"})
"""
import importlib
import sys


def lazy_exports(package, exports):
    """``(__getattr__, __dir__, __all__)`` for ``package`` whose names ``exports`` ({name:
    module path}) are imported from their module on first access; a module path of None
    exports the submodule ``package.name`` itself."""

    def __getattr__(name):
        if name in exports:
            if exports[name] is None:
                return importlib.import_module(f"{package}.{name}")
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__, sorted(exports)
