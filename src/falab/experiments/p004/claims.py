"""P004's claims as data: the printed statement, the reconstructed reading (every formula of the paper was lost in
the extraction, so each reading is the catalog's reconstruction), and the checks the engine decides them by.

Thresholds come from the catalog's tolerances or from the numerical precision of the method, as each check's
``what`` says; none depends on quick or full mode.
"""

from __future__ import annotations

from .._claims import Check, ClaimSpec, Proportion, Slope, Statistic

EXACT = "exact identity evaluated in floating point (rounding only)"

L1 = ClaimSpec(
    "P004-L1", "At FA/FA* stationary points with Gaussian B, Z W = P_{col(YB)} Y (Lemma 1).",
    reading="Z W = Y B (B^T Y^T Y B)^+ B^T Y^T Y whenever (Y - ZW) B = 0 and Z^T (Y - ZW) = 0 (eq. 7).",
    holds=(Check("l1_distance", "<=", 1e-8, "||ZW - P_{YB} Y|| / ||P_{YB} Y|| over the stationary FA and FA* runs "
                 "of both Fig. 2 panels (stationarity residuals < 1e-10); catalog tolerance 1e-8"),),
    mode="euler",
    explain="FA and FA* Euler runs of Fig. 2, continued until stationary; Euler fixed points are the flow's "
            "stationary points, so the lemma applies exactly. A seed with no stationary run gives no value and fails.")

T2 = ClaimSpec(
    "P004-T2", "With Gaussian B and r >= rank(Y), FA/FA* stationary points satisfy Z W = Y (Theorem 2).",
    holds=(Check("t2_error", "<=", 1e-8, "||Y - ZW|| / ||Y|| over the stationary runs with r >= rank(Y) (Fig. 2a and "
                 "FA* on further 30 x 30 rank-3 draws); catalog tolerance 1e-8"),
           Check("t2_counter_update", "<=", 1e-12, "engine FA update at the counter-example (B orthogonal to row(Y), "
                 "W = Z^+ Y): stationary up to rounding"),
           Check("t2_counter_error", ">", 1e-8, "||Y - ZW|| / ||Y|| at that stationary point exceeds the 1e-8 "
                 "tolerance: randomness of B is needed")),
    mode="euler",
    explain="Zero error at every stationary run with r >= rank(Y), and the paper's counter-example for a "
            "non-random B (rank(Y) = r = 1, B orthogonal to the row space of Y) measured on the engine.")

T3 = ClaimSpec(
    "P004-T3", "For r < rank(Y) with a long-tail spectrum, FA's error exceeds the optimum w.p. >= 0.99 over B, while "
               "GD reaches sqrt(sum_{i>r} sigma_i^2) (Theorem 3).",
    reading="Constants lost; the catalog's instances (top r singular values 1, a tail of N values eps with N eps^2 "
            "= r) and its constant: P(FA^2 >= 1.45 opt^2) >= 0.99 for (r, N) = (5, 500) and (10, 1000).",
    holds=(Proportion("t3_fa_exceeds_optimum", ">=", 0.99, "engine-trained FA error above the optimum by more than "
                      "the 1e-8 precision of the stationary runs, one B per draw (the theorem's 0.99)"),
           Check("t3_fa_vs_formula", "<=", 1e-8, "engine-trained FA error^2 against Lemma 17's exact value at the "
                 "same B (relative; the stationary runs' precision)"),
           Check("t3_gd_vs_optimum", "<=", 1e-8, "engine-trained GD error against the optimum (relative)"),
           Check("t3_fa_stationarity", "<=", 1e-10, "the trained FA runs are stationary (catalog: residuals < 1e-10)"),
           Proportion("t3_formula_r5", ">=", 0.99, "formula Monte Carlo (Lemma 17, not the engine), catalog instance "
                      "r = 5, N = 500, eps = 0.1: FA^2 >= 1.45 opt^2"),
           Proportion("t3_formula_r10", ">=", 0.99, "formula Monte Carlo (Lemma 17, not the engine), catalog "
                      "instance r = 10, N = 1000, eps = 0.1: FA^2 >= 1.45 opt^2")),
    mode="monte-carlo",
    explain="FA and GD trained by the engine on a long-tail instance with one B per draw (seeds pooled, Wilson "
            "interval), each trained error tied to Lemma 17's formula; the catalog's constant is checked on the "
            "formula Monte Carlo at its (larger) instances, labelled as such.")

