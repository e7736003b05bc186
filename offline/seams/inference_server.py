"""A local SageMaker inference server (GET /ping, POST /invocations) for one model, with the scikit-learn
container's serving contract.

Run as a script by the endpoint seam (it must not import the `offline` package: it runs with only the
model's code on its path): `python inference_server.py --model-dir D --code-dir C --program inference.py
--listen-fd F` (or `--port P` by hand). Two ways, one contract:

- `--toolkit container` (an interpreter with the container's pins, `make container-venv`): the real
  sagemaker-containers serving stack (its Transformer and Flask Worker, the WSGI app gunicorn serves in the
  image), put together the way `sagemaker_sklearn_container.serving.main` does (that glue is not on PyPI; its
  few lines are repeated here). The code directory is pip-installed by the toolkit, so a requirements.txt
  there is honoured.
- `--toolkit standin` (the project's interpreter): the same steps on the project's Flask, mirroring
  sagemaker-containers 2.8.6 `_transformer` / `_worker`; `sagemaker_containers.beta.framework.worker.Response`
  is provided (a Flask Response), so handler code that answers with it works alike.

What both do, as the container does:
- `model_fn(model_dir)` once; per request `input_fn(body, content_type)` -> `predict_fn(data, model)` ->
  `output_fn(prediction, accept)`, or `transform_fn(model, body, content_type, accept)` alone;
- the full Content-Type and Accept headers reach the handlers; the body is `str` only when the Content-Type is
  exactly `application/json` or `text/csv`, else bytes (so `text/csv; charset=utf-8` arrives as bytes); a
  missing or `*/*` Accept is SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json);
- a `(body, mimetype)` tuple becomes a response of that mimetype, which Flask completes with
  `; charset=utf-8` for text types (`text/csv; charset=utf-8`); a returned Response object is sent as is (its
  status too: the only way a handler answers 4xx);
- ANY exception raised by a handler is wrapped (ClientError) and becomes HTTP 500 with Flask's HTML page: the
  caller sees no message. Only the toolkit's own default input/output functions answer 415 / 406.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import socket
import sys
import threading
import time
import traceback
import types
from pathlib import Path
from typing import Any

CONTAINER, STANDIN = "container", "standin"
UTF8_TYPES = ("application/json", "text/csv")  # sagemaker_containers._content_types.UTF8_TYPES
JSON = "application/json"


def load_program(code_dir: Path, program: str) -> Any:
    path = code_dir / program
    if not path.is_file():
        raise FileNotFoundError(f"{program} not found in {code_dir} (SAGEMAKER_PROGRAM / model.tar.gz code/)")
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(program).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check_handlers(module: Any) -> None:
    """The container refuses a module that mixes transform_fn with the other handlers, and one without
    model_fn (sagemaker-containers' default model_fn raises NotImplementedError)."""
    names = ("input_fn", "predict_fn", "output_fn")
    if getattr(module, "transform_fn", None) and any(getattr(module, n, None) for n in names):
        raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    if not hasattr(module, "model_fn"):
        raise NotImplementedError("Please provide a model_fn implementation.")


# ---------------------------------------------------------------- the real toolkit (container pins)


def container_app(model_dir: Path, code_dir: Path, program: str) -> Any:
    """sagemaker_sklearn_container.serving.main's steps on the installed sagemaker-containers."""
    os.environ.setdefault("SAGEMAKER_PROGRAM", program)
    os.environ["SAGEMAKER_BASE_DIR"] = str(model_dir.parent)  # the toolkit's /opt/ml: model/ and code/ below
    import numpy as np
    from sagemaker_containers.beta.framework import (
        content_types,
        encoders,
        env,
        modules,
        transformer,
        worker,
    )

    def default_input_fn(input_data: Any, content_type: str) -> Any:
        array = encoders.decode(input_data, content_type)
        return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

    def default_predict_fn(input_data: Any, model: Any) -> Any:
        return model.predict(input_data)

    def default_output_fn(prediction: Any, accept: str) -> Any:
        return worker.Response(encoders.encode(prediction, accept), accept, mimetype=accept)

    serving_env = env.ServingEnv()
    try:  # the glue's own order: an importable module is used as is, else the code is installed
        user_module = importlib.import_module(serving_env.module_name)
    except ImportError:
        user_module = modules.import_module(serving_env.module_dir, serving_env.module_name)
    check_handlers(user_module)
    transform_fn = getattr(user_module, "transform_fn", None)
    if transform_fn is not None:
        user_transformer = transformer.Transformer(model_fn=user_module.model_fn, transform_fn=transform_fn)
    else:
        user_transformer = transformer.Transformer(
            model_fn=user_module.model_fn,
            input_fn=getattr(user_module, "input_fn", None) or default_input_fn,
            predict_fn=getattr(user_module, "predict_fn", None) or default_predict_fn,
            output_fn=getattr(user_module, "output_fn", None) or default_output_fn,
        )
    user_transformer.initialize()
    return worker.Worker(
        transform_fn=user_transformer.transform,
        module_name=serving_env.module_name,
        execution_parameters_fn=getattr(user_module, "execution_parameters_fn", None),
    )


# ---------------------------------------------------------------- stand-in (the project's interpreter)


class UnsupportedFormatError(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"Content type {content_type} is not supported by this framework.")


def _install_worker_standin(flask: Any) -> None:
    """`sagemaker_containers.beta.framework.worker.Response` where the toolkit is not installed."""
    try:
        importlib.import_module("sagemaker_containers.beta.framework.worker")
        return
    except ImportError:
        pass

    class Response(flask.Response):  # type: ignore[misc, name-defined]
        default_mimetype = JSON

        def __init__(  # noqa: PLR0917 - the toolkit's own signature
            self,
            response: Any = None,
            accept: Any = None,
            status: int = 200,
            headers: Any = None,
            mimetype: str | None = None,
            direct_passthrough: bool = False,
        ) -> None:
            super().__init__(response, status, headers, mimetype, None, direct_passthrough)

    names = ("sagemaker_containers", "beta", "framework", "worker")
    parent = None
    for depth in range(1, len(names) + 1):
        module = types.ModuleType(".".join(names[:depth]))
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        if parent is not None:
            setattr(parent, names[depth - 1], module)
        parent = module
    sys.modules["sagemaker_containers.beta.framework.worker"].Response = Response  # type: ignore[attr-defined]


class _ClientError(Exception):
    """sagemaker_containers._errors.ClientError: what every handler exception becomes (-> HTTP 500)."""


def _wrapped(fn: Any) -> Any:
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as error:
            raise _ClientError(error) from error

    return call


def standin_app(model_dir: Path, code_dir: Path, program: str) -> Any:
    import flask
    import numpy as np

    _install_worker_standin(flask)
    module = load_program(code_dir, program)
    check_handlers(module)
    default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)

    def default_input_fn(body: Any, content_type: str) -> Any:
        if content_type == JSON:
            return np.asarray(json.loads(body), dtype=np.float32)
        if content_type == "text/csv":
            return np.atleast_2d(np.genfromtxt(body.splitlines(), delimiter=",", dtype=np.float32))
        raise UnsupportedFormatError(content_type)

    def default_output_fn(prediction: Any, accept: str) -> Any:
        values = prediction.tolist() if hasattr(prediction, "tolist") else prediction
        if accept == JSON:
            return flask.Response(json.dumps(values), mimetype=JSON)
        if accept == "text/csv":
            return flask.Response("".join(f"{v}\n" for v in values), mimetype=accept)
        raise UnsupportedFormatError(accept)

    model = _wrapped(module.model_fn)(str(model_dir))
    transform_fn = getattr(module, "transform_fn", None)
    input_fn = _wrapped(module.input_fn) if hasattr(module, "input_fn") else default_input_fn
    predict_fn = _wrapped(getattr(module, "predict_fn", lambda data, m: m.predict(data)))
    output_fn = _wrapped(module.output_fn) if hasattr(module, "output_fn") else default_output_fn

    def error_response(error: Exception, status: int) -> Any:
        body = {
            "error": type(error).__name__,
            "error-message": str(error),
            "stack-trace": traceback.format_exc(),
        }
        return flask.Response(json.dumps(body), status=status, mimetype=JSON)

    def invocations() -> Any:
        request = flask.request
        content_type = request.headers.get("ContentType") or request.headers.get("Content-Type") or JSON
        accept = request.headers.get("Accept")
        if not accept or accept == "*/*":
            accept = default_accept
        content = request.get_data(as_text=content_type in UTF8_TYPES)
        if transform_fn is not None:
            result = _wrapped(transform_fn)(model, content, content_type, accept)
        else:
            try:
                data = input_fn(content, content_type)
            except UnsupportedFormatError as error:
                return error_response(error, 415)
            prediction = predict_fn(data, model)
            try:
                result = output_fn(prediction, accept)
            except UnsupportedFormatError as error:
                return error_response(error, 406)
        if isinstance(result, tuple):
            return flask.Response(response=result[0], mimetype=result[1])
        return result

    app = flask.Flask(Path(program).stem)
    app.add_url_rule("/ping", "ping", lambda: flask.Response(status=200))
    app.add_url_rule("/invocations", "invocations", invocations, methods=["POST"])
    return app


