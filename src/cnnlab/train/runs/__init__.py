"""A run folder's lifecycle: options, recipes, the memory check, the lock, ``train_run``."""
