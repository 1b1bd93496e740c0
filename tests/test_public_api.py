"""The public API: every name in each package's ``__all__`` imports and is documented, theory cites its paper and
equation, experiments use no private theory module, and the closed forms added to the public theory API (the
basis-independent Theorem 6 condition, Theorem 4 from stored draws, P003's systems and recursions) are right."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

from falab import theory

SRC = Path(__file__).resolve().parents[1] / "src" / "falab"
PACKAGES = ["falab.functional", "falab.models", "falab.theory", "falab.rules", "falab.dynamics", "falab.instruments",
            "falab.instruments.matfac",
            "falab.systems", "falab.nn", "falab.runs", "falab.laws", "falab.experiments", "falab.report",
            "falab.bench"]
PAPER = re.compile(r"\b(P00[0-4]|FALAB)\b")  # a seed paper, or falab's own derivation (claims key FALAB)
EQUATION = re.compile(r"(eqs?\.?\s*\(?\d|\(\d+\)|Thm|Theorem|Lemma|Remark|Corollary|Example|Fig\.|App\.|Sec\.|"
                      r"Assumption|init \(\d+\))")


def _public(pkg: str) -> list[tuple[str, object]]:
    mod = importlib.import_module(pkg)
    assert hasattr(mod, "__all__"), f"{pkg} defines no __all__"
    assert len(set(mod.__all__)) == len(mod.__all__), f"{pkg}.__all__ has duplicates"
    return [(name, getattr(mod, name)) for name in mod.__all__]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_exported_name_imports_and_is_documented(pkg):
    undocumented = []
    for name, obj in _public(pkg):
        if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
            if not (inspect.getdoc(obj) or "").strip():
                undocumented.append(name)
    assert not undocumented, f"{pkg}: no docstring on {undocumented}"


def test_theory_docstrings_cite_paper_and_equation():
    bad = [name for name, obj in _public("falab.theory")
           if not (PAPER.search(inspect.getdoc(obj) or "") and EQUATION.search(inspect.getdoc(obj) or ""))]
    assert not bad, f"theory names whose docstring cites no paper and equation: {bad}"


def test_theory_exports_every_public_function_of_its_modules():
    # a closed form added to a theory module but not exported is invisible to users (and to this suite's checks)
    missing = []
    for path in sorted((SRC / "theory").glob("_p00*.py")):
        mod = importlib.import_module(f"falab.theory.{path.stem}")
        for name, obj in vars(mod).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__ \
                    and not name.startswith("_") and name not in theory.__all__:
                missing.append(f"{path.stem}.{name}")
    assert not missing, missing


def _private_imports(path: Path) -> list[str]:
    """Imports of a private falab module (``theory._p002``, ``from ..theory import _p003``) in one file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            parts = mod.split(".")
            if "theory" in parts and any(p.startswith("_") for p in parts[parts.index("theory") + 1:]):
                out.append(f"{path.name}:{node.lineno} from {'.' * node.level}{mod}")
            if parts[-1] == "theory" and any(a.name.startswith("_") for a in node.names):
                out.append(f"{path.name}:{node.lineno} from {'.' * node.level}{mod} import "
                           + ", ".join(a.name for a in node.names))
        elif isinstance(node, ast.Import):
            out += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if "theory._" in a.name]
    return out


def test_experiments_import_no_private_theory_module():
    found = [hit for path in sorted((SRC / "experiments").rglob("*.py")) for hit in _private_imports(path)]
    assert not found, f"experiments import private theory modules: {found}"


def test_the_private_import_scanner_finds_what_it_should(tmp_path):
    # the scan above must be able to fail: both spellings of a private theory import are caught
    f = tmp_path / "x.py"
    f.write_text("from ...theory import _p002 as theory\nfrom falab.theory._p003 import k0_root\n"
                 "from ... import theory\nimport falab.theory._p004\n")
    assert len(_private_imports(f)) == 3


# ------------------------------------------------------------------------------------------------------ P002

def _rotation_in_block(basis: np.ndarray, angle: float) -> np.ndarray:
    """An orthogonal map of R^n that rotates by ``angle`` inside span(basis) (2 columns) and fixes its complement."""
    c, s = math.cos(angle), math.sin(angle)
    q = np.array([[c, -s], [s, c]])
    return np.eye(basis.shape[0]) + basis @ (q - np.eye(2)) @ basis.T