T4 = ClaimSpec(
    "P004-T4", "r = 1, sigma_1 = 1, sigma_2..k = eps: w.p. >= 0.99 FA error <= sqrt(1 + 1/((k-1)eps^2)) x GD error "
               "while |cos(Z_FA, Z_GD)| = O(1/(eps sqrt k)) (Theorem 4).",
    holds=(Proportion("t4_within_bound", ">=", 0.99, "engine-trained FA / GD error ratio within the bound (1e-8 "
                      "relative slack, the stationary runs' precision), one B and GD init per draw"),
           Check("t4_cos_vs_formula", "<=", 1e-8, "engine-trained |cos(Z_FA, Z_GD)| against the closed form "
                 "|g_1| / sqrt(sum sigma_i^2 g_i^2) at the same B (absolute)"),
           Check("t4_stationarity", "<=", 1e-10, "the trained FA and GD runs are stationary"),
           Slope("t4_eps_sqrt_k", "t4_median_cos", "<=", -0.9,
                 "formula Monte Carlo (not the engine): log-log slope of the median cosine against eps sqrt(k) for "
                 "eps sqrt(k) in [3, 50]; the statement's exponent is -1, less 0.1 for the curvature at the low end "
                 "(local exponent -1 + g_1^2 / (eps^2 k) ~ -0.95 at eps sqrt(k) = 3)")),
    mode="monte-carlo",
    explain="FA and GD trained by the engine on one B and one GD initialisation per draw (seeds pooled, Wilson "
            "interval) with the cosine tied to the closed form on every draw; the O(1/(eps sqrt k)) rate is the "
            "fitted slope of the closed form's median cosine over a sweep of eps at k - 1 = 1e4.")

EX1 = ClaimSpec(
    "P004-Ex1", "Example 1 (m = r = 1, FA*): with A(0) < 0 the loss first rises, then falls to 0 while A = w b "
                "increases; under FA the alignment can decrease.",
    reading="u = z^T y / rho follows u(t) = ||y|| tanh(b ||y|| t / rho + atanh(u(0) / ||y||)); FA with z(0)^T y = 0 "
            "and w(0) b > 0 has d(wb)/dt = -||z(0)||^2 w(0) b < 0.",
    holds=(Check("ex1_u_error", "<=", 1e-8, "max_t |u - u_closed form| (catalog tolerance 1e-8)", numerical=True),
           Check("ex1_loss_error", "<=", 1e-8, "max_t |loss - loss_closed form|", numerical=True),
           Check("ex1_alignment_error", "<=", 1e-8, "max_t |A - A_closed form|", numerical=True),
           Check("ex1_rate_start", ">", 0.0, "dL/dt at t = 0 from the engine's vector field: the loss rises"),
           Check("ex1_rate_end", "<", 0.0, "dL/dt at the horizon: the loss falls"),
           Check("ex1_rate_sign_changes", "<=", 1, "sign changes of dL/dt along the flow: one rise, then one fall"),
           Check("ex1_loss_end_ratio", "<=", 0.05, "L(T) / L(0) at T = 5 (>= 4 time constants rho / (b ||y||)): "
                 "the loss falls towards 0"),
           Check("ex1_alignment_min_increment", ">=", -1e-9, "smallest increment of A = w b relative to max |A| "
                 "(solver precision)", numerical=True),
           Check("ex1_fa_da_dt", "<", 0.0, "engine FA d(wb)/dt at the counter-example"),
           Check("ex1_fa_da_dt_vs_predicted", "<=", 1e-12, f"against -||z(0)||^2 w(0) b (relative; {EXACT})")),
    mode="flow",
    explain="Engine FA* flow (DOP853) against the closed form; the rise is read from the sign of dL/dt, so a rise "
            "shorter than the record spacing (A(0) close to 0) is still seen.")

