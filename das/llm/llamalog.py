"""llama.cpp's own logging, routed through its log callback into Python ``logging``.

llama-cpp-python silences the C library with ``verbose=False`` by ``dup2``-ing file
descriptors 1 and 2 to /dev/null for the whole process while a model loads. In a worker or a
CLI run that is a data-loss bug: whatever another thread prints meanwhile (the result JSON
of a run that timed out during the load, a worker's log lines) vanishes. DAS never lets a
library redirect the process's stdout/stderr: the fd juggling is replaced by a no-op and
llama.cpp's messages go to the ``das.llama`` logger (warnings and errors stay visible,
the chatter is DEBUG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from types import ModuleType
from typing import Any

log = logging.getLogger("das.llama")
# ggml_log_level today: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (llama-cpp-python's own
# table still has the older order, which is why its callback shouts INFO chatter as warnings)
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_state: dict[str, Any] = {"callback": None, "last": logging.DEBUG, "partial": ""}


class _KeepStreams(contextlib.AbstractContextManager["_KeepStreams"]):
    """Stands in for ``llama_cpp._utils.suppress_stdout_stderr``: leaves every fd alone."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __exit__(self, *exc: object) -> None:
        return None


def _on_log(level: int, text: bytes, _user_data: Any) -> None:
    """One llama.cpp log fragment; level 5 continues the previous line (GGML_LOG_LEVEL_CONT)."""
    try:
        chunk = text.decode("utf-8", errors="replace") if text else ""
        py_level = _state["last"] if level == 5 else _LEVELS.get(level, logging.DEBUG)
        _state["last"] = py_level
        buffered = _state["partial"] + chunk
        *lines, _state["partial"] = buffered.split("\n")
        for line in lines:
            if line.strip():
                log.log(py_level, "%s", line.rstrip())
    except Exception:  # noqa: BLE001 - an exception must never cross back into C
        pass


def route(llama_cpp: ModuleType) -> None:
    """Install the callback and disarm the fd redirection (idempotent; call before ``Llama()``)."""
    if _state["callback"] is not None:
        return
    for name in ("llama_cpp.llama", "llama_cpp._internals", "llama_cpp.llama_chat_format"):
        module = __import__(name, fromlist=["suppress_stdout_stderr"])
        if hasattr(module, "suppress_stdout_stderr"):
            setattr(module, "suppress_stdout_stderr", _KeepStreams)  # noqa: B010 - a third-party module
    callback = llama_cpp.llama_log_callback(_on_log)
    _state["callback"] = callback  # ctypes callbacks must outlive every call from C
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


__all__ = ["route"]
