"""The ``TensorBoard`` callback: event files for ``tensorboard --logdir RUN/tensorboard``.

Written with TensorBoard's own pieces, without TensorFlow or PyTorch: the ``tensorboard``
package's ``EventFileWriter`` (the tfrecord event file, as ``torch.utils.tensorboard`` uses)
and its ``Summary``/``HistogramProto`` messages. Only the messages are filled in here; the
histogram buckets come from ``numpy.histogram`` and the images are PNGs from Pillow.

As Keras does, training and validation values go to two sub-folders, ``train/`` and
``validation/``, under the same tags (``epoch_loss``, ``epoch_accuracy``), so TensorBoard
draws them as two curves of one chart. Per epoch (step = epoch number):

- scalars: ``epoch_loss``, ``epoch_accuracy`` (train and validation), ``learning_rate`` and
  ``images_per_second`` (training images over the time of the training steps);
- histograms: ``weights/<name>`` of every parameter (``state_dict`` names, e.g.
  ``0.weight``) and ``gradients/<name>``: the gradients of the epoch's LAST training batch,
  which the NumPy engine leaves in ``layer.grads``. The torch backend computes gradients in
  the torch module and copies only weights back, so under ``--backend torch`` no gradient
  histograms are written (weights only);
- images: ``filters``: the first conv layer's kernels (3 input channels in colour, else
  channel 0 in grey), and ``feature_maps/<layer>``: the first channels of every conv/pool
  output for one fixed ``sample`` image (e.g. the first test image), each tile rescaled to
  its own min..max.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.models.probe import feature_maps
from cnnlab.train.loop.callbacks import Callback, TrainContext

#: Channels of each feature map and kernels drawn per image, and the grid's columns.
MAX_TILES, COLUMNS = 16, 8
#: Each tile is upscaled (nearest neighbour) to at least this many pixels wide.
MIN_TILE = 32
INSTALL_HINT = 'TensorBoard logging needs the tensorboard package: pip install "cnnlab[tensorboard]"'


def import_tensorboard() -> tuple[Any, Any, Any]:
    """``(EventFileWriter, event_pb2, summary_pb2)`` from the ``tensorboard`` package."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise CnnlabError(INSTALL_HINT) from None
    return EventFileWriter, event_pb2, summary_pb2


class TensorBoard(Callback):
    """Write scalars, histograms and images of each epoch for TensorBoard.

    Args:
        log_dir: the folder for the event files (``train/`` and ``validation/`` inside);
            ``cnnlab train --tensorboard`` uses ``RUN/tensorboard``.
        sample: one normalized input ``(C, H, W)`` or ``(1, C, H, W)`` whose feature maps
            are drawn each epoch; None for no feature maps.
        histograms: write weight and gradient histograms.
        images: write the first-layer filters and the feature maps of ``sample``.

    Example:
        >>> import numpy as np, tempfile, cnnlab
        >>> from cnnlab.train.loop.tensorboard import TensorBoard
        >>> net = cnnlab.Sequential(cnnlab.Conv2D(1, 4, 3, rng=0), cnnlab.ReLU(), cnnlab.Flatten(),
        ...                         cnnlab.Dense(4 * 6 * 6, 3, rng=0))
        >>> x = np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)
        >>> y = np.arange(12) % 3
        >>> log_dir = tempfile.mkdtemp()
        >>> cb = TensorBoard(log_dir, sample=x[0])
        >>> _ = cnnlab.fit(net, cnnlab.SoftmaxCrossEntropy(), cnnlab.SGD(net.parameters(), lr=0.1),
        ...                (x, y), epochs=2, batch_size=4, val_split=0.25, callbacks=[cb], verbose=False)
        >>> sorted(p.name for p in Path(log_dir).iterdir())
        ['train', 'validation']
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        sample: np.ndarray | None = None,
        histograms: bool = True,
        images: bool = True,
    ) -> None:
        import_tensorboard()  # fail here, with the install hint, not after the first epoch
        self.log_dir = Path(log_dir)
        self.sample = None if sample is None else np.asarray(sample).reshape((1, *np.shape(sample)[-3:]))
        self.histograms = histograms
        self.images = images
        self._writers: dict[str, Any] = {}
        self._last_grads: dict[str, np.ndarray] = {}  # copies of the gradients logged last
        self._seen, self._train_seconds, self._start = 0, 0.0, 0.0

    # ---- hooks ----------------------------------------------------------------------------
    def on_train_begin(self, ctx: TrainContext) -> None:
        self.close()  # a second fit() with the same callback starts new event files
        EventFileWriter, _, _ = import_tensorboard()
        for split in ("train", "validation"):
            self._writers[split] = EventFileWriter(str(self.log_dir / split), flush_secs=30)
        self._last_grads = {}

    def on_epoch_begin(self, epoch: int, ctx: TrainContext) -> None:
        self._seen, self._train_seconds, self._start = 0, 0.0, time.perf_counter()

    def on_batch_end(self, batch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        self._seen += int(logs.get("size", 0))
        self._train_seconds = time.perf_counter() - self._start  # up to the last step

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        _, _, summary_pb2 = import_tensorboard()
        train: list[Any] = [
            _scalar(summary_pb2, "epoch_loss", logs.get("train_loss")),
            _scalar(summary_pb2, "epoch_accuracy", logs.get("train_accuracy")),
            _scalar(summary_pb2, "learning_rate", logs.get("lr")),
        ]
        if self._train_seconds > 0:
            train.append(_scalar(summary_pb2, "images_per_second", self._seen / self._train_seconds))
        val = [
            _scalar(summary_pb2, "epoch_loss", logs.get("val_loss")),
            _scalar(summary_pb2, "epoch_accuracy", logs.get("val_accuracy")),
        ]
        if self.histograms:
            train += self._histograms(summary_pb2, ctx.model)
        if self.images:
            train += self._images(summary_pb2, ctx.model)
        self._write("train", epoch, [v for v in train if v is not None])
        self._write("validation", epoch, [v for v in val if v is not None])

    def on_train_end(self, ctx: TrainContext) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the event files (also done at the end of training)."""
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ---- what is logged -------------------------------------------------------------------
    def _write(self, split: str, epoch: int, values: list[Any]) -> None:
        if not values:
            return
        _, event_pb2, summary_pb2 = import_tensorboard()
        event = event_pb2.Event(wall_time=time.time(), step=epoch, summary=summary_pb2.Summary(value=values))
        self._writers[split].add_event(event)
        self._writers[split].flush()  # on disk each epoch: a crashed run keeps its logs

    def _histograms(self, summary_pb2: Any, model: Any) -> list[Any]:
        values = []
        for param in model.parameters():
            values.append(_histogram(summary_pb2, f"weights/{param.path}", param.value))
            grad = param.layer.grads.get(param.name)
            # Only gradients a backward wrote this epoch (they differ from the last logged):
            # none under the torch backend, which keeps its gradients in the torch module.
            last = self._last_grads.get(param.path)
            if grad is not None and (last is None or not np.array_equal(grad, last)):
                values.append(_histogram(summary_pb2, f"gradients/{param.path}", grad))
                self._last_grads[param.path] = np.array(grad, copy=True)
        return values

    def _images(self, summary_pb2: Any, model: Any) -> list[Any]:
        values = []
        conv = next((lay for _, lay in model.named_layers() if type(lay).__name__ == "Conv2D"), None)
        if conv is not None:
            w = np.asarray(conv.params["weight"], dtype=np.float64)[:MAX_TILES]  # (n, C_in, KH, KW)
            tiles = w if w.shape[1] == 3 else w[:, :1]  # (n, 3 or 1, KH, KW)
            values.append(_image(summary_pb2, "filters", tile_grid(tiles)))
        if self.sample is not None:
            x = self.sample.astype(model.dtype, copy=False)  # (1, C, H, W)
            for label, out in feature_maps(model, x):
                tag = "feature_maps/" + label.split("(")[0].replace(": ", "_")  # e.g. feature_maps/0_Conv2D
                values.append(_image(summary_pb2, tag, tile_grid(out[0, :MAX_TILES, None])))
        return values


