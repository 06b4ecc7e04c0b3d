"""Frames a video can hold: MinAtar's float 10×10 frames become sharp uint8 frames."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from rlsoft.rl.envs.video import MIN_VIDEO_SIDE, VideoFrames, video_frame


def test_float_frames_become_uint8_and_small_ones_are_enlarged_cell_by_cell():
    frame = np.zeros((10, 10, 3))
    frame[2, 3] = (1.0, 0.5, 0.002)
    out = video_frame(frame)
    assert out.dtype == np.uint8 and out.shape == (160, 160, 3)  # 16× each side
    np.testing.assert_array_equal(out[32:48, 48:64], np.full((16, 16, 3), (255, 128, 1)))
    assert out.sum() == 16 * 16 * (255 + 128 + 1)
    big = np.arange(210 * 160 * 3, dtype=np.uint8).reshape(210, 160, 3)
    assert video_frame(big) is big  # an Atari frame passes as it is
    odd = video_frame(np.ones((7, 9, 3), np.uint8))
    assert odd.shape == (7 * 23, 9 * 23, 3) and min(odd.shape[:2]) >= MIN_VIDEO_SIDE


@pytest.mark.skipif(importlib.util.find_spec("minatar") is None, reason="the minatar extra")
def test_a_minatar_game_records_as_uint8_frames():
    from rlsoft.rl.envs.factory import make_env
    from rlsoft.run.config import EnvConfig

    env = VideoFrames(make_env(EnvConfig(id="MinAtar/Breakout-v1"), render_mode="rgb_array"))
    env.reset(seed=0)
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = env.render()  # Gymnasium's checker looks at the inner float frame here
    assert frame.dtype == np.uint8 and frame.shape == (160, 160, 3) and frame.max() > 0
    assert not [w for w in caught if "RGB-array rendering" in str(w.message)]
    assert warnings.filters == filters  # the caller's filters are as they were
    env.close()
