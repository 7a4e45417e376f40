"""The embedded demo: synthetic task families, a char-level Llama trained on them, its weights."""
