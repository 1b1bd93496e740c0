"""falab.laws (issue 15): discovered conservation laws, their completeness certificate, and the `falab laws` command.

Spans are compared, never coefficients: a basis is only defined up to a change of basis.
"""

from __future__ import annotations

import json

import pytest
import torch

from falab.cli import main
from falab.laws import (
    LawDiscoveryError,
    Monomials,
    Polynomials,
    discover,
    in_span,
    span_distance,
)
from falab.laws._field import Field
from falab.models import MLP
from falab.rules import (
    Backprop,
    BatchRandomMagnitudeSignFeedback,
    DirectFeedbackAlignment,
    FAStar,
    FeedbackAlignment,
    UniformSignFeedback,
)

torch.set_num_threads(1)


def _field_of(d, model, rule, seed=0):
    """The Field discover() used (same seed -> same reference weights and feedback)."""
    import math

    g = torch.Generator().manual_seed(seed)
    ref = model.init_params(g, scheme="gaussian", std=[1.0 / math.sqrt(n) for n in model.widths[:-1]])
    state = rule.init(model, ref, generator=g)
    return Field(model, rule, state, ref)


def _unit(f, name, r, c):
    a, _ = f.offsets[name]
    e = torch.zeros(f.D, dtype=torch.float64)
    e[a + r * f.shapes[name][1] + c] = 1.0
    return e


def _gram(f, mon, name, j, k, rows=True):
    """Entry (j, k) of W W^T (rows=True) or W^T W as a coefficient vector."""
    n_out, n_in = f.shapes[name]
    if rows:
        return sum(mon.quadratic(_unit(f, name, j, c), _unit(f, name, k, c)) for c in range(n_in))
    return sum(mon.quadratic(_unit(f, name, p, j), _unit(f, name, p, k)) for p in range(n_out))


def _cross(f, mon, name, fb, j, k):
    """Entry (j, k) of B^T W + W^T B (linear in W)."""
    n_out = f.shapes[name][0]
    return mon.linear(sum(fb[p, j] * _unit(f, name, p, k) + fb[p, k] * _unit(f, name, p, j) for p in range(n_out)))


def _known(d, model, rule, kind):
    """Coefficient vectors of the claims.md §1.9 laws for this rule."""
    f = _field_of(d, model, rule)
    mon = Monomials(f.D, d.monomials)
    h = model.widths[1]
    ents = [(j, k) for j in range(h) for k in range(j, h)] if kind == "matrix" else [(j, j) for j in range(h)]
    if isinstance(rule, Backprop):
        return [_gram(f, mon, "W1", j, k) - _gram(f, mon, "W2", j, k, rows=False) for j, k in ents]
    fb = f.state["B2"] if "B2" in f.state else f.state["D1"]
    return [0.5 * _gram(f, mon, "W1", j, k) - 0.5 * _cross(f, mon, "W2", fb, j, k) for j, k in ents]


@pytest.mark.parametrize(("act", "kind"), [("identity", "matrix"), ("relu", "per-neuron")])
@pytest.mark.parametrize("rule", [Backprop(), FeedbackAlignment(), DirectFeedbackAlignment()], ids=["bp", "fa", "dfa"])
def test_known_laws_found_and_certified(rule, act, kind):
    model = MLP((3, 4, 2), act)
    d = discover(model, rule, verify_flow=False)
    for p in _known(d, model, rule, kind):
        assert in_span(d.basis, p) < 1e-9
    assert d.certificate.complete
    assert d.rank_margin > 6


def test_fa_trace_law_found_and_balancedness_not_conserved():
    model = MLP((3, 4, 2), "relu")
    rule = FeedbackAlignment()
    d = discover(model, rule, verify_flow=False)
    f = _field_of(d, model, rule)
    mon = Monomials(f.D, d.monomials)
    trace_law = sum(_known(d, model, rule, "per-neuron"))
    assert in_span(d.basis, trace_law) < 1e-9
    # 1/2||W1||^2 - 1/2||W2||^2 is GD's law, not FA's
    bal = sum(0.5 * _gram(f, mon, "W1", j, j) - 0.5 * _gram(f, mon, "W2", j, j, rows=False) for j in range(4))
    assert in_span(d.basis, bal) > 0.1


