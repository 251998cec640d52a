"""Model compression machinery: pruning masks and surgery, quantization, distillation, measurements.

The methods a user picks are entries of :mod:`dlopt_core.catalog.compressions`; what a page
or the CLI runs is :mod:`dlopt_core.experiments.compress`.
"""
