r"""The linear system :math:`\langle\nabla P(\theta_s), v_{x_s}(\theta_s)\rangle = 0` for a polynomial
:math:`P = \sum_m c_m m(\theta)`, its character blocks, rank decisions and the assembly of one global basis.

Every sample :math:`(\theta_s, x_s)` gives, for each character :math:`\chi` of the torus (``_torus``), one equation
:math:`\sum_{(m,r):\,\chi(m,r)=\chi} c_m\,\prod_{q\ne r}\theta_{s,i_q}\,v_{i_r}(\theta_s, x_s) = 0` on the monomials
:math:`U_\chi` of that character. A vector :math:`c` solves the whole system iff its restriction to every
:math:`U_\chi` lies in the null space :math:`N_\chi` of that block. So we solve each small block, write
:math:`c|_{U_\chi} = N_\chi a_\chi`, and impose that blocks sharing a monomial agree on it — a second, small system in
the :math:`a_\chi`. The result is exactly the null space of the dense system (tested against it), at the cost of the
blocks.

Rank decisions read the singular values of each block after scaling rows and columns to unit norm: the null
dimension is the number of singular values below the largest gap (relative to the largest) whose lower side is at
most ``ZERO``; the gap in decades is the *margin* reported. A gap too small, or rows too few, raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

ZERO = 1e-9  # a relative singular value at most this is a candidate zero (float64 noise is ~1e-13 here)
MIN_MARGIN = 3.0  # decades between the smallest kept and the largest dropped singular value


class LawDiscoveryError(RuntimeError):
    """The numerics cannot decide (too few or degenerate samples, no clear singular-value gap)."""


def monomials(D: int, degree: int) -> list[Tensor]:
    """Index tuples ``(n_m, d)`` of the monomials of each degree ``d = 1..degree`` (sorted indices)."""
    ar = torch.arange(D)
    out = [ar.view(-1, 1)]
    for d in range(2, degree + 1):
        out.append(torch.combinations(ar, r=d, with_replacement=True))
    return out


@dataclass
class Terms:
    """All terms ``(monomial m, position r)``: global monomial id, the differentiated coordinate, the other factors
    (padded with -1) and the character id."""

    mono: Tensor  # (n_t,)
    coord: Tensor  # (n_t,)
    others: Tensor  # (n_t, degree-1), -1 = no factor
    char: Tensor  # (n_t,)
    n_monomials: int


def build_terms(mons: list[Tensor], w: Tensor, nu: Tensor, static: Tensor | None) -> Terms:
    """Enumerate terms and their characters; terms whose coordinate has an identically zero field are dropped
    when ``static`` is given (they carry no equation)."""
    degree = len(mons)
    mono_l, coord_l, oth_l, char_l = [], [], [], []
    base = 0
    for idx in mons:
        n, d = idx.shape
        ids = torch.arange(base, base + n)
        for r in range(d):
            others = torch.cat([idx[:, :r], idx[:, r + 1:]], dim=1)
            ch = nu[idx[:, r]] + w[others].sum(dim=1) if d > 1 else nu[idx[:, r]]
            pad = torch.full((n, degree - 1), -1, dtype=torch.long)
            pad[:, : d - 1] = others
            mono_l.append(ids)
            coord_l.append(idx[:, r])
            oth_l.append(pad)
            char_l.append(ch)
        base += n
    mono, coord, oth = torch.cat(mono_l), torch.cat(coord_l), torch.cat(oth_l)
    ch = torch.cat(char_l)
    if ch.shape[1] == 0:
        cid = torch.zeros(mono.shape[0], dtype=torch.long)
    else:
        _, cid = torch.unique(ch, dim=0, return_inverse=True)
    if static is not None:
        keep = ~static[coord]
        mono, coord, oth, cid = mono[keep], coord[keep], oth[keep], cid[keep]
    return Terms(mono, coord, oth, cid, base)


def term_values(terms: Terms, sel: Tensor, theta: Tensor, v: Tensor) -> Tensor:
    """``(S, len(sel))``: value of each selected term, ``v_{coord} * prod(other factors)``, at every sample."""
    val = v[:, terms.coord[sel]]
    oth = terms.others[sel]
    for q in range(oth.shape[1]):
        col = oth[:, q]
        has = col >= 0
        f = torch.where(has, theta[:, col.clamp_min(0)], torch.ones(1, dtype=theta.dtype))
        val = val * f
    return val


@dataclass
class RankDecision:
    """One block's decision: columns, rows, null dimension and the singular values either side of the cut."""

    n_cols: int
    n_rows: int
    null_dim: int
    kept_min: float  # smallest kept relative singular value (1.0 if all dropped)
    dropped_max: float  # largest dropped relative singular value (0.0 if none dropped)

    @property
    def margin(self) -> float:
        """Decades between the kept and the dropped singular values (against 1e-16 when nothing is dropped)."""
        return math.log10(max(self.kept_min, 1e-300) / max(self.dropped_max, 1e-16))


