"""Sharded on-disk dataset of depth frames with 3-D joint labels ("v2v-shards", version 1).

Layout of a dataset folder::

    meta.json            {"format": "v2v-shards", "version": 1, "skeleton": ..., "joint_names": [...],
                          "count": N, "fingerprint": "sha256:...",
                          "shards": [{"file": "shard-00000.npz", "count": k, "sha256": ...}, ...], ...extra}
    shard-00000.npz      up to ``shard_size`` frames, compressed

Arrays of a shard with n frames: ``depth`` uint16 (sum of crop areas,) all crops
flattened and concatenated; ``starts`` int64 (n+1,) where frame i's pixels are
``depth[starts[i]:starts[i+1]]``; ``boxes`` int32 (n, 4) = (u0, v0, w, h) of each
crop in its full image; ``joints`` float32 (n, J, 3) mm camera frame;
``intrinsics`` float64 (n, 4) = (fx, fy, cx, cy); ``image_size`` int32 (n, 2) =
(W, H); ``handedness`` int8 (n,) (0 right, 1 left, -1 unknown); ``info`` unicode
(n,) one JSON object per frame.

Optional, only in shards of datasets with several targets per frame (``v2v synth --hands``;
``meta.json`` then records ``max_targets``): ``targets`` float32 (n, K, J, 3), every
target's joints (mm), NaN-padded to the shard's largest count K, and ``target_count``
int8 (n,). ``joints`` still holds one target per frame, so readers and trainers that know
nothing about targets keep working on such data, and older shards read as before.

Frames are stored as uint16 millimetre crops around the hand because that is all
the network looks at: a 320 mm cube at 500 mm is ~400x400 px instead of 640x480,
and zlib packs the zero background to almost nothing. Shards keep files few and
large (fast sequential reads) while still allowing random access.

``fingerprint`` identifies the content (see :func:`arrays_digest`): training
checkpoints and evaluation reports record it, so a number can always be traced to
the exact frames it was measured on, and two machines can tell whether they
generated the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from v2v_ros.core.camera import Intrinsics, cube_footprint

FORMAT = "v2v-shards"
VERSION = 1
_HANDEDNESS = {"right": 0, "left": 1}


@dataclass
class Frame:
    """One depth frame with its labels.

    ``depth`` is float32 mm (0 = invalid), either a crop or the whole image;
    ``offset`` = (u0, v0) is where ``depth[0, 0]`` sits in the full image of size
    ``image_size`` = (W, H); ``joints`` (J, 3) float32 mm in the camera frame.
    """

    depth: np.ndarray
    offset: tuple[int, int]
    intrinsics: Intrinsics
    image_size: tuple[int, int]
    joints: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    # (K, J, 3) mm: every target of a multi-target frame (K may be 0); None for single-target data
    targets: np.ndarray | None = None

    def full_depth(self) -> np.ndarray:
        """The (H, W) float32 image with the crop pasted at its offset and zeros elsewhere."""
        width, height = self.image_size
        h, w = self.depth.shape
        u0, v0 = self.offset
        if (u0, v0, w, h) == (0, 0, width, height):
            return self.depth
        out = np.zeros((height, width), dtype=np.float32)
        out[v0 : v0 + h, u0 : u0 + w] = self.depth
        return out


def cube_box(
    centre: np.ndarray, cube_mm: float, intrinsics: Intrinsics, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """(u0, v0, w, h) of the projection of an axis-aligned cube of edge ``cube_mm`` at ``centre`` (mm), clipped."""
    u0, v0, u1, v1 = cube_footprint(intrinsics, centre, cube_mm, image_size[0], image_size[1])
    return u0, v0, max(u1 - u0, 0), max(v1 - v0, 0)


def crop_to_cube(frame: Frame, cube_mm: float = 320.0, centre: np.ndarray | None = None) -> Frame:
    """The part of ``frame`` inside the projected cube centred at ``centre`` (default: mean of the joints).

    A frame with several targets and no ``centre`` keeps the box enclosing every target's cube, so
    that a crop around one hand still shows the hand touching or hiding it; one with an empty target
    list (no hand) is returned whole.
    """
    full = frame.full_depth()
    if centre is None and frame.targets is not None:
        if len(frame.targets) == 0:
            return replace(frame, depth=full, offset=(0, 0))
        boxes = np.array([cube_box(t.mean(axis=0), cube_mm, frame.intrinsics, frame.image_size) for t in frame.targets])
        u0, v0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
        u1, v1 = int((boxes[:, 0] + boxes[:, 2]).max()), int((boxes[:, 1] + boxes[:, 3]).max())
        crop = np.ascontiguousarray(full[v0:v1, u0:u1])
        return replace(frame, depth=crop, offset=(u0, v0))
    c = frame.joints.mean(axis=0) if centre is None else centre
    u0, v0, w, h = cube_box(c, cube_mm, frame.intrinsics, frame.image_size)
    crop = np.ascontiguousarray(full[v0 : v0 + h, u0 : u0 + w])
    return replace(frame, depth=crop, offset=(u0, v0))


def _frame_from_arrays(arrs: dict[str, np.ndarray], i: int) -> Frame:
    u0, v0, w, h = (int(x) for x in arrs["boxes"][i])
    s0, s1 = int(arrs["starts"][i]), int(arrs["starts"][i + 1])
    depth = arrs["depth"][s0:s1].reshape(h, w).astype(np.float32)
    fx, fy, cx, cy = (float(x) for x in arrs["intrinsics"][i])
    width, height = (int(x) for x in arrs["image_size"][i])
    info = json.loads(str(arrs["info"][i])) if "info" in arrs else {}
    targets = None
    if "targets" in arrs:
        targets = arrs["targets"][i, : int(arrs["target_count"][i])].copy()
    return Frame(depth, (u0, v0), Intrinsics(fx, fy, cx, cy), (width, height), arrs["joints"][i].copy(), info,
                 targets)


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over a shard's arrays (names, dtypes, shapes and bytes, in name order).

    Hashes the content, not the ``.npz`` file: zip members carry a timestamp, so two
    runs that write identical frames produce different files but the same digest.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def combine_digests(digests: Iterable[str]) -> str:
    """Dataset fingerprint: sha256 of the shards' digests in shard order (``sha256:`` prefixed)."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d.encode())
    return "sha256:" + h.hexdigest()


