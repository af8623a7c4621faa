"""What travels between the grader and a student's kernel: arguments out, a return value back.

The grader never trusts the kernel. It sends the arguments of one call of the student's function
(tensors, numbers, a noise schedule) as JSON; the kernel runs :func:`serve`, which calls the
function and answers with JSON: the returned value, or the exception it raised, and the tensor
arguments it changed in place. :func:`decode` on the grader's side accepts only the few shapes of
JSON this module writes, within size limits; anything else raises :class:`MalformedReply`, which
the grader scores as that student's error. A kernel that answers with the right numbers could have
computed them in any way, which is what a check asks; a kernel that forges an answer gets graded
on the forged numbers, and the grader's comparison with the reference does not run in the kernel.

Encoding (both directions)::

    None, bool, int, float, str      as JSON (NaN and infinities as JSON's NaN / Infinity)
    tuple or list                    {"tuple": [...]} / {"list": [...]}
    torch.Tensor                     {"tensor": {"dtype": "float64", "shape": [2, 3], "data": base64}}
    NoiseSchedule                    {"schedule": {"name": "cosine", "beta": <tensor>}}
    anything else (returned only)    {"object": "<type name>"}
"""

from __future__ import annotations

import base64
import json
import re
import sys
from typing import Any

import torch

#: The name under which a kernel loads this file (by path, so that the kernel need not import the
#: whole package, scikit-learn included, before the student's first cell: only torch).
KERNEL_MODULE = "_diffusion_lab_grader_wire"


def _schedule_class() -> type | None:
    """NoiseSchedule if the package's schedules are loaded (otherwise no value can be one)."""
    module = sys.modules.get("diffusion_lab.schedules")
    return getattr(module, "NoiseSchedule", None)

#: Tensor types that may cross (by name); others are refused by :func:`decode`.
DTYPES = {str(d).removeprefix("torch."): d for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16,
                                                     torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
                                                     torch.bool, torch.complex64, torch.complex128)}
MAX_BYTES = 32 * 2**20  # all tensors of one message together
MAX_ITEMS = 256  # entries of one tuple or list
MAX_DEPTH = 8
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,99}")


class MalformedReply(ValueError):
    """A kernel's answer that this module did not write (or that exceeds the limits)."""


class Opaque:
    """A returned object of a type that does not cross: only its type name does (``type(x).__name__``)."""


def _opaque(name: str) -> Opaque:
    return type(name if _NAME.fullmatch(name) else "object", (Opaque,), {})()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def encode(value: Any, *, strict: bool = True) -> Any:
    """``value`` as JSON-able data; with ``strict=False`` unknown objects become their type name."""
    schedule = _schedule_class()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype in DTYPES:
            return {"tensor": {"dtype": dtype, "shape": list(value.shape),
                               "data": base64.b64encode(_tensor_bytes(value)).decode()}}
    elif isinstance(value, (tuple, list)):
        return {type(value).__name__: [encode(v, strict=strict) for v in value]}
    elif schedule is not None and isinstance(value, schedule):
        return {"schedule": {"name": value.name, "beta": encode(torch.from_numpy(value.beta.copy()))}}
    if strict:
        raise TypeError(f"cannot send a {type(value).__name__} to a kernel")
    return {"object": type(value).__name__}


class _Budget:
    def __init__(self) -> None:
        self.bytes = 0