def decide_rank(sv: Tensor, n_rows: int, n_cols: int) -> RankDecision:
    """Null dimension of a block from its singular values (descending), cut at the largest gap below ``ZERO``."""
    if sv.numel() == 0 or float(sv[0]) == 0.0:
        return RankDecision(n_cols, n_rows, n_cols, 1.0, 0.0)
    rel = (sv / sv[0]).clamp_min(1e-300)
    rel_full = torch.cat([rel, torch.zeros(n_cols - rel.numel(), dtype=rel.dtype)]) if rel.numel() < n_cols else rel
    small = rel_full <= ZERO
    if not bool(small.any()):
        return RankDecision(n_cols, n_rows, 0, float(rel_full[-1]), 0.0)
    # below float64 resolution all values are equally zero: no gap is read among them
    logs = torch.log10(rel_full.clamp_min(1e-16))
    gaps = logs[:-1] - logs[1:]  # gap after index i
    cand = small[1:]  # cut after i keeps 0..i, drops i+1..; the dropped side must start below ZERO
    gaps = torch.where(cand, gaps, torch.full_like(gaps, -1.0))
    if n_cols >= 1 and bool(small[0]):
        return RankDecision(n_cols, n_rows, n_cols, 1.0, float(rel_full[0]))
    i = int(torch.argmax(gaps))
    return RankDecision(n_cols, n_rows, n_cols - (i + 1), float(rel_full[i]), float(rel_full[i + 1]))


GRAM_COLS = 192  # blocks at least this wide use the Gram route (about 4x faster than the SVD here)


def _gram_svd(a: Tensor) -> tuple[Tensor, Tensor]:
    """Singular values (descending) and right vectors of a tall ``a`` from ``eigh(a^T a)``.

    The Gram matrix squares the condition number, so its small eigenvalues only say *which* directions are nearly
    null (relative sigma below 1e-6); their singular values are then measured directly as ``||a u||``, which is
    accurate to rounding. Kept singular values (large) are accurate from the eigenvalues."""
    w, u = torch.linalg.eigh(a.T @ a)  # ascending
    w, u = w.flip(0), u.flip(1)
    sv = torch.sqrt(w.clamp_min(0.0))
    cand = sv <= 1e-6 * sv[0]
    if bool(cand.any()):
        direct = (a @ u[:, cand]).norm(dim=0)
        sv = sv.clone()
        sv[cand] = direct
        order = torch.argsort(sv, descending=True, stable=True)
        sv, u = sv[order], u[:, order]
    return sv, u.T


