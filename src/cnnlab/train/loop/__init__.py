"""The training loop: ``fit``, its engines, callbacks, history, progress and checkpoints."""
