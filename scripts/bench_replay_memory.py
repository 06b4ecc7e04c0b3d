"""Resident memory and sampling cost of a pixel replay memory: rlsoft's FrameReplayBuffer
against Stable-Baselines3's ReplayBuffer with ``optimize_memory_usage=True``.

Both are filled with the same kind of data, ``--capacity`` transitions of 4×84×84 uint8 frame
stacks (Atari after the standard preprocessing; episodes of random length, mean
``--episode-length``), each in its own subprocess so that one's memory cannot hide the
other's. A buffer's memory is the growth of the process's resident set (``VmRSS`` in
``/proc/self/status``) from just before the buffer is built to just after it is full; numpy
allocates lazily, so only pages actually written count. Printed next to the measurements is
the arithmetic for the observations alone:

* frames once (rlsoft): ``C·84·84`` bytes,
* SB3's ``optimize_memory_usage=True`` (one ``obs`` stack per transition, the next one read
  from the following slot): ``C·4·84·84``,
* plain storage of ``obs`` and ``next_obs`` stacks: ``2·C·4·84·84``.

The sampling cost is the mean time of one batch of ``--batch`` transitions: for rlsoft,
``gather(sample_indices(...))`` into preallocated arrays, with uint8 observations (what a pixel
agent would ship to the GPU) and, separately, float32 ones (the conversion is most of that
cost); for SB3, ``ReplayBuffer.sample`` (uint8 observations, as torch tensors). Timings on a
shared or busy machine are indicative only.

    python scripts/bench_replay_memory.py                      # 1M transitions (~7 GB + ~28 GB)
    python scripts/bench_replay_memory.py --capacity 100000    # a quick look
    python scripts/bench_replay_memory.py --skip-sb3           # rlsoft only

SB3 needs the benchmark extra: ``pip install 'rlsoft[bench]'``; without it only rlsoft is
measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/bench_replay_memory.py`
    sys.path.insert(0, str(ROOT))

from scripts.benchlib import GB, rss_bytes  # noqa: E402


def transitions(capacity: int, stack: int, size: int, mean_length: int, seed: int = 0):
    """``capacity`` real transitions ``(s, a, r, s′, terminated, truncated)`` of frame stacks
    padded as FrameStackObservation pads them (the reset frame repeated)."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (64, size, size), dtype=np.uint8)  # reused: speed, not content
    frames = deque([pool[0]] * stack, maxlen=stack)
    for t in range(capacity):
        obs = np.stack(frames)
        frames.append(pool[(t * 7 + 1) % len(pool)])
        next_obs = np.stack(frames)
        end = rng.random() < 1.0 / mean_length
        terminated = end and rng.random() < 0.5
        yield obs, int(rng.integers(0, 4)), float(rng.normal()), next_obs, terminated, end
        if end:
            reset = pool[int(rng.integers(len(pool)))]
            frames = deque([reset] * stack, maxlen=stack)


def measure_rlsoft(args: argparse.Namespace) -> dict[str, Any]:
    from rlsoft.rl.frame_replay import FrameReplayBuffer
    from rlsoft.rl.replay import ReplayBatch

    shape = (args.frame_stack, args.size, args.size)
    before = rss_bytes()
    buf = FrameReplayBuffer(args.capacity, shape, frame_stack=args.frame_stack)
    for obs, action, reward, next_obs, terminated, done in transitions(
        args.capacity, args.frame_stack, args.size, args.episode_length
    ):
        buf.add(
            obs[None], [action], [reward], next_obs[None], [terminated], [done and not terminated]
        )
    after = rss_bytes()
    timings = {}
    for name, dtype in (("sample_us", np.uint8), ("sample_us_float32", np.float32)):
        timings[name] = time_gather(buf, args, ReplayBatch, shape, dtype)
    return {"rss": after - before, "nbytes": buf.nbytes, **timings}


