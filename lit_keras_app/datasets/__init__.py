"""The dataset registry: every module of this package that calls `base.register` is a dataset.

Adding a dataset is one new module here: a `base.Dataset` subclass (files, splits, build, class
names, templates, assets) and a `base.register(...)` call; the modules are found and imported
automatically. Configs name a dataset (`config.dataset`, `evals.NAME.dataset`) and its splits;
`lit_keras_app.resolve` builds it into the cache on first use.
"""
import importlib
import pkgutil

from lit_keras_app.datasets.base import Dataset, get, names, register

__all__ = ["Dataset", "get", "names", "register"]

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")
