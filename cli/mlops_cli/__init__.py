"""`mlops`: the operator's command for this stack, on AWS and offline (docs/cli.md)."""
