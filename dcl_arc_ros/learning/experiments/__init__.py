"""The paper experiments: train every method of a results table over seeds, evaluate it, and write the results.

One module per table (``dcl``, ``realism``, ``arc``, ``grasp``, ``pose``); each is driven by its
``training/evaluate_*.py`` script and writes ``docs/results/<name>.{md,json,png}``.
"""
