"""What users hand the harness, validated at the edge: configs and eval sets."""
