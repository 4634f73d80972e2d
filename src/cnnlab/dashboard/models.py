"""A run's latest weights at work: try-it predictions, Grad-CAM and feature maps.

The latest weights are ``model.npz`` once the run has written it, or the newer
``checkpoint.npz`` of a run still training (its architecture rebuilt from ``model.npz`` or,
before the first ``model.npz``, from ``config.json`` and the dataset's shapes, with the
training split's normalization recomputed exactly as ``cnnlab train`` does).

Predictions use ``cnnlab predict``'s own steps (``train.runs.trained_model.read_input_image`` on
the uploaded file, ``normalize``, ``softmax(model.predict(x))``), so the page and the CLI agree.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.dashboard.data import read_json
from cnnlab.data import load_dataset
from cnnlab.data.images import ImageTooLarge, open_image
from cnnlab.data.loader import Normalizer
from cnnlab.errors import CnnlabError
from cnnlab.functional.activations import softmax
from cnnlab.io import load_with_extra
from cnnlab.models import build_model, model_from_file
from cnnlab.models.probe import feature_maps as probe
from cnnlab.optim import make_optimizer
from cnnlab.train.loop.checkpoint import load_checkpoint
from cnnlab.train.runs.files import CHECKPOINT_FILE, CONFIG_FILE, MODEL_FILE
from cnnlab.train.runs.trained_model import normalize, read_input_image
from cnnlab.viz import grad_cam

#: Uploads larger than this are refused (413) before they are decoded.
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
#: Uploaded images with more pixels than this are refused before decoding the pixel data.
MAX_UPLOAD_PIXELS = 4096 * 4096
#: Channels drawn per feature-map layer.
MAX_MAPS = 32
#: Pictures are enlarged to at least this many pixels high (tiles of feature maps too).
TILE = 24

_lock = threading.Lock()
#: Layers keep forward caches (Grad-CAM runs backward on them): one computation at a time.
_compute = threading.Lock()
_models: dict[tuple[str, int, int], tuple[Any, dict[str, Any]]] = {}
_datasets: dict[tuple[str, str | None], Any] = {}


class NoWeights(Exception):
    """The run has neither model.npz nor a checkpoint yet (or they cannot be read)."""


class BadImage(Exception):
    """An upload that is not an image Pillow can read, or one too large."""


class NoData(Exception):
    """The run's dataset cannot be loaded here (moved, deleted, or never downloaded)."""


def launch_dir(run_dir: Path, config: dict[str, Any]) -> Path | None:
    """The folder ``cnnlab train`` ran in, when the run's relative ``out`` tells it.

    ``out="runs/r"`` for the run folder ``/home/u/w/runs/r`` means training ran in
    ``/home/u/w``: relative paths of its config (``--data clothes``) are relative to that
    folder, not to the folder the dashboard was started in.

    Example:
        >>> launch_dir(Path("/home/u/w/runs/r"), {"out": "runs/r"})
        PosixPath('/home/u/w')
        >>> launch_dir(Path("/srv/runs/r"), {"out": "/elsewhere/r"}) is None
        True
    """
    out = Path(str(config.get("out") or ""))
    parts = out.parts
    if not parts or out.is_absolute() or ".." in parts or run_dir.parts[-len(parts) :] != parts:
        return None
    return Path(*run_dir.parts[: -len(parts)])


def _data_source(run_dir: Path, config: dict[str, Any]) -> tuple[str, str | None]:
    """``(data, data_dir)`` of the run's config, relative folders made absolute where they exist."""
    data, data_dir = str(config.get("data", "digits")), config.get("data_dir")
    base = launch_dir(run_dir, config)
    if base is not None:
        if not Path(data).is_absolute() and (base / data).is_dir():
            data = str(base / data)
        if data_dir and not Path(data_dir).is_absolute() and (base / data_dir).is_dir():
            data_dir = str(base / data_dir)
    return data, data_dir


def _dataset(run_dir: Path, config: dict[str, Any]) -> Any:
    """The run's dataset (cached): test images and the training split's normalization."""
    key = _data_source(run_dir, config)
    with _lock:
        if key not in _datasets:
            try:
                splits = load_dataset(key[0], root=key[1], download=False)
            except (OSError, ValueError, CnnlabError) as exc:
                raise NoData(f"cannot load the dataset of {run_dir.name} ({key[0]!r}): {exc}") from None
            _datasets[key] = (splits, Normalizer().fit(splits.train.x).state())
        return _datasets[key]


