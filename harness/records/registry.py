"""One shape for every extension point: a table of names, each an object or the import path
of one (`"package.module:object"`, imported on first use), plus what installed packages add
through Python entry points, plus — where the table allows it — an import path given in place
of a name.

A plug-in is a package that declares, in its own pyproject.toml,

```toml
[project.entry-points."harness.engines"]
echo = "harness_echo:EchoBackend"
```

(`harness.scorers` for a scorer, `harness.metrics` for a metric and its gate key); once
installed, `backend = "echo"` (or `"scorer": "echo"`)
finds it: nothing in this repository changes. A built-in name always wins over a plug-in's.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from harness.records.errors import HarnessError

T = TypeVar("T")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UnknownExtension(HarnessError):
    """A name that no table, plug-in or import path provides (or one that is not the kind of
    object its table holds)."""


class Registry(Generic[T]):
    """`what`: the kind, in messages ("engine"); `group`: the entry-point group of plug-ins;
    `builtins`: name -> object or import path; `accept`: whether a loaded object is one
    (`is_a` says what that is, in messages); `import_paths`: whether a
    `"package.module:object"` may stand for a name."""

    def __init__(
        self,
        what: str,
        group: str,
        builtins: Mapping[str, T | str],
        accept: Callable[[Any], bool],
        is_a: str,
        import_paths: bool = False,
    ) -> None:
        self.what, self.group, self.accept, self.is_a = what, group, accept, is_a
        self.builtins = dict(builtins)
        self.import_paths = import_paths
        self._loaded: dict[str, T] = {}

    @functools.cached_property
    def plugins(self) -> dict[str, str]:
        """Installed plug-ins' names -> import paths (read once per process)."""
        found = {ep.name: ep.value for ep in entry_points(group=self.group)}
        return {k: v for k, v in found.items() if k not in self.builtins}

    def names(self) -> list[str]:
        return [*self.builtins, *sorted(self.plugins)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def known(self, name: str) -> bool:
        """A name of the table or of a plug-in, or (where allowed) something shaped like an
        import path: checked when loaded."""
        if name in self.builtins or name in self.plugins:
            return True
        return self.import_paths and bool(IMPORT_PATH.match(name))

    def all(self) -> list[T]:
        """Every entry, built-ins first, then plug-ins by name (each loaded)."""
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> T:
        if name in self._loaded:
            return self._loaded[name]
        if not self.known(name):
            hint = ", or 'package.module:object'" if self.import_paths else ""
            raise UnknownExtension(
                f"unknown {self.what} {name!r} (known: {', '.join(self.names())}{hint})"
            )
        target = self.builtins.get(name, self.plugins.get(name, name))
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise UnknownExtension(f"{self.what} {name!r} cannot be imported: {exc}") from None
        if not self.accept(target):
            raise UnknownExtension(f"{self.what} {name!r} is not {self.is_a}")
        self._loaded[name] = target
        return target
