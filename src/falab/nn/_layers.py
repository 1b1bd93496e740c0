r"""Drop-in ``torch.nn`` layers for feedback alignment (FA), sign symmetry (uSF/frSF/brSF) and direct FA (DFA).

Each layer is a subclass of ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` whose forward is unchanged and whose backward
is a ``torch.autograd.Function`` that calls the kernels of :mod:`falab.functional` — the same kernels as the functional
rules (:func:`~falab.functional.linear_backward`, :func:`~falab.functional.feedback_signal`,
:func:`~falab.functional._conv_backward.conv_backward`). No module backward hooks are used.

* FA-type layers (``FALinear``, ``FAConv1d``, ``FAConv2d``): the signal sent to the input is :math:`\delta B` with
  ``B = kind.current(W, stored)`` (claims.md §1.3; Lillicrap et al. 2016): a fixed matrix for FA, ``s sign(W)`` for uSF,
  ``|R| sign(W)`` for frSF/brSF (:mod:`falab.rules._sign_symmetry`). The weight update is the local
  :math:`G = \delta^T A`.
* DFA layers (``DFALinear``, ``DFAConv1d``, ``DFAConv2d``, Nøkland 2016): the signal sent to the input is the network's
  output error ``e`` through a fixed matrix, :math:`S = e D` with ``D`` stored as in the functional route (shape
  ``(n_L, n_in)``, i.e. ``D_l^T`` for the layer above ``l``). ``e`` reaches the layers through an explicit
  :class:`ErrorBroadcast` placed at the network output, so ``loss.backward()`` works unchanged.

Feedback is a buffer (``state_dict``, ``.to()``; never in ``parameters()``). Conv kernels are flattened to matrices
``(C_out, C_in/groups * k...)`` when feedback kinds draw or compute them, so every kind serves every layer type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import FalabInputError, check_tensor_shape, invalid
from ..functional import feedback_signal, linear_backward
from ..functional._conv_backward import conv_backward
from ..rules import AbstractFeedback, ScaledLikeWeight, step_generator

__all__ = [
    "ErrorBroadcast", "FALinear", "FAConv1d", "FAConv2d", "DFALinear", "DFAConv1d", "DFAConv2d", "FeedbackLayer",
    "exact_backprop",
]


def _as_matrix(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def _draw(kind: AbstractFeedback, like: Tensor, generator: torch.Generator) -> Tensor:
    """``kind.init`` on the matrix view of ``like``; stored in ``like``'s kernel shape when the kind stores a full
    matrix (scalar-scale kinds store ``(1, 1)``)."""
    if like.is_meta:  # convert() builds layers on the meta device and adopts the original weights afterwards
        return torch.empty(like.shape, dtype=like.dtype, device="meta")
    m = _as_matrix(like.detach()).to(torch.float64)
    stored = kind.init(m.cpu(), generator=generator)
    if stored.shape == m.shape:
        stored = stored.reshape(like.shape)
    return stored.to(dtype=like.dtype, device=like.device)


class _Book:
    """Per-layer bookkeeping written in the backward pass. A plain object, because ``nn.Module.__setattr__`` is slow
    enough to show in step times of small networks."""

    __slots__ = ("exact", "sends_signal", "last_feedback", "seed", "step")

    def __init__(self) -> None:
        self.exact = False  # twin-network mode: use W itself (exact backprop) for the instruments
        self.sends_signal: bool | None = None
        self.last_feedback: Tensor | None = None
        # per-step feedback kinds (brSF): the draw of backward pass k comes from step_generator(seed, k), the
        # layer's share of the rule state (as 'B<l>:seed' and 'step' in the functional route)
        self.seed = 0
        self.step = 0


if TYPE_CHECKING:  # FeedbackLayer is only ever mixed into nn.Linear / nn.Conv1d / nn.Conv2d: type it as a module
    _ModuleBase = nn.Module
else:
    _ModuleBase = object


class FeedbackLayer(_ModuleBase):
    """Mixin of every falab layer: the feedback buffer, the kind that turns it into the matrix used, and bookkeeping
    for the instruments (which matrix was used last, whether this layer sends a signal to its input at all)."""

    weight: Tensor  # from the nn.Linear / nn.Conv* it is mixed into
    feedback: Tensor
    feedback_kind: AbstractFeedback
    rule_name: str
    _book: _Book
    _fixed: bool
    _generator: torch.Generator

    def set_feedback(self, matrix: Tensor) -> None:
        """Replace the stored feedback matrix by ``matrix`` (copied in place, so optimisers and hooks keep the buffer),
        which must have the stored buffer's shape: ``Invalid FALinear.feedback shape: (15, 30) (expected (30, 15), ...)``
        instead of a bare matmul error in the backward pass."""
        check_tensor_shape(f"{type(self).__name__}.feedback", matrix, tuple(self.feedback.shape),
                           "the shape of the stored feedback", leading=False)
        with torch.no_grad():
            self.feedback.copy_(matrix)

    def _init_bookkeeping(self, kind: AbstractFeedback, rule_name: str, generator: torch.Generator | None) -> None:
        self.feedback_kind = kind
        self.rule_name = rule_name
        self._book = _Book()
        self._fixed = kind.fixed
        self._generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if kind.per_step:  # the seed of the per-step draws, from the layer's generator (as the rule's init does)
            self._book.seed = int(torch.randint(0, 2**62, (), generator=self._generator, dtype=torch.int64))

    @property
    def feedback_seed(self) -> int:
        """The seed of a per-step kind's draws (brSF); backward pass ``k`` uses ``step_generator(seed, k)``."""
        return self._book.seed

    @property
    def feedback_step(self) -> int:
        """How many backward passes a per-step kind has drawn for (the step counter of its state)."""
        return self._book.step

    def set_feedback_state(self, seed: int, step: int = 0) -> None:
        """Set a per-step kind's seed and step counter (e.g. to the functional route's ``'B<l>:seed'``, ``'step'``)."""
        self._book.seed, self._book.step = int(seed), int(step)

    @property
    def _exact(self) -> bool:
        return self._book.exact

    @property
    def _sends_signal(self) -> bool | None:
        return self._book.sends_signal

    @property
    def _last_feedback(self) -> Tensor | None:
        return self._book.last_feedback

    def feedback_matrix(self) -> Tensor:
        """The matrix used (or to be used) in place of ``W`` in the backward pass, in ``W``'s shape."""
        raise NotImplementedError

    def set_broadcast(self, broadcast: ErrorBroadcast) -> None:
        """Give a DFA layer its error broadcast (kept out of ``_modules``: one broadcast serves many layers)."""
        self.__dict__["broadcast"] = broadcast


