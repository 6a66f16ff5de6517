"""ARKit blendshape names and the adapters to the orders engines use (DESIGN section 3).

Canonical order is Apple's ``ARFaceAnchor.BlendShapeLocation`` listing (52 names, lowerCamelCase, values 0..1).
Names always travel with the data; these adapters are the only place that knows another tool's order:

- Live Link Face (Epic's iPhone app): its CSV has PascalCase names in Epic's order (which swaps the Left/Right pairs
  of ``jaw`` and ``mouth`` relative to Apple), then 9 rotations -> 61 values; its UDP packet carries the 52 values in
  Unreal's ``EARFaceBlendShape`` order, which is Apple's (``to_livelink_packet``).
- Unity ``ARKitBlendShapeLocation``: PascalCase in alphabetical order.
"""

from __future__ import annotations

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)  # fmt: skip
N_BLENDSHAPES = len(ARKIT_NAMES)  # 52
INDEX = {name: i for i, name in enumerate(ARKIT_NAMES)}

# Live Link Face's rotation values after its 52 blendshapes: head then eyes, yaw/pitch/roll (radians in its CSV).
LIVELINK_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
N_ROTATIONS = len(LIVELINK_ROTATIONS)  # 9


def pascal(name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft``."""
    return name[:1].upper() + name[1:]


def camel(name: str) -> str:
    """``EyeBlinkLeft`` -> ``eyeBlinkLeft``."""
    return name[:1].lower() + name[1:]


def _livelink_blendshape_order() -> tuple[str, ...]:
    names = list(ARKIT_NAMES)
    for a, b in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        i, j = names.index(a), names.index(b)
        names[i], names[j] = names[j], names[i]
    return tuple(pascal(n) for n in names)


LIVELINK_BLENDSHAPES: tuple[str, ...] = _livelink_blendshape_order()  # 52 PascalCase names, Epic's order
LIVELINK_NAMES: tuple[str, ...] = LIVELINK_BLENDSHAPES + LIVELINK_ROTATIONS  # 61 values of a Live Link frame
UNITY_NAMES: tuple[str, ...] = tuple(sorted(pascal(n) for n in ARKIT_NAMES))  # Unity's enum order

_ARKIT_TO_LIVELINK = np.array([INDEX[camel(n)] for n in LIVELINK_BLENDSHAPES])
_ARKIT_TO_UNITY = np.array([INDEX[camel(n)] for n in UNITY_NAMES])


def to_livelink(weights: np.ndarray, rotations: np.ndarray | None = None) -> np.ndarray:
    """(..., 52) Apple-order weights (+ optional (..., 9) rotations) -> (..., 61) Live Link Face values."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape[-1] != N_BLENDSHAPES:
        raise ValueError(f"expected {N_BLENDSHAPES} ARKit weights in the last axis, got shape {weights.shape}")
    if rotations is None:
        rotations = np.zeros(weights.shape[:-1] + (N_ROTATIONS,), dtype=np.float32)
    rotations = np.asarray(rotations, dtype=np.float32)
    if rotations.shape != weights.shape[:-1] + (N_ROTATIONS,):
        raise ValueError(f"rotations shape {rotations.shape} does not match weights {weights.shape} + (9,)")
    return np.concatenate([weights[..., _ARKIT_TO_LIVELINK], rotations], axis=-1)


def to_livelink_packet(weights: np.ndarray, rotations: np.ndarray | None = None) -> np.ndarray:
    """(..., 52) Apple-order weights (+ (..., 9) rotations) -> (..., 61) values of a Live Link Face **UDP packet**.

    Unreal reads the packet's 52 values by its ``EARFaceBlendShape`` enum (AugmentedReality/Public/ARTrackable.h:
    EyeBlinkLeft ... JawForward, JawLeft, JawRight, JawOpen, MouthClose, MouthFunnel, MouthPucker, MouthLeft,
    MouthRight, ... TongueOut), which is Apple's order; the app's CSV swaps the jaw and mouth Left/Right pairs
    (``to_livelink``). The 9 rotations follow (HeadYaw ... RightEyeRoll)."""
    values = to_livelink(weights, rotations)
    return np.concatenate([np.asarray(weights, np.float32), values[..., N_BLENDSHAPES:]], axis=-1)


def from_livelink(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 61) Live Link Face values -> ((..., 52) Apple-order weights, (..., 9) rotations)."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] != len(LIVELINK_NAMES):
        raise ValueError(f"expected {len(LIVELINK_NAMES)} Live Link values in the last axis, got {values.shape}")
    weights = np.empty(values.shape[:-1] + (N_BLENDSHAPES,), dtype=np.float32)
    weights[..., _ARKIT_TO_LIVELINK] = values[..., :N_BLENDSHAPES]
    return weights, values[..., N_BLENDSHAPES:]


def to_unity(weights: np.ndarray) -> np.ndarray:
    """(..., 52) Apple-order weights -> (..., 52) in Unity's ``ARKitBlendShapeLocation`` (alphabetical) order."""
    weights = np.asarray(weights)
    if weights.shape[-1] != N_BLENDSHAPES:
        raise ValueError(f"expected {N_BLENDSHAPES} ARKit weights in the last axis, got shape {weights.shape}")
    return weights[..., _ARKIT_TO_UNITY]


def select(values: np.ndarray, names: list[str] | tuple[str, ...], missing: float = 0.0) -> np.ndarray:
    """Pick the 52 canonical channels out of columns named ``names`` (any case style), by name.

    Columns not among the 52 are ignored; canonical names absent from ``names`` are filled with ``missing``.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] != len(names):
        raise ValueError(f"{len(names)} names for {values.shape[-1]} columns")
    lookup = {n.lower(): i for i, n in enumerate(names)}
    out = np.full(values.shape[:-1] + (N_BLENDSHAPES,), missing, dtype=np.float32)
    for j, name in enumerate(ARKIT_NAMES):
        i = lookup.get(name.lower())
        if i is not None:
            out[..., j] = values[..., i]
    return out