def time_gather(buf: Any, args: argparse.Namespace, batch: Any, shape: tuple, dtype: Any) -> float:
    """Mean µs of ``gather(sample_indices(...), out=...)`` into preallocated arrays whose
    observations have ``dtype`` (uint8: shipped as is; float32: as the MLP agent reads them)."""
    n = args.batch
    out = batch(
        obs=np.empty((n, *shape), dtype),
        actions=np.empty(n, np.int64),
        returns=np.empty(n, np.float32),
        next_obs=np.empty((n, *shape), dtype),
        discounts=np.empty(n, np.float32),
        terminated=np.empty(n, np.bool_),
        steps=np.empty(n, np.int64),
    )
    rng = np.random.default_rng(0)
    buf.gather(buf.sample_indices(rng, n), out=out)  # warm-up
    start = time.perf_counter()
    for _ in range(args.samples):
        buf.gather(buf.sample_indices(rng, n), out=out)
    return (time.perf_counter() - start) / args.samples * 1e6


def measure_sb3(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    torch.set_num_threads(1)
    shape = (args.frame_stack, args.size, args.size)
    obs_space = spaces.Box(0, 255, shape, np.uint8)
    before = rss_bytes()
    buf = ReplayBuffer(
        args.capacity,
        obs_space,
        spaces.Discrete(4),
        device="cpu",
        n_envs=1,
        optimize_memory_usage=True,
        handle_timeout_termination=False,  # SB3 refuses it together with the optimisation
    )
    for obs, action, reward, next_obs, _, done in transitions(
        args.capacity, args.frame_stack, args.size, args.episode_length
    ):
        buf.add(obs[None], next_obs[None], np.array([action]), np.array([reward]), [done], [{}])
    after = rss_bytes()
    buf.sample(args.batch)  # warm-up
    start = time.perf_counter()
    for _ in range(args.samples):
        buf.sample(args.batch)
    seconds = (time.perf_counter() - start) / args.samples
    return {"rss": after - before, "nbytes": buf.observations.nbytes, "sample_us": seconds * 1e6}


def run_child(which: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", which]
    for key in ("capacity", "frame_stack", "size", "episode_length", "batch", "samples"):
        command += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {which} measurement failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions (C)")
    parser.add_argument("--frame-stack", type=int, default=4)
    parser.add_argument("--size", type=int, default=84, help="frames are size×size uint8")
    parser.add_argument("--episode-length", type=int, default=1_000, help="mean, in steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2_000, help="batches timed")
    parser.add_argument("--skip-sb3", action="store_true", help="measure rlsoft only")
    parser.add_argument("--child", choices=["rlsoft", "sb3"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.capacity < 1 or args.frame_stack < 1 or args.size < 1 or args.episode_length < 1:
        parser.error("--capacity, --frame-stack, --size and --episode-length must be positive")
    if args.child:
        measure = measure_rlsoft if args.child == "rlsoft" else measure_sb3
        print(json.dumps(measure(args)))
        return 0

    c, k, frame = args.capacity, args.frame_stack, args.size * args.size
    print(f"capacity C = {c:,} transitions of {k}×{args.size}×{args.size} uint8 observations")
    rows = [("rlsoft FrameReplayBuffer (frames once)", c * frame, run_child("rlsoft", args))]
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    if args.skip_sb3 or not have_sb3:
        why = "--skip-sb3" if args.skip_sb3 else "stable-baselines3 is not installed"
        rows.append(("SB3 optimize_memory_usage=True", c * k * frame, None))
    else:
        why = ""
        rows.append(("SB3 optimize_memory_usage=True", c * k * frame, run_child("sb3", args)))
    rows.append(("obs + next_obs stacks (plain)", 2 * c * k * frame, None))
    print(f"{'':40} {'arithmetic':>11} {'measured RSS':>13} {'sample µs':>10}")
    for name, arithmetic, result in rows:
        rss = f"{result['rss'] / GB:10.3f} GB" if result else f"{'—':>13}"
        us = f"{result['sample_us']:10.1f}" if result else f"{'—':>10}"
        print(f"{name:40} {arithmetic / GB:8.3f} GB {rss} {us}")
    print(
        f"sample µs: a batch of {args.batch} with uint8 observations (SB3: its sample()); "
        f"rlsoft into float32 arrays: {rows[0][2]['sample_us_float32']:.1f} µs"
    )
    ours, sb3 = rows[0][2], rows[1][2]
    print(f"arithmetic ratio rlsoft / SB3: {c * frame / (c * k * frame):.2f}× (goal ≤ 0.3×)")
    if sb3 is not None:
        print(f"measured ratio rlsoft / SB3:   {ours['rss'] / sb3['rss']:.2f}× (goal ≤ 0.3×)")
    else:
        print(f"SB3 not measured ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
