"""The pruning engine, free of any framework: NumPy in, NumPy out.

criteria.py   how each weight is scored (Zhou et al. 2019): one function and one registry line each
selection.py  which scores survive: layer or global scope; weight, unit or N:M granularity
masks.py      a mask is a dict name -> bool array (+ meta); save, load, validate, report
prune.py      compute_mask = criterion x selection on a loaded model (rankings cached)
sensitivity.py  each layer pruned alone (the rest dense) -> accuracy table; per-layer budgets for a target
compare.py    the overlap of two masks (kept weights per layer, Jaccard)
evaluate.py   accuracy of a mask on θf, θ0 or the signed constant (masks applied functionally)
schedules.py  when and how much to prune during training (TF-MOT PolynomialDecay, ...)
readouts.py   the plain numbers behind the explorer's charts
Models come from ``pruning.models`` (the adapter contract); nothing here imports a framework.
"""
