"""Training workbench, bottom to top (each folder imports only the ones before it;
docs/architecture.md, checked by tests/test_architecture.py):

- ``evaluation/``: test-set evaluation (test-time augmentation) and the metrics;
- ``loop/``: ``fit`` (the one epoch loop), its engines (NumPy, torch), callbacks, history,
  progress, divergence handling, checkpoints (the loop's state) and TensorBoard logging;
- ``runs/``: a run folder's lifecycle: the options (``TrainConfig`` and the ``cnnlab train``
  flag table), the folder's file names, recipes, the memory and disk checks, the folder
  lock, ``train_run``, a trained model found and loaded;
- ``analysis/``: reading finished runs and choosing the next: the diagnosis, the advice
  checker and tuning.
"""
