"""The files of a run folder, named once.

``cnnlab train`` writes them (``train_run``); ``resume``, ``evaluate``, ``predict``,
``diagnose``, ``plot``, ``export``, the report and the dashboard read them::

    RUN_DIR/
      config.json      CONFIG_FILE: the resolved TrainConfig (``cnnlab train --config``)
      model.npz        MODEL_FILE: architecture, weights, class names, normalization
      history.csv      HISTORY_FILE: one row per epoch
      metrics.json     METRICS_FILE: the test evaluation
      checkpoint.npz   CHECKPOINT_FILE: everything needed to resume
      report.html      REPORT_FILE, and plots/ (PLOTS_DIR): ``cnnlab plot RUN_DIR``
      tensorboard/     TENSORBOARD_DIR: ``cnnlab train --tensorboard``
      torch/, model.onnx   TORCH_EXPORT_DIR, ONNX_FILE: ``cnnlab export RUN_DIR``
      .cnnlab.lock     LOCK_FILE: held while a command writes the folder

A tune folder holds ``best_config.json`` (BEST_CONFIG_FILE) beside its trials.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
MODEL_FILE = "model.npz"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_FILE = "checkpoint.npz"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
TENSORBOARD_DIR = "tensorboard"
TORCH_EXPORT_DIR = "torch"
ONNX_FILE = "model.onnx"
LOCK_FILE = ".cnnlab.lock"
BEST_CONFIG_FILE = "best_config.json"

#: What a run writes into its folder; ``--overwrite`` deletes exactly these (config.json first,
#: so a half-cleared folder is never taken for the old run).
RUN_FILES = (
    CONFIG_FILE,
    CHECKPOINT_FILE,
    MODEL_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    PLOTS_DIR,
    TENSORBOARD_DIR,
    TORCH_EXPORT_DIR,
    ONNX_FILE,
)
