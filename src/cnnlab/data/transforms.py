"""Image data augmentation (performance tuning 2): random shifts, crops, flips, rotations, erasing.

Every transform is a callable ``t(x, rng) -> x`` on a whole NCHW float batch, so it plugs into
``DataLoader(..., transform=t)`` and ``fit(..., transform=t)``. The work is vectorized per batch
(one gather per batch, no Python loop over images), and the randomness comes ONLY from the
``rng`` passed at call time: the same seed gives identical augmented batches. Transforms never
see the labels and never edit their input in place.

``parse_augment("shift,rotate", (1, 28, 28))`` turns the CLI flag ``--augment`` into a
``Compose`` with defaults scaled to the image size.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, shape_error
from cnnlab.utils import config_repr


class Transform:
    """Base class: input checks, rng checks, ``get_config()`` and a repr of non-default options."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def _check(self, x: np.ndarray) -> tuple[int, int, int, int]:
        """Return ``(N, C, H, W)`` or raise for anything but a floating NCHW array."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: input must be a numpy.ndarray. Received: {type(x).__name__}")
        if x.ndim != 4:
            raise shape_error(self.name, "input", "shape (N, C, H, W)", x.shape)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"{self.name}: input must be a floating-point array (use x.astype(np.float32)). "
                f"Received: dtype {x.dtype}"
            )
        N, C, H, W = x.shape
        return N, C, H, W

    def _rng(self, rng: Any) -> np.random.Generator:
        """Accept a Generator or an int seed; None would make the run unrepeatable."""
        if isinstance(rng, np.random.Generator):
            return rng
        if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
            return np.random.default_rng(int(rng))
        raise arg_error(self.name, "rng", "a numpy.random.Generator or an int seed", rng)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this transform: ``type(t)(**t.get_config())``."""
        sig = inspect.signature(type(self).__init__)
        return {arg: getattr(self, arg) for arg in list(sig.parameters)[1:]}

    def __repr__(self) -> str:
        return config_repr(self, self.get_config())


def _probability(where: str, arg: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise arg_error(where, arg, "a probability in [0, 1]", p)
    return float(p)


def _nonneg_int(where: str, arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise arg_error(where, arg, "a non-negative int", value)
    return int(value)


def _fill(where: str, value: Any) -> float | tuple[float, ...]:
    """A fill value: one finite number, or one per channel (a tuple)."""
    if isinstance(value, int | float | np.floating) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if (
        isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(v, int | float | np.floating) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) for v in value)
    ):
        return tuple(float(v) for v in value)
    raise arg_error(where, "fill", "a finite number or one finite number per channel", value)


def _fill_array(where: str, fill: float | tuple[float, ...], C: int, dtype: np.dtype) -> np.ndarray:
    """``fill`` as a (1, C, 1, 1) array for a batch with ``C`` channels."""
    values = np.full(C, fill, dtype) if isinstance(fill, float) else np.asarray(fill, dtype)
    if values.shape != (C,):
        raise ValueError(
            f"{where}: fill has {values.size} values but the images have {C} channels. "
            f"Received: fill={fill!r}"
        )
    return values[None, :, None, None]  # (1, C, 1, 1)


def _pad(x: np.ndarray, p: int, fill: float | tuple[float, ...], where: str) -> np.ndarray:
    """``x`` with a border of ``p`` pixels of ``fill`` on every side: (N, C, H + 2p, W + 2p)."""
    if fill == 0.0:
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    N, C, H, W = x.shape
    padded = np.empty((N, C, H + 2 * p, W + 2 * p), x.dtype)  # (N, C, H + 2p, W + 2p)
    padded[...] = _fill_array(where, fill, C, x.dtype)
    padded[:, :, p : p + H, p : p + W] = x
    return padded


def _float_pair(where: str, arg: str, value: Any, lo: float, what: str) -> tuple[float, float]:
    """A (min, max) pair of floats with lo <= min <= max."""
    ok = isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int | float) for v in value)
    if not ok or not lo <= value[0] <= value[1]:
        raise arg_error(where, arg, f"a pair (min, max) with {what}", value)
    return float(value[0]), float(value[1])