def null_space(a: Tensor, *, what: str, check_rows: bool = True,
               scale_columns: bool = True) -> tuple[Tensor, RankDecision, Tensor]:
    """Null space of ``a (rows, cols)`` with rows and columns scaled to unit norm.

    Returns the basis in the *original* column coordinates ``(cols, k)``, the decision, and the column scales.
    Raises :class:`LawDiscoveryError` when the rows cannot decide (fewer rows than columns, small margin)."""
    rows, cols = a.shape
    cn = a.norm(dim=0)
    cn = torch.where(cn > 0, cn, torch.ones_like(cn))
    if not scale_columns:
        # consistency systems: a column that is rounding noise must stay noise, not be blown up to unit norm
        cn = torch.ones_like(cn)
    rn = a.norm(dim=1, keepdim=True)
    # rows that are zero up to rounding carry no equation; normalising them would turn rounding into equations
    keep = rn.squeeze(1) > 1e-13 * float(rn.max()) if rn.numel() else rn.squeeze(1) > 0
    a = a[keep] / rn[keep]
    a = a / cn
    if check_rows and a.shape[0] < cols:
        raise LawDiscoveryError(
            f"too few samples for {what}: {a.shape[0]} nonzero equations for {cols} unknowns (rank deficient by "
            f"construction; raise n_samples)")
    if cols >= GRAM_COLS and a.shape[0] >= cols:
        sv, vh = _gram_svd(a)
    else:
        # only V is needed: the thin SVD when there are at least as many rows as columns
        _, sv, vh = torch.linalg.svd(a, full_matrices=a.shape[0] < cols)
    dec = decide_rank(sv, a.shape[0], cols)
    if dec.null_dim and dec.null_dim < cols and dec.margin < MIN_MARGIN:
        raise LawDiscoveryError(
            f"no clear singular-value gap for {what}: kept {dec.kept_min:.2e}, dropped {dec.dropped_max:.2e} "
            f"(margin {dec.margin:.1f} decades < {MIN_MARGIN}); more samples or another seed")
    basis = vh[cols - dec.null_dim:].T
    # a column that no null vector uses is exactly absent (not 1e-16): otherwise the consistency system between
    # blocks would read rounding noise as an equation
    basis[basis.norm(dim=1) <= 1e-10] = 0.0
    basis[basis.abs() <= 1e-13] = 0.0  # entries at rounding level (columns have unit norm here)
    basis = basis / cn.unsqueeze(1)
    return basis, dec, cn


@dataclass
class BlockSolution:
    chars: int = 0
    max_cols: int = 0
    decisions: list[RankDecision] = field(default_factory=list)
    consistency: list[RankDecision] = field(default_factory=list)
    validation_residual: float = 0.0


