"""Importing a researcher's own module (one that registers a mixer) by name or by file path.

``--import mymod`` and a config's ``imports: [mymod]`` find ``mymod.py`` in the current folder as well
as on ``sys.path`` (a command run from the folder that holds the module should just work), and
``--import path/to/mymod.py`` loads that file. Every failure is one ``ValueError`` naming the module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path


def import_user_module(spec: str, what: str = "--import"):
    """Import ``spec`` (a dotted module name, or a path to a ``.py`` file) and return the module."""
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{what} {spec}: no such file")
        name = path.stem
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[name]
            raise ValueError(f"{what} {spec}: importing it failed ({type(e).__name__}: {e})") from None
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # the folder the command runs in, as `python -m` would have it
    try:
        return importlib.import_module(spec)
    except ImportError as e:
        raise ValueError(f"{what} {spec}: {e} (give a module in the current folder or on PYTHONPATH, or a path "
                         "to a .py file)") from None
