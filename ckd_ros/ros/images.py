"""sensor_msgs/Image <-> numpy without cv_bridge.

cv_bridge is absent from PyPI ROS and breaks with numpy 2 on several distributions; for the encodings this
node accepts it would add nothing but a copy, so the conversion is done here: a strided numpy view of the
message buffer, honouring ``step`` (row padding) and ``is_bigendian``.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

# encoding -> (numpy dtype, channels)
LAYOUTS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}

RGB_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
THERMAL_ENCODINGS: tuple[str, ...] = ("mono8", "mono16", "16UC1", "32FC1", "rgb8", "bgr8")

_HOST_BIG_ENDIAN = sys.byteorder == "big"


class ImageConversionError(ValueError):
    """The image message cannot be turned into an array (a malformed message)."""


class UnsupportedEncodingError(ImageConversionError):
    """The encoding is valid ROS but not one this input accepts."""

    def __init__(self, encoding: str, accepted: tuple[str, ...], role: str) -> None:
        self.encoding = encoding
        super().__init__(f"{role} image encoding {encoding!r} is not supported "
                         f"(accepted: {', '.join(accepted)})")


def image_to_array(msg: Any, accepted: tuple[str, ...] | None = None, role: str = "image") -> np.ndarray:
    """View of the pixels of a sensor_msgs/Image as (H, W) or (H, W, C) in native byte order.

    The result shares memory with the message where possible (read-only); callers that modify it copy.
    """
    encoding = msg.encoding
    if accepted is not None and encoding not in accepted:
        raise UnsupportedEncodingError(encoding, accepted, role)
    if encoding not in LAYOUTS:
        raise UnsupportedEncodingError(encoding, tuple(LAYOUTS), role)
    dtype, channels = LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"{role} image has no pixels ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(f"{role} image step {step} is smaller than a row of {width} "
                                   f"{encoding} pixels ({row_bytes} bytes)")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageConversionError(f"{role} image data holds {buffer.size} bytes, expected step x height "
                                   f"= {step} x {height} = {step * height}")
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]
    if dtype.itemsize > 1:
        big = bool(msg.is_bigendian)
        dtype = dtype.newbyteorder(">" if big else "<")
        if step % dtype.itemsize:
            # rows would start at unaligned offsets: copy the rows out first
            rows = np.ascontiguousarray(rows)
    pixels = rows.view(dtype).reshape(height, width, channels) if channels > 1 else rows.view(dtype)
    if dtype.byteorder not in ("=", "|") and (dtype.byteorder == ">") != _HOST_BIG_ENDIAN:
        pixels = pixels.astype(dtype.newbyteorder("="))
    return pixels


def rgb_to_array(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 in RGB order from an RGB camera image (rgb8, bgr8, rgba8, bgra8, mono8)."""
    pixels = image_to_array(msg, RGB_ENCODINGS, "RGB")
    encoding = msg.encoding
    if encoding == "rgb8":
        return pixels
    if encoding == "bgr8":
        return pixels[..., ::-1]
    if encoding == "rgba8":
        return pixels[..., :3]
    if encoding == "bgra8":
        return pixels[..., 2::-1]
    return np.repeat(pixels[..., None], 3, axis=2)  # mono8


def thermal_to_array(msg: Any) -> np.ndarray:
    """Thermal pixels as the camera sent them: (H, W) uint8 / uint16 / float32, or (H, W, 3) uint8 RGB
    for colour previews. Mapping to the tracker's 8-bit input is the gain control's job, not this one's."""
    pixels = image_to_array(msg, THERMAL_ENCODINGS, "thermal")
    if msg.encoding == "bgr8":
        return pixels[..., ::-1]
    return pixels


def array_to_image(pixels: np.ndarray, encoding: str, header: Any = None) -> Any:
    """sensor_msgs/Image holding ``pixels`` (already in the layout of ``encoding``), tightly packed."""
    from sensor_msgs.msg import Image

    if encoding not in LAYOUTS:
        raise UnsupportedEncodingError(encoding, tuple(LAYOUTS), "output")
    dtype, channels = LAYOUTS[encoding]
    pixels = np.asarray(pixels)
    expected_ndim = 2 if channels == 1 else 3
    if pixels.ndim != expected_ndim or (channels > 1 and pixels.shape[2] != channels):
        raise ImageConversionError(f"array of shape {pixels.shape} does not fit encoding {encoding}")
    pixels = np.ascontiguousarray(pixels, dtype=dtype.newbyteorder("="))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN and dtype.itemsize > 1)
    msg.step = int(pixels.shape[1] * channels * dtype.itemsize)
    msg.data = pixels.tobytes()
    return msg


