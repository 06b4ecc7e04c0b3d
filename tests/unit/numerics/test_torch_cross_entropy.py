"""The torch backend of rlsoft.cross_entropy: values and gradients against
``torch.nn.functional.cross_entropy`` and ``torch.autograd.gradcheck`` (float64), and the
fused ``p − y`` backward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from rlsoft import cross_entropy
from rlsoft.numerics._torch_cross_entropy import torch_cross_entropy

REDUCTIONS = ["mean", "sum", "none"]
SMOOTHINGS = [0.0, 0.1, 0.5, 1.0]


def _case(n=6, k=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=torch.float64) * 3).to(dtype)
    index = torch.randint(0, k, (n,), generator=g)
    soft = torch.softmax(torch.randn(n, k, generator=g, dtype=torch.float64) * 2, -1).to(dtype)
    return logits, index, soft


def _devices():
    no_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    return ["cpu", pytest.param("cuda", marks=no_gpu)]


# (6, 5): one row at a time; (300, 5): many short rows, where the forward uses torch's
# leading-axis log_softmax kernel on the transpose; (40, 33): rows longer than a SIMD vector.
SHAPES = [(6, 5), (300, 5), (40, 33)]


def _grid():
    """Every combination on the small shape; float64 and two smoothings on the others."""
    for shape in SHAPES:
        for dtype in (torch.float32, torch.float64):
            for smoothing in SMOOTHINGS:
                if shape != SHAPES[0] and (dtype == torch.float32 or smoothing not in (0, 0.1)):
                    continue
                for kind in ("index", "soft"):
                    for reduction in REDUCTIONS:
                        name = f"{'x'.join(map(str, shape))}-{str(dtype)[6:]}-{kind}-{reduction}"
                        yield pytest.param(
                            dtype, kind, reduction, smoothing, shape, id=f"{name}-{smoothing}"
                        )


@pytest.mark.parametrize(("dtype", "kind", "reduction", "smoothing", "shape"), list(_grid()))
def test_values_and_gradients_match_torch(dtype, kind, reduction, smoothing, shape):
    logits, index, soft = _case(*shape, dtype=dtype)
    target = index if kind == "index" else soft
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    ours = cross_entropy(ours_in, target, reduction=reduction, label_smoothing=smoothing)
    ref = TF.cross_entropy(ref_in, target, reduction=reduction, label_smoothing=smoothing)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-13, "atol": 1e-16}
    assert ours.dtype == dtype and ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, **tol)
    upstream = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    (ours * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **tol)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_target_gradient_matches_torch(reduction, smoothing):
    logits, _, soft = _case(seed=2)
    t_ours = soft.clone().requires_grad_(True)
    t_ref = soft.clone().requires_grad_(True)
    cross_entropy(logits, t_ours, reduction=reduction, label_smoothing=smoothing).sum().backward()
    TF.cross_entropy(logits, t_ref, reduction=reduction, label_smoothing=smoothing).sum().backward()
    torch.testing.assert_close(t_ours.grad, t_ref.grad, rtol=1e-13, atol=0)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_gradcheck(kind, reduction, smoothing):
    logits, index, soft = _case(n=4, k=3, seed=3)
    logits.requires_grad_(True)
    if kind == "index":
        inputs = (logits,)

        def f(z):
            return cross_entropy(z, index, reduction=reduction, label_smoothing=smoothing)

    else:
        soft.requires_grad_(True)
        inputs = (logits, soft)  # the gradient with respect to soft targets is checked too

        def f(z, y):
            return cross_entropy(z, y, reduction=reduction, label_smoothing=smoothing)

    assert torch.autograd.gradcheck(f, inputs)


def test_backward_is_the_fused_p_minus_y():
    logits, index, soft = _case(seed=4)
    k = logits.shape[1]
    p = torch.softmax(logits, -1)
    for target, y in ((index, TF.one_hot(index, k).double()), (soft, soft)):
        z = logits.clone().requires_grad_(True)
        loss = cross_entropy(z, target, reduction="sum")
        loss.backward()
        torch.testing.assert_close(z.grad, p - y, rtol=1e-13, atol=1e-16)
    z = logits.clone().requires_grad_(True)
    eps = 0.25
    cross_entropy(z, index, label_smoothing=eps).backward()  # mean: divided by N
    y = (1 - eps) * TF.one_hot(index, k).double() + eps / k
    torch.testing.assert_close(z.grad, (p - y) / len(index), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("n", [6, 300])
def test_first_order_gradient_under_create_graph(n):
    # e.g. a gradient penalty builds the graph of the backward; the first-order values must
    # not change (second derivatives are not provided: the backward is once-differentiable).
    logits, index, soft = _case(n=n, k=5, seed=9)
    p = torch.softmax(logits, -1)
    for target, y in ((index, TF.one_hot(index, 5).double()), (soft, soft)):
        z = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(cross_entropy(z, target), z, create_graph=True)
        torch.testing.assert_close(grad, (p - y) / n, rtol=1e-12, atol=1e-16)


def test_leading_axes_and_single_row():
    logits, index, soft = _case(n=6, k=4, seed=5)
    l3 = logits.reshape(2, 3, 4)
    i3 = index.reshape(2, 3)
    s3 = soft.reshape(2, 3, 4)
    # torch puts the class axis at dim 1: (B, K, T)
    ref_none = TF.cross_entropy(l3.permute(0, 2, 1), i3, reduction="none")
    torch.testing.assert_close(cross_entropy(l3, i3, reduction="none"), ref_none)
    torch.testing.assert_close(
        cross_entropy(l3, s3, label_smoothing=0.1),
        TF.cross_entropy(l3.permute(0, 2, 1), s3.permute(0, 2, 1), label_smoothing=0.1),
    )
    # unbatched: (K,) logits with a 0-d target
    torch.testing.assert_close(
        cross_entropy(logits[0], index[0]), TF.cross_entropy(logits[0], index[0])
    )
    assert cross_entropy(logits[0], index[0], reduction="none").shape == ()


def test_targets_in_other_forms():
    logits, index, soft = _case(seed=6)
    ref = TF.cross_entropy(logits, index)
    for target in (index.tolist(), index.numpy(), index.int(), index.to(torch.uint8)):
        torch.testing.assert_close(cross_entropy(logits, target), ref)
    torch.testing.assert_close(
        cross_entropy(logits, soft.float()), TF.cross_entropy(logits, soft), rtol=1e-6, atol=0
    )
    assert cross_entropy(logits, soft.float()).dtype == torch.float64


def test_seed_example():
    loss = cross_entropy(torch.tensor([2.0, 1.0, 0.1]), torch.tensor(0))
    assert float(loss) == pytest.approx(0.417, abs=5e-4)


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_kept(dtype, device):
    logits, index, soft = _case(dtype=dtype)
    logits = logits.to(device).requires_grad_(True)
    for target in (index.to(device), soft.to(device), index.tolist()):
        loss = cross_entropy(logits, target)
        assert loss.dtype == dtype and loss.device == logits.device and loss.requires_grad
        loss.backward()
        assert logits.grad.dtype == dtype and logits.grad.device == logits.device


def test_masked_and_large_logits():
    logits = torch.tensor(
        [[0.0, -math.inf, 1.0], [2.0, 0.0, -math.inf], [1e4, 0.0, -1e4], [1e30, 1e30, 0.0]],
        dtype=torch.float64,
    )
    target = torch.tensor([2, 0, 2, 1])
    z = logits.clone().requires_grad_(True)
    r = logits.clone().requires_grad_(True)
    ours = cross_entropy(z, target, reduction="none")
    ref = TF.cross_entropy(r, target, reduction="none")
    torch.testing.assert_close(ours, ref, rtol=1e-14, atol=0)
    assert float(ours[2].detach()) == pytest.approx(2e4)
    ours.sum().backward()
    ref.sum().backward()
    assert torch.isfinite(z.grad).all()
    torch.testing.assert_close(z.grad, r.grad)
    assert z.grad[0, 1] == 0 and z.grad[1, 2] == 0


def test_empty_batch_matches_torch():
    logits = torch.zeros(0, 3, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long)
    for reduction in REDUCTIONS:
        ours = cross_entropy(logits, target, reduction=reduction)
        ref = TF.cross_entropy(logits, target, reduction=reduction)
        torch.testing.assert_close(ours, ref, equal_nan=True)
    cross_entropy(logits, target, reduction="sum").backward()
    assert logits.grad.shape == (0, 3)


# −100 is F.cross_entropy's default ignore_index: a row with it must fail, not be skipped.
@pytest.mark.parametrize("bad", [3, 10, -1, -3, -100])
def test_out_of_range_index_names_index_and_k(bad):
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=rf"class index {bad} is out of range for K=3"):
        cross_entropy(logits, torch.tensor([0, bad]))
    big = torch.zeros(200, 3, requires_grad=True)  # the transposed-kernel path
    target = torch.zeros(200, dtype=torch.long)
    target[150] = bad
    for smoothing in (0.0, 0.1):
        with pytest.raises(ValueError, match=rf"class index {bad} is out of range for K=3"):
            cross_entropy(big, target, label_smoothing=smoothing)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        torch_cross_entropy(logits, torch.tensor([bad, 0]), "mean", 0.0)


def test_shape_and_argument_errors():
    logits, index, soft = _case()
    with pytest.raises(ValueError, match="one index per row"):
        cross_entropy(logits, index[:-1])
    with pytest.raises(ValueError, match="must match logits"):
        cross_entropy(logits, soft[:, :-1])
    with pytest.raises(ValueError, match="class axis"):
        cross_entropy(torch.tensor(1.0), torch.tensor(0))
    with pytest.raises(ValueError, match="reduction"):
        cross_entropy(logits, index, reduction="batchmean")
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy(logits, index, label_smoothing=-0.5)
    with pytest.raises(ValueError, match="return_grad"):
        cross_entropy(logits, index, return_grad=True)


def test_numpy_and_torch_backends_agree():
    logits, index, soft = _case(seed=8)
    for target in (index, soft):
        for reduction in REDUCTIONS:
            t = cross_entropy(logits, target, reduction=reduction, label_smoothing=0.1)
            n = cross_entropy(
                logits.numpy(), target.numpy(), reduction=reduction, label_smoothing=0.1
            )
            np.testing.assert_allclose(t.numpy(), n, rtol=1e-13)


# --------------------------------------------------------------------------------------------
# Masked classes (−inf logits): the loss of the allowed columns alone, gradient 0 elsewhere.
# The reference slices each row's allowed columns and hands them to torch's own kernel.
# --------------------------------------------------------------------------------------------


def _masked_case(n=7, k=6, seed=11, dtype=torch.float64):
    """Logits with −inf at random classes (every row keeps at least one, one row keeps one),
    an allowed class index per row and a probability target that is 0 on masked classes."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.rand(n, k, generator=g) < 0.6
    allowed[torch.arange(n), torch.randint(0, k, (n,), generator=g)] = True
    allowed[0] = False
    allowed[0, 2] = True  # a row with a single allowed class
    allowed[1] = True  # and an unmasked one
    finite = torch.randn(n, k, generator=g, dtype=torch.float64) * 3
    logits = torch.where(allowed, finite, torch.tensor(-math.inf, dtype=torch.float64))
    index = torch.multinomial(allowed.double(), 1, generator=g).squeeze(1)
    raw = torch.rand(n, k, generator=g, dtype=torch.float64) * allowed
    soft = raw / raw.sum(-1, keepdim=True)
    return logits.to(dtype), index, soft.to(dtype), allowed


