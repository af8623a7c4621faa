"""The machinery behind every check: run a student's function on fixed random cases, compare it with
the package's reference, and when they differ, say *why* rather than just "wrong".

A check is described by a :class:`Spec`. Diagnosis runs in this order, and stops at the first hint:

1. the function raised ``NotImplementedError``  → "not attempted" (the stub of the student version);
2. it raised another exception                  → the exception and the call that raised it;
3. it returned something that is not a tensor, has the wrong shape, is not finite, or it changed an
   argument in place                            → a hint naming exactly that;
4. its output equals a **known mistake**        → that mistake's explanation (e.g. "you used the
   other sign convention of w");
5. for outputs that are linear in some inputs (x_t = a·x_0 + b·ε, ...), each **term** is probed
   alone (the other linear inputs set to zero), the coefficient the student used is measured and
   matched against a table of plausible expressions (√ᾱ_t, ᾱ_t, ᾱ_{t−1}, ...)
                                                → "the noise term is off: you multiply ε by 1 − ᾱ_t
                                                   (0.604 at t = 17) where √(1 − ᾱ_t) (0.777) belongs";
6. otherwise                                    → a counter-example: the call, the expected and the
                                                   returned value at the worst element.

Everything is seeded and printed to 3 significant digits, so a check's text is the same on every run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

#: The result statuses, in the order a student meets them.
STATUSES = ("not attempted", "error", "failed", "passed")
#: Set to 1 to make a check raise AssertionError unless it passed (for nbgrader or otter test cells).
STRICT_ENV = "DIFFUSION_LAB_STRICT_CHECKS"

RTOL, ATOL = 1e-5, 1e-6
_SYMBOL = {"passed": "✓", "failed": "✗", "error": "✗", "not attempted": "…"}  # the grader adds "time limit"


@dataclass(frozen=True)
class CheckResult:
    """What a check found. ``repr`` is the text shown under the check cell."""

    check: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __repr__(self) -> str:
        return f"{_SYMBOL.get(self.status, '✗')} {self.check}: {self.status}. {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "message": self.message}

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        # Text only. The grader does not read what a check shows in the student's kernel: it runs
        # the checks itself and calls the student's function in the kernel (see grading.py).
        return {"text/plain": repr(self)}


def fmt(x: float) -> str:
    """A number to 3 significant digits, as every message prints them."""
    return f"{float(x):.3g}"


@dataclass(frozen=True)
class Case:
    """One call of the student's function: positional arguments by name, and a short description."""

    args: dict[str, Any]
    label: str
    where: Callable[[int], str] | None = None  # describes example b, e.g. "at t = 17"


@dataclass(frozen=True)
class Mistake:
    """A wrong formula seen often enough to deserve its own explanation."""

    wrong: Callable[..., torch.Tensor]
    hint: str


@dataclass(frozen=True)
class Term:
    """A part of the output proportional to one input (the output must be linear in ``Spec.linear``).

    ``candidates(case)`` names plausible coefficients, each a scalar or a per-example ``(B,)``
    tensor; the correct one must be among them, under ``expected``.
    """

    input: str
    name: str
    expected: str
    candidates: Callable[[Case], dict[str, Any]]


@dataclass(frozen=True)
class Spec:
    """Everything a check needs: the student's signature, the reference, the cases and the diagnoses."""

    name: str
    signature: str
    reference: Callable[..., torch.Tensor]
    cases: Callable[[], list[Case]]
    mistakes: Sequence[Mistake] = ()
    terms: Sequence[Term] = ()
    output_like: str | None = None  # the input whose shape the output must have (for shape hints)
    broadcast_hint: str = "reshape per-example coefficients to (B, 1, ..., 1) with dl.expand_like(coef, x)"
    extra: dict[str, Any] = field(default_factory=dict)


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def _call(fn: Callable, case: Case) -> Any:
    return fn(*(_clone(v) for v in case.args.values()))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=RTOL, atol=ATOL)


