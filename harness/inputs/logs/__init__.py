"""The request-log formats `harness traffic import` reads, one module per family; the
registry of them is `harness.inputs.traffic`."""
