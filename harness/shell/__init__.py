"""The process shell: exit codes and what a failure prints (`exits`), the worker process
that contains an engine's native crash (`worker`), and the terminal (`console`: quiet
libraries, progress bars, heartbeats). Below the run stage, which reports through it; it
imports only records."""
