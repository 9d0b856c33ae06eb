"""Procedural motion families on anny's rig, with per-video randomness.

Rotations are "local-ref" axis-angles about the body-frame axes (X = subject's left, Y = back,
Z = up). Signs, found on the rig: rotation about -X swings an arm or leg forward, about +X bends
the spine forward and flexes a knee; about -Y raises the left arm sideways (+Y the right one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosec.body.anny_body import POSE_BONES

FAMILIES = ("dance", "walk", "turn", "arms", "squat", "kick")
TRAIN_FAMILIES = ("dance", "walk", "turn", "arms")
UNSEEN_FAMILIES = ("squat", "kick")  # only in the `wild` test split


@dataclass
class Motion:
    """body_pose (F,K,3) over POSE_BONES; yaw (F,) radians about the vertical (0 = facing the
    camera); offset (F,3) body-frame translation in metres (X left, Y back, Z up)."""

    family: str
    body_pose: np.ndarray
    yaw: np.ndarray
    offset: np.ndarray


class _Pose:
    def __init__(self, n: int):
        self.rot = np.zeros((n, len(POSE_BONES), 3))

    def add(self, bone: str, axis: int, angle: np.ndarray) -> None:
        self.rot[:, POSE_BONES.index(bone), axis] += angle


def make_motion(
    family: str, num_frames: int, fps: float, rng: np.random.Generator, speed: float = 1.0
) -> Motion:
    """A random instance of `family` lasting `num_frames` frames at `fps`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown motion family '{family}' (one of {FAMILIES})")
    n = num_frames
    t = np.arange(n) / fps * speed
    u = rng.uniform
    ph = u(0, 2 * np.pi)
    p = _Pose(n)
    yaw = np.full(n, u(-0.35, 0.35))
    off = np.zeros((n, 3))
    if family == "dance":
        f = u(0.6, 1.1)
        w = 2 * np.pi * f
        a = u(0.8, 1.4)
        p.add("upperarm01.L", 1, -a * (0.5 + 0.5 * np.sin(w * t + ph)))  # raise sideways
        p.add("upperarm01.R", 1, a * (0.5 + 0.5 * np.sin(w * t + ph + np.pi * u(0.5, 1.0))))
        p.add("lowerarm01.L", 0, -u(0.3, 1.2) * (0.5 + 0.5 * np.sin(2 * w * t + ph)))
        p.add("lowerarm01.R", 0, -u(0.3, 1.2) * (0.5 + 0.5 * np.cos(2 * w * t + ph)))
        p.add("spine04", 1, 0.25 * np.sin(w * t + ph))  # side sway
        p.add("spine02", 2, 0.35 * np.sin(0.5 * w * t + ph))  # twist
        p.add("upperleg01.L", 0, -0.35 * np.clip(np.sin(w * t + ph), 0, None))
        p.add("lowerleg01.L", 0, 0.6 * np.clip(np.sin(w * t + ph), 0, None))
        p.add("upperleg01.R", 0, -0.35 * np.clip(-np.sin(w * t + ph), 0, None))
        p.add("lowerleg01.R", 0, 0.6 * np.clip(-np.sin(w * t + ph), 0, None))
        yaw = yaw + u(0.3, 0.7) * np.sin(0.5 * w * t + ph)
        off[:, 0] = 0.15 * np.sin(0.5 * w * t + ph)
        off[:, 2] = -0.04 * (1 + np.sin(2 * w * t + ph)) / 2
    elif family == "walk":
        w = 2 * np.pi * u(0.8, 1.1)
        s = np.sin(w * t + ph)
        amp = u(0.35, 0.55)
        p.add("upperleg01.L", 0, -amp * s)
        p.add("upperleg01.R", 0, amp * s)
        p.add("lowerleg01.L", 0, 0.8 * np.clip(np.cos(w * t + ph), 0, None))
        p.add("lowerleg01.R", 0, 0.8 * np.clip(-np.cos(w * t + ph), 0, None))
        p.add("upperarm01.L", 0, amp * s)
        p.add("upperarm01.R", 0, -amp * s)
        p.add("lowerarm01.L", 0, -0.3 - 0.2 * np.clip(s, 0, None))
        p.add("lowerarm01.R", 0, -0.3 - 0.2 * np.clip(-s, 0, None))
        # Walk across the frame, side-on to the camera.
        side = rng.choice([-1.0, 1.0])
        yaw = np.full(n, side * np.pi / 2 + u(-0.3, 0.3))
        dist = u(0.6, 1.0)
        off[:, 1] = -np.linspace(-dist / 2, dist / 2, n)  # forward is -Y
        off[:, 2] = 0.02 * np.abs(np.sin(w * t + ph))
    elif family == "turn":
        total = u(0.6, 1.0) * np.pi * rng.choice([-1.0, 1.0])
        yaw = yaw + total * (0.5 - 0.5 * np.cos(np.pi * np.linspace(0, 1, n)))
        p.add("upperarm01.L", 1, -u(0.0, 0.5) * np.ones(n))
        p.add("upperarm01.R", 1, u(0.0, 0.5) * np.ones(n))
        p.add("lowerarm01.L", 0, -u(0.2, 1.0) * np.ones(n))
        p.add("head", 2, 0.3 * np.sin(2 * np.pi * 0.3 * t + ph))
        p.add("upperleg01.L", 0, -0.15 * np.sin(2 * np.pi * 0.6 * t + ph))
        p.add("upperleg01.R", 0, 0.15 * np.sin(2 * np.pi * 0.6 * t + ph))
    elif family == "arms":
        w = 2 * np.pi * u(0.5, 0.9)
        p.add("upperarm01.L", 0, -u(0.8, 1.6) * (0.5 - 0.5 * np.cos(w * t + ph)))  # forward raise
        p.add("upperarm01.R", 1, u(0.8, 1.6) * (0.5 - 0.5 * np.cos(w * t + ph + u(1, 2))))  # side raise
        p.add("lowerarm01.L", 0, -u(0.5, 1.5) * (0.5 - 0.5 * np.cos(w * t)))
        p.add("lowerarm01.R", 0, -u(0.5, 1.5) * (0.5 - 0.5 * np.sin(w * t)))
        p.add("wrist.L", 0, 0.4 * np.sin(2 * w * t))
        p.add("neck01", 2, 0.25 * np.sin(w * t + ph))
    elif family == "squat":
        w = 2 * np.pi * u(0.4, 0.7)
        d = 0.5 - 0.5 * np.cos(w * t + ph)
        depth = u(0.8, 1.3)
        for side in ("L", "R"):
            p.add(f"upperleg01.{side}", 0, -depth * d)
            p.add(f"lowerleg01.{side}", 0, 2 * depth * d)
            p.add(f"foot.{side}", 0, -depth * d)
        p.add("spine04", 0, 0.4 * depth * d)
        p.add("upperarm01.L", 0, -1.3 * d)
        p.add("upperarm01.R", 0, -1.3 * d)
        # Thigh and shin lengths (~0.43 m each) give the drop of the hips.
        off[:, 2] = -0.43 * 2 * (1 - np.cos(depth * d))
    elif family == "kick":
        w = 2 * np.pi * u(0.5, 0.8)
        k = np.clip(np.sin(w * t + ph), 0, None) ** 2
        side = "L" if rng.random() < 0.5 else "R"
        p.add(f"upperleg01.{side}", 0, -u(0.9, 1.4) * k)
        p.add(f"lowerleg01.{side}", 0, 0.9 * k * (1 - k))
        p.add("spine04", 0, -0.2 * k)
        p.add("upperarm01.L", 1, -1.0 * k)
        p.add("upperarm01.R", 1, 1.0 * k)
        yaw = yaw + rng.choice([-1.0, 1.0]) * u(0.4, 0.9)
    return Motion(family, p.rot.astype(np.float32), yaw.astype(np.float32), off.astype(np.float32))