def _union_find(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return [find(i) for i in range(n)]


def solve_blocks(
    terms: Terms,
    theta: Tensor,
    v: Tensor,
    theta_val: Tensor,
    v_val: Tensor,
) -> tuple[Tensor, BlockSolution]:
    """Null space ``(n_monomials, k)`` of the whole system from its character blocks (see module docstring).

    ``theta, v`` are the samples that build the blocks; ``theta_val, v_val`` are fresh samples on which every
    block's null vectors must also vanish (a degenerate sample set that admits spurious solutions is caught here)."""
    info = BlockSolution()
    M = terms.n_monomials
    order = torch.argsort(terms.char, stable=True)
    chars_sorted = terms.char[order]
    n_chars = int(chars_sorted.max()) + 1 if chars_sorted.numel() else 0
    counts = torch.bincount(chars_sorted, minlength=n_chars).tolist()
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    null_of: list[Tensor] = []  # per char: (|U|, k) in true coordinates
    mono_of: list[Tensor] = []  # per char: global monomial ids of its columns
    worst_val = 0.0
    for c in range(n_chars):
        sel = order[starts[c]:starts[c + 1]]
        if sel.numel() == 0:
            null_of.append(torch.zeros(0, 0, dtype=theta.dtype))
            mono_of.append(torch.zeros(0, dtype=torch.long))
            continue
        umono, local = torch.unique(terms.mono[sel], return_inverse=True)
        # a small block needs only a few rows more than its unknowns (the SVD costs rows x cols^2)
        n_rows = min(theta.shape[0], max(2 * umono.numel() + 16, theta.shape[0] // 4))
        vals = term_values(terms, sel, theta[:n_rows], v[:n_rows])
        a = torch.zeros(n_rows, umono.numel(), dtype=theta.dtype).index_add_(1, local, vals)
        basis, dec, _ = null_space(a, what=f"character block {c} ({umono.numel()} monomials)")
        info.decisions.append(dec)
        info.max_cols = max(info.max_cols, umono.numel())
        if basis.shape[1]:
            av = torch.zeros(theta_val.shape[0], umono.numel(), dtype=theta.dtype).index_add_(
                1, local, term_values(terms, sel, theta_val, v_val))
            # relative to the sum of |terms| of each law at each point
            den = av.abs() @ basis.abs()
            # a point where every term vanishes (the field is zero there) checks nothing: floor the scale
            res = float(((av @ basis).abs() / den.clamp_min(1e-6 * float(den.max()) + 1e-300)).max())
            worst_val = max(worst_val, res)
        null_of.append(basis)
        mono_of.append(umono)
    info.chars = n_chars
    info.validation_residual = worst_val
    if worst_val > 1e-8:
        raise LawDiscoveryError(
            f"sample set is rank deficient: a null vector of the sampled equations fails on fresh samples "
            f"(residual {worst_val:.1e} > 1e-8); the samples are degenerate (e.g. too few distinct points)")
    # membership: monomial -> list of (char, local row)
    owner_char: list[list[tuple[int, int]]] = [[] for _ in range(M)]
    for c, um in enumerate(mono_of):
        for r, m in enumerate(um.tolist()):
            owner_char[m].append((c, r))
    pairs = [(lst[0][0], cc) for lst in owner_char if len(lst) > 1 for cc, _ in lst[1:]]
    root = _union_find(n_chars, pairs)
    comps: dict[int, list[int]] = {}
    for c in range(n_chars):
        comps.setdefault(root[c], []).append(c)
    cols: list[Tensor] = []
    for members in comps.values():
        ks = [null_of[c].shape[1] for c in members]
        K = sum(ks)
        if K == 0:
            continue
        off = {}
        o = 0
        for c, k in zip(members, ks):
            off[c] = o
            o += k
        mset = set(members)
        rows = []
        monos_in = sorted({m for c in members for m in mono_of[c].tolist()})
        for m in monos_in:
            lst = [(c, r) for c, r in owner_char[m] if c in mset]
            if len(lst) < 2:
                continue
            c0, r0 = lst[0]
            for c1, r1 in lst[1:]:
                row = torch.zeros(K, dtype=theta.dtype)
                if ks[members.index(c0)]:
                    row[off[c0]:off[c0] + null_of[c0].shape[1]] = null_of[c0][r0]
                if null_of[c1].shape[1]:
                    row[off[c1]:off[c1] + null_of[c1].shape[1]] -= null_of[c1][r1]
                rows.append(row)
        if rows:
            e = torch.stack(rows)
            sol, dec, _ = null_space(e, what="block consistency", check_rows=False, scale_columns=False)
            info.consistency.append(dec)
        else:
            sol = torch.eye(K, dtype=theta.dtype)
        if sol.shape[1] == 0:
            continue
        z = torch.zeros(M, sol.shape[1], dtype=theta.dtype)
        for c in members:
            if null_of[c].shape[1]:
                z[mono_of[c]] = null_of[c] @ sol[off[c]:off[c] + null_of[c].shape[1]]
        cols.append(torch.linalg.qr(z).Q)
    # monomials with no equation at all (every factor's field is identically zero): free laws
    free = [m for m in range(M) if not owner_char[m]]
    if free:
        z = torch.zeros(M, len(free), dtype=theta.dtype)
        z[torch.tensor(free), torch.arange(len(free))] = 1.0
        cols.append(z)
    basis = torch.cat(cols, dim=1) if cols else torch.zeros(M, 0, dtype=theta.dtype)
    return basis, info