def decode(data: Any, *, _depth: int = 0, _budget: _Budget | None = None) -> Any:
    """The value :func:`encode` wrote, checked; raises :class:`MalformedReply` for anything else."""
    budget = _budget or _Budget()
    if _depth > MAX_DEPTH:
        raise MalformedReply(f"nested more than {MAX_DEPTH} levels deep")
    if data is None or isinstance(data, (bool, int, float, str)):
        if isinstance(data, str) and len(data) > 100_000:
            raise MalformedReply("a string longer than 100000 characters")
        return data
    if not isinstance(data, dict) or len(data) != 1:
        raise MalformedReply(f"unexpected {type(data).__name__}")
    (kind, body), = data.items()
    if kind in ("tuple", "list"):
        if not isinstance(body, list) or len(body) > MAX_ITEMS:
            raise MalformedReply(f"a {kind} that is not a list of at most {MAX_ITEMS} items")
        items = [decode(v, _depth=_depth + 1, _budget=budget) for v in body]
        return tuple(items) if kind == "tuple" else items
    if kind == "tensor":
        if not isinstance(body, dict) or set(body) != {"dtype", "shape", "data"}:
            raise MalformedReply("a tensor without exactly dtype, shape and data")
        dtype = DTYPES.get(body["dtype"]) if isinstance(body["dtype"], str) else None
        shape = body["shape"]
        if dtype is None:
            raise MalformedReply(f"an unknown tensor dtype {str(body['dtype'])[:40]!r}")
        if (not isinstance(shape, list) or len(shape) > 16
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 2**31 for n in shape)):
            raise MalformedReply("a tensor shape that is not a list of at most 16 sizes")
        if not isinstance(body["data"], str) or len(body["data"]) > 2 * MAX_BYTES:
            raise MalformedReply("tensor data that is not base64 text within the size limit")
        try:
            raw = base64.b64decode(body["data"], validate=True)
        except ValueError as exc:
            raise MalformedReply(f"tensor data that is not base64 ({exc})") from None
        numel = 1
        for n in shape:
            numel *= n
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) != numel * itemsize:
            raise MalformedReply(f"a tensor of shape {tuple(shape)} with {len(raw)} bytes of data")
        budget.bytes += len(raw)
        if budget.bytes > MAX_BYTES:
            raise MalformedReply(f"more than {MAX_BYTES} bytes of tensors")
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
    if kind == "schedule":
        if not isinstance(body, dict) or set(body) != {"name", "beta"} or not isinstance(body["name"], str):
            raise MalformedReply("a schedule without exactly name and beta")
        beta = decode(body["beta"], _depth=_depth + 1, _budget=budget)
        if not isinstance(beta, torch.Tensor) or beta.dtype != torch.float64 or beta.ndim != 1:
            raise MalformedReply("a schedule whose beta is not a float64 vector")
        from diffusion_lab.schedules import NoiseSchedule

        try:
            return NoiseSchedule(beta.numpy(), body["name"][:100])
        except ValueError as exc:
            raise MalformedReply(f"an invalid schedule ({exc})") from None
    if kind == "object":
        if not isinstance(body, str):
            raise MalformedReply("an object without a type name")
        return _opaque(body)
    raise MalformedReply(f"an unknown kind of value {kind[:40]!r}")


# ------------------------------------------------------------------------------------------------
# The kernel's side: one call of a function of the notebook.

def serve(namespace: dict, name: str, request: str) -> str:
    """Call ``namespace[name]`` as ``request`` (JSON) says; the answer as JSON text.

    ``request`` is ``{"describe": true}`` (is the name defined, and callable?) or ``{"args": [...]}``.
    Runs in the student's kernel, which the grader does not trust: see :mod:`._wire`.
    """
    request = json.loads(request)
    if name not in namespace:
        return json.dumps({"undefined": True})
    fn = namespace[name]
    if request.get("describe"):
        return json.dumps({"callable": callable(fn), "type": type(fn).__name__})
    args = decode(request["args"])
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
    try:
        out = fn(*args)
    except BaseException as exc:  # the student's code; KeyboardInterrupt is the grader's time limit
        return json.dumps({"raised": {"type": type(exc).__name__, "message": str(exc)[:2000]}})
    mutated = {str(i): encode(a) for i, (a, b) in enumerate(zip(args, before))
               if b is not None and not (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))}
    return json.dumps({"value": encode(out, strict=False), "mutated": mutated})


def setup_code(*, schedules: bool = False) -> str:
    """The cell the grader runs in a fresh kernel before the student's: load this file as a module.

    With ``schedules`` it also imports the package's schedules (and so the package), which the
    arguments of some checks need, so that this import does not count against a check's time limit.
    """
    return (f"import importlib.util as _u, sys as _s\n"
            f"_spec = _u.spec_from_file_location({KERNEL_MODULE!r}, {__file__!r})\n"
            f"_s.modules[{KERNEL_MODULE!r}] = _m = _u.module_from_spec(_spec)\n"
            f"_spec.loader.exec_module(_m)\n"
            f"del _u, _s, _spec, _m\n"
            + ("import diffusion_lab.schedules as _dl_schedules\ndel _dl_schedules\n" if schedules else ""))


def uses_schedules(cases: list) -> bool:
    """Whether any case of a check passes a noise schedule (see :func:`setup_code`)."""
    schedule = _schedule_class()
    return schedule is not None and any(isinstance(v, schedule) for case in cases for v in case.args.values())


def call_expression(name: str, request: dict) -> str:
    """The Python expression the grader evaluates in the kernel (as a ``user_expressions`` entry)."""
    return (f"__import__('sys').modules[{KERNEL_MODULE!r}].serve("
            f"globals(), {name!r}, {json.dumps(request)!r})")
