"""Optuna studies: the learning rate (and optionally more) of one optimizer, searched on one setup.

A study is a :class:`~.config.StudyConfig` (the setup, the optimizer, the search space, sampler,
pruner and trial budget) and a name in a storage (:mod:`dlopt_core.experiments.study_storage`).
One module per job: ``config`` (the config and its search space), ``store`` (a study in its
storage), ``objective`` (a trial: one run of the training loop, its validation numbers reported
to Optuna at each epoch, so a pruner can stop it there by closing the run's record stream),
``worker`` (filling a study beside other workers, and as background work) and ``summary``
(progress and results read from the storage).
"""
