"""Batch training jobs: data, models, training, evaluation, reports and export."""
