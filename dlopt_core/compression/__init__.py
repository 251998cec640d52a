"""Model compression: pruning masks and surgery, quantization, distillation, measurements.

The methods a user picks are the registry :mod:`dlopt_core.compression.methods`, filed here
above the config and the engine because its methods fine-tune and distil; what a page or the
CLI runs is :mod:`dlopt_core.experiments.compress` (a package by job).
"""
