"""The metadata filter language of ``search --where``: a tokenizer, a parser and a row mask.

Users narrow a search to rows whose metadata match an expression such as::

    label == 'sci.space'
    year >= 2010 and (lang in ['en', 'de'] or not score < 0.5)
    `page count` != 3

The language is deliberately tiny and is parsed here by a hand-written tokenizer and a
recursive-descent parser into a small tree of comparisons; nothing is ever handed to
``eval``, ``pandas.query`` or ``DataFrame.eval``, so an expression can only compare
columns with literals. Grammar (lowest precedence first)::

    expression := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expression ")" | comparison
    comparison := COLUMN ("==" | "=" | "!=" | "<" | "<=" | ">" | ">=") VALUE
                | COLUMN ["not"] "in" "[" [VALUE ("," VALUE)*] "]"
    COLUMN     := identifier | `back-quoted name`
    VALUE      := 'string' | "string" | number | true | false

Keywords are case-insensitive. Types are checked against the column: text columns take
quoted strings, numeric columns numbers, boolean columns ``true``/``false``, date-time
columns quoted ISO dates (``date >= '2020-01-31'``). Missing values (null, NaN) match
only ``!=`` and ``not in``, as in pandas.

Integer columns (int64, uint64 — e.g. IDs above 2**53) are compared as integers, never
through float64, so ``id == 9007199254740993`` matches that row and no neighbour. Number
literals are bounded: an integer outside the range of int64/uint64 (a 400-digit literal)
or a float that overflows (``1e400``) is one clear error.

The mask is computed with numpy over either a pandas DataFrame or a pyarrow Table, so the
command-line search path never has to import pandas.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

from embedspace.errors import InputError

__all__ = ["Filter", "parse_filter", "filter_mask"]

_MAX_LENGTH = 10_000
_MAX_DEPTH = 64
_INT_RANGE = (-(2 ** 63), 2 ** 64 - 1)  # what an int64 or uint64 column can hold
_MAX_DIGITS = 40  # a longer numeral is refused before Python converts it
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted_name>`[^`]*`)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>|=)
  | (?P<punct>[()\[\],])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


# --- tokens ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, column, string, op, punct, keyword, end
    value: object
    position: int  # 1-based character position in the expression
    source: str

    def shown(self) -> str:
        return "the end of the expression" if self.kind == "end" else repr(self.source)


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            hint = " (strings need matching quotes)" if char in "'\"`" else ""
            raise _error(text, position + 1, f"unexpected character {char!r}{hint}")
        kind, raw = match.lastgroup, match.group()
        start = position + 1
        position = match.end()
        if kind == "space":
            continue
        if kind == "number":
            tokens.append(_Token("number", _number(text, start, raw), start, raw))
        elif kind == "name":
            lowered = raw.lower()
            if lowered in _KEYWORDS:
                tokens.append(_Token("keyword", lowered, start, raw))
            else:
                tokens.append(_Token("column", raw, start, raw))
        elif kind == "quoted_name":
            if len(raw) == 2:
                raise _error(text, start, "empty back-quoted column name")
            tokens.append(_Token("column", raw[1:-1], start, raw))
        elif kind == "string":
            tokens.append(_Token("string", _unescape(raw[1:-1]), start, raw))
        elif kind == "op":
            tokens.append(_Token("op", "==" if raw == "=" else raw, start, raw))
        else:
            tokens.append(_Token("punct", raw, start, raw))
    tokens.append(_Token("end", None, len(text) + 1, ""))
    return tokens


def _number(text: str, start: int, raw: str):
    """The value of a number literal; one clear error for a literal no column can hold."""
    digits = sum(c.isdigit() for c in raw.split("e")[0].split("E")[0])
    if any(c in raw for c in ".eE"):
        value = float(raw) if digits <= 400 else float("inf")
        if not np.isfinite(value):
            raise _error(text, start, f"the number {raw[:20] + '…' if len(raw) > 20 else raw} is too large "
                         "(a float must stay below about 1.8e308)")
        return value
    value = int(raw) if digits <= _MAX_DIGITS else None
    if value is None or not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise _error(text, start, f"the integer {raw[:20] + '…' if len(raw) > 20 else raw} is out of range "
                     "(integer columns hold -2**63 to 2**64-1)")
    return value


def _error(text: str, position: int, problem: str) -> InputError:
    return InputError(f"malformed filter {text!r} at character {position}: {problem}")


# --- syntax tree -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Compare:
    column: str
    op: str  # one of _COMPARISONS, "in", "not in"
    value: object  # a literal, or a tuple of literals for in / not in
    position: int


@dataclass(frozen=True)
class _Not:
    operand: object


@dataclass(frozen=True)
class _Bool:
    op: str  # "and" / "or"
    operands: tuple


class _Parser:
    """Recursive-descent parser over the token list (one method per grammar rule)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def fail(self, token: _Token, expected: str) -> InputError:
        return _error(self.text, token.position, f"expected {expected}, found {token.shown()}")

    def is_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "keyword" and token.value == word

    def parse(self):
        if self.peek().kind == "end":
            raise InputError("empty filter: give an expression such as \"label == 'sci.space'\"")
        node = self.expression()
        token = self.peek()
        if token.kind != "end":
            raise self.fail(token, "'and', 'or' or the end of the expression")
        return node

    def expression(self):
        operands = [self.and_expr()]
        while self.is_keyword("or"):
            self.take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else _Bool("or", tuple(operands))

    def and_expr(self):
        operands = [self.not_expr()]
        while self.is_keyword("and"):
            self.take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else _Bool("and", tuple(operands))

    def not_expr(self):
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _error(self.text, self.peek().position, f"nested more than {_MAX_DEPTH} levels deep")
        try:
            token = self.peek()
            if self.is_keyword("not"):
                self.take()
                return _Not(self.not_expr())
            if token.kind == "punct" and token.value == "(":
                self.take()
                node = self.expression()
                closing = self.take()
                if closing.kind != "punct" or closing.value != ")":
                    raise self.fail(closing, "')'")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self):
        column = self.take()
        if column.kind != "column":
            what = "a column name" if column.kind != "end" else "a column name (the expression is incomplete)"
            raise self.fail(column, what)
        token = self.take()
        if token.kind == "op":
            return _Compare(column.value, token.value, self.literal(token), column.position)
        negated = False
        if token.kind == "keyword" and token.value == "not":
            negated = True
            token = self.take()
            if not (token.kind == "keyword" and token.value == "in"):
                raise self.fail(token, f"'in' after '{column.source} not'")
        elif not (token.kind == "keyword" and token.value == "in"):
            raise self.fail(token, f"a comparison (==, !=, <, <=, >, >=, in) after column {column.source!r}")
        opening = self.take()
        if opening.kind != "punct" or opening.value != "[":
            raise self.fail(opening, "'[' to start the list of values")
        values = []
        if self.peek().kind == "punct" and self.peek().value == "]":
            self.take()
        else:
            while True:
                values.append(self.literal(opening))
                separator = self.take()
                if separator.kind == "punct" and separator.value == "]":
                    break
                if separator.kind != "punct" or separator.value != ",":
                    raise self.fail(separator, "',' or ']' in the list of values")
        return _Compare(column.value, "not in" if negated else "in", tuple(values), column.position)

    def literal(self, after: _Token):
        token = self.take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "keyword" and token.value in ("true", "false"):
            return token.value == "true"
        if token.kind == "column":
            raise self.fail(token, f"a value after {after.source!r} (quote text values: '{token.source}')")
        raise self.fail(token, f"a value after {after.source!r} (a quoted string, a number, true or false)")