def _kind_current(layer: Any, weight: Tensor, stored: Tensor, step: int) -> Tensor:
    """The feedback of backward pass ``step``: ``kind.current`` on matrix views (with the step's generator for
    per-step kinds), reshaped to the kernel shape."""
    if layer._fixed:
        return stored
    kind = layer.feedback_kind
    gen = step_generator(layer._book.seed, step) if kind.per_step else None
    b = kind.current(_as_matrix(weight), _as_matrix(stored), generator=gen)
    return b.reshape(weight.shape)


def _used_feedback(layer: Any) -> Tensor:
    """What the instruments should measure: for a per-step kind the matrix of the last backward pass (before any, the
    one the next pass will use), otherwise ``kind.current`` at the present weight."""
    book = layer._book
    if layer.feedback_kind.per_step and book.last_feedback is not None:
        return book.last_feedback
    return _kind_current(layer, layer.weight.detach(), layer.feedback, book.step)


# --------------------------------------------------------------------------------------------------------------- FA


def _feedback_for_backward(layer: Any, weight: Tensor, stored: Tensor, need_x: bool) -> Tensor | None:
    """The matrix the backward pass sends the signal through: ``W`` in exact mode, else the rule's current feedback
    (recorded when it tracks ``W``, so metrics measure the feedback actually used); ``None`` when no signal is needed."""
    book = layer._book
    book.sends_signal = need_x
    step = book.step
    if layer.feedback_kind.per_step:
        book.step = step + 1  # one step per backward pass, whether or not this layer sends a signal
    if not need_x:
        return None
    if book.exact:
        return weight
    fb = _kind_current(layer, weight, stored, step)
    if not layer._fixed:
        book.last_feedback = fb
    return fb


