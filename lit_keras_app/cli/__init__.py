"""The command-line programs. Each module's `main` is a console script (setup.py) or, for train
and evaluate, the body of the top-level `train.py` / `evaluate.py`."""
