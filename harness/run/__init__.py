"""The run stage, the only one that loads engines and models: backends, quantizers,
probes, the runner, and the processes and terminal they run in."""
