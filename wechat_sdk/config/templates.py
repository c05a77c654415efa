"""Message templates of the config (``pairingMessage``): checked when the config is loaded,
filled without ``str.format``'s attribute and index access.

A template is ``str.format`` text: ``{field}`` or ``{field:spec}`` for one of the named
fields, ``{{`` and ``}}`` for literal braces. A field may be padded or cut
(``{code:>10}``, ``{senderId:.20}``); nothing else is allowed: no positional fields, no
``.attribute`` or ``[index]``, no ``!r`` conversions, no number formats. A template with
the pairing fields must show the code whole (``{code}``, or ``{command}``, which holds
it, without a precision): the stranger has nothing else to pair with.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

__all__ = ["PAIRING_FIELDS", "fill_template", "template_problem"]

#: the fields of ``pairingMessage``, in the order they are named in messages
PAIRING_FIELDS = ("code", "senderId", "botName", "command")

#: the fields that show the pairing code: a template must have one of them, whole
_CODE_FIELDS = ("code", "command")

# [[fill]align][width][.precision][s]: text padding and cutting only
_SPEC = re.compile(r"(?:.?[<>^])?(?P<width>\d{1,4})?(?P<precision>\.\d{1,6})?s?", re.DOTALL)
_MAX_WIDTH = 200


def template_problem(template: str, fields: tuple[str, ...] = PAIRING_FIELDS) -> str | None:
    """Why ``template`` cannot be filled with ``fields``, or None when it can."""
    allowed = ", ".join("{" + name + "}" for name in fields)
    hint = f"the fields are {allowed} (write {{{{ and }}}} for a literal brace)"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"invalid template: {exc}; {hint}"
    shows_code = False
    cut: str | None = None  # a code field with a precision: it may cut the code
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "")
        shown += (f":{spec}" if spec else "") + "}"
        if name not in fields:
            if name == "" or name.isdigit():
                what = "a positional field"
            elif re.search(r"[.\[]", name):
                what = "attribute or index access"
            else:
                what = "an unknown field"
            return f"invalid template: {shown} is {what}; {hint}"
        if conversion is not None:
            return f"invalid template: {shown} has a conversion (!{conversion}); {hint}"
        if spec and not _harmless_spec(spec):
            return (
                f"invalid template: {shown} has a format spec that is not text padding "
                f"(allowed: alignment, width up to {_MAX_WIDTH}, .precision); {hint}"
            )
        if name in _CODE_FIELDS:
            if spec and _cuts(spec):
                cut = cut or shown
            else:
                shows_code = True
    if not shows_code and any(name in fields for name in _CODE_FIELDS):
        why = f" ({cut} may cut it: no precision)" if cut else ""
        return (
            "invalid template: it has no {code}, so a stranger gets no code to pair with: "
            f"add {{code}} (or {{command}}, which holds it), whole{why}; {hint}"
        )
    return None


def _harmless_spec(spec: str) -> bool:
    m = _SPEC.fullmatch(spec)
    return m is not None and int(m.group("width") or 0) <= _MAX_WIDTH


def _cuts(spec: str) -> bool:
    """Whether a (harmless) format spec has a precision, which may cut the text."""
    m = _SPEC.fullmatch(spec)
    return m is not None and m.group("precision") is not None


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """``template`` with its fields filled from ``values``.

    Raises ValueError for a template `template_problem` refuses (only a config built
    without validation has one): the caller falls back to its default text.
    """
    problem = template_problem(template, tuple(values))
    if problem is not None:
        raise ValueError(problem)
    out: list[str] = []
    for literal, name, spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(format(values[name], spec or ""))
    return "".join(out)
