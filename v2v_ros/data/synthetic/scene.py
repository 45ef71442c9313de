"""Placing the hand in front of the camera, and the clutter around it.

Clutter is what makes a synthetic set useful for a real camera: the network must
learn to ignore a table under the hand, a body behind it and objects beside it.
Everything is kept clear of the hand so the labels stay unambiguous (nothing
occludes the hand except the hand and its own forearm).
"""

from __future__ import annotations

import numpy as np

from v2v_ros.core.camera import Intrinsics
from v2v_ros.data.synthetic.hand import HandModel, HandPose, random_rotation, rot_y, rot_z
from v2v_ros.data.synthetic.primitives import Box, Cylinder, Ellipsoid, Plane, Primitive, Sphere


def place_hand(
    rng: np.random.Generator,
    model: HandModel,
    pose: HandPose,
    joints_hand: np.ndarray,
    intrinsics: Intrinsics,
    size: tuple[int, int],
    depth_range: tuple[float, float] = (250.0, 1000.0),
    margin_px: float = 4.0,
    back_facing_accept: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation and translation with every joint inside the image and the joint mean at a depth in range.

    The rotation is uniform except that (a) the forearm never points at the camera
    (arms come from the body, behind the hand) and (b) a palm facing away is kept
    only with probability ``back_facing_accept``, so palms are seen more often.
    """
    width, height = size
    z_lo, z_hi = depth_range
    mean = joints_hand.mean(axis=0)
    fdir = model.forearm_direction(pose)
    elbow = fdir * model.shape.forearm_length - mean
    for attempt in range(400):
        rot = random_rotation(rng)
        fcam = rot @ fdir
        if fcam[2] < -0.35:
            continue
        palm_normal_z = rot[2, 2]  # hand +z (palm normal) in the camera frame; facing us when < 0
        if palm_normal_z > 0 and rng.random() > back_facing_accept:
            continue
        lo = z_lo if attempt < 200 else 0.5 * (z_lo + z_hi)
        zc = rng.uniform(lo, z_hi)
        rel = (joints_hand - mean) @ rot.T
        # several candidate image positions of the hand centre for this rotation and depth
        uc = rng.uniform(0, width - 1, 8)
        vc = rng.uniform(0, height - 1, 8)
        centres = np.stack([(uc - intrinsics.cx) * zc / intrinsics.fx, (vc - intrinsics.cy) * zc / intrinsics.fy,
                            np.full(8, zc)], axis=1)
        pts = centres[:, None, :] + rel[None, :, :]  # (8, J, 3)
        z = pts[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = intrinsics.fx * pts[..., 0] / z + intrinsics.cx
            v = intrinsics.fy * pts[..., 1] / z + intrinsics.cy
        ok = (
            np.all(z > 100.0, axis=1)
            & np.all((u >= margin_px) & (u <= width - 1 - margin_px), axis=1)
            & np.all((v >= margin_px) & (v <= height - 1 - margin_px), axis=1)
            & (centres[:, 2] + (rot @ elbow)[2] > 80.0)
        )
        if ok.any():
            k = int(np.argmax(ok))
            return rot, centres[k] - rot @ mean
    raise RuntimeError("could not place the hand inside the image; is the depth range too close for this camera?")


def sample_clutter(
    rng: np.random.Generator,
    joints: np.ndarray,
    intrinsics: Intrinsics,
    size: tuple[int, int],
    p_table: float = 0.5,
    p_body: float = 0.35,
    max_objects: int = 3,
) -> tuple[list[Primitive], list[str]]:
    """Table plane, a body behind the hand and distractor objects; returns primitives and their names."""
    prims: list[Primitive] = []
    names: list[str] = []
    centre = joints.mean(axis=0)
    hand_r = float(np.linalg.norm(joints - centre, axis=1).max())
    if rng.random() < p_table:
        # normal from "facing the camera" (a wall / table seen from above) to "pointing up" (a table below)
        tilt, az = np.radians(rng.uniform(0.0, 80.0)), rng.uniform(-25.0, 25.0)
        n = rot_z(az) @ np.array([0.0, -np.sin(tilt), -np.cos(tilt)])
        offset = float((joints @ n).min()) - rng.uniform(15.0, 250.0) - 15.0
        if offset < -50.0:  # camera on the visible side
            prims.append(Plane(n * offset, n))
            names.append("table")
    if rng.random() < p_body:
        c = centre + np.array([rng.uniform(-150, 150), rng.uniform(-100, 250), hand_r + rng.uniform(250, 600)])
        radii = np.array([rng.uniform(150, 200), rng.uniform(220, 300), rng.uniform(90, 130)])
        prims.append(Ellipsoid(c, radii, rot_y(rng.uniform(-30, 30)) @ rot_z(rng.uniform(-15, 15))))
        head = c - np.array([0.0, radii[1] + rng.uniform(90, 130), 0.0])
        prims.append(Sphere(head, rng.uniform(85, 105)))
        names.append("body")
    # distractor objects, clear of the hand in 3-D and never in front of it on screen
    width, height = size
    uv = intrinsics.to_uvd(joints)
    hbox = (uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max())
    for _ in range(int(rng.integers(0, max_objects + 1))):
        kind = ("box", "sphere", "cylinder")[int(rng.integers(3))]
        for _try in range(10):
            zc = rng.uniform(300.0, 2000.0)
            u, v = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
            p = intrinsics.to_xyz(np.array([u, v, zc]))
            if kind == "box":
                half = rng.uniform(20.0, 100.0, 3)
                prim: Primitive = Box(p, half, random_rotation(rng))
            elif kind == "sphere":
                prim = Sphere(p, rng.uniform(20.0, 90.0))
            else:
                ax = random_rotation(rng)[:, 2] * rng.uniform(25.0, 125.0)
                prim = Cylinder(p - ax, p + ax, rng.uniform(20.0, 60.0))
            _, r = prim.bounding_sphere()
            if np.linalg.norm(joints - p, axis=1).min() < r + 60.0:
                continue
            if zc - r < joints[:, 2].max() + 30.0:  # could be in front of the hand: keep it off the hand's box
                rpx = abs(intrinsics.fx) * r / max(zc - r, 50.0)
                if u + rpx > hbox[0] - 10 and u - rpx < hbox[2] + 10 and v + rpx > hbox[1] - 10 and v - rpx < hbox[3] + 10:
                    continue
            prims.append(prim)
            names.append(kind)
            break
    return prims, names
