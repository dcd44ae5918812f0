"""How docker applies .dockerignore to a build context, ported from Go.

Sources (read for this port):
  github.com/moby/patternmatcher v0.6.0 (vendored by docker/cli v28):
    ignorefile/ignorefile.go  ReadAll
    patternmatcher.go         New, MatchesUsingParentResults, Pattern.compile
  Go regexp/syntax parse.go   Parse with syntax.Perl flags, and its limits
  github.com/moby/go-archive archive.go  Tarballer.Do (TarWithOptions): the
    walk that builds the context tar of the classic builder

Paths and patterns are `str` decoded from bytes as UTF-8 with surrogateescape
(what os.fsdecode gives on Linux), so each undecodable byte is one character,
as Go treats it as one rune. Paths are relative to the context root and
'/'-separated, as filepath.Rel gives them ("a/b", never "./a" or "a/").

Pattern.compile turns a wildcard pattern into a Go regexp in which much of the
user's text stays live RE2 syntax: '[...]' classes, '\\' escapes, '|', '{n,m}',
'^'. Here that regexp is parsed with RE2's rules into a Thompson NFA, searched
through a DFA built lazily from sets of NFA states (its cache bounded), so a
match takes time linear in the path's length for every pattern, where a
backtracking engine can take exponential time. Exact, prefix and suffix
patterns compare strings, as Go does; for the others the text that every match
needs at the start, at the end and anywhere is checked first. Patterns are
indexed by that text, so that a path is tried against the few patterns that can
match it (and the unindexed ones), in their order.

A pattern whose regexp Go cannot compile fails when it is first evaluated, as
in Go, where Matches then returns filepath.ErrBadPattern: DockerignoreError
"syntax error in pattern: '...'" with RE2's reason after it. Where docker logs
such an error met mid-walk and silently sends the context tar cut short, this
raises it. New checks the whole pattern, as filepath.Match does since
golang/go#28614 (Go 1.19 still checked lazily).

Unicode general categories (\\pL, \\p{Lu}, \\PN, \\p{^Z}, as Go has them: C is
Cc, Cf, Co and Cs) and \\p{Any} are matched with unicodedata, whose Unicode
version is Python's (13.0 in 3.10, 15.1 in 3.13) where docker 28's Go 1.24 has
15.0. Not ported: Unicode scripts such as \\p{Greek}, which docker matches;
such a pattern fails when evaluated, "unsupported in pattern: '...'". Go's
limits are kept: {n,m} up to 1000 copies in all, a parse tree 1000 deep, and
3,355,443 instructions ("expression too large"). The size is counted here on
the whole tree; Go counts less where its parser factors alternations ("ab|ac"
into "a[bc]") and for runs of literal text (the size it caches for a literal is
not updated as characters join it), so a pattern that near the limit may be
refused here and accepted by Go. Go's limit on runes in classes cannot be
reached by a 64 KiB line.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import pairwise

# One bool per pattern: whether the directory matched it (MatchInfo in Go).
# The empty tuple is Go's zero MatchInfo: "nothing known about the parent".
MatchInfo = tuple[bool, ...]


class DockerignoreError(ValueError):
    """A .dockerignore docker would refuse, in one line like docker's."""


# --- Go library functions --------------------------------------------------

# unicode.IsSpace, which strings.TrimSpace uses (str.strip() would also
# strip U+001C..U+001F, which Go keeps).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_GO_SPACE += "\u2028\u2029\u202f\u205f\u3000"

_BUFIO_MAX_TOKEN = 64 * 1024  # bufio.MaxScanTokenSize


def _trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


def _clean(path: str) -> str:
    """filepath.Clean on Unix (posixpath.normpath keeps a leading '//')."""
    wrapped = f"/{path}/"  # most paths are clean already: no empty, '.' or '..' element
    if path and "//" not in wrapped and "/./" not in wrapped and "/../" not in wrapped:
        return path
    rooted = path[:1] == "/"
    out: list[str] = []
    for elem in path.split("/"):
        if elem in ("", "."):
            continue
        if elem == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(elem)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def _dir(path: str) -> str:
    """filepath.Dir: everything before the last '/', cleaned."""
    return _clean(path[: path.rfind("/") + 1])


def _is_surrogate(c: str) -> bool:
    return "\ud800" <= c <= "\udfff"


class _BadPattern(Exception):
    """filepath.ErrBadPattern."""


def _get_esc(pattern: str, i: int, end: int) -> int:
    """filepath.Match's getEsc on pattern[i:end], for its syntax check only:
    where the rest starts."""
    if i >= end or pattern[i] in "-]":
        raise _BadPattern
    if pattern[i] == "\\":
        i += 1
        if i >= end:
            raise _BadPattern
    if _is_surrogate(pattern[i]):  # an invalid UTF-8 byte
        raise _BadPattern
    i += 1
    if i >= end:
        raise _BadPattern
    return i


def _check_chunk(pattern: str, i: int, end: int) -> None:
    """filepath.Match's matchChunk on pattern[i:end], for its errors only."""
    while i < end:
        c = pattern[i]
        if c == "[":
            i += 1
            if i < end and pattern[i] == "^":
                i += 1
            nrange = 0
            while not (i < end and pattern[i] == "]" and nrange > 0):
                i = _get_esc(pattern, i, end)
                if pattern[i] == "-":
                    i = _get_esc(pattern, i + 1, end)
                nrange += 1
            i += 1
        elif c == "\\":
            if end - i < 2:
                raise _BadPattern
            i += 2
        else:
            i += 1


def _check_match_syntax(pattern: str) -> None:
    """Raises _BadPattern where filepath.Match(pattern, ".") returns an error.

    Since Go 1.16 Match checks the whole pattern however the match goes, so
    this only parses, as matchChunk does. Match first splits the pattern into
    chunks at each '*' outside '[...]' (scanChunk); the split cannot change
    an error, since such a '*' is outside the classes matchChunk parses too
    (and a plain character to it), so the whole pattern is one chunk here.
    Only '[' and '\\' can make an error.
    """
    _check_chunk(pattern, 0, len(pattern))


