"""One student's kernel, as the grader drives it: start, run a cell, call a function, stop.

The kernel is an ordinary IPython kernel (``ipykernel``) started by :mod:`._sandbox` in the
student's own folder, with resource limits and, where the platform allows, in Linux namespaces. The
grader talks to it with ``jupyter_client`` over Unix sockets in that folder and trusts nothing it
sends: every wait has a deadline, a kernel that ignores an interrupt is killed, every message has a
size limit, outputs are kept up to a size limit, and a return value must pass
:func:`._wire.decode`. What goes wrong with one kernel raises :class:`KernelStopped` (the kernel is
gone) or :class:`CallFailed` (one call failed; the kernel goes on) for that student alone.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import torch
import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from . import _wire

LAUNCHER = Path(__file__).with_name("_sandbox.py")
MAX_MESSAGE = 40 * 2**20  # bytes of one message from the kernel; a larger one drops the connection
MAX_OUTPUT_CHARS = 100_000  # kept per cell for the feedback notebook
MAX_OUTPUTS = 200


class KernelStopped(BaseException):
    """The kernel is gone (killed after a time limit, or it died); nothing more runs in it.

    A BaseException, so that the checks' ``except Exception`` (which turns a student's error into
    a hint) lets it through to the grader.
    """

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class CallFailed(BaseException):
    """One call of the student's function failed in a way that ends its check (the kernel goes on)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    """Per-kernel limits: address space (MiB), CPU seconds, largest file (MiB); 0 turns one off."""

    memory_mb: int = 4096
    cpu_seconds: int = 0
    file_mb: int = 512
    tmp_mb: int = 64


@dataclass
class CellRun:
    """What running one cell gave: ``status`` "ok", "error" or "time limit", and its outputs."""

    status: str
    outputs: list = field(default_factory=list)
    error: str = ""


def _python_paths() -> list[str]:
    """Directories the kernel's Python needs: interpreter, standard library, site-packages, this package."""
    import diffusion_lab

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)), str(Path(diffusion_lab.__file__).resolve().parent)}
    return sorted(os.path.realpath(p) for p in paths) + sorted(paths)


SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
                "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                "/etc/localtime", "/etc/hosts", "/etc/mime.types", "/etc/fonts", "/etc/alternatives"]


def namespaces_command() -> list[str] | None:
    """The ``unshare`` prefix that starts :mod:`._sandbox` in new namespaces, or None off Linux."""
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return None
    return [unshare, "--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--fork", "--kill-child", "--"]


