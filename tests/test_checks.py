"""The shared input checks: the one-pass finite scan agrees with the elementwise one."""

import pytest
import torch

from attnlab.checks import all_finite, check_tensor


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_any_non_finite_entry_is_found(bad, dtype):
    x = torch.randn(3, 50).to(dtype)
    x[2, 17] = bad
    assert not all_finite(x) and not all_finite(torch.ones(2), x)
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        check_tensor("x", x)


def test_opposite_infinities_and_overflowing_sums():
    x = torch.zeros(10)
    x[1], x[7] = float("inf"), float("-inf")  # the sum is NaN, the exact scan says why
    assert not all_finite(x)
    big = torch.full((4,), 1e308, dtype=torch.float64)  # finite, but its sum overflows
    assert all_finite(big) and check_tensor("big", big) is big
    assert all_finite(torch.randn(5, 5), torch.empty(0))