F3 = ClaimSpec(
    "P004-F3", "FA* keeps Z^T Z constant (Fact 3).",
    reading="Flow: Z^T Z constant; Euler: Z_{k+1}^T Z_{k+1} = Z_k^T Z_k + eta^2 R_k^T R_k exactly.",
    holds=(Check("f3_flow_drift", "<=", 1e-9, "max_t ||Z^T Z - Z(0)^T Z(0)|| / ||Z(0)^T Z(0)|| along the FA* flow "
                 "(catalog tolerance 1e-9; solver accuracy)", numerical=True),
           Check("f3_euler_identity", "<=", 1e-12, f"Euler identity violation / ||Z_k^T Z_k|| ({EXACT})")),
    mode="flow", explain="FA* flow and Euler identity on draw 0 of every seed.")

L4 = ClaimSpec(
    "P004-L4", "FA*: d/dt 0.5||R||_F^2 = -tr(R (W B) R^T) for any full-column-rank Z (Lemma 4).",
    holds=(Check("l4_chain_rule", "<=", 1e-8, "chain rule (engine dZ/dt, slaved dW/dt) against -tr(R A R^T), "
                 "relative to max_t |tr(R A R^T)| (catalog 1e-8)"),
           Check("l4_finite_difference", "<=", 1e-6, "central finite differences along the engine's vector field "
                 "(step 1e-6; truncation error)")),
    mode="flow", explain="Evaluated at every record time of the FA* flow.")

T1 = ClaimSpec(
    "P004-T1", "FA* converges to a stationary point: ||R|| -> 0, min_{s<=T} ||R(s)||^2 <= 2 ||Z(0)|| ||YB|| / T "
               "(Theorem 1; the paper's constants were lost, the bound is the derived one).",
    holds=(Check("t1_bound_margin", ">=", -1e-6, "min_T (bound(T) - min_{s<=T} ||R(s)||^2) (catalog slack 1e-6)"),
           Check("t1_integral_vs_gain", "<=", 1e-4, "int ||R||^2 dt against the gain of tr(Z^T Y B) (relative; "
                 "Simpson quadrature on the record grid)"),
           Check("t1_gain_over_bound", "<=", 1.0, "gain of tr(Z^T Y B) over 2 ||Z(0)|| ||YB||"),
           Check("t1_residual_ratio", "<", 1e-3, "||R(T)|| / ||R(0)||: the residual has vanished to three orders "
                 "of magnitude by the horizon")),
    caveat=(Proportion("t1_highly_nonmonotone", "<=", 0.5, "draws of the Fig. 3b setting whose dL/dt changes sign "
                       "at least 3 times (one rise-and-fall gives 2; values below 1e-6 of its peak, where the count "
                       "depends on the solver tolerance, are not counted); the paper reports a 'highly "
                       "non-monotone' loss when r is close to rank(Y) (here 5 and 6)"),),
    mode="flow",
    explain="FA* flow on draw 0 of every seed for the bound; the sign changes of dL/dt along the flow on every "
            "draw.",
    if_qualified="The convergence holds, but the paper's Fig. 3b observation is not typical at the proposed "
                 "parameters: most draws switch at most twice; more draws switching 3+ times would make it confirmed.")

