"""Pipelines: retraining triggers and the Kubeflow pipeline."""
