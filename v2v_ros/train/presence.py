"""Training the hand-presence classifier (v2v_ros.core.presence) on synthetic hands and hand-free scenes.

The classifier is asked about the cubes the pipeline really proposes, so its data are
crops at those centres: on hand frames (``render_frame``) the true hand centre with a
few centimetres of jitter (positives) and the detector's other peaks far from the hand
(negatives: the cup or forearm next to a hand); on hand-free frames
(``v2v_ros.data.synthetic.negatives``) every peak of the detector, refined as the
estimator refines it, the depth-band localiser's centre and a random surface point
(negatives). The validation split (another seed) keeps the crops per frame, so the
threshold is calibrated on what decides whether a frame publishes a skeleton: the
most hand-like of its candidate cubes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2v_ros.core.presence import Presence, PresenceMeta, PresenceNet, presence_input
from v2v_ros.train.config import YamlConfig


@dataclass
class PresenceConfig(YamlConfig):
    # Pose model whose companions (x.detector / x.refiner) propose the candidate centres, as at run time.
    candidates_model: str = "models/hand_default.safetensors"
    train_data: str = "data/presence_train.npz"
    val_data: str = "data/presence_val.npz"
    train_frames: int = 3000  # hand frames, and as many hand-free frames (rendered when train_data is missing)
    val_frames: int = 1000
    train_seed: int = 21
    val_seed: int = 23
    # More hand-free frames of the kinds that look most like a hand (rendered into hard_data when missing;
    # 0 = none): the validation split showed cups, then boxes and discs, passing most often.
    hard_data: str = "data/presence_train_hard.npz"
    hard_frames: int = 0
    hard_kinds: tuple[str, ...] = ("cup", "box", "disc")
    hard_seed: int = 25
    # Scenes with two hands (v2v_ros.data.synthetic.multi; rendered into two_hand_data when missing; 0 = none):
    # each hand at least half visible is a positive even when the other touches or hides part of it, the
    # detector's peaks far from both hands are negatives. Without them the classifier, which had seen one
    # hand per crop, doubted hands that touch another.
    two_hand_data: str = "data/presence_train_two.npz"
    two_hand_frames: int = 0
    two_hand_seed: int = 27
    hypotheses: int = 8  # detector peaks per frame (the estimator's default)
    jitter_mm: float = 15.0  # std of the positives' offset from the true hand centre (per axis)
    positive_within_mm: float = 40.0  # a candidate this close to the hand centre is a positive
    negative_beyond_mm: float = 90.0  # ... this far, a negative; in between it is not used
    cube_size: float = 200.0
    input_size: int = 64
    crop_scale: float = 1.5
    target_false_positive: float = 0.005  # hand-free validation frames allowed to pass the threshold
    out: str = "runs/presence/hand_default.presence.safetensors"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    workers: int = 2


# -- data ----------------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}
TWO_HANDS = ("two_hands",)  # the ``kinds`` of a job that renders a two-hand scene
MIN_VISIBLE = 0.5  # a hand less visible than this is neither a positive nor held against a candidate near it


def _init_worker(model: str, meta: dict[str, Any], hypotheses: int) -> None:
    torch.set_num_threads(1)
    from v2v_ros.core.checkpoint import load_checkpoint  # noqa: PLC0415
    from v2v_ros.core.detector import Detector  # noqa: PLC0415
    from v2v_ros.core.localize import localizer_for  # noqa: PLC0415
    from v2v_ros.core.refiner import Refiner  # noqa: PLC0415

    _, pose_meta = load_checkpoint(model)
    _STATE.update(detector=Detector.load(Detector.paths(model)[0]), refiner=Refiner.load(Refiner.paths(model)[0]),
                  localizer=localizer_for(pose_meta), meta=PresenceMeta(**meta), hypotheses=hypotheses)


def candidate_centres(depth: np.ndarray, intr: Any, hypotheses: int) -> list[np.ndarray]:
    """The centres the estimator may check on this frame: refined detector peaks, else the localiser's."""
    det, ref = _STATE["detector"], _STATE["refiner"]
    found = list(det.hypotheses(depth, intr, hypotheses))
    band = _STATE["localizer"].locate(depth, intr)
    if band is not None:
        found.append(band)
    return [np.asarray(ref(depth, intr, c), np.float64) for c in found]


