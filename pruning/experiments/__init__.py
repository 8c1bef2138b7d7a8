"""Experiments built on the engine.

sweep.py        pruning.sweep: strategies x sparsities x weight sets -> rows; ``map`` is the executor seam
reproduce.py    published experiments re-run on the zoo (python -m pruning reproduce NAME)
zoo_sweep.py    the zoo's precomputed sweep.csv tables (python -m pruning.experiments.zoo_sweep NAME)
zoo_sensitivity.py  the zoo's precomputed sensitivity.json tables (python -m pruning.experiments.zoo_sensitivity NAME)
zoo_readme.py   pretrained/README.md from the zoo's model.json files
imp_table.py    one row per round of a shipped IMP run (python -m pruning imp-rounds, the explorer's IMP rounds tab)
"""