def _to_uint16(depth: np.ndarray) -> np.ndarray:
    d = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(d), 0, 65535).astype(np.uint16)


def _target_arrays(frames: Sequence[Frame], num_joints: int) -> dict[str, np.ndarray]:
    """``targets`` (n, K, J, 3) NaN-padded and ``target_count`` (n,) of one shard's frames.

    A frame without ``targets`` counts its ``joints`` as its one target (none when they are NaN).
    """
    per = []
    for f in frames:
        if f.targets is not None:
            t = np.asarray(f.targets, dtype=np.float32).reshape(-1, num_joints, 3)
        else:
            j = np.asarray(f.joints, dtype=np.float32)[None]
            t = j if np.isfinite(j).all() else j[:0]
        per.append(t)
    k = max(1, max(len(t) for t in per))
    out = np.full((len(frames), k, num_joints, 3), np.nan, np.float32)
    for i, t in enumerate(per):
        out[i, : len(t)] = t
    return {"targets": out, "target_count": np.array([len(t) for t in per], np.int8)}


class ShardWriter:
    """Writes frames into ``root`` shard by shard; ``meta.json`` is written on :meth:`close`.

    Use as a context manager. The folder may exist but must not already hold a
    dataset (``meta.json``), so a run never silently mixes with an old one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        joint_names: Sequence[str],
        skeleton: str,
        meta_extra: dict[str, Any] | None = None,
        shard_size: int = 256,
    ) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / "meta.json").exists():
            raise FileExistsError(f"{self.root / 'meta.json'} exists; refusing to overwrite a dataset")
        self.joint_names = list(joint_names)
        self.skeleton = skeleton
        self.meta_extra = dict(meta_extra or {})
        self.shard_size = shard_size
        self.shards: list[dict[str, Any]] = []
        self.count = 0
        self._buf: list[Frame] = []
        self._closed = False
        self.max_targets = 0  # largest target count of a frame written (0: single-target data)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()

    def add(self, frame: Frame) -> None:
        joints = np.asarray(frame.joints)
        if joints.shape != (len(self.joint_names), 3):
            raise ValueError(f"frame joints must be ({len(self.joint_names)}, 3), got {joints.shape}")
        self._buf.append(frame)
        if len(self._buf) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        frames, self._buf = self._buf, []
        crops = [_to_uint16(f.depth) for f in frames]
        sizes = np.array([c.size for c in crops], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays = {
            "depth": np.concatenate([c.ravel() for c in crops]) if crops else np.zeros(0, np.uint16),
            "starts": starts,
            "boxes": np.array([[f.offset[0], f.offset[1], c.shape[1], c.shape[0]] for f, c in zip(frames, crops, strict=True)],
                              dtype=np.int32),
            "joints": np.stack([np.asarray(f.joints, dtype=np.float32) for f in frames]),
            "intrinsics": np.array([[f.intrinsics.fx, f.intrinsics.fy, f.intrinsics.cx, f.intrinsics.cy]
                                    for f in frames], dtype=np.float64),
            "image_size": np.array([f.image_size for f in frames], dtype=np.int32),
            "handedness": np.array([_HANDEDNESS.get(str(f.info.get("handedness")), -1) for f in frames], np.int8),
            "info": np.array([json.dumps(f.info, sort_keys=True) for f in frames], dtype=np.str_),
        }
        if any(f.targets is not None for f in frames):
            arrays.update(_target_arrays(frames, len(self.joint_names)))
            self.max_targets = max(self.max_targets, int(arrays["target_count"].max(initial=0)))
        name = f"shard-{len(self.shards):05d}.npz"
        tmp = self.root / (name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.root / name)
        self.shards.append({"file": name, "count": len(frames), "sha256": arrays_digest(arrays)})
        self.count += len(frames)

    @property
    def fingerprint(self) -> str:
        """Content fingerprint of the shards written so far (the dataset's, once closed)."""
        return combine_digests(s["sha256"] for s in self.shards)

    def close(self) -> None:
        """Flush the last partial shard and write ``meta.json`` (atomically)."""
        if self._closed:
            return
        self._flush()
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "skeleton": self.skeleton,
            "joint_names": self.joint_names,
            "count": self.count,
            **({"max_targets": self.max_targets} if self.max_targets else {}),
            **{k: v for k, v in self.meta_extra.items()
               if k not in ("shards", "count", "format", "version", "fingerprint")},
            "fingerprint": self.fingerprint,
            "shards": self.shards,
        }
        tmp = self.root / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.root / "meta.json")
        self._closed = True


