"""One image file as the array a model takes: any mode, any size, and what the conversion cost.

Pillow opens PNG and JPEG files in many modes: grayscale ``L``, ``RGB``, palette ``P``,
with alpha (``LA``, ``RGBA``, ``PA``), 16-bit grayscale (``I;16``, or ``I``), 1-bit, CMYK.
``read_image`` turns each into float32 (C, H, W) in [0, 1] for a model with C = 1 or 3:

- 16-bit grayscale keeps its 16 bits (``value / 65535``; Pillow's own ``convert("L")``
  would clip every value above 255 to white);
- transparency is flattened onto black, the background of MNIST-like datasets;
- colour becomes grayscale with Pillow's luma weights (0.299 R + 0.587 G + 0.114 B);
  grayscale becomes three equal channels;
- the image is turned upright first when its EXIF data says the camera held it rotated
  (orientation tags 2-8, as phones write them; ``PIL.ImageOps.exif_transpose``), so a
  phone photo is classified as it is shown, not sideways;
- the image is resized (bilinear) to the model's (H, W).

Every image cnnlab reads goes through this module (folder datasets, ``predict``, ``show``,
``evaluate`` and the dashboard), so each gets the same orientation and the same limits: an
image over Pillow's decompression-bomb limit is refused with its pixel count and the limit
(``ImageTooLarge``), never reported as unreadable.

8-bit images go through Pillow's ``L``/``RGB`` modes exactly as before, so a folder
dataset reads the same numbers it always did. ``read_image`` also returns the lossy steps
(colour dropped, transparency flattened, size reduced) so callers can say so.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

#: The EXIF tag that says how the camera was held (1 = upright; 2-8 = mirrored/rotated).
ORIENTATION_TAG = 0x0112

ALPHA_MODES = {"LA", "La", "RGBA", "RGBa", "PA"}
HIGH_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def pillow() -> Any:
    """``PIL.Image``, or an ImportError that says how to install Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "reading images needs Pillow, which is not installed: "
            "pip install pillow (or pip install cnnlab[train])"
        ) from exc
    return Image


class ImageTooLarge(ValueError):
    """An image over Pillow's decompression-bomb limit: the message gives its pixels and the limit.

    Attributes:
        pixels: the image's width x height (None when Pillow's message did not say).
        limit: the most pixels Pillow opens (twice ``PIL.Image.MAX_IMAGE_PIXELS``).
    """

    def __init__(self, message: str, pixels: int | None, limit: int) -> None:
        super().__init__(message)
        self.pixels = pixels
        self.limit = limit


def _too_large(Image: Any, exc: Exception) -> ImageTooLarge:
    """Pillow's DecompressionBombError in words: the image's pixels and the limit."""
    limit = 2 * Image.MAX_IMAGE_PIXELS  # Pillow refuses images over twice MAX_IMAGE_PIXELS
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    return ImageTooLarge(  # the callers name the file
        f"the image is over the pixel limit: {f'{pixels:,}' if pixels else 'more than that'} pixels, "
        f"the limit is {limit:,} pixels (Pillow refuses larger images as possible decompression "
        "bombs; raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file)",
        pixels,
        limit,
    )


def open_image(path: str | os.PathLike[str] | IO[bytes], warn_large: bool = True) -> Any:
    """``Image.open(path)`` with Pillow's DecompressionBombWarning replaced by a clear warning.

    Args:
        path: an image file, or an open binary file object (an upload).
        warn_large: warn when the image is over Pillow's ``MAX_IMAGE_PIXELS``.

    Raises:
        ImageTooLarge: more than twice Pillow's ``MAX_IMAGE_PIXELS`` (Pillow's
            DecompressionBombError); the message gives the image's pixels and the limit.
    """
    Image = pillow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise _too_large(Image, exc) from None
    limit = Image.MAX_IMAGE_PIXELS
    if warn_large and limit and im.width * im.height > limit:
        warnings.warn(
            f"image {path} is very large ({im.width}x{im.height} = {im.width * im.height:,} pixels, "
            f"over Pillow's limit of {limit:,} against decompression bombs); reading it anyway",
            UserWarning,
            stacklevel=2,
        )
    return im


def orientation(im: Any) -> int:
    """The EXIF orientation of an open image: 1 (upright) when it has none or an invalid one.

    For a PNG only an eXIf chunk before the pixels counts until the image is loaded (finding
    one after them would decode the whole image).
    """
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: read the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(im: Any) -> tuple[int, int]:
    """(H, W) of an open image as shown, i.e. after its EXIF orientation (5-8 swap H and W)."""
    return (im.width, im.height) if orientation(im) in (5, 6, 7, 8) else (im.height, im.width)


def upright(im: Any) -> Any:
    """``im`` turned as its EXIF orientation says (``PIL.ImageOps.exif_transpose``); as is when upright."""
    if orientation(im) == 1:
        return im
    from PIL import ImageOps

    return ImageOps.exif_transpose(im)


@dataclass
class Converted:
    """What ``read_image`` did to one image.

    Attributes:
        size: the image's (H, W) as shown (after its EXIF orientation).
        mode: the file's Pillow mode, e.g. "RGBA".
        lossy: lossy steps in words, e.g. ["colour dropped (read as grayscale)"].
    """

    size: tuple[int, int]
    mode: str
    lossy: list[str] = field(default_factory=list)


