"""The version of what run.json and results.json hold (docs/CHANGELOG.md says what each
holds): here, on the ground floor, so that `harness --version` reads it without loading the
analysis."""

SCHEMA_VERSION = 5
