"""A corpus of malformed inputs to every entry point (issue 12): ``falab run``, ``train``, ``reproduce`` and ``bench``.

Each case runs ``falab.cli.main`` in-process (a few through a real subprocess, at the end) in a fresh directory that
is also the working directory, and asserts: the exit code (2 for a user mistake), exactly one line on stderr that
matches the case's pattern (the field named, the value shown), no traceback, and that nothing at all was written (the
whole directory tree, output directory included, is byte-identical afterwards).

``CORPUS`` is one table of :class:`Case`; ``test_corpus_size`` pins that it holds at least 150 cases across the four
commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from falab.cli import main

RUN_BASE: dict[str, Any] = {
    "seed": 0,
    "model": {"widths": [3, 4, 1], "activation": "tanh"},
    "data": {"kind": "teacher", "n_samples": 6},
    "rule": {"name": "fa"},
    "loss": {"name": "squared"},
    "dynamics": {"kind": "euler", "lr": 0.05, "steps": 2},
}
TRAIN_BASE: dict[str, Any] = {"datasets": ["digits"], "models": ["mlp"], "rules": ["bp"], "seeds": [0], "epochs": 1}
_DEL = object()


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with dotted paths (``dynamics__lr`` for ``dynamics.lr``) set, or deleted with ``_DEL``."""
    cfg = yaml.safe_load(yaml.safe_dump(base))
    for path, value in changes.items():
        keys = path.split("__")
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is _DEL:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return cfg


@dataclass
class Case:
    """One malformed input: the command line (``{cfg}`` is the config written from ``config``, ``{tmp}`` the case's
    directory), files to create, the expected exit code and the pattern of the one stderr line."""

    id: str
    args: list[str]
    pattern: str
    config: Any = None  # dict -> YAML, str -> text, bytes -> raw
    files: dict[str, Any] = field(default_factory=dict)  # relative path -> str | bytes | callable(path)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    setup: Callable[[Path], None] | None = None


def _run(cid: str, config: Any, pattern: str, **kw: Any) -> Case:
    return Case(f"run/{cid}", ["run", "{cfg}", "--out", "{tmp}/out"], pattern, config=config, **kw)


def _train(cid: str, config: Any, pattern: str, **kw: Any) -> Case:
    return Case(f"train/{cid}", ["train", "{cfg}", "--out", "{tmp}/out"], pattern, config=config, **kw)


def _rc(cid: str, pattern: str, **changes: Any) -> Case:
    """A run config with one change."""
    return _run(cid, _with(RUN_BASE, **changes), pattern)


def _tc(cid: str, pattern: str, **changes: Any) -> Case:
    return _train(cid, _with(TRAIN_BASE, **changes), pattern)


def _npz(**arrays: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(fh, **arrays)

    return write


def _file_cfg(**data: Any) -> dict[str, Any]:
    return _with(RUN_BASE, data={"kind": "file", "path": "d.npz"})


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _symlink(name: str, target: str = "victim.txt") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / target).write_text("precious\n")
        out = tmp / "out"
        (out / Path(name).parent).mkdir(parents=True, exist_ok=True)
        os.symlink(tmp / target, out / name)

    return setup


