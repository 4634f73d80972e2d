"""Augmentation transforms: known outputs on tiny images, shapes, determinism, errors, parse_augment."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cnnlab.data.transforms import (
    Compose,
    GaussianNoise,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomRotation,
    RandomShift,
    Transform,
    parse_augment,
    rotate,
)
from cnnlab.errors import ShapeError

ALL = [
    RandomShift(max_shift=2),
    RandomCrop(8, padding=2),
    RandomHorizontalFlip(p=0.5),
    RandomRotation(degrees=15),
    RandomErasing(p=0.7),
    GaussianNoise(std=0.1),
    Compose([RandomShift(), RandomHorizontalFlip(), RandomRotation(), RandomErasing(), GaussianNoise()]),
]


def grid3() -> np.ndarray:
    return np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)


# ---- shapes, dtypes, determinism, no in-place edits ---------------------------------------
@pytest.mark.parametrize("t", ALL, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_preserved_and_input_untouched(t, dtype):
    x = np.random.default_rng(0).random((5, 3, 8, 8)).astype(dtype)
    before = x.copy()
    y = t(x, np.random.default_rng(1))
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_same_seed_same_batch(t):
    x = np.random.default_rng(0).random((6, 3, 8, 8)).astype(np.float32)
    a = t(x, np.random.default_rng(42))
    b = t(x, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(43)))


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_get_config_rebuilds_and_repr(t):
    clone = type(t)(**t.get_config())
    assert repr(clone) == repr(t)
    x = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(clone(x, np.random.default_rng(5)), t(x, np.random.default_rng(5)))


def test_repr_shows_only_non_defaults():
    assert repr(RandomShift()) == "RandomShift()"
    assert repr(RandomShift(3)) == "RandomShift(max_shift=3)"
    assert repr(RandomCrop(28, padding=2)) == "RandomCrop(28, padding=2)"
    assert repr(RandomErasing(p=1.0, scale=[0.1, 0.3])) == "RandomErasing(p=1.0, scale=(0.1, 0.3))"


def test_labels_untouched_through_dataloader():
    loader_mod = pytest.importorskip("cnnlab.data.loader")
    x = np.random.default_rng(0).random((10, 1, 6, 6)).astype(np.float32)
    y = np.arange(10)
    plain = loader_mod.DataLoader(x, y, batch_size=4, rng=7)
    augmented = loader_mod.DataLoader(x, y, batch_size=4, rng=7, transform=RandomShift(1))
    # The permutation is drawn at the start of the epoch, before any transform draws.
    for (xa, ya), (xb, yb) in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(ya, yb)
        assert xa.shape == xb.shape


# ---- known outputs on tiny images ------------------------------------------------------------
class _Wrap(np.random.Generator):
    """A Generator whose ``integers`` returns a fixed (dy, dx): pins RandomShift's draw."""

    def __init__(self, dy: int, dx: int) -> None:
        super().__init__(np.random.PCG64(0))
        self._shift = np.array([[dy], [dx]])

    def integers(self, *args, **kwargs):
        return self._shift


@pytest.mark.parametrize("dy, dx", [(1, 0), (0, -1), (-1, 1), (0, 0), (1, 1)])
def test_shift_known_output_matches_loop(dy, dx):
    x = grid3()
    expected = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if 0 <= i - dy < 3 and 0 <= j - dx < 3:
                expected[0, 0, i, j] = x[0, 0, i - dy, j - dx]
    np.testing.assert_array_equal(RandomShift(1)(x, _Wrap(dy, dx)), expected)


def test_shift_by_one_example():
    out = RandomShift(1)(grid3(), _Wrap(1, 1))[0, 0]
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 1, 2], [0, 4, 5]])


def test_shift_fills_uncovered_pixels_with_fill():
    out = RandomShift(1, fill=-0.5)(grid3(), _Wrap(1, -1))[0, 0]
    np.testing.assert_array_equal(out, [[-0.5, -0.5, -0.5], [2, 3, -0.5], [5, 6, -0.5]])
    # One value per channel (e.g. the normalized black of each channel).
    x = np.ones((1, 2, 3, 3))
    out = RandomShift(1, fill=(-1.0, -2.0))(x, _Wrap(0, 1))
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, -1, -1], [-2, -2, -2]])
    np.testing.assert_array_equal(out[0, :, :, 1:], np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match=r"RandomShift: fill has 2 values but the images have 3 channels"):
        RandomShift(1, fill=(-1.0, -2.0))(np.ones((1, 3, 3, 3)), np.random.default_rng(0))


