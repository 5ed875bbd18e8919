"""tts_cli: test-time scaling for small local GGUF models through llama.cpp."""

__version__ = "0.1.0"
