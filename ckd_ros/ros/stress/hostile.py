"""Camera messages as a broken or hostile driver sends them: every field set by hand, nothing checked."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..images import array_to_image

SEC = 1_000_000_000


def set_stamp(msg: Any, stamp_ns: int) -> Any:
    """``msg`` with its header stamp set (negative seconds allowed: Time.sec is int32)."""
    msg.header.stamp.sec = int(stamp_ns // SEC)
    msg.header.stamp.nanosec = int(stamp_ns % SEC)
    return msg


def raw_image(encoding: str, width: int, height: int, step: int, data: bytes, stamp_ns: int = 0,
              big_endian: bool = False, frame_id: str = "hostile") -> Any:
    """A sensor_msgs/Image with exactly these fields, consistent or not."""
    from sensor_msgs.msg import Image

    msg = Image(height=int(height), width=int(width), encoding=encoding, step=int(step),
                is_bigendian=int(big_endian))
    msg.data = bytes(data)
    msg.header.frame_id = frame_id
    return set_stamp(msg, stamp_ns)


def truncated(pixels: np.ndarray, encoding: str, keep: float = 0.5) -> Any:
    """A valid image whose data holds only ``keep`` of height x step bytes."""
    msg = array_to_image(pixels, encoding)
    msg.data = bytes(msg.data[: int(len(msg.data) * keep)])
    return msg


def short_step(pixels: np.ndarray, encoding: str) -> Any:
    """``step`` one pixel shorter than a row, data sized to match (so only the step is wrong)."""
    msg = array_to_image(pixels, encoding)
    pixel_bytes = msg.step // msg.width
    msg.step = msg.step - pixel_bytes
    msg.data = bytes(msg.data[: msg.step * msg.height])
    return msg


def zero_size(encoding: str) -> Any:
    return raw_image(encoding, 0, 0, 0, b"")


def overflowing_size(encoding: str) -> Any:
    """Sizes near 2**32 with a few bytes of data: height x step is far beyond any buffer."""
    top = 2**32 - 1
    return raw_image(encoding, 1, top, top, bytes(64))


def relabelled(pixels: np.ndarray, encoding: str, claimed: str) -> Any:
    """Pixels packed for ``encoding`` but labelled ``claimed`` (a driver's wrong encoding string)."""
    msg = array_to_image(pixels, encoding)
    msg.encoding = claimed
    return msg


def big_endian_mono16(pixels: np.ndarray) -> Any:
    """uint16 pixels as a big-endian camera sends them (is_bigendian = 1)."""
    pixels = np.ascontiguousarray(pixels, dtype=">u2")
    return raw_image("mono16", pixels.shape[1], pixels.shape[0], pixels.shape[1] * 2, pixels.tobytes(),
                     big_endian=True)


def float_thermal(values: np.ndarray) -> Any:
    return array_to_image(np.asarray(values, dtype=np.float32), "32FC1")
