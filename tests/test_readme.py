"""The README's Python examples run as written and print what the README says they print."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_quick_start_reaches_min_norm_and_conserves_q(capsys) -> None:
    blocks = _python_blocks()
    assert len(blocks) == 2
    ns: dict = {}
    exec(compile(blocks[0], "README.md[quick-start]", "exec"), ns)
    dist = float((ns["w"] - ns["w_min_norm"]).norm() / ns["w_min_norm"].norm())
    assert dist < 1e-9  # the README promises ~2e-12
    drift = float(((ns["q1"] - ns["q0"]).abs() / ns["q0"].abs()).max())
    assert drift < 1e-10
    out = capsys.readouterr().out
    assert "FA median final loss" in out and "BP median final loss" in out


def test_readme_convert_example_converts_conv_and_linear() -> None:
    ns: dict = {}
    exec(compile(_python_blocks()[1], "README.md[convert]", "exec"), ns)
    report = ns["report"]
    assert "2 converted, 0 not converted" in str(report)
    torch.manual_seed(0)
    out = ns["net"](torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)
