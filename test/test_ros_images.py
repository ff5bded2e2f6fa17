"""sensor_msgs/Image -> numpy for every accepted encoding, with row padding and both byte orders."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages (rclpy) are not installed")
from sensor_msgs.msg import Image  # noqa: E402

from ckd_ros.ros.images import (RGB_ENCODINGS, THERMAL_ENCODINGS, ImageConversionError,  # noqa: E402
                                UnsupportedEncodingError, array_to_image, image_to_array, rgb_to_array,
                                thermal_to_array)

H, W = 5, 7
RNG = np.random.default_rng(3)


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """An Image message built by hand (independently of array_to_image), with ``pad`` bytes per row."""
    h, w = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(h, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big_endian), step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3, 16])
@pytest.mark.parametrize("encoding,pixels,expected", [
    ("rgb8", RGB, RGB),
    ("bgr8", RGB[..., ::-1], RGB),
    ("rgba8", np.concatenate([RGB, ALPHA], axis=2), RGB),
    ("bgra8", np.concatenate([RGB[..., ::-1], ALPHA], axis=2), RGB),
    ("mono8", RGB[..., 0], np.repeat(RGB[..., :1], 3, axis=2)),
])
def test_every_rgb_encoding_becomes_rgb_order_uint8_despite_row_padding(encoding, pixels, expected, pad):
    out = rgb_to_array(make_image(pixels, encoding, pad))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, expected)


def test_the_accepted_encoding_lists_are_the_documented_ones():
    assert set(RGB_ENCODINGS) == {"rgb8", "bgr8", "rgba8", "bgra8", "mono8"}
    assert set(THERMAL_ENCODINGS) == {"mono8", "mono16", "16UC1", "32FC1", "rgb8", "bgr8"}


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 2, 5])   # odd padding puts 16-bit rows at odd offsets
@pytest.mark.parametrize("encoding,dtype", [("mono16", np.uint16), ("16UC1", np.uint16),
                                            ("32FC1", np.float32), ("mono8", np.uint8)])
def test_thermal_values_survive_padding_and_byte_order(encoding, dtype, pad, big_endian):
    if dtype == np.float32:
        pixels = RNG.normal(30.0, 8.0, (H, W)).astype(np.float32)
    else:
        pixels = RNG.integers(0, np.iinfo(dtype).max, (H, W), dtype=dtype)
    out = thermal_to_array(make_image(pixels, encoding, pad, big_endian))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (H, W)
    np.testing.assert_array_equal(out, pixels)


def test_big_endian_16_bit_reads_the_high_byte_first():
    msg = Image(height=1, width=2, encoding="mono16", is_bigendian=1, step=4)
    msg.data = bytes([0x01, 0x02, 0xFF, 0x00])
    np.testing.assert_array_equal(thermal_to_array(msg), [[0x0102, 0xFF00]])
    msg.is_bigendian = 0
    np.testing.assert_array_equal(thermal_to_array(msg), [[0x0201, 0x00FF]])


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_thermal_previews_come_out_in_rgb_order(encoding):
    pixels = RGB if encoding == "rgb8" else RGB[..., ::-1]
    np.testing.assert_array_equal(thermal_to_array(make_image(pixels, encoding, 1)), RGB)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "yuv422", "bayer_rggb8", "8UC3", "rgb16", ""])
def test_rgb_input_refuses_other_encodings_naming_them(encoding):
    msg = Image(height=H, width=W, encoding=encoding, step=W * 8)
    msg.data = bytes(H * W * 8)
    with pytest.raises(UnsupportedEncodingError) as info:
        rgb_to_array(msg)
    assert repr(encoding) in str(info.value) and info.value.encoding == encoding


@pytest.mark.parametrize("encoding", ["rgba8", "bgra8", "yuv422", "64FC1", "16SC1", "bayer_rggb16"])
def test_thermal_input_refuses_other_encodings_naming_them(encoding):
    msg = Image(height=H, width=W, encoding=encoding, step=W * 8)
    msg.data = bytes(H * W * 8)
    with pytest.raises(UnsupportedEncodingError, match=repr(encoding)):
        thermal_to_array(msg)


def test_truncated_data_and_short_step_are_reported_not_read_out_of_bounds():
    msg = make_image(RGB, "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ImageConversionError, match="expected step x height"):
        rgb_to_array(msg)
    msg = make_image(RGB, "rgb8")
    msg.step = W * 3 - 1
    with pytest.raises(ImageConversionError, match="step"):
        rgb_to_array(msg)
    with pytest.raises(ImageConversionError, match="no pixels"):
        rgb_to_array(Image(encoding="rgb8"))


@pytest.mark.parametrize("encoding,pixels", [
    ("rgb8", RGB), ("mono8", RGB[..., 1]), ("mono16", RNG.integers(0, 65535, (H, W), dtype=np.uint16)),
    ("32FC1", RNG.normal(size=(H, W)).astype(np.float32)), ("bgra8", np.concatenate([RGB, ALPHA], axis=2)),
])
def test_array_to_image_round_trips(encoding, pixels):
    msg = array_to_image(pixels, encoding)
    assert msg.step == W * msg.step // W and msg.encoding == encoding
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_array_to_image_refuses_a_shape_that_does_not_fit_the_encoding():
    with pytest.raises(ImageConversionError, match="does not fit"):
        array_to_image(RGB, "mono8")


# ------------------------------------------------------------------------------------- CompressedImage
def test_compressed_rgb_and_16_bit_png_thermal_decode_to_what_was_sent():
    from ckd_ros.ros.images import array_to_compressed, rgb_array, thermal_array

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert np.array_equal(rgb_array(array_to_compressed(rgb, "png")), rgb)           # lossless, RGB order
    jpeg = rgb_array(array_to_compressed(np.full((24, 32, 3), (200, 30, 10), np.uint8), "jpeg", quality=95))
    assert np.abs(jpeg.astype(int) - [200, 30, 10]).max() <= 4                        # lossy, not swapped
    counts = rng.integers(2000, 60000, (24, 32), dtype=np.uint16)
    msg = array_to_compressed(counts, "png")
    assert msg.format == "mono16; png compressed"
    decoded = thermal_array(msg)
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, counts)


@pytest.mark.parametrize("fmt,fragment", [
    ("tiff", "is not supported (accepted: jpeg, png)"),
    ("16UC1; compressedDepth png", "not supported"),
    ("mono16; png compressed", "16-bit images are not RGB"),
])
def test_refused_rgb_compressed_formats_are_named(fmt, fragment):
    from ckd_ros.ros.images import compressed_format_problem
    assert fragment in (compressed_format_problem(fmt, "RGB") or "")


def test_thermal_accepts_16_bit_png_and_refuses_16_bit_jpeg():
    from ckd_ros.ros.images import compressed_format_problem
    assert compressed_format_problem("mono16; png compressed", "thermal") is None
    assert compressed_format_problem("png", "thermal") is None
    assert "JPEG cannot hold 16-bit" in compressed_format_problem("mono16; jpeg compressed mono16", "thermal")
    assert compressed_format_problem("bgr8; jpeg compressed bgr8", "RGB") is None


def test_corrupt_or_truncated_jpeg_is_an_error_naming_the_codec_and_size():
    from sensor_msgs.msg import CompressedImage

    from ckd_ros.ros.images import ImageConversionError, array_to_compressed, rgb_array
    good = array_to_compressed(np.zeros((24, 32, 3), np.uint8), "jpeg")
    for data in (b"\xff\xd8 definitely not a jpeg", bytes(good.data)[:20], b""):
        msg = CompressedImage(format="jpeg", data=data)
        with pytest.raises(ImageConversionError, match=f"RGB jpeg image \\({len(data)} bytes.*does not decode"):
            rgb_array(msg)
