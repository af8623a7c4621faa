"""The book's stored outputs: the rules they follow, and how a new run is compared with them.

Used by ``tests/test_output_policy.py``, by ``python scripts/book.py portability`` and by the nbval
hook in the repository's ``conftest.py``, so that the three agree on one set of rules.

**Output policy** (README, "After a change"). Every number in a stored output must survive a change
of machine:

(a) ``small``: a number whose absolute value is below 1e-5 is round-off (or far below anything the
    book measures) and is printed as a bound after ``<``, ``≤`` or ``<=`` with a bare power of ten
    (``< 1e-12``), never with digits (``6.4e-14``, ``1.5e-06``, ``0.0000012``, ``< 6.4e-14``).
(b) ``digits``: a number with a decimal point or an exponent has at most 4 significant digits
    (``2132.08`` and ``0.123456`` are flagged; ``2130``, ``0.0123`` and ``1.16x`` are not). A zero
    written with more than 4 decimals (``0.00000``) counts as 5 digits: it too claims a precision
    that round-off can break.

Not numbers in this sense, hence never flagged: integers (``1,500`` steps, seed ``1234``), dotted
runs with two or more dots (versions ``2.13.0``, addresses), digits glued to a letter, digit, ``_``
or ``.`` on their left (identifiers, file names, hex digests such as ``9f86d08…``), the code and
tag attributes of HTML (only its visible text counts), and the outputs of cells that nbval does not
compare (``nbval-ignore-output``, ``nbval-skip``: timings and progress bars, declared variable) and
error outputs (a stored error fails ``tests/test_project.py`` anyway).

**Tolerance convention.** A code cell whose output contains a number that legitimately moves with
the numerical kernels (a trained metric whose training path changes in the last bits) carries

    "metadata": {"numeric_tolerance": {"rel": 0.02, "reason": "FLD of a model trained for 800 steps"}}

(optionally ``"abs": 1e-3`` for values near zero). Its outputs then match when the text around the
numbers is identical (runs of spaces count as one, so a right-aligned column may gain a digit) and
every pair of numbers agrees within ``max(rel * max(|a|, |b|), abs)``. Every other cell is compared
exactly, as nbval does.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

# ---------------------------------------------------------------------------------------------
# Numbers in text

# A version or address (two or more dots) is matched first so that its parts are not read as
# numbers; the lookbehind keeps digits inside identifiers, file names and hex digests out.
NUMBER = re.compile(
    r"(?<![\w.])(?:(?P<dotted>\d+(?:\.\d+){2,})"
    r"|(?P<number>[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?))"
)
BOUND = re.compile(r"(?:<|<=|≤|&lt;|&le;)\s*$")  # what may stand before a bound like "< 1e-12"
SMALL = 1e-5
MAX_DIGITS = 4


@dataclass(frozen=True)
class Number:
    """One number found in a text: where it is, how it is written, what it is worth."""

    text: str
    start: int
    end: int

    @property
    def value(self) -> float:
        return float(self.text.replace(",", ""))

    @property
    def is_integer(self) -> bool:
        """Written without a decimal point or an exponent: a count, a step, a seed (exact)."""
        return not re.search(r"[.eE]", self.text)

    @property
    def mantissa_digits(self) -> str:
        """The written digits before any exponent, without sign, separators and point."""
        return re.split(r"[eE]", self.text)[0].lstrip("+-").replace(",", "").replace(".", "")

    @property
    def significant_digits(self) -> int:
        """Digits from the first non-zero one to the last one written (``0.00040`` -> 2). A zero
        counts its decimals (``0.00000`` -> 5): that is the precision it claims."""
        digits = self.mantissa_digits.lstrip("0")
        if digits:
            return len(digits)
        fraction = re.split(r"[eE]", self.text)[0].partition(".")[2]
        return len(fraction)

    @property
    def is_power_of_ten(self) -> bool:
        """``1e-12``, ``1e-04``, ``0.00001``: the only form a bound on a round-off quantity takes."""
        return self.mantissa_digits.strip("0") == "1"


def numbers(text: str) -> list[Number]:
    """The numbers in ``text`` (versions, addresses and digits inside words are not numbers)."""
    return [Number(m.group("number"), m.start("number"), m.end("number"))
            for m in NUMBER.finditer(text) if m.group("number")]


# ---------------------------------------------------------------------------------------------
# Output policy

@dataclass(frozen=True)
class Violation:
    notebook: str
    cell: int  # index in nb.cells (markdown cells included)
    number: str  # the offending number as written
    line: str  # the output line that holds it
    rule: str  # a key of RULES

    def __str__(self) -> str:
        return f"{self.notebook}, cell {self.cell}: {self.number} in {self.line!r} ({self.rule})"


RULES = {
    "small": "|x| < 1e-5 printed with digits: print round-off as a bound with a bare power of ten "
             "('< 1e-12'), and a genuinely small quantity as a bound too or in a unit that lifts it above 1e-5",
    "digits": f"more than {MAX_DIGITS} significant digits: round to what survives a change of machine "
              "(3 for a Monte Carlo or trained quantity), or print pass/fail against a stated tolerance",
}


def policy_violations(text: str) -> list[tuple[Number, str]]:
    """The numbers of ``text`` that break the output policy, each with the rule it breaks."""
    found = []
    for number in numbers(text):
        value = abs(number.value)
        bound = BOUND.search(text[max(0, number.start - 8): number.start])
        if 0 < value < SMALL and not (bound and number.is_power_of_ten):
            found.append((number, "small"))
        elif not number.is_integer and number.significant_digits > MAX_DIGITS:
            found.append((number, "digits"))
    return found


class _VisibleText(HTMLParser):
    """The text a reader sees in an HTML output: no tags, attributes, scripts or styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_html_text(source: str) -> str:
    parser = _VisibleText()
    parser.feed(source)
    return " ".join(parser.parts)