class _FALinearFunction(torch.autograd.Function):
    """``H = A W^T + b``; backward sends ``delta F`` down with ``F = kind.current(W, stored)`` (``W`` in exact mode)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stored: Tensor, layer: Any) -> Tensor:
        ctx.layer = layer
        ctx.save_for_backward(x, weight, stored)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, stored = ctx.saved_tensors
        layer = ctx.layer
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        fb = _feedback_for_backward(layer, weight, stored, need_x)
        # Leading dims (sequences, images of tokens) are samples: flatten them, as the functional route's N.
        if x.dim() == 2:  # no reshape views for the common 2-D case: they cost ~2 us each per backward call
            signal, gw, gb = linear_backward(grad_out, x, fb, with_bias=need_b)
            return signal, gw if need_w else None, gb, None, None
        d2 = grad_out.reshape(-1, grad_out.shape[-1])
        a2 = x.reshape(-1, x.shape[-1])
        signal, gw, gb = linear_backward(d2, a2, fb, with_bias=need_b)
        return (None if signal is None else signal.reshape(x.shape), gw if need_w else None, gb, None, None)


def _conv_opts(layer: Any) -> dict[str, Any]:
    return layer._opts


class _FAConvFunction(torch.autograd.Function):
    """``H = conv(A, W) + b``; backward sends ``conv^T(delta, F)`` down (``falab.functional._conv_backward``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stored: Tensor, layer: Any) -> Tensor:
        ctx.layer = layer
        ctx.save_for_backward(x, weight, stored)
        fn = F.conv1d if x.dim() == 3 else F.conv2d
        return fn(x, weight, bias, *layer._opts_pos)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, stored = ctx.saved_tensors
        layer = ctx.layer
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        fb = _feedback_for_backward(layer, weight, stored, need_x)
        signal, gw, gb = conv_backward(grad_out, x, fb, weight.shape, with_bias=need_b, need_weight=need_w,
                                       placeholder=weight, **_conv_opts(layer))
        return signal, gw, gb, None, None


# -------------------------------------------------------------------------------------------------------------- DFA


class _CaptureError(torch.autograd.Function):
    """Identity; its backward records ``dL/d(output)`` (the output error ``e``) in the broadcast."""

    @staticmethod
    def forward(ctx: Any, output: Tensor, broadcast: ErrorBroadcast, generation: int) -> Tensor:
        ctx.broadcast, ctx.generation = broadcast, generation
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        ctx.broadcast._errors[ctx.generation] = grad
        return grad, None, None


class ErrorBroadcast(nn.Module):
    r"""The explicit channel through which DFA layers receive the network's output error :math:`e = \partial L/\partial f`.

    Apply it to the network output (``out = broadcast(model(x))``) or let it wrap a model's output with
    :meth:`attach` (a forward hook; :func:`falab.nn.convert` does this). It is the identity in the forward pass; in the
    backward pass it stores ``e`` for the forward pass it belongs to (a generation counter), so DFA layers never read
    the error of another batch, and a missing broadcast is an error, not a silent fallback.
    """

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0
        self._errors: dict[int, Tensor] = {}

    def forward(self, output: Tensor) -> Tensor:
        if not torch.is_tensor(output):
            raise invalid("model output", type(output).__name__, "a tensor (DFA broadcasts the error of one output)")
        self.generation += 1
        for g in [g for g in self._errors if g < self.generation - 4]:  # keep a few for gradient accumulation
            del self._errors[g]
        if not (torch.is_grad_enabled() and output.requires_grad):
            return output
        return _CaptureError.apply(output, self, self.generation)

    def error(self, generation: int) -> Tensor:
        """The output error of forward pass ``generation`` (raises if that backward has not reached the output)."""
        e = self._errors.get(generation)
        if e is None:
            raise FalabInputError(
                "Invalid DFA backward: no output error for this forward pass (expected the network output to pass "
                "through the ErrorBroadcast given to the DFA layers: out = broadcast(model(x)) or broadcast.attach(model))"
            )
        return e

    def attach(self, model: nn.Module) -> torch.utils.hooks.RemovableHandle:
        """Route ``model``'s output through this broadcast (a forward hook, removable with ``handle.remove()``)."""
        return model.register_forward_hook(_BroadcastHook(self))


