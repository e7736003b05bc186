"""`python -m mlops_cli` runs the same command as the `mlops` console script."""

from mlops_cli.main import main

main()