def _reference_on_allowed(logits, target, allowed, reduction, smoothing):
    """Per row: torch.nn.functional.cross_entropy on the allowed columns only (smoothing then
    spreads over those K_a columns); returns the reduced loss and d(sum of it)/d(logits)."""
    leaves, rows = [], []
    for i in range(logits.shape[0]):
        cols = allowed[i].nonzero().squeeze(1)
        leaf = logits[i, cols].detach().clone().requires_grad_(True)
        if target.is_floating_point():
            row_target = target[i, cols][None]
        else:
            row_target = (cols == target[i]).nonzero().reshape(1)
        rows.append(TF.cross_entropy(leaf[None], row_target, label_smoothing=smoothing))
        leaves.append((cols, leaf))
    per_row = torch.stack(rows)
    loss = {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[reduction]
    loss.sum().backward()
    grad = torch.zeros_like(logits)
    for i, (cols, leaf) in enumerate(leaves):
        grad[i, cols] = leaf.grad
    return loss.detach(), grad


def _masked_grid():
    for dtype in (torch.float32, torch.float64):
        for kind in ("index", "soft"):
            for reduction in REDUCTIONS:
                for smoothing in SMOOTHINGS:
                    name = f"{str(dtype)[6:]}-{kind}-{reduction}-{smoothing}"
                    yield pytest.param(dtype, kind, reduction, smoothing, id=name)


# k=6 takes torch's F.cross_entropy first (index targets with few classes, probability
# targets) and k=12 the fused function's index path; both must end at the same definition.
@pytest.mark.parametrize("k", [6, 12])
@pytest.mark.parametrize("guarded_path", ["cpu", "accelerator"])
@pytest.mark.parametrize(("dtype", "kind", "reduction", "smoothing"), list(_masked_grid()))
def test_masked_logits_equal_the_loss_on_allowed_columns(
    dtype, kind, reduction, smoothing, guarded_path, k, monkeypatch
):
    if guarded_path == "accelerator":
        # What an accelerator runs: the guarded formulas unconditionally (no synchronisation
        # to decide), here checked on CPU.
        monkeypatch.setattr(
            "rlsoft.numerics._torch_cross_entropy._always_guarded", lambda logits: True
        )
    logits, index, soft, allowed = _masked_case(k=k, dtype=dtype)
    target = index if kind == "index" else soft
    want, want_grad = _reference_on_allowed(logits, target, allowed, reduction, smoothing)
    z = logits.clone().requires_grad_(True)
    ours = cross_entropy(z, target, reduction=reduction, label_smoothing=smoothing)
    ours.sum().backward()
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-15}
    assert ours.dtype == dtype and torch.isfinite(ours).all()
    torch.testing.assert_close(ours.detach(), want, **tol)
    assert torch.isfinite(z.grad).all()
    assert (z.grad[~allowed] == 0).all()
    torch.testing.assert_close(z.grad, want_grad, **tol)


