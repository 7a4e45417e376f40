"""The process shell, which is the CLI entry: `cli` (the `harness` console script: a command
run in this process or in a worker, its signals, its exit code), `exits` (exit codes and what
a failure prints), `worker` (the child process that contains an engine's native crash) and
`console` (quiet libraries, progress bars, heartbeats). The run stage reports through
`worker` and `console`, which import only records; `cli` alone sits above the commands."""
