"""Training workbench, bottom to top (each folder imports only the ones before it):

- ``loop/``: ``fit`` (the one epoch loop), its engines (NumPy, torch), callbacks, history,
  progress, divergence handling, checkpoints (the loop's state) and TensorBoard logging;
- ``evaluation/``: test-set evaluation (test-time augmentation) and the metrics;
- ``runs/``: a run folder's lifecycle: the options (``TrainConfig``), recipes, the memory
  check, the folder lock, the files and ``train_run``;
- ``analysis/``: reading finished runs: the diagnosis, the advice checker and tuning.
"""