@pytest.mark.parametrize("guarded_path", ["cpu", "accelerator"])
def test_guarded_formulas_on_unmasked_logits_match_torch(guarded_path, monkeypatch):
    if guarded_path == "accelerator":
        monkeypatch.setattr(
            "rlsoft.numerics._torch_cross_entropy._always_guarded", lambda logits: True
        )
    logits, index, soft = _case(n=300, k=5, seed=12)
    for target in (index, soft):
        for smoothing in (0.0, 0.1):
            z = logits.clone().requires_grad_(True)
            r = logits.clone().requires_grad_(True)
            ours = cross_entropy(z, target, label_smoothing=smoothing)
            ref = TF.cross_entropy(r, target, label_smoothing=smoothing)
            torch.testing.assert_close(ours, ref, rtol=1e-13, atol=0)
            ours.backward()
            ref.backward()
            torch.testing.assert_close(z.grad, r.grad, rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("kind", ["index", "soft"])
def test_masked_gradcheck_on_the_allowed_entries(kind, smoothing):
    logits, index, soft, allowed = _masked_case(n=5, k=4, seed=13)
    target = index if kind == "index" else soft
    finite = logits[allowed].clone().requires_grad_(True)

    def f(values):
        full = torch.full(logits.shape, -math.inf, dtype=torch.float64)
        full = full.masked_scatter(allowed, values)
        return cross_entropy(full, target, reduction="sum", label_smoothing=smoothing)

    assert torch.autograd.gradcheck(f, (finite,))


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 1.0])
def test_target_mass_on_a_masked_class_is_infinite_loss(smoothing):
    logits = torch.tensor([[0.5, -math.inf, 1.0], [2.0, 0.0, 1.0]], dtype=torch.float64)
    p = torch.softmax(logits, -1)
    for target in (torch.tensor([1, 0]), torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])):
        z = logits.clone().requires_grad_(True)
        loss = cross_entropy(z, target, reduction="none", label_smoothing=smoothing)
        loss.sum().backward()
        y = target if target.is_floating_point() else TF.one_hot(target, 3).double()
        allowed = torch.isfinite(logits).double()
        y_smooth = (1 - smoothing) * y + smoothing * allowed / allowed.sum(-1, keepdim=True)
        if smoothing < 1.0:
            # −log p_1 with p_1 = 0: the exact value, as torch.nn.functional.cross_entropy
            assert loss[0] == math.inf
        else:
            # ε = 1 leaves nothing of the label; the uniform target over allowed classes is finite
            want = -(y_smooth[0, [0, 2]] * torch.log_softmax(logits[0, [0, 2]], -1)).sum()
            torch.testing.assert_close(loss[0].detach(), want, rtol=1e-13, atol=0)
        assert torch.isfinite(loss[1])
        # the fused gradient stays finite: p·Σy′ − y′ (−(1 − ε)·y on the masked class)
        torch.testing.assert_close(z.grad, p * y_smooth.sum(-1, keepdim=True) - y_smooth)
    assert (
        float(TF.cross_entropy(logits, torch.tensor([1, 0]), reduction="none")[0]) == math.inf
    )  # torch agrees on the value


def test_all_masked_row_has_nan_loss_and_other_rows_stay_exact():
    logits = torch.tensor([[-math.inf, -math.inf], [0.0, -math.inf]], dtype=torch.float64)
    for smoothing in (0.0, 0.1):
        loss = cross_entropy(
            logits, torch.tensor([0, 0]), reduction="none", label_smoothing=smoothing
        )
        assert math.isnan(float(loss[0])) and float(loss[1]) == 0.0
