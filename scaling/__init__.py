"""scaling: train small transformers across model size N and data size D, fit scaling laws."""

__version__ = "0.1.0"
