"""Training that survives interruption and stops cleanly on non-finite values: the hooks and what ``tools/train.py``
adds to every config (docs/training.md)."""
from .hooks import FuseConvBNHook, NonFiniteWeightsError, RNGStateHook, SafeCheckpointHook
from .safeguards import add_training_safeguards, check_resume_pointer, training_failure_message

__all__ = ['FuseConvBNHook', 'NonFiniteWeightsError', 'RNGStateHook', 'SafeCheckpointHook', 'add_training_safeguards',
           'check_resume_pointer', 'training_failure_message']