def test_theorem6_gap_is_invariant_under_rotations_inside_a_degenerate_singular_subspace():
    # M = U diag(3, 2, 2) V^T: the singular vectors of the repeated value 2 are defined only up to a common rotation
    # of the block. Rotating vbar_1 inside the left block and vbar_2 by the same angle inside the right block leaves M
    # and the question unchanged (M = R1 M R2^T), but moves numpy's per-coordinate gaps; the condition must not move.
    rng = np.random.default_rng(3)
    u, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 3)))
    m = u @ np.diag([3.0, 2.0, 2.0]) @ v.T
    vb1, vb2 = rng.standard_normal(5), 0.3 * rng.standard_normal(4)
    r1, r2 = _rotation_in_block(u[:, 1:], 0.7), _rotation_in_block(v[:, 1:], 0.7)
    np.testing.assert_allclose(r1 @ m @ r2.T, m, atol=1e-14)
    gap = theory.theorem6_gap(m, vb1, vb2)
    rotated = theory.theorem6_gap(m, r1 @ vb1, r2 @ vb2)
    assert rotated == pytest.approx(gap, rel=1e-12, abs=1e-14)
    # the naive per-coordinate minimum in numpy's basis does move, so the check above can fail
    e1, e1r = u.T @ vb1, u.T @ (r1 @ vb1)
    e2, e2r = v.T @ vb2, v.T @ (r2 @ vb2)
    naive, naive_r = np.min(e1**2 - e2**2), np.min(e1r**2 - e2r**2)
    assert abs(naive - naive_r) > 1e-3
    # and the value is the block mean: min(gap of the simple value, (|e1_B|^2 - |e2_B|^2) / 2)
    block = (e1[1:] @ e1[1:] - e2[1:] @ e2[1:]) / 2
    assert gap == pytest.approx(min(e1[0] ** 2 - e2[0] ** 2, block), rel=1e-12)
    # the Theorem 6 prediction depends on the question only, not on the basis: rotating the data rotates the limit
    lim, lim_r = theory.theorem6_limit(m, vb1, vb2, 0.5, 1.3), theory.theorem6_limit(m, r1 @ vb1, r2 @ vb2, 0.5, 1.3)
    np.testing.assert_allclose(lim_r["v1"], r1 @ lim["v1"], atol=1e-12)
    np.testing.assert_allclose(lim_r["v2"], r2 @ lim["v2"], atol=1e-12)


# ------------------------------------------------------------------------------------------------------ P004

def test_theorem4_from_given_draws_matches_lemma1_on_the_matrix():
    # Y = U diag(1, eps, .., eps) V^T (r = 1): FA's error from Lemma 1's projection with each stored feedback B, and
    # the cosine between the FA and GD representations, against theorem4_from_draws on g = V^T B
    rng = np.random.default_rng(11)
    n, k, eps, draws = 6, 4, 0.3, 25
    u, v = theory.orthonormal_columns(rng, n, k), theory.orthonormal_columns(rng, n, k)
    sigma = np.array([1.0] + [eps] * (k - 1))
    y = (u * sigma) @ v.T
    bs = rng.standard_normal((draws, n, 1))
    ratio, cos = theory.theorem4_from_draws(np.einsum("mk,dmo->dko", v, bs), eps)
    opt = theory.optimal_error(sigma, 1)
    for i, b in enumerate(bs):
        assert ratio[i] == pytest.approx(theory.fa_error(y, b) / opt, rel=1e-10)
        z = y @ b  # the FA representation spans col(YB); GD's spans u_1
        assert cos[i] == pytest.approx(abs(float(u[:, 0] @ z[:, 0])) / np.linalg.norm(z), rel=1e-10)
    # the RNG route is the same statistic of its own draws
    assert np.all(ratio <= theory.theorem4_ratio_bound(k, eps) + 1e-12)
    with pytest.raises(ValueError, match=r"Invalid g shape: \(4,\)"):
        theory.theorem4_from_draws(np.ones(4), eps)


# ------------------------------------------------------------------------------------------------------ P003

def test_p003_fields_and_inits():
    d, lam = 2.0, 3.0
    t1, t2 = np.array([0.5, -1.0]), np.array([1.5, 0.2])
    f1, f2 = theory.scalar_fa_field(t1, t2, d, lam)
    np.testing.assert_allclose(f1, d * (lam - t1 * t2), rtol=1e-15)
    np.testing.assert_allclose(f2, (lam - t1 * t2) * t1, rtol=1e-15)
    # the invariant K = theta_2 - theta_1^2 / (2d) is conserved by (6): dK/dt = f2 - theta_1 f1 / d = 0
    np.testing.assert_allclose(f2 - t1 * f1 / d, 0.0, atol=1e-15)
    g1, g2 = theory.scalar_gd_field(t1, t2, lam)
    np.testing.assert_allclose(g1 * t1 - g2 * t2, 0.0, atol=1e-15)  # GD conserves theta_1^2 - theta_2^2
    np.testing.assert_allclose(theory.init7([2.0], 4.0), [[2.0, 0.5]])
    assert theory.invariant_K(*theory.init7(-1.7, d), d) == pytest.approx(0.0, abs=1e-15)
    ds = (2.0, 2.5, 1.0)
    np.testing.assert_allclose(theory.init11([1.3], ds)[0], theory.deep_init(1.3, ds), rtol=1e-15)
    th = theory.init11(np.array([0.4, 1.1]), ds)
    f = theory.deep_dfa_field(th, ds, 1.0)
    # along init (11) the deep field (10) reduces to the scalar ODE (82) for theta_1
    np.testing.assert_allclose(f[:, 0], theory.reduced_deep_rhs(th[:, 0], 1.0, ds), rtol=1e-13)
    with pytest.raises(ValueError, match="Invalid ds"):
        theory.deep_dfa_field(th, ds[:2], 1.0)