def test_tanh_has_no_quadratic_law():
    for rule in (Backprop(), FeedbackAlignment()):
        d = discover(MLP((3, 4, 2), "tanh"), rule, verify_flow=False)
        assert d.n_laws == 0 and d.certificate.bound == 0 and d.certificate.complete


def test_flow_verifies_laws_linear_fa():
    d = discover(MLP((3, 4, 2), "identity"), FeedbackAlignment())
    assert d.flow_drift is not None and d.flow_drift <= 1e-10
    kinds = {r.kind for r in d.readable}
    assert {"linear", "matrix"} <= kinds


def test_dense_and_structured_spans_identical():
    for act, rule in (("identity", FeedbackAlignment()), ("relu", Backprop()), ("identity", DirectFeedbackAlignment())):
        model = MLP((3, 3, 3, 2) if isinstance(rule, DirectFeedbackAlignment) else (3, 4, 2), act)
        s = discover(model, rule, verify_flow=False)
        dd = discover(model, rule, structured=False, verify_flow=False)
        assert s.torus != dd.torus
        assert span_distance(s.basis, dd.basis) < 1e-8


@pytest.mark.parametrize("act", ["identity", "relu"])
def test_counts_and_certificate_identical_over_seeds(act):
    got = set()
    for seed in (0, 1, 2):
        d = discover(MLP((3, 4, 2), act), FeedbackAlignment(), seed=seed, verify_flow=False)
        c = d.certificate
        got.add((d.n_laws, c.independent, c.bound, c.complete, tuple(r.kind for r in d.readable)))
    assert len(got) == 1


def test_too_few_samples_is_an_error():
    from falab._checks import FalabInputError

    with pytest.raises(FalabInputError, match="Invalid n_samples"):
        discover(MLP((3, 4, 2), "identity"), FeedbackAlignment(), n_samples=10, verify_flow=False)


def test_degenerate_sample_set_detected():
    with pytest.raises(LawDiscoveryError, match="rank deficient"):
        discover(MLP((3, 4, 2), "identity"), FeedbackAlignment(), distinct_points=1, verify_flow=False)


def test_bad_rule_and_function_class():
    from falab._checks import FalabInputError

    with pytest.raises(FalabInputError, match="Invalid rule.feedback"):
        discover(MLP((3, 4, 2), "relu"), FeedbackAlignment(BatchRandomMagnitudeSignFeedback()))
    with pytest.raises(FalabInputError, match="Invalid function_class"):
        discover(MLP((3, 4, 2), "relu"), FeedbackAlignment(), function_class="fourier")
    with pytest.raises(FalabInputError, match="Invalid function_class.degree"):
        Polynomials(degree=0)


def _cli(tmp_path, text, capsys):
    cfg = tmp_path / "atlas.yaml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["laws", str(cfg), "--out", str(tmp_path / "out")])
    return exc.value.code, capsys.readouterr()


