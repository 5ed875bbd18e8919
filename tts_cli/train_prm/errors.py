"""What stops a training run: one line for the user."""

from __future__ import annotations

SKLEARN_HINT = "tts train-prm needs scikit-learn: pip install 'tts_cli[train]'"


class TrainingError(Exception):
    """The data cannot train a head (one line for the user)."""