POLICY_MIME_TYPES = ("text/plain", "text/markdown", "text/latex", "text/html")


def output_texts(output: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, text) for each textual part of one stored output; images and widget state excluded."""
    if output.get("output_type") == "stream":
        yield output.get("name", "stream"), _joined(output.get("text", ""))
    for mime in POLICY_MIME_TYPES:
        if mime in output.get("data", {}):
            text = _joined(output["data"][mime])
            yield mime, visible_html_text(text) if mime == "text/html" else text


def scan_notebook(nb: Mapping[str, Any], name: str) -> list[Violation]:
    """Every output-policy violation in the stored outputs of notebook ``nb`` (a dict or NotebookNode)."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        options = nbval_options(cell)
        if options["skip"] or not options["check"]:
            continue  # nbval does not compare it: declared variable (timings, progress bars)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                continue
            for _, text in output_texts(output):
                for number, rule in policy_violations(text):
                    found.append(Violation(name, index, number.text, _line_around(text, number), rule))
    return found


def _line_around(text: str, number: Number, width: int = 120) -> str:
    """The line of ``text`` that holds ``number``; a longer line is cut to ``width`` around it."""
    start = text.rfind("\n", 0, number.start) + 1
    end = text.find("\n", number.end)
    end = len(text) if end < 0 else end
    if end - start > width:
        start, end = max(start, number.start - width // 2), min(end, number.end + width // 2)
    return text[start:end].strip()


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


# ---------------------------------------------------------------------------------------------
# Comparing a new run with the stored outputs, as nbval does

# nbval 0.11 (plugin.py, IPyNbFile.__init__ without --nbdime): the output keys it never compares.
NBVAL_SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                      "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")


def nbval_options(cell: Mapping[str, Any]) -> dict[str, bool]:
    """nbval's per-cell options from its tags and comment markers: ``check`` (compare the outputs),
    ``skip`` (do not run the cell), ``check_exception`` (an error is expected)."""
    from nbval.plugin import find_comment_markers, find_metadata_tags

    options = {"check": True, "skip": False, "check_exception": False}
    options.update(find_metadata_tags(cell.get("metadata", {})))
    options.update(find_comment_markers(_joined(cell.get("source", ""))))
    return options


def load_sanitizers(path: Path) -> list[tuple[str, str]]:
    """The (regex, replacement) pairs of an nbval sanitiser file, in order."""
    from nbval.plugin import get_sanitize_patterns

    return list(dict(get_sanitize_patterns(path.read_text())).items())  # nbval keeps them in a dict too


