"""Figures in two steps, as Optuna does: ``*_data()`` gives plain data, ``*_figure()`` draws it.

One module per figure family; the names a page needs are re-exported here.
"""

from dlopt_core.plots.continual import (
    AccuracyMatrixData,
    AnytimeData,
    ForgettingRankData,
    accuracy_matrix_data,
    accuracy_matrix_figure,
    anytime_data,
    anytime_figure,
    continual_table_data,
    forgetting_rank_data,
    forgetting_rank_figure,
)
from dlopt_core.plots.curves import X_LABELS, CurvesData, curves_data, curves_figure
from dlopt_core.plots.compression import (
    LayerSensitivityData,
    ParetoData,
    SparsityData,
    layer_sensitivity_data,
    layer_sensitivity_figure,
    pareto_data,
    pareto_figure,
    sparsity_data,
    sparsity_figure,
)
from dlopt_core.plots.landscape import landscape_curves_figure, landscape_figure, landscape_surface_figure
from dlopt_core.plots.lr_range import LRRangeData, LRRangeLine, SuggestionMark, lr_range_data, lr_range_figure
from dlopt_core.plots.reference import reference_figure
from dlopt_core.plots.schedule import LRCurve, actual_lr_data, lr_schedule_data, lr_schedule_figure
from dlopt_core.plots.sensitivity import (
    SensitivityData,
    SensitivityLine,
    initial_val_loss,
    lr_text,
    sensitivity_data,
    sensitivity_figure,
)
from dlopt_core.plots.share import (
    ConflictData,
    ShareCostData,
    ShareCurvesData,
    conflict_data,
    conflict_figure,
    share_cost_data,
    share_cost_figure,
    share_curves_data,
    share_curves_figure,
    sharing_table_data,
)
from dlopt_core.plots.stream import (
    LearnerCurve,
    StreamCurvesData,
    detector_table_data,
    recovery_table_data,
    stream_curves_data,
    stream_curves_figure,
)
from dlopt_core.plots.transfer import (
    AccuracyCurvesData,
    ForgettingData,
    LayerHeatmapData,
    SizeCurveData,
    TrainableParamsData,
    accuracy_curves_data,
    accuracy_curves_figure,
    forgetting_data,
    forgetting_figure,
    layer_change_data,
    layer_change_figure,
    layer_lr_data,
    layer_lr_figure,
    size_curve_data,
    size_curve_figure,
    trainable_params_data,
    trainable_params_figure,
)
from dlopt_core.plots.study import (
    TrialLrData,
    TuningBudgetData,
    trial_lr_data,
    trial_lr_figure,
    tuning_budget_data,
    tuning_budget_figure,
)

__all__ = [
    "LayerSensitivityData", "ParetoData", "SparsityData", "layer_sensitivity_data", "layer_sensitivity_figure",
    "pareto_data", "pareto_figure", "sparsity_data", "sparsity_figure",
    "X_LABELS", "CurvesData", "LRCurve", "actual_lr_data", "curves_data", "curves_figure", "landscape_curves_figure",
    "landscape_figure", "landscape_surface_figure", "LRRangeData", "LRRangeLine", "SuggestionMark", "lr_range_data",
    "lr_range_figure", "lr_schedule_data", "lr_schedule_figure", "reference_figure",
    "SensitivityData", "SensitivityLine", "initial_val_loss", "lr_text", "sensitivity_data", "sensitivity_figure",
    "ConflictData", "ShareCostData", "ShareCurvesData", "conflict_data", "conflict_figure", "share_cost_data",
    "share_cost_figure", "share_curves_data", "share_curves_figure", "sharing_table_data",
    "LearnerCurve", "StreamCurvesData", "detector_table_data", "recovery_table_data", "stream_curves_data",
    "stream_curves_figure",
    "TrialLrData", "TuningBudgetData", "trial_lr_data", "trial_lr_figure", "tuning_budget_data", "tuning_budget_figure",
    "AccuracyCurvesData", "ForgettingData", "LayerHeatmapData", "SizeCurveData", "TrainableParamsData",
    "accuracy_curves_data", "accuracy_curves_figure", "forgetting_data", "forgetting_figure", "layer_change_data",
    "layer_change_figure", "layer_lr_data", "layer_lr_figure", "size_curve_data", "size_curve_figure",
    "trainable_params_data", "trainable_params_figure",
    "AccuracyMatrixData", "AnytimeData", "ForgettingRankData", "accuracy_matrix_data", "accuracy_matrix_figure",
    "anytime_data", "anytime_figure", "continual_table_data", "forgetting_rank_data", "forgetting_rank_figure",
]
