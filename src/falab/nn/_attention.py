r"""Multi-head attention whose projections are falab layers and whose attention product is exact.

:class:`FeedbackMultiheadAttention` replaces an ``nn.MultiheadAttention`` (``convert`` builds it, adopting the same
``Parameter`` objects): the stacked input projection :math:`[Q\,K\,V] = X W_{in}^T + b_{in}` and the output
projection :math:`Y = O W_{out}^T + b_{out}` are FA / sign-symmetry / DFA linears (:mod:`falab.nn._layers`), while

.. math:: O = \mathrm{softmax}\!\big(Q_h K_h^T/\sqrt{d_h} + M\big)\,V_h \quad\text{(per head } h\text{)}

is computed by ``torch.nn.functional.scaled_dot_product_attention`` and differentiated by autograd, exactly as
backprop does: the rules of Lillicrap et al. (2016) and Nøkland (2016) replace the *weight transport* of a layer
(``W^T`` in the backward pass), and the attention product has no weight of its own. This is the construction of
Launay et al. (2020, "Direct feedback alignment scales to modern deep learning tasks and architectures") for
transformers. In self-attention (query, key and value the same tensor) the three projections share their input and
act as one layer of shape ``(3E, E)``; for cross-attention each projection is applied to its own input with its rows of
the stacked weight and feedback.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._layers import DFALinear, FALinear, FeedbackLayer, _DFALinearFunction, _FALinearFunction

__all__ = ["FeedbackMultiheadAttention"]


def _rows(layer: FeedbackLayer, x: Tensor, lo: int, hi: int) -> Tensor:
    """``x W[lo:hi]^T + b[lo:hi]`` through ``layer``'s rule (its feedback rows ``lo:hi`` for FA kinds)."""
    w, b = layer.weight[lo:hi], None if layer.bias is None else layer.bias[lo:hi]  # type: ignore[index]
    if isinstance(layer, DFALinear):
        return _DFALinearFunction.apply(x, w, b, layer.feedback, layer)
    fb = layer.feedback
    stored = fb[lo:hi] if fb.shape == layer.weight.shape else fb
    return _FALinearFunction.apply(x, w, b, stored, layer)


def _additive_mask(attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: int, heads: int, t: int, s: int,
                   dtype: torch.dtype) -> Tensor | None:
    """nn.MultiheadAttention's masks (bool: ``True`` = not attended; float: added) as one additive float mask of shape
    ``(N, H, T, S)`` (or broadcastable), the form ``scaled_dot_product_attention`` takes."""
    out: Tensor | None = None
    if attn_mask is not None:
        m = attn_mask
        if m.dtype == torch.bool:
            m = torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
        m = m.to(dtype)
        out = m.view(n, heads, t, s) if m.dim() == 3 else m.view(1, 1, t, s)
    if key_padding_mask is not None:
        k = key_padding_mask
        if k.dtype == torch.bool:
            k = torch.zeros(k.shape, dtype=dtype, device=k.device).masked_fill(k, float("-inf"))
        k = k.to(dtype).view(n, 1, 1, s)
        out = k if out is None else out + k
    return out