class _BroadcastHook:
    """The forward hook of :meth:`ErrorBroadcast.attach`: an object rather than a closure, so that ``copy.deepcopy``
    and ``pickle`` of the model keep the hook and the DFA layers pointing at the same (copied) broadcast."""

    def __init__(self, broadcast: ErrorBroadcast) -> None:
        self.broadcast = broadcast

    def __call__(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        return self.broadcast(output)


def _direct_signal(layer: Any, generation: int, x: Tensor) -> Tensor:
    """DFA's signal to the layer input ``x``, :math:`S = e D` (``feedback_signal``), in ``x``'s shape."""
    e = layer.broadcast.error(generation)
    d = layer.feedback
    e2 = e if e.dim() == 2 else e.reshape(-1, e.shape[-1])
    if (e.dim() == 2 and x.dim() > 2 and x.shape[0] == e.shape[0] and x.shape[-1] == d.shape[1]
            and e2.shape[0] * d.shape[1] != x.numel()):
        # tokens of a per-sample output (a pooled sequence classifier): every token of sample n receives e_n D
        # (Launay et al. 2020 broadcast the error to every position), batch dimension first
        s = feedback_signal(e2.to(x.dtype), d)
        return s.reshape(s.shape[0], *([1] * (x.dim() - 2)), s.shape[1]).expand(x.shape)
    if e2.shape[1] != d.shape[0] or e2.shape[0] * d.shape[1] != x.numel():
        raise FalabInputError(
            f"Invalid DFA feedback shape: {tuple(d.shape)} for output error {tuple(e.shape)} and layer input "
            f"{tuple(x.shape)} (expected (n_out, features) with the error's leading dims equal to the input's)"
        )
    if e2.dtype != x.dtype:
        e2 = e2.to(x.dtype)
    signal = feedback_signal(e2, d)
    return signal if x.dim() == 2 else signal.reshape(x.shape)


class _DFALinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, d: Tensor, layer: Any) -> Tensor:
        ctx.layer, ctx.generation = layer, layer.broadcast.generation + 1 if layer.broadcast is not None else -1
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        layer._book.sends_signal = need_x
        flat = x.dim() != 2  # no reshape views for the common 2-D case
        d2 = grad_out.reshape(-1, grad_out.shape[-1]) if flat else grad_out
        a2 = x.reshape(-1, x.shape[-1]) if flat else x
        fb = weight if (need_x and layer._book.exact) else None
        signal, gw, gb = linear_backward(d2, a2, fb, with_bias=need_b)
        if signal is not None:
            if flat:
                signal = signal.reshape(x.shape)
        elif need_x:
            signal = _direct_signal(layer, ctx.generation, x)
        return signal, gw if need_w else None, gb, None, None


class _DFAConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, d: Tensor, layer: Any) -> Tensor:
        ctx.layer, ctx.generation = layer, layer.broadcast.generation + 1 if layer.broadcast is not None else -1
        ctx.save_for_backward(x, weight)
        fn = F.conv1d if x.dim() == 3 else F.conv2d
        return fn(x, weight, bias, *layer._opts_pos)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        layer._book.sends_signal = need_x
        fb = weight if (need_x and layer._book.exact) else None
        signal, gw, gb = conv_backward(grad_out, x, fb, weight.shape, with_bias=need_b, need_weight=need_w,
                                       placeholder=weight, **_conv_opts(layer))
        if signal is None and need_x:
            signal = _direct_signal(layer, ctx.generation, x)
        return signal, gw, gb, None, None


# ------------------------------------------------------------------------------------------------------------ layers


class _LinearBase(FeedbackLayer, nn.Linear):
    def _setup(self, kind: AbstractFeedback | None, generator: torch.Generator | None, rule_name: str) -> None:
        kind = ScaledLikeWeight() if kind is None else kind
        if not isinstance(kind, AbstractFeedback):
            raise invalid("feedback", type(kind).__name__, "an AbstractFeedback (ScaledLikeWeight, Gaussian, ...)")
        self._init_bookkeeping(kind, rule_name, generator)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, feedback={self.feedback_kind!r}"


