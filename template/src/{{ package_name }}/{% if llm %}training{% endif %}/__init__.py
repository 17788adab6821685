"""Fine-tuning, evaluation and the tiny offline base model."""
