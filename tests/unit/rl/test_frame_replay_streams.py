"""FrameReplayBuffer.stream_state / continue_streams: what a checkpoint without the replay
(``agent.checkpoint_replay: false``) keeps so that an empty buffer goes on storing the
episodes in progress, their stacks rebuilt bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from rlsoft.rl.frame_replay import FrameReplayBuffer

K, ENVS = 4, 2


def _stream(steps: int, seed: int):
    """Transitions of ENVS streams of numbered 1×1 frames, stacked as FrameStackObservation
    does (reset frame repeated), episodes ending at random: a reference written out here."""
    rng = np.random.default_rng(seed)
    frame = np.zeros(ENVS, np.int64)
    history = [[int(f)] * K for f in frame]
    for _ in range(steps):
        obs = np.array(history, np.uint8).reshape(ENVS, K, 1, 1)
        done = rng.random(ENVS) < 0.15
        frame += 1
        successor = [[*h[1:], int(f)] for h, f in zip(history, frame, strict=True)]
        next_obs = np.array(successor, np.uint8).reshape(ENVS, K, 1, 1)
        yield obs, next_obs, done
        for e in range(ENVS):
            if done[e]:
                frame[e] += 1  # the reset frame
                history[e] = [int(frame[e])] * K
            else:
                history[e] = successor[e]


@pytest.mark.parametrize("split", [0, 1, 2, 7, 40])
def test_an_empty_buffer_continues_the_streams_of_another(split):
    original = FrameReplayBuffer(64, (K, 1, 1), frame_stack=K, num_envs=ENVS)
    transitions = list(_stream(split + 30, seed=split))
    for obs, next_obs, done in transitions[:split]:
        original.add(obs, 0, 1.0, next_obs, done, False)
    fresh = FrameReplayBuffer(64, (K, 1, 1), frame_stack=K, num_envs=ENVS)
    fresh.continue_streams(original.stream_state())
    assert len(fresh) == 0
    later = transitions[split:]
    for obs, next_obs, done in later:  # add() checks each stack against the stored frames
        fresh.add(obs, 0, 1.0, next_obs, done, False)
    batch = fresh.gather(np.arange(len(later) * ENVS))
    want_obs = np.concatenate([obs for obs, _, _ in later])
    want_next = np.concatenate([next_obs for _, next_obs, _ in later])
    np.testing.assert_array_equal(batch.obs, want_obs)
    np.testing.assert_array_equal(batch.next_obs, want_next)


def test_continue_streams_refuses_a_filled_buffer_or_other_shapes():
    buffer = FrameReplayBuffer(16, (K, 1, 1), frame_stack=K, num_envs=ENVS)
    state = buffer.stream_state()
    obs, next_obs, done = next(_stream(1, seed=0))
    buffer.add(obs, 0, 0.0, next_obs, done, False)
    with pytest.raises(ValueError, match="needs an empty buffer"):
        buffer.continue_streams(state)
    other = FrameReplayBuffer(16, (K, 1, 1), frame_stack=K, num_envs=1)
    with pytest.raises(ValueError, match="saved streams hold frames of shape"):
        other.continue_streams(state)
