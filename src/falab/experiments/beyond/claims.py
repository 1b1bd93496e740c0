"""falab's own claims (no seed paper states them) as data, decided by the claims engine like the papers' claims.

Each statement was written from the derivation (docs/theory/fa_tensor_networks.md) before measuring it; thresholds
are solver precision for the exact statements and round numbers for the statistical ones, never fitted to a result.
"""

from __future__ import annotations

from .._claims import Check, ClaimSpec, Proportion, Statistic

FLOW = "exact network flow (DOP853, rtol 1e-11) against the predictor: solver precision"

LIMIT = ClaimSpec(
    "FALAB-LIMIT",
    "On diagonal linear networks the flows of FA, DFA, uSF and GD converge to beta* = P(X^T s*), P the rule's "
    "coordinate map and s* the limit of the dual flow ds/dt = -grad D(s) from 0 (the minimiser of the convex D when P "
    "is monotone).",
    holds=(
        Check("lim_flow_err", "<=", 1e-8, f"max ||beta_flow - beta*|| / ||beta*|| per rule; {FLOW}", numerical=True,
              axis="rule"),
        Check("lim_interp", "<=", 1e-10, "max ||X beta* - y|| / ||y|| of the predictor: it interpolates"),
        Check("lim_kkt", "<=", 1e-10, "max distance of grad Phi(beta*) = P^{-1}(beta*) from range(X^T), relative "
              "(monotone members): the KKT condition of min Phi s.t. X beta = y"),
    ),
    mode="flow",
    explain="Two-layer FA over feedback laws (Gaussian, uniform, Rademacher, 3x Gaussian) and initial scales (0 and "
            "finite, so Q = u^2/2 - b v of both signs: monotone and non-monotone P), depth-3 DFA from zero, uSF and GD "
            "from a finite scale; d = 4, n = 2, one ensemble flow per rule; the predictor uses no simulation code.",
)

L43 = ClaimSpec(
    "FALAB-L43",
    "Two-layer FA from zero initialisation converges to argmin sum_i |b_i|^{-2/3} |beta_i|^{4/3} s.t. X beta = y "
    "(a weighted l_{4/3} interpolator, not GD's l1).",
    holds=(
        Check("l43_flow_vs_primal", "<=", 1e-6, "max relative distance of the FA flow's limit from the weighted "
              "l_{4/3} interpolator solved on the primal by SLSQP (an independent route; SLSQP precision ~1e-7)"),
        Check("l43_dual_vs_primal", "<=", 1e-6, "the dual Newton solution against the SLSQP primal"),
    ),
    mode="flow",
    explain="FA members started at exactly u = v = 0 (FA learns from there; GD would stay at the saddle).",
)

SIGNS = ClaimSpec(
    "FALAB-SIGNS",
    "From zero initialisation FA's limit depends on the feedback magnitudes |b_i| only: flipping the signs of b does "
    "not move the limit.",
    holds=(
        Check("signs_gap", "<=", 1e-8, f"max relative distance between the limits with b and with random sign flips of "
              f"b; {FLOW}", numerical=True),
    ),
    mode="flow",
    explain="Pairs of zero-init FA flows on the same data whose feedback differs only in signs.",
)

CONS = ClaimSpec(
    "FALAB-CONS",
    "Along two-layer FA flows on a diagonal net Q_i = u_i^2 / 2 - b_i v_i is conserved (the law that reduces the flow "
    "to beta = P(z)).",
    holds=(
        Check("cons_drift", "<=", 1e-10, f"max |Q_i(t) - Q_i(0)| over max_i (u_i^2/2 + |b_i v_i|) at 5 times; {FLOW}",
              numerical=True),
    ),
    mode="flow",
    explain="Every two-layer FA flow member of the atlas.",
)

NOTL1 = ClaimSpec(
    "FALAB-NOTL1",
    "From small initialisation FA's limit is far from the min-l1 interpolator (relative distance >= 0.05 on "
    "average) while GD's is close to it (<= 0.05).",
    holds=(
        Statistic("notl1_fa", ">=", 0.05, "relative distance of two-layer FA's predicted limit (scale 1e-3) from "
                  "min-l1 (HiGHS LP)"),
        Statistic("notl1_gd", "<=", 0.05, "relative distance of GD's predicted limit (scale 1e-3) from min-l1"),
    ),
    mode="closed-form",
    explain="The predictor over random instances (d = 8, n = 4), at the smallest initial scale of the atlas.",
)

PT_GD = ClaimSpec(
    "FALAB-PT-GD",
    "GD from small initialisation (u = 1e-5, v = 0) recovers a k-sparse teacher exactly (relative error <= 1e-2) "
    "with probability >= 1/2 from n = d/2 samples.",
    holds=(Proportion("pt_exact_gd", ">=", 0.5, "exact recovery at n = d/2 over the instances of every seed"),),
    mode="closed-form",
    explain="Gaussian X (n x d), k-sparse Gaussian teacher; the limit of each network from the predictor (verified "
            "against the flows in FALAB-LIMIT).",
)