class FeedbackMultiheadAttention(nn.Module):
    """Drop-in replacement of ``nn.MultiheadAttention`` (same call signature and outputs) with falab projections.

    Only the configuration of ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` is supported:
    ``kdim = vdim = embed_dim``, no ``bias_k`` / ``bias_v``, no ``add_zero_attn`` (``convert`` reports other
    configurations and leaves them alone). ``in_proj_weight`` / ``in_proj_bias`` are the adopted parameters (so the
    fast inference path of ``nn.TransformerEncoderLayer``, used without gradients, computes the same forward pass).
    """

    _qkv_same_embed_dim = True
    bias_k = None
    bias_v = None
    add_zero_attn = False

    def __init__(self, source: nn.MultiheadAttention, in_proj: FeedbackLayer, out_proj: FeedbackLayer) -> None:
        super().__init__()
        self.embed_dim = source.embed_dim
        self.num_heads = source.num_heads
        self.head_dim = source.head_dim
        self.dropout = source.dropout
        self.batch_first = source.batch_first
        self.kdim = self.vdim = source.embed_dim
        self.in_proj = in_proj
        self.out_proj = out_proj
        self.train(source.training)

    @property
    def in_proj_weight(self) -> Tensor:
        return self.in_proj.weight

    @property
    def in_proj_bias(self) -> Tensor | None:
        return self.in_proj.bias  # type: ignore[return-value]

    def merge_masks(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, query: Tensor
                    ) -> tuple[Tensor | None, int | None]:
        """As ``nn.MultiheadAttention.merge_masks`` (used by the inference fast path of the transformer layers)."""
        return nn.MultiheadAttention.merge_masks(self, attn_mask, key_padding_mask, query)  # type: ignore[arg-type]

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        same = query is key and key is value
        unbatched = query.dim() == 2
        if unbatched:  # (T, E) -> (1, T, E)
            query, key, value = (z.unsqueeze(0) for z in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # (T, N, E) -> (N, T, E)
            query, key, value = (z.transpose(0, 1) for z in (query, key, value))
        n, t, e = query.shape
        s = key.shape[1]
        if same:
            q, k, v = self.in_proj(query).chunk(3, dim=-1)
        else:
            q = _rows(self.in_proj, query, 0, e)
            k = _rows(self.in_proj, key, e, 2 * e)
            v = _rows(self.in_proj, value, 2 * e, 3 * e)
        h, d = self.num_heads, self.head_dim
        q, k, v = (z.reshape(n, -1, h, d).transpose(1, 2) for z in (q, k, v))  # (N, H, T, d)
        mask = _additive_mask(attn_mask, key_padding_mask, n, h, t, s, q.dtype)
        causal = is_causal and mask is None
        p = self.dropout if self.training else 0.0
        weights: Tensor | None = None
        if need_weights:  # the explicit product, to return the weights (same equation as the fused kernel)
            scores = q @ k.transpose(-2, -1) / d ** 0.5
            if causal:
                scores = scores.masked_fill(torch.ones(t, s, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(-1)
            o = F.dropout(weights, p) @ v if p > 0 else weights @ v
            if average_attn_weights:
                weights = weights.mean(1)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        o = o.transpose(1, 2).reshape(n, t, e)
        y = self.out_proj(o)
        if unbatched:
            y = y.squeeze(0)
            if weights is not None:
                weights = weights.squeeze(0)
        elif not self.batch_first:
            y = y.transpose(0, 1)
        return y, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def attention_unsupported(m: nn.MultiheadAttention) -> str | None:
    """Why ``m`` cannot be converted (``None`` if it can)."""
    if not m._qkv_same_embed_dim:
        return "kdim/vdim differ from embed_dim (separate q/k/v weights): kept native"
    if m.bias_k is not None or m.add_zero_attn:
        return "bias_k/bias_v or add_zero_attn: kept native"
    return None


def make_attention(m: nn.MultiheadAttention, make_linear: Any) -> FeedbackMultiheadAttention:
    """Build the falab attention from ``m``: ``make_linear(nn.Linear)`` turns a linear into its falab version; the
    stacked in-projection is presented to it as an ``nn.Linear`` holding ``m``'s own ``in_proj_weight`` /
    ``in_proj_bias`` Parameters (adopted, not copied)."""
    e = m.embed_dim
    stacked = nn.Linear(e, 3 * e, bias=m.in_proj_bias is not None, device="meta")
    stacked.weight = m.in_proj_weight
    stacked.bias = m.in_proj_bias
    out = nn.Linear(e, e, bias=m.out_proj.bias is not None, device="meta")
    out.weight = m.out_proj.weight
    out.bias = m.out_proj.bias
    stacked.train(m.training)
    out.train(m.training)
    in_proj, out_proj = make_linear(stacked), make_linear(out)
    assert isinstance(in_proj, (FALinear, DFALinear)) and isinstance(out_proj, (FALinear, DFALinear))
    return FeedbackMultiheadAttention(m, in_proj, out_proj)
