"""Cold-start import cost of each built function against a bare boto3 handler (printed, not asserted).

    make build && .venv/bin/python bench/cold_start.py [--runs 9] [--build-dir .aws-sam/build]

For every function in the `sam build` output, and for a bare handler whose module imports only boto3, it
starts `--runs` fresh interpreters and times the import of the handler module, laid out as Lambda does:

    sys.path = [function dir (/var/task), layer's python/lib/python3.12/site-packages,
                layer's python (/opt/python), the runtime's SDK (/var/runtime), the standard library]

The runtime's SDK is boto3 and its dependencies from this venv (compiled by pip, as the runtime's are),
linked into a folder of their own so nothing else from the venv is importable. Bytecode writing is off
(`-B`, PYTHONDONTWRITEBYTECODE=1) because /var/task and /opt are read-only on Lambda: only the .pyc files
an artifact ships are ever used. The function's environment (Globals merged, Refs as placeholders) and
Lambda's own variables are set, so Powertools behaves as in Lambda. Runs interleave the targets so load
from other processes on the machine spreads evenly; the table gives each target's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import boto3  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# What the python3.12 runtime provides in /var/runtime besides its own interface client.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
BARE_HANDLER = "import boto3\n\n\ndef lambda_handler(event, context):\n    return {}\n"
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"

# Runs in the fresh interpreter: argv = module, then the sys.path entries in order.
CHILD = """
import sys, time, importlib
module, paths = sys.argv[1], sys.argv[2:]
sys.path[:0] = paths
wall, cpu = time.perf_counter(), time.process_time()
importlib.import_module(module)
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def runtime_sdk_dir(target: Path) -> Path:
    """A folder holding only the SDK packages, as /var/runtime does (links into this venv's site-packages)."""
    site = Path(boto3.__file__).resolve().parents[1]
    target.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_SDK:
        source = site / name
        if not source.exists():
            raise SystemExit(f"{source} not found: run `make venv` (the dev venv provides the runtime's SDK)")
        (target / name).symlink_to(source)
    return target


def _value(value: Any) -> str:
    return value if isinstance(value, str) else "placeholder"  # a Ref/GetAtt/Sub: only its presence matters


def functions(build_dir: Path) -> list[dict[str, Any]]:
    """Each built function: name, code dir, handler module, layer dirs and environment (Globals merged)."""
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise SystemExit(f"{template_path} not found: run `make build` first")
    template = yaml_parse(template_path.read_text(encoding="utf-8"))
    defaults = template.get("Globals", {}).get("Function", {})
    found = []
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **resource["Properties"]}
        env = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        layers = []
        for layer in props.get("Layers", []):
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            uri = template["Resources"].get(layer_id, {}).get("Properties", {}).get("ContentUri")
            if not isinstance(uri, str):
                raise SystemExit(f"{logical_id}: layer {layer!r} is not a layer of this build")
            layers.append(build_dir / uri)
        found.append(
            {
                "name": logical_id,
                "code_dir": build_dir / props["CodeUri"],
                "module": props["Handler"].rpartition(".")[0],
                "attr": props["Handler"].rpartition(".")[2],
                "layers": layers,
                "env": {key: _value(value) for key, value in env.items()},
                "tracing": props.get("Tracing") == "Active",
            }
        )
    return found


def _import_seconds(target: dict[str, Any], runtime_dir: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one import in a fresh interpreter."""
    paths = [str(target["code_dir"])]
    for layer in target["layers"]:
        paths += [str(layer / "python" / "lib" / PY / "site-packages"), str(layer / "python")]
    paths.append(str(runtime_dir))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_LAMBDA_FUNCTION_NAME": target["name"],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(target["code_dir"]),
        **({"_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000"} if target["tracing"] else {}),
        **target["env"],
    }
    # -I: no user site, no PYTHON* variables; -S: no site-packages; -B: write no bytecode.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", CHILD, target["module"], *paths],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"importing {target['name']}'s handler failed:\n{result.stderr}")
    wall, cpu = result.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def folder_size(folder: Path) -> tuple[int, int, int]:
    """(bytes, files, .pyc files) under a folder."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    compiled = sum(path.suffix == ".pyc" for path in files)
    return sum(path.stat().st_size for path in files), len(files), compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per target (at least 7)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    args = parser.parse_args()
    if args.runs < 7:
        parser.error("--runs must be at least 7 for a stable median")
    targets = functions(args.build_dir)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        runtime_dir = runtime_sdk_dir(Path(tmp) / "runtime")
        bare_dir = Path(tmp) / "bare"
        bare_dir.mkdir()
        (bare_dir / "app.py").write_text(BARE_HANDLER, encoding="utf-8")
        bare = {"name": "bare boto3 handler", "code_dir": bare_dir, "module": "app", "layers": [], "env": {}}
        bare["tracing"] = False
        samples: dict[str, list[tuple[float, float]]] = {target["name"]: [] for target in [bare, *targets]}
        for _ in range(args.runs):
            for target in [bare, *targets]:
                samples[target["name"]].append(_import_seconds(target, runtime_dir))

    def medians(name: str) -> tuple[float, float]:
        walls, cpus = zip(*samples[name], strict=True)
        return statistics.median(walls), statistics.median(cpus)

    bare_wall, bare_cpu = medians(bare["name"])
    python = sys.version.split()[0]
    print(f"handler module import, median of {args.runs} fresh interpreters (python {python})")
    print("wall: elapsed time; CPU: the interpreter's own CPU time (steadier when other processes compete)\n")
    print(f"| {'function':<26} | wall s | ratio | CPU s | ratio |")
    print(f"|{'-' * 28}|-------:|------:|------:|------:|")
    print(f"| {bare['name']:<26} | {bare_wall:6.3f} | {1:5.2f} | {bare_cpu:5.3f} | {1:5.2f} |")
    worst = (0.0, 0.0)
    for target in targets:
        wall, cpu = medians(target["name"])
        worst = (max(worst[0], wall / bare_wall), max(worst[1], cpu / bare_cpu))
        print(
            f"| {target['name']:<26} | {wall:6.3f} | {wall / bare_wall:5.2f} "
            f"| {cpu:5.3f} | {cpu / bare_cpu:5.2f} |"
        )
    print(f"\nworst ratio: wall {worst[0]:.2f}, CPU {worst[1]:.2f}")
    for layer in sorted({layer for target in targets for layer in target["layers"]}):
        size, count, compiled = folder_size(layer)
        print(f"layer {layer.name}: {size / 1e6:.1f} MB in {count} files ({compiled} .pyc)")


if __name__ == "__main__":
    main()
