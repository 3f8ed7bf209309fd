"""The experiment wing: configs, data, models, training and sweeps (imports torch);
it writes the run store (scaling/runs.py)."""
