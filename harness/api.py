"""The library API: what the commands are made of, for a script or a notebook.

`compare(config, out) -> Results` runs, scores, pairs, reports and gates a compare config (a
`CompareConfig`, from `load_config(path)`); `rebuild(run_dir) -> Results` renders a run
folder's artifacts again from disk; `import_review(run_dir, review) -> (count, Results)`
merges a reviewer's verdicts. Every error that means "could not evaluate" is a
`HarnessError`. Nothing here loads torch until a model is run.
"""

from __future__ import annotations

from harness.commands.compare import analyze, compare
from harness.commands.report import rebuild
from harness.commands.review import import_review
from harness.inputs.config import load_config
from harness.records.errors import HarnessError

__all__ = ["HarnessError", "analyze", "compare", "import_review", "load_config", "rebuild"]