def _kernel_env(home: Path, tmp: str) -> dict[str, str]:
    """A clean environment: nothing of the grader's own variables (paths, tokens) reaches the student."""
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": tmp,
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
           "IPYTHONDIR": str(home / ".ipython"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
           "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
           "JUPYTER_RUNTIME_DIR": str(home / ".jupyter" / "runtime"), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_CONFIG_HOME": str(home / ".config"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = os.environ.get(name, "1")
    return env


def _matplotlib_cache(home: Path) -> None:
    """Copy the grader's matplotlib font list, if there is one: a fresh kernel then need not rebuild it."""
    for folder in (os.environ.get("MPLCONFIGDIR"), Path.home() / ".cache" / "matplotlib"):
        if folder and Path(folder).is_dir():
            for font_list in Path(folder).glob("fontlist-v*.json"):
                target = home / ".config" / "matplotlib"
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(font_list, target / font_list.name)
            return


class StudentKernel:
    """A kernel running in ``folder`` (which holds only this submission), driven by the grader.

    ``sandbox`` is the ``unshare`` command prefix (see :func:`namespaces_command`) or None for a
    plain process with resource limits; ``hide`` lists the grader's folders, which a sandboxed
    kernel must not see even if they lie inside a directory it reads.
    """

    def __init__(self, folder: Path, private: Path, *, limits: Limits, sandbox: list[str] | None,
                 hide: list[Path], readonly: list[str] = ()) -> None:
        self.folder, self.private, self.limits = folder, private, limits
        self.sandbox, self.hide, self.extra_readonly = sandbox, hide, list(readonly)
        self.process: subprocess.Popen | None = None
        self.client: BlockingKernelClient | None = None
        self.context: zmq.Context | None = None
        self.log_path = private / "kernel.log"

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Start the kernel and wait until it answers; KernelStopped if it does not within ``timeout``."""
        deadline = time.monotonic() + timeout
        self.private.mkdir(parents=True, exist_ok=True)
        _matplotlib_cache(self.folder)
        connection = self.folder / ".kernel.json"
        write_connection_file(str(connection), transport="ipc", ip=str(self.folder / ".k"),
                              key=secrets.token_hex(32).encode(), kernel_name="python3")
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection),
                "--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]
        tmp = "/tmp" if self.sandbox else str(self.folder / ".tmp")
        if not self.sandbox:
            Path(tmp).mkdir(exist_ok=True)
        limits = {"as": self.limits.memory_mb * 2**20, "cpu": self.limits.cpu_seconds,
                  "fsize": self.limits.file_mb * 2**20}
        root = self.private / "root"
        root.mkdir(exist_ok=True)
        spec = {"mode": "namespaces" if self.sandbox else "none", "root": str(root),
                "readonly": SYSTEM_PATHS + _python_paths() + self.extra_readonly,
                "writable": [str(self.folder)], "hide": [str(p) for p in self.hide], "tmp_mb": self.limits.tmp_mb,
                "cwd": str(self.folder), "limits": limits, "argv": argv, "env": _kernel_env(self.folder, tmp)}
        spec_path = self.private / "sandbox.json"
        spec_path.write_text(json.dumps(spec))
        command = [*(self.sandbox or []), sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        self.context = zmq.Context()
        self.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        self.context.setsockopt(zmq.LINGER, 0)
        self.client = BlockingKernelClient(context=self.context)
        self.client.load_connection_file(str(connection))
        self.client.start_channels(hb=False, stdin=False)
        while True:  # the kernel is ready when it answers a kernel_info request
            msg_id = self.client.kernel_info()
            try:
                self._wait_reply(msg_id, min(1.0, max(0.01, deadline - time.monotonic())))
                return
            except TimeoutError:
                pass
            if not self.alive:
                raise KernelStopped("error", f"the kernel did not start (exit code {self.process.returncode}): "
                                    f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise KernelStopped("time limit", f"the kernel did not start within {timeout:g} s")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        try:
            text = self.log_path.read_bytes()[-chars:].decode(errors="replace").strip()
        except OSError:
            return ""
        return " ".join(text.split())

    def kill(self) -> None:
        """Kill the kernel and everything it started (its process group; in a sandbox, its PID namespace)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self.context is not None:
            self.context.destroy(linger=0)
            self.context = None

    # -- messages -------------------------------------------------------------------------------------

    def _poll(self, timeout: float) -> dict:
        """Sockets with a message waiting, after at most ``timeout`` seconds."""
        poller = zmq.Poller()
        poller.register(self.client.shell_channel.socket, zmq.POLLIN)
        poller.register(self.client.iopub_channel.socket, zmq.POLLIN)
        return dict(poller.poll(max(0, int(timeout * 1000))))

    def _receive(self, channel) -> dict | None:
        try:
            return channel.get_msg(timeout=0)
        except Exception:  # noqa: BLE001 - a malformed or unsigned message from the kernel: ignore it
            return None

    def _wait_reply(self, msg_id: str, timeout: float, outputs: list | None = None) -> dict:
        """The shell reply to ``msg_id`` (outputs of the request collected on the way); TimeoutError."""
        deadline = time.monotonic() + timeout
        reply, idle, kept = None, False, [0, False]  # characters kept, and whether output was cut
        while not (reply is not None and idle):
            remaining = deadline - time.monotonic()
            if reply is not None:
                remaining = min(remaining, idle_deadline - time.monotonic())
            if remaining <= 0:
                if reply is not None:
                    return reply  # the outputs did not finish in time; the reply is what counts
                raise TimeoutError
            ready = self._poll(min(remaining, 0.2))
            if self.client.iopub_channel.socket in ready:
                msg = self._receive(self.client.iopub_channel)
                if msg and msg.get("parent_header", {}).get("msg_id") == msg_id:
                    if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                        idle = True
                    elif outputs is not None:
                        self._keep_output(msg, outputs, kept)
            if reply is None and self.client.shell_channel.socket in ready:
                msg = self._receive(self.client.shell_channel)
                if msg and msg.get("parent_header", {}).get("msg_id") == msg_id:
                    reply = msg
                    idle_deadline = time.monotonic() + 1.0
            if not ready and not self.alive:
                raise KernelStopped("error", f"the kernel died (exit code {self.process.returncode})")
        return reply

    @staticmethod
    def _keep_output(msg: dict, outputs: list, kept: list) -> None:
        """Keep an output for the feedback notebook, up to MAX_OUTPUTS outputs and MAX_OUTPUT_CHARS."""
        if msg["msg_type"] not in ("stream", "display_data", "execute_result", "error"):
            return
        try:
            output = nbformat.v4.output_from_msg(msg)
            size = len(json.dumps(output))
        except Exception:  # noqa: BLE001 - an output nbformat cannot represent: leave it out
            return
        if size > MAX_OUTPUT_CHARS:
            output = nbformat.v4.new_output("stream", name="stderr",
                                            text=f"[grader] an output of {size} characters was left out\n")
            size = len(output.text)
        if len(outputs) >= MAX_OUTPUTS or kept[0] + size > MAX_OUTPUT_CHARS:
            if not kept[1]:
                outputs.append(nbformat.v4.new_output("stream", name="stderr",
                                                      text="[grader] more output was cut here\n"))
                kept[1] = True
            return
        kept[0] += size
        outputs.append(output)

    def interrupt(self) -> None:
        """Ask the kernel to interrupt what it runs (it raises KeyboardInterrupt in the student's code)."""
        if self.client is not None:
            self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    def _request(self, send, timeout: float, outputs: list | None, what: str, grace: float) -> tuple[dict, bool]:
        """Send a request, wait for its reply; on time-out interrupt, then kill if still no reply.

        Returns the reply and whether the time limit was hit (the kernel recovered).
        """
        if not self.alive:
            raise KernelStopped("error", f"the kernel died (exit code {self.process.returncode})")
        msg_id = send()
        try:
            return self._wait_reply(msg_id, timeout, outputs), False
        except TimeoutError:
            pass
        self.interrupt()
        try:
            return self._wait_reply(msg_id, grace, outputs), True
        except TimeoutError:
            self.kill()
            raise KernelStopped("time limit", f"{what} ran past its time limit of {timeout:.3g} s and did not "
                                f"stop when interrupted, so the kernel was stopped") from None

    def execute(self, code: str, timeout: float, *, grace: float = 5.0, what: str = "a cell") -> CellRun:
        """Run ``code`` as a notebook cell; its outputs and whether it raised or hit the time limit."""
        outputs: list = []
        reply, timed_out = self._request(
            lambda: self.client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False),
            timeout, outputs, what, grace)
        content = reply.get("content", {})
        if timed_out:
            return CellRun("time limit", outputs, f"stopped after the time limit of {timeout:.3g} s")
        if content.get("status") != "ok":
            return CellRun("error", outputs, f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"[:500])
        return CellRun("ok", outputs)

    def call(self, name: str, request: dict, timeout: float, *, grace: float = 5.0) -> dict:
        """Evaluate ``_wire.serve`` for ``name`` in the kernel; its decoded JSON answer (a dict).

        CallFailed when the call hit the time limit or the answer is malformed; KernelStopped when
        the kernel is gone.
        """
        expression = _wire.call_expression(name, request)
        reply, timed_out = self._request(
            lambda: self.client.execute("", silent=True, store_history=False, allow_stdin=False,
                                        user_expressions={"r": expression}),
            timeout, None, f"`{name}`", grace)
        if timed_out:
            raise CallFailed("time limit", f"`{name}` did not return within the time limit of {timeout:.3g} s "
                             "(an endless loop, or far too slow?)")
        try:
            result = reply["content"]["user_expressions"]["r"]
            if result.get("status") != "ok":
                raise CallFailed("error", f"the grader could not call `{name}` in your notebook: "
                                 f"{str(result.get('ename'))[:100]}: {str(result.get('evalue'))[:300]}")
            text = result["data"]["text/plain"]
            if not isinstance(text, str) or len(text) > 3 * MAX_MESSAGE:
                raise _wire.MalformedReply("not a string of the expected size")
            answer = json.loads(ast.literal_eval(text))
            if not isinstance(answer, dict):
                raise _wire.MalformedReply("not a JSON object")
            return answer
        except CallFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - anything unexpected in the kernel's answer
            raise CallFailed("error", f"the grader could not read your kernel's answer for `{name}` "
                             f"({type(exc).__name__}: {str(exc)[:200]}); did your code change the kernel?") from None


class RemoteFunction:
    """The student's function as the grader calls it: every call runs in the student's kernel.

    Arguments go out through :func:`._wire.encode`; the result comes back through
    :func:`._wire.decode`. The exception the function raised is raised here again (a
    ``NotImplementedError`` as itself, anything else as an exception of the same name), and tensor
    arguments it changed in place are changed here too, so the checks see what they would see
    calling the function directly. All calls of one check share one deadline.
    """

    def __init__(self, kernel: StudentKernel, name: str, deadline: float, *, grace: float = 5.0) -> None:
        self.kernel, self.name, self.deadline, self.grace = kernel, name, deadline, grace

    def __call__(self, *args: Any) -> Any:
        timeout = self.deadline - time.monotonic()
        if timeout <= 0:
            raise CallFailed("time limit", f"the calls of `{self.name}` ran past the check's time limit")
        answer = self.kernel.call(self.name, {"args": _wire.encode(list(args))}, timeout, grace=self.grace)
        if answer.get("undefined"):
            raise CallFailed("error", f"`{self.name}` was no longer defined when the check called it again")
        raised = answer.get("raised")
        if raised is not None:
            if not isinstance(raised, dict):
                raise self._malformed("raised is not an object")
            kind, message = str(raised.get("type"))[:100], str(raised.get("message"))[:2000]
            if kind == "NotImplementedError":
                raise NotImplementedError(message)
            raise student_exception(kind)(message)
        try:
            value = _wire.decode(answer["value"])
            mutated = answer.get("mutated", {})
            if not isinstance(mutated, dict):
                raise _wire.MalformedReply("mutated is not an object")
            for index, data in mutated.items():
                arg, new = args[int(index)], _wire.decode(data)
                if not (isinstance(arg, torch.Tensor) and isinstance(new, torch.Tensor)):
                    raise _wire.MalformedReply("a changed argument that is not a tensor")
                arg.resize_(new.shape).copy_(new)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise self._malformed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return value

    def _malformed(self, what: str) -> CallFailed:
        return CallFailed("error", f"the grader could not read your kernel's answer for `{self.name}` ({what}); "
                          "did your code change the kernel or the grader's helper?")


class StudentException(Exception):
    """Base of the exceptions that stand for one the student's function raised in its kernel."""


_EXCEPTIONS: dict[str, type] = {}


def student_exception(name: str) -> type:
    """An exception class named like the one the student's code raised (for the checks' messages)."""
    if not _wire._NAME.fullmatch(name):
        name = "Exception"
    if name not in _EXCEPTIONS:
        _EXCEPTIONS[name] = type(name, (StudentException,), {})
    return _EXCEPTIONS[name]
