"""The query string, parsed into the query tree (shoal.v1.QueryNode). The grammar is in README.md ("Queries").

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := unary ("AND" unary)*
    unary    := "NOT" unary | "(" or_expr ")" | clause
    clause   := "near:" (vector | string) ["@" number | "@top:" integer]
              | "match:" string                       full text on the collection's text field
              | FIELD ":" "*"                          exists
              | FIELD ":" "[" value ("," value)* "]"   in
              | FIELD ":" value                        eq (tags: contains; text: full-text match)
              | FIELD ("<" | "<=" | ">" | ">=") value  range
    value    := "quoted string" | bare-word

Bare words run to the next space or one of ( ) [ ] , and may hold ':' (tags like role::program) or
'-' (dates). Values stay text here; binding to the schema turns them into numbers, dates or booleans.
"""

from __future__ import annotations

import json
import re

from coordinator.settings import MAX_QUERY_DEPTH
from protos import query_pb2
from protos import query_tree as q
from protos.errors import InvalidArgument

KEYWORDS = ("AND", "OR", "NOT")
DEFAULT_TEXT_FIELD = ""  # `match:` names no field; binding picks the collection's text field
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_STOP = set(" \t\r\n()[],")
_OPS = ("<=", ">=", "<", ">")


class QuerySyntaxError(InvalidArgument):
    """A query string that does not parse; the message names the position."""


class _Parser:
    def __init__(self, text: str, max_depth: int) -> None:
        self.text = text
        self.pos = 0
        self.max_depth = max_depth
        self.depth = 0  # NOT and '(' levels open now; bounded so deep input is refused before it recurses

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise QuerySyntaxError(
                f"query nests deeper than {self.max_depth} levels of NOT and parentheses at position {self.pos}; "
                f"the limit is the coordinator setting max_query_depth\n  {self.text[:200]}")

    # ---- scanning ------------------------------------------------------------------------
    def fail(self, expected: str, at: int | None = None) -> QuerySyntaxError:
        at = self.pos if at is None else at
        found = repr(self.text[at:at + 12]) if at < len(self.text) else "the end"
        return QuerySyntaxError(f"query syntax error at position {at}: expected {expected}, found {found}\n"
                                f"  {self.text}\n  {' ' * at}^")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def keyword(self, word: str) -> bool:
        self.skip_space()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (end == len(self.text) or self.text[end] in _STOP):
            self.pos = end
            return True
        return False

    def expect(self, token: str, what: str) -> None:
        if not self.peek(token):
            raise self.fail(what)
        self.pos += len(token)

    def string(self) -> str:
        start = self.pos
        m = re.compile(r'"(?:[^"\\]|\\.)*"').match(self.text, self.pos)
        if not m:
            raise self.fail("a closing '\"'", start)
        self.pos = m.end()
        try:
            return json.loads(m.group(0))
        except json.JSONDecodeError:
            raise self.fail("a valid quoted string", start) from None

    def value(self) -> str:
        self.skip_space()
        if self.peek('"'):
            return self.string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _STOP and self.text[self.pos] != '"':
            self.pos += 1
        if self.pos == start:
            raise self.fail("a value")
        return self.text[start:self.pos]

    def number(self, what: str) -> float:
        self.skip_space()
        m = _NUMBER.match(self.text, self.pos)
        if not m:
            raise self.fail(what)
        self.pos = m.end()
        return float(m.group(0))

    # ---- grammar -------------------------------------------------------------------------
    def parse(self) -> query_pb2.QueryNode:
        self.skip_space()
        if self.pos == len(self.text):
            raise QuerySyntaxError("the query is empty; give at least one clause, e.g. section:games")
        node = self.or_expr()
        self.skip_space()
        if self.pos != len(self.text):
            raise self.fail("AND, OR or the end of the query")
        return node

    def or_expr(self) -> query_pb2.QueryNode:
        nodes = [self.and_expr()]
        while self.keyword("OR"):
            nodes.append(self.and_expr())
        return nodes[0] if len(nodes) == 1 else q.or_(*nodes)

    def and_expr(self) -> query_pb2.QueryNode:
        nodes = [self.unary()]
        while self.keyword("AND"):
            nodes.append(self.unary())
        return nodes[0] if len(nodes) == 1 else q.and_(*nodes)

    def unary(self) -> query_pb2.QueryNode:
        if self.keyword("NOT"):
            self.enter()
            node = q.not_(self.unary())
            self.depth -= 1
            return node
        if self.peek("("):
            self.pos += 1
            self.enter()
            node = self.or_expr()
            self.expect(")", "')'")
            self.depth -= 1
            return node
        return self.clause()

    def clause(self) -> query_pb2.QueryNode:
        self.skip_space()
        m = _FIELD.match(self.text, self.pos)
        if not m or m.group(0) in KEYWORDS:
            raise self.fail("a clause (field:value, field<value, near:[...], match:\"...\", NOT or '(')")
        name = m.group(0)
        self.pos = m.end()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                bound = self.value()
                key = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
                return q.range_(name, **{key: bound})
        if not self.text.startswith(":", self.pos):
            raise self.fail("':' or a comparison (<, <=, >, >=) after the field name", self.pos)
        self.pos += 1
        if name == "near":
            return self.near()
        if name == "match":
            self.skip_space()
            if not self.peek('"'):
                raise self.fail('a quoted text after match:, e.g. match:"http client"')
            return q.match(DEFAULT_TEXT_FIELD, self.string())
        if self.text.startswith("*", self.pos):
            self.pos += 1
            return q.exists(name)
        if self.peek("["):
            self.pos += 1
            values = [self.value()]
            while self.peek(","):
                self.pos += 1
                values.append(self.value())
            self.expect("]", "',' or ']' closing the list")
            return q.in_(name, values)
        if self.pos >= len(self.text) or self.text[self.pos].isspace():
            raise self.fail(f"a value after {name}:", self.pos)
        return q.eq(name, self.value())

    def near(self) -> query_pb2.QueryNode:
        self.skip_space()
        if self.peek('"'):
            vector, text = None, self.string()
        else:
            self.expect("[", "a vector [x, y, ...] or a quoted text after near:")
            vector = [self.number("a number in the vector")]
            while self.peek(","):
                self.pos += 1
                vector.append(self.number("a number in the vector"))
            self.expect("]", "',' or ']' closing the vector")
            text = ""
        if not self.text.startswith("@", self.pos):
            return q.near(vector, text=text)
        self.pos += 1
        if self.text.startswith("top:", self.pos):
            self.pos += 4
            at = self.pos
            top = self.number("the number of neighbours after @top:")
            if top < 1 or not top.is_integer():
                raise self.fail("a whole number of neighbours of at least 1", at)
            return q.near(vector, text=text, top=int(top))
        return q.near(vector, text=text, min_similarity=self.number("a similarity after '@' (or @top:N)"))


def parse_query(text: str, max_depth: int = MAX_QUERY_DEPTH) -> query_pb2.QueryNode:
    """Parse a query string into a query tree; QuerySyntaxError (INVALID_ARGUMENT) names the position.
    NOT and parentheses may nest at most max_depth levels."""
    return _Parser(text, max_depth).parse()
