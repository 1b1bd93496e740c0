"""The 56 claims of ``shared/claims.md`` (IDs and one-line statements). ``falab reproduce`` must answer each one."""

from __future__ import annotations

PAPERS: dict[str, str] = {
    "P000": "Robertson & Koyejo, Layer-Wise Feedback Alignment is Conserved in Deep Neural Networks",
    "P002": "Yun, Krishnan & Mobahi, A Unifying View on Implicit Bias in Training Linear Neural Networks (ICLR 2021)",
    "P003": "Girotti, Mitliagkas & Gidel, Convergence Analysis and Implicit Regularization of Feedback Alignment "
    "for Deep Linear Networks (arXiv 2110.10815)",
    "P004": "Garg & Vempala, How and When Random Feedback Works: A Case Study of Low-Rank Matrix Factorization "
    "(AISTATS 2022)",
    "NN": "Feedback alignment on real PyTorch models (falab.nn; no paper claims)",
    "FALAB": "Beyond the papers: where FA, DFA and sign symmetry converge on diagonal linear networks (falab's own "
    "result, not a seed paper's)",
}

# Papers whose claims falab reproduces (the seed papers); "FALAB" claims are falab's own results, counted apart.
SEED_PAPERS: tuple[str, ...] = ("P000", "P002", "P003", "P004")

