"""Training: the estimator, the train stage, evaluation and its quality gate."""
