"""Run the whole system on one machine: the real SAM template deployed into an embedded AWS (moto) with seams.

Entry points: `python -m offline demo|up|down|outputs|fire-schedule|invoke` (see docs/offline.md),
`offline.embedded.EmbeddedAws` for tests, `offline.stack.deploy` for the deployment itself (with
`offline.packaging` and `offline.sam_template`).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where the CLI keeps its pid, logs and work folders; OFFLINE_STATE_DIR lets tests use their own.
STATE_DIR = Path(os.environ.get("OFFLINE_STATE_DIR") or ROOT / ".offline").resolve()

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_STACK_NAME = "mlops-local"

# Template parameters the offline stack gets unless the caller sets them: an upload batch starts its run after
# 3 quiet seconds instead of 120, so a demo or a test never waits minutes (Wait states are capped anyway).
OFFLINE_PARAMETER_DEFAULTS = {"DatasetQuietSeconds": "3"}


class DeployError(RuntimeError):
    """The stack could not be deployed; the message says which resource or file and what to do."""
