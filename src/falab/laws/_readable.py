r"""Readable laws: the discovered basis grouped the way a paper writes it.

Groups, in order (each group's span is removed from what the next has to explain):

* **linear laws** — components :math:`\langle U, W_l\rangle` that never move; for FA (DFA) they are the directions
  :math:`u^\top W_l` with :math:`u\perp\mathrm{range}(B_{l+1}^\top)` (:math:`u\perp\mathrm{range}(D_l)`), checked;
* **products of linear laws** — automatically conserved, counted and removed;
* **matrix / per-neuron / trace laws at a hidden layer** :math:`l`: the combinations
  :math:`\alpha\,W_lW_l^\top + \beta\,W_{l+1}^\top W_{l+1} + \gamma\,(B^\top W_{l+1} + W_{l+1}^\top B)` (plus
  :math:`b_lb_l^\top` with :math:`W_lW_l^\top`), with :math:`B` the fixed feedback of layer :math:`l+1`, that lie in
  the span entry-wise (matrix), on the diagonal only (per neuron, claims.md §1.9) or summed (trace); coefficients
  are normalised, rounded to 6 digits and the rounded law re-verified against the span;
* **other** — whatever is left, described by the parameter blocks it involves (a candidate new law).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._field import Field


@dataclass
class ReadableLaw:
    """One readable group: ``kind`` (linear, products, matrix, per-neuron, trace, other), the text, how many basis
    dimensions it accounts for, the rounded coefficients, the span residual of the rounded law and, after flow
    verification, its relative drift."""

    kind: str
    text: str
    count: int
    coefficients: dict[str, float] = field(default_factory=dict)
    span_residual: float = 0.0
    drift: float | None = None
    polys: Tensor | None = field(default=None, repr=False)  # (M, n) coefficient vectors of the group's laws
    known: bool = True  # stated in claims.md §1.9 (False: falab's finding)


class Monomials:
    """Index of degree-1 and degree-2 monomials in the global ordering of ``_system.monomials``."""

    def __init__(self, D: int, mons: list[Tensor]) -> None:
        self.D = D
        self.M = sum(m.shape[0] for m in mons)
        self.quad = torch.full((D, D), -1, dtype=torch.long)
        if len(mons) >= 2:
            ids = torch.arange(D, D + mons[1].shape[0])
            i, j = mons[1][:, 0], mons[1][:, 1]
            self.quad[i, j] = ids
            self.quad[j, i] = ids

    def quadratic(self, a: Tensor, b: Tensor) -> Tensor:
        r"""Coefficient vector of :math:`(a^\top\theta)(b^\top\theta)`."""
        out = torch.zeros(self.M, dtype=a.dtype)
        outer = torch.outer(a, b)
        sym = outer + outer.T
        iu = torch.triu_indices(self.D, self.D)
        vals = torch.where(iu[0] == iu[1], outer[iu[0], iu[1]], sym[iu[0], iu[1]])
        ids = self.quad[iu[0], iu[1]]
        nz = vals != 0
        out.index_add_(0, ids[nz], vals[nz])
        return out

    def linear(self, a: Tensor) -> Tensor:
        out = torch.zeros(self.M, dtype=a.dtype)
        out[: self.D] = a
        return out


def _tsum(terms: Iterable[Tensor]) -> Tensor:
    """``sum(terms)`` of a non-empty run of tensors (builtin ``sum``, same values; typed as the Tensor it is)."""
    total = sum(terms)
    assert isinstance(total, Tensor), "a sum of no terms"
    return total


def _unit(f: Field, name: str, r: int, c: int) -> Tensor:
    a, _ = f.offsets[name]
    ncol = f.shapes[name][1] if len(f.shapes[name]) == 2 else 1
    e = torch.zeros(f.D, dtype=torch.float64)
    e[a + r * ncol + c] = 1.0
    return e


def _templates(f: Field, mon: Monomials, l: int, feedback: Tensor | None,
               label: str) -> dict[str, dict[tuple[int, int], Tensor]]:
    """Entry polynomials of the candidate matrices at hidden layer ``l`` (only those built from free parameters)."""
    wl, wn = f"W{l}", f"W{l + 1}"
    h = f.model.widths[l]
    out: dict[str, dict[tuple[int, int], Tensor]] = {}
    ents = [(j, k) for j in range(h) for k in range(j, h)]
    if wl in f.offsets:
        n_in = f.shapes[wl][1]
        gram = {}
        for j, k in ents:
            p = _tsum(mon.quadratic(_unit(f, wl, j, c), _unit(f, wl, k, c)) for c in range(n_in))
            if f"b{l}" in f.offsets:
                p = p + mon.quadratic(_unit(f, f"b{l}", j, 0), _unit(f, f"b{l}", k, 0))
            gram[(j, k)] = p
        out[f"W{l}W{l}^T" + (f" + b{l}b{l}^T" if f"b{l}" in f.offsets else "")] = gram
    if wn in f.offsets:
        n_out = f.shapes[wn][0]
        out[f"W{l + 1}^T W{l + 1}"] = {
            (j, k): _tsum(mon.quadratic(_unit(f, wn, p, j), _unit(f, wn, p, k)) for p in range(n_out)) for j, k in ents}
        if feedback is not None:
            fb = feedback.to(torch.float64)
            cross = {}
            for j, k in ents:
                a = _tsum(fb[p, j] * _unit(f, wn, p, k) + fb[p, k] * _unit(f, wn, p, j) for p in range(n_out))
                cross[(j, k)] = mon.linear(a)
            out[f"B^T W{l + 1} + W{l + 1}^T B"] = cross
    return out


def _combo(resid: list[Tensor], raw: list[Tensor]) -> Tensor | None:
    """Coefficients ``c`` (one solution) with ``sum_i c_i resid_i = 0`` for stacked residual blocks; columns are
    scaled by the norms of the templates themselves (``raw``), so a residual is small relative to its template."""
    a = torch.stack([r.reshape(-1) for r in resid], dim=1)  # (n, n_templates)
    if a.shape[1] == 0:
        return None
    cn = torch.stack([r.reshape(-1).norm() for r in raw]).clamp_min(1e-300)
    if a.shape[0] < a.shape[1]:
        a = torch.cat([a, torch.zeros(a.shape[1] - a.shape[0], a.shape[1], dtype=a.dtype)])
    _, sv, vh = torch.linalg.svd(a / cn, full_matrices=False)
    sv_full = sv
    if float(sv_full[-1]) > 1e-7:  # relative to the templates' own norms (columns scaled by them)
        return None
    c = vh[-1] / cn
    return c


def _round(c: Tensor) -> Tensor:
    nz = c.abs() > 1e-9 * c.abs().max()
    lead = c[nz][0]
    c = c / lead
    return torch.tensor([float(f"{float(x):.6g}") for x in c], dtype=c.dtype)


def describe(f: Field, Z: Tensor, mons: list[Tensor], feedback: dict[int, Tensor], direct: dict[int, Tensor]) -> list[ReadableLaw]:
    """Group the orthonormal basis ``Z (M, k)`` into readable laws (see module docstring)."""
    mon = Monomials(f.D, mons)
    M, k = Z.shape
    laws: list[ReadableLaw] = []
    if k == 0:
        return laws

    def residual(p: Tensor) -> Tensor:
        return p - Z @ (Z.T @ p)

    prod_dims = [0]  # product dimensions counted without forming them (large cases)
    explained: list[Tensor] = []  # coordinates in the basis (k,) of what is accounted for
    # 1. linear laws: combinations of the basis with no quadratic part
    quad_rows = Z[f.D:]
    if quad_rows.shape[0]:
        # thin SVD: quad_rows is tall (all quadratic monomials x laws); its U would not fit in memory for large D
        _, sv, vh = torch.linalg.svd(quad_rows, full_matrices=quad_rows.shape[0] < k)
        sv_full = torch.cat([sv, torch.zeros(k - sv.numel(), dtype=sv.dtype)])
        n_lin = int((sv_full <= 1e-9).sum())
        lin_c = vh[k - n_lin:].T if n_lin else torch.zeros(k, 0, dtype=Z.dtype)
    else:
        lin_c = torch.eye(k, dtype=Z.dtype)
        n_lin = k
    lin = (Z @ lin_c)[: f.D]  # (D, n_lin)
    if n_lin:
        lin = torch.linalg.qr(lin).Q
        parts = []
        single = 0
        for name, (a, b) in f.offsets.items():
            blk = lin[a:b]
            r = int((torch.linalg.svdvals(blk) > 1e-8).sum()) if blk.numel() else 0
            if r == 0:
                continue
            # laws supported on this block alone
            only = torch.cat([lin[:a], lin[b:]])
            _, sv2, vh2 = torch.linalg.svd(only, full_matrices=True)
            sv2f = torch.cat([sv2, torch.zeros(n_lin - sv2.numel(), dtype=sv2.dtype)])
            r_only = int((sv2f <= 1e-9).sum())
            if r_only == 0:
                continue
            single += r_only
            text = f"{r_only} on {name}"
            l = int(name[1:])
            L = f.model.n_layers
            fm, what = None, ""
            if name[0] == "W" and l in direct:
                fm, what = direct[l], f"D{l}"  # DFA: delta_l lies in range(D_l), D_l stored transposed (n_L, n_l)
            elif name[0] == "W" and l < L and all(q in feedback for q in range(l + 1, L + 1)):
                # FA, linear layers: delta_l = B_{l+1}^T ... B_L^T e lies in the range of the chain's transpose
                fm = feedback[L]
                for q in range(L - 1, l, -1):
                    fm = fm @ feedback[q]
                what = f"B{l + 1}^T" if l + 1 == L else f"(B{L}⋯B{l + 1})^T"
            if fm is not None and r_only:
                n_l, n_in = f.shapes[name]
                rk = int(torch.linalg.matrix_rank(fm.to(torch.float64)))
                vecs = (lin @ vh2[n_lin - r_only:].T)[a:b] if r_only else None
                ok = vecs is not None and r_only == (n_l - rk) * n_in and all(
                    float((fm.to(torch.float64) @ vecs[:, i].view(n_l, n_in)).abs().max()) < 1e-8
                    for i in range(r_only))
                if ok:
                    text += f" (u^T {name} fixed for every u ⊥ range({what}): {n_l - rk} x {n_in})"
            parts.append(text)
        if n_lin > single:
            parts.append(f"{n_lin - single} combining several blocks")
        polys = torch.stack([mon.linear(lin[:, i]) for i in range(n_lin)], dim=1)
        laws.append(ReadableLaw("linear", "components that never move: " + "; ".join(parts), n_lin, polys=polys))
        explained.append(Z.T @ polys)
        # 2. products of linear laws (degree 2): l_a l_b, in basis coordinates via symmetric matrices of Z
        if len(mons) >= 2:
            n_prod = n_lin * (n_lin + 1) // 2
            laws.append(ReadableLaw("products", f"products of two linear laws: {n_prod}", n_prod))
            if k * f.D * f.D <= 3e7:
                # p_ab . Z_k = l_a^T S_k l_b with S_k the symmetric matrix of Z_k's quadratic coefficients
                zs = torch.zeros(k, f.D, f.D, dtype=Z.dtype)
                iu = torch.triu_indices(f.D, f.D)
                ids = mon.quad[iu[0], iu[1]]
                zs[:, iu[0], iu[1]] = Z[ids].T
                zs[:, iu[1], iu[0]] = Z[ids].T
                pab = torch.einsum("ia,kij,jb->kab", lin, zs, lin)
                ia = torch.triu_indices(n_lin, n_lin)
                explained.append(pab[:, ia[0], ia[1]])
            else:
                # too large to form: products of independent linear forms are independent (Sym^2), counted as such
                prod_dims[0] = n_prod
    # 3. matrix / per-neuron / trace laws per hidden layer
    for l in range(1, f.model.n_layers):
        fb, label = feedback.get(l + 1), f"B{l + 1}"
        if l + 1 == f.model.n_layers and (l in direct):
            fb, label = direct[l], f"D{l}^T"  # DFA's last pair: W_L meets D_{L-1}^T (stored in W_L's shape)
        elif l in direct and (l + 1) in direct:
            # DFA, linear nets (claims.md §1.9): the pair (l, l+1) conserves 0.5||W_l||^2 - <W_{l+1}, B> with
            # B = (D_{l+1}^+)^T D_l^T when D_{l+1} has full column rank; stored D^T has shape (n_L, n_l)
            d_next = direct[l + 1].to(torch.float64).T
            fb, label = torch.linalg.pinv(d_next).T @ direct[l].to(torch.float64), f"(D{l + 1}^+)^T D{l}^T"
        temps = _templates(f, mon, l, fb, label)
        names = list(temps)
        if not names:
            continue
        h = f.model.widths[l]
        forms = [("matrix", [(j, kk) for j in range(h) for kk in range(j, h)]), ("per-neuron", [(j, j) for j in range(h)]),
                 ("trace", None)]
        for form, ents in forms:
            if ents is None:
                traces = {n: _tsum(temps[n][(j, j)] for j in range(h)) for n in names}
                blocks = [[residual(traces[n]) for n in names]]
                entry_polys = [[traces[n] for n in names]]
            else:
                blocks = [[residual(temps[n][e]) for n in names] for e in ents]
                entry_polys = [[temps[n][e] for n in names] for e in ents]
            stacked = [torch.stack([b[i] for b in blocks]) for i in range(len(names))]
            raw = [torch.stack([ep[i] for ep in entry_polys]) for i in range(len(names))]
            c = _combo(stacked, raw)
            if c is None:
                continue
            cr = _round(c)
            laws_e = torch.stack([_tsum(cr[i] * ep[i] for i in range(len(names))) for ep in entry_polys], dim=1)
            res = float((residual(laws_e).norm(dim=0) / laws_e.norm(dim=0).clamp_min(1e-300)).max())
            terms = " ".join(f"{'+' if float(x) >= 0 else '-'} {abs(float(x)):g}·({n})" for x, n in zip(cr, names)
                             if abs(float(x)) > 0)
            terms = terms[2:] if terms.startswith("+ ") else terms
            where = {"matrix": f"every entry of the {h}x{h} matrix", "per-neuron": f"its diagonal (per neuron, {h})",
                     "trace": "its trace"}[form]
            with_b = f" with B = {label}" if any(n.startswith("B^T") for n, x in zip(names, cr) if float(x)) else ""
            laws.append(ReadableLaw(form, f"layer {l}: {terms}{with_b} — {where}", laws_e.shape[1],
                                    {n: float(x) for x, n in zip(cr, names)}, res, polys=laws_e))
            before = _rank(explained)
            explained.append(Z.T @ laws_e)
            new = _rank(explained) - before
            if new < laws_e.shape[1]:
                # the groups overlap (e.g. products of linear laws already hold part of the matrix law)
                laws[-1].text += f" ({new} of its {laws_e.shape[1]} entries are new beyond the groups above)"
            break
    # 4. what is left
    if explained:
        e = torch.cat(explained, dim=1)
        u, sv, _ = torch.linalg.svd(e / e.norm(dim=0).clamp_min(1e-300), full_matrices=False)
        r = int((sv > 1e-8).sum())
        basis = u[:, :r]  # orthonormal basis of the explained span (QR's leading columns would not be, in general)
    else:
        r, basis = 0, torch.zeros(k, 0, dtype=Z.dtype)
    left = k - r - prod_dims[0]
    if left > 0:
        # the orthogonal complement of the explained part, in monomial coordinates
        _, _, vh = torch.linalg.svd(basis.T, full_matrices=True) if r else (None, None, torch.eye(k, dtype=Z.dtype))
        rest = Z @ vh[r:].T
        involved = _blocks_of(f, mons, rest)
        laws.append(ReadableLaw("other", f"{left} law(s) outside the groups above, involving {involved}", left,
                                polys=rest, known=False))
    return laws


def _rank(cols: list[Tensor]) -> int:
    if not cols:
        return 0
    e = torch.cat(cols, dim=1)
    return int((torch.linalg.svdvals(e / e.norm(dim=0).clamp_min(1e-300)) > 1e-8).sum()) if e.numel() else 0


def _blocks_of(f: Field, mons: list[Tensor], polys: Tensor) -> str:
    """Which parameter blocks (and pairs) carry the coefficients of ``polys``."""
    block = torch.empty(f.D, dtype=torch.long)
    names = list(f.offsets)
    for i, (a, b) in enumerate(f.offsets.values()):
        block[a:b] = i
    seen: set[str] = set()
    weight = polys.abs().amax(dim=1)
    tol = 1e-8 * float(weight.max()) if weight.numel() else 0.0
    base = 0
    for idx in mons:
        w = weight[base:base + idx.shape[0]]
        for row in idx[w > tol].tolist():
            seen.add("·".join(names[int(block[i])] for i in row))
        base += idx.shape[0]
    return ", ".join(sorted(seen)) if seen else "nothing"
