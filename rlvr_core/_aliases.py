"""Old import paths keep working: `rlvr_core.<old flat module>` is the module that now holds its code.

Until the package was split into subpackages every module sat directly in `rlvr_core/`; users' scripts,
notebooks and pickled Ray tasks name those paths (`from rlvr_core.store import open_cache`,
`rlvr_core.substitution.PeriodicSubstitution`, `rlvr_core.callbacks.RankKSubstitutionCallback`). An import
of an old path returns the new module itself (the same object), so nothing is copied and nothing drifts.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

OLD_PATHS = {
    "alignment": "math.alignment",
    "analysis": "pipelines.analyze",
    "arithmetic": "demo.arithmetic",
    "atomic": "cache.atomic",
    "callbacks": "training.callbacks",
    "chartok": "demo.chartok",
    "checkpoint": "readers.checkpoint",
    "cli_eval": "cli.evaluate",
    "cli_jobs": "cli.jobs",
    "comparison": "pipelines.compare",
    "dataroots": "service.dataroots",
    "datasets": "readers.datasets",
    "evaluation": "pipelines.evaluate",
    "generation": "pipelines.generation",
    "grading": "math.grading",
    "grpo": "demo.grpo",
    "heavytail": "math.heavytail",
    "ingest": "pipelines.logs",
    "jobs": "cache.queue",
    "layout": "readers.layout",
    "memory": "system.libc",
    "naming": "readers.naming",
    "policy": "demo.policy",
    "serve": "service.serve",
    "settings": "system.settings",
    "spectral": "math.spectral",
    "store": "cache.store",
    "substitution": "training.periodic",
    "tables": "pipelines.step_rows",
    "trainlog": "readers.trainlog",
    "trajectory": "pipelines.run_alignment",
    "trl_files": "demo.trl_files",
    "variants": "pipelines.substitute",
    "warmup": "demo.warmup",
    "worker": "service.worker",
}
"""Old module name (under `rlvr_core.`) -> its module now (under `rlvr_core.`)."""
_PACKAGE = __name__.rpartition(".")[0]


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self.own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.own_spec  # the import machinery set the alias's spec: give the module its own back


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != _PACKAGE or name not in OLD_PATHS:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(f"{_PACKAGE}.{OLD_PATHS[name]}"))


def install() -> None:
    """Put the alias finder on `sys.meta_path` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
