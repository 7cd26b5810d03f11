"""Transformer encoder blocks shared by the attention models (SASRec, BERT4Rec, ...).

Tensors in, tensors out. Shapes: ``B`` batch, ``L`` sequence length, ``D`` model width, ``H`` heads.
Padding uses item index 0; ``valid`` is the ``(B, L)`` bool mask of real positions. Right-padded causal models
need no mask at all (``causal=True``: real positions only see earlier, real positions); left-padded or
bidirectional models pass the mask from :func:`attention_mask`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attention_mask(valid: Tensor, *, causal: bool) -> Tensor:
    """``(B, 1, L, L)`` bool mask, true where query ``i`` may attend to key ``j`` (for left-padded input).

    Keys must be real items (and ``j <= i`` when ``causal``). Every query may attend to itself, so padded rows
    never have an empty key set (their outputs are ignored anyway) and softmax never sees only ``-inf``.
    """
    length = valid.shape[1]
    allowed = valid[:, None, None, :]  # (B, 1, 1, L)
    if causal:
        tril = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
        allowed = allowed & tril
    eye = torch.eye(length, dtype=torch.bool, device=valid.device)
    return allowed | eye


def positions_from_start(valid: Tensor) -> Tensor:
    """``(B, L)`` int64 position of each item counted from the first real item (0, 1, ...); 0 on padding.

    Counting from the start of the (left-padded) history makes every output independent of the amount of
    padding, and a prefix of a training window gets the same positions as the same history at inference.
    """
    return (valid.long().cumsum(dim=1) - 1).clamp_min(0)


def positions_from_end(valid: Tensor) -> Tensor:
    """``(B, L)`` int64 position of each token counted from the last real token (0), 1, ...; 0 on padding.

    BERT4Rec's ``[MASK]`` that scores the next item always gets position 0, and left or right padding give the same
    positions."""
    return (valid.flip(1).long().cumsum(dim=1).flip(1) - 1).clamp_min(0)


def normal_init_(module: nn.Module, std: float) -> None:
    """Hugging Face BERT's initialisation of ``module`` in place: every ``nn.Linear`` and ``nn.Embedding``
    weight drawn from N(0, std), ``nn.Linear`` biases zero (LayerNorms keep their ones and zeros)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout drawing one random byte per element (``p`` rounded to a multiple of 1/256).

    Same expectation as ``F.dropout`` but several times faster on CPU, where Bernoulli sampling dominates the
    cost of a small transformer: four mask bytes come from each 32-bit integer of the global torch generator.
    """
    if not training or p <= 0.0:
        return x
    cut = min(255, round(p * 256))
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int32, device=x.device)
    words.random_(-(2**31), 2**31 - 1)
    keep = words.view(torch.uint8)[: x.numel()].view(x.shape) >= cut
    return torch.where(keep, x * (256.0 / (256 - cut)), torch.zeros((), dtype=x.dtype, device=x.device))


class FastDropout(nn.Module):
    """Module form of :func:`fast_dropout`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with fused QKV, computed by ``F.scaled_dot_product_attention``."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.attn_dropout = attn_dropout

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, L, D/H)
        return q, k, v

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """``x``: ``(B, L, D)``; ``mask``: ``(B, 1, L, L)`` bool (true = may attend) or ``None``; ``causal`` adds
        the causal mask (alone it is enough for right-padded sequences). Returns ``(B, L, D)``."""
        b, length, d = x.shape
        q, k, v = self._heads(x)
        p = self.attn_dropout if self.training else 0.0
        if mask is not None and causal:
            mask = mask & torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
            causal = False
        if torch.is_autocast_enabled(x.device.type):  # bf16 flash attention is slower than float32 on CPU
            with torch.autocast(x.device.type, enabled=False):
                y = F.scaled_dot_product_attention(
                    q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=p, is_causal=causal
                )
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(b, length, d))

    def forward_at(self, x: Tensor, query: Tensor) -> Tensor:
        """Output at one position per row only: ``x`` ``(B, L, D)``, ``query`` ``(B,)`` int64 positions; the query
        at position ``t`` attends to keys ``0..t`` (causal, right-padded input). Returns ``(B, 1, D)``, equal to
        ``forward(x, causal=True)[arange(B), query]`` at a fraction of the cost."""
        b, length, d = x.shape
        h = self.num_heads
        # keys and values of every position, the query of one position only (no (B, L, D) query projection)
        kv = F.linear(x, self.qkv.weight[d:], self.qkv.bias[d:]).view(b, length, 2, h, d // h)
        k, v = kv.permute(2, 0, 3, 1, 4)  # each (B, H, L, D/H)
        xq = x[torch.arange(b, device=x.device), query][:, None]  # (B, 1, D)
        q = F.linear(xq, self.qkv.weight[:d], self.qkv.bias[:d]).view(b, 1, h, d // h)
        keys = torch.arange(length, device=x.device)[None, :] <= query[:, None]  # (B, L)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=keys[:, None, None, :])
        return self.out(y.transpose(1, 2).reshape(b, 1, d))

    def weights(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """Explicit ``(B, H, L, L)`` attention probabilities (the same numbers ``forward`` uses, no dropout)."""
        q, k, _ = self._heads(x)
        length = x.shape[1]
        scores = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        if causal:
            tril = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
            mask = tril if mask is None else mask & tril
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.softmax(dim=-1)


class TransformerBlock(nn.Module):
    """Self-attention + position-wise feed-forward, each with residual, dropout and LayerNorm.

    ``norm_first=True`` is the pre-LN variant (LayerNorm before each sub-layer; stabler, used by most modern
    re-implementations); ``False`` is the post-LN block of the original Transformer.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        ffn_dim: int | None = None,
        dropout: float = 0.2,
        attn_dropout: float = 0.2,
        norm_first: bool = True,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        ffn_dim = ffn_dim or embed_dim * 4
        self.attn = MultiHeadSelfAttention(embed_dim, num_heads, attn_dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim),
            nn.GELU() if activation == "gelu" else nn.ReLU(),
            FastDropout(dropout),
            nn.Linear(ffn_dim, embed_dim),
        )
        self.drop = FastDropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """``x``: ``(B, L, D)``, ``mask``: ``(B, 1, L, L)`` or ``None``. Returns ``(B, L, D)``."""
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), mask, causal))
            return x + self.drop(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.drop(self.attn(x, mask, causal)))
        return self.norm2(x + self.drop(self.ffn(x)))

    def forward_at(self, x: Tensor, query: Tensor) -> Tensor:
        """This block's causal output at position ``query[b]`` of each row only: ``(B, 1, D)``."""
        rows = torch.arange(x.shape[0], device=x.device)
        xq = x[rows, query][:, None]
        if self.norm_first:
            xq = xq + self.drop(self.attn.forward_at(self.norm1(x), query))
            return xq + self.drop(self.ffn(self.norm2(xq)))
        xq = self.norm1(xq + self.drop(self.attn.forward_at(x, query)))
        return self.norm2(xq + self.drop(self.ffn(xq)))

    def attention_weights(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """``(B, H, L, L)`` attention probabilities of this block for input ``x``."""
        return self.attn.weights(self.norm1(x) if self.norm_first else x, mask, causal)


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerBlock` with an optional final LayerNorm (pre-LN stacks need it)."""

    def __init__(self, embed_dim: int, num_heads: int, num_layers: int, **block_kwargs: object) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [TransformerBlock(embed_dim, num_heads, **block_kwargs) for _ in range(num_layers)]  # type: ignore[arg-type]
        )
        norm_first = bool(block_kwargs.get("norm_first", True))
        self.final_norm: nn.Module = nn.LayerNorm(embed_dim) if norm_first else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """``x``: ``(B, L, D)``; ``mask``: ``(B, 1, L, L)`` bool or ``None``; ``causal``: add the causal mask."""
        for block in self.blocks:
            x = block(x, mask, causal)
        return self.final_norm(x)

    def forward_at(self, x: Tensor, query: Tensor) -> Tensor:
        """Causal output of right-padded ``x`` at position ``query[b]`` of each row: ``(B, D)``.

        Every block but the last runs on all positions (later queries need their keys); the last one computes
        only the requested query, which makes next-item inference about a block cheaper.
        """
        blocks = list(self.blocks)
        for block in blocks[:-1]:
            x = block(x, None, True)
        last = blocks[-1]
        assert isinstance(last, TransformerBlock)
        return self.final_norm(last.forward_at(x, query))[:, 0]  # type: ignore[no-any-return]

    def attention_maps(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> list[Tensor]:
        """Per layer, the ``(B, H, L, L)`` attention probabilities (recomputed explicitly, no dropout)."""
        maps = []
        for block in self.blocks:
            assert isinstance(block, TransformerBlock)
            maps.append(block.attention_weights(x, mask, causal))
            x = block(x, mask, causal)
        return maps