CLAIMS: dict[str, str] = {
    # P000
    "P000-T5.1": "FA flow conserves Q_i = 0.5||W_i||^2 - <W_{i+1}, B_{i+1}> (scalar-output ReLU net).",
    "P000-T5.1-per-neuron": "Per hidden unit j: 0.5||W_i[j,:]||^2 (+0.5 b_j^2) - <W_{i+1}[:,j], B_{i+1}[:,j]> is conserved.",
    "P000-T5.1-linear-matrix": "Linear FA nets conserve C_i = W_i W_i^T - B_{i+1}^T W_{i+1} - W_{i+1}^T B_{i+1}.",
    "P000-DFA": "Under true DFA the law holds only for the last layer pair (plus a linear-net variant).",
    "P000-C5.1": "If W_{i+1}(0) = B_{i+1} and ||W_i(0)|| <= ||W_{i+1}(0)||, <W_{i+1}(t), B_{i+1}> stays >= "
    "||W_{i+1}(0)||^2 - 0.5||W_i(0)||^2 >= 0.",
    "P000-R.A1": "Zero init of W_i, W_{i+1} gives <W_{i+1}(t), B_{i+1}> = 0.5||W_i(t)||^2 >= 0.",
    "P000-L.A1": "Two-layer linear FA: columns of W_1(0) in span(X^T) keep w(t) = W_1 W_2 in span(X^T).",
    "P000-T5.2": "Two-layer linear FA converges exponentially and to the minimum-norm solution X^+ y.",
    "P000-E.Fig1": "The Fig. 1 conservation ratio stays nearly constant for linear and ReLU networks.",
    "P000-E.Fig2": "Training loss decreases for both networks (Fig. 2).",
    "P000-E.minnorm": "The linear FA solution equals the minimum-norm solution to 3 significant digits.",
    # P002
    "P002-BAL": "GD flow keeps ||v_l||^2 - ||v_l'||^2 (and the per-mode / FC matrix versions) constant.",
    "P002-T1": "Classification: limit directions of the v_l are singular vectors of the tensor M(-u_inf).",
    "P002-C1": "Linear FC nets with exponential loss converge in direction to the l2 max-margin solution.",
    "P002-T2": "Orthogonally decomposable nets: direction -> stationary point of min ||rho||_{2/L} s.t. margins >= 1.",
    "P002-C2": "Diagonal nets (classification) converge in direction to an l_{2/L} max-margin stationary point.",
    "P002-C3": "Full-length conv nets (classification) converge to a DFT-domain l_{2/L} max-margin stationary point.",
    "P002-T3": "Two-layer, single data point classification: v_1, v_2 align with the top singular vectors.",
    "P002-C4": "Small-filter conv (k_1 = 1, 2), single point: limit directions y x and low/high-pass filtered x.",
    "P002-L4": "The Lemma 4 ODE has h_L odd, increasing, blowing up at +-c_L (c_2 = inf, c_3 = pi/2, c_4 = 1).",
    "P002-T5": "Regression, Assumption 1: beta(t) -> S^T argmin Q_{L,alpha,eta}(rho) s.t. X S^T rho = y.",
    "P002-R4": "Q interpolates weighted l1 (alpha -> 0) and weighted l2 (alpha -> inf).",
    "P002-C5": "Diagonal regression limit = argmin of alpha^2 sum wbar_j^2 H_L(z_j / (alpha^L |wbar_j|^L)).",
    "P002-C6": "Full-length conv regression with even data: DFT-domain Q minimiser.",
    "P002-C7": "Deep matrix sensing interpolates nuclear norm (alpha -> 0) and Frobenius norm (alpha -> inf).",
    "P002-T6": "Two-layer, single data point regression: exact limit point via nu* = g^{-1}(y / alpha^2).",
    "P002-T7": "Deep FC regression: lim_{alpha->0} lim_{t->inf} beta = X^T (X X^T)^{-1} y.",
    "P002-E.reg": "Regression trajectories differ by architecture; Theorem 6 predicts the limits.",
    "P002-E.cls": "Classification directions still depend on the initialisation after long training.",
    # P003
    "P003-P1": "FA on data follows eqs (3)/(8) with empirical Sigma_xx, Sigma_xy.",
    "P003-INV": "theta_2 - theta_1^2/(2d) (matrix: W_1 W_1^T - M W_2 - W_2^T M^T) is conserved.",
    "P003-T2": "Init (7): theta_1 theta_2 -> lambda monotonically at rate (3/2)(2 d lambda)^(2/3).",
    "P003-O.zero": "From zero init FA converges while GD stays at the saddle.",
    "P003-T3": "Any init: bounded global solution, theta_1 theta_2 -> lambda (root selection by Delta).",
    "P003-O.nonmono": "With iid init the product can be non-monotone.",
    "P003-T5": "Deep scalar system with init (11): product -> lambda exponentially and monotonically.",
    "P003-T6/T7": "Backward incremental learning: step times T_i increase with lambda_i (Delta > 0).",
    "P003-VT": "Vanishing time T_0 of the K = 0 flow from negative theta_0.",
    "P003-T8": "Forward Euler from zero init converges to a point on the hyperbola for small enough eta.",
    "P003-T9": "Modified scheme (2 layers): invariant exact, linear convergence for eta < eta_max.",
    "P003-T10": "Modified scheme (L layers): invariants exact, convergence for small eta.",
    "P003-T6i": "Informal Theorem 6: FA learns components in order of importance (or reverse) by initialisation.",
    "P003-O.stat": "All FA stationary points are global minima.",
    "P003-O.AE": "Linear autoencoder: FA and GD reach similar reconstruction error; FA's trace norm differs.",
    # P004
    "P004-F3": "FA* flow keeps Z^T Z constant.",
    "P004-L4": "FA*: d/dt 0.5||R||^2 = -tr(R (W B) R^T) (loss derivative).",
    "P004-L5": "FA*: alignment Z^T Y B increases monotonically: d/dt (Z^T Y B) = R^T R.",
    "P004-Ex1": "Toy example m = r = 1: closed-form FA* trajectory; loss rises then falls when A(0) < 0.",
    "P004-T1": "FA* converges to a stationary point; min_{t<=T} ||R||^2 <= 2 ||Z(0)|| ||Y B|| / T.",
    "P004-L1": "FA/FA* stationary points satisfy Z W = P_{col(YB)} Y.",
    "P004-T2": "FA is optimal (Z W = Y) when r >= rank(Y).",
    "P004-T3": "FA is provably sub-optimal when r < rank(Y) under a long-tail spectrum (w.p. >= 0.99).",
    "P004-T4": "FA and GD reach near-equal error with near-orthogonal representations.",
    "P004-FAimpl": "FA behaves like FA* when W is near its optimum (Fig. 5).",
    "P004-Cor5": "Results transfer to 2-layer linear networks with isotropic inputs (identical trajectories).",
    "P004-Baldi": "FA for matrix factorisation converges (Baldi et al.); Z^T Z - W B - B^T W^T is conserved.",
    # FALAB: falab's own results (experiments/beyond; docs/theory/fa_tensor_networks.md), not claims of a seed paper
    "FALAB-LIMIT": "Diagonal nets: FA/DFA/uSF/GD flows converge to P(X^T s*), s* the limit of the dual flow from 0.",
    "FALAB-L43": "Two-layer FA from zero init converges to argmin sum |b_i|^{-2/3} |beta_i|^{4/3} s.t. X beta = y.",
    "FALAB-SIGNS": "From zero init FA's limit depends on |b| only, not on the feedback signs.",
    "FALAB-CONS": "Two-layer FA on a diagonal net conserves Q_i = u_i^2/2 - b_i v_i.",
    "FALAB-NOTL1": "From small init FA's limit is far from min-l1 while GD's is close to it.",
    "FALAB-CONV": "Even data, full-length 2-layer conv net: FA from zero converges to a weighted DFT-l_{4/3} minimiser.",
    "FALAB-PT-GD": "GD (small init) recovers a k-sparse teacher exactly w.p. >= 1/2 from n = d/2 samples.",
    "FALAB-PT-FA": "Two-layer FA and uSF rarely (<= 0.2) recover a k-sparse teacher exactly from n = d/2 samples.",
    "FALAB-PT-SUPPORT": "Two-layer FA recovers the support less often than GD at n = d/2.",
    "FALAB-PT-DEPTH": "Depth-3 DFA (potential |beta|^{8/7}) recovers exactly more often than two-layer FA at n = d/2.",
    "FALAB-CLS": "Exp. loss: 2-layer FA's beta(t)/||beta|| nears the weighted-l_{4/3} max-margin direction (vs l1, l2).",
}


def paper_of(claim_id: str) -> str:
    return claim_id.split("-", 1)[0]