def _mkdir(*names: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for n in names:
            (tmp / n).mkdir(parents=True)

    return setup


def _fake_python(version: str) -> Callable[[Path], None]:
    """An executable that answers the version probe like a venv with ``biotorch==version``."""

    def setup(tmp: Path) -> None:
        p = tmp / "peer" / "python"
        p.parent.mkdir()
        p.write_text(f"#!/bin/sh\necho {version}\n")
        p.chmod(0o755)

    return setup


BIG = 2**64
SEED_MSG = r"\(expected an integer with 0 <= seed < 2\*\*63\)$"

CORPUS: list[Case] = [
    # ------------------------------------------------------------------ run: the file itself and its YAML
    _run("missing file", None, r"^error: Invalid config path: '.*nope\.yaml' \(expected an existing file\)$"),
    _run("config is a directory", None, r"^error: Invalid config path: .*\(expected a regular file"),
    _run("binary file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", r"^error: Invalid config path: .*\(expected UTF-8 text \(byte"),
    _run("latin-1 file", "seed: 0\nname: caf\xe9\n".encode("latin-1"), r"^error: Invalid config path: .*\(expected UTF-8 text"),
    _run("utf-16 file", "seed: 0\n".encode("utf-16"), r"^error: Invalid config path: .*\(expected UTF-8 text"),
    _run("too large", "seed: 0\n" + "# padding\n" * 110_000, r"^error: Invalid config path: .*\(expected a file of at most 1,000,000 bytes\)$"),
    _run("empty file", "", r"^error: Invalid config: empty \(expected a mapping"),
    _run("only a comment", "# nothing here\n", r"^error: Invalid config: empty \(expected a mapping"),
    _run("null document", "null\n", r"^error: Invalid config: empty"),
    _run("scalar document", "42\n", r"^error: Invalid config: 'int' \(expected a mapping"),
    _run("string document", "hello\n", r"^error: Invalid config: 'str' \(expected a mapping"),
    _run("list document", "- 1\n- 2\n", r"^error: Invalid config: 'list' \(expected a mapping"),
    _run("two documents", "seed: 0\n---\nseed: 1\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(but found another document at line 2, column 1\)\)$"),
    _run("unclosed bracket", "model: [1, 2\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(.*line 2"),
    _run("unclosed quote", "rule: {name: 'fa}\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML"),
    _run("tab indentation", "model:\n\twidths: [3, 4, 1]\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(found character that cannot start any token at line 2, column 1\)\)$"),
    _run("bad indentation", "model:\n  widths: [3, 4, 1]\n bias: true\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML"),
    _run("NUL character", "seed: 0\x00\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(unacceptable character #x0000"),
    _run("duplicate top-level key", "seed: 0\nseed: 1\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(duplicate key 'seed' at line 2\)\)$"),
    _run("duplicate nested key", yaml.safe_dump(RUN_BASE) + "", r".*", setup=None),  # replaced below
    _run("alias bomb", _alias_bomb(), r"^error: Invalid config YAML: more than 100,000 values with aliases expanded"),
    _run("alias bomb in a field", "seed: 0\n" + _alias_bomb(7) + "model: {widths: *a6}\n", r"^error: Invalid config YAML: more than 100,000 values"),
    _run("deep nesting 20000", "[" * 20000 + "]" * 20000 + "\n", r"^error: Invalid config YAML: .*(nesting deeper than 32 levels|exceeded maximum nesting depth)"),
    _run("deep mapping", "".join(f"{'  ' * i}k{i}:\n" for i in range(40)) + "  " * 40 + "v\n", r"^error: Invalid config YAML: nesting deeper than 32 levels"),
    _run("self-referencing alias", "model: &m {widths: [3, 4, 1], init: *m}\n", r"^error: Invalid (config|model\.init)"),
    _run("unknown python tag", "seed: !!python/object/apply:os.system [echo hi]\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(could not determine a constructor"),
    _run("bad binary tag", "seed: !!binary '%%%'\n", r"^error: Invalid (config YAML: 'cfg\.yaml' \(expected valid YAML \(failed to decode base64|seed: b'' \(expected an integer\)$)"),
    _run("impossible timestamp", "seed: 2020-13-45\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML values \(month must be in 1\.\.12\)\)$"),
    _run("unhashable key", "? [1, 2]\n: 3\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(found unhashable key"),
    _run("non-string key", _with(RUN_BASE) | {3: "x"}, r"^error: Invalid config key: 3 \(expected field names as strings\)$"),
    # ------------------------------------------------------------------ run: top-level fields
    _rc("unknown top-level key", r"^error: Invalid modle: 1 \(expected one of the fields seed, ensemble, model, data, rule, loss, dynamics, measures\)$", modle=1),
    _rc("seed true", r"^error: Invalid seed: True \(expected an integer\)$", seed=True),
    _rc("seed string", r"^error: Invalid seed: '1' \(expected an integer\)$", seed="1"),
    _rc("seed float", r"^error: Invalid seed: 1\.5 \(expected an integer\)$", seed=1.5),
    _rc("seed negative", r"^error: Invalid seed: -1 " + SEED_MSG, seed=-1),
    _rc("seed 2**64", r"^error: Invalid seed: 18446744073709551616 " + SEED_MSG, seed=BIG),
    _rc("seed 2**63", r"^error: Invalid seed: 9223372036854775808 " + SEED_MSG, seed=2**63),
    _rc("seed null", r"^error: Invalid seed: None \(expected an integer\)$", seed=None),
    _rc("ensemble zero", r"^error: Invalid ensemble: 0 \(expected greater than or equal to 1\)$", ensemble=0),
    _rc("ensemble true", r"^error: Invalid ensemble: True \(expected an integer\)$", ensemble=True),
    _rc("ensemble 1e6 float", r"^error: Invalid ensemble: 1000000\.0 \(expected an integer\)$", ensemble=1e6),
    _rc("ensemble string", r"^error: Invalid ensemble: '3' \(expected an integer\)$", ensemble="3"),
    _rc("ensemble 1e12", r"^error: Invalid run size: about [0-9,.]+ GB \(expected at most the [0-9,.]+ GB of available memory; .*ensemble 1,000,000,000,000.*; --allow-large overrides\)$", ensemble=10**12),
    _rc("missing model", r"^error: Invalid model: missing \(expected this required field\)$", model=_DEL),
    _rc("missing rule", r"^error: Invalid rule: missing \(expected this required field\)$", rule=_DEL),
    _rc("missing dynamics", r"^error: Invalid dynamics: missing \(expected this required field\)$", dynamics=_DEL),
    _rc("model is a list", r"^error: Invalid model: \[3, 4, 1\] \(expected a mapping of fields\)$", model=[3, 4, 1]),
    _rc("rule is a string", r"^error: Invalid rule: 'fa' \(expected a mapping of fields\)$", rule="fa"),
    # ------------------------------------------------------------------ run: model
    _rc("widths strings", r"^error: Invalid model\.widths\.0: '3' \(expected an integer\)$", model__widths=["3", 4, 1]),
    _rc("widths bool", r"^error: Invalid model\.widths\.0: True \(expected an integer\)$", model__widths=[True, 4, 1]),
    _rc("widths float", r"^error: Invalid model\.widths\.1: 4\.5 \(expected an integer\)$", model__widths=[3, 4.5, 1]),
    _rc("widths zero", r"^error: Invalid model\.widths\.1: 0 \(expected greater than or equal to 1\)$", model__widths=[3, 0, 1]),
    _rc("widths negative", r"^error: Invalid model\.widths\.2: -1 ", model__widths=[3, 4, -1]),
    _rc("widths one entry", r"^error: Invalid model\.widths: \[3\] \(expected a list of at least 2 items\)$", model__widths=[3]),
    _rc("widths empty", r"^error: Invalid model\.widths: \[\] \(expected a list of at least 2 items\)$", model__widths=[]),
    _rc("widths string", r"^error: Invalid model\.widths: '3-4-1' \(expected a list\)$", model__widths="3-4-1"),
    _rc("widths mapping", r"^error: Invalid model\.widths: \{'a': 1\} \(expected a list\)$", model__widths={"a": 1}),
    _rc("widths 1e5 (80 GB)", r"^error: Invalid run size: about [0-9,.]+ GB \(expected at most .*parameters x ensemble dominate: 10,000,100,000 parameters", model__widths=[100000, 100000, 1]),
    _rc("activation unknown", r"^error: Invalid model\.activation: 'swish' \(expected one of identity, relu", model__activation="swish"),
    _rc("activation number", r"^error: Invalid model\.activation: 3 \(expected a string or a list\)$", model__activation=3),
    _rc("activation list unknown", r"^error: Invalid model\.activation: 'foo' \(expected one of identity", model__activation=["relu", "foo"]),
    _rc("activation bad slope", r"^error: Invalid activation: 'leaky_relu:abc'", model__activation="leaky_relu:abc"),
    _rc("bias string", r"^error: Invalid model\.bias: 'maybe' \(expected true or false\)$", model__bias="maybe"),
    _rc("bias int", r"^error: Invalid model\.bias: 1 \(expected true or false\)$", model__bias=1),
    _rc("model unknown key", r"^error: Invalid model\.depth: 3 \(expected no depth for model kind 'mlp' \(it takes activation, bias, init, widths\)\)$", model__depth=3),
    _rc("init scheme unknown", r"^error: Invalid model\.init\.scheme: 'he' \(expected 'gaussian', 'xavier', 'kaiming' or 'zeros'\)$", model__init={"scheme": "he"}),
    _rc("init std negative", r"^error: Invalid model\.init\.std: -1 \(expected greater than or equal to 0 or a list\)$", model__init={"scheme": "gaussian", "std": -1}),
    _rc("init std with xavier", r"^error: Invalid model\.init\.std: 0\.1 \(expected no std for scheme 'xavier'", model__init={"scheme": "xavier", "std": 0.1}),
    _rc("init std string", r"^error: Invalid model\.init\.std: '0\.1' \(expected a number or a list\)$", model__init={"scheme": "gaussian", "std": "0.1"}),
    _rc("init std inf", r"^error: Invalid model\.init\.std: inf \(expected a finite number", model__init={"scheme": "gaussian", "std": float("inf")}),
    _rc("zero_layers out of range", r"^error: Invalid model\.init\.zero_layers: 3 \(expected layer indices in 1\.\.2\)$", model__init={"zero_layers": [3]}),
    _rc("zero_layers zero", r"^error: Invalid model\.init\.zero_layers: 0 \(expected layer indices in 1\.\.2\)$", model__init={"zero_layers": [0]}),
    _rc("zero_layers strings", r"^error: Invalid model\.init\.zero_layers\.0: '1' \(expected an integer\)$", model__init={"zero_layers": ["1"]}),
    _rc("init unknown key", r"^error: Invalid model\.init\.mean: 0 \(expected one of the fields scheme, std, zero_layers\)$", model__init={"mean": 0}),
    # ------------------------------------------------------------------ run: data
    _rc("data kind unknown", r"^error: Invalid data\.kind: 'mnist' \(expected 'teacher', 'sparse_teacher', 'low_rank', 'digits', 'mnist1d' or 'file'\)$", data__kind="mnist"),
    _rc("n_samples zero", r"^error: Invalid data\.n_samples: 0 \(expected greater than or equal to 1\)$", data__n_samples=0),
    _rc("n_samples bool", r"^error: Invalid data\.n_samples: True \(expected an integer\)$", data__n_samples=True),
    _rc("n_samples string", r"^error: Invalid data\.n_samples: '6' \(expected an integer\)$", data__n_samples="6"),
    _rc("noise inf", r"^error: Invalid data\.noise: inf \(expected a finite number \(no \.inf or \.nan\)\)$", data__noise=float("inf")),
    _rc("noise nan", r"^error: Invalid data\.noise: nan \(expected a finite number", data__noise=float("nan")),
    _rc("noise negative", r"^error: Invalid data\.noise: -0\.1 \(expected greater than or equal to 0\)$", data__noise=-0.1),
    _rc("noise string", r"^error: Invalid data\.noise: 'low' \(expected a number\)$", data__noise="low"),
    _rc("noise for digits", r"^error: Invalid data\.noise: 0\.1 \(expected no noise for data\.kind 'digits'", data={"kind": "digits", "noise": 0.1}),
    _rc("path for teacher", r"^error: Invalid data\.path: 'x\.npz' \(expected no path for data\.kind 'teacher'", data__path="x.npz"),
    _rc("file without path", r"^error: Invalid data\.path: None \(expected a path to an \.npz file", data={"kind": "file"}),
    _rc("file with n_samples", r"^error: Invalid data\.n_samples: 5 \(expected no n_samples for data\.kind 'file'", data={"kind": "file", "path": "d.npz", "n_samples": 5}),
    _rc("path a number", r"^error: Invalid data\.path: 3 \(expected a string\)$", data={"kind": "file", "path": 3}),
    _rc("data unknown key", r"^error: Invalid data\.size: 3 \(expected one of the fields kind, n_samples, noise, sparsity, rank, path\)$", data__size=3),
    _rc("digits widths mismatch", r"^error: Invalid model\.widths\[0\]: 3 \(expected the data's input width 64", data={"kind": "digits", "n_samples": 20}),
    _run("npz missing", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an existing file"),
    _run("npz garbage", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an \.npz file with numeric arrays X and y \(File is not a zip file\)\)$", files={"d.npz": b"garbage" * 10}),
    _run("npz is a text file", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an \.npz file", files={"d.npz": "X,y\n1,2\n"}),
    _run("npz is a .npy", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an \.npz file", files={"d.npz": lambda p: np.save(p.open("wb"), np.ones(3))}),
    _run("npz object array", _file_cfg(), r"^error: Invalid data\.path array X: dtype object \(expected a numeric dtype", files={"d.npz": _npz(X=np.array([{"a": 1}, None], dtype=object), y=np.ones(2))}),
    _run("npz string array", _file_cfg(), r"^error: Invalid data\.path array y: dtype <U1 \(expected a numeric dtype", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.array(list("abcd")))}),
    _run("npz without y", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an \.npz file with numeric arrays X and y \(found \['X'\]\)\)$", files={"d.npz": _npz(X=np.ones((4, 3)))}),
    _run("npz lower-case x", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected .*found \['x', 'y'\]", files={"d.npz": _npz(x=np.ones((4, 3)), y=np.ones(4))}),
    _run("npz X 1-D", _file_cfg(), r"^error: Invalid model\.widths\[0\]: 3 \(expected the data's input width", files={"d.npz": _npz(X=np.ones(4), y=np.ones(4))}),
    _run("npz X wrong width", _file_cfg(), r"^error: Invalid model\.widths\[0\]: 3 \(expected the data's input width 5", files={"d.npz": _npz(X=np.ones((4, 5)), y=np.ones(4))}),
    _run("npz y wrong width", _file_cfg(), r"^error: Invalid model\.widths\[-1\]: 1 \(expected the data's output width 2\)$", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.ones((4, 2)))}),
    _run("npz zero rows", _file_cfg(), r"^error: Invalid data X: shape \(0, 3\) \(expected at least one sample\)$", files={"d.npz": _npz(X=np.ones((0, 3)), y=np.ones((0, 1)))}),
    _run("npz inf in X", _file_cfg(), r"^error: Invalid data X: 4 non-finite entries \(expected finite values only\)$", files={"d.npz": _npz(X=np.array([[1, 2, np.inf]] * 4), y=np.ones(4))}),
    _run("npz nan in y", _file_cfg(), r"^error: Invalid data y: 1 non-finite entries", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.array([1, np.nan, 2, 3]))}),
    _run("npz rows differ", _file_cfg(), r"^error: Invalid problem\.y shape: \(3, 1\) \(expected as many samples as x", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.ones(3))}),
    # shape errors (issue 14): transposed or mis-ranked data files name the width and the data's shape
    _run("npz X transposed", _file_cfg(), r"^error: Invalid model\.widths\[0\]: 3 \(expected the data's input width 4 \(data shape \(3, 4\)\)\)$", files={"d.npz": _npz(X=np.ones((3, 4)), y=np.ones(4))}),
    _run("npz y transposed", _file_cfg(), r"^error: Invalid model\.widths\[-1\]: 1 \(expected the data's output width 4\)$", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.ones((1, 4)))}),
    _run("npz X 3-D", _file_cfg(), r"^error: Invalid model\.widths\[0\]: 3 \(expected the data's input width 3 \(data shape \(2, 4, 3\)\)\)$", files={"d.npz": _npz(X=np.ones((2, 4, 3)), y=np.ones(8))}),
    _run("npz widths mismatch deep", _with(_file_cfg(), model__widths=[3, 4, 4, 2]), r"^error: Invalid model\.widths\[-1\]: 2 \(expected the data's output width 1\)$", files={"d.npz": _npz(X=np.ones((4, 3)), y=np.ones(4))}),
    _run("npz a directory", _file_cfg(), r"^error: Invalid data\.path: 'd\.npz' \(expected an existing file", setup=_mkdir("d.npz")),
    # ------------------------------------------------------------------ run: rule and loss
    _rc("rule name unknown", r"^error: Invalid rule\.name: 'backprop2' \(expected 'bp', 'fa', 'dfa', 'fa_star', 'usf', 'frsf' or 'brsf'\)$", rule__name="backprop2"),
    _rc("rule name number", r"^error: Invalid rule\.name: 1 \(expected 'bp', 'fa', 'dfa', 'fa_star', 'usf', 'frsf' or 'brsf'\)$", rule__name=1),
    _rc("rule name missing", r"^error: Invalid rule\.name: missing \(expected this required field\)$", rule={"feedback": {"kind": "gaussian"}}),
    _rc("feedback under bp", r"^error: Invalid rule\.feedback: \{'kind': 'gaussian', .*\(expected no feedback block for rule 'bp'", rule={"name": "bp", "feedback": {"kind": "gaussian"}}),
    _rc("feedback kind unknown", r"^error: Invalid rule\.feedback\.kind: 'bogus' \(expected 'scaled_like_weight', 'gaussian', 'uniform'", rule__feedback={"kind": "bogus"}),
    _rc("feedback std zero", r"^error: Invalid rule\.feedback\.std: 0 \(expected greater than 0\)$", rule__feedback={"std": 0}),
    _rc("feedback std inf", r"^error: Invalid rule\.feedback\.std: inf \(expected a finite number", rule__feedback={"std": float("inf")}),
    _rc("feedback std for uniform", r"^error: Invalid rule\.feedback\.std: 0\.5 \(expected no std for kind 'uniform'", rule__feedback={"kind": "uniform", "std": 0.5}),
    _rc("feedback scale for gaussian", r"^error: Invalid rule\.feedback\.scale: 2(\.0)? \(expected no scale for kind 'gaussian'", rule__feedback={"kind": "gaussian", "scale": 2}),
    _rc("feedback scale string", r"^error: Invalid rule\.feedback\.scale: 'big' \(expected a number\)$", rule__feedback={"kind": "uniform", "scale": "big"}),
    _rc("feedback unknown key", r"^error: Invalid rule\.feedback\.seed: 1 \(expected one of the fields kind, std, scale, structured\)$", rule__feedback={"seed": 1}),
    _rc("rule unknown key", r"^error: Invalid rule\.lr: 1 \(expected one of the fields name, feedback\)$", rule__lr=1),
    _rc("loss unknown", r"^error: Invalid loss\.name: 'hinge' \(expected 'squared', 'exponential' or 'cross_entropy'\)$", loss__name="hinge"),
    _rc("reduction unknown", r"^error: Invalid loss\.reduction: 'avg' \(expected 'mean' or 'sum'\)$", loss__reduction="avg"),
    _rc("cross-entropy width 1", r"^error: Invalid model\.widths: 1 \(expected a last width of at least 2 for the cross-entropy loss", loss__name="cross_entropy"),
    _rc("exponential width 2", r"^error: Invalid model\.widths: 2 \(expected a last width of 1 for the exponential loss\)$", loss__name="exponential", model__widths=[3, 4, 2]),
    _rc("fa_star with cross-entropy", r"^error: Invalid loss\.name: 'cross_entropy' \(expected 'squared' for rule 'fa_star'\)$", rule__name="fa_star", loss__name="cross_entropy", model__widths=[3, 4, 2]),
    _rc("loss unknown key", r"^error: Invalid loss\.weight: 2 \(expected one of the fields name, reduction\)$", loss__weight=2),
    # ------------------------------------------------------------------ run: dynamics
    _rc("dynamics kind missing", r"^error: Invalid dynamics\.kind: missing \(expected one of 'flow', 'euler', 'sgd', 'modified_trapezoid'\)$", dynamics={"lr": 0.1, "steps": 2}),
    _rc("dynamics kind unknown", r"^error: Invalid dynamics\.kind: 'leapfrog' \(expected one of 'flow', 'euler', 'sgd', 'modified_trapezoid'\)$", dynamics__kind="leapfrog"),
    _rc("dynamics a string", r"^error: Invalid dynamics(\.kind)?: 'euler' \(expected", dynamics="euler"),
    _rc("lr negative", r"^error: Invalid dynamics\.lr: -0\.1 \(expected greater than 0 or a mapping\)$", dynamics__lr=-0.1),
    _rc("lr zero", r"^error: Invalid dynamics\.lr: 0 \(expected greater than 0 or a mapping\)$", dynamics__lr=0),
    _rc("lr inf", r"^error: Invalid dynamics\.lr: inf \(expected a finite number", dynamics__lr=float("inf")),
    _rc("lr string", r"^error: Invalid dynamics\.lr: '0\.1' \(expected a number or a mapping\)$", dynamics__lr="0.1"),
    _rc("lr bool", r"^error: Invalid dynamics\.lr: True \(expected a number or a mapping\)$", dynamics__lr=True),
    _rc("lr unknown parameter", r"^error: Invalid lr: \['W9'\] \(expected step sizes keyed by parameter names W1, W2\)$", dynamics__lr={"W9": 0.1}),
    _rc("lr dict negative", r"^error: Invalid dynamics\.lr\.W1: -1 \(expected greater than 0\)$", dynamics__lr={"W1": -1, "W2": 0.1}),
    _rc("lr dict missing one", r"^error: Invalid lr\['W2'\]: None \(expected a step size for every parameter", dynamics__lr={"W1": 0.1}),
    _rc("steps zero", r"^error: Invalid dynamics\.steps: 0 \(expected greater than or equal to 1\)$", dynamics__steps=0),
    _rc("steps true", r"^error: Invalid dynamics\.steps: True \(expected an integer\)$", dynamics__steps=True),
    _rc("steps string", r"^error: Invalid dynamics\.steps: 'many' \(expected an integer\)$", dynamics__steps="many"),
    _rc("steps float", r"^error: Invalid dynamics\.steps: 10\.0 \(expected an integer\)$", dynamics__steps=10.0),
    _rc("steps 1e9 recorded every step", r"^error: Invalid run size: about [0-9,.]+ GB \(expected .*recorded metrics dominate: .* 1,000,000,00[12] records", dynamics__steps=10**9),
    _rc("steps missing", r"^error: Invalid dynamics\.steps: missing \(expected this required field\)$", dynamics__steps=_DEL),
    _rc("record_every zero", r"^error: Invalid dynamics\.record_every: 0 \(expected greater than or equal to 1\)$", dynamics__record_every=0),
    _rc("batch_size with euler", r"^error: Invalid dynamics\.batch_size: 2 \(expected no batch_size for kind 'euler'", dynamics__batch_size=2),
    _rc("sgd without batch_size", r"^error: Invalid dynamics\.batch_size: None \(expected an integer >= 1 \(required for kind 'sgd'\)\)$", dynamics__kind="sgd"),
    _rc("sgd batch larger than data", r"^error: Invalid dynamics\.batch_size: 100 \(expected at most the number of samples \(6\)\)$", dynamics__kind="sgd", dynamics__batch_size=100),
    _rc("sgd batch zero", r"^error: Invalid dynamics\.batch_size: 0 \(expected greater than or equal to 1\)$", dynamics__kind="sgd", dynamics__batch_size=0),
    _rc("euler unknown key", r"^error: Invalid dynamics\.momentum: 0\.9 \(expected one of the fields kind, lr, steps, record_every, batch_size, stop\)$", dynamics__momentum=0.9),
    _rc("t_end zero", r"^error: Invalid dynamics\.t_end: 0 \(expected greater than 0\)$", dynamics={"kind": "flow", "t_end": 0}),
    _rc("t_end negative", r"^error: Invalid dynamics\.t_end: -1 \(expected greater than 0\)$", dynamics={"kind": "flow", "t_end": -1}),
    _rc("t_end inf", r"^error: Invalid dynamics\.t_end: inf \(expected a finite number", dynamics={"kind": "flow", "t_end": float("inf")}),
    _rc("t_end string", r"^error: Invalid dynamics\.t_end: '1' \(expected a number\)$", dynamics={"kind": "flow", "t_end": "1"}),
    _rc("t_end missing", r"^error: Invalid dynamics\.t_end: missing", dynamics={"kind": "flow"}),
    _rc("n_points one", r"^error: Invalid dynamics\.n_points: 1 \(expected greater than or equal to 2\)$", dynamics={"kind": "flow", "t_end": 1, "n_points": 1}),
    _rc("n_points 1e8", r"^error: Invalid run size: about [0-9,.]+ GB \(expected .* 100,000,000 records; --allow-large overrides\)$", dynamics={"kind": "flow", "t_end": 1, "n_points": 10**8}),
    _rc("rtol zero", r"^error: Invalid dynamics\.rtol: 0 \(expected greater than 0\)$", dynamics={"kind": "flow", "t_end": 1, "rtol": 0}),
    _rc("atol negative", r"^error: Invalid dynamics\.atol: -1e-12 \(expected greater than 0\)$", dynamics={"kind": "flow", "t_end": 1, "atol": -1e-12}),
    _rc("method unknown", r"^error: Invalid dynamics\.method: 'euler' \(expected 'DOP853', 'RK45'", dynamics={"kind": "flow", "t_end": 1, "method": "euler"}),
    _rc("rk4 without step", r"^error: Invalid dynamics\.step_size: None \(expected a step > 0 for the fixed-step method 'rk4'\)$", dynamics={"kind": "flow", "t_end": 1, "method": "rk4"}),
    _rc("step_size with DOP853", r"^error: Invalid dynamics\.step_size: 0\.01 \(expected no step_size for the adaptive method 'DOP853'", dynamics={"kind": "flow", "t_end": 1, "step_size": 0.01}),
    _rc("rk4 step 1e-15", r"^error: Invalid run size: about .* GB", dynamics={"kind": "flow", "t_end": 100.0, "n_points": 2, "method": "rk4", "step_size": 1e-15}),
    _rc("max_evaluations zero", r"^error: Invalid dynamics\.max_evaluations: 0 \(expected greater than or equal to 1\)$", dynamics={"kind": "flow", "t_end": 1, "max_evaluations": 0}),
    _rc("flow unknown key", r"^error: Invalid dynamics\.steps: 3 \(expected one of the fields kind, t_end, n_points, rtol, atol, method, step_size, max_evaluations, stop\)$", dynamics={"kind": "flow", "t_end": 1, "steps": 3}),
    # ------------------------------------------------------------------ run: measures
    _rc("measure unknown", r"^error: Invalid measures\.1: 'entropy' \(expected 'loss', 'layer_norms'", measures=["loss", "entropy"]),
    _rc("measures a string", r"^error: Invalid measures: 'loss' \(expected a list\)$", measures="loss"),
    _rc("measures a number", r"^error: Invalid measures\.0: 1 \(expected 'loss'", measures=[1]),
    # ------------------------------------------------------------------ run: the command line and the output directory
    Case("run/--out empty", ["run", "{cfg}", "--out", ""], r"^error: Invalid --out: '' \(expected a path", config=RUN_BASE),
    Case("run/--out= empty", ["run", "{cfg}", "--out="], r"^error: Invalid --out: '' \(expected a path", config=RUN_BASE),
    Case("run/--out is a file", ["run", "{cfg}", "--out", "{tmp}/f.txt"], r"^error: Invalid --out: '.*f\.txt' \(expected a directory \(this path is an existing file\)\)$", config=RUN_BASE, files={"f.txt": "x"}),
    Case("run/--out under a file", ["run", "{cfg}", "--out", "{tmp}/f.txt/sub"], r"^error: Invalid --out: .* \(expected a path whose parent is a directory", config=RUN_BASE, files={"f.txt": "x"}),
    Case("run/symlink metrics.csv in --out", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*metrics\.csv' \(expected no symlink inside the output directory", config=RUN_BASE, setup=_symlink("metrics.csv")),
    Case("run/symlink manifest in --out", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*manifest\.json' \(expected no symlink", config=RUN_BASE, setup=_symlink("manifest.json")),
    Case("run/symlink figure in --out", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*figures/loss\.png' \(expected no symlink", config=RUN_BASE, setup=_symlink("figures/loss.png")),
    Case("run/figures is a file", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*figures' \(expected a directory\)$", config=RUN_BASE, files={"out/figures": "not a dir"}),
    Case("run/metrics.csv is a directory", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*metrics\.csv' \(expected a regular file or nothing\)$", config=RUN_BASE, setup=_mkdir("out/metrics.csv")),
    Case("run/unknown option", ["run", "{cfg}", "--bogus"], r"^error: No such option: --bogus .*\(see falab run --help\)$", config=RUN_BASE),
    Case("run/missing argument", ["run"], r"^error: Missing argument '(config|CONFIG)'\. \(see falab run --help\)$"),
    Case("run/two configs", ["run", "{cfg}", "{cfg}"], r"^error: Got unexpected extra argument", config=RUN_BASE),
    Case("run/FALAB_THREADS letters", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: 'abc' \(expected a positive integer\)$", config=RUN_BASE, env={"FALAB_THREADS": "abc"}),
    Case("run/FALAB_THREADS zero", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: 0 \(expected an integer >= 1\)$", config=RUN_BASE, env={"FALAB_THREADS": "0"}),
    Case("run/FALAB_THREADS negative", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: '-1' \(expected a positive integer\)$", config=RUN_BASE, env={"FALAB_THREADS": "-1"}),
    Case("run/FALAB_THREADS empty", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: '' \(expected a positive integer\)$", config=RUN_BASE, env={"FALAB_THREADS": ""}),
    Case("run/FALAB_THREADS huge", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: '10000000000' \(expected a positive integer\)$", config=RUN_BASE, env={"FALAB_THREADS": "10000000000"}),
    Case("run/FALAB_THREADS unicode digit", ["run", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: '²' \(expected a positive integer\)$", config=RUN_BASE, env={"FALAB_THREADS": "²"}),
    # ------------------------------------------------------------------ train
    _train("missing file", None, r"^error: Invalid config path: '.*nope\.yaml' \(expected an existing file\)$"),
    _train("empty file", "", r"^error: Invalid config: 'NoneType' \(expected a mapping|^error: Invalid config: empty"),
    _train("empty mapping", "{}\n", r"^error: Invalid config: empty \(expected at least one field"),
    _train("only comments", "# train\n", r"^error: Invalid config"),
    _train("list document", "- digits\n", r"^error: Invalid config: 'list' \(expected a mapping of fields"),
    _train("binary", b"\xff\xfe\x00\x01", r"^error: Invalid config path: .*\(expected UTF-8 text"),
    _train("duplicate key", "epochs: 1\nepochs: 2\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(duplicate key 'epochs' at line 2\)\)$"),
    _train("alias bomb", _alias_bomb(), r"^error: Invalid config YAML: more than 100,000 values"),
    _train("deep nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", r"^error: Invalid config YAML: .*(nesting deeper than 32 levels|exceeded maximum nesting depth)"),
    _train("invalid YAML", "rules: [bp, fa\n", r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML"),
    _tc("unknown key", r"^error: Invalid epoch: 3 \(expected one of the fields name, datasets, models, rules, seeds, epochs", epoch=3),
    _tc("datasets unknown", r"^error: Invalid datasets\.0: 'mnist' \(expected 'digits', 'mnist1d' or 'pystdlib'\)$", datasets=["mnist"]),
    _tc("datasets empty", r"^error: Invalid datasets: \[\] \(expected a list of at least 1 item\)$", datasets=[]),
    _tc("datasets a string", r"^error: Invalid datasets: 'digits' \(expected a list\)$", datasets="digits"),
    _tc("models unknown", r"^error: Invalid models\.0: 'resnet' \(expected 'mlp', 'cnn', 'mlp_ref', 'mlp_ref256', 'cnn_ref' or 'transformer'\)$", models=["resnet"]),
    _tc("rules unknown", r"^error: Invalid rules\.1: 'xfa' \(expected 'bp', 'fa', 'dfa', 'usf', 'frsf' or 'brsf'\)$", rules=["fa", "xfa"]),
    _tc("rules empty", r"^error: Invalid rules: \[\] \(expected a list of at least 1 item\)$", rules=[]),
    _tc("seeds negative", r"^error: Invalid seeds\.0: -1 " + SEED_MSG, seeds=[-1]),
    _tc("seeds 2**64", r"^error: Invalid seeds\.1: 18446744073709551616 " + SEED_MSG, seeds=[0, BIG]),
    _tc("seeds bool", r"^error: Invalid seeds\.0: True \(expected an integer\)$", seeds=[True]),
    _tc("seeds string", r"^error: Invalid seeds\.0: '0' \(expected an integer\)$", seeds=["0"]),
    _tc("seeds a number", r"^error: Invalid seeds: 3 \(expected a list\)$", seeds=3),
    _tc("seeds empty", r"^error: Invalid seeds: \[\] \(expected a list of at least 1 item\)$", seeds=[]),
    _tc("epochs zero", r"^error: Invalid epochs: 0 \(expected greater than or equal to 1\)$", epochs=0),
    _tc("epochs true", r"^error: Invalid epochs: True \(expected an integer\)$", epochs=True),
    _tc("epochs float", r"^error: Invalid epochs: 1\.5 \(expected an integer\)$", epochs=1.5),
    _tc("epochs string", r"^error: Invalid epochs: '3' \(expected an integer\)$", epochs="3"),
    _tc("batch_size zero", r"^error: Invalid batch_size: 0 \(expected greater than or equal to 1\)$", batch_size=0),
    _tc("hidden zero", r"^error: Invalid hidden: 0 \(expected greater than or equal to 1\)$", hidden=0),
    _tc("hidden 1e6", r"^error: Invalid train size: about [0-9,.]+ GB \(expected at most the [0-9,.]+ GB of available memory; .*hidden = 1,000,000; --allow-large overrides\)$", hidden=10**6),
    _tc("init unknown", r"^error: Invalid init: 'he' \(expected 'default', 'xavier' or 'kaiming'\)$", init="he"),
    _tc("optimizer unknown", r"^error: Invalid optimizer\.name: 'rmsprop' \(expected 'sgd' or 'adam'\)$", optimizer={"name": "rmsprop"}),
    _tc("optimizer lr negative", r"^error: Invalid optimizer\.lr: -1 \(expected greater than 0\)$", optimizer={"lr": -1}),
    _tc("optimizer lr inf", r"^error: Invalid optimizer\.lr: inf \(expected a finite number", optimizer={"lr": float("inf")}),
    _tc("optimizer lr string", r"^error: Invalid optimizer\.lr: 'fast' \(expected a number\)$", optimizer={"lr": "fast"}),
    _tc("momentum 1", r"^error: Invalid optimizer\.momentum: 1 \(expected less than 1\)$", optimizer={"name": "sgd", "momentum": 1}),
    _tc("momentum with adam", r"^error: Invalid optimizer\.momentum: 0\.5 \(expected no momentum for optimizer 'adam'", optimizer={"momentum": 0.5}),
    _tc("weight_decay negative", r"^error: Invalid optimizer\.weight_decay: -0\.1 \(expected greater than or equal to 0\)$", optimizer={"weight_decay": -0.1}),
    _tc("optimizer unknown key", r"^error: Invalid optimizer\.beta: 0\.9 \(expected one of the fields name, lr, momentum, weight_decay\)$", optimizer={"beta": 0.9}),
    _tc("val_fraction 0.5", r"^error: Invalid split\.val_fraction: 0\.5 \(expected less than 0\.5\)$", split={"val_fraction": 0.5}),
    _tc("val_fraction zero", r"^error: Invalid split\.val_fraction: 0 \(expected greater than 0\)$", split={"val_fraction": 0}),
    _tc("fractions sum 0.98", r"^error: Invalid split\.val_fraction \+ test_fraction: 0\.98 \(expected at most 0\.6 \(at least 40% of the data left for training\)\)$", split={"val_fraction": 0.49, "test_fraction": 0.49}),
    _tc("data_seed negative", r"^error: Invalid split\.data_seed: -1 " + SEED_MSG, split={"data_seed": -1}),
    _tc("split unknown key", r"^error: Invalid split\.train_fraction: 0\.6 \(expected one of the fields val_fraction, test_fraction, data_seed, standardize\)$", split={"train_fraction": 0.6}),
    _tc("dtype unknown", r"^error: Invalid dtype: 'float16' \(expected 'float32' or 'float64'\)$", dtype="float16"),
    _tc("threads zero", r"^error: Invalid threads: 0 \(expected greater than or equal to 1\)$", threads=0),
    _tc("threads true", r"^error: Invalid threads: True \(expected an integer\)$", threads=True),
    _tc("deterministic string", r"^error: Invalid deterministic: 'sure' \(expected true or false\)$", deterministic="sure"),
    _tc("name with a slash", r"^error: Invalid name: '\.\./escape' \(expected String should match pattern", name="../escape"),
    _tc("name a number", r"^error: Invalid name: 3 \(expected a string\)$", name=3),
    Case("train/--out empty", ["train", "{cfg}", "--out", ""], r"^error: Invalid --out: '' \(expected a path", config=TRAIN_BASE),
    Case("train/--out is a file", ["train", "{cfg}", "--out", "{tmp}/f.txt"], r"^error: Invalid --out: '.*f\.txt' \(expected a directory \(this path is an existing file\)\)$", config=TRAIN_BASE, files={"f.txt": "x"}),
    Case("train/symlink in --out", ["train", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*runs\.json' \(expected no symlink", config=TRAIN_BASE, setup=_symlink("runs.json")),
    Case("train/symlink figure in --out", ["train", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*nn_curves_digits_mlp\.png' \(expected no symlink", config=TRAIN_BASE, setup=_symlink("nn_curves_digits_mlp.png")),
    Case("train/unknown option", ["train", "{cfg}", "--epochs", "3"], r"^error: No such option: --epochs.*\(see falab train --help\)$", config=TRAIN_BASE),
    Case("train/FALAB_THREADS bad", ["train", "{cfg}", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: 'x' \(expected a positive integer\)$", config=TRAIN_BASE, env={"FALAB_THREADS": "x"}),
    # ------------------------------------------------------------------ reproduce (all refused before any experiment)
    Case("reproduce/unknown paper", ["reproduce", "P001", "--out", "{tmp}/out"], r"^error: Invalid paper: 'P001' \(expected one of P000, P002, P003, P004, NN, FALAB\)$"),
    Case("reproduce/paper with spaces", ["reproduce", "P0 00", "--out", "{tmp}/out"], r"^error: Invalid paper: 'P0 00'"),
    Case("reproduce/seed -1", ["reproduce", "P004", "--seed=-1", "--out", "{tmp}/out"], r"^error: Invalid --seed: -1 " + SEED_MSG),
    Case("reproduce/seed 2**64", ["reproduce", "P004", "--seed", str(BIG), "--out", "{tmp}/out"], r"^error: Invalid --seed: 18446744073709551616 " + SEED_MSG),
    Case("reproduce/seed 2**63", ["reproduce", "P004", "--seed", str(2**63), "--out", "{tmp}/out"], r"^error: Invalid --seed: 9223372036854775808 " + SEED_MSG),
    Case("reproduce/seed letters", ["reproduce", "--seed", "abc", "--out", "{tmp}/out"], r"^error: Invalid value for '--seed': .*integer.*\(see falab reproduce --help\)$"),
    Case("reproduce/seed float", ["reproduce", "--seed", "1.5", "--out", "{tmp}/out"], r"^error: Invalid value for '--seed'"),
    Case("reproduce/seeds zero", ["reproduce", "P004", "--seeds", "0", "--out", "{tmp}/out"], r"^error: Invalid --seeds: 0 \(expected an integer in \[1, 100\]\)$"),
    Case("reproduce/seeds huge", ["reproduce", "P004", "--seeds", "100000", "--out", "{tmp}/out"], r"^error: Invalid --seeds: 100000"),
    Case("reproduce/--out empty", ["reproduce", "P004", "--out", ""], r"^error: Invalid --out: '' \(expected a path"),
    Case("reproduce/--out= empty", ["reproduce", "P004", "--out="], r"^error: Invalid --out: ''"),
    Case("reproduce/--out is a file", ["reproduce", "P004", "--out", "{tmp}/f.txt"], r"^error: Invalid --out: '.*f\.txt' \(expected a directory \(this path is an existing file\)\)$", files={"f.txt": "x"}),
    Case("reproduce/--out under a file", ["reproduce", "P004", "--out", "{tmp}/f.txt/x"], r"^error: Invalid --out: .*\(expected a path whose parent is a directory", files={"f.txt": "x"}),
    Case("reproduce/figures is a file", ["reproduce", "P004", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*out/figures' \(expected a directory\)$", files={"out/figures": "x"}),
    Case("reproduce/symlink claims.json", ["reproduce", "P004", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*claims\.json' \(expected no symlink", setup=_symlink("claims.json")),
    Case("reproduce/report.md is a directory", ["reproduce", "P004", "--out", "{tmp}/out"], r"^error: Invalid --out: '.*report\.md' \(expected a regular file or nothing\)$", setup=_mkdir("out/report.md")),
    Case("reproduce/unknown option", ["reproduce", "--fast"], r"^error: No such option: --fast.*\(see falab reproduce --help\)$"),
    Case("reproduce/FALAB_THREADS bad", ["reproduce", "P004", "--out", "{tmp}/out"], r"^error: Invalid FALAB_THREADS: '1\.5' \(expected a positive integer\)$", env={"FALAB_THREADS": "1.5"}),
    # ------------------------------------------------------------------ bench (all refused before any benchmark)
    Case("bench/--json a directory", ["bench", "--json", "{tmp}/d"], r"^error: Invalid --json: '.*d' \(expected a regular file or nothing\)$", setup=_mkdir("d")),
    Case("bench/--json empty", ["bench", "--json", ""], r"^error: Invalid --json: '' \(expected a path"),
    Case("bench/--json under a file", ["bench", "--json", "{tmp}/f.txt/r.json"], r"^error: Invalid --json directory: .*\(expected a directory \(this path is an existing file\)\)$", files={"f.txt": "x"}),
    Case("bench/--json a symlink", ["bench", "--json", "{tmp}/out/r.json"], r"^error: Invalid --json: '.*r\.json' \(expected no symlink", setup=_symlink("r.json")),
    Case("bench/--with-biotorch alone", ["bench", "--with-biotorch"], r"^error: Invalid --with-biotorch: no --biotorch-python \(expected the python of a separate venv .*python3 -m venv .* -I -m pip install --no-deps --require-hashes -r .*biotorch-requirements\.txt\)$"),
    Case("bench/--biotorch-python missing", ["bench", "--with-biotorch", "--biotorch-python", "{tmp}/nope"], r"^error: Invalid --biotorch-python: '.*nope' \(expected the python executable of a separate venv"),
    Case("bench/--biotorch-python not executable", ["bench", "--with-biotorch", "--biotorch-python", "{tmp}/f.txt"], r"^error: Invalid --biotorch-python: '.*f\.txt' \(expected the python executable", files={"f.txt": "x"}),
    Case("bench/--biotorch-python without biotorch", ["bench", "--with-biotorch", "--biotorch-python", sys.executable], r"^error: Invalid --biotorch-python: .* \(expected an environment with biotorch==0\.0\.16 installed"),
    Case("bench/biotorch of another version", ["bench", "--with-biotorch", "--biotorch-python", "{tmp}/peer/python"], r"^error: Invalid biotorch version in .*: '0\.0\.15' \(expected 0\.0\.16, the pinned peer", setup=_fake_python("0.0.15")),
    Case("bench/--biotorch-python without --with-biotorch", ["bench", "--biotorch-python", sys.executable], r"^error: Invalid --biotorch-python: .* \(expected to be used with --with-biotorch\)$"),
    Case("bench/--biotorch-python empty", ["bench", "--with-biotorch", "--biotorch-python", ""], r"^error: Invalid --biotorch-python: '' \(expected a path"),
    Case("bench/unknown option", ["bench", "--fast"], r"^error: No such option: --fast.*\(see falab bench --help\)$"),
    Case("bench/FALAB_THREADS bad", ["bench", "--quick"], r"^error: Invalid FALAB_THREADS: 'all' \(expected a positive integer\)$", env={"FALAB_THREADS": "all"}),
    Case("bench/FALAB_THREADS zero", ["bench", "--quick"], r"^error: Invalid FALAB_THREADS: 0 \(expected an integer >= 1\)$", env={"FALAB_THREADS": "0"}),
    # ------------------------------------------------------------------ top level
    Case("top/unknown command", ["frobnicate"], r"^error: No such command 'frobnicate'\."),
]

# falab sweep (issue 13): malformed sweep files are refused before anything runs (nothing written)
def _sweep(cid: str, doc: dict[str, Any], pattern: str) -> Case:
    return Case(f"sweep/{cid}", ["sweep", "{cfg}", "--out", "{tmp}/out"], pattern, config={"base": RUN_BASE, **doc})


CORPUS += [
    _sweep("unknown field path", {"grid": {"model.init.sdt": [0.1]}}, r"^error: Invalid model\.init\.sdt in sweep cell 0 "),
    _sweep("empty axis", {"grid": {"seed": []}}, r"^error: Invalid sweep axis seed: \[\] \(expected a non-empty list of values\)$"),
    _sweep("zipped lengths differ", {"zip": [{"seed": [0, 1], "dynamics.lr": [0.1]}]}, r"^error: Invalid sweep zip group 0: dynamics\.lr has 1, seed has 2 \(expected zipped axes of one length\)$"),
    _sweep("cell fails validation", {"grid": {"dynamics.lr": [0.1, -1.0]}}, r"^error: Invalid dynamics\.lr in sweep cell 1 \(dynamics\.lr=-1\.0\): "),
    _sweep("no axes", {}, r"^error: Invalid sweep axes: none \(expected at least one axis under grid or zip\)$"),
    _sweep("unknown key", {"axes": {"seed": [0]}}, r"^error: Invalid sweep key: 'axes' \(expected one of base, grid, zip, batch\)$"),
    Case("sweep/--workers 0", ["sweep", "{cfg}", "--out", "{tmp}/out", "--workers", "0"], r"^error: Invalid --workers: 0 \(expected an integer in \[1, 256\]\)$", config={"base": RUN_BASE, "grid": {"seed": [0]}}),
    Case("sweep/--batch 0", ["sweep", "{cfg}", "--out", "{tmp}/out", "--batch", "0"], r"^error: Invalid --batch: 0 \(expected an integer >= 1 \(cells per task\)\)$", config={"base": RUN_BASE, "grid": {"seed": [0]}}),
    Case("sweep/missing file", ["sweep", "{tmp}/nope.yaml", "--out", "{tmp}/out"], r"^error: Invalid sweep path: '.*nope\.yaml' \(expected an existing file\)$"),
]

# the placeholder above: a nested duplicate key needs hand-written YAML
CORPUS[[c.id for c in CORPUS].index("run/duplicate nested key")] = _run(
    "duplicate nested key", "model:\n  widths: [3, 4, 1]\n  widths: [3, 5, 1]\nrule: {name: fa}\n",
    r"^error: Invalid config YAML: 'cfg\.yaml' \(expected valid YAML \(duplicate key 'widths' at line 3\)\)$")
CORPUS[[c.id for c in CORPUS].index("run/config is a directory")].setup = _mkdir("cfg.yaml")
for _c in CORPUS:
    if _c.id.endswith("/missing file"):
        _c.args = [a.replace("{cfg}", "{tmp}/nope.yaml") for a in _c.args]


def _snapshot(root: Path) -> dict[str, Any]:
    """Every entry under ``root``: file bytes, symlink targets, directories."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = p.read_bytes()
    return out


def _prepare(case: Case, tmp: Path) -> list[str]:
    if case.setup is not None:
        case.setup(tmp)
    for rel, content in case.files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(p)
        else:
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.config is not None:
        cfg = tmp / "cfg.yaml"
        c = case.config
        cfg.write_bytes(c if isinstance(c, bytes) else (c if isinstance(c, str) else yaml.safe_dump(c)).encode())
    return [a.replace("{cfg}", str(tmp / "cfg.yaml")).replace("{tmp}", str(tmp)) for a in case.args]


def _run_main(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_malformed_input(case: Case, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FALAB_THREADS", "1")
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    args = _prepare(case, tmp_path)
    before = _snapshot(tmp_path)
    code, out, err = _run_main(args, capsys)
    lines = err.splitlines()
    assert "Traceback" not in err + out
    assert code == case.code, (case.id, code, err)
    assert len(lines) == 1, (case.id, err)
    assert re.search(case.pattern, lines[0]), (case.id, lines[0])
    assert len(lines[0]) <= 600
    assert _snapshot(tmp_path) == before, f"{case.id}: files were written"


def test_corpus_size() -> None:
    """At least 150 cases, and every entry point is covered."""
    ids = [c.id for c in CORPUS]
    assert len(ids) == len(set(ids)) and len(ids) >= 150
    per_command = {cmd: sum(i.startswith(cmd + "/") for i in ids) for cmd in ("run", "train", "reproduce", "bench")}
    assert min(per_command.values()) >= 10, per_command


# a few of the cases in a fresh interpreter each (~2.5 s apiece); test_cli covers reproduce that way
SUBPROCESS_CASES = ["run/alias bomb", "train/empty mapping", "bench/--json a directory"]


@pytest.mark.parametrize("cid", SUBPROCESS_CASES)
def test_malformed_input_in_a_real_process(cid: str, tmp_path: Path) -> None:
    """The same cases through the console entry point in a fresh interpreter (exit status and stderr as a shell
    sees them)."""
    case = next(c for c in CORPUS if c.id == cid)
    args = _prepare(case, tmp_path)
    before = _snapshot(tmp_path)
    env = dict(os.environ, FALAB_THREADS="1", **case.env)
    proc = subprocess.run([sys.executable, "-m", "falab.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert proc.returncode == case.code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and re.search(case.pattern, lines[0]), proc.stderr
    assert "Traceback" not in proc.stderr
    assert _snapshot(tmp_path) == before
