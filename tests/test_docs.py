"""The documentation is tested like code (issue 14 item 7).

- Every python block of the executed pages (getting started, the two tutorials, extending falab) runs in page order in
  one namespace per page; the asserts inside the pages check numbers (distances to closed forms, conserved quantities).
- Every ``>>>`` example in a docstring of ``src/falab`` runs as a doctest (one test per module that has examples).
- ``mkdocs build --strict`` succeeds: no broken link, no missing cross-reference, no griffe docstring warning.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "falab"

# pages whose python blocks are executed, in order, one namespace per page
EXECUTED_PAGES = [
    "getting-started.md",
    "tutorials/theory.md",
    "tutorials/practitioner.md",
    "extending.md",
]

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a markdown page, in order (other languages are not run)."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def run_page(path: Path) -> dict:
    """Execute every python block of ``path`` in one namespace (a module, so that dataclasses defined on the page
    work); a failure names the page and the block."""
    name = f"falab_docs_{path.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    try:
        for i, block in enumerate(python_blocks(path.read_text(encoding="utf-8")), start=1):
            code = compile(block, f"{path.relative_to(ROOT)} [python block {i}]", "exec")
            exec(code, module.__dict__)  # the documentation's own examples
    finally:
        del sys.modules[name]
    return module.__dict__


def test_python_blocks_are_found() -> None:
    text = "a\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python title=\"t\"\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_page_runs(page: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = DOCS / page
    assert path.is_file(), f"{page} is missing"
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{page} has no python block"
    assert sum(b.count("assert ") for b in blocks) >= 2, f"{page} checks no numbers"
    torch.set_num_threads(1)
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # pages run from the repository root read configs/...
    monkeypatch.chdir(tmp_path)  # ... and the files they write land here
    from falab.experiments import CLAIMS, EXPERIMENTS

    claims, experiments = dict(CLAIMS), dict(EXPERIMENTS)  # "extending falab" registers a claim and an experiment
    try:
        run_page(path)
    finally:
        CLAIMS.clear()
        CLAIMS.update(claims)
        EXPERIMENTS.clear()
        EXPERIMENTS.update(experiments)


# ----------------------------------------------------------------------------------------------------------- doctests
def _modules() -> list[str]:
    names = []
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "_peer":  # BioTorch's side of the benchmark: runs in the peer's own venv, never imported here
            continue
        if ">>>" in f.read_text(encoding="utf-8"):
            names.append(".".join(parts))
    return names


DOCTEST_MODULES = _modules()


def test_doctests_cover_the_public_api() -> None:
    """Examples exist for the rules, the dynamics entry points, theory closed forms, instruments, models and nn."""
    for pkg in ("rules", "dynamics", "theory", "instruments", "models", "nn", "functional"):
        assert any(m.startswith(f"falab.{pkg}") for m in DOCTEST_MODULES), f"no docstring example in falab.{pkg}"


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_doctests(module: str) -> None:
    torch.set_num_threads(1)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, module) if t.examples]
    assert tests, f"{module} mentions '>>>' but doctest finds no example in it"
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {module}"


# ------------------------------------------------------------------------------------------------------ mkdocs build
def test_every_public_package_has_an_api_page() -> None:
    pages = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    for init in sorted(SRC.glob("*/__init__.py")):
        pkg = init.parent.name
        text = init.read_text(encoding="utf-8")
        if "__all__" in text:
            assert f"::: falab.{pkg}" in pages, f"falab.{pkg} exports names but has no API page in docs/api/"


def test_architecture_page_names_every_layer() -> None:
    """The layering table of docs/architecture.md and the import-linter contract (.importlinter) agree."""
    text = (ROOT / ".importlinter").read_text(encoding="utf-8")
    block = text.split("layers =", 1)[1].split("\n\n", 1)[0]
    layers = [name.strip() for line in block.splitlines() for name in line.split("|") if name.strip()]
    assert "falab.functional" in layers and "falab.cli" in layers
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in layers if f"`{name}`" not in page]
    assert not missing, f"docs/architecture.md does not describe the layers {missing}"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip("mkdocs / mkdocstrings are not installed (they are in the dev extra: pip install -e '.[dev]')")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{out[-4000:]}"
    warnings = [line for line in out.splitlines() if "WARNING" in line]
    assert not warnings, "\n".join(warnings)
    index = tmp_path / "site" / "index.html"
    assert index.is_file()
    api = (tmp_path / "site" / "api" / "rules" / "index.html").read_text(encoding="utf-8")
    assert 'id="falab.rules.FeedbackAlignment"' in api  # the reference is generated from the docstrings
    shutil.rmtree(tmp_path / "site")
