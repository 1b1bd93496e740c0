"""The input/output boundary of every entry point: bounded reads, a hardened YAML loader, output directories.

* :func:`read_text` reads at most ``limit`` bytes and decodes UTF-8 with a one-line error.
* :func:`load_yaml` parses YAML with a loader that rejects duplicate keys, bounds the nesting depth and the size
  the document would have with every alias expanded (a "billion laughs" document is refused before it is built), and
  reads YAML 1.2 floats such as ``1e-3`` as numbers (PyYAML's YAML 1.1 resolver reads them as strings).
* :func:`check_out_dir` validates an output directory without creating anything; :func:`make_out_dir` creates it
  once the config is known to be valid; :func:`check_targets` refuses symlinks (and non-files) among the files a
  command is about to write; :func:`atomic_write_text` / :func:`atomic_write_bytes` write through a temporary file and
  ``os.replace``, so a reader never sees half a file and a symlink at the target is replaced, never followed.

Every failure is a :class:`~falab._checks.FalabInputError` with the message ``Invalid <name>: <value> (expected ...)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from ._checks import FalabInputError, invalid

MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes; 1 MB leaves room and bounds what we read
MAX_YAML_DEPTH = 32  # configs nest 3 levels deep
MAX_YAML_NODES = 100_000  # scalars + collections after expanding every alias

# Any: PyYAML ships no type information, and the C loader exists only when libyaml is built in
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FalabLoader(_Loader):
    """Safe loader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the base class reports it with its position
                break
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_short(key)} at line {mark.line + 1}", None)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats (1e-3, 1E6, +1.5e+2) next to YAML 1.1's, which require a dot.
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                        |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)
_FalabLoader.yaml_implicit_resolvers = {k: list(v) for k, v in _Loader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _FalabLoader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _FalabLoader.yaml_implicit_resolvers.get(_first, []) if tag != "tag:yaml.org,2002:float"]
    _FalabLoader.yaml_implicit_resolvers[_first].insert(0, ("tag:yaml.org,2002:float", _FLOAT))


def _short(value: Any, limit: int = 80) -> str:
    from ._checks import short_repr

    return short_repr(value, limit)


def read_text(path: str | Path, name: str = "config path", *, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes (a leading BOM is dropped)."""
    p = Path(path)
    shown = str(path)
    if not p.is_file():
        raise invalid(name, shown, "an existing file" if not p.exists() else "a regular file, not a directory or device")
    try:
        with p.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise invalid(name, shown, f"a readable file ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise invalid(name, shown, f"a file of at most {limit:,} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(name, shown, f"UTF-8 text (byte {exc.start} is not: {data[exc.start:exc.start + 1]!r})") from None


def _check_events(text: str) -> None:
    """Bound nesting depth and the alias-expanded size on the event stream, before any node is built."""
    depth, total = 0, 0
    sizes: dict[str, int] = {}  # anchor -> expanded node count
    open_nodes: list[list[Any]] = []  # [anchor, count at start]
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise invalid("config YAML", f"nesting deeper than {MAX_YAML_DEPTH} levels",
                              f"a config nested at most {MAX_YAML_DEPTH} levels deep", quote=False)
            total += 1
            open_nodes.append([event.anchor, total])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            anchor, start = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = total - start + 1
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            total += sizes.get(event.anchor, 1)
        if total > MAX_YAML_NODES:
            raise invalid("config YAML", f"more than {MAX_YAML_NODES:,} values with aliases expanded",
                          "a small config (an alias bomb is refused)", quote=False)


def load_yaml(text: str, name: str = "config YAML", *, source: str = "config") -> Any:
    """Parse one YAML document with the hardened loader; ``source`` names the file in messages."""
    try:
        _check_events(text)
        return yaml.load(text, Loader=_FalabLoader)  # noqa: S506 - _FalabLoader is a SafeLoader
    except FalabInputError:
        raise
    except yaml.YAMLError as exc:
        raise invalid(name, source, f"valid YAML ({_clip(_yaml_problem(exc), 120)})") from None
    except Exception as exc:  # PyYAML's constructors on hostile input: 2020-13-45 (ValueError), '!!int' (IndexError)
        reason = str(exc) or type(exc).__name__
        raise invalid(name, source, f"valid YAML values ({_clip(reason, 120)})") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``<problem> at line L, column C`` for a marked YAML error, else its first non-empty line."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_yaml_file(path: str | Path, *, limit: int = MAX_CONFIG_BYTES) -> Any:
    """:func:`read_text` then :func:`load_yaml`."""
    return load_yaml(read_text(path, limit=limit), source=Path(path).name)


# ---------------------------------------------------------------------------------------------------- output paths


def _writable(directory: Path) -> bool:
    """Whether this process may create entries in ``directory``."""
    return os.access(directory, os.W_OK | os.X_OK)


def check_out_dir(out: str | Path | None, name: str = "out") -> Path:
    """Validate an output directory and return it resolved (once: later writes use this path); creates nothing.

    Refused: an empty path, an existing non-directory, a directory (or nearest existing parent) that is not writable.
    """
    if out is None or str(out).strip() == "":
        raise invalid(name, "" if out is None else str(out), "a directory path (an empty path would write into the "
                      "current directory)")
    raw = str(out)
    if "\x00" in raw:
        raise invalid(name, raw, "a path without NUL characters")
    try:
        p = Path(raw).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise invalid(name, raw, f"a resolvable directory path ({exc})") from None
    if p.exists():
        if not p.is_dir():
            raise invalid(name, raw, "a directory (this path is an existing file)")
        if not _writable(p):
            raise invalid(name, raw, "a writable directory")
        return p
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise invalid(name, raw, f"a path whose parent is a directory ({parent} is a file)")
    if not _writable(parent):
        raise invalid(name, raw, f"a directory that can be created ({parent} is not writable)")
    return p


def make_out_dir(out: Path, name: str = "out") -> Path:
    """Create a directory validated by :func:`check_out_dir` (call once the config is valid)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise invalid(name, str(out), f"a writable directory ({exc.strerror or exc})") from None
    return out


def check_targets(out: Path, files: Iterable[str] = (), dirs: Iterable[str] = (), name: str = "out") -> None:
    """Refuse symlinks among the files and directories a command will write in ``out``, and entries of the wrong
    kind (a directory where a file goes, a file where a directory goes)."""
    for rel, want_dir in [(f, False) for f in files] + [(d, True) for d in dirs]:
        target = out / rel
        if target.is_symlink():
            raise invalid(name, str(target), "no symlink inside the output directory (it would be followed)")
        if target.exists() and target.is_dir() != want_dir:
            raise invalid(name, str(target), "a directory" if want_dir else "a regular file or nothing")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    A symlink at ``path`` is replaced by the new file (never followed); a reader sees the old or the new contents.
    """
    with atomic_writer(path, "wb") as fh:
        fh.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file next to ``path`` for writing (``"w"`` text UTF-8 or ``"wb"``); on success it replaces
    ``path`` with ``os.replace``, on an exception it is removed and ``path`` is untouched. For large outputs that
    should be streamed rather than built in memory."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with (os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8", newline="")) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


__all__ = ["MAX_CONFIG_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "atomic_write_bytes", "atomic_write_text", "atomic_writer",
           "check_out_dir", "check_targets", "load_yaml", "load_yaml_file", "make_out_dir", "read_text"]
