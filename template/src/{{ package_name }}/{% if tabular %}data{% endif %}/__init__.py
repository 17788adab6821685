"""Data: the built-in dataset, loading and validation, the train/test split."""
