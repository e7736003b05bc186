"""The default ML recipe: scripts SageMaker runs in its scikit-learn container (see README.md).

The pipeline uploads this folder as the jobs' code. ``recipe_common`` is importable from Lambda functions
(standard library only at import time): ``from mlops_common.recipe.recipe_common import LOWER_IS_BETTER``.
"""
