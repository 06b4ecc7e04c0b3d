"""Frames a video file can hold, from environments whose ``rgb_array`` frames are floats or
tiny (MinAtar: 10×10×3 floats in [0, 1], which a video encoder reads as a black 10×10 clip)."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

MIN_VIDEO_SIDE = 160
"""Frames narrower than this are enlarged by a whole factor (nearest neighbour: each cell of
a MinAtar grid becomes a sharp square)."""


def video_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` as ``uint8`` RGB at least :data:`MIN_VIDEO_SIDE` pixels on its short side:
    floats in [0, 1] are scaled by 255 and rounded, and a small frame is repeated
    ``k = ceil(MIN_VIDEO_SIDE / short side)`` times along both axes."""
    if np.issubdtype(frame.dtype, np.floating):
        frame = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    side = min(frame.shape[:2])
    if 0 < side < MIN_VIDEO_SIDE:
        factor = -(-MIN_VIDEO_SIDE // side)
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    return frame


class VideoFrames(gym.Wrapper):
    """``render()`` returns :func:`video_frame` of the environment's frame (for
    ``RecordVideo``); Gymnasium's warning that the inner frame is not ``uint8`` is what this
    wrapper repairs, so it is not shown (during the inner ``render()`` only: the caller's
    filters are left as they were)."""

    def render(self) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*RGB-array rendering should return a numpy array with dtype"
            )
            frame = self.env.render()
        return video_frame(frame) if isinstance(frame, np.ndarray) else frame
