"""Body pose (``openpose``): the 18 OpenPose keypoints of each person, drawn as ControlNet's pose model expects.

The network is CMU's OpenPose body model (a VGG front and six two-branch stages giving 38 part-affinity and 19
keypoint maps), in the PyTorch port that ControlNet ships as ``body_pose_model.pth``: its state dict names the
layers by their Caffe names (``conv1_1``, ``Mconv7_stage6_L2``…), without the module prefixes. Decoding follows
that port: peaks of each keypoint map, limbs scored along the affinity fields, people assembled from limbs;
drawing uses ControlNet's colours (limbs as soft ellipses, joints as dots) on black.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

BOX_SIZE = 368
SCALE = 0.5
"""The image is scaled to ``SCALE × BOX_SIZE`` pixels high for the network (the port's single scale)."""
STRIDE = 8
PAD_VALUE = 128
PEAK_THRESHOLD = 0.1
AFFINITY_THRESHOLD = 0.05
LIMB_SAMPLES = 10
LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
    (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
"""Limbs as pairs of 1-based keypoints (neck = 2); the last two only link people, they are not drawn."""
AFFINITY_CHANNELS = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7),
    (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)  # fmt: skip
"""The x and y part-affinity channels of each limb."""
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
Spec = tuple[int, int, int] | tuple[int, int, int, int, int]


def _stack(layers: list[tuple[str, Spec]], last_linear: bool) -> nn.Sequential:
    """Convolutions ``(in, out, kernel, stride, padding)`` and pools ``(kernel, stride, padding)``, ReLU after each
    convolution but the last when ``last_linear``."""
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for index, (name, spec) in enumerate(layers):
        if "pool" in name:
            modules[name] = nn.MaxPool2d(spec[0], spec[1], spec[2])
            continue
        c_in, c_out, kernel, stride, padding = spec  # type: ignore[misc]  # convolutions have five numbers
        modules[name] = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        if not (last_linear and index == len(layers) - 1):
            modules[f"relu_{name}"] = nn.ReLU(inplace=True)
    return nn.Sequential(modules)


def _front() -> list[tuple[str, Spec]]:
    conv = [
        ("conv1_1", 3, 64), ("conv1_2", 64, 64), ("pool1_stage1", 0, 0), ("conv2_1", 64, 128),
        ("conv2_2", 128, 128), ("pool2_stage1", 0, 0), ("conv3_1", 128, 256), ("conv3_2", 256, 256),
        ("conv3_3", 256, 256), ("conv3_4", 256, 256), ("pool3_stage1", 0, 0), ("conv4_1", 256, 512),
        ("conv4_2", 512, 512), ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128),
    ]  # fmt: skip
    return [(name, (2, 2, 0) if "pool" in name else (c_in, c_out, 3, 1, 1)) for name, c_in, c_out in conv]


def _first_stage(branch: int, out: int) -> list[tuple[str, Spec]]:
    names = [f"conv5_{i}_CPM_L{branch}" for i in range(1, 6)]
    specs: list[Spec] = [(128, 128, 3, 1, 1), (128, 128, 3, 1, 1), (128, 128, 3, 1, 1)]
    specs += [(128, 512, 1, 1, 0), (512, out, 1, 1, 0)]
    return list(zip(names, specs, strict=True))


def _later_stage(stage: int, branch: int, out: int) -> list[tuple[str, Spec]]:
    names = [f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, 8)]
    specs: list[Spec] = [(185, 128, 7, 1, 3)]
    specs += [(128, 128, 7, 1, 3) for _ in range(4)]
    specs += [(128, 128, 1, 1, 0), (128, out, 1, 1, 0)]
    return list(zip(names, specs, strict=True))


