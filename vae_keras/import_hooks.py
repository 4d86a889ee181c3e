"""Running code around the first import of a module, without importing it now (light: stdlib only).

``vae_keras`` registers its Keras objects once Keras loads, and `vae_keras.tf_logging` silences
TensorFlow's start-up lines while TensorFlow loads; both keep ``import vae_keras`` and the command
line's parsing free of TensorFlow.
"""

import importlib.abc
import importlib.util
import sys


class WrapImport(importlib.abc.MetaPathFinder):
    """Loads module ``name`` through ``wrap(load, module)`` the first time it is imported (then removes itself).

    ``load(module)`` is the loader's own ``exec_module``: ``wrap`` calls it and may run code around it.
    """

    def __init__(self, name, wrap):
        self.name = name
        self.wrap = wrap

    def find_spec(self, name, path=None, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module
            spec.loader.exec_module = lambda module: self.wrap(load, module)
        return spec


def wrap_import(name, wrap):
    """Installs a `WrapImport` for ``name`` unless one is installed already; False if ``name`` is loaded."""
    if name in sys.modules:
        return False
    if not any(isinstance(f, WrapImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, WrapImport(name, wrap))
    return True