def _gather_windows(padded: np.ndarray, top: np.ndarray, left: np.ndarray, h: int, w: int) -> np.ndarray:
    """Cut an ``h x w`` window at ``(top[n], left[n])`` out of each image, in one gather."""
    N, C = padded.shape[:2]
    rows = top[:, None] + np.arange(h)  # (N, h)
    cols = left[:, None] + np.arange(w)  # (N, w)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    return padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]  # (N, C, h, w)


class RandomShift(Transform):
    """Translate each image by a random whole number of pixels; uncovered pixels become ``fill``.

    ``dy, dx`` are drawn independently per image from ``{-max_shift, ..., max_shift}``;
    positive ``dx`` moves the content right, positive ``dy`` moves it down:
    ``out[i, j] = x[i - dy, j - dx]`` (``fill`` outside the image).

    Args:
        max_shift: largest shift in pixels along each axis (2 suits 28x28 digits).
        fill: value of the uncovered pixels, one number or one per channel. On normalized
            images, pass what a black pixel became (``cnnlab train`` does), not 0 = the mean.

    Shape:
        - Input: (N, C, H, W), float. Output: (N, C, H, W), same dtype.

    Example:
        >>> t = RandomShift(max_shift=1)
        >>> t(np.ones((2, 1, 4, 4), dtype=np.float32), np.random.default_rng(0)).shape
        (2, 1, 4, 4)
    """

    def __init__(self, max_shift: int = 2, fill: float | tuple[float, ...] = 0.0) -> None:
        self.max_shift = _nonneg_int("RandomShift", "max_shift", max_shift)
        self.fill = _fill("RandomShift", fill)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N, _, H, W = self._check(x)
        rng, m = self._rng(rng), self.max_shift
        shifts = rng.integers(-m, m + 1, size=(2, N))  # (2, N): dy, dx
        padded = _pad(x, m, self.fill, self.name)  # (N, C, H + 2m, W + 2m)
        # out[i, j] = padded[i + m - dy, j + m - dx] = x[i - dy, j - dx]
        return _gather_windows(padded, m - shifts[0], m - shifts[1], H, W)  # (N, C, H, W)


