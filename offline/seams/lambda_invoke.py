"""Lambda handlers run in-process. Gap: moto 5.2.5 runs function code only in Docker; with `{"lambda":
{"use_docker": False}}` it runs no code at all (it echoes the input).

What this does on every invoke (RequestResponse or Event, from a client, Step Functions or EventBridge):
- finds the function's code: the folder the harness registered (`Registry.functions`, the `sam build` output)
  or else the deployment package moto keeps, extracted once to `<work_dir>/lambda/<name>-<sha12>/`, plus each
  layer's `python/` folder (registered, or extracted from the layer versions attached to the function);
- imports the handler module under a unique module name per function, code and configuration;
- applies the function's environment variables (and Lambda's own: AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, ...)
  for the call and restores them after; calls are serialised with one lock because os.environ and sys.path are
  per process;
- passes a Lambda-like context (function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id,
  get_remaining_time_in_millis() counting down from Timeout);
- turns an exception into Lambda's error payload {errorType, errorMessage, stackTrace} with the function-error
  header set, which Step Functions turns into a task failure whose Error is errorType. In server mode (no
  in-process mock) handlers' boto3 clients are pointed at the server with AWS_ENDPOINT_URL;
- writes what the handler printed (Powertools' JSON log lines) between START and END into the function's
  CloudWatch Logs stream, as Lambda does (moto writes only its own lines), and turns the embedded metric
  format lines among them into CloudWatch metrics, as CloudWatch does for Lambda logs (moto extracts none).

moto internals touched: `moto.awslambda.models.LambdaFunction._invoke_lambda` (replaced: same signature and
(payload, errored, logs) result); `moto.awslambda_simple.models.LambdaSimpleBackend.invoke` (replaced by
`LambdaBackend.invoke`, so the no-Docker backend runs code too);
`LambdaFunction.create_from_cloudformation_json` (wrapped: keeps `Layers`, which moto's CloudFormation
drops, and `DeadLetterConfig`); `LambdaBackend.create_function` (wrapped: keeps `DeadLetterConfig`).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from types import ModuleType
from typing import Any

from offline.seams import _patching, faults

# os.environ and sys.path are process-wide: one handler at a time. Reentrant, so a handler may invoke another
# function synchronously in-process.
_INVOKE_LOCK = threading.RLock()
_modules: dict[str, ModuleType] = {}
# Modules imported from a function's code dir or a layer dir, by that dir: they are in sys.modules only
# while a function using that dir runs, so two functions (or layers) may each have their own `mlops_common`.
_owned: dict[str, dict[str, ModuleType]] = {}
_extract_lock = threading.Lock()
# Where handlers' output goes on to: stdout as it was when the seam was installed (the demo's log file, the
# server's log, the test session), not whatever stdout is when a handler runs (in-process, a synchronous
# invoke runs the handler in the caller's thread, whose stdout is the caller's own output).
_console: Any = None


class _InvocationOutput(io.TextIOBase):
    """Stands in for stdout while one handler runs. The handler's thread writes to the invocation's CloudWatch
    log and on to the emulator's console; any other thread's writes go to the stdout this replaced (stdout is
    process-wide, and a caller's thread may be printing its own output meanwhile)."""

    def __init__(self, replaced: Any, console: Any) -> None:
        self.replaced = _open_or_stdout(_unwrapped(replaced))
        # The console kept at install time may be closed since (a test session's capture of an earlier test).
        self.console = _open_or_stdout(_unwrapped(console), self.replaced)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.active = True
        self._adopted: list[tuple[logging.StreamHandler[Any], Any]] = []

    def writable(self) -> bool:
        return True

    def _mine(self) -> bool:
        return self.active and threading.get_ident() == self.thread

    def write(self, text: str) -> int:
        if self._mine():
            self.lines.append(text)
            self.console.write(text)
        else:
            self.replaced.write(text)
        return len(text)

    def flush(self) -> None:
        (self.console if self._mine() else self.replaced).flush()

    def adopt_loggers(self) -> None:
        """Point every Powertools logger here for this invocation (each keeps the stream it saw at import:
        an earlier invocation's stand-in, or whatever another thread had made stdout at that moment)."""
        for logger in list(logging.Logger.manager.loggerDict.values()):
            handler = getattr(logger, "powertools_handler", None)
            if isinstance(handler, logging.StreamHandler) and handler.stream is not self:
                self._adopted.append((handler, handler.stream))
                _point_handler(handler, self)

    def release_loggers(self) -> None:
        for handler, stream in reversed(self._adopted):
            _point_handler(handler, stream)
        self._adopted.clear()


def _point_handler(handler: logging.StreamHandler[Any], stream: Any) -> None:
    """handler.setStream without its flush of the old stream, which raises once that stream is closed (a
    handler created while a test session captured stdout keeps the capture after that test)."""
    handler.acquire()
    try:
        if not getattr(handler.stream, "closed", False):
            handler.stream.flush()
        handler.stream = stream
    finally:
        handler.release()


def _open_or_stdout(stream: Any, fallback: Any = None) -> Any:
    """`stream` unless it was closed meanwhile; then `fallback`, else the interpreter's own stdout."""
    if not getattr(stream, "closed", False):
        return stream
    if fallback is not None and not getattr(fallback, "closed", False):
        return fallback
    return sys.__stdout__


def _unwrapped(stream: Any) -> Any:
    """The real stream behind stand-ins left in place by threads that swapped stdout in between."""
    while isinstance(stream, _InvocationOutput):
        stream = stream.replaced
    return stream if stream is not None else sys.__stdout__


@contextmanager
def _captured_output() -> Iterator[_InvocationOutput]:
    """What the handler prints (print(), Powertools' Logger) while it runs, as Lambda sends it to its log."""
    output = _InvocationOutput(sys.stdout, _console or sys.stdout)
    output.adopt_loggers()
    previous, sys.stdout = sys.stdout, output
    try:
        yield output
    finally:
        output.active = False
        output.release_loggers()
        if sys.stdout is output:  # another thread may have swapped stdout meanwhile: leave its choice
            sys.stdout = previous


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    def __init__(self, function: Any, request_id: str, log_stream: str) -> None:
        self.function_name: str = function.function_name
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = function.function_arn
        self.memory_limit_in_mb: int = int(function.memory_size)
        self.aws_request_id: str = request_id
        self.log_group_name: str = f"/aws/lambda/{function.function_name}"
        self.log_stream_name: str = log_stream
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + float(function.timeout or 3)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class HandlerNotFound(Exception):
    """The function's Handler setting does not name a function in its module (Runtime.HandlerNotFound)."""

    error_type = "Runtime.HandlerNotFound"


class ImportModuleError(HandlerNotFound):
    """The handler's module is missing or fails to import (Runtime.ImportModuleError)."""

    error_type = "Runtime.ImportModuleError"


# ---------------------------------------------------------------- code location


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _extract(data: bytes, target: Path) -> Path:
    """Unzip once (atomically: a half-extracted folder is never used)."""
    with _extract_lock:
        if target.is_dir():
            return target
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(tmp)
        tmp.replace(target)
        return target


def _code_dir(function: Any, state: Any) -> Path:
    registered = state.registry.functions.get(function.function_name)
    if registered is not None:
        return Path(registered.code_dir)
    data: bytes = getattr(function, "code_bytes", b"") or b""
    if not data:
        raise HandlerNotFound(
            f"function {function.function_name} has no zip deployment package offline "
            "(image functions are not supported offline); register its code dir with the harness"
        )
    digest = sha256(data).hexdigest()[:12]
    return _extract(data, state.work_dir / "lambda" / f"{_safe(function.function_name)}-{digest}")


def _layer_paths(function: Any, state: Any) -> list[Path]:
    registered = state.registry.functions.get(function.function_name)
    if registered is not None:
        roots = [Path(p) for p in registered.layer_dirs]
    else:
        from moto.awslambda.utils import get_backend

        backend = get_backend(function.account_id, function.region)
        roots = []
        for layer in function.layers or []:
            version = backend.layers_versions_by_arn(layer["Arn"])
            data = getattr(version, "code_bytes", b"") if version else b""
            if data:
                name = _safe(layer["Arn"].split(":layer:")[-1])
                roots.append(
                    _extract(
                        data, state.work_dir / "lambda" / "layers" / f"{name}-{sha256(data).hexdigest()[:12]}"
                    )
                )
    paths: list[Path] = []
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for root in roots:
        # Lambda puts /opt/python and /opt/python/lib/python3.x/site-packages on the path.
        for candidate in (root / "python", root / "python" / "lib" / py / "site-packages"):
            if candidate.is_dir():
                paths.append(candidate)
    return paths


def _load_handler(function: Any, code_dir: Path, environment: dict[str, str]) -> Any:
    handler_setting = function.handler or ""
    module_path, _, attr = handler_setting.rpartition(".")
    if not module_path or not attr:
        raise HandlerNotFound(
            f"Handler {handler_setting!r} of {function.function_name} is not <module>.<function>"
        )
    source = code_dir / (module_path.replace(".", "/") + ".py")
    if not source.is_file():
        raise ImportModuleError(f"Unable to import module '{module_path}': no {source.name} in {code_dir}")
    # A new module for new code or configuration (a cold start); the same one otherwise (a warm start).
    config_key = sha256(json.dumps(environment, sort_keys=True).encode()).hexdigest()[:8]
    stamp = f"{source.stat().st_mtime_ns}"
    key = f"{code_dir}|{source}|{stamp}|{config_key}"
    module = _modules.get(key)
    if module is None:
        name = f"offline_lambda_{_safe(function.function_name)}_{sha256(key.encode()).hexdigest()[:10]}"
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise HandlerNotFound(f"cannot load {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            sys.modules.pop(name, None)
            raise ImportModuleError(f"Unable to import module '{module_path}': {error}") from error
        _modules[key] = module
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise HandlerNotFound(
            f"Handler '{attr}' missing on module '{module_path}' of {function.function_name}"
        )
    return handler


# ---------------------------------------------------------------- environment


def _function_environment(function: Any, state: Any, code_dir: Path, log_stream: str) -> dict[str, str]:
    from moto import settings
    from moto.core.models import botocore_stubber

    env = {
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "LAMBDA_TASK_ROOT": str(code_dir),
        "_HANDLER": function.handler or "",
        # No X-Ray daemon offline; a function may still turn tracing on through its own variables.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for key, value in {"AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline"}.items():
        env[key] = os.environ.get(key, value)
    if not botocore_stubber.enabled:
        # moto runs as a server: handlers' clients must reach it, not AWS.
        env["AWS_ENDPOINT_URL"] = state.endpoint_url or f"http://localhost:{settings.moto_server_port()}"
    env.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
    return env


def _owner(module: ModuleType, roots: list[str]) -> str | None:
    file = getattr(module, "__file__", None)
    if not file:
        return None
    for root in roots:
        if file.startswith(root + os.sep):
            return root
    return None


@contextmanager
def _module_scope(paths: list[Path]) -> Iterator[None]:
    """sys.modules holds this function's own modules (and no other function's) for the duration of the
    call."""
    roots = [str(p) for p in paths]
    foreign = {name for root, mods in _owned.items() if root not in roots for name in mods}
    stashed = {name: sys.modules.pop(name) for name in list(sys.modules) if name in foreign}
    mine = {name: mod for root in roots for name, mod in _owned.get(root, {}).items()}
    replaced = {name: sys.modules[name] for name in mine if name in sys.modules}
    sys.modules.update(mine)
    # The first call of these roots looks at every module; later ones only at their own and the new ones
    # (a full scan of sys.modules per invocation was most of a warm invocation's cost).
    before = set(sys.modules) if all(root in _owned for root in roots) else set()
    try:
        yield
    finally:
        for root in roots:
            _owned.setdefault(root, {})
        for name in (set(sys.modules) - before) | set(mine):
            module = sys.modules.get(name)
            if module is None:
                continue
            root = _owner(module, roots)
            if root is not None and not name.startswith("offline_lambda_"):
                _owned.setdefault(root, {})[name] = module
                del sys.modules[name]
        sys.modules.update(replaced)
        sys.modules.update(stashed)


@contextmanager
def _applied(env: dict[str, str], paths: list[Path]) -> Iterator[None]:
    saved_env = {key: os.environ.get(key) for key in env}
    saved_path = list(sys.path)
    os.environ.update(env)
    sys.path[:0] = [str(p) for p in paths]
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.path[:] = saved_path


# ---------------------------------------------------------------- invoke


def _error_payload(error: BaseException, request_id: str) -> dict[str, Any]:
    frames = traceback.extract_tb(error.__traceback__)
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


def run_handler(function: Any, event: Any, state: Any) -> tuple[str, bool, str]:
    """Run the function's handler on event; return (payload JSON, errored, log text) like moto's Docker
    path."""
    request_id = str(uuid.uuid4())
    log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{request_id.replace('-', '')}"
    logs: list[str] = [f"START RequestId: {request_id} Version: $LATEST"]
    errored = False
    with _INVOKE_LOCK:
        try:
            code_dir = _code_dir(function, state)
            paths = [code_dir, *_layer_paths(function, state)]
            env = _function_environment(function, state, code_dir, log_stream)
            with (
                _applied(env, paths),
                _module_scope(paths),
                faults.handler_scope(),
                _captured_output() as printed,
            ):
                context = LambdaContext(function, request_id, log_stream)
                try:
                    handler = _load_handler(function, code_dir, dict(function.environment_vars or {}))
                    printed.adopt_loggers()  # the ones the handler's import just created
                    result = handler(event, context)
                finally:
                    logs.extend("".join(printed.lines).splitlines())
            try:
                payload = json.dumps(result)
            except (TypeError, ValueError) as error:
                errored = True
                payload = json.dumps(
                    {
                        "errorMessage": f"Unable to marshal response: {error}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": request_id,
                        "stackTrace": [],
                    }
                )
        except (Exception, SystemExit) as error:  # noqa: BLE001 - every handler failure becomes a Lambda error
            errored = True
            body = _error_payload(error, request_id)
            if isinstance(error, HandlerNotFound):
                body["errorType"] = error.error_type
            payload = json.dumps(body)
            logs.append(f"[ERROR] {body['errorType']}: {body['errorMessage']}")
            logs.extend("".join(traceback.format_exception(error)).splitlines())
    logs.append(f"END RequestId: {request_id}")
    return payload, errored, "\n".join(logs)


def embedded_metrics(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) pairs of one embedded-metric-format log line; [] for any other line.

    https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
    """
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        record = json.loads(line)
        directives = record["_aws"]["CloudWatchMetrics"]
        stamp = record["_aws"]["Timestamp"] / 1000
    except (json.JSONDecodeError, KeyError, TypeError):
        return []
    data = []
    for directive in directives:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(record.get(name, ""))} for name in dimension_set]
            for metric in directive.get("Metrics", []):
                values = record.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float):
                        datum = {
                            "MetricName": metric["Name"],
                            "Dimensions": dimensions,
                            "Value": float(value),
                            # naive UTC, as moto stores what PutMetricData receives
                            "Timestamp": datetime.fromtimestamp(stamp, tz=UTC).replace(tzinfo=None),
                            "Unit": metric.get("Unit", "None"),
                        }
                        data.append((directive["Namespace"], datum))
    return data


def put_embedded_metrics(account_id: str, region: str, logs: str) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account_id][region]
    for line in logs.splitlines():
        for namespace, datum in embedded_metrics(line):
            backend.put_metric_data(namespace, [datum])


def install(state: Any) -> None:
    global _console  # noqa: PLW0603 - the process's stdout at install time, for every invocation
    _console = sys.stdout
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.awslambda_simple.models import LambdaSimpleBackend

    _patching.original(LambdaFunction, "_invoke_lambda")  # fails loudly if moto renamed it

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        self.logs_backend.ensure_log_group(self.logs_group_name)
        payload, errored, logs = run_handler(self, {} if event is None else event, state)
        self.save_logs(logs)
        put_embedded_metrics(self.account_id, self.region, logs)
        return payload, errored, logs

    _patching.replace(LambdaFunction, "_invoke_lambda", _invoke_lambda)
    _patching.replace(
        LambdaSimpleBackend, "invoke", _patching.original(LambdaBackend, "invoke"), must_exist=False
    )

    api_create = _patching.original(LambdaBackend, "create_function")

    def create_function(self: Any, spec: dict[str, Any]) -> Any:
        function = api_create(self, spec)
        function.dead_letter_config = spec.get("DeadLetterConfig")
        return function

    _patching.replace(LambdaBackend, "create_function", create_function)

    cfn_create = _patching.original(LambdaFunction, "create_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        function = cfn_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        # moto keeps no DeadLetterConfig; the async delivery seam (event_targets) reads it from here.
        function.dead_letter_config = cloudformation_json.get("Properties", {}).get("DeadLetterConfig")
        layers = cloudformation_json.get("Properties", {}).get("Layers")
        if layers:
            # moto resolves Ref of an AWS::Lambda::LayerVersion to the LayerVersion object itself.
            arns = [str(getattr(layer, "arn", layer)) for layer in layers]
            function.layers = function._get_layers_data(arns)
        return function

    _patching.replace(
        LambdaFunction, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json)
    )


def uninstall() -> None:
    global _console  # noqa: PLW0603
    _console = None
    _modules.clear()
    _owned.clear()