def test_crop_and_rotation_fill():
    out = RandomCrop(3, padding=1, fill=7.0)(grid3(), np.random.default_rng(3))
    window = np.pad(grid3()[0, 0], 1, constant_values=7.0)
    assert any(np.array_equal(out[0, 0], window[i : i + 3, j : j + 3]) for i in range(3) for j in range(3))
    # Filling with the image's own constant value makes a rotation of a constant image exact.
    np.testing.assert_allclose(
        rotate(np.full((1, 1, 7, 7), 2.0), np.array([45.0]), fill=2.0), 2.0, atol=1e-12
    )
    assert (
        RandomRotation(30, fill=2.0)(np.full((2, 1, 5, 5), 2.0), np.random.default_rng(0)).min() > 2 - 1e-12
    )


def test_shift_zero_is_identity():
    x = np.random.default_rng(0).random((4, 2, 5, 5))
    np.testing.assert_array_equal(RandomShift(0)(x, np.random.default_rng(0)), x)


def test_flip_known_output():
    out = RandomHorizontalFlip(p=1.0)(grid3(), np.random.default_rng(0))
    np.testing.assert_array_equal(out[0, 0], [[3, 2, 1], [6, 5, 4], [9, 8, 7]])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(grid3(), np.random.default_rng(0)), grid3())


def test_flip_rate_is_about_p():
    x = np.arange(2, dtype=np.float32).reshape(1, 1, 1, 2).repeat(4000, axis=0)
    out = RandomHorizontalFlip(p=0.3)(x, np.random.default_rng(0))
    flipped = (out[:, 0, 0, 0] == 1).mean()
    assert abs(flipped - 0.3) < 0.03  # binomial sd = sqrt(.3*.7/4000) = 0.007


SQUARE_AND_HALF_TURNS = [(k, s) for k in (1, 2, 3, -1) for s in ((3, 3), (4, 4))] + [
    (2, (2, 6)),
    (-2, (5, 2)),
]


@pytest.mark.parametrize("k, shape", SQUARE_AND_HALF_TURNS)
def test_rotation_by_multiples_of_90_matches_rot90(k, shape):
    x = np.random.default_rng(0).random((2, 3, *shape))
    expected = np.rot90(x, k, axes=(2, 3))  # counter-clockwise as displayed for k > 0
    np.testing.assert_allclose(rotate(x, np.full(2, 90.0 * k)), expected, atol=1e-12)
    t = RandomRotation(degrees=(90.0 * k, 90.0 * k))
    np.testing.assert_allclose(t(x, np.random.default_rng(0)), expected, atol=1e-12)


def test_rotation_by_90_on_3x3_known_output():
    out = RandomRotation(degrees=(90, 90))(grid3(), np.random.default_rng(0))[0, 0]
    np.testing.assert_allclose(out, [[3, 6, 9], [2, 5, 8], [1, 4, 7]], atol=1e-12)


def test_rotation_by_zero_is_identity():
    x = np.random.default_rng(0).random((3, 2, 7, 5)).astype(np.float32)
    np.testing.assert_array_equal(RandomRotation(degrees=0)(x, np.random.default_rng(0)), x)


def test_rotation_45_bilinear_and_zero_fill():
    out = rotate(np.ones((1, 1, 7, 7)), np.array([45.0]))[0, 0]
    assert out[3, 3] == pytest.approx(1.0)  # the centre stays
    assert out[0, 0] == 0.0  # the corner comes from outside: zero fill
    assert 0.0 < out[0, 1] < 1.0  # the edge blends image and zero fill (bilinear)
    assert np.all((out >= 0) & (out <= 1 + 1e-12))
    # A source pixel half way between two pixels gets the mean of both (here: 1 and 3).
    x = np.array([[[[1.0, 3.0], [1.0, 3.0]]]])
    np.testing.assert_allclose(rotate(x, np.array([180.0]))[0, 0], [[3, 1], [3, 1]], atol=1e-12)


