"""What the harness keeps on disk: run folders, the run cache, locks, checksums,
output folders, fault points."""