@pytest.mark.parametrize(("text", "needle"), [
    ("rules: [brsf]\nwidths: [[3, 4, 2]]\n", "Invalid rule.feedback"),
    ("rules: [fa]\nfunction_class: {kind: fourier}\n", "Invalid function_class.kind"),
    ("rules: [sgd]\n", "Invalid rule"),
    ("rules: [fa]\nwidths: [[3]]\n", "Invalid widths"),
    ("rule: [fa]\n", "Invalid config key"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, text, needle):
    code, cap = _cli(tmp_path, text, capsys)
    assert code == 2
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("error: Invalid")


def test_cli_missing_config_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["laws", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "Invalid config" in err[0]


def test_cli_writes_report(tmp_path, capsys):
    code, cap = _cli(tmp_path, "rules: [fa, bp]\nactivations: [identity]\nwidths: [[3, 4, 2]]\n", capsys)
    assert code in (0, None)
    data = json.loads((tmp_path / "out" / "laws.json").read_text())
    assert [e["complete"] for e in data["entries"]] == [True, True]
    md = (tmp_path / "out" / "laws.md").read_text()
    assert "## fa × identity × (3, 4, 2)" in md and "(B^T W2 + W2^T B) with B = B2" in md


def test_dfa_last_pair_and_linear_pair_laws():
    # relu DFA, three layers: the last pair's law (claims.md §1.9), per neuron; none at the first pair
    model = MLP((3, 3, 3, 2), "relu")
    rule = DirectFeedbackAlignment()
    d = discover(model, rule, verify_flow=False)
    f = _field_of(d, model, rule)
    mon = Monomials(f.D, d.monomials)
    d2t = f.state["D2"]  # D_2^T, W_3's shape
    last = sum(0.5 * _gram(f, mon, "W2", j, j) - 0.5 * _cross(f, mon, "W3", d2t, j, j) for j in range(3))
    assert in_span(d.basis, last) < 1e-9
    assert [r.kind for r in d.readable] == ["per-neuron"] and "layer 2" in d.readable[0].text
    # linear DFA: the pair (1, 2) law with B = (D_2^+)^T D_1^T (claims.md §1.9), trace form
    lin = MLP((3, 3, 3, 2), "identity")
    d = discover(lin, rule, verify_flow=False)
    f = _field_of(d, lin, rule)
    mon = Monomials(f.D, d.monomials)
    b = torch.linalg.pinv(f.state["D2"].T).T @ f.state["D1"]
    pair = sum(0.5 * _gram(f, mon, "W1", j, j) - 0.5 * _cross(f, mon, "W2", b, j, j) for j in range(3))
    assert in_span(d.basis, pair) < 1e-9
    assert d.certificate.complete


def test_fa_star_identity_and_deep_fa_matrix_laws():
    # FA* (P004 Fact 3): Z^T Z = W1 W1^T is conserved (the last layer is slaved, not a coordinate)
    model = MLP((4, 2, 3), "identity")
    d = discover(model, FAStar(), verify_flow=True)
    f = _field_of(d, model, FAStar())
    mon = Monomials(f.D, d.monomials)
    assert f.names == ["W1"]
    for j, k in ((0, 0), (0, 1), (1, 1)):
        assert in_span(d.basis, _gram(f, mon, "W1", j, k)) < 1e-9
    assert d.certificate.complete and d.flow_drift <= 1e-10
    assert any(r.kind == "matrix" and r.known for r in d.readable)
    # three-layer linear FA: the matrix law at both hidden layers
    d = discover(MLP((3, 3, 3, 2), "identity"), FeedbackAlignment())
    kinds = [(r.kind, r.text.split(":")[0]) for r in d.readable]
    assert ("matrix", "layer 1") in kinds and ("matrix", "layer 2") in kinds
    assert d.certificate.complete and d.flow_drift <= 1e-10


def test_sign_symmetry_within_its_orthant():
    d = discover(MLP((3, 3, 2), "relu"), FeedbackAlignment(UniformSignFeedback()))
    assert d.n_laws == 3 and d.certificate.complete
    law = d.readable[0]
    assert law.kind == "per-neuron" and not law.known  # sign symmetry: not stated in the seeds
    assert "sign orthant" in d.certificate.assumptions


def test_degree_three_on_request():
    d = discover(MLP((2, 3, 1), "relu"), FeedbackAlignment(), Polynomials(degree=3), verify_flow=False)
    d2 = discover(MLP((2, 3, 1), "relu"), FeedbackAlignment(), verify_flow=False)
    # the degree-3 space contains the degree-2 one; the number of independent laws does not change
    assert d.n_laws >= d2.n_laws and d.certificate.independent == d2.certificate.independent


@pytest.mark.slow
def test_scaling_d220_within_a_minute():
    import time

    t = time.perf_counter()
    d = discover(MLP((10, 10, 10, 2), "relu"), FeedbackAlignment(), verify_flow=False, readable=False)
    assert time.perf_counter() - t < 60
    assert d.D == 220 and d.n_laws == 20 and d.certificate.complete


def test_mixed_activations_only_the_homogeneous_layer_conserves():
    # claims.md §1.9: only the activation of layer i matters; tanh at layer 1, ReLU at layer 2
    model = MLP((3, 3, 3, 2), ("tanh", "relu"))
    s = discover(model, FeedbackAlignment(), verify_flow=False)
    d = discover(model, FeedbackAlignment(), structured=False, verify_flow=False)
    assert s.torus == "neuron (homogeneous layers)" and span_distance(s.basis, d.basis) < 1e-8
    assert [r.text.split(":")[0] for r in s.readable] == ["layer 2"] and s.certificate.complete
