"""The llama.cpp engine: the only part of tts_cli that talks to llama.cpp."""

from .engine import Engine, Sequence, Stats, Step, StepBatch, STOP_REASONS, derive_seed, kv_cells_needed
from .llamacpp import (EngineBug, EngineError, Model, PromptTooLong, Sampling, Terminated, gpu_offload_supported,
                       handle_termination)

__all__ = ["Engine", "EngineBug", "EngineError", "Model", "PromptTooLong", "Sampling", "Terminated", "handle_termination", "Sequence", "Stats", "Step", "StepBatch",
           "STOP_REASONS", "derive_seed", "gpu_offload_supported", "kv_cells_needed"]
