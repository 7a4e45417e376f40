"""What the terminal shows: the harness's own lines and progress bars, not the libraries'.

transformers, llm-compressor (through loguru), lm-eval and torch write warnings, notices and
loading bars of their own ("Ignoring clean_up_tokenization_spaces=True for BPE tokenizer",
"Loading weights: 100%"), interleaved with the harness's progress. Unless `--verbose`, they
are turned down to errors before any of them is imported: by their own switches where they
have one (environment variables read at import), by Python's warning filters and logger
levels otherwise. The harness's messages go through the `harness` logger to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LIBRARIES = ("transformers", "torch", "llmcompressor", "compressed_tensors", "lm_eval",
             "datasets", "accelerate", "huggingface_hub", "sentence_transformers")  # fmt: skip
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "LOGURU_LEVEL": "WARNING",  # llm-compressor's loguru handler
}


def setup(verbose: bool) -> None:
    """The harness's logger to stderr; the libraries quiet unless `verbose`."""
    logger = logging.getLogger("harness")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in LIBRARIES:
        warnings.filterwarnings("ignore", module=rf"{name}(\.|$)")
        logging.getLogger(name).setLevel(logging.ERROR)
    # Imported already (a library caller): its own switches, read no more from the environment.
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