class FALinear(_LinearBase):
    r"""``nn.Linear`` trained by feedback alignment or sign symmetry: the input receives :math:`\delta B`.

    .. math:: H = A W^T + b,\qquad S = \delta\,B,\qquad G_W = \delta^T A,\qquad g_b = \textstyle\sum\delta

    (claims.md §1.3, Lillicrap et al. 2016; :func:`falab.functional.linear_backward`). ``B = feedback.current(W, stored)``:
    the stored matrix for FA kinds, ``s sign(W)`` / ``|R| sign(W)`` for the sign-symmetry kinds. Inputs may have any
    leading shape ``(..., in_features)``.

    Args:
        in_features: as ``nn.Linear`` (so are ``out_features``, ``bias``, ``device`` and ``dtype``).
        feedback: the feedback kind (default :class:`~falab.rules.ScaledLikeWeight`: Gaussian with ``||B|| = ||W||``).
        generator: random source for drawing ``B`` (default: a generator seeded with 0).

    Examples:
        >>> layer = FALinear(4, 3)
        >>> sorted(name for name, _ in layer.named_buffers()), len(list(layer.parameters()))
        (['feedback'], 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, feedback: AbstractFeedback | None = None,
                 generator: torch.Generator | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._setup(feedback, generator, "fa")
        self.register_buffer("feedback", _draw(self.feedback_kind, self.weight, self._generator))

    def forward(self, x: Tensor) -> Tensor:
        return _FALinearFunction.apply(x, self.weight, self.bias, self.feedback, self)

    def feedback_matrix(self) -> Tensor:
        return _used_feedback(self)


class DFALinear(_LinearBase):
    r"""``nn.Linear`` trained by direct feedback alignment: the input receives the output error, :math:`S = e D`.

    .. math:: H = A W^T + b,\qquad S = e\,D\ (D \in \mathbb{R}^{n_L\times n_{in}}),\qquad G_W = \delta^T A

    (Nøkland 2016; claims.md §1.3): with ``S`` arriving at ``A_l`` the activation below turns it into
    :math:`\delta_l = \phi'(H_l)\odot(e D_l^T)` exactly as :func:`falab.functional.direct_backward`. ``D`` is the
    functional route's ``D_l^T`` for the layer below (state key ``'D{l}'`` for this layer ``l + 1``).

    Args:
        output_dim: ``n_L``, the width of the network output (default: ``out_features``, i.e. the output layer).
        broadcast: the :class:`ErrorBroadcast` at the network output (may be set later: ``layer.broadcast = b``).
        feedback: how ``D`` is drawn; the default draws ``N(0, s^2)`` with ``s`` the RMS of this layer's weight.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, output_dim: int | None = None,
                 broadcast: ErrorBroadcast | None = None, feedback: AbstractFeedback | None = None,
                 generator: torch.Generator | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._setup(feedback, generator, "dfa")
        self.output_dim = out_features if output_dim is None else int(output_dim)
        self.__dict__["broadcast"] = broadcast  # not a submodule: one broadcast serves the whole network
        self.register_buffer("feedback", _draw_direct(self, (self.output_dim, in_features)))

    def forward(self, x: Tensor) -> Tensor:
        if self.broadcast is None and torch.is_grad_enabled():
            raise invalid("DFALinear.broadcast", None, "an ErrorBroadcast at the network output (see falab.nn.convert)")
        return _DFALinearFunction.apply(x, self.weight, self.bias, self.feedback, self)

    def feedback_matrix(self) -> Tensor:
        return self.feedback


def _draw_direct(layer: Any, shape: tuple[int, ...]) -> Tensor:
    """Draw DFA's ``D`` of ``shape``: a matrix of that shape with the RMS of the layer's forward weight
    (``ScaledLikeWeight``), or the user's kind applied to such a matrix."""
    kind = layer.feedback_kind
    if not kind.fixed or type(kind).__name__ == "CopyOfWeight":
        raise invalid("DFA feedback", type(kind).__name__, "a random fixed kind (ScaledLikeWeight, Gaussian, Uniform): "
                      "D maps the output error to this layer's input and has no forward weight to copy or sign")
    w = layer.weight.detach()
    if w.is_meta:
        return torch.empty(shape, dtype=w.dtype, device="meta")
    rms = torch.sqrt((w.to(torch.float64) ** 2).mean()) if w.numel() else torch.tensor(1.0, dtype=torch.float64)
    like = torch.full(shape, float(rms) if float(rms) > 0 else 1.0 / max(shape[1], 1) ** 0.5, dtype=torch.float64)
    d = layer.feedback_kind.init(like, generator=layer._generator)
    return d.to(dtype=w.dtype, device=w.device)