# --- columns as numpy arrays -------------------------------------------------------------
class _Columns:
    """Column access over a pandas DataFrame or a pyarrow Table, converted once each."""

    def __init__(self, table):
        self.table = table
        self.is_arrow = hasattr(table, "schema") and hasattr(table, "column_names")
        self.names = list(table.column_names) if self.is_arrow else [str(c) for c in table.columns]
        self.n = table.num_rows if self.is_arrow else len(table)
        self._cache: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}

    def get(self, name: str) -> tuple[str, np.ndarray, np.ndarray]:
        """Return (kind, values, present): kind is 'number', 'bool', 'datetime' or 'text'.

        Integer columns keep their int64 / uint64 values (missing entries hold 0 and are
        False in ``present``), so comparisons with integer literals are exact.
        """
        if name not in self._cache:
            kind, values, *present = self._arrow(name) if self.is_arrow else self._pandas(name)
            self._cache[name] = (kind, values, present[0] if present else _present(values, kind))
        return self._cache[name]

    def _arrow(self, name):
        import pyarrow as pa

        column = self.table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        kind = column.type
        if pa.types.is_integer(kind):
            present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            wide = pa.uint64() if pa.types.is_unsigned_integer(kind) else pa.int64()
            values = column.cast(wide).fill_null(0).to_numpy(zero_copy_only=False)
            return "number", np.asarray(values), present
        if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return "number", np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        if pa.types.is_boolean(kind):
            return "bool", np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return "datetime", column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
        return "text", np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)

    def _pandas(self, name):
        series = self.table[name]
        kind = getattr(series.dtype, "kind", "O")
        if kind in "iu":
            present = series.notna().to_numpy(dtype=bool)
            wide = np.uint64 if kind == "u" else np.int64
            return "number", series.to_numpy(dtype=wide, na_value=0), present
        if kind == "f":
            return "number", series.to_numpy(dtype=np.float64, na_value=np.nan)
        if kind == "b":
            return "bool", series.to_numpy(dtype=object)
        if kind == "M":
            return "datetime", series.to_numpy(dtype="datetime64[us]")
        return "text", series.to_numpy(dtype=object)


