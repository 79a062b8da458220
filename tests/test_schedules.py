import numpy as np
import pytest

from sdesim import schedules


def test_values():
    assert schedules.Constant()(7) == 1.0
    assert schedules.InvSqrt()(0) == 1.0 and schedules.InvSqrt()(3) == 0.5
    w = schedules.Warmup(steps=4)
    assert [w(k) for k in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    c = schedules.Cosine(total=10, final=0.1)
    assert c(0) == pytest.approx(1.0) and c(5) == pytest.approx(0.55) and c(10) == pytest.approx(0.1)
    assert c(50) == pytest.approx(0.1)


def test_arrays_match_scalars():
    k = np.arange(20)
    for s in (schedules.Constant(), schedules.InvSqrt(), schedules.Warmup(5), schedules.Cosine(12)):
        np.testing.assert_allclose(s(k), [s(int(i)) for i in k], rtol=0, atol=0)
        assert isinstance(s(3), float)


def test_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        schedules.Warmup(steps=0)
    with pytest.raises(ValueError, match="final"):
        schedules.Cosine(total=10, final=2.0)
    with pytest.raises(ValueError, match="did you mean 'invsqrt'"):
        schedules.as_schedule("invsqr")