def _flatten_alpha(Image: Any, im: Any, converted: Converted) -> Any:
    """RGBA (any alpha mode, or a palette with transparency) onto black, as RGB."""
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() < 255:
        converted.lossy.append("transparency flattened onto black")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_bit_gray(Image: Any, im: Any, size: tuple[int, int]) -> np.ndarray:
    """A 16-bit (or 32-bit integer / float) grayscale image as (H, W) float32 in [0, 1]."""
    pixels = np.asarray(im).astype(np.float64)  # (H, W)
    top = 1.0 if im.mode == "F" and pixels.max(initial=0) <= 1 else 65535.0
    if im.mode == "I" and pixels.max(initial=0) <= 255:
        top = 255.0  # an 8-bit image that Pillow opened as 32-bit integers
    gray = Image.fromarray(np.clip(pixels / top, 0, 1).astype(np.float32), "F")
    if (gray.height, gray.width) != size:
        gray = gray.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # Pillow takes (W, H)
    return np.asarray(gray, dtype=np.float32)


def read_image(
    path: str | os.PathLike[str], channels: int, size: tuple[int, int] | None = None, warn_large: bool = True
) -> tuple[np.ndarray, Converted]:
    """Read ``path`` as float32 (C, H, W) in [0, 1] for a model with ``channels`` and (H, W) ``size``.

    Args:
        path: a PNG or JPEG file (any mode Pillow opens).
        channels: 1 (grayscale) or 3 (RGB).
        size: output (H, W); None keeps the image's size.
        warn_large: warn when the image is over Pillow's decompression-bomb limit.

    Returns:
        ``(pixels, converted)``: pixels (C, H, W) and what was done (``Converted``).

    The image is turned upright first as its EXIF orientation says (a phone photo taken
    sideways is read as it is shown).

    Raises:
        ImageTooLarge: the image is over Pillow's decompression-bomb limit.
        OSError / ValueError and Pillow's errors when the file cannot be decoded.
    """
    Image = pillow()
    with open_image(path, warn_large) as stored:
        stored.load()  # a PNG's eXIf chunk may follow the pixels
        opened = upright(stored)
        converted = Converted((opened.height, opened.width), opened.mode)
        size = size or converted.size
        if size[0] < converted.size[0] or size[1] < converted.size[1]:
            h, w = converted.size
            converted.lossy.append(f"size reduced from {h}x{w} to {size[0]}x{size[1]}")
        if opened.mode in HIGH_BIT_MODES:
            gray = _high_bit_gray(Image, opened, size)  # (H, W)
            return (gray[None] if channels == 1 else np.repeat(gray[None], 3, axis=0)), converted
        im = opened
        if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
            im = _flatten_alpha(Image, im, converted)
        if channels == 1 and im.mode not in ("L", "1"):
            rgb = np.asarray(im.convert("RGB"))  # (H, W, 3)
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                converted.lossy.append("colour dropped (read as grayscale)")
        im = im.convert("L" if channels == 1 else "RGB")
        if (im.height, im.width) != size:
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # Pillow takes (W, H)
        pixels = np.asarray(im, dtype=np.uint8)
    pixels = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (C, H, W)
    return pixels.astype(np.float32) / np.float32(255), converted


def convert_batch(x: np.ndarray, channels: int, size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    """Images ``x`` (N, C, H, W) in [0, 1] with ``channels`` and (H, W) ``size``, and what changed.

    Colour becomes grayscale with the luma weights (lossy unless the channels are equal),
    grayscale becomes three equal channels, and each channel is resized bilinearly with
    Pillow (mode ``F``, so no rounding to 8 bits). ``size=None`` keeps the size.

    Shape:
        x: (N, C, H, W) -> (N, channels, size[0], size[1])
    """
    changes: list[str] = []
    N, C, H, W = x.shape
    if C != channels and C == 3 and channels == 1:
        if not (np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 1], x[:, 2])):
            changes.append("colour dropped (the model takes grayscale)")
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)[None, :, None, None]  # (1, 3, 1, 1)
        x = (x * luma).sum(axis=1, keepdims=True, dtype=np.float32)  # (N, 1, H, W)
    elif C != channels and C == 1 and channels == 3:
        x = np.repeat(x, 3, axis=1)  # (N, 3, H, W)
        changes.append("grayscale repeated into 3 channels")
    elif C != channels:
        raise ValueError(f"convert_batch: cannot turn {C}-channel images into {channels}-channel ones")
    if size is not None and (H, W) != tuple(size):
        Image = pillow()
        h, w = size
        out = np.empty((N, x.shape[1], h, w), dtype=np.float32)  # (N, C, h, w)
        for n in range(N):
            for c in range(x.shape[1]):
                plane = Image.fromarray(np.ascontiguousarray(x[n, c], dtype=np.float32), "F")
                out[n, c] = np.asarray(plane.resize((w, h), Image.Resampling.BILINEAR))  # Pillow takes (W, H)
        x = out
        changes.append(f"resized from {H}x{W} to {h}x{w}" + (" (size reduced)" if h < H or w < W else ""))
    return x, changes