class BodyPoseNetwork(nn.Module):
    """OpenPose's body network: RGB-ish input in -0.5…0.5, out 38 affinity maps and 19 keypoint maps at 1/8 size."""

    def __init__(self) -> None:
        super().__init__()
        self.model0 = _stack(_front(), last_linear=False)
        self.stages = nn.ModuleList()
        for stage in range(1, 7):
            affinity = _first_stage(1, 38) if stage == 1 else _later_stage(stage, 1, 38)
            heat = _first_stage(2, 19) if stage == 1 else _later_stage(stage, 2, 19)
            self.stages.append(nn.ModuleList([_stack(affinity, True), _stack(heat, True)]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last stage's part-affinity fields and keypoint heat maps."""
        features = self.model0(x)
        h = features
        affinity = heat = features
        for stage in self.stages:
            branches = list(stage.children())
            affinity, heat = branches[0](h), branches[1](h)
            h = torch.cat([affinity, heat, features], 1)
        return affinity, heat

    def load_flat(self, state: dict[str, torch.Tensor]) -> None:
        """Load a state dict keyed by the layers' own names (``conv1_1.weight``), as ``body_pose_model.pth`` is."""
        ours = {".".join(key.split(".")[-2:]): key for key in self.state_dict()}
        missing = sorted(set(ours) - set(state))
        if missing:
            raise KeyError(f"not an OpenPose body model: no {', '.join(missing[:5])}")
        self.load_state_dict({ours[name]: state[name] for name in ours}, strict=True)


def load_body_model(path: Path, device: torch.device) -> BodyPoseNetwork:
    """The network in ``body_pose_model.pth``."""
    network = BodyPoseNetwork()
    network.load_flat(torch.load(str(path), map_location="cpu", weights_only=True))
    return network.to(device).eval()


def _network_maps(network: BodyPoseNetwork, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint heat maps (H×W×19) and affinity fields (H×W×38) at the image's size."""
    height, width = image.shape[:2]
    scale = SCALE * BOX_SIZE / height
    scaled = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    pad_bottom, pad_right = -scaled.shape[0] % STRIDE, -scaled.shape[1] % STRIDE
    padded = cv2.copyMakeBorder(scaled, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    tensor = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32) / 256 - 0.5)
    device = next(network.parameters()).device
    with torch.inference_mode():
        affinity, heat = network(tensor.to(device))
    maps = []
    for output in (heat, affinity):
        array = output[0].float().cpu().numpy().transpose(1, 2, 0)
        array = cv2.resize(array, (0, 0), fx=STRIDE, fy=STRIDE, interpolation=cv2.INTER_CUBIC)
        array = array[: padded.shape[0] - pad_bottom, : padded.shape[1] - pad_right]
        maps.append(cv2.resize(array, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, -1))
    return maps[0], maps[1]


def _peaks(heat: np.ndarray) -> list[list[tuple[float, float, float, int]]]:
    """Each keypoint's local maxima above the threshold: (x, y, score, id), ids running over all keypoints."""
    peaks: list[list[tuple[float, float, float, int]]] = []
    counter = 0
    for part in range(18):
        raw = heat[:, :, part]
        smooth = cv2.GaussianBlur(raw, (25, 25), 3, borderType=cv2.BORDER_REFLECT)  # scipy's gaussian_filter(σ=3)
        padded = np.pad(smooth, 1, constant_values=0)
        centre = padded[1:-1, 1:-1]
        is_peak = (
            (centre >= padded[:-2, 1:-1])
            & (centre >= padded[2:, 1:-1])
            & (centre >= padded[1:-1, :-2])
            & (centre >= padded[1:-1, 2:])
            & (centre > PEAK_THRESHOLD)
        )
        ys, xs = np.nonzero(is_peak)
        found = [
            (float(x), float(y), float(raw[y, x]), counter + i) for i, (x, y) in enumerate(zip(xs, ys, strict=True))
        ]
        peaks.append(found)
        counter += len(found)
    return peaks


def _limb_connections(peaks: list[list[tuple[float, float, float, int]]], affinity: np.ndarray) -> list[np.ndarray]:
    """For each limb, the accepted (id A, id B, score, index A, index B) rows, best first, each end used once."""
    height = affinity.shape[0]
    connections = []
    for (a, b), channels in zip(LIMBS, AFFINITY_CHANNELS, strict=True):
        field, cand_a, cand_b = affinity[:, :, list(channels)], peaks[a - 1], peaks[b - 1]
        scored = []
        for i, start in enumerate(cand_a):
            for j, end in enumerate(cand_b):
                vector = np.subtract(end[:2], start[:2])
                norm = max(0.001, math.hypot(*vector))
                direction = vector / norm
                xs = np.rint(np.linspace(start[0], end[0], LIMB_SAMPLES)).astype(int)
                ys = np.rint(np.linspace(start[1], end[1], LIMB_SAMPLES)).astype(int)
                along = field[ys, xs] @ direction
                score = float(along.mean()) + min(0.5 * height / norm - 1, 0)
                if np.count_nonzero(along > AFFINITY_THRESHOLD) > 0.8 * LIMB_SAMPLES and score > 0:
                    scored.append((i, j, score))
        rows = np.zeros((0, 5))
        for i, j, score in sorted(scored, key=lambda item: item[2], reverse=True):
            if i not in rows[:, 3] and j not in rows[:, 4]:
                rows = np.vstack([rows, [cand_a[i][3], cand_b[j][3], score, i, j]])
                if len(rows) >= min(len(cand_a), len(cand_b)):
                    break
        connections.append(rows)
    return connections


def estimate_pose(network: BodyPoseNetwork, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (rows x, y, score, id) and people (rows: 18 keypoint ids or -1, total score, keypoint count).

    ``image`` is RGB uint8; the network was trained on BGR, which it is given.
    """
    heat, affinity = _network_maps(network, np.ascontiguousarray(image[:, :, ::-1]))
    return decode_pose(heat, affinity)


def decode_pose(heat: np.ndarray, affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """People from keypoint heat maps (H×W×19) and part-affinity fields (H×W×38), as ``estimate_pose`` returns."""
    peaks = _peaks(heat)
    candidates = np.array([peak for part in peaks for peak in part], dtype=np.float64).reshape(-1, 4)
    people = -1 * np.ones((0, 20))
    for limb, rows in enumerate(_limb_connections(peaks, affinity)):
        index_a, index_b = LIMBS[limb][0] - 1, LIMBS[limb][1] - 1
        for id_a, id_b, score, _i, _j in rows:
            owners = [n for n in range(len(people)) if people[n][index_a] == id_a or people[n][index_b] == id_b]
            if len(owners) == 1 or (len(owners) == 2 and _overlap(people[owners[0]], people[owners[1]])):
                person = people[owners[0]]
                if person[index_b] != id_b:
                    person[index_b] = id_b
                    person[-1] += 1
                    person[-2] += candidates[int(id_b), 2] + score
            elif len(owners) == 2:  # two partial people joined by this limb: merge them
                first, second = people[owners[0]], people[owners[1]]
                first[:-2] += second[:-2] + 1
                first[-2:] += second[-2:]
                first[-2] += score
                people = np.delete(people, owners[1], 0)
            elif not owners and limb < 17:
                row = -1 * np.ones(20)
                row[index_a], row[index_b] = id_a, id_b
                row[-1] = 2
                row[-2] = candidates[int(id_a), 2] + candidates[int(id_b), 2] + score
                people = np.vstack([people, row])
    keep = [n for n in range(len(people)) if people[n][-1] >= 4 and people[n][-2] / people[n][-1] >= 0.4]
    return candidates, people[keep]


def _overlap(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two partial people share a keypoint slot (then they are not merged)."""
    return bool(np.any((first[:-2] >= 0) & (second[:-2] >= 0)))


def draw_pose(size: tuple[int, int], candidates: np.ndarray, people: np.ndarray) -> np.ndarray:
    """The pose map: joints as dots and limbs as translucent ellipses in ControlNet's colours on black (H×W×3)."""
    canvas = np.zeros((*size, 3), dtype=np.uint8)
    for part in range(18):
        for person in people:
            index = int(person[part])
            if index >= 0:
                x, y = candidates[index][:2]
                cv2.circle(canvas, (int(x), int(y)), 4, COLOURS[part], thickness=-1)
    for limb in range(17):
        for person in people:
            ends = person[np.array(LIMBS[limb]) - 1]
            if -1 in ends:
                continue
            xs, ys = candidates[ends.astype(int), 0], candidates[ends.astype(int), 1]
            length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
            angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
            centre = (int(np.mean(xs)), int(np.mean(ys)))
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), 4), int(angle), 0, 360, 1)
            overlay = canvas.copy()
            cv2.fillConvexPoly(overlay, polygon, COLOURS[limb])
            canvas = cv2.addWeighted(canvas, 0.4, overlay, 0.6, 0)
    return canvas
