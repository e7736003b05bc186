"""Copy heartbeat.py into template.yaml's NotebookHeartbeatLifecycleConfig (between the HEARTBEAT_PY markers).

    .venv/bin/python tests/unit/cost_guard/sync_heartbeat_into_template.py

test_lifecycle_config.py fails until the embedded copy equals the file; this rewrites only those lines.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
HEARTBEAT = ROOT / "layers/mlops_common/mlops_common/cost_guard/heartbeat.py"
START = "cat > /opt/cost-guard/heartbeat.py <<'HEARTBEAT_PY'"
END = "HEARTBEAT_PY"


def sync() -> bool:
    lines = TEMPLATE.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == START)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == END)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    body = [f"{indent}{line}" if line else "" for line in HEARTBEAT.read_text().rstrip("\n").split("\n")]
    updated = [*lines[: start + 1], *body, *lines[end:]]
    if updated == lines:
        return False
    TEMPLATE.write_text("\n".join(updated))
    return True


if __name__ == "__main__":
    print("template.yaml updated" if sync() else "template.yaml already up to date")
