"""A local SageMaker-compatible inference server (GET /ping, POST /invocations) for one model.

Run as a script by the endpoint seam (it must not import the `offline` package: it runs with only the
model's code on its path): `python inference_server.py --model-dir D --code-dir C --program inference.py
--listen-fd F` (or `--port P` by hand). It follows the sagemaker-inference handler contract: the program's
`model_fn(model_dir)` is called once, then
each request goes through `input_fn(body, content_type)` -> `predict_fn(data, model)` ->
`output_fn(prediction, accept)`. Bodies of text/csv and application/json arrive decoded (str), others as
bytes, as in the SageMaker inference toolkit. A missing or */* Accept means
SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT (default application/json). `ValueError` from the handlers answers 400
with its message (the caller sent bad input); anything else 500.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

_UTF8_TYPES = {"application/json", "text/csv"}


def _default_input_fn(body: Any, content_type: str) -> Any:
    if content_type == "application/json":
        return json.loads(body)
    raise ValueError(f"content type {content_type} is not supported: send application/json")


def _default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def _default_output_fn(prediction: Any, accept: str) -> Any:
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    return json.dumps(prediction), "application/json"


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
    if not hasattr(module, "model_fn"):
        raise AttributeError(f"{program} defines no model_fn(model_dir)")
    return module


class _Handler(BaseHTTPRequestHandler):
    program: Any = None
    model: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("inference-server: " + (format % args) + "\n")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/ping":
            self._answer(200, b"\n", "text/plain")
        else:
            self._answer(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/invocations":
            self._answer(404, b"not found\n", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        accept = (self.headers.get("Accept") or "").split(",")[0].strip()
        if not accept or accept == "*/*":
            accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
        program = self.program
        try:
            body: Any = raw.decode("utf-8") if content_type in _UTF8_TYPES else raw
            data = getattr(program, "input_fn", _default_input_fn)(body, content_type)
            prediction = getattr(program, "predict_fn", _default_predict_fn)(data, self.model)
            result = getattr(program, "output_fn", _default_output_fn)(prediction, accept)
            out_type = accept
            if isinstance(result, tuple):
                result, out_type = result
            payload = result.encode("utf-8") if isinstance(result, str) else bytes(result)
            self._answer(200, payload, out_type)
        except ValueError as error:
            self._answer(400, str(error).encode("utf-8"), "text/plain")
        except Exception as error:  # noqa: BLE001 - the server answers 500 and stays up, as SageMaker's does
            traceback.print_exc()
            self._answer(500, f"{type(error).__name__}: {error}".encode(), "text/plain")


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
    parser.add_argument("--port", type=int, default=8080, help="port to bind when no --listen-fd is given")
    parser.add_argument("--listen-fd", type=int, help="an inherited socket, already bound and listening")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        program = load_program(args.code_dir, args.program)
        model = program.model_fn(str(args.model_dir))
    except Exception as error:  # noqa: BLE001 - report why the model cannot be served, then exit non-zero
        traceback.print_exc()
        print(f"ModelLoadError: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    _Handler.program, _Handler.model = program, model
    if args.listen_fd is None:
        server = HTTPServer((args.host, args.port), _Handler)
    else:
        # The parent bound port 0 and kept the socket open: no other process can take the port in between.
        server = HTTPServer((args.host, args.port), _Handler, bind_and_activate=False)
        server.socket = socket.socket(fileno=args.listen_fd)
        server.server_address = server.socket.getsockname()
    _exit_with_parent()
    host, port = server.server_address[:2]
    print(f"inference-server: serving {args.program} on {host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
