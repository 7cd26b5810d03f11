"""Next-item losses: numeric oracles against explicit formulas, and gBCE calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnrec.training.losses import (
    BinaryCrossEntropy,
    FullCrossEntropy,
    GeneralisedBCE,
    SampledSoftmax,
    excluded_negatives,
    gbce_beta,
    make_loss,
)


def data(n: int = 37, v: int = 23, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=g, dtype=torch.float64).float().requires_grad_()
    w = torch.randn(v + 1, d, generator=g).requires_grad_()
    y = torch.randint(1, v + 1, (n,), generator=g)
    return h, w, y


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("chunk", [1, 5, 512])
def test_chunked_ce_equals_cross_entropy_and_its_gradients(chunk: int, fused: bool) -> None:
    """The fused chunked path and the plain-autograd path (GPUs, per-sample gradients) give the same values."""
    h, w, y = data()
    loss = FullCrossEntropy(chunk, fused)(h, y, w, torch.Generator())
    loss.backward()
    gh, gw = h.grad.clone(), w.grad.clone()  # type: ignore[union-attr]
    h.grad = w.grad = None
    ref = F.cross_entropy(h @ w[1:].T, y - 1)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh, h.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-6)
    assert float(gw[0].abs().sum()) == 0.0, "the padding row is never a candidate"


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("chunk", [1, 5, 512])
def test_chunked_ce_with_exclude_is_the_softmax_over_the_remaining_items(chunk: int, fused: bool) -> None:
    """The fused chunked path and the plain-autograd path (GPUs, per-sample gradients) give the same values."""
    h, w, y = data()
    g = torch.Generator().manual_seed(1)
    exclude = torch.randint(0, w.shape[0], (len(y), 6), generator=g)
    exclude[:, 0] = y  # the target is listed too: it must stay in its own softmax
    loss = FullCrossEntropy(chunk, fused)(h, y, w, torch.Generator(), exclude)
    loss.backward()
    gh, gw = h.grad.clone(), w.grad.clone()  # type: ignore[union-attr]
    h.grad = w.grad = None
    banned = torch.zeros(len(y), w.shape[0], dtype=torch.bool).scatter_(1, exclude, True)[:, 1:]
    banned[torch.arange(len(y)), y - 1] = False
    assert int(banned.sum()) > len(y)  # the draw bans several items per row
    logits = h @ w[1:].T
    ref = F.cross_entropy(logits.masked_fill(banned, float("-inf")), y - 1)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gh, h.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-6)
    assert float(loss.detach()) < float(F.cross_entropy(logits.detach(), y - 1)), "fewer negatives, smaller loss"


def test_exclude_of_the_wrong_shape_and_losses_that_take_none_are_errors() -> None:
    h, w, y = data()
    for loss in (BinaryCrossEntropy(23), GeneralisedBCE(23, 4)):
        with pytest.raises(ValueError, match=f"the '{loss.name}' loss does not take 'exclude'"):
            loss(h, y, w, torch.Generator(), torch.zeros(len(y), 2, dtype=torch.int64))
    for fn in (FullCrossEntropy(), SampledSoftmax(23, 4)):
        with pytest.raises(ValueError, match=r"exclude must have shape \(N, W\) with N = 37"):
            fn(h, y, w, torch.Generator(), torch.zeros(5, 2, dtype=torch.int64))


def test_excluded_negatives_marks_each_rows_items_among_repeated_draws() -> None:
    negs = torch.tensor([3, 5, 3, 7, 19])
    exclude = torch.tensor([[3, 0, 0], [7, 5, 1], [0, 0, 0], [19, 19, 2]])
    expected = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    torch.testing.assert_close(excluded_negatives(negs, exclude, 20), expected)


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_softmax_with_exclude_leaves_those_negatives_out(sampling: str) -> None:
    """Oracle: the explicit sampled softmax over the same draws with each row's excluded draws masked; the target
    stays the positive even when it is listed in its own row."""
    h, w, y = data(v=12)
    counts = np.arange(13, dtype=np.float64)
    fn = SampledSoftmax(12, 30, sampling, counts)
    g = torch.Generator().manual_seed(4)
    exclude = torch.randint(0, 13, (len(y), 5), generator=g)
    exclude[:, 0] = y
    loss = fn(h, y, w, torch.Generator().manual_seed(5), exclude)
    negs = fn.sampler.sample((30,), torch.Generator().manual_seed(5))
    pos = (h * w[y]).sum(-1, keepdim=True)
    neg = h @ w[negs].T
    if sampling == "popularity":
        pos, neg = pos - fn.sampler.log_q(y)[:, None], neg - fn.sampler.log_q(negs)[None, :]
    banned = (negs[None, :, None] == exclude[:, None, :]).any(-1) | (negs[None] == y[:, None])
    assert int(banned.sum()) > 2 * len(y)  # the draws hit several excluded items per row
    expected = -torch.cat([pos, neg.masked_fill(banned, float("-inf"))], 1).log_softmax(1)[:, 0].mean()
    torch.testing.assert_close(loss, expected)
    plain = fn(h, y, w, torch.Generator().manual_seed(5))
    assert float(loss) < float(plain), "fewer negatives, smaller loss"


def test_chunked_ce_under_bf16_autocast_stays_close_to_float32() -> None:
    h, w, y = data(n=200, v=300, d=32)
    ref = FullCrossEntropy(64)(h, y, w, torch.Generator())
    ref.backward()
    gh, gw = h.grad.clone(), w.grad.clone()  # type: ignore[union-attr]
    h.grad = w.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FullCrossEntropy(64)(h, y, w, torch.Generator())
    loss.backward()
    assert loss.dtype == torch.float32 and h.grad.dtype == w.grad.dtype == torch.float32  # type: ignore[union-attr]
    torch.testing.assert_close(loss, ref, rtol=1e-2, atol=1e-2)
    # bf16 keeps 8 bits of mantissa: gradients agree to about 1% of their scale, and are not identical
    scale = float(gh.abs().max())
    assert float((h.grad - gh).abs().max()) < 0.02 * scale  # type: ignore[operator]
    assert float((w.grad - gw).abs().max()) < 0.02 * float(gw.abs().max())  # type: ignore[operator]
    assert not torch.equal(h.grad, gh)


def test_sampled_softmax_with_all_items_as_negatives_is_full_ce() -> None:
    h, w, y = data(v=6)
    # 400 uniform draws over 6 items contain every item; duplicates of the positive are masked, other duplicates
    # add log(count) terms, so compare with an explicit formula using the same draws
    loss_fn = SampledSoftmax(6, 400)
    gen = torch.Generator().manual_seed(1)
    loss = loss_fn(h, y, w, gen)
    negs = loss_fn.sampler.sample((400,), torch.Generator().manual_seed(1))
    pos = (h * w[y]).sum(-1, keepdim=True)
    neg = (h @ w[negs].T).masked_fill(negs[None] == y[:, None], float("-inf"))
    expected = -torch.cat([pos, neg], 1).log_softmax(1)[:, 0].mean()
    torch.testing.assert_close(loss, expected)


def test_popularity_sampling_follows_counts_and_log_q() -> None:
    counts = np.array([0, 1, 1, 98], dtype=np.float64)
    loss_fn = SampledSoftmax(3, 2000, "popularity", counts)
    draws = loss_fn.sampler.sample((2000,), torch.Generator().manual_seed(0))
    assert 0.95 < float((draws == 3).float().mean()) <= 1.0
    torch.testing.assert_close(
        loss_fn.sampler.log_q(torch.tensor([3])), torch.tensor([np.log(0.98)]).float(), atol=1e-4, rtol=0
    )


def test_bce_matches_explicit_formula() -> None:
    h, w, y = data()
    loss = BinaryCrossEntropy(23)(h, y, w, torch.Generator().manual_seed(2))
    negs = torch.randint(1, 24, (len(y),), generator=torch.Generator().manual_seed(2))
    pos = torch.sigmoid((h * w[y]).sum(-1))
    neg = torch.sigmoid((h * w[negs]).sum(-1))
    expected = -(pos.log() + torch.where(negs == y, 0.0, (1 - neg).log())).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_gbce_beta_calibration() -> None:
    assert gbce_beta(1001, 100, 0.0) == pytest.approx(1.0)  # plain BCE
    assert gbce_beta(1001, 100, 1.0) == pytest.approx(0.1)  # beta = alpha = K / (V - 1)
    assert gbce_beta(1001, 100, 0.75) == pytest.approx(0.1 * (0.75 * (1 - 10) + 10))


def test_gbce_matches_explicit_formula() -> None:
    h, w, y = data()
    fn = GeneralisedBCE(23, 5, t=0.5)
    loss = fn(h, y, w, torch.Generator().manual_seed(3))
    negs = torch.randint(1, 24, (5,), generator=torch.Generator().manual_seed(3))
    pos = torch.sigmoid((h * w[y]).sum(-1))
    neg = torch.sigmoid(h @ w[negs].T)
    neg_term = torch.where(negs[None] == y[:, None], 0.0, (1 - neg).log()).sum(1)
    expected = -((fn.beta * pos.log() + neg_term) / 6).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_unknown_loss_name() -> None:
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("hinge", 10)
