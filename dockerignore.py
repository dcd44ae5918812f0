"""How docker applies .dockerignore to a build context, ported from Go.

Sources (read for this port):
  github.com/moby/patternmatcher v0.6.0 (vendored by docker/cli v28):
    ignorefile/ignorefile.go  ReadAll
    patternmatcher.go         New, MatchesUsingParentResults, Pattern.compile
  github.com/moby/go-archive archive.go  Tarballer.Do (TarWithOptions): the
    walk that builds the context tar of the classic builder

Paths and patterns are `str` decoded from bytes as UTF-8 with surrogateescape
(what os.fsdecode gives on Linux), so each undecodable byte is one character,
as Go treats it as one rune. Paths are relative to the context root and
'/'-separated, as filepath.Rel gives them ("a/b", never "./a" or "a/").

Not ported: Go regexp \\p{...} classes (DockerignoreError "unsupported"
when such a pattern is evaluated) and RE2's size limits past {n<=1000}.
Where docker logs a bad pattern met mid-walk and silently sends the context
tar cut short, this raises DockerignoreError. New checks the whole pattern,
as filepath.Match does since golang/go#28614 (Go 1.19 still checked lazily).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

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
    if not path:
        return "."
    rooted = path[0] == "/"
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


def _get_esc(chunk: str) -> str:
    """filepath.Match's getEsc, for its syntax check only: the rest of chunk."""
    if not chunk or chunk[0] in "-]":
        raise _BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern
    if _is_surrogate(chunk[0]):  # an invalid UTF-8 byte
        raise _BadPattern
    chunk = chunk[1:]
    if not chunk:
        raise _BadPattern
    return chunk


class _BadPattern(Exception):
    """filepath.ErrBadPattern, or a Go regexp syntax error."""


def _check_match_syntax(pattern: str) -> None:  # noqa: PLR0912 (a parser)
    """Raises _BadPattern where filepath.Match(pattern, ".") returns an error.

    Since Go 1.16 Match checks the whole pattern however the match goes, so
    this only parses: chunks split at '*' outside '[...]' (scanChunk), each
    parsed as matchChunk does.
    """
    rest = pattern
    while rest:
        rest = rest.lstrip("*")
        i, inrange = 0, False
        while i < len(rest):
            c = rest[i]
            if c == "\\":
                if i + 1 < len(rest):
                    i += 1
            elif c == "[":
                inrange = True
            elif c == "]":
                inrange = False
            elif c == "*" and not inrange:
                break
            i += 1
        chunk, rest = rest[:i], rest[i:]
        while chunk:
            c = chunk[0]
            if c == "[":
                chunk = chunk[1:]
                if chunk[:1] == "^":
                    chunk = chunk[1:]
                nrange = 0
                while True:
                    if chunk[:1] == "]" and nrange > 0:
                        chunk = chunk[1:]
                        break
                    chunk = _get_esc(chunk)
                    if chunk[0] == "-":
                        chunk = _get_esc(chunk[1:])
                    nrange += 1
            elif c == "\\":
                if len(chunk) < 2:
                    raise _BadPattern
                chunk = chunk[2:]
            else:
                chunk = chunk[1:]


# --- Go regexp syntax, translated to Python's ------------------------------
#
# Pattern.compile makes a Go regexp in which the user's text survives as
# '[...]' classes (with RE2's [:alpha:], \d, \pL, ranges) and '\x' escapes
# (\d, \b, \Q...\E, \x41, \101 are all live). Python's re reads several of
# these differently, so the Go regexp is parsed here with RE2's rules and
# rewritten with explicit code point ranges.

_MAX_RUNE = 0x10FFFF
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


class _Unsupported(Exception):
    """Valid Go regexp syntax this port does not translate (\\p classes)."""


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


def _class_re(ranges: _Ranges) -> str:
    if not ranges:
        return "(?!)"
    parts = []
    for lo, hi in sorted(ranges):
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "[" + "".join(parts) + "]"


def _unhex(c: str) -> int:
    return int(c, 16) if len(c) == 1 and c in "0123456789abcdefABCDEF" else -1