class _ConvMixin:
    """Shared conv plumbing: resolve padding ('same', padding modes) once, flatten extra leading dims."""

    _spatial: int

    def _setup_conv(self) -> None:
        conv: Any = self
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                conv._eff_padding = (0,) * self._spatial
                conv._pre_pad = None
            else:  # 'same': pad explicitly (possibly asymmetric, as torch does), then convolve without padding
                pads: list[int] = []
                for d, k in zip(reversed(conv.dilation), reversed(conv.kernel_size)):
                    total = d * (k - 1)
                    pads += [total // 2, total - total // 2]
                conv._eff_padding = (0,) * self._spatial
                conv._pre_pad = pads
        elif conv.padding_mode != "zeros":
            conv._eff_padding = (0,) * self._spatial
            conv._pre_pad = list(conv._reversed_padding_repeated_twice)
        else:
            conv._eff_padding = tuple(conv.padding)
            conv._pre_pad = None
        conv._opts = {"stride": tuple(conv.stride), "padding": tuple(conv._eff_padding),
                      "dilation": tuple(conv.dilation), "groups": conv.groups}
        conv._opts_pos = tuple(conv._opts.values())

    def _plain_input(self, x: Tensor) -> bool:
        """A batched input that needs no explicit padding (the common case: no reshape, no pad, no extra calls)."""
        return self._pre_pad is None and x.dim() == self._spatial + 2  # type: ignore[attr-defined]

    def _prepare(self, x: Tensor) -> tuple[Tensor, tuple[int, ...] | None]:
        conv: Any = self
        nd = self._spatial + 1
        lead = None
        if x.dim() != nd + 1:  # unbatched or extra leading dims: flatten them into one batch dim
            if x.dim() < nd:
                raise invalid("input shape", tuple(x.shape), f"(..., C, {'L' if nd == 2 else 'H, W'})")
            lead = tuple(x.shape[:-nd])
            x = x.reshape(-1, *x.shape[-nd:])
        if conv._pre_pad is not None:
            mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
            x = F.pad(x, conv._pre_pad, mode=mode)
        return x, lead

    @staticmethod
    def _finish(out: Tensor, lead: tuple[int, ...] | None) -> Tensor:
        return out if lead is None else out.reshape(*lead, *out.shape[1:])


def _fa_conv_init(self: Any, kind: AbstractFeedback | None, generator: torch.Generator | None) -> None:
    kind = ScaledLikeWeight() if kind is None else kind
    if not isinstance(kind, AbstractFeedback):
        raise invalid("feedback", type(kind).__name__, "an AbstractFeedback (ScaledLikeWeight, Gaussian, ...)")
    self._init_bookkeeping(kind, "fa", generator)
    self._setup_conv()


class _FAConvBase(FeedbackLayer, _ConvMixin):
    def forward(self, x: Tensor) -> Tensor:
        if self._plain_input(x):
            return _FAConvFunction.apply(x, self.weight, self.bias, self.feedback, self)
        x2, lead = self._prepare(x)
        return self._finish(_FAConvFunction.apply(x2, self.weight, self.bias, self.feedback, self), lead)

    def feedback_matrix(self) -> Tensor:
        return _used_feedback(self)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, feedback={self.feedback_kind!r}"


class FAConv1d(_FAConvBase, nn.Conv1d):
    r"""``nn.Conv1d`` trained by FA / sign symmetry: the input receives :math:`\mathrm{conv}^T(\delta, B)`.

    Backward = :func:`falab.functional._conv_backward.conv_backward` (``torch.nn.grad.conv1d_input`` with ``B``,
    ``conv1d_weight`` for the local update). Inputs ``(..., C, L)``; every padding mode. Feedback kinds act on the
    kernel viewed as a ``(C_out, C_in/groups * k)`` matrix. Extra keyword arguments: ``feedback``, ``generator``.
    """

    _spatial = 1

    def __init__(self, *args: Any, feedback: AbstractFeedback | None = None, generator: torch.Generator | None = None,
                 **kwargs: Any) -> None:
        nn.Conv1d.__init__(self, *args, **kwargs)
        _fa_conv_init(self, feedback, generator)
        self.register_buffer("feedback", _draw(self.feedback_kind, self.weight, self._generator))


class FAConv2d(_FAConvBase, nn.Conv2d):
    r"""``nn.Conv2d`` trained by FA / sign symmetry (see :class:`FAConv1d`; inputs ``(..., C, H, W)``)."""

    _spatial = 2

    def __init__(self, *args: Any, feedback: AbstractFeedback | None = None, generator: torch.Generator | None = None,
                 **kwargs: Any) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        _fa_conv_init(self, feedback, generator)
        self.register_buffer("feedback", _draw(self.feedback_kind, self.weight, self._generator))


class _DFAConvBase(FeedbackLayer, _ConvMixin):
    """DFA convolution: ``D`` has shape ``(n_L, C_in * spatial_in)``, known at the first forward pass (then drawn
    from the layer's own generator, so the draw does not depend on what else consumed random numbers)."""

    output_dim: int
    broadcast: ErrorBroadcast | None  # kept in __dict__, not a submodule (see FeedbackLayer.set_broadcast)

    def _setup_dfa(self, output_dim: int, broadcast: ErrorBroadcast | None, kind: AbstractFeedback | None,
                   generator: torch.Generator | None) -> None:
        _fa_conv_init(self, kind, generator)
        self.rule_name = "dfa"
        self.output_dim = int(output_dim)
        self.__dict__["broadcast"] = broadcast
        self.register_buffer("feedback", torch.empty(0, dtype=self.weight.dtype, device=self.weight.device))

    def _materialise(self, x: Tensor) -> None:
        features = 1
        for s in x.shape[1:]:
            features *= s
        if self.feedback.numel() == 0:
            self.feedback = _draw_direct(self, (self.output_dim, features))
        elif self.feedback.shape[1] != features:
            raise invalid("input shape", tuple(x.shape),
                          f"inputs with {self.feedback.shape[1]} features per sample (the shape D was drawn for)")

    def forward(self, x: Tensor) -> Tensor:
        if self.broadcast is None and torch.is_grad_enabled():
            raise invalid(f"{type(self).__name__}.broadcast", None, "an ErrorBroadcast at the network output")
        x2, lead = self._prepare(x)
        self._materialise(x2)
        return self._finish(_DFAConvFunction.apply(x2, self.weight, self.bias, self.feedback, self), lead)

    def feedback_matrix(self) -> Tensor:
        return self.feedback

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        key = prefix + "feedback"
        if key in state_dict and self.feedback.shape != state_dict[key].shape and self.feedback.numel() == 0:
            self.feedback = torch.empty_like(state_dict[key], device=self.weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output_dim={self.output_dim}, feedback={self.feedback_kind!r}"


class DFAConv1d(_DFAConvBase, nn.Conv1d):
    r"""``nn.Conv1d`` trained by DFA: the input receives :math:`e D` reshaped to ``(N, C, L)`` (see :class:`DFALinear`).

    Extra keyword arguments: ``output_dim`` (required), ``broadcast``, ``feedback``, ``generator``.
    """

    _spatial = 1

    def __init__(self, *args: Any, output_dim: int, broadcast: ErrorBroadcast | None = None,
                 feedback: AbstractFeedback | None = None, generator: torch.Generator | None = None,
                 **kwargs: Any) -> None:
        nn.Conv1d.__init__(self, *args, **kwargs)
        self._setup_dfa(output_dim, broadcast, feedback, generator)


class DFAConv2d(_DFAConvBase, nn.Conv2d):
    r"""``nn.Conv2d`` trained by DFA (see :class:`DFAConv1d`)."""

    _spatial = 2

    def __init__(self, *args: Any, output_dim: int, broadcast: ErrorBroadcast | None = None,
                 feedback: AbstractFeedback | None = None, generator: torch.Generator | None = None,
                 **kwargs: Any) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._setup_dfa(output_dim, broadcast, feedback, generator)


@contextlib.contextmanager
def exact_backprop(model: nn.Module) -> Iterator[nn.Module]:
    """Inside this context every falab layer of ``model`` backpropagates through its own weight (``F = W``): the
    model *is* its BP twin at the same weights. Used to measure the angle between a rule's update and the gradient."""
    layers = [m for m in model.modules() if isinstance(m, FeedbackLayer)]
    old = [m._book.exact for m in layers]
    for m in layers:
        m._book.exact = True
    try:
        yield model
    finally:
        for m, o in zip(layers, old):
            m._book.exact = o
