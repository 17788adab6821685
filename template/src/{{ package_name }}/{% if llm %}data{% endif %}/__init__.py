"""Training data: JSONL loading and validation, and the data-quality stage."""