# --- Go regexp syntax: regexp/syntax.Parse with syntax.Perl flags ----------
#
# Pattern.compile makes a Go regexp in which the user's text survives as
# '[...]' classes (with RE2's [:alpha:], \d, \pL, ranges), '\x' escapes (\d,
# \b, \Q...\E, \x41, \101 are all live), '|', '{n,m}' and '^'. It is parsed
# here into a tree with RE2's rules, and Go's errors and limits.

_MAX_RUNE = 0x10FFFF
_MAX_REPEAT = 1000  # a {n,m} bound, and the product of nested ones
_MAX_SIZE = (128 << 20) // 40  # maxSize: 128 MiB of 40-byte instructions
_MAX_HEIGHT = 1000  # maxHeight: how deep the parse tree nests
_Ranges = list[tuple[int, int]]


def _r(*spans: str) -> _Ranges:
    return [(ord(s[0]), ord(s[-1])) for s in spans]


_PERL_GROUPS: dict[str, _Ranges] = {
    "d": _r("09"),
    "s": _r("\t\n", "\f\r", " "),
    "w": _r("09", "AZ", "__", "az"),
}
_PERL_NAMES = frozenset("dDsSwW")
_POSIX_GROUPS: dict[str, _Ranges] = {
    "alnum": _r("09", "AZ", "az"),
    "alpha": _r("AZ", "az"),
    "ascii": [(0, 0x7F)],
    "blank": _r("\t", " "),
    "cntrl": [(0, 0x1F), (0x7F, 0x7F)],
    "digit": _r("09"),
    "graph": _r("!~"),
    "lower": _r("az"),
    "print": _r(" ~"),
    "punct": _r("!/", ":@", "[`", "{~"),
    "space": _r("\t\r", " "),
    "upper": _r("AZ"),
    "word": _r("09", "AZ", "az", "__"),
    "xdigit": _r("09", "AF", "af"),
}
# unicode.Categories of Go: the two-letter ones, and each major class of them
# (so its C has no Cn: Go has no table of unassigned runes).
_SUBCATEGORIES = (
    "Cc Cf Co Cs Ll Lm Lo Lt Lu Mc Me Mn Nd Nl No Pc Pd Pe Pf Pi Po Ps Sc Sk Sm So Zl Zp Zs"
)
_CATEGORIES = {name: frozenset((name,)) for name in _SUBCATEGORIES.split()}
_CATEGORIES.update(
    {major: frozenset(n for n in _CATEGORIES if n[0] == major) for major in "CLMNPSZ"}
)
# unicode.Scripts of Go 1.21 to 1.24 (Unicode 15.0.0): valid in docker's
# regexps, which unicodedata cannot match.
_GO_SCRIPT_NAMES = """Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum
Bassa_Vah Batak Bengali Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid
Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian
Common Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari
Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic
Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Han
Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic
Inherited Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada
Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki Khudawadi
Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar
Malayalam Mandaic Manichaean Marchen Masaram_Gondi Medefaidrin Meetei_Mayek
Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro
Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu
Nyiakeng_Puachue_Hmong Ogham Ol_Chiki Old_Hungarian Old_Italic
Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian
Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau
Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada
Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese
Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil
Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Toto Ugaritic Vai
Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square"""
_GO_SCRIPTS = frozenset(_GO_SCRIPT_NAMES.split())


class _RegexpError(Exception):
    """A Go regexp syntax error; its argument is Go's ErrorCode text."""


class _Unsupported(Exception):
    """Valid Go regexp syntax this port cannot match: a Unicode script."""


