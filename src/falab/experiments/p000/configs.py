"""P000 experiment sizes (frozen; ``quick()`` shrinks sizes and horizons only, never a tolerance or a decision)."""

from __future__ import annotations

from dataclasses import dataclass

# Fig. 1 readings batched as one ensemble: N(0, 1/10) read as a variance or a std; B copied from W_2(0) or independent
READINGS: tuple[tuple[str, str], ...] = (("var", "copy"), ("var", "indep"), ("std", "copy"), ("std", "indep"))
PAPER_READINGS: tuple[int, ...] = (0, 2)  # B initialised "to match" W_2(0): the paper's feedback (both W_1 readings)

TABLE_ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
TABLE_RULES = ("fa", "dfa", "bp")
HOMOGENEOUS = frozenset({"identity", "relu", "leaky_relu"})

MINNORM_ARMS = ("paper init (Var 0.1, B = W2(0))", "paper init (std 0.1, B = W2(0))", "W1(0) = 0, W2(0) = B",
                "w(0) in span(X^T), W1(0) not")


@dataclass(frozen=True)
class Fig1Config:
    """The paper's Fig. 1/2 setting (sizes LOST in the paper; the proposed d = 10, n = 5, h = 100, Euler eta = 5e-4 for
    40000 steps). The ReLU flow (fixed-step RK4, ``relu_dt``) runs to ``relu_time``: the drift of Q is accrued while
    pre-activations cross 0 early on (measured: the same to 3 digits at t = 0.5 and t = 2)."""

    d: int = 10
    n: int = 5
    h: int = 100
    w1_scale: float = 0.1
    w2_std: float = 1.0
    eta: float = 5e-4
    steps: int = 40000
    relu_dt: float = 2e-4
    relu_time: float = 0.5
    records: int = 200

    @classmethod
    def quick(cls) -> Fig1Config:
        return cls(steps=2000, relu_dt=4e-4, relu_time=0.5, records=50)


@dataclass(frozen=True)
class TableConfig:
    """The law table: widths ``(n_in, hidden x (depth-1), n_out)``, ``members`` nets per seed and cell, RK4 step
    ``dt`` to ``time``."""

    n_in: int = 6
    hidden: int = 10
    n_out: int = 3
    n: int = 12
    depths: tuple[int, ...] = (2, 3, 4)
    members: int = 2
    dt: float = 2.5e-3
    time: float = 0.5

    @classmethod
    def quick(cls) -> TableConfig:
        return cls(depths=(2, 3), members=1, dt=5e-3, time=0.1)


@dataclass(frozen=True)
class LawsConfig:
    """Dedicated law checks: per neuron with biases (ReLU, 2 layers, 4 outputs), matrix form (linear, depth 3),
    DFA (depth 3, ReLU and linear), zero init (linear and ReLU)."""

    n_in: int = 6
    hidden: int = 12
    n_out: int = 4
    n: int = 16
    members: int = 2
    relu_dt: float = 2.5e-4
    time: float = 0.5
    euler_eta: float = 1e-2
    euler_steps: int = 300

    @classmethod
    def quick(cls) -> LawsConfig:
        return cls(members=1, relu_dt=5e-4, time=0.3, euler_steps=100)


@dataclass(frozen=True)
class MinNormConfig:
    """Thm 5.2 on the Fig. 1 data (d = 10, n = 5, h = 100, mean loss), four initialisations per seed as one ensemble
    (every arm has Q(0) < 0: the slowest rate (-Q(0)) lam_min / n converges it by t = 2.5); the n >= d arm (n = d + 5,
    flow to ``n_ge_d_time``); the sweep of the distance to
    X^+y over the W_1(0) scale and the width."""

    d: int = 10
    n: int = 5
    h: int = 100
    w1_scale: float = 0.1
    flow_time: float = 2.5
    eta: float = 5e-4
    steps: int = 8000
    records: int = 50
    rate_scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # W_1(0) = 0, W_2(0) = B = c g: -Q(0) = c^2 ||g||^2
    sweep_scales: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)  # std of W_1(0)
    sweep_widths: tuple[int, ...] = (25, 50, 100, 200)
    sweep_time: float = 1.0  # horizon 100 / h: the slowest rate grows like h (converged to ~1e-5 relative)
    n_ge_d_time: float = 10.0  # n = d + 5: the smallest eigenvalue of X^T X / n is ~4x smaller

    @classmethod
    def quick(cls) -> MinNormConfig:
        return cls(steps=500, records=25, sweep_widths=(25, 50))
