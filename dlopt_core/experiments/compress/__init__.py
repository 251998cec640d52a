"""Model compression (issue 9): a baseline, each method applied to it, every variant measured.

One module per job: ``config`` (the baseline's setup and the methods), ``rows`` (what is
measured), ``baseline`` (checks before anything trains, and one-shot readings of a model:
per-layer sensitivity, a quick sparsity curve), ``run`` (:class:`~.run.Compression`: train or
load the baseline, apply and measure every method, reporting to observers as it goes) and
``work`` (the same as background work, mirrored live for a page).
"""
