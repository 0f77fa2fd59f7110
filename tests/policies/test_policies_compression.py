"""Resolving ipc / fraction / byte budgets to images per class on constructed datasets."""

from __future__ import annotations

import math

import pytest

from policies import CompressionInfeasibleError, CompressionPolicy

CIFAR_LIKE = [5000] * 10          # 50,000 images, 10 balanced classes
IMBALANCED = [1200, 800, 40, 500]  # the smallest class caps the IPC at 40
BPI = 3 * 32 * 32 + 8              # one uint8 32x32 RGB image plus a label


class TestIpc:
    def test_resolves_and_reports_fraction_and_bytes(self):
        res = CompressionPolicy(ipc=50).resolve(CIFAR_LIKE, BPI)
        assert (res.ipc, res.images, res.num_classes, res.source_images) == (50, 500, 10, 50_000)
        assert res.fraction == pytest.approx(0.01)
        assert res.condensed_bytes == 500 * BPI
        assert res.reduction_ratio == pytest.approx(100.0)

    def test_stored_bytes_drive_the_reduction_ratio(self):
        # The source is stored compressed (e.g. JPEG): 40% of the raw size.
        res = CompressionPolicy(ipc=50).resolve(CIFAR_LIKE, BPI, total_stored_bytes=int(50_000 * BPI * 0.4))
        assert res.reduction_ratio == pytest.approx(40.0)
        assert res.source_bytes == int(50_000 * BPI * 0.4)

    def test_at_and_above_the_smallest_class(self):
        assert CompressionPolicy(ipc=40).resolve(IMBALANCED, BPI).ipc == 40
        with pytest.raises(CompressionInfeasibleError) as info:
            CompressionPolicy(ipc=41).resolve(IMBALANCED, BPI)
        err = info.value
        assert (err.requested_ipc, err.min_ipc, err.max_ipc, err.target) == (41, 1, 40, "ipc")
        assert "smallest class has only 40" in str(err) and "ipc=40" in str(err)


class TestFraction:
    def test_resolves_exactly(self):
        res = CompressionPolicy(fraction=0.01).resolve(CIFAR_LIKE, BPI)
        assert res.ipc == 50 and res.fraction == pytest.approx(0.01)

    def test_rounds_down_and_never_exceeds_the_target(self):
        res = CompressionPolicy(fraction=0.0105).resolve(CIFAR_LIKE, BPI)
        assert res.ipc == 52 and res.fraction <= 0.0105

    def test_float_noise_does_not_lose_an_image(self):
        # 0.1 * 1000 / 10 == 9.999999999999998 in floating point; the answer is 10.
        assert CompressionPolicy(fraction=0.1).resolve([100] * 10, BPI).ipc == 10

    def test_too_small_names_the_least_feasible_fraction(self):
        with pytest.raises(CompressionInfeasibleError) as info:
            CompressionPolicy(fraction=0.0001).resolve(CIFAR_LIKE, BPI)
        assert info.value.requested_ipc == 0
        assert "fraction=0.0002 (ipc=1)" in str(info.value)

    def test_too_large_for_the_smallest_class(self):
        with pytest.raises(CompressionInfeasibleError) as info:
            CompressionPolicy(fraction=0.5).resolve(IMBALANCED, BPI)
        assert info.value.max_ipc == 40
        assert "largest feasible target is fraction=" in str(info.value)


class TestByteBudget:
    def test_exact_budget_and_one_byte_less(self):
        exact = 10 * 20 * BPI
        assert CompressionPolicy(byte_budget=exact).resolve(CIFAR_LIKE, BPI).ipc == 20
        assert CompressionPolicy(byte_budget=exact - 1).resolve(CIFAR_LIKE, BPI).ipc == 19
        assert CompressionPolicy(byte_budget=exact + BPI * 10 - 1).resolve(CIFAR_LIKE, BPI).ipc == 20

    def test_64_mib_budget(self):
        res = CompressionPolicy(byte_budget=64 * 2**20).resolve(CIFAR_LIKE, BPI)
        assert res.ipc == 64 * 2**20 // (10 * BPI)
        assert res.condensed_bytes <= 64 * 2**20

    def test_too_small_names_the_least_budget(self):
        with pytest.raises(CompressionInfeasibleError) as info:
            CompressionPolicy(byte_budget=10 * BPI - 1).resolve(CIFAR_LIKE, BPI)
        assert f"byte_budget={10 * BPI} (ipc=1)" in str(info.value)

    def test_too_large_for_the_smallest_class(self):
        with pytest.raises(CompressionInfeasibleError, match="byte_budget=160000"):
            CompressionPolicy(byte_budget=10**9).resolve(IMBALANCED, 1000)


@pytest.mark.parametrize("counts", [CIFAR_LIKE, IMBALANCED, [7, 9, 13], [100_000] * 1000])
@pytest.mark.parametrize("bpi", [1, 785, BPI, 150_528])
def test_resolution_never_exceeds_fraction_or_budget_and_is_maximal(counts, bpi):
    n, k = sum(counts), len(counts)
    for frac in (0.001, 0.01, 0.05, 0.2, 0.5):
        try:
            res = CompressionPolicy(fraction=frac).resolve(counts, bpi)
        except CompressionInfeasibleError as exc:
            assert exc.requested_ipc < 1 or exc.requested_ipc > min(counts)
            continue
        assert res.images <= frac * n + 1e-6          # never above the target
        assert (res.ipc + 1) * k > frac * n - 1e-6    # one more image per class would be
    for ipc in (1, 3, 7):
        budget = ipc * k * bpi + bpi // 2
        if ipc <= min(counts):
            res = CompressionPolicy(byte_budget=budget).resolve(counts, bpi)
            assert res.ipc == ipc and res.condensed_bytes <= budget
            assert math.isclose(res.fraction, ipc * k / n)


@pytest.mark.parametrize(("counts", "bpi", "stored", "match"), [
    ([], BPI, None, "empty"),
    ([10, 0], BPI, None, "positive integers"),
    ([10, -1], BPI, None, "positive integers"),
    ([10, True], BPI, None, "positive integers"),
    ([10, 2.5], BPI, None, "positive integers"),
    ([10, 10], 0, None, "bytes_per_image"),
    ([10, 10], 1.5, None, "bytes_per_image"),
    ([10, 10], BPI, 0, "total_stored_bytes"),
])
def test_malformed_dataset_facts(counts, bpi, stored, match):
    with pytest.raises(ValueError, match=match):
        CompressionPolicy(ipc=1).resolve(counts, bpi, stored)


def test_target_property():
    assert CompressionPolicy(ipc=1).target == "ipc"
    assert CompressionPolicy(fraction=0.1).target == "fraction"
    assert CompressionPolicy(byte_budget=1).target == "byte_budget"