def _negate(ranges: _Ranges) -> _Ranges:
    out: _Ranges = []
    nxt = 0
    for lo, hi in sorted(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


_Categories = list[tuple[frozenset[str], bool]]  # names, and whether a rune is in or out


class _CharClass:
    """A set of runes: ranges (as boundaries, for bisect), plus Unicode
    general categories that unicodedata tests; negated as a whole."""

    __slots__ = ("bounds", "categories", "negated")

    def __init__(self, ranges: _Ranges, categories: _Categories, negated: bool) -> None:
        if negated and not categories:
            ranges, negated = _negate(ranges), False
        bounds: list[int] = []
        for lo, hi in sorted(ranges):
            if bounds and lo <= bounds[-1]:  # overlaps or touches the last range
                bounds[-1] = max(bounds[-1], hi + 1)
            else:
                bounds += (lo, hi + 1)
        self.bounds = bounds
        self.categories = categories
        self.negated = negated

    def contains(self, rune: int) -> bool:
        found = bisect_right(self.bounds, rune) % 2 == 1
        if not found and self.categories:
            category = unicodedata.category(chr(rune))
            found = any((category in names) == inside for names, inside in self.categories)
        return found != self.negated

    def single(self) -> int | None:
        """The one rune in the class, if it holds one (Go makes it a literal)."""
        bounds = self.bounds
        if self.categories or len(bounds) != 2 or bounds[1] != bounds[0] + 1:
            return None
        return bounds[0]


# Parse tree operators; _BEGIN to _NOT_WORD are the zero-width assertions.
(
    _LITERAL,
    _CLASS,
    _EMPTY,
    _BEGIN,
    _END,
    _WORD,
    _NOT_WORD,
    _CONCAT,
    _ALTERNATE,
    _STAR,
    _PLUS,
    _QUEST,
    _REPEAT,
    _CAPTURE,
) = range(14)
_ASSERTIONS = frozenset((_BEGIN, _END, _WORD, _NOT_WORD))


class _Node:
    """A node of a Go regexp's parse tree, with Go's size and height for its
    limits (calcSize, calcHeight in regexp/syntax)."""

    __slots__ = ("cls", "height", "hi", "lo", "op", "size", "subs", "text")
    height: int
    size: int

    def __init__(
        self,
        op: int,
        subs: tuple[_Node, ...] = (),
        *,
        text: str = "",
        cls: _CharClass | None = None,
        lo: int = 0,
        hi: int = 0,
    ) -> None:
        self.op, self.subs, self.text, self.cls, self.lo, self.hi = op, subs, text, cls, lo, hi
        self.height = 1 + max((sub.height for sub in subs), default=0)
        sub = subs[0].size if subs else 0
        if op == _LITERAL:
            size = len(text)
        elif op in (_CAPTURE, _STAR):
            size = 2 + sub
        elif op in (_PLUS, _QUEST):
            size = 1 + sub
        elif op == _CONCAT:
            size = sum(s.size for s in subs)
        elif op == _ALTERNATE:
            size = sum(s.size for s in subs) + len(subs) - 1
        elif op == _REPEAT and hi < 0:
            size = 2 + sub if lo == 0 else 1 + lo * sub
        elif op == _REPEAT:
            size = hi * sub + hi - lo
        else:
            size = 0
        self.size = max(1, size)
        if self.size > _MAX_SIZE:
            raise _RegexpError("expression too large")
        if self.height > _MAX_HEIGHT:
            raise _RegexpError("expression nests too deeply")


_ANY_BUT_NEWLINE = _CharClass([(0, 9), (11, _MAX_RUNE)], [], False)  # '.' without (?s)


def _literal(rune: int) -> _Node:
    return _Node(_LITERAL, text=chr(rune))


def _class_node(cls: _CharClass) -> _Node:
    rune = cls.single()
    return _Node(_CLASS, cls=cls) if rune is None else _literal(rune)


def _concat(items: list[_Node]) -> _Node:
    """A branch's atoms as one node, adjacent literals merged as in Go."""
    out: list[_Node] = []
    run: list[str] = []
    for item in items:
        if item.op == _LITERAL:
            run.append(item.text)
            continue
        if run:
            out.append(_Node(_LITERAL, text="".join(run)))
            run = []
        out.append(item)
    if run:
        out.append(_Node(_LITERAL, text="".join(run)))
    if not out:
        return _Node(_EMPTY)
    return out[0] if len(out) == 1 else _Node(_CONCAT, tuple(out))


def _alternate(branches: list[list[_Node]], items: list[_Node]) -> _Node:
    subs = [_concat(branch) for branch in (*branches, items)]
    return subs[0] if len(subs) == 1 else _Node(_ALTERNATE, tuple(subs))


def _repeat_is_valid(node: _Node) -> bool:
    """repeatIsValid(node, 1000): nested {n,m} make at most 1000 copies."""
    stack = [(node, _MAX_REPEAT)]
    while stack:
        node, budget = stack.pop()
        if node.op == _REPEAT:
            most = node.lo if node.hi < 0 else node.hi
            if node.hi == 0:
                continue
            if most > budget:
                return False
            if most > 0:
                budget //= most
        stack.extend((sub, budget) for sub in node.subs)
    return True


def _unhex(c: str) -> int:
    return int(c, 16) if len(c) == 1 and c in "0123456789abcdefABCDEF" else -1


def _parse_escape(s: str, i: int) -> tuple[int, int]:  # noqa: PLR0912 (a parser)
    """parseEscape at s[i] == '\\': (rune, index after)."""
    i += 1
    if i >= len(s):
        raise _RegexpError("trailing backslash at end of expression")
    c = s[i]
    i += 1
    if c < "\x80" and not c.isalnum():
        return ord(c), i  # escaped punctuation is itself
    if "0" <= c <= "7" and (c == "0" or (i < len(s) and "0" <= s[i] <= "7")):
        r = ord(c) - 48  # octal; a single digit 1-7 would be a backreference
        for _ in range(2):
            if i < len(s) and "0" <= s[i] <= "7":
                r = r * 8 + ord(s[i]) - 48
                i += 1
        return r, i
    if c == "x" and s[i : i + 1] == "{":
        i += 1
        r, nhex = 0, 0
        while i < len(s) and s[i] != "}":
            v = _unhex(s[i])
            r = r * 16 + v
            if v < 0 or r > _MAX_RUNE:
                break
            nhex += 1
            i += 1
        else:
            if i < len(s) and nhex > 0:
                return r, i + 1
    elif c == "x":
        x, y = _unhex(s[i : i + 1]), _unhex(s[i + 1 : i + 2])
        if x >= 0 and y >= 0:
            return x * 16 + y, i + 2
    simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
    if c in simple:
        return simple[c], i
    raise _RegexpError("invalid escape sequence")


def _perl_class(s: str, i: int) -> _Ranges | None:
    """\\d \\D \\s \\S \\w \\W at s[i], or None."""
    name = s[i + 1 : i + 2]
    if s[i] != "\\" or name not in _PERL_NAMES:
        return None
    ranges = _PERL_GROUPS[name.lower()]
    return _negate(ranges) if name.isupper() else ranges


def _parse_unicode_class(s: str, i: int) -> tuple[_Ranges, _Categories, int]:
    """parseUnicodeClass at s[i:] starting "\\p" or "\\P": its ranges and
    categories, and the index after."""
    inside = s[i + 1] == "p"
    j = i + 2
    if j < len(s) and s[j] == "{":
        end = s.find("}", i)
        if end < 0:
            raise _RegexpError("invalid character class range")
        name, j = s[j + 1 : end], end + 1
    else:
        name, j = s[j : j + 1], j + 1
    sequence = s[i:j]
    if name.startswith("^"):
        inside, name = not inside, name[1:]
    if name == "Any":
        return ([(0, _MAX_RUNE)] if inside else []), [], j
    category = _CATEGORIES.get(name)
    if category is not None:
        return [], [(category, inside)], j
    if name in _GO_SCRIPTS:
        raise _Unsupported(sequence)
    raise _RegexpError("invalid character class range")


def _parse_class_char(s: str, i: int) -> tuple[int, int]:
    if i >= len(s):
        raise _RegexpError("missing closing ]")
    if s[i] == "\\":
        return _parse_escape(s, i)
    return ord(s[i]), i + 1


def _parse_class(s: str, i: int) -> tuple[_CharClass, int]:
    """parseClass at s[i] == '[' (flags Perl: ClassNL, PerlX, UnicodeGroups)."""
    i += 1
    negated = s[i : i + 1] == "^"
    if negated:
        i += 1
    ranges: _Ranges = []
    categories: _Categories = []
    first = True
    while i >= len(s) or s[i] != "]" or first:
        first = False
        if s.startswith("[:", i) and len(s) - i > 2:
            # RE2 looks for ":]" anywhere after, even past this class.
            end = s.find(":]", i + 2)
            if end >= 0:
                name = s[i + 2 : end]
                group = _POSIX_GROUPS.get(name.removeprefix("^"))
                if group is None:
                    raise _RegexpError("invalid character class range")
                ranges += _negate(group) if name.startswith("^") else group
                i = end + 2
                continue
        if s.startswith(("\\p", "\\P"), i):
            more_ranges, more_categories, i = _parse_unicode_class(s, i)
            ranges += more_ranges
            categories += more_categories
            continue
        perl = _perl_class(s, i) if i < len(s) else None
        if perl is not None:
            ranges += perl
            i += 2
            continue
        lo, i = _parse_class_char(s, i)
        hi = lo
        if len(s) - i >= 2 and s[i] == "-" and s[i + 1] != "]":
            hi, i = _parse_class_char(s, i + 1)
            if hi < lo:
                raise _RegexpError("invalid character class range")
        ranges.append((lo, hi))
    return _CharClass(ranges, categories, negated), i + 1


def _parse_int(s: str, i: int) -> tuple[int, int] | None:
    """parseInt: digits without a leading zero; -1 if huge."""
    j = i
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    if j == i or (s[i] == "0" and j - i > 1):
        return None
    return (int(s[i:j]) if j - i <= 8 else -1), j


def _parse_repeat(s: str, i: int) -> tuple[int, int, int] | None:
    """parseRepeat at s[i] == '{': (min, max, index after); max -1 for
    "{n,}"; None when the '{' is a literal."""
    got = _parse_int(s, i + 1)
    if got is None:
        return None
    lo, j = got
    hi = lo
    if s[j : j + 1] == ",":
        j += 1
        if s[j : j + 1] == "}":
            hi = -1
        else:
            got = _parse_int(s, j)
            if got is None:
                return None
            hi, j = got
            if hi < 0:
                lo = -1
    if s[j : j + 1] != "}":
        return None
    return lo, hi, j + 1


_REPEAT_OPS = {"*": _STAR, "+": _PLUS, "?": _QUEST}
_BACKSLASH_OPS = {"A": _BEGIN, "b": _WORD, "B": _NOT_WORD, "z": _END}


def _parse_backslash(s: str, i: int, items: list[_Node]) -> int:
    """The escape at s[i] == '\\' appended to items; the index after."""
    nxt = s[i + 1 : i + 2]
    if nxt in _BACKSLASH_OPS:
        items.append(_Node(_BACKSLASH_OPS[nxt]))
        return i + 2
    if nxt == "Q":  # literal text up to "\E" or the end
        end = s.find("\\E", i + 2)
        items.extend(_literal(ord(c)) for c in s[i + 2 : len(s) if end < 0 else end])
        return len(s) if end < 0 else end + 2
    if nxt in ("p", "P"):
        ranges, categories, i = _parse_unicode_class(s, i)
        items.append(_class_node(_CharClass(ranges, categories, False)))
        return i
    perl = _perl_class(s, i)
    if perl is not None:
        items.append(_class_node(_CharClass(perl, [], False)))
        return i + 2
    rune, i = _parse_escape(s, i)
    items.append(_literal(rune))
    return i


def _parse_repeat_op(s: str, i: int, items: list[_Node], last_repeat: bool) -> int | None:
    """A repetition operator at s[i] applied to items[-1]: the index after
    it; None if there is none ('{' not starting a valid repeat is a literal)."""
    c = s[i]
    if c == "{":
        repeat = _parse_repeat(s, i)
        if repeat is None:
            return None
        lo, hi, j = repeat
        if lo < 0 or lo > _MAX_REPEAT or hi > _MAX_REPEAT or 0 <= hi < lo:
            raise _RegexpError("invalid repeat count")
        op = _REPEAT
    elif c in _REPEAT_OPS:
        lo, hi, j, op = 0, 0, i + 1, _REPEAT_OPS[c]
    else:
        return None
    if s[j : j + 1] == "?":  # non-greedy: the same language
        j += 1
    if last_repeat:
        raise _RegexpError("invalid nested repetition operator")
    if not items:
        raise _RegexpError("missing argument to repetition operator")
    node = _Node(op, (items[-1],), lo=lo, hi=hi)
    if op == _REPEAT and (lo >= 2 or hi >= 2) and not _repeat_is_valid(node):
        raise _RegexpError("invalid repeat count")
    items[-1] = node
    return j


def _parse(s: str) -> _Node:  # noqa: PLR0912 (a parser)
    """regexp/syntax.Parse(s, syntax.Perl) as a tree; raises _RegexpError
    where Go fails (with Go's error code), _Unsupported for a Unicode script.

    Groups come only from Pattern.compile's "(.*/)?" (it escapes the user's
    '(' and ')'), so no "(?" flags appear.
    """
    groups: list[tuple[list[list[_Node]], list[_Node]]] = []  # enclosing groups' state
    branches: list[list[_Node]] = []  # this group's branches before the last '|'
    items: list[_Node] = []  # this branch's atoms so far
    last_repeat = False  # RE2 rejects a repeat right after a repeat ("a**")
    i, n = 0, len(s)
    while i < n:
        after_repeat = _parse_repeat_op(s, i, items, last_repeat)
        last_repeat = after_repeat is not None
        if after_repeat is not None:
            i = after_repeat
            continue
        c = s[i]
        if c == "\\":
            i = _parse_backslash(s, i, items)
            continue
        if c == "[":
            cls, i = _parse_class(s, i)
            items.append(_class_node(cls))
            continue
        i += 1
        if c == "(":
            groups.append((branches, items))
            branches, items = [], []
        elif c == "|":
            branches.append(items)
            items = []
        elif c == ")":
            if not groups:
                raise _RegexpError("unexpected )")
            group = _Node(_CAPTURE, (_alternate(branches, items),))
            branches, items = groups.pop()
            items.append(group)
        elif c == "^":
            items.append(_Node(_BEGIN))
        elif c == "$":
            items.append(_Node(_END))
        elif c == ".":
            items.append(_Node(_CLASS, cls=_ANY_BUT_NEWLINE))
        else:
            items.append(_literal(ord(c)))
    if groups:
        raise _RegexpError("missing closing )")
    return _alternate(branches, items)


def _required_text(root: _Node) -> tuple[str, str, str]:
    """Literal text every match of the tree has: at the start of the path,
    at its end, and anywhere ("" for none). Pattern.compile's regexps are a
    concatenation from '^', or an alternation (of which nothing is known)."""
    if root.op != _CONCAT:
        return "", "", ""
    subs = root.subs
    prefix = subs[1].text if subs[0].op == _BEGIN and subs[1].op == _LITERAL else ""
    suffix = subs[-2].text if subs[-1].op == _END and subs[-2].op == _LITERAL else ""
    infix = max((sub.text for sub in subs if sub.op == _LITERAL), key=len, default="")
    return prefix, suffix, infix


# --- Matching: a Thompson NFA, searched through a lazily built DFA ---------

# Instructions. A rune or class consumes one character; a split goes both
# ways (out and arg); an assertion (arg: _BEGIN.._NOT_WORD) goes on if it holds.
_I_RUNE, _I_CLASS, _I_SPLIT, _I_NOP, _I_ASSERT, _I_MATCH = range(6)
_WORD_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
# DFA states, transitions and the NFA threads they hold that one program may
# cache before its cache is dropped and built anew (RE2 does the same).
_DFA_BUDGET = 1 << 16

_Fragment = tuple[int, list[int]]  # start, and the holes to patch: pc * 2 (out) or + 1 (arg)
_Work = _Node | tuple[int, int]  # a node to compile, or (operator, parts) to join


class _State(dict[str, "_State"]):
    """A DFA state: the transitions built so far, by character.

    pending holds the NFA instructions to run at the next character (None
    once a match was found: the state then stays matched); at_begin and
    prev_word are the context the assertions need.
    """

    __slots__ = ("accepts", "at_begin", "closures", "pending", "prev_word")

    def __init__(self, pending: frozenset[int] | None, at_begin: bool, prev_word: bool) -> None:
        super().__init__()
        self.pending = pending
        self.at_begin = at_begin
        self.prev_word = prev_word
        self.accepts: bool | None = True if pending is None else None  # at the end of the text
        self.closures: dict[bool, tuple[list[int], bool]] = {}  # by: is the next char a word char


class _Program:
    """A Go regexp compiled to a Thompson NFA; search() is MatchString."""

    def __init__(self, root: _Node) -> None:
        self._ops = array("b")
        self._outs = array("i")
        self._args = array("i")
        self._classes: list[_CharClass] = []
        start, holes = self._compile(root)
        self._patch(holes, self._emit(_I_MATCH))
        self._start_pc = start
        self._has_word = any(
            op == _I_ASSERT and arg in (_WORD, _NOT_WORD)
            for op, arg in zip(self._ops, self._args, strict=True)
        )
        # Whether every match starts at the beginning of the text: if so, no
        # search starts anywhere else.
        threads, matched = self._follow([start], {_END, _WORD, _NOT_WORD})
        self._anchored = not threads and not matched
        self._reset()

    def _emit(self, op: int, arg: int = -1) -> int:
        self._ops.append(op)
        self._outs.append(-1)
        self._args.append(arg)
        return len(self._ops) - 1

    def _patch(self, holes: list[int], target: int) -> None:
        for hole in holes:
            if hole % 2:
                self._args[hole // 2] = target
            else:
                self._outs[hole // 2] = target

    def _compile(self, root: _Node) -> _Fragment:
        """Thompson's construction, with an explicit stack: each node's
        fragment, then its parent's made of them."""
        fragments: list[_Fragment] = []
        work: list[_Work] = [root]
        class_ids: dict[int, int] = {}  # id(class) -> index, for repeated nodes
        while work:
            item = work.pop()
            if isinstance(item, tuple):
                op, count = item
                parts = fragments[len(fragments) - count :]
                del fragments[len(fragments) - count :]
                fragments.append(self._join(op, parts))
                continue
            op = item.op
            if op == _LITERAL:
                pcs = [self._emit(_I_RUNE, ord(c)) for c in item.text]
                for pc, nxt in pairwise(pcs):
                    self._outs[pc] = nxt
                fragments.append((pcs[0], [pcs[-1] * 2]))
            elif op == _CLASS:
                assert item.cls is not None
                index = class_ids.setdefault(id(item.cls), len(self._classes))
                if index == len(self._classes):
                    self._classes.append(item.cls)
                pc = self._emit(_I_CLASS, index)
                fragments.append((pc, [pc * 2]))
            elif op == _EMPTY or op in _ASSERTIONS:
                pc = self._emit(_I_NOP) if op == _EMPTY else self._emit(_I_ASSERT, op)
                fragments.append((pc, [pc * 2]))
            elif op == _REPEAT:
                work += self._unrolled(item)
            else:
                work.append((op, len(item.subs)))
                work += reversed(item.subs)
        (fragment,) = fragments
        return fragment

    @staticmethod
    def _unrolled(node: _Node) -> list[_Work]:
        """x{n,m} as Go's Simplify makes it, as work in stack order: n copies
        of x, then (x(x(x)?)?)? to m; x{n,} is n-1 copies and x+, x{0,} x*.
        (Nested, an optional tail keeps one thread where x?x?x? keeps all.)"""
        sub, lo, hi = node.subs[0], node.lo, node.hi
        if hi < 0:
            if lo == 0:
                return [(_STAR, 1), sub]
            return [(_CONCAT, lo), (_PLUS, 1), sub, *[sub] * (lo - 1)]
        if hi == 0:
            return [_Node(_EMPTY)]
        optional = hi - lo
        work: list[_Work] = [(_CONCAT, lo + 1 if optional else lo)]
        if optional:
            work += [(_QUEST, 1), (_CONCAT, 2)] * (optional - 1)
            work += [(_QUEST, 1), sub, *[sub] * (optional - 1)]
        return work + [sub] * lo

    def _join(self, op: int, parts: list[_Fragment]) -> _Fragment:
        if op == _CONCAT:
            for (_, holes), (nxt, _) in pairwise(parts):
                self._patch(holes, nxt)
            return parts[0][0], parts[-1][1]
        if op == _ALTERNATE:
            start, holes = parts[-1]
            for part_start, part_holes in reversed(parts[:-1]):
                pc = self._emit(_I_SPLIT, start)
                self._outs[pc] = part_start
                start = pc
                holes += part_holes
            return start, holes
        if op == _CAPTURE:
            return parts[0]
        (start, holes) = parts[0]
        pc = self._emit(_I_SPLIT)
        self._outs[pc] = start
        if op == _QUEST:
            return pc, [*holes, pc * 2 + 1]
        self._patch(holes, pc)  # _STAR, _PLUS: back to the split
        return (pc if op == _STAR else start), [pc * 2 + 1]

    def _follow(self, roots: list[int], holds: set[int]) -> tuple[list[int], bool]:
        """The instructions that consume a character reachable from roots
        without consuming one, where the assertions in holds hold; and
        whether a match is."""
        ops, outs, args = self._ops, self._outs, self._args
        stack = roots
        seen: set[int] = set()
        threads: list[int] = []
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = ops[pc]
            if op <= _I_CLASS:
                threads.append(pc)
            elif op == _I_SPLIT:
                stack += (outs[pc], args[pc])
            elif op == _I_MATCH:
                return threads, True
            elif op == _I_NOP or args[pc] in holds:
                stack.append(outs[pc])
        return threads, False

    def _closure(self, state: _State, at_end: bool, next_word: bool) -> tuple[list[int], bool]:
        holds = {_WORD if state.prev_word != next_word else _NOT_WORD}
        if state.at_begin:
            holds.add(_BEGIN)
        if at_end:
            holds.add(_END)
        assert state.pending is not None
        roots = list(state.pending)
        if state.at_begin or not self._anchored:  # a match may start here
            roots.append(self._start_pc)
        return self._follow(roots, holds)

    def _reset(self) -> None:
        self._states: dict[tuple[frozenset[int], bool], _State] = {}
        self._budget = _DFA_BUDGET
        self._start = _State(frozenset(), True, False)
        self._matched = _State(None, False, False)

    def _state(self, pending: frozenset[int], prev_word: bool) -> _State:
        key = (pending, prev_word)
        state = self._states.get(key)
        if state is None:
            if self._budget <= 0:
                self._reset()
            state = self._states[key] = _State(pending, False, prev_word)
            self._budget -= 1 + len(pending)
        return state

    def _step(self, state: _State, char: str) -> _State:
        """The state after char, remembered as a transition."""
        if state.pending is None:
            nxt = state
        else:
            word = self._has_word and char in _WORD_CHARS
            closure = state.closures.get(word)
            if closure is None:
                closure = state.closures[word] = self._closure(state, False, word)
                self._budget -= len(closure[0])
            threads, matched = closure
            if matched:
                nxt = self._matched
            else:
                rune = ord(char)
                ops, outs, args, classes = self._ops, self._outs, self._args, self._classes
                pending = frozenset(
                    outs[pc]
                    for pc in threads
                    if (
                        args[pc] == rune if ops[pc] == _I_RUNE else classes[args[pc]].contains(rune)
                    )
                )
                nxt = self._state(pending, word)
        state[char] = nxt
        self._budget -= 1
        return nxt

    def search(self, text: str) -> bool:
        """regexp.MatchString: whether the regexp matches anywhere in text
        (one dict lookup per character once the DFA is built)."""
        state = self._start
        step = self._step
        for char in text:
            nxt = state.get(char)
            state = step(state, char) if nxt is None else nxt
        if state.accepts is None:
            state.accepts = self._closure(state, True, False)[1]
        return state.accepts


# --- Patterns --------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(1, 5)  # Go's matchType values
_SURROGATES = re.compile("[\ud800-\udfff]")
# What Pattern.compile does not copy as literal text: "**" (and the '/' it
# eats), '*', '?', '[', ']', and '\' with the character after it.
_GLOB_TOKEN = re.compile(r"\*\*/?|[*?\[\]]|\\.", re.DOTALL)
# In literal text it escapes ".+()$". shouldEscape in patternmatcher.go is
# meant to cover ".+()|{}$", but its bitmap sets bit b/8 of a byte, which is
# lost for b >= 64: '|', '{', '}' stay live regexp syntax ("a|b*" is "^a|b[^/]*$").
_ESCAPED = str.maketrans({c: "\\" + c for c in ".+()$"})
# What makes a Go regexp more than literal text and wildcards.
_REGEXP_SYNTAX = re.compile(r"[\[\\|{^]")
_WILDCARDS = re.compile(r"\*\*/?|[*?]")


def _go_runes(path: str) -> str:
    """The path as Go's regexp sees it: an invalid byte reads as U+FFFD."""
    return path if path.isascii() else _SURROGATES.sub("\ufffd", path)


def _go_text(pattern: str) -> str:
    """The pattern as text/scanner yields it: U+FFFD for an invalid byte, a
    leading BOM skipped."""
    return _go_runes(pattern).removeprefix("\ufeff")


def _match_type(text: str) -> int:
    """Pattern.compile's match type, for the pattern as _go_text gives it.

    Its loop keeps an exact match while it meets literal text only. A "**"
    that comes first makes a suffix match, one that comes last (after literal
    text only) a prefix match; anything else makes a regexp, and so does any
    piece after a first "**".
    """
    first = _GLOB_TOKEN.search(text)
    if first is None:
        return _EXACT
    if _GLOB_TOKEN.search(text, first.end()) is None and first.group().startswith("**"):
        if first.start() == 0:
            return _SUFFIX
        if first.end() == len(text):
            return _PREFIX
    return _REGEXP


def _go_regexp(pattern: str) -> str:
    """Pattern.compile's Go regexp, for a pattern of match type _REGEXP."""
    text = _go_text(pattern)
    reg = ["^"]
    done = 0  # text before this is in reg
    for token in _GLOB_TOKEN.finditer(text):
        start, end = token.span()
        reg.append(text[done:start].translate(_ESCAPED))
        done = end
        piece = token.group()
        if piece.startswith("**"):
            # "(.*/)?" allows any number of '/', even 0; at the end, ".*".
            reg.append(".*" if end == len(text) else "(.*/)?")
        elif piece == "*":
            reg.append("[^/]*")
        elif piece == "?":
            reg.append("[^/]")
        else:  # '[', ']', or '\' and the character it escapes
            reg.append(piece)
    reg.append(text[done:].translate(_ESCAPED))
    return "".join(reg) + "$"


class _Pattern:
    """One pattern of New, compiled; match() is Pattern.match.

    prefix and suffix are text (as Go's regexp sees it) that every path the
    pattern matches starts and ends with: the whole text of an exact match.
    """

    __slots__ = (
        "cleaned",
        "error",
        "exclusion",
        "infix",
        "kind",
        "literal",
        "prefix",
        "program",
        "programs",
        "suffix",
    )

    def __init__(self, cleaned: str, exclusion: bool, programs: dict[str, _Program]) -> None:
        self.cleaned = cleaned  # Pattern.String(): without the '!'
        self.exclusion = exclusion
        self.error: str | None = None  # why evaluating it fails
        self.program: _Program | None = None  # built when first needed
        self.programs = programs  # the matcher's, by Go regexp
        self.prefix = self.suffix = self.infix = ""
        # What Go compares paths with, for a match that is no regexp.
        self.literal = cleaned
        text = _go_text(cleaned)
        self.kind = _match_type(text)
        if self.kind == _EXACT:
            self.prefix = self.suffix = _go_runes(cleaned)
        elif self.kind == _PREFIX:
            self.literal = cleaned[:-2]  # strip trailing **
            self.prefix = _go_runes(self.literal)
        elif self.kind == _SUFFIX:
            self.literal = cleaned[2:]  # strip leading **
            if cleaned[0] == "*":  # else a leading BOM, which the scanner skipped
                # "**/foo" also matches "foo": so every match ends with "foo".
                self.suffix = _go_runes(self.literal.removeprefix("/"))
        elif not _REGEXP_SYNTAX.search(text):
            # Literals and wildcards only: "^lit(wildcard lit)*$", never an error.
            pieces = _WILDCARDS.split(text)
            self.prefix, self.suffix = pieces[0], pieces[-1]
            if not (self.prefix or self.suffix):  # else those rule out most paths
                self.infix = max(pieces, key=len)
        else:
            try:
                self.prefix, self.suffix, self.infix = _required_text(_parse(_go_regexp(cleaned)))
            except _RegexpError as error:
                # Go fails at the first evaluation, not in New; so do we.
                self.error = f"syntax error in pattern: {cleaned!r} ({error.args[0]})"
            except _Unsupported as error:
                self.error = (
                    f"unsupported in pattern: {cleaned!r} ({error.args[0]} is a Unicode "
                    "script: docker matches it, this port cannot)"
                )

    def match(self, path: str, go_path: str) -> bool:
        """Pattern.match on path, go_path being it as Go's regexp sees it."""
        kind = self.kind
        if kind == _EXACT:
            return path == self.literal
        if kind == _PREFIX:
            return path.startswith(self.literal)
        if kind == _SUFFIX:
            if self.cleaned[0] != "*":  # the BOM: Go slices 2 *bytes* off the pattern
                raw = self.cleaned.encode("utf-8", "surrogateescape")[2:]
                return path.encode("utf-8", "surrogateescape").endswith(raw)
            suffix = self.literal
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        if self.error is not None:
            raise DockerignoreError(self.error)
        if not (
            go_path.startswith(self.prefix)
            and go_path.endswith(self.suffix)
            and self.infix in go_path
        ):
            return False
        program = self.program
        if program is None:
            regexp = _go_regexp(self.cleaned)
            program = self.programs.get(regexp)
            if program is None:
                program = self.programs[regexp] = _Program(_parse(regexp))
            self.program = program
        return program.search(go_path)

    def match_quiet(self, path: str) -> bool:
        """match with the error dropped, as Go's `match, _ = pattern.match(...)`."""
        try:
            return self.match(path, _go_runes(path))
        except DockerignoreError:
            return False


def read_dockerignore(data: bytes) -> list[str]:
    """ignorefile.ReadAll: the patterns of a .dockerignore file's content."""
    patterns: list[str] = []
    # bufio.ScanLines drops a '\r' that ends a line and yields no empty line
    # after the last: both make no difference once lines are trimmed and
    # empty ones skipped.
    for number, line in enumerate(data.split(b"\n")):
        # bufio.Scanner needs the line and one more byte in its 64 KiB buffer.
        if len(line) >= _BUFIO_MAX_TOKEN:
            raise DockerignoreError("error reading .dockerignore: bufio.Scanner: token too long")
        text = (line.removeprefix(b"\xef\xbb\xbf") if number == 0 else line).decode(
            "utf-8", "surrogateescape"
        )
        if text.startswith("#"):  # comments are skipped before trimming
            continue
        pattern = _trim_space(text)
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = _trim_space(pattern[1:])
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _ancestors(path: str) -> list[str]:
    """The directories above path, outermost first, as Go joins them."""
    parent = _dir(path)
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


def _true_indices(info: MatchInfo) -> list[int]:
    flags = bytes(info)  # searched in C: a MatchInfo holds one bool per pattern
    found: list[int] = []
    i = flags.find(1)
    while i >= 0:
        found.append(i)
        i = flags.find(1, i + 1)
    return found


class PatternMatcher:
    """patternmatcher.PatternMatcher: patterns compiled once, matched per entry.

    Each pattern is indexed by the text that every path it matches is (exact
    patterns), starts with or else ends with; matches() tries a path only
    against the patterns its own text finds, and those with no such text.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        """patternmatcher.New; raises DockerignoreError where New fails."""
        self._patterns: list[_Pattern] = []
        programs: dict[str, _Program] = {}
        # The index: text -> the last pattern filed under it; and for each
        # pattern, the one before it under the same text, or -1.
        self._exact: dict[str, int] = {}
        self._by_prefix: dict[str, int] = {}
        self._by_suffix: dict[str, int] = {}
        self._same_text: list[int] = []
        self._unindexed: list[int] = []
        for raw in patterns:
            p = _trim_space(raw)
            if not p:
                continue
            p = _clean(p)
            exclusion = p[0] == "!"
            if exclusion:
                if len(p) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!"')
                p = p[1:]
            if "[" in p or "\\" in p:  # nothing else can be a syntax error
                try:
                    _check_match_syntax(p)
                except _BadPattern:
                    raise DockerignoreError(f"syntax error in pattern: {p!r}") from None
            self._add(_Pattern(p, exclusion, programs))
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._suffix_lengths = sorted({len(suffix) for suffix in self._by_suffix})
        self._unmatched: MatchInfo = (False,) * len(self._patterns)
        # The last parent MatchInfo seen, and where it is true: the walk
        # passes the same one for every entry of a directory.
        self._parent_true: tuple[MatchInfo, list[int]] = ((), [])
        # must_descend: TarWithOptions tests pattern.String() + "/".
        self._exclusion_dirs = sorted(p.cleaned + "/" for p in self._patterns if p.exclusion)

    def _add(self, pattern: _Pattern) -> None:
        """Appends pattern, filed under the text its matches are (an exact
        pattern), else start with, else end with, or else none."""
        index = len(self._patterns)
        self._patterns.append(pattern)
        if pattern.kind == _EXACT:
            table, key = self._exact, pattern.prefix
        elif pattern.prefix:
            table, key = self._by_prefix, pattern.prefix
        elif pattern.suffix:
            table, key = self._by_suffix, pattern.suffix
        else:
            self._same_text.append(-1)
            self._unindexed.append(index)
            return
        self._same_text.append(table.get(key, -1))
        table[key] = index

    def _candidates(self, go_path: str) -> list[int]:
        """The patterns that may match go_path, in order."""
        heads = [self._exact.get(go_path, -1)]
        size = len(go_path)
        for length in self._prefix_lengths:
            if length > size:
                break
            heads.append(self._by_prefix.get(go_path[:length], -1))
        for length in self._suffix_lengths:
            if length > size:
                break
            heads.append(self._by_suffix.get(go_path[-length:], -1))
        found: list[int] = []  # each pattern is filed once: no duplicates
        same_text = self._same_text
        for head in heads:
            index = head
            while index >= 0:
                found.append(index)
                index = same_text[index]
        if not found:
            return self._unindexed
        found += self._unindexed
        found.sort()
        return found

    def matches(self, path: str, parent: MatchInfo | None) -> tuple[bool, MatchInfo]:
        """MatchesUsingParentResults: whether path is excluded, and its MatchInfo.

        parent is what this returned for the directory holding path, or None
        (Go's zero MatchInfo) for an entry of the context root; the walk then
        passes the returned info down to the directory's own entries.
        """
        patterns = self._patterns
        if parent and len(parent) != len(patterns):
            raise ValueError("wrong number of values in parentMatched")
        go_path = _go_runes(path)
        order = self._candidates(go_path)
        ancestors: list[str] = []
        if parent:
            seen, true_indices = self._parent_true
            if seen is not parent:
                true_indices = _true_indices(parent)
                self._parent_true = (parent, true_indices)
            if true_indices:
                order = sorted({*order, *true_indices})
        elif "/" in path:
            # Go's zero MatchInfo: each pattern is also tried on the parents.
            ancestors = _ancestors(path)
            more = [self._candidates(_go_runes(ancestor)) for ancestor in ancestors]
            order = sorted(set(order).union(*more))
        matched = False
        newly: list[int] = []  # patterns matched here, not in the parent
        for i in order:
            pattern = patterns[i]
            if parent and parent[i]:  # the parent matched: so does path
                matched = not pattern.exclusion
                continue
            # Skip an inclusion once matched, an exclusion until matched.
            if pattern.exclusion != matched:
                continue
            if pattern.match(path, go_path) or any(map(pattern.match_quiet, ancestors)):
                newly.append(i)
                matched = not pattern.exclusion
        if not newly:
            return matched, parent or self._unmatched
        info = list(parent or self._unmatched)
        for i in newly:
            info[i] = True
        return matched, tuple(info)

    def must_descend(self, dir_path: str) -> bool:
        """TarWithOptions walks into an excluded directory (without adding the
        directory itself to the tar) when an exception pattern, as a string,
        starts with "dir_path/"; otherwise it skips the whole directory."""
        dir_slash = dir_path + "/"
        dirs = self._exclusion_dirs
        i = bisect_left(dirs, dir_slash)
        return i < len(dirs) and dirs[i].startswith(dir_slash)
