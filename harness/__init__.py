"""Side-by-side quality evaluation of quantized LLMs against their full-precision baseline."""

__version__ = "0.1.0"