def _weights_file(run_dir: Path) -> Path:
    model, ckpt = run_dir / MODEL_FILE, run_dir / CHECKPOINT_FILE
    stamps = {p: p.stat().st_mtime_ns for p in (model, ckpt) if p.is_file()}
    if not stamps:
        raise NoWeights(f"{run_dir.name} has no {MODEL_FILE} or {CHECKPOINT_FILE} yet")
    return max(stamps, key=lambda p: (stamps[p], p == model))  # model.npz wins a tie


def latest_model(run_dir: Path) -> tuple[Any, dict[str, Any], str]:
    """``(model, extra, source)``: the run's newest weights, ``extra`` as in model.npz."""
    path = _weights_file(run_dir)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _lock:
        cached = _models.get(key)
    if cached is None:
        try:
            cached = _load(run_dir, path)
        except (OSError, ValueError, KeyError, CnnlabError) as exc:  # e.g. mid-rename
            raise NoWeights(f"cannot read the weights of {run_dir.name}: {exc}") from None
        with _lock:
            for old in [k for k in _models if k[0] == key[0]]:
                del _models[old]
            _models[key] = cached
    return cached[0], cached[1], path.name


def _load(run_dir: Path, path: Path) -> tuple[Any, dict[str, Any]]:
    if path.name == MODEL_FILE:
        return load_with_extra(path)
    if (run_dir / MODEL_FILE).is_file():  # resumed run: the architecture is saved
        model, extra = load_with_extra(run_dir / MODEL_FILE)
    else:
        model, extra = _model_from_config(run_dir)
    # The checkpoint also holds the optimizer's state; the reader checks every declared
    # shape against the model and the optimizer (as the run built it) before reading data.
    config = read_json(run_dir / CONFIG_FILE) or {}
    optimizer = make_optimizer(
        str(config.get("optimizer", "adam")),
        model.parameters(),
        lr=float(config.get("lr", 1e-3)),
        weight_decay=float(config.get("weight_decay", 0.0)),
        momentum=float(config.get("momentum", 0.9)),
    )
    model.load_state_dict(load_checkpoint(path, model, optimizer).model)
    return model, extra


def _model_from_config(run_dir: Path) -> tuple[Any, dict[str, Any]]:
    config = read_json(run_dir / CONFIG_FILE)
    if config is None:
        raise NoWeights(f"{run_dir.name}: no {CONFIG_FILE} to rebuild the model from")
    splits, normalization = _dataset(run_dir, config)
    _, channels, height, width = splits.train.x.shape  # (N, C, H, W)
    name, k = str(config.get("model", "small_bn")), len(splits.classes)
    rng = np.random.default_rng(0)  # the weights are replaced by the checkpoint's
    model: Any  # a Sequential, or a Graph (the classic zoo architectures)
    if os.path.splitext(name)[1].lower() in (".yaml", ".yml", ".json"):
        model = model_from_file(name, channels, (height, width), k, rng=rng)
    else:
        model = build_model(name, channels, (height, width), k, rng=rng, **config.get("model_args", {}))
    extra = {
        "classes": list(splits.classes),
        "input_shape": [channels, height, width],
        "normalization": normalization,
    }
    return model, extra


