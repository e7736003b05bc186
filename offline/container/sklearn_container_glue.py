"""The scikit-learn image's own entry for training, for runs under the container's toolkits offline.

The image sets SAGEMAKER_TRAINING_MODULE=sagemaker_sklearn_container.training:main; that package
(aws/sagemaker-scikit-learn-container, `src/sagemaker_sklearn_container/training.py`) is not on PyPI, and its
whole training entry is the call below: sagemaker-training runs the user's script as a subprocess, without
capturing its stderr (so a failure's ErrorMessage is empty). This file is not part of the `offline` package:
the job runner puts its folder on PYTHONPATH of a job that runs the container's `train` command.
"""

from __future__ import annotations

import logging

from sagemaker_training import entry_point, environment, runner

logger = logging.getLogger(__name__)


def main() -> None:
    training_environment = environment.Environment()
    logger.info("Invoking user training script.")
    entry_point.run(
        uri=training_environment.module_dir,
        user_entry_point=training_environment.user_entry_point,
        args=training_environment.to_cmd_args(),
        env_vars=training_environment.to_env_vars(),
        runner_type=runner.ProcessRunnerType,
    )