def _parse_escape(s: str, i: int) -> tuple[int, int]:  # noqa: PLR0912 (a parser)
    """regexp/syntax parseEscape at s[i] == '\\': (rune, index after)."""
    i += 1
    if i >= len(s):
        raise _BadPattern  # trailing backslash
    c = s[i]
    i += 1
    if c < "\x80" and not c.isalnum():
        return ord(c), i  # escaped punctuation is itself
    if "1" <= c <= "7" and not (i < len(s) and "0" <= s[i] <= "7"):
        raise _BadPattern  # a backreference
    if "0" <= c <= "7":
        r = ord(c) - 48
        for _ in range(2):
            if i < len(s) and "0" <= s[i] <= "7":
                r = r * 8 + ord(s[i]) - 48
                i += 1
        return r, i
    if c == "x":
        if i < len(s) and s[i] == "{":
            i += 1
            r, nhex = 0, 0
            while True:
                if i >= len(s):
                    raise _BadPattern
                c = s[i]
                i += 1
                if c == "}":
                    break
                v = _unhex(c)
                if v < 0:
                    raise _BadPattern
                r = r * 16 + v
                if r > _MAX_RUNE:
                    raise _BadPattern
                nhex += 1
            if nhex == 0:
                raise _BadPattern
            return r, i
        x = _unhex(s[i]) if i < len(s) else -1
        y = _unhex(s[i + 1]) if i + 1 < len(s) else -1
        if x < 0 or y < 0:
            raise _BadPattern
        return x * 16 + y, i + 2
    simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
    if c in simple:
        return simple[c], i
    raise _BadPattern


def _perl_class(s: str, i: int) -> _Ranges | None:
    """\\d \\D \\s \\S \\w \\W at s[i], or None."""
    name = s[i + 1 : i + 2]
    if s[i] != "\\" or name not in _PERL_NAMES:
        return None
    ranges = _PERL_GROUPS[name.lower()]
    return _negate(ranges) if name.isupper() else ranges


def _parse_class(s: str, i: int) -> tuple[str, int]:
    """regexp/syntax parseClass at s[i] == '[' (flags Perl: ClassNL, PerlX)."""
    i += 1
    negated = i < len(s) and s[i] == "^"
    if negated:
        i += 1
    ranges: _Ranges = []
    first = True
    while i >= len(s) or s[i] != "]" or first:
        first = False
        if i >= len(s):
            raise _BadPattern  # missing closing ]
        if s.startswith("[:", i) and len(s) - i > 2:
            # RE2 looks for ":]" anywhere after, even past this class.
            end = s.find(":]", i + 2)
            if end >= 0:
                name = s[i + 2 : end]
                group = _POSIX_GROUPS.get(name.removeprefix("^"))
                if group is None:
                    raise _BadPattern
                ranges += _negate(group) if name.startswith("^") else group
                i = end + 2
                continue
        if s.startswith(("\\p", "\\P"), i):
            raise _Unsupported
        perl = _perl_class(s, i)
        if perl is not None:
            ranges += perl
            i += 2
            continue
        lo, i = _parse_escape(s, i) if s[i] == "\\" else (ord(s[i]), i + 1)
        hi = lo
        if len(s) - i >= 2 and s[i] == "-" and s[i + 1] != "]":
            i += 1
            if s[i] == "\\":
                hi, i = _parse_escape(s, i)
            else:
                hi, i = ord(s[i]), i + 1
            if hi < lo:
                raise _BadPattern
        ranges.append((lo, hi))
    return _class_re(_negate(ranges) if negated else ranges), i + 1


_ZERO_WIDTH = frozenset((r"\A", r"\Z", r"\b", r"\B"))


def _parse_int(s: str, i: int) -> tuple[int, int] | None:
    """regexp/syntax parseInt: digits without a leading zero; -1 if huge."""
    j = i
    while j < len(s) and "0" <= s[j] <= "9":
        j += 1
    if j == i or (s[i] == "0" and j - i > 1):
        return None
    return (int(s[i:j]) if j - i <= 8 else -1), j


def _parse_repeat(s: str, i: int) -> tuple[int, int, int] | None:
    """regexp/syntax parseRepeat at s[i] == '{': (min, max, index after);
    max -1 for "{n,}"; None when the '{' is a literal."""
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


