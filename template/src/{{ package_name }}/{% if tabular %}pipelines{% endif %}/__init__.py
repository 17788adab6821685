"""Pipelines: the stage table, its local and Kubeflow runners, retraining triggers, their lock."""