class RandomCrop(Transform):
    """Pad each image by ``padding`` pixels of ``fill``, then cut a random ``size`` window (PyTorch-style).

    The classic CIFAR augmentation: ``RandomCrop(32, padding=4)``. With ``size == H`` it is a
    random shift by up to ``padding`` pixels.

    Args:
        size: output size, int (square) or ``(h, w)``.
        padding: pixels added on every side before cropping.
        fill: their value, one number or one per channel (see ``RandomShift``).

    Shape:
        - Input: (N, C, H, W), float, with ``h <= H + 2*padding`` and ``w <= W + 2*padding``.
        - Output: (N, C, h, w), same dtype.

    Example:
        >>> t = RandomCrop(32, padding=4)
        >>> t
        RandomCrop(32)
        >>> t(np.zeros((2, 3, 32, 32), dtype=np.float32), np.random.default_rng(0)).shape
        (2, 3, 32, 32)
    """

    def __init__(
        self, size: int | tuple[int, int], padding: int = 4, fill: float | tuple[float, ...] = 0.0
    ) -> None:
        is_int = isinstance(size, int | np.integer) and not isinstance(size, bool)
        pair: Any = (size, size) if is_int else size
        ok = isinstance(pair, Sequence) and len(pair) == 2
        if not ok or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in pair
        ):
            raise arg_error("RandomCrop", "size", "a positive int or a pair (h, w) of positive ints", size)
        self._hw = (int(pair[0]), int(pair[1]))
        self.size: int | tuple[int, int] = self._hw[0] if is_int else self._hw
        self.padding = _nonneg_int("RandomCrop", "padding", padding)
        self.fill = _fill("RandomCrop", fill)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N, _, H, W = self._check(x)
        rng, p, (h, w) = self._rng(rng), self.padding, self._hw
        if h > H + 2 * p or w > W + 2 * p:
            raise ShapeError(
                f"RandomCrop: crop size (h, w) must fit in the padded image (H + 2*padding, W + 2*padding) "
                f"= ({H} + 2*{p}, {W} + 2*{p}) = ({H + 2 * p}, {W + 2 * p}). Received: size={self.size}"
            )
        padded = _pad(x, p, self.fill, self.name)  # (N, C, H + 2p, W + 2p)
        top = rng.integers(0, H + 2 * p - h + 1, size=N)  # (N,)
        left = rng.integers(0, W + 2 * p - w + 1, size=N)  # (N,)
        return _gather_windows(padded, top, left, h, w)  # (N, C, h, w)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``.

    Beware: flipping is wrong for digits and text (a mirrored 2 is not a 2); use it for natural
    images such as CIFAR-10, where a mirrored cat is still a cat.

    Args:
        p: probability that an image is flipped.

    Shape:
        - Input: (N, C, H, W), float. Output: (N, C, H, W), same dtype.

    Example:
        >>> x = np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)
        >>> RandomHorizontalFlip(p=1.0)(x, np.random.default_rng(0)).ravel().tolist()
        [2.0, 1.0, 0.0]
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = _probability("RandomHorizontalFlip", "p", p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N = self._check(x)[0]
        flip = self._rng(rng).random(N) < self.p  # (N,)
        return np.where(flip[:, None, None, None], x[..., ::-1], x)  # (N, C, H, W)


def rotate(x: np.ndarray, degrees: np.ndarray, fill: float | tuple[float, ...] = 0.0) -> np.ndarray:
    """Rotate each image of ``x`` by ``degrees[n]`` about its centre (bilinear).

    Pixels that come from outside the image read ``fill`` (one number or one per channel).

    Positive angles turn the picture counter-clockwise as displayed (row 0 at the top), the
    convention of ``np.rot90`` and torchvision: ``rotate(x, [90])`` equals
    ``np.rot90(x, 1, axes=(2, 3))`` up to rounding. The centre is ``((H-1)/2, (W-1)/2)``.

    Example:
        >>> x = np.array([[[[1, 2], [3, 4]]]], dtype=np.float32)
        >>> np.round(rotate(x, np.array([90.0])), 6)[0, 0].tolist()
        [[2.0, 4.0], [1.0, 3.0]]
    """
    if x.ndim != 4:
        raise shape_error("rotate", "x", "shape (N, C, H, W)", x.shape)
    N, C, H, W = x.shape
    angles = np.asarray(degrees, dtype=np.float64)
    if angles.shape != (N,):
        raise shape_error("rotate", "degrees", f"shape ({N},): one angle per image", angles.shape)
    theta = np.deg2rad(angles)[:, None, None]  # (N, 1, 1)
    cos, sin = np.cos(theta), np.sin(theta)
    yo = np.arange(H)[None, :, None] - (H - 1) / 2  # (1, H, 1) output rows, from the centre
    xo = np.arange(W)[None, None, :] - (W - 1) / 2  # (1, 1, W)
    # Inverse map: for each output pixel, where it comes from (rows grow downwards, so the
    # counter-clockwise matrix has the signs of a clockwise one in (row, col) coordinates).
    xs = cos * xo - sin * yo + (W - 1) / 2  # (N, H, W) source column
    ys = sin * xo + cos * yo + (H - 1) / 2  # (N, H, W) source row
    y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    wy, wx = (ys - y0).astype(x.dtype), (xs - x0).astype(x.dtype)  # (N, H, W) bilinear weights
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    fill = _fill("rotate", fill)
    outside = None if fill == 0.0 else _fill_array("rotate", fill, C, x.dtype)  # (1, C, 1, 1)
    out = np.zeros_like(x)
    for dy, dx, weight in (
        (0, 0, (1 - wy) * (1 - wx)),
        (0, 1, (1 - wy) * wx),
        (1, 0, wy * (1 - wx)),
        (1, 1, wy * wx),
    ):  # the 4 neighbours
        yi, xi = y0 + dy, x0 + dx
        inside = (yi >= 0) & (yi < H) & (xi >= 0) & (xi < W)  # (N, H, W)
        vals = x[n, c, np.clip(yi, 0, H - 1)[:, None], np.clip(xi, 0, W - 1)[:, None]]  # (N, C, H, W)
        if outside is None:
            out += (weight * inside)[:, None] * vals  # zero fill
        else:
            out += weight[:, None] * np.where(inside[:, None], vals, outside)
    return out


class RandomRotation(Transform):
    """Rotate each image by its own random angle, bilinear interpolation.

    See ``rotate`` for the direction: positive = counter-clockwise as displayed.

    Args:
        degrees: a number d (angles uniform in [-d, d]) or a pair (min, max), as in torchvision.
        fill: value read outside the image, one number or one per channel (see ``RandomShift``).

    Shape:
        - Input: (N, C, H, W), float. Output: (N, C, H, W), same dtype.

    Example:
        >>> x = np.ones((2, 1, 5, 5), dtype=np.float32)
        >>> RandomRotation(degrees=0)(x, np.random.default_rng(0)).sum()
        np.float32(50.0)
    """

    def __init__(
        self, degrees: float | tuple[float, float] = 10, fill: float | tuple[float, ...] = 0.0
    ) -> None:
        if isinstance(degrees, int | float) and not isinstance(degrees, bool):
            if degrees < 0:
                raise arg_error(
                    "RandomRotation", "degrees", "a non-negative number or a pair (min, max)", degrees
                )
            self._range = (-float(degrees), float(degrees))
        else:
            self._range = _float_pair("RandomRotation", "degrees", degrees, -math.inf, "min <= max")
            degrees = self._range
        self.degrees = degrees
        self.fill = _fill("RandomRotation", fill)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N = self._check(x)[0]
        angles = self._rng(rng).uniform(self._range[0], self._range[1], size=N)  # (N,)
        return rotate(x, angles, self.fill)


class RandomErasing(Transform):
    """Cutout: with probability ``p``, fill one random rectangle of each image with ``value``.

    As in torchvision (Zhong et al., 2017): the area is a uniform share ``scale`` of H*W, the
    aspect ratio is log-uniform in ``ratio``. Unlike torchvision, a rectangle that would not fit
    is clipped to the image instead of redrawn (so all images are handled in one pass).
    Normalized data (``cnnlab.data.loader.Normalizer``) makes ``value=0`` "the mean colour".

    Args:
        p: probability that an image gets a rectangle.
        scale: (min, max) share of the image area to erase.
        ratio: (min, max) aspect ratio h / w of the rectangle.
        value: the fill value.

    Shape:
        - Input: (N, C, H, W), float. Output: (N, C, H, W), same dtype.

    Example:
        >>> t = RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0), value=-1.0)
        >>> int((t(np.ones((1, 1, 4, 4), dtype=np.float32), np.random.default_rng(0)) == -1).sum())
        4
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.2),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        self.p = _probability("RandomErasing", "p", p)
        self.scale = _float_pair("RandomErasing", "scale", scale, 0.0, "0 <= min <= max")
        if self.scale[1] > 1:
            raise arg_error("RandomErasing", "scale", "a pair (min, max) with max <= 1", scale)
        self.ratio = _float_pair("RandomErasing", "ratio", ratio, 1e-12, "0 < min <= max")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise arg_error("RandomErasing", "value", "a number", value)
        self.value = float(value)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        N, _, H, W = self._check(x)
        rng = self._rng(rng)
        erase = rng.random(N) < self.p  # (N,)
        area = rng.uniform(*self.scale, size=N) * H * W  # (N,)
        aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), size=N))  # (N,)
        h = np.clip(np.round(np.sqrt(area * aspect)), 1, H).astype(np.int64)  # (N,)
        w = np.clip(np.round(np.sqrt(area / aspect)), 1, W).astype(np.int64)  # (N,)
        top = rng.integers(0, H - h + 1)  # (N,)
        left = rng.integers(0, W - w + 1)  # (N,)
        rows = np.arange(H)[None, :]
        cols = np.arange(W)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (N, W)
        mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]  # (N, H, W)
        return np.where(mask[:, None], x.dtype.type(self.value), x)  # (N, C, H, W)


class GaussianNoise(Transform):
    """Add independent N(0, std^2) noise to every pixel.

    Args:
        std: standard deviation of the noise (0.05 for images scaled to [0, 1]).

    Shape:
        - Input: (N, C, H, W), float. Output: (N, C, H, W), same dtype.

    Example:
        >>> y = GaussianNoise(std=0.1)(np.zeros((64, 1, 8, 8), dtype=np.float32), np.random.default_rng(0))
        >>> y.dtype, round(float(y.std()), 1)
        (dtype('float32'), 0.1)
    """

    def __init__(self, std: float = 0.05) -> None:
        if isinstance(std, bool) or not isinstance(std, int | float) or not 0 <= std < math.inf:
            raise arg_error("GaussianNoise", "std", "a finite number >= 0", std)
        self.std = float(std)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self._check(x)
        # standard_normal draws float32/float64 directly; other float dtypes go through float64.
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        noise = self._rng(rng).standard_normal(x.shape, dtype=dtype)  # (N, C, H, W)
        return x + (noise * self.std).astype(x.dtype, copy=False)


class Compose(Transform):
    """Apply transforms in order, all drawing from the same ``rng``.

    Args:
        transforms: the transforms, in the order they run.

    Example:
        >>> t = Compose([RandomShift(), RandomHorizontalFlip(p=0.2)])
        >>> t
        Compose([RandomShift(), RandomHorizontalFlip(p=0.2)])
        >>> t(np.zeros((2, 3, 8, 8), dtype=np.float32), np.random.default_rng(0)).shape
        (2, 3, 8, 8)
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        for i, t in enumerate(transforms):
            if not callable(t):
                raise arg_error("Compose", f"transforms[{i}]", "a callable transform(x, rng)", t)
        self.transforms = list(transforms)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        self._check(x)
        rng = self._rng(rng)
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"


def parse_augment(
    spec: str, image_shape: tuple[int, int, int], fill: float | tuple[float, ...] = 0.0
) -> Compose | None:
    """Build the augmentation for the CLI flag ``--augment shift,flip,rotate,erase,noise,crop``.

    Defaults scale with the image: shift ``max(1, H // 12)`` px (2 for 28x28), crop padding
    ``max(1, round(H / 8))`` (4 for 32x32), rotation 10 degrees, flip p=0.5 (not for digits:
    a mirrored 2 is not a 2), erasing p=0.5, noise std 0.05. The transforms always run in the
    order crop, shift, flip, rotate, erase, noise (geometry first, pixel noise last), whatever
    the order in ``spec``. ``"none"`` or ``""`` gives None.

    Args:
        spec: comma-separated names (case and spaces ignored).
        image_shape: ``(C, H, W)`` of one image.
        fill: what shift, crop and rotate put where the image has no pixels: one number or
            one per channel; for normalized images, the normalized value of black.

    Example:
        >>> parse_augment("rotate, shift", (1, 28, 28))
        Compose([RandomShift(), RandomRotation()])
        >>> parse_augment("none", (1, 28, 28)) is None
        True
    """
    shape_ok = isinstance(image_shape, Sequence) and len(image_shape) == 3
    if not shape_ok or not all(isinstance(s, int | np.integer) and s > 0 for s in image_shape):
        raise arg_error("parse_augment", "image_shape", "(C, H, W) with positive ints", image_shape)
    _, H, W = (int(s) for s in image_shape)
    size = min(H, W)
    factories = {
        "crop": lambda: RandomCrop((H, W) if H != W else H, padding=max(1, round(size / 8)), fill=fill),
        "shift": lambda: RandomShift(max_shift=max(1, size // 12), fill=fill),
        "flip": lambda: RandomHorizontalFlip(p=0.5),
        "rotate": lambda: RandomRotation(degrees=10, fill=fill),
        "erase": lambda: RandomErasing(p=0.5),
        "noise": lambda: GaussianNoise(std=0.05),
    }
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if not names or names == ["none"]:
        return None
    unknown = [s for s in names if s not in factories]
    if unknown:
        raise ValueError(
            f"parse_augment: unknown augmentation {', '.join(map(repr, unknown))}. "
            f"Valid names: {', '.join(factories)} (comma-separated), or 'none'. Received: spec={spec!r}"
        )
    return Compose([make() for key, make in factories.items() if key in names])