def _translate(go_re: str) -> str:  # noqa: PLR0912, PLR0915 (a parser)
    """A Go regexp (flags syntax.Perl) as a Python one matching the same."""
    out: list[str] = []  # one entry per atom, so that a repeat can wrap one
    groups: list[int] = []  # where each open group starts in out
    operand = False  # an atom precedes that a repeat may apply to
    last_repeat = False  # RE2 rejects a repeat right after a repeat ("a**")
    repeated = False  # out[-1] already carries a repeat ("a*\\Q\\E{2}" is legal)
    i, n = 0, len(go_re)
    while i < n:
        c = go_re[i]
        if c in "*+?{":
            if c == "{":
                rep = _parse_repeat(go_re, i)
                if rep is None:
                    out.append(re.escape(c))  # not a repeat: a literal '{'
                    operand, last_repeat, repeated = True, False, False
                    i += 1
                    continue
                lo, hi, i = rep
                if lo < 0 or lo > 1000 or hi > 1000 or 0 <= hi < lo:
                    raise _BadPattern
                repeat = f"{{{lo}}}" if lo == hi else f"{{{lo},{'' if hi < 0 else hi}}}"
            else:
                repeat = c
                i += 1
            if go_re[i : i + 1] == "?":  # non-greedy
                repeat += "?"
                i += 1
            if last_repeat or not operand:
                raise _BadPattern
            if repeated or out[-1] in _ZERO_WIDTH:  # RE2 allows "^*"; Python wants a group
                out[-1] = f"(?:{out[-1]})"
            out[-1] += repeat
            last_repeat = repeated = True
            continue
        last_repeat = False
        if c == "\\" and go_re[i + 1 : i + 2] == "Q":
            end = go_re.find(r"\E", i)
            lit = go_re[i + 2 :] if end < 0 else go_re[i + 2 : end]
            i = n if end < 0 else end + 2
            if lit:  # "\\Q\\E" adds nothing, and leaves the state as it was
                out.extend(map(re.escape, lit))
                operand, repeated = True, False
            continue
        operand, repeated = c not in "(|", False
        if c == "\\":
            nxt = go_re[i + 1 : i + 2]
            if nxt in ("A", "b", "B"):
                out.append("\\" + nxt)
                i += 2
            elif nxt == "z":
                out.append(r"\Z")
                i += 2
            elif nxt == "C":
                raise _BadPattern
            elif nxt in ("p", "P"):
                raise _Unsupported
            elif (perl := _perl_class(go_re, i)) is not None:
                out.append(_class_re(perl))
                i += 2
            else:
                r, i = _parse_escape(go_re, i)
                out.append(_class_re([(r, r)]))
            continue
        i += 1
        if c == "[":
            cls, i = _parse_class(go_re, i - 1)
            out.append(cls)
        elif c == "^":
            out.append(r"\A")
        elif c == "$":
            out.append(r"\Z")
        elif c == "(":
            groups.append(len(out))
            out.append(c)
        elif c == ")":
            if not groups:
                raise _BadPattern
            start = groups.pop()
            out[start:] = ["".join(out[start:]) + ")"]
        elif c in ".|":
            # Pattern.compile writes "(" ")" "." only in "(.*/)?" and ".*";
            # RE2's '.' stops at '\n', like Python's; '|' comes from the user.
            out.append(c)
        else:
            out.append(re.escape(c))
    if groups:
        raise _BadPattern
    return "".join(out)


# --- Patterns --------------------------------------------------------------

_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(1, 5)  # Go's matchType values
# shouldEscape in patternmatcher.go is meant to cover ".+()|{}$", but its
# bitmap sets bit b/8 of a byte, which is lost for b >= 64: only these are
# escaped, and '|', '{', '}' stay live regexp syntax ("a|b*" is "^a|b[^/]*$").
_ESCAPED = frozenset(".+()$")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _go_runes(path: str) -> str:
    """The path as Go's regexp sees it: an invalid byte reads as U+FFFD."""
    return path if path.isascii() else _SURROGATES.sub("\ufffd", path)


def _go_regexp(pattern: str) -> tuple[int, str]:  # noqa: PLR0912 (a lexer)
    """Pattern.compile: the match type and, for _REGEXP, the Go regexp."""
    # text/scanner yields U+FFFD for an invalid byte, and skips a leading BOM.
    chars = ["\ufffd" if _is_surrogate(c) else c for c in pattern]
    if chars[:1] == ["\ufeff"]:
        del chars[0]
    reg = ["^"]
    kind = _EXACT
    pos, n = 0, len(chars)
    for i in range(n):  # i counts loop turns, as in Go; pos counts runes
        if pos >= n:
            break
        ch = chars[pos]
        pos += 1
        if ch == "*":
            if pos < n and chars[pos] == "*":
                pos += 1
                if pos < n and chars[pos] == "/":  # treat **/ as **
                    pos += 1
                if pos >= n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        reg.append(".*")
                        kind = _REGEXP
                else:
                    reg.append("(.*/)?")
                    kind = _REGEXP
                if i == 0:
                    kind = _SUFFIX
            else:
                reg.append("[^/]*")
                kind = _REGEXP
        elif ch == "?":
            reg.append("[^/]")
            kind = _REGEXP
        elif ch in _ESCAPED:
            reg.append("\\" + ch)
        elif ch == "\\":
            if pos < n:
                reg.append("\\" + chars[pos])
                pos += 1
                kind = _REGEXP
            else:
                reg.append("\\")
        elif ch in "[]":
            reg.append(ch)
            kind = _REGEXP
        else:
            reg.append(ch)
    return kind, "".join(reg) + "$"


