"""Pure scoring and statistics: scorers, pairing, metrics, the gate, the ladder,
hand review. No engine, no torch."""