# ---------------------------------------------------------------- serving


def _exit_with_parent() -> None:
    """The emulator that started this server may be killed without cleaning up: do not outlive it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--code-dir", required=True, type=Path)
    parser.add_argument("--program", default="inference.py")
    parser.add_argument("--toolkit", choices=(CONTAINER, STANDIN), default=STANDIN)
    parser.add_argument("--port", type=int, default=8080, help="port to bind when no --listen-fd is given")
    parser.add_argument("--listen-fd", type=int, help="an inherited socket, already bound and listening")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        build = container_app if args.toolkit == CONTAINER else standin_app
        app = build(args.model_dir.resolve(), args.code_dir.resolve(), args.program)
    except Exception as error:  # noqa: BLE001 - report why the model cannot be served, then exit non-zero
        traceback.print_exc()
        print(f"ModelLoadError: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    from werkzeug.serving import make_server

    if args.listen_fd is not None:
        # The parent bound port 0 and kept the socket open: no other process can take the port in between.
        probe = socket.socket(fileno=args.listen_fd)
        port = probe.getsockname()[1]
        probe.detach()  # keep the descriptor open for the server
        server = make_server(args.host, port, app, threaded=True, fd=args.listen_fd)
    else:
        server = make_server(args.host, args.port, app, threaded=True)
    _exit_with_parent()
    print(
        f"inference-server: serving {args.program} ({args.toolkit}) on "
        f"{args.host}:{server.server_address[1]}",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
