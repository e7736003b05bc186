"""Helpers for the `mlops` command's tests: run it in-process and read what it printed."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlops_cli.main import run


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, f"exit {self.code}: {self.err}"
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {self.err!r}"
        return lines[0]


class _ThisThreadOnly(io.TextIOBase):
    """Stands in for stdout/stderr: keeps what this thread writes, passes other threads' writes on.

    The embedded AWS runs handlers on other threads, and they print their log lines while a command runs."""

    def __init__(self, passed_on: Any) -> None:
        self.kept = io.StringIO()
        self.passed_on = passed_on
        self.thread = threading.get_ident()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        (self.kept if threading.get_ident() == self.thread else self.passed_on).write(text)
        return len(text)


@contextmanager
def captured() -> Iterator[tuple[_ThisThreadOnly, _ThisThreadOnly]]:
    out, err = _ThisThreadOnly(sys.stdout), _ThisThreadOnly(sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved


def run_mlops(*args: str) -> Result:
    """The command run in this process (so it reaches the in-process AWS), its output captured."""
    codes: list[int] = []
    with captured() as (out, err):
        run(list(args), standalone=codes.append)
    assert len(codes) == 1
    return Result(codes[0], out.kept.getvalue(), err.kept.getvalue())
