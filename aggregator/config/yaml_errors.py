"""Where a YAML syntax error starts, for a one-line config problem. No business logic."""

from __future__ import annotations

import contextlib

import yaml


def describe_yaml_error(text: str, error: yaml.YAMLError) -> str:
    """``LINE: not valid YAML: ...: 'the line'``, at the line where the problem starts.

    PyYAML marks where it gave up, which can be far below the cause: an unclosed quote
    swallows the lines after it up to the next quote character, and parsing fails there.
    So the line is the scanner's context (the start of the token it could not finish: an
    unclosed quote, a key without ':') or an unclosed flow collection's bracket; else,
    when the last token read before the failure is a quoted value spanning lines, that
    value's first line; else where PyYAML gave up."""
    mark = getattr(error, "problem_mark", None)
    if not isinstance(error, yaml.MarkedYAMLError) or mark is None:
        return f"0: not valid YAML: {error}"
    context, start = error.context or "", error.context_mark
    problem = str(error.problem)
    if start is not None and (
        isinstance(error, yaml.scanner.ScannerError) or context.startswith("while parsing a flow")
    ):
        if context == "while scanning a quoted scalar":
            problem = f"the quote opened on this line is not closed ({problem})"
        elif start.line != mark.line:
            problem += f" ({context.removeprefix('while ')} from here; at line {mark.line + 1})"
    else:
        start, last = mark, None
        with contextlib.suppress(yaml.YAMLError):
            for token in yaml.scan(text, Loader=yaml.SafeLoader):
                if token.start_mark.index >= mark.index:
                    break
                last = token
        if (
            isinstance(last, yaml.ScalarToken)
            and last.style in ('"', "'")
            and last.end_mark.line > last.start_mark.line
        ):
            start = last.start_mark
            problem = (
                f"the quote opened on this line runs on to line {last.end_mark.line + 1}: "
                f"is its closing quote missing? (at line {mark.line + 1}: {problem})"
            )
    lines = text.splitlines()
    quoted = f": {lines[start.line].strip()!r}" if start.line < len(lines) else ""
    return f"{start.line + 1}: not valid YAML: {problem}{quoted}"
