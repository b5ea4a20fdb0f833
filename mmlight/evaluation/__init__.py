"""Metrics (registered in mmdet's ``METRICS``)."""
from .accuracy import Accuracy

__all__ = ['Accuracy']
