import numpy as np
import pytest

from ssl_core.train.schedules import cosine_schedule


def test_warmup_then_cosine():
    s = cosine_schedule(1.0, 0.1, total_steps=110, warmup_steps=10)
    assert len(s) == 110
    np.testing.assert_allclose(s[:10], np.arange(10) / 10)  # linear from 0 towards the peak
    assert s[10] == pytest.approx(1.0)
    assert s[-1] == pytest.approx(0.1)
    assert np.all(np.diff(s[10:]) <= 1e-12)  # monotone decay after the warm-up
    mid = 10 + 99 // 2  # halfway through the decay the cosine is at the midpoint
    assert s[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * (mid - 10) / 99)))


def test_increasing_schedule_for_ema_momentum():
    s = cosine_schedule(0.996, 1.0, total_steps=50)
    assert s[0] == pytest.approx(0.996) and s[-1] == pytest.approx(1.0)
    assert np.all(np.diff(s) >= 0)


def test_edge_cases():
    assert cosine_schedule(0.5, 0.0, 1).tolist() == [0.5]
    s = cosine_schedule(1.0, 0.0, 5, warmup_steps=50)  # warm-up longer than the run is capped
    assert len(s) == 5 and s[0] == 0.0
    with pytest.raises(ValueError):
        cosine_schedule(1.0, 0.0, 0)