def test_rotation_per_image_angles_differ():
    x = np.ones((8, 1, 9, 9), dtype=np.float32)
    out = RandomRotation(degrees=30)(x, np.random.default_rng(0))
    assert len({round(float(v), 4) for v in out.sum(axis=(1, 2, 3))}) > 1


def test_erasing_sets_exactly_one_rectangle():
    x = np.ones((50, 2, 10, 12), dtype=np.float32)
    out = RandomErasing(p=1.0, value=-1.0)(x, np.random.default_rng(0))
    for img in out:
        mask = img[0] == -1
        assert mask.any()
        np.testing.assert_array_equal(img[1] == -1, mask)  # the same rectangle in every channel
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)  # contiguous
        np.testing.assert_array_equal(mask, np.outer(mask.any(1), mask.any(0)))  # a full rectangle
        assert np.all(img[:, ~mask] == 1)  # everything else untouched
        area = mask.sum() / mask.size
        assert 0.005 < area < 0.3


def test_erasing_probability_zero_is_identity():
    x = np.random.default_rng(0).random((5, 1, 6, 6))
    np.testing.assert_array_equal(RandomErasing(p=0.0)(x, np.random.default_rng(0)), x)


def test_crop_padding_zero_full_size_is_identity():
    x = np.random.default_rng(0).random((4, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(RandomCrop(6, padding=0)(x, np.random.default_rng(0)), x)


def test_crop_is_a_window_of_the_padded_image():
    x = np.random.default_rng(0).random((20, 1, 4, 4))
    out = RandomCrop((3, 2), padding=1)(x, np.random.default_rng(0))
    assert out.shape == (20, 1, 3, 2)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for img, src in zip(out, padded, strict=True):
        windows = np.lib.stride_tricks.sliding_window_view(src[0], (3, 2))
        assert any(np.array_equal(img[0], w) for w in windows.reshape(-1, 3, 2))


def test_noise_statistics():
    x = np.zeros((100, 1, 10, 10), dtype=np.float32)
    noise = GaussianNoise(std=0.2)(x, np.random.default_rng(0))
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.2) < 0.01
    np.testing.assert_array_equal(GaussianNoise(std=0)(x, np.random.default_rng(0)), x)


def test_compose_applies_in_order():
    x = grid3()

    class Standardize(Transform):  # a fixed affine map: the order of the two matters
        def __call__(self, x, rng):
            return (x - 1.0) / 2.0

    t = Compose([Standardize(), RandomHorizontalFlip(p=1.0)])
    np.testing.assert_allclose(t(x, np.random.default_rng(0)), ((x - 1) / 2)[..., ::-1])
    assert len(t) == 2


# ---- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RandomHorizontalFlip(p=1.5), r"RandomHorizontalFlip: argument `p` must be a probability"),
        (lambda: RandomErasing(p=-0.1), r"argument `p` must be a probability in \[0, 1\]. Received: p=-0.1"),
        (lambda: GaussianNoise(std=-1), r"GaussianNoise: argument `std` must be a finite number >= 0"),
        (lambda: RandomShift(max_shift=-1), r"RandomShift: argument `max_shift` must be a non-negative int"),
        (lambda: RandomShift(max_shift=1.5), r"max_shift"),
        (lambda: RandomCrop(0), r"RandomCrop: argument `size` must be a positive int"),
        (lambda: RandomCrop(8, padding=-2), r"argument `padding`"),
        (lambda: RandomRotation(degrees=-5), r"RandomRotation: argument `degrees`"),
        (lambda: RandomRotation(degrees=(10, -10)), r"min <= max"),
        (lambda: RandomErasing(scale=(0.5, 0.1)), r"argument `scale`"),
        (lambda: RandomErasing(scale=(0.1, 1.5)), r"max <= 1"),
        (lambda: RandomErasing(ratio=(0, 1)), r"argument `ratio`"),
        (lambda: Compose([1]), r"Compose: argument `transforms\[0\]`"),
        (
            lambda: RandomShift(fill=float("nan")),
            r"RandomShift: argument `fill` must be a finite number or one",
        ),
        (lambda: RandomCrop(8, fill="black"), r"RandomCrop: argument `fill`"),
        (lambda: RandomRotation(fill=()), r"RandomRotation: argument `fill`"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_bad_input_shape(t):
    with pytest.raises(
        ShapeError, match=r"input must have shape \(N, C, H, W\). Received: shape \(3, 8, 8\)"
    ):
        t(np.zeros((3, 8, 8), dtype=np.float32), np.random.default_rng(0))
    with pytest.raises(TypeError, match="floating-point"):
        t(np.zeros((1, 3, 8, 8), dtype=np.uint8), np.random.default_rng(0))


def test_rng_must_be_explicit():
    with pytest.raises(ValueError, match=r"argument `rng` must be a numpy.random.Generator or an int seed"):
        RandomShift()(np.zeros((1, 1, 4, 4)), None)
    x = np.random.default_rng(0).random((3, 1, 6, 6))
    np.testing.assert_array_equal(RandomShift()(x, 3), RandomShift()(x, np.random.default_rng(3)))


def test_crop_too_big():
    with pytest.raises(ShapeError, match=r"\(4 \+ 2\*1, 4 \+ 2\*1\) = \(6, 6\). Received: size=7"):
        RandomCrop(7, padding=1)(np.zeros((1, 1, 4, 4)), np.random.default_rng(0))


# ---- parse_augment ---------------------------------------------------------------------------
def test_parse_augment_names_and_defaults():
    t = parse_augment("shift,flip,rotate,erase,noise,crop", (1, 28, 28))
    assert repr(t) == (
        "Compose([RandomCrop(28), RandomShift(), RandomHorizontalFlip(), RandomRotation(), "
        "RandomErasing(), GaussianNoise()])"
    )
    assert repr(parse_augment(" Shift , rotate", (3, 32, 32))) == "Compose([RandomShift(), RandomRotation()])"
    assert repr(parse_augment("shift,crop", (3, 64, 48))) == (
        "Compose([RandomCrop((64, 48), padding=6), RandomShift(max_shift=4)])"
    )
    assert repr(parse_augment("shift", (1, 8, 8))) == "Compose([RandomShift(max_shift=1)])"
    assert parse_augment("none", (1, 28, 28)) is None
    assert parse_augment("", (1, 28, 28)) is None
    out = parse_augment("crop,shift,rotate,erase,noise", (1, 28, 28))(
        np.zeros((2, 1, 28, 28), dtype=np.float32), np.random.default_rng(0)
    )
    assert out.shape == (2, 1, 28, 28) and out.dtype == np.float32


def test_parse_augment_passes_fill_to_geometric_transforms():
    t = parse_augment("shift,crop,rotate,flip", (1, 28, 28), fill=(-0.8,))
    assert [getattr(step, "fill", None) for step in t.transforms] == [(-0.8,), (-0.8,), None, (-0.8,)]
    assert repr(t.transforms[1]) == "RandomShift(fill=(-0.8,))"


def test_parse_augment_errors():
    with pytest.raises(ValueError, match=r"unknown augmentation 'blur'. Valid names: crop, shift, flip"):
        parse_augment("shift,blur", (1, 28, 28))
    with pytest.raises(ValueError, match=r"argument `image_shape`"):
        parse_augment("shift", (28, 28))


def test_dataloader_runs_transform_when_available():
    if importlib.util.find_spec("cnnlab.data.loader") is None:
        pytest.skip("cnnlab.data.loader not available")
    from cnnlab.data.loader import DataLoader

    x = np.ones((6, 1, 4, 4), dtype=np.float32)
    loader = DataLoader(x, np.arange(6), 3, shuffle=False, rng=0, transform=RandomErasing(p=1.0, value=5.0))
    for xb, yb in loader:
        assert np.all((xb == 5).reshape(3, -1).any(axis=1))
        assert yb.tolist() in ([0, 1, 2], [3, 4, 5])