def _crops(job: tuple[Any, ...]) -> dict[str, Any]:
    """Crops of one frame: (input crops int8, labels, source) and the frame's kind.

    ``source``: 0 a jittered true hand centre, 1 a candidate the pipeline proposes, 2 a random
    surface point, 3 a two-hand scene's crop on the image without one of its hands.
    """
    from v2v_ros.data.synthetic import render_frame  # noqa: PLC0415
    from v2v_ros.data.synthetic.negatives import NEGATIVE_KINDS, render_negative  # noqa: PLC0415

    seed, index, negative, jitter, pos_mm, neg_mm, kinds = job
    meta = _STATE["meta"]
    if kinds == TWO_HANDS:
        from v2v_ros.data.synthetic.multi import HandsSpec, render_multi_frame  # noqa: PLC0415
        from v2v_ros.train.stream import without_hands_as_estimated  # noqa: PLC0415

        frame = render_multi_frame(seed, index, hands=HandsSpec(2, 2))
    else:
        frame = render_negative(seed, index, kinds=kinds or NEGATIVE_KINDS) if negative else render_frame(seed, index)
    depth, intr = frame.depth, frame.intrinsics
    rng = np.random.default_rng([seed, index, int(negative), 99])
    centres, labels, source = [], [], []
    masked_images: list[np.ndarray] = []  # the image of each of the last centres (two-hand scenes), else depth
    cands = candidate_centres(depth, intr, _STATE["hypotheses"]) if np.any(depth > 0) else []
    if kinds == TWO_HANDS:
        visible = [float(t["visible"]) for t in frame.info["targets"]]
        truths = [t.mean(axis=0).astype(np.float64) for t in frame.targets]
        for truth, v in zip(truths, visible, strict=True):
            if v >= MIN_VISIBLE:
                for _ in range(2):
                    centres.append(truth + np.clip(rng.normal(0.0, jitter, 3), -2.5 * jitter, 2.5 * jitter))
                    labels.append(1), source.append(0)
        for c in cands:
            d = [float(np.linalg.norm(c - t)) for t in truths]
            near = int(np.argmin(d))
            if d[near] <= pos_mm and visible[near] >= MIN_VISIBLE:
                centres.append(c), labels.append(1), source.append(1)
            elif min(d) >= neg_mm:
                centres.append(c), labels.append(0), source.append(1)
        # Each hand again on the image without the other one, as the estimator asks about it once it has
        # found the other hand (a second look, a tracker's followed cube): a positive; the other hand's
        # remains there (its centre, the candidates that were on it) are negatives, or the pipeline would
        # find a found hand again in what its mask left.
        for i, j in ((0, 1), (1, 0)):
            if visible[i] < MIN_VISIBLE:
                continue
            masked = without_hands_as_estimated(depth, intr, [frame.targets[j]], rng)
            here = [truths[i] + np.clip(rng.normal(0.0, jitter, 3), -2.5 * jitter, 2.5 * jitter) for _ in range(2)]
            gone = [truths[j]] + [c for c in cands if np.linalg.norm(c - truths[j]) <= pos_mm
                                  and np.linalg.norm(c - truths[i]) >= neg_mm]
            for c, label in [(c, 1) for c in here] + [(c, 0) for c in gone]:
                centres.append(c), labels.append(label), source.append(3), masked_images.append(masked)
    elif negative:
        for c in cands:
            centres.append(c), labels.append(0), source.append(1)
        ys, xs = np.nonzero(depth > 0)
        if ys.size:  # a random surface point, 15 mm behind the surface like a hand centre
            k = int(rng.integers(ys.size))
            p = intr.to_xyz(np.array([xs[k], ys[k], depth[ys[k], xs[k]] + 15.0]))
            centres.append(p), labels.append(0), source.append(2)
    else:
        truth = frame.joints.mean(axis=0).astype(np.float64)
        for _ in range(2):
            centres.append(truth + np.clip(rng.normal(0.0, jitter, 3), -2.5 * jitter, 2.5 * jitter))
            labels.append(1), source.append(0)
        for c in cands:
            d = float(np.linalg.norm(c - truth))
            if d <= pos_mm or d >= neg_mm:
                centres.append(c), labels.append(int(d <= pos_mm)), source.append(1)
    images = [depth] * (len(centres) - len(masked_images)) + masked_images
    x = np.stack([presence_input(im, intr, c, meta) for im, c in zip(images, centres, strict=True)]) if centres else np.zeros(
        (0, meta.input_size, meta.input_size), np.float32)
    return {"x": np.rint(x * 127).astype(np.int8), "y": np.asarray(labels, np.int8), "source": np.asarray(source, np.int8),
            "kind": "two_hands" if kinds == TWO_HANDS else str(frame.info.get("scene", "hand"))}