def _present(values: np.ndarray, kind: str) -> np.ndarray:
    """Boolean mask of the non-missing entries."""
    if kind == "number":
        return ~np.isnan(values) if values.dtype.kind == "f" else np.ones(len(values), dtype=bool)
    if kind == "datetime":
        return ~np.isnat(values)
    wanted = (bool, np.bool_) if kind == "bool" else str
    return np.fromiter((isinstance(v, wanted) for v in values), dtype=bool, count=len(values))


_KIND_WORDS = {
    "number": ("numbers", "a number, e.g. {col} >= 3"),
    "bool": ("true/false values", "true or false, e.g. {col} == true"),
    "datetime": ("dates", "a quoted date, e.g. {col} >= '2020-01-31'"),
    "text": ("text", "a quoted string, e.g. {col} == '{example}'"),
}


def _coerce(literal, kind: str, column: str, values, text: str):
    """Turn a literal into the column's type or raise an InputError that shows the fix."""
    ok = (
        (kind == "number" and isinstance(literal, (int, float)) and not isinstance(literal, bool))
        or (kind == "bool" and isinstance(literal, bool))
        or (kind in ("text", "datetime") and isinstance(literal, str))
    )
    if not ok:
        example = next((v for v in values[:100] if isinstance(v, str)), "value") if kind == "text" else ""
        holds, fix = _KIND_WORDS[kind]
        shown = "true" if literal is True else "false" if literal is False else repr(literal)
        raise InputError(
            f"filter {text!r}: column '{column}' holds {holds}, so {shown} cannot be compared with it; "
            f"use {fix.format(col=column, example=example)}"
        )
    if kind == "datetime":
        try:
            return np.datetime64(literal, "us")
        except ValueError:
            raise InputError(
                f"filter {text!r}: {literal!r} is not a date for column '{column}' (use ISO form, e.g. '2020-01-31' "
                "or '2020-01-31T12:00')"
            ) from None
    return literal