PT_FA = ClaimSpec(
    "FALAB-PT-FA",
    "Two-layer FA (Gaussian feedback, zero init) and uSF (small init) rarely recover a k-sparse teacher exactly from "
    "n = d/2 samples (probability <= 0.2): their l_{4/3} potentials select dense interpolators.",
    holds=(
        Proportion("pt_exact_fa", "<=", 0.2, "exact recovery (relative error <= 1e-2) by FA at n = d/2"),
        Proportion("pt_exact_usf", "<=", 0.2, "exact recovery by uSF at n = d/2"),
    ),
    mode="closed-form",
    explain="The same instances as FALAB-PT-GD.",
)

PT_SUPPORT = ClaimSpec(
    "FALAB-PT-SUPPORT",
    "Even the support (the k largest |beta_i|) is recovered less often by two-layer FA than by GD at n = d/2.",
    holds=(Statistic("pt_support_gd_minus_fa", ">", 0.0, "mean over instances of [GD recovers the support] - "
                     "[FA recovers it] (paired, same instance)"),),
    mode="closed-form",
    explain="The same instances as FALAB-PT-GD.",
)

PT_DEPTH = ClaimSpec(
    "FALAB-PT-DEPTH",
    "Depth-3 DFA from zero init (small-init potential |beta|^{8/7}, closer to l1) recovers exactly more often than "
    "two-layer FA (|beta|^{4/3}) at n = d/2.",
    holds=(Statistic("pt_exact_dfa3_minus_fa", ">", 0.0, "mean over instances of [DFA-3 recovers] - [FA recovers] "
                     "(paired)"),),
    mode="closed-form",
    explain="The same instances as FALAB-PT-GD.",
)

CONV = ClaimSpec(
    "FALAB-CONV",
    "On a full-length two-layer circular-convolution net with even data and even feedback, FA from zero init "
    "converges to the weighted DFT-l_{4/3} interpolator argmin sum_k |bhat_k|^{-2/3} |betahat_k|^{4/3} s.t. "
    "X beta = y.",
    holds=(
        Check("conv_flow_err", "<=", 1e-8, f"max ||beta_flow - beta*|| / ||beta*||, beta* from the DFT-domain "
              f"predictor; {FLOW}", numerical=True),
        Check("conv_kkt", "<=", 1e-10, "distance of the DFT-domain gradient |bhat|^{-2/3} sign(betahat)|betahat|^{1/3} "
              "from range((X F^{-1})^T), relative: the KKT condition of the weighted DFT-l_{4/3} problem"),
    ),
    mode="flow",
    explain="One CircularConvNet(4) per seed (n = 1, rows x = r + reverse(r), b likewise), FA from zero; the same "
            "derivation as the diagonal case after the real DFT.",
)

CLS = ClaimSpec(
    "FALAB-CLS",
    "Exponential loss, separable data (n = 4 < d = 8): along the exact flow of two-layer FA from zero init on a "
    "diagonal net, grad Phi(beta(t)) = (2 beta / b^2)^{1/3} stays in range(X^T) (the mirror flow of the weighted "
    "l_{4/3} potential), and the angle of beta(t) to the weighted-l_{4/3} max-margin direction argmin sum_i "
    "|b_i|^{-2/3} |beta_i|^{4/3} s.t. y_n x_n^T beta >= 1 decreases from t = 1e2 to t = 1e8 and is smaller at "
    "t = 1e8 than its angle to both the l1 and the l2 max-margin directions.",
    holds=(
        Check("cls_mirror", "<=", 1e-8, "max over recorded t >= 1 of the relative distance of (2 beta(t) / b^2)^{1/3} "
              f"from range(X^T); {FLOW.replace('rtol 1e-11', 'rtol 1e-10')}", numerical=True),
        Check("cls_pred_kkt", "<=", 1e-8, "KKT residual of the predicted max-margin point (stationarity by NNLS on the "
              "active margins, margin violation, complementary slackness)"),
        Statistic("cls_decrease", ">", 0.0, "angle(beta(1e2), predicted) - angle(beta(1e8), predicted) per instance "
                  "(radians)"),
        Statistic("cls_gap", ">", 0.0, "min(angle to l1 max margin, angle to l2 max margin) - angle to the predicted "
                  "direction, at t = 1e8, per instance (radians)"),
    ),
    mode="flow",
    explain="Random Gaussian instances (rows of norm 1.5, random labels, Gaussian feedback b), one ensemble flow "
            "(DOP853) recorded at every decade; the predictor (falab.theory.fa_max_margin: convex dual + active set) "
            "uses no simulation code. The convergence is slow (the angle decays like (log t)^{-1/3} when some sample is "
            "not a support vector, like 1/log t when all are; docs/theory/fa_tensor_networks.md Sec. 7), so the "
            "claim is a trend and a ranking, not a limit reached.",
)

ATLAS = (LIMIT, L43, SIGNS, CONS, NOTL1, CONV)
CLASSIFICATION = (CLS,)
PHASE = (PT_GD, PT_FA, PT_SUPPORT, PT_DEPTH)