class _Pattern:
    """One compiled pattern; match() is Pattern.match."""

    __slots__ = ("cleaned", "error", "exclusion", "kind", "match", "regexp")

    def __init__(self, cleaned: str, exclusion: bool) -> None:
        self.cleaned = cleaned  # Pattern.String(): without the '!'
        self.exclusion = exclusion
        self.error: str | None = None  # why evaluating it fails
        self.regexp: re.Pattern[str] | None = None
        self.kind, go_re = _go_regexp(cleaned)
        self.match: Callable[[str, str], bool]
        if self.kind == _EXACT:
            self.match = lambda path, _: path == cleaned
        elif self.kind == _PREFIX:
            prefix = cleaned[:-2]
            self.match = lambda path, _: path.startswith(prefix)
        elif self.kind == _SUFFIX:
            self.match = self._suffix_matcher()
        else:
            self.match = self._regexp_match
            try:
                self.regexp = re.compile(_translate(go_re), re.ASCII)
            except (_BadPattern, re.error):
                # Go fails at the first evaluation, not in New; so do we.
                self.error = f"syntax error in pattern: {cleaned!r}"
            except _Unsupported:
                self.error = f"unsupported in this port (Go \\p class): {cleaned!r}"

    def _suffix_matcher(self) -> Callable[[str, str], bool]:
        cleaned = self.cleaned
        if cleaned.startswith("**"):
            suffix = cleaned[2:]
            bare = suffix[1:] if suffix.startswith("/") else None  # "**/foo" matches "foo"
            return lambda path, _: path.endswith(suffix) or path == bare
        # A leading BOM that the scanner skipped: Go slices 2 *bytes* off.
        raw = cleaned.encode("utf-8", "surrogateescape")[2:]
        return lambda path, _: path.encode("utf-8", "surrogateescape").endswith(raw)

    def _regexp_match(self, _: str, go_path: str) -> bool:
        if self.regexp is None:
            raise DockerignoreError(self.error)
        return self.regexp.search(go_path) is not None

    def match_quiet(self, path: str) -> bool:
        """match with the error dropped, as Go's `match, _ = pattern.match(...)`."""
        try:
            return self.match(path, _go_runes(path))
        except DockerignoreError:
            return False


def read_dockerignore(data: bytes) -> list[str]:
    """ignorefile.ReadAll: the patterns of a .dockerignore file's content."""
    patterns: list[str] = []
    lines = data.split(b"\n")
    if lines[-1] == b"":  # bufio.ScanLines: no empty token after the last '\n'
        lines.pop()
    for number, raw in enumerate(lines):
        # bufio.Scanner needs the line and one more byte in its 64 KiB buffer.
        if len(raw) >= _BUFIO_MAX_TOKEN:
            raise DockerignoreError("error reading .dockerignore: bufio.Scanner: token too long")
        line = raw.removesuffix(b"\r")
        if number == 0:
            line = line.removeprefix(b"\xef\xbb\xbf")
        text = line.decode("utf-8", "surrogateescape")
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


class PatternMatcher:
    """patternmatcher.PatternMatcher: patterns compiled once, matched per entry."""

    def __init__(self, patterns: Sequence[str]) -> None:
        """patternmatcher.New; raises DockerignoreError where New fails."""
        self._patterns: list[_Pattern] = []
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
            try:
                _check_match_syntax(p)
            except _BadPattern:
                raise DockerignoreError(f"syntax error in pattern: {p!r}") from None
            self._patterns.append(_Pattern(p, exclusion))
        # must_descend: TarWithOptions tests pattern.String() + "/".
        self._exclusion_dirs = [p.cleaned + "/" for p in self._patterns if p.exclusion]

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
        matched = False
        info: list[bool] = []
        for i, pattern in enumerate(patterns):
            match = parent[i] if parent else False  # the parent matched: so does path
            if not match:
                # Skip an inclusion once matched, an exclusion until matched.
                if pattern.exclusion != matched:
                    info.append(False)
                    continue
                match = pattern.match(path, go_path)
                if not match and not parent:
                    match = self._parent_matches(pattern, path)
            info.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, tuple(info)

    @staticmethod
    def _parent_matches(pattern: _Pattern, path: str) -> bool:
        """Whether pattern matches a directory above path (errors ignored)."""
        parent_path = _dir(path)
        if parent_path == ".":
            return False
        dirs = parent_path.split("/")
        return any(pattern.match_quiet("/".join(dirs[: i + 1])) for i in range(len(dirs)))

    def must_descend(self, dir_path: str) -> bool:
        """TarWithOptions walks into an excluded directory (without adding the
        directory itself to the tar) when an exception pattern, as a string,
        starts with "dir_path/"; otherwise it skips the whole directory."""
        dir_slash = dir_path + "/"
        return any(p.startswith(dir_slash) for p in self._exclusion_dirs)