L5 = ClaimSpec(
    "P004-L5", "FA*: d/dt (Z^T Y B) = R^T R (PSD), so with Z^T Z = I every v^T A v and lam_min(A) are "
               "non-decreasing (Lemma 5).",
    reading="Euler: Z_{k+1}^T Y B - Z_k^T Y B = eta R_k^T R_k exactly.",
    holds=(Check("l5_flow_identity", "<=", 1e-9, "max_t ||d(Z^T Y B)/dt - R^T R|| / max_t ||R^T R|| (catalog 1e-9)"),
           Check("l5_euler_identity", "<=", 1e-12, f"Euler identity, relative to max ||eta R^T R|| ({EXACT})"),
           Check("l5_quad_min_increment", ">=", -1e-9, "smallest increment of v^T A v over 40 random unit v, relative "
                 "to max |v^T A v| (solver precision)", numerical=True),
           Check("l5_lam_min_min_increment", ">=", -1e-9, "smallest increment of lam_min(A), same scale",
                 numerical=True)),
    mode="flow", explain="FA* flow and Euler identity on draw 0 of every seed.")

FAIMPL = ClaimSpec(
    "P004-FAimpl", "With W(0) optimal FA's loss curve is close to FA*'s, closer with a larger step for W (Fig. 5).",
    reading="Under FA d/dt(Z^T Y B) = R^T R + B^T E^T Z W B; with W near its optimum the extra term is small. "
            "Close = nearer to FA* than FA from a random W(0).",
    holds=(Statistic("fa5_big_minus_equal", "<", 0.0, "per draw, curve distance to FA* with the 10x W step minus "
                     "with equal steps (mean over the transient of |log10 L_FA - log10 L_FA*|)"),
           Statistic("fa5_equal_minus_random", "<", 0.0, "per draw, distance with W(0) optimal (equal steps) minus "
                     "with W(0) random")),
    corrected=(Statistic("fa5_big_minus_equal", "<", 0.0, "as above"),
               Statistic("fa5_big_minus_random", "<", 0.0, "per draw, distance with W(0) optimal and the 10x W step "
                         "minus with W(0) random")),
    mode="euler",
    explain="Paired differences over independent draws of the Fig. 3b setting (bootstrap interval of the mean).",
    if_qualified="FA with optimal W(0) tracks FA* only with the larger W step; with equal steps W leaves its "
                 "optimum at once. A negative mean for the equal-step difference would make it confirmed.")

BALDI = ClaimSpec(
    "P004-Baldi", "FA for matrix factorisation converges to a stationary point (Baldi et al. 2018); C = Z^T Z - W B "
                  "- B^T W^T is conserved by the FA flow.",
    holds=(Check("baldi_flow_drift", "<=", 1e-8, "max_t ||C(t) - C(0)|| / ||C(0)|| along the FA flow (solver "
                 "accuracy)", numerical=True),
           Check("baldi_euler_identity", "<=", 1e-9, f"Euler: C += eta^2 R^T R, relative ({EXACT})"),
           Check("baldi_stationarity", "<=", 1e-6, "final max(||EB||, ||Z^T E||) of the flow", numerical=True),
           Check("baldi_limit", "<=", 1e-6, "final ||ZW - P_{YB} Y|| / ||P_{YB} Y||", numerical=True)),
    mode="flow",
    explain="FA flow from a random W(0) ~ N(0, 0.1^2) on draw 0 of every seed; convergence is shown on these "
            "instances (the proof is not reproduced).")

COR5 = ClaimSpec(
    "P004-Cor5", "With isotropic inputs (X^T X = I) and linear targets Y_out = X A, the 2-layer linear network's "
                 "FA/FA*/GD dynamics equal matrix factorisation of Y = A (Corollary 5).",
    holds=(Check("cor5_trajectory", "<=", 1e-12, f"network against factorisation parameters, relative ({EXACT})"),
           Check("cor5_loss", "<=", 1e-12, "losses, relative"),
           Check("cor5_equations", "<=", 1e-12, "engine vector field against P004 eqs (2)-(4), numpy oracle")),
    mode="euler", explain="Euler, every rule, X with orthonormal columns (2n x n).")