# ---------------------------------------------------------------------------------------- compressed
# sensor_msgs/CompressedImage.format as image_transport writes it ("bgr8; jpeg compressed bgr8",
# "mono16; png compressed") or as many drivers do ("jpeg", "png"). compressedDepth carries its own header
# before the PNG and is not an image codec OpenCV reads: refused like an unknown encoding.
RGB_CODECS: tuple[str, ...] = ("jpeg", "png")
THERMAL_CODECS: tuple[str, ...] = ("png", "jpeg")
_SIXTEEN_BIT = {"mono16", "16UC1"}


def compressed_codec(fmt: str) -> tuple[str | None, str | None]:
    """(original encoding or None, codec 'jpeg' | 'png' | None when unknown) of a CompressedImage format."""
    text = fmt.strip().lower()
    if "compresseddepth" in text:
        return None, None
    encoding = None
    if ";" in text:
        head, text = text.split(";", 1)
        encoding = {e.lower(): e for e in LAYOUTS}.get(head.strip(), head.strip())
    words = text.replace(",", " ").split()
    if any(w in ("jpeg", "jpg") for w in words):
        return encoding, "jpeg"
    if "png" in words:
        return encoding, "png"
    return encoding, None


def compressed_format_problem(fmt: str, role: str) -> str | None:
    """Why a CompressedImage of ``fmt`` cannot feed the ``role`` ('RGB' | 'thermal') input, or None."""
    encoding, codec = compressed_codec(fmt)
    codecs = RGB_CODECS if role == "RGB" else THERMAL_CODECS
    if codec not in codecs:
        return f"{role} compressed format {fmt!r} is not supported (accepted: {', '.join(codecs)})"
    if role == "RGB" and encoding in _SIXTEEN_BIT:
        return f"RGB compressed format {fmt!r}: 16-bit images are not RGB camera images"
    if codec == "jpeg" and encoding in _SIXTEEN_BIT:
        return f"{role} compressed format {fmt!r}: JPEG cannot hold 16-bit pixels (use png)"
    return None


def is_compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def decode_compressed(msg: Any, role: str) -> np.ndarray:
    """Pixels of a CompressedImage as OpenCV decodes them (8/16-bit, grey or BGR[A]); clear errors for a
    refused format or data that does not decode (corrupt, truncated)."""
    import cv2

    problem = compressed_format_problem(msg.format, role)
    if problem:
        raise ImageConversionError(problem)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    codec = compressed_codec(msg.format)[1]
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if pixels is None or pixels.size == 0:
        raise ImageConversionError(f"{role} {codec} image ({data.size} bytes, format {msg.format!r}) does not "
                                   "decode: corrupt or truncated data")
    return pixels


def compressed_rgb_to_array(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a jpeg / png CompressedImage (colour files hold BGR as OpenCV reads them)."""
    import cv2

    pixels = decode_compressed(msg, "RGB")
    if pixels.dtype != np.uint8:
        raise ImageConversionError(f"RGB compressed image decodes to {pixels.dtype} pixels; RGB needs 8 bits")
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def compressed_thermal_to_array(msg: Any) -> np.ndarray:
    """Thermal pixels of a png (8 or 16-bit grey) / jpeg CompressedImage at their own depth; a colour file
    is a preview, returned in RGB order like thermal_to_array's rgb8."""
    import cv2

    pixels = decode_compressed(msg, "thermal")
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        if pixels.dtype != np.uint8:
            raise ImageConversionError(f"thermal compressed colour image decodes to {pixels.dtype}; a colour "
                                       "preview must be 8-bit")
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return pixels


def rgb_array(msg: Any) -> np.ndarray:
    """RGB pixels of an Image or a CompressedImage (decoded here: call from the worker, not a callback)."""
    return compressed_rgb_to_array(msg) if is_compressed(msg) else rgb_to_array(msg)


def thermal_array(msg: Any) -> np.ndarray:
    """Thermal pixels of an Image or a CompressedImage (decoded here: call from the worker)."""
    return compressed_thermal_to_array(msg) if is_compressed(msg) else thermal_to_array(msg)


def image_hw(msg: Any) -> tuple[int, int] | None:
    """(height, width) of an Image; None for a CompressedImage (known only once decoded)."""
    return None if is_compressed(msg) else (int(msg.height), int(msg.width))


def array_to_compressed(pixels: np.ndarray, codec: str, header: Any = None, encoding: str | None = None,
                        quality: int = 90) -> Any:
    """sensor_msgs/CompressedImage of ``pixels`` (RGB order for colour; grey 8 or 16-bit) as ``codec``
    ('jpeg' | 'png'), with image_transport's format string."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if encoding is None:
        encoding = "rgb8" if pixels.ndim == 3 else ("mono16" if pixels.dtype == np.uint16 else "mono8")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", pixels, params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {pixels.dtype} {pixels.shape} image as {codec}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    target = "bgr8" if pixels.ndim == 3 else encoding
    msg.format = f"{encoding}; {codec} compressed {target}" if codec == "jpeg" else f"{encoding}; png compressed"
    msg.data = data.tobytes()
    return msg
