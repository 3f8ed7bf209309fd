"""The analysis wing: tables, laws, fits, figures and reports (never imports torch);
it reads the run store (scaling/runs.py) or anyone's logs and tables."""