def test_p003_discrete_recursions_against_claims_reference_numbers():
    # claims.md §4.3 item 5: Euler (22)-(23) from 0, d = 2, lambda = 3, eta = 0.05
    x, y = theory.euler_recursion(0.0, 0.0, 0.05, 2.0, 3.0, 3000)
    assert x[-1] == pytest.approx(2.37201467, abs=1e-8) and y[-1] == pytest.approx(1.26474766, abs=1e-8)
    s = np.concatenate([[0.0], np.cumsum(np.diff(x) ** 2)])
    np.testing.assert_allclose(y, (x**2 - s) / 4.0, atol=1e-12)  # eq. 143
    assert theory.euler_limit_point(float(s[-1]), 2.0, 3.0) == pytest.approx(x[-1], rel=1e-10)
    # item 6: the modified scheme (26)-(27) keeps y = x^2 / (2d) exactly and converges in one step at eta = 2 / r^2
    x, y = theory.modified_recursion(0.0, 0.0, 0.1, 2.0, 3.0, 300)
    np.testing.assert_allclose(y, x**2 / 4.0, atol=1e-13)
    err = np.abs(x * y - 3.0)
    assert np.all(err <= theory.modified_bound(np.arange(301), 0.1, 2.0, 3.0) + 1e-12)
    x1, _ = theory.modified_recursion(0.0, 0.0, theory.modified_one_step_eta(2.0, 3.0), 2.0, 3.0, 1)
    assert x1[1] == pytest.approx(theory.k0_root(2.0, 3.0), rel=1e-14)
    # item 7: the deep scheme (28) keeps the invariants of init (11) and converges to r = (lambda / K)^(1/gamma)
    ds = (2.0, 2.5, 1.0)
    th = theory.deep_modified_recursion(theory.init11(0.0, ds), 0.05, ds, 1.0, 2000)
    np.testing.assert_allclose(th, theory.init11(th[:, 0], ds), atol=1e-14)
    assert th[-1, 0] == pytest.approx(1.5393339588, abs=1e-10)
    assert theory.deep_limit(1.0, ds)[0] == pytest.approx(th[-1, 0], rel=1e-12)


def test_py_typed_marker_ships_with_the_package():
    import tomllib

    assert (SRC / "py.typed").is_file()
    cfg = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())
    assert "py.typed" in cfg["tool"]["setuptools"]["package-data"]["falab"]


# ------------------------------------------------------------------------------------------------- falab.systems

def test_public_system_constructors_realise_the_closed_form_fields():
    import torch

    from falab.dynamics import vector_field
    from falab.systems import deep_scalar_system, mf_problem, scalar_params, scalar_system, scalar_thetas

    d, lam = np.array([2.0, 0.5, 1.5]), np.array([3.0, 1.0, -0.5])
    thetas = np.array([[0.5, 1.5], [-1.0, 0.2], [2.0, -0.7]])
    field = scalar_thetas(vector_field(scalar_system(d, lam))(scalar_params(thetas)))
    np.testing.assert_allclose(field, np.stack(theory.scalar_fa_field(thetas[:, 0], thetas[:, 1], d, lam), -1),
                               rtol=1e-14, atol=1e-15)
    field = scalar_thetas(vector_field(scalar_system(d, lam, rule="gd"))(scalar_params(thetas)))
    np.testing.assert_allclose(field, np.stack(theory.scalar_gd_field(thetas[:, 0], thetas[:, 1], lam), -1),
                               rtol=1e-14, atol=1e-15)
    ds = (2.0, 2.5, 1.0)
    th3 = theory.init11(np.array([0.4, -1.1]), ds) + np.array([[0.0, 0.1, -0.2], [0.3, 0.0, 0.1]])
    field = scalar_thetas(vector_field(deep_scalar_system(ds, [1.0, 2.0]))(scalar_params(th3)))
    np.testing.assert_allclose(field, theory.deep_dfa_field(th3, ds, np.array([1.0, 2.0])), rtol=1e-14, atol=1e-15)
    y, z0, w0 = torch.ones(3, 2, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64), \
        torch.ones(1, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^Invalid b: None \(expected the feedback matrix B"):
        mf_problem("FA", y, z0, w0, None)
    with pytest.raises(ValueError, match=r"^Invalid rule: 'fa'"):
        mf_problem("fa", y, z0, w0, None)