# ---- messages -------------------------------------------------------------------------------
def _scalar(summary_pb2: Any, tag: str, value: Any) -> Any:
    if value is None or not math.isfinite(float(value)):
        return None  # e.g. val_loss without validation data: no point rather than a NaN
    return summary_pb2.Summary.Value(tag=tag, simple_value=float(value))


def _histogram(summary_pb2: Any, tag: str, values: np.ndarray, bins: int = 30) -> Any:
    """A ``HistogramProto`` of ``values``: ``bins`` equal-width buckets from min to max."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return summary_pb2.Summary.Value(tag=tag, histo=summary_pb2.HistogramProto())
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5))
    histo = summary_pb2.HistogramProto(
        min=lo,
        max=hi,
        num=float(v.size),
        sum=float(v.sum()),
        sum_squares=float(np.dot(v, v)),
        bucket_limit=edges[1:].tolist(),  # right edge of each bucket
        bucket=counts.astype(np.float64).tolist(),
    )
    return summary_pb2.Summary.Value(tag=tag, histo=histo)


def _image(summary_pb2: Any, tag: str, pixels: np.ndarray) -> Any:
    """A PNG ``Summary.Image`` of ``(H, W)`` grey or ``(H, W, 3)`` colour uint8 pixels."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    height, width = pixels.shape[:2]
    colorspace = 3 if pixels.ndim == 3 else 1
    image = summary_pb2.Summary.Image(
        height=height, width=width, colorspace=colorspace, encoded_image_string=buffer.getvalue()
    )
    return summary_pb2.Summary.Value(tag=tag, image=image)


def tile_grid(tiles: np.ndarray, columns: int = COLUMNS, min_tile: int = MIN_TILE) -> np.ndarray:
    """Lay ``(n, C, h, w)`` tiles (C = 1 or 3) out in a grid, each rescaled to its min..max.

    Tiles are upscaled by an integer factor (nearest neighbour) to at least ``min_tile``
    pixels wide and separated by a 1-pixel white line.

    Returns:
        ``(H, W)`` (C = 1) or ``(H, W, 3)`` (C = 3) uint8 pixels.

    Example:
        >>> tile_grid(np.arange(8.0).reshape(2, 1, 2, 2), columns=2, min_tile=2).tolist()
        [[0, 85, 255, 0, 85], [170, 255, 255, 170, 255]]
    """
    t = np.asarray(tiles, dtype=np.float64)
    n, c, h, w = t.shape
    lo = t.min(axis=(1, 2, 3), keepdims=True)
    span = t.max(axis=(1, 2, 3), keepdims=True) - lo
    t = np.divide(t - lo, span, out=np.zeros_like(t), where=span > 0)  # (n, C, h, w) in [0, 1]
    scale = max(1, math.ceil(min_tile / w))
    t = t.repeat(scale, axis=2).repeat(scale, axis=3)  # (n, C, h*s, w*s)
    h, w = h * scale, w * scale
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    grid = np.ones((c, rows * (h + 1) - 1, cols * (w + 1) - 1))  # white separators
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, r * (h + 1) : r * (h + 1) + h, k * (w + 1) : k * (w + 1) + w] = t[i]
    pixels = np.round(grid * 255).astype(np.uint8)  # (C, H, W)
    return pixels[0] if c == 1 else pixels.transpose(1, 2, 0)  # (H, W) or (H, W, 3)
