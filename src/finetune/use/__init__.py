"""Using a finished run: ``eval.py`` (test it again, or on other data), ``predict.py`` (label new rows) and
``export.py`` (a Hugging Face folder with a model card). Each only reads the run it is pointed at."""