def read_upload(data: bytes, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Decode an uploaded PNG/JPEG with Pillow exactly as ``cnnlab predict`` reads a file.

    Returns ``(C, H, W)`` float32 in [0, 1]; ``BadImage`` for anything else.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadImage(f"upload too large: {len(data)} bytes (at most {MAX_UPLOAD_BYTES})")
    try:
        with open_image(io.BytesIO(data), warn_large=False) as img:  # reads the header only
            width, height = img.size
            kind = img.format
    except ImageTooLarge as exc:  # Pillow's decompression-bomb limit: say so, with the numbers
        pixels = f"{exc.pixels:,}" if exc.pixels else f"more than {exc.limit:,}"
        raise BadImage(
            f"the image is over the pixel limit: {pixels} pixels; uploads may have at most "
            f"{MAX_UPLOAD_PIXELS:,} pixels (a PNG or JPEG)"
        ) from None
    except Exception:
        raise BadImage("not an image Pillow can read (PNG or JPEG expected)") from None
    if kind not in ("PNG", "JPEG") or width * height > MAX_UPLOAD_PIXELS:
        raise BadImage(
            f"expected a PNG or JPEG of at most {MAX_UPLOAD_PIXELS} pixels; got {kind} {width}x{height}"
        )
    # The same function as `cnnlab predict` on the same bytes: the results agree exactly.
    fd, name = tempfile.mkstemp(suffix=".png", prefix="cnnlab-dashboard-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return read_input_image(name, channels, size)[0]  # the page shows what the model saw
    except CnnlabError as exc:
        raise BadImage(str(exc).replace(name, "the upload")) from None
    finally:
        os.unlink(name)


def predict(run_dir: Path, data: bytes, top_k: int = 5) -> dict[str, Any]:
    """Top-k probabilities of an uploaded image, and its Grad-CAM map when available."""
    model, extra, source = latest_model(run_dir)
    channels, height, width = extra.get("input_shape") or (1, 28, 28)
    image = read_upload(data, channels, (height, width))  # (C, H, W)
    x = normalize(image[None], extra)  # (1, C, H, W)
    with _compute:
        probs = softmax(model.predict(x).astype(np.float64))[0]  # (K,)
        cam = _cam(model, x, int(np.argmax(probs)))
    classes = [str(c) for c in extra.get("classes") or range(len(probs))]  # the model's own count
    top = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
    return {
        "source": source,
        "classes": classes,
        "probabilities": probs.tolist(),
        "top": [{"class": classes[i], "index": int(i), "probability": float(probs[i])} for i in top],
        "input": png_data_url(image),
        "cam": cam,
    }


def _cam(model: Any, x: np.ndarray, target: int) -> list[list[float]] | None:
    """Grad-CAM of ``target`` at the input's resolution, or None for a model without one."""
    try:
        cam = grad_cam(model, x, target=np.array([target]), resize=True)  # (1, H, W)
    except (ValueError, CnnlabError):  # e.g. a model without a 4-D feature map
        return None
    return np.asarray(cam[0], dtype=np.float64).round(4).tolist()


def feature_maps(run_dir: Path, index: int) -> dict[str, Any]:
    """Test image ``index`` of the run's dataset, the prediction and every conv/pool output."""
    config = read_json(run_dir / CONFIG_FILE)
    if config is None:
        raise NoWeights(f"{run_dir.name}: no {CONFIG_FILE} (which dataset?)")
    if not config.get("data"):  # e.g. a model brought in by `cnnlab import`: no test images
        raise NoData(f"{run_dir.name} names no dataset (an imported model?): try it with an image instead")
    model, extra, source = latest_model(run_dir)
    splits, _ = _dataset(run_dir, config)
    n = len(splits.test.x)
    index = int(index) % n
    image = splits.test.x[index]  # (C, H, W)
    x = normalize(image[None], extra)  # (1, C, H, W), as the run normalizes its inputs
    with _compute:
        probs = softmax(model.predict(x).astype(np.float64))[0]  # (K,)
        outputs = probe(model, x)
    classes = [str(c) for c in extra.get("classes") or splits.classes]
    layers = [
        {"label": label, "shape": list(out.shape[1:]), "png": png_data_url(out[0, :MAX_MAPS], grid=True)}
        for label, out in outputs
    ]
    return {
        "source": source,
        "index": index,
        "count": n,
        "label": classes[int(splits.test.y[index])],
        "predicted": classes[int(probs.argmax())],
        "probability": float(probs.max()),
        "image": png_data_url(image),
        "layers": layers,
    }


def png_data_url(array: np.ndarray, grid: bool = False) -> str:
    """A ``data:image/png`` URL of a ``(C, H, W)`` image, or of its channels as tiles.

    The image (or each channel, ``grid=True``) is scaled to 0..255 by its own min and max and
    enlarged (nearest neighbour) to at least ``TILE`` pixels high (an image: 4 ``TILE``);
    tiles sit 8 to a row with a 2-pixel dark gap.
    """
    from PIL import Image

    a = np.asarray(array, dtype=np.float64)  # (C, H, W)
    c, h, w = a.shape
    k = max(1, -(-(TILE if grid else 4 * TILE) // h))  # enlargement factor
    lo = a.min(axis=(1, 2), keepdims=True) if grid else a.min()
    span = np.maximum((a.max(axis=(1, 2), keepdims=True) if grid else a.max()) - lo, 1e-12)
    a = ((a - lo) / span).repeat(k, axis=1).repeat(k, axis=2)  # (C, kH, kW) in [0, 1]
    if grid:
        cols, gap = min(c, 8), 2
        rows = -(-c // cols)
        sheet = np.full((rows * (k * h + gap) - gap, cols * (k * w + gap) - gap), 0.2)
        for i in range(c):
            r, q = divmod(i, cols)
            y, x = r * (k * h + gap), q * (k * w + gap)
            sheet[y : y + k * h, x : x + k * w] = a[i]
        pixels = (sheet * 255).round().astype(np.uint8)  # (rows kH, cols kW)
    else:
        pixels = (a.transpose(1, 2, 0) * 255).round().astype(np.uint8)  # (kH, kW, C)
        pixels = pixels[..., 0] if c == 1 else pixels  # L or RGB
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