class ShardDataset:
    """Random and streaming access to a shard folder; the last ``cache_shards`` decompressed shards are kept."""

    def __init__(self, root: str | os.PathLike[str], cache_shards: int = 2) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} not found: not a v2v-shards dataset")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {self.meta.get('format')!r} is not {FORMAT!r}")
        if int(self.meta.get("version", -1)) > VERSION:
            raise ValueError(f"{meta_path}: version {self.meta.get('version')} is newer than this reader ({VERSION})")
        self.joint_names: list[str] = list(self.meta["joint_names"])
        self.skeleton: str = self.meta["skeleton"]
        self.shard_sizes: list[int] = [int(s["count"]) for s in self.meta["shards"]]
        self._files = [str(s["file"]) for s in self.meta["shards"]]
        self._ends = np.cumsum(self.shard_sizes).astype(np.int64)
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_size = max(int(cache_shards), 1)

    @property
    def num_shards(self) -> int:
        return len(self._files)

    @property
    def fingerprint(self) -> str:
        """Content fingerprint recorded when the dataset was written (computed now for older datasets)."""
        recorded = self.meta.get("fingerprint")
        return str(recorded) if recorded else self.compute_fingerprint()

    def compute_fingerprint(self) -> str:
        """Fingerprint recomputed from the shard files: equals :attr:`fingerprint` unless a shard changed."""
        return combine_digests(arrays_digest(self._load_uncached(k)) for k in range(self.num_shards))

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def _load(self, k: int) -> dict[str, np.ndarray]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        with np.load(self.root / self._files[k], allow_pickle=False) as z:
            arrs = {name: z[name] for name in z.files}
        self._cache[k] = arrs
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arrs

    def locate(self, index: int) -> tuple[int, int]:
        """(shard, index within shard) of global frame ``index`` (negative counts from the end)."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range for a dataset of {n}")
        k = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[k - 1]) if k else 0
        return k, index - start

    def __getitem__(self, index: int) -> Frame:
        k, j = self.locate(int(index))
        return _frame_from_arrays(self._load(k), j)

    def iter_shard(self, k: int) -> Iterator[Frame]:
        """Frames of shard ``k`` in order, decompressing it once (without evicting the random-access cache)."""
        if not 0 <= k < self.num_shards:
            raise IndexError(f"shard {k} out of range ({self.num_shards} shards)")
        arrs = self._cache[k] if k in self._cache else self._load_uncached(k)
        for j in range(self.shard_sizes[k]):
            yield _frame_from_arrays(arrs, j)

    def _load_uncached(self, k: int) -> dict[str, np.ndarray]:
        with np.load(self.root / self._files[k], allow_pickle=False) as z:
            return {name: z[name] for name in z.files}

    def __iter__(self) -> Iterator[Frame]:
        for k in range(self.num_shards):
            yield from self.iter_shard(k)

    def shard_arrays(self, k: int) -> dict[str, np.ndarray]:
        """Raw arrays of shard ``k`` (for vectorised statistics over joints, handedness, ...)."""
        return self._load(k)
