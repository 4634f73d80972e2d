"""Scoring a trained model: test-set evaluation (with test-time augmentation) and metrics."""
