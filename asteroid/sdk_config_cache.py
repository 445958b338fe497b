"""Parse the clearml SDK's configuration files once per machine instead of once per process.

Every process that talks to ClearML (the pipeline controller and each step) parses the SDK's default
configuration files and ``clearml.conf`` with pyparsing: ~0.3 s of CPU per process on this 2-core machine,
on the pipeline's critical path five times. Importing this module makes ``ConfigFactory.parse_file`` keep
each parsed file in a private cache directory, keyed by the file's content, and reuse it; files with
substitutions (``${...}``) or ``include`` directives, whose result depends on more than their text, are
always parsed. Idempotent. Function steps get it through their module's imports (``steps/select_best.py``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

_MARK = "asteroid_cached"
_INCLUDE = re.compile(r"^\s*include\b", re.MULTILINE)  # HOCON's include directive (not the word in comments)


def cache_dir() -> Path:
    """The SDK's cache folder (``CLEARML_CACHE_DIR``, else ``~/.clearml/cache``), sub-folder of our own."""
    base = os.environ.get("CLEARML_CACHE_DIR") or str(Path.home() / ".clearml" / "cache")
    return Path(base).expanduser() / "asteroid-config"


def cacheable(content: str) -> bool:
    """Whether a file's parsed result depends on its text alone (no substitutions, no includes)."""
    return "${" not in content and _INCLUDE.search(content) is None


def cache_key(content: str, base_dir: str) -> str:
    from clearml.version import __version__

    return hashlib.sha256(f"{__version__}\0{base_dir}\0{content}".encode()).hexdigest()


def _load(path: Path) -> Any | None:
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def _store(path: Path, value: Any) -> None:
    """Write atomically into a folder only this user can write; failures only cost the next parse."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False) as handle:
            pickle.dump(value, handle)
        os.replace(handle.name, path)
    except (OSError, pickle.PicklingError):
        pass


def install() -> None:
    """Wrap ``ConfigFactory.parse_file`` with the content-keyed cache (once per process)."""
    from clearml.utilities.pyhocon.config_parser import DEFAULT_SUBSTITUTION, ConfigFactory

    original = ConfigFactory.parse_file.__func__
    if getattr(original, _MARK, False):
        return

    def parse_file(
        cls: Any,
        filename: str,
        encoding: str = "utf-8",
        required: bool = True,
        resolve: bool = True,
        unresolved_value: Any = DEFAULT_SUBSTITUTION,
    ) -> Any:
        try:
            content = Path(filename).read_text(encoding=encoding)
        except OSError:
            content = None
        defaults = resolve and unresolved_value is DEFAULT_SUBSTITUTION
        if content is None or not defaults or not cacheable(content):
            return original(cls, filename, encoding, required, resolve, unresolved_value)
        path = cache_dir() / f"{cache_key(content, os.path.dirname(filename))}.pickle"
        cached = _load(path)
        if cached is not None:
            return cached
        parsed = cls.parse_string(content, os.path.dirname(filename), resolve, unresolved_value)
        _store(path, parsed)
        return parsed

    setattr(parse_file, _MARK, True)
    ConfigFactory.parse_file = classmethod(parse_file)


install()