def sanitizer(patterns: list[tuple[str, str]]) -> Callable[[Any], Any]:
    def sanitize(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for regex, replace in patterns:
            value = re.sub(regex, replace, value)
        return value
    return sanitize


def _fields(outputs: list) -> Iterator[tuple[str, int, str | None]]:
    """(key, output index, data key) of every compared value, in nbval's order: a stream's text is
    keyed by the stream's name, a display's data by MIME type, anything else by its own key."""
    for i, output in enumerate(outputs):
        if output.get("output_type") == "stream":
            yield output["name"], i, None
            continue
        for key in output:
            if key in NBVAL_SKIP_COMPARE:
                continue
            if key == "data":
                for mime in output["data"]:
                    if mime not in NBVAL_SKIP_COMPARE:
                        yield mime, i, mime
            else:
                yield key, i, None


def _get(outputs: list, i: int, key: str, data_key: str | None) -> Any:
    output = outputs[i]
    if data_key is not None:
        return output["data"][data_key]
    return output["text"] if output.get("output_type") == "stream" else output[key]


def compared_values(outputs: list) -> dict[str, list]:
    """nbval's view of a cell's outputs: for each key, the list of its values in order.
    ``outputs`` must already be coalesced (``nbval.plugin.coalesce_streams``)."""
    values: dict[str, list] = {}
    for key, i, data_key in _fields(outputs):
        values.setdefault(key, []).append(_get(outputs, i, data_key=data_key, key=key))
    return values


def first_difference(ref: list, test: list, sanitize: Callable[[Any], Any]) -> dict | None:
    """Where the coalesced outputs ``test`` differ from ``ref`` by nbval's rules, or None.

    Returns ``{"key", "expected", "got", "line", "expected_line", "got_line"}``; ``line`` is the
    first differing line (1-based) for text values."""
    expected, got = compared_values(ref), compared_values(test)
    if set(expected) != set(got):
        return dict(key="output keys", expected=sorted(expected), got=sorted(got))
    for key in expected:
        if len(expected[key]) != len(got[key]):
            return dict(key=key, expected=f"{len(expected[key])} outputs", got=f"{len(got[key])} outputs")
        for want, have in zip(expected[key], got[key]):
            want, have = sanitize(want), sanitize(have)
            if want != have:
                diff = dict(key=key, expected=want, got=have)
                if isinstance(want, str) and isinstance(have, str):
                    lines = list(zip(want.splitlines() + [""], have.splitlines() + [""]))
                    line = next(n for n, (a, b) in enumerate(lines, 1) if a != b)
                    diff.update(line=line, expected_line=lines[line - 1][0], got_line=lines[line - 1][1])
                return diff
    return None


# ---------------------------------------------------------------------------------------------
# Comparison within a tolerance, for the cells that declare one

@dataclass(frozen=True)
class Tolerance:
    rel: float
    abs: float
    reason: str


def cell_tolerance(cell: Mapping[str, Any]) -> Tolerance | None:
    """The cell's ``numeric_tolerance`` metadata, checked, or None for an exactly compared cell."""
    spec = cell.get("metadata", {}).get("numeric_tolerance")
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or not str(spec.get("reason", "")).strip():
        raise ValueError(f"numeric_tolerance needs a 'reason' and 'rel' (and optionally 'abs'): {spec!r}")
    rel, abs_ = float(spec.get("rel", 0.0)), float(spec.get("abs", 0.0))
    if not (0 <= rel < 1 and abs_ >= 0 and rel + abs_ > 0):
        raise ValueError(f"numeric_tolerance: 0 <= rel < 1, abs >= 0, and one of them > 0: {spec!r}")
    return Tolerance(rel, abs_, str(spec["reason"]))


def _skeleton(text: str, found: list[Number]) -> str:
    """The text with each number replaced by a placeholder and runs of spaces squeezed."""
    pieces, last = [], 0
    for number in found:
        pieces += [text[last:number.start], "\0"]
        last = number.end
    pieces.append(text[last:])
    return re.sub(r" +", " ", "".join(pieces))


def numbers_close(expected: str, got: str, tolerance: Tolerance) -> bool:
    """Whether two texts are the same but for numbers within ``tolerance`` of each other."""
    a, b = numbers(expected), numbers(got)
    if len(a) != len(b) or _skeleton(expected, a) != _skeleton(got, b):
        return False
    for x, y in zip(a, b):
        x, y = x.value, y.value
        if not math.isclose(x, y, rel_tol=tolerance.rel, abs_tol=tolerance.abs):
            return False
    return True


def snap_within_tolerance(test: list, ref: list, tolerance: Tolerance, sanitize: Callable[[Any], Any]) -> list:
    """A copy of the coalesced outputs ``test`` in which every text value that matches its stored
    counterpart within ``tolerance`` is replaced by the stored text; an exact comparison of the
    result with ``ref`` then implements the tolerance, and a value outside it still shows up as
    the difference it is."""
    test = copy.deepcopy(test)
    stored = {}
    counts: dict[str, int] = {}
    for key, i, data_key in _fields(ref):
        stored[key, counts.setdefault(key, 0)] = _get(ref, i, key, data_key)
        counts[key] += 1
    counts = {}
    for key, i, data_key in _fields(test):
        n = counts[key] = counts.get(key, -1) + 1
        want, have = stored.get((key, n)), _get(test, i, key, data_key)
        if isinstance(want, str) and isinstance(have, str) and want != have \
                and numbers_close(sanitize(want), sanitize(have), tolerance):
            if data_key is not None:
                test[i]["data"][data_key] = want
            elif test[i].get("output_type") == "stream":
                test[i]["text"] = want
            else:
                test[i][key] = want
    return test


def install_nbval_tolerance() -> None:
    """Make nbval compare the cells that carry ``numeric_tolerance`` within it; idempotent.

    nbval has no tolerance option, so its ``IPyNbCell.compare_outputs`` is wrapped: for such a cell
    the new outputs are first snapped onto the stored ones where they agree within the tolerance
    (``snap_within_tolerance``), then nbval's own exact comparison runs and reports any difference
    left. Cells without the metadata go straight to nbval's comparison.
    """
    from nbval.plugin import IPyNbCell

    exact = IPyNbCell.compare_outputs
    if getattr(exact, "numeric_tolerance_hook", False):
        return

    def compare_outputs(self, test, ref, skip_compare=None):
        tolerance = cell_tolerance(self.cell)
        if tolerance is None:
            return exact(self, test, ref, skip_compare)
        if exact(self, snap_within_tolerance(test, ref, tolerance, self.sanitize), ref, skip_compare):
            return True
        self.comparison_traceback.append(f"numbers compared within rel {tolerance.rel:g}, abs {tolerance.abs:g} "
                                         f"(cell metadata numeric_tolerance: {tolerance.reason})")
        return False

    compare_outputs.numeric_tolerance_hook = True
    IPyNbCell.compare_outputs = compare_outputs