@dataclass(frozen=True)
class Filter:
    """A parsed filter expression; :meth:`mask` evaluates it on a table.

    Parameters
    ----------
    text : str
        The expression, in the language described in the module docstring.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"text": ["a", "b", "c"], "year": [2001, 2010, 2020]})
    >>> Filter.parse("year >= 2010 and text != 'c'").mask(table).tolist()
    [False, True, False]
    """

    text: str
    tree: object

    @classmethod
    def parse(cls, text: str) -> "Filter":
        """Parse ``text``; raise :class:`~embedspace.errors.InputError` if it is malformed."""
        if not isinstance(text, str):
            raise InputError(f"a filter must be a string, got {type(text).__name__}")
        if len(text) > _MAX_LENGTH:
            raise InputError(f"filter is {len(text)} characters long; the limit is {_MAX_LENGTH}")
        return cls(text, _Parser(text).parse())

    @property
    def columns(self) -> list[str]:
        """Column names the expression reads, in order of first use."""
        found: dict[str, None] = {}

        def walk(node):
            if isinstance(node, _Compare):
                found.setdefault(node.column)
            elif isinstance(node, _Not):
                walk(node.operand)
            else:
                for child in node.operands:
                    walk(child)

        walk(self.tree)
        return list(found)

    def mask(self, table) -> np.ndarray:
        """Rows of ``table`` that match.

        Parameters
        ----------
        table : pandas.DataFrame or pyarrow.Table with n rows

        Returns
        -------
        ndarray of shape (n,), bool

        Raises
        ------
        InputError
            An unknown column, or a literal of the wrong type for its column.
        """
        columns = _Columns(table)
        for name in self.columns:
            if name not in columns.names:
                close = difflib.get_close_matches(name, columns.names, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise InputError(
                    f"filter {self.text!r}: unknown column '{name}' (columns: {', '.join(columns.names)}){hint}"
                )
        return self._evaluate(self.tree, columns)

    def explain_no_match(self, table) -> str:
        """Why no row of ``table`` matches: the condition that emptied the result, with the nearest values.

        Rule: each comparison is evaluated on its own; the first that matches no row is
        named, and for a text column compared with ``==`` or ``in`` the column's closest
        values (difflib) are offered. When every comparison matches some rows, the message
        says that they match no row together.

        Parameters
        ----------
        table : pandas.DataFrame or pyarrow.Table

        Returns
        -------
        str
            One sentence, e.g. ``"no row has label == 'sports'; did you mean 'sport'?"``.
        """
        columns = _Columns(table)
        for leaf in _leaves(self.tree):
            if self._evaluate(leaf, columns).any():
                continue
            shown = _shown(leaf)
            kind, values, present = columns.get(leaf.column)
            wanted = leaf.value if leaf.op in ("in", "not in") else (leaf.value,)
            if kind == "text" and leaf.op in ("==", "in"):
                distinct = sorted({str(v) for v in values[present]})
                close = [c for w in wanted for c in difflib.get_close_matches(str(w), distinct, n=2, cutoff=0.6)]
                if close:
                    return f"no row has {shown}; did you mean {' or '.join(repr(c) for c in dict.fromkeys(close))}?"
                some = ", ".join(repr(v) for v in distinct[:5]) + (", ..." if len(distinct) > 5 else "")
                return f"no row has {shown} (values of '{leaf.column}' include {some})"
            return f"no row has {shown}"
        return f"each condition of {self.text!r} matches some rows, but no row matches the whole filter"

    def _evaluate(self, node, columns: _Columns) -> np.ndarray:
        if isinstance(node, _Not):
            return ~self._evaluate(node.operand, columns)
        if isinstance(node, _Bool):
            parts = [self._evaluate(child, columns) for child in node.operands]
            return np.logical_and.reduce(parts) if node.op == "and" else np.logical_or.reduce(parts)
        kind, values, present = columns.get(node.column)
        if node.op in ("in", "not in"):
            wanted = {_as_key(_coerce(v, kind, node.column, values, self.text)) for v in node.value}
            inside = np.zeros(columns.n, dtype=bool)
            rows = np.flatnonzero(present)
            inside[rows] = np.fromiter((_as_key(v) in wanted for v in values[rows]), dtype=bool, count=len(rows))
            return inside if node.op == "in" else ~inside
        literal = _coerce(node.value, kind, node.column, values, self.text)
        if kind == "bool" and node.op not in ("==", "!="):
            raise InputError(f"filter {self.text!r}: column '{node.column}' holds true/false; compare it with == or !=")
        result = np.zeros(columns.n, dtype=bool)
        rows = np.flatnonzero(present)
        result[rows] = _compare(values[rows], node.op, literal)
        if node.op == "!=":
            result[~present] = True
        return result


def _leaves(node) -> list:
    """The comparisons of an expression tree, left to right."""
    if isinstance(node, _Compare):
        return [node]
    if isinstance(node, _Not):
        return _leaves(node.operand)
    return [leaf for child in node.operands for leaf in _leaves(child)]


def _shown(leaf: _Compare) -> str:
    if leaf.op in ("in", "not in"):
        return f"{leaf.column} {leaf.op} [{', '.join(repr(v) for v in leaf.value)}]"
    return f"{leaf.column} {leaf.op} {leaf.value!r}"


def _as_key(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[us]").astype(np.int64).item()
    return value


def _compare(values: np.ndarray, op: str, literal) -> np.ndarray:
    if op == "==":
        out = values == literal
    elif op == "!=":
        out = values != literal
    elif op == "<":
        out = values < literal
    elif op == "<=":
        out = values <= literal
    elif op == ">":
        out = values > literal
    else:
        out = values >= literal
    return np.asarray(out, dtype=bool)


def parse_filter(text: str) -> Filter:
    """Parse a filter expression (see the module docstring for the language).

    Parameters
    ----------
    text : str

    Returns
    -------
    Filter

    Raises
    ------
    InputError
        If the expression is empty or malformed; the message gives the character position.
    """
    return Filter.parse(text)


def filter_mask(text: str, table) -> np.ndarray:
    """Rows of ``table`` matching the filter ``text``.

    Parameters
    ----------
    text : str
        A filter expression.
    table : pandas.DataFrame or pyarrow.Table with n rows

    Returns
    -------
    ndarray of shape (n,), bool
    """
    return Filter.parse(text).mask(table)