def make_presence_data(path: str | Path, cfg: PresenceConfig, seed: int, n: int,
                       hard_kinds: tuple[str, ...] | None = None) -> Path:
    """Render ``n`` hand frames and ``n`` hand-free frames of ``seed`` and store their crops in one .npz
    (with ``hard_kinds``: ``n`` hand-free frames of those kinds only; with :data:`TWO_HANDS`: ``n``
    two-hand scenes)."""
    meta = _meta(cfg)
    sides = (False,) if hard_kinds == TWO_HANDS else (True,) if hard_kinds else (False, True)
    jobs = [(seed, i, neg, cfg.jitter_mm, cfg.positive_within_mm, cfg.negative_beyond_mm, hard_kinds)
            for i in range(n) for neg in sides]
    init = (cfg.candidates_model, {k: v for k, v in asdict(meta).items() if k != "provenance"}, cfg.hypotheses)
    with mp.get_context("spawn").Pool(max(1, cfg.workers), initializer=_init_worker, initargs=init) as pool:
        res = pool.map(_crops, jobs, chunksize=16)
    frame = np.concatenate([np.full(len(r["y"]), k, np.int32) for k, r in enumerate(res)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=np.concatenate([r["x"] for r in res]), y=np.concatenate([r["y"] for r in res]),
                        source=np.concatenate([r["source"] for r in res]), frame=frame,
                        frame_negative=np.array([j[2] for j in jobs]), frame_kind=np.array([r["kind"] for r in res]),
                        seed=seed)
    return path


def _meta(cfg: PresenceConfig) -> PresenceMeta:
    return PresenceMeta(cube_size=cfg.cube_size, input_size=cfg.input_size, crop_scale=cfg.crop_scale)


# -- calibration -----------------------------------------------------------------------------------------
def frame_scores(prob: np.ndarray, data: dict[str, np.ndarray]) -> np.ndarray:
    """Per frame: the highest probability among its candidate cubes (what decides whether it publishes).

    Candidates only (``source`` 1: detector peaks and the localiser's centre): the jittered
    true centres of hand frames are not something the pipeline proposes. A frame without
    candidates scores 0 (nothing to publish).
    """
    n = len(data["frame_negative"])
    out = np.zeros(n, np.float64)
    sel = data["source"] == 1
    np.maximum.at(out, data["frame"][sel], prob[sel])
    return out


def calibrate(scores: np.ndarray, negative: np.ndarray, target_fp: float) -> float:
    """The lowest threshold at which at most ``target_fp`` of the hand-free frames score at or above it."""
    neg = np.sort(scores[negative])[::-1]
    allowed = int(np.floor(target_fp * len(neg)))
    if allowed >= len(neg):
        return 0.0
    # the (allowed+1)-th highest hand-free score must fall below the threshold
    return float(np.nextafter(np.float32(neg[allowed]), np.float32(np.inf)))


def detection_rates(scores: np.ndarray, negative: np.ndarray, kinds: np.ndarray, threshold: float) -> dict[str, Any]:
    passed = scores >= threshold
    out: dict[str, Any] = {"hand_frames": int((~negative).sum()), "hand_free_frames": int(negative.sum()),
                           "recall": float(passed[~negative].mean()) if (~negative).any() else None,
                           "false_positive_rate": float(passed[negative].mean()) if negative.any() else None}
    out["false_positive_by_kind"] = {str(k): round(float(passed[negative & (kinds == k)].mean()), 4)
                                     for k in sorted(set(kinds[negative].tolist()))}
    return out


def predict(net: torch.nn.Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Probabilities of int8 crops (as stored) through ``net`` in eval mode."""
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch].astype(np.float32) / 127.0)[:, None]
            out.append(torch.sigmoid(net(xb)).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)



def _calibrate_on(net: Any, val: dict[str, np.ndarray], target_false_positive: float) -> tuple[float, dict[str, Any]]:
    """Threshold at ``target_false_positive`` of the validation split's hand-free frames, and the rates it gives
    (printed: training and recalibration report the same numbers the same way)."""
    prob = predict(net, val["x"])
    scores = frame_scores(prob, val)
    negative = val["frame_negative"].astype(bool)
    threshold = calibrate(scores, negative, target_false_positive)
    metrics = detection_rates(scores, negative, val["frame_kind"], threshold)
    metrics["threshold"] = threshold
    metrics["crop_accuracy"] = float(((prob >= threshold) == (val["y"] == 1)).mean())
    print(json.dumps(metrics), flush=True)
    return threshold, metrics

def recalibrate_presence(weights: str | Path, cfg: PresenceConfig) -> Path:
    """Set the threshold of a trained classifier from ``cfg.val_data`` and ``cfg.target_false_positive``.

    Why: the rate of hand-free frames that may publish a skeleton is a choice of the
    application (and a real camera's hand-free frames may need another threshold than the
    synthetic ones); the weights need not change for it. The validation crops are rendered
    when ``val_data`` is missing, as in training.
    """
    if not Path(cfg.val_data).exists():
        print(f"rendering {cfg.val_frames} hand + {cfg.val_frames} hand-free frames (seed {cfg.val_seed}) into "
              f"{cfg.val_data}", flush=True)
        make_presence_data(cfg.val_data, cfg, cfg.val_seed, cfg.val_frames)
    pres = Presence.load(weights)
    val = dict(np.load(cfg.val_data))
    threshold, metrics = _calibrate_on(pres.net, val, cfg.target_false_positive)
    pres.meta.threshold = threshold
    pres.meta.provenance = {**pres.meta.provenance, "val": metrics,
                            "recalibrated": {"val_data": cfg.val_data, "target_false_positive": cfg.target_false_positive}}
    return pres.save(weights)


# -- training ---------------------------------------------------------------------------------------------
def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/quarter turns per crop: a hand is a hand at any roll and from either side."""
    out = np.empty_like(x)
    for i, k in enumerate(rng.integers(0, 8, len(x))):
        a = np.rot90(x[i], int(k) % 4)
        out[i] = a[:, ::-1] if k >= 4 else a
    return out


def train_presence(cfg: PresenceConfig) -> Path:
    from tqdm import tqdm  # noqa: PLC0415

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    for path, seed, n in ((cfg.train_data, cfg.train_seed, cfg.train_frames), (cfg.val_data, cfg.val_seed, cfg.val_frames)):
        if not Path(path).exists():
            if not Path(cfg.candidates_model).exists():
                raise FileNotFoundError(f"candidates_model {cfg.candidates_model} not found")
            print(f"rendering {n} hand + {n} hand-free frames (seed {seed}) into {path}", flush=True)
            make_presence_data(path, cfg, seed, n)
    train = dict(np.load(cfg.train_data))
    if cfg.hard_frames > 0:
        if not Path(cfg.hard_data).exists():
            print(f"rendering {cfg.hard_frames} hand-free frames of {', '.join(cfg.hard_kinds)} (seed {cfg.hard_seed}) "
                  f"into {cfg.hard_data}", flush=True)
            make_presence_data(cfg.hard_data, cfg, cfg.hard_seed, cfg.hard_frames, tuple(cfg.hard_kinds))
        hard = np.load(cfg.hard_data)
        for k in ("x", "y", "source"):
            train[k] = np.concatenate([train[k], hard[k]])
    if cfg.two_hand_frames > 0:
        if not Path(cfg.two_hand_data).exists():
            print(f"rendering {cfg.two_hand_frames} two-hand frames (seed {cfg.two_hand_seed}) into {cfg.two_hand_data}",
                  flush=True)
            make_presence_data(cfg.two_hand_data, cfg, cfg.two_hand_seed, cfg.two_hand_frames, TWO_HANDS)
        two = np.load(cfg.two_hand_data)
        for k in ("x", "y", "source"):
            train[k] = np.concatenate([train[k], two[k]])
    val = dict(np.load(cfg.val_data))
    started = time.time()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pos, neg = np.flatnonzero(train["y"] == 1), np.flatnonzero(train["y"] == 0)
    print(f"train crops: {len(pos)} hand, {len(neg)} hand-free", flush=True)
    net = PresenceNet()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    half = cfg.batch_size // 2
    for _ in tqdm(range(cfg.steps), desc="presence", mininterval=5.0):
        idx = np.concatenate([rng.choice(pos, half), rng.choice(neg, cfg.batch_size - half)])
        x = _augment(train["x"][idx], rng).astype(np.float32) / 127.0
        y = torch.from_numpy(train["y"][idx].astype(np.float32))
        net.train()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(torch.from_numpy(x)[:, None]), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    threshold, metrics = _calibrate_on(net, val, cfg.target_false_positive)
    meta = _meta(cfg)
    meta.threshold = threshold
    meta.provenance = {"config": asdict(cfg), "val": metrics, "seconds": round(time.time() - started, 1)}
    return Presence(net, meta).save(cfg.out)