def _as_coef(value: Any, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-example ``(B,)`` coefficient as a float64 ``(B,)`` tensor."""
    value = torch.as_tensor(value, dtype=torch.float64)
    return value.expand(like.shape[0]) if value.ndim == 0 else value.reshape(like.shape[0])


def _first_differing_example(coef: torch.Tensor, expected: torch.Tensor) -> int:
    diff = (coef - expected).abs()
    return int(torch.argmax(diff))


def _where(case: Case, b: int) -> str:
    return case.where(b) if case.where else f"for example {b} of {case.label}"


class _Diagnosis(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _check_output(spec: Spec, case: Case, out: Any, expected: torch.Tensor, before: dict[str, Any]) -> None:
    if out is None:
        raise _Diagnosis("failed", f"{spec.name} returned None: did you forget the `return`? ({case.label})")
    if isinstance(out, tuple):
        raise _Diagnosis("failed", f"{spec.name} returned a tuple of {len(out)}; return one tensor ({spec.signature}).")
    if not isinstance(out, torch.Tensor):
        raise _Diagnosis(
            "failed",
            f"{spec.name} returned a {type(out).__name__}, not a torch.Tensor; compute with torch "
            f"operations (numpy arrays from the schedule can be turned into tensors with torch.as_tensor).",
        )
    for name, value in case.args.items():
        if isinstance(value, torch.Tensor) and not torch.equal(value, before[name]):
            raise _Diagnosis(
                "failed",
                f"{spec.name} changed its argument `{name}` in place (e.g. `{name} *= ...` or `{name}.add_(...)`); "
                f"build a new tensor instead, the caller still needs `{name}`.",
            )
    if tuple(out.shape) != tuple(expected.shape):
        raise _Diagnosis("failed", _shape_hint(spec, case, tuple(out.shape), tuple(expected.shape)))
    if not torch.isfinite(out).all():
        raise _Diagnosis(
            "failed",
            f"{spec.name} returned NaN or infinite values for {case.label} (the expected values are all "
            f"finite): look for a division by zero or the square root of a negative number.",
        )


def _shape_hint(spec: Spec, case: Case, got: tuple, want: tuple) -> str:
    like = f" (the shape of `{spec.output_like}`)" if spec.output_like else ""
    msg = f"wrong shape: {spec.name} returned shape {got}, but the result must have shape {want}{like}, for {case.label}."
    if len(want) >= 1 and len(got) > len(want) or (len(got) == len(want) and got[:1] == want[:1] and got[1:2] == want[:1]):
        msg += (f" A per-example coefficient of shape ({want[0]},) was probably broadcast against the data: "
                f"{spec.broadcast_hint}.")
    elif len(got) < len(want):
        msg += " It looks like you summed or averaged over some axes; keep one value per element."
    return msg


def _known_mistake(spec: Spec, case: Case, out: torch.Tensor) -> str | None:
    for mistake in spec.mistakes:
        try:
            wrong = _call(mistake.wrong, case)
        except Exception:  # a mistake's formula may not apply to every case
            continue
        if _close(out, wrong):
            return mistake.hint
    return None


def _probe(case: Case, keep: str, linear: Sequence[str]) -> Case:
    args = {k: (torch.zeros_like(v) if k in linear and k != keep else v) for k, v in case.args.items()}
    return Case(args, case.label, case.where)


def _term_hint(spec: Spec, case: Case, fn: Callable) -> str | None:
    linear = [term.input for term in spec.terms]
    for term in spec.terms:
        probe = _probe(case, term.input, linear)
        try:
            out = _call(fn, probe)
        except Exception:
            return None
        want = _call(spec.reference, probe)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            return None
        if _close(out, want):
            continue
        x = case.args[term.input].double()
        out = out.double()
        flat_x, flat_out = x.flatten(1), out.flatten(1)
        coef = (flat_out * flat_x).sum(1) / (flat_x * flat_x).sum(1)  # least squares, per example (B,)
        proportional = torch.allclose(coef.reshape(-1, *[1] * (x.ndim - 1)) * x, out, rtol=1e-4, atol=1e-6)
        candidates = {name: _as_coef(v, x) for name, v in term.candidates(case).items()}
        expected = candidates[term.expected]
        b = _first_differing_example(coef, expected)
        where = _where(case, b)
        if not proportional:
            return (f"{term.name} is off: the output should contain {term.expected} · {term.input}, but with every other "
                    f"linear input set to zero your result is not even proportional to `{term.input}` ({where}).")
        if torch.allclose(coef, torch.zeros_like(coef), atol=1e-9):
            return (f"{term.name} is missing: your result does not depend on `{term.input}`, but it should contain "
                    f"{term.expected} · {term.input} ({term.expected} = {fmt(expected[b])} {where}).")
        for name, value in candidates.items():
            if name != term.expected and torch.allclose(coef, value, rtol=1e-4, atol=1e-8):
                return (f"{term.name} is off: you multiply `{term.input}` by {name} ({fmt(coef[b])} {where}), "
                        f"but the right coefficient is {term.expected} ({fmt(expected[b])}).")
        return (f"{term.name} is off: you multiply `{term.input}` by {fmt(coef[b])} {where}, but the right "
                f"coefficient is {term.expected} = {fmt(expected[b])}.")
    return None


def _counter_example(spec: Spec, case: Case, out: torch.Tensor, expected: torch.Tensor) -> str:
    err = (out.double() - expected.double()).abs()
    i = int(torch.argmax(err))
    index = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), expected.shape))
    return (f"wrong values: for {case.label}, element {index} should be {fmt(expected.flatten()[i])} but is "
            f"{fmt(out.flatten()[i])} (largest error {fmt(err.max())}).")


def run_check(spec: Spec, fn: Callable) -> CheckResult:
    """Run ``fn`` against ``spec`` and return the result (raising only in strict mode)."""
    result = evaluate(spec, fn)
    if os.environ.get(STRICT_ENV) == "1" and not result.passed:
        raise AssertionError(repr(result))
    return result


def evaluate(spec: Spec, fn: Callable) -> CheckResult:
    """The result of ``spec`` for ``fn``, never raising for what ``fn`` does (the grader's entry point).

    ``fn`` may be the student's function or a stand-in that calls it in another process; an
    exception that is not an ``Exception`` (the grader's "the kernel is gone") passes through.
    """
    if not callable(fn):
        return CheckResult(spec.name, "error", f"expected a function {spec.signature}, got a {type(fn).__name__}.")
    cases = spec.cases()
    for case in cases:
        before = {k: _clone(v) for k, v in case.args.items()}
        expected = _call(spec.reference, case)
        try:
            out = fn(*case.args.values())
        except NotImplementedError:
            return CheckResult(spec.name, "not attempted",
                               "Replace `raise NotImplementedError()` with your code, then run this cell again.")
        except Exception as exc:  # the student's code: any error becomes a hint
            message = f"calling {spec.name} on {case.label} raised {type(exc).__name__}: {exc}"
            if "must match the size of tensor" in str(exc) or "broadcast" in str(exc):
                message += (f". Hint: a per-example coefficient of shape ({expected.shape[0]},) meets data of shape "
                            f"{tuple(expected.shape)}: {spec.broadcast_hint}.")
            return CheckResult(spec.name, "error", message)
        try:
            _check_output(spec, case, out, expected, before)
            if _close(out, expected):
                continue
            hint = (_known_mistake(spec, case, out) or _term_hint(spec, case, fn)
                    or _counter_example(spec, case, out, expected))
            raise _Diagnosis("failed", hint)
        except _Diagnosis as diagnosis:
            return CheckResult(spec.name, diagnosis.status, f"Hint: {diagnosis.message}")
    return CheckResult(spec.name, "passed", f"It matches the reference on {len(cases)} random cases ({spec.extra.get('covers', 'all shapes')}).")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)

