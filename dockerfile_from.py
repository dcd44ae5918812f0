"""Reads a Dockerfile's base images the way docker (BuildKit) does.

For --hash-base-images: the images a build pulls are found here, by parsing
only (no docker calls); resolving them to digests is done elsewhere.

Ported from moby/buildkit's frontend/dockerfile: parser/parser.go and
directives.go (lines, continuations, comments, parser directives),
parser/split_command.go and line_parsers.go (flags, words), shell/lex.go
(variable expansion), instructions/parse.go (FROM, ARG) and
dockerfile2llb/convert.go and platform.go (meta-args, automatic platform args,
stage references). Where docker's classic builder differs, BuildKit wins:

- the classic builder has no automatic platform args (BUILDPLATFORM, ...);
- it expands `ARG A=1 B=$A` with A still unset, BuildKit gives B=1;
- after `ARG A=1` a bare `ARG A` unsets A there (current BuildKit keeps 1;
  the BuildKit in Docker Engine 20.10 sets it empty);
- it lets the proxy build args (HTTP_PROXY, ...) reach FROM undeclared;
- it matches `FROM Name` to stage `name` (BuildKit rejects the uppercase
  name; here it is a stage, as that build can only succeed classically);
- it ignores `# syntax=`.

Every step is linear in the Dockerfile (a shell pattern costs the value's
length times the pattern's): no regular expressions, no rescanning, and
`${...}` nesting on an explicit stack, so that any depth docker builds is
read. What expansion copies is bounded by the input's size (see
_Budget), so `ARG B=$A$A C=$B$B ...` cannot grow without end.

Not covered: images named by `COPY --from=`/`RUN --mount=from=` and named
build contexts (`--build-context`); stages a `--target` makes unreachable are
still listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["BaseImage", "DockerfileError", "base_images"]


class DockerfileError(ValueError):
    """The Dockerfile cannot be read as docker would; one line, with its line number."""


class BaseImage(NamedTuple):
    """An image the build pulls."""

    name: str  # as docker will pull it, after expansion ("ubuntu:22.04")
    # The FROM's own --platform after expansion; the build platform for the
    # frontend (`# syntax=`), which runs on the builder; None: the target's.
    platform: str | None
    line: int  # 1-based line of the instruction; 0 for BUILDKIT_SYNTAX from the build args
    pinned: bool  # name contains "@sha256:"


# Go's unicode.IsSpace (strings.TrimSpace, bytes.TrimLeftFunc): Python's
# str.isspace also counts \x1c-\x1f, which docker keeps.
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
_SPACE += "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE_SET = frozenset(_SPACE)
_BLANKS = "\t\v\f\r "  # the parser's reWhitespace, which splits words
_BLANKS_TO_SPACE = str.maketrans(_BLANKS, " " * len(_BLANKS))
_DIRECTIVE_SPACE = "\t\n\f\r "  # Go's \s in the directive regexp
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_ALNUM = _ASCII_LETTERS | frozenset("0123456789")
_ASCII_DIGITS = "0123456789"

# bufio.Scanner's default limit, which docker's parser keeps: a longer line
# fails the build.
_MAX_LINE_BYTES = 64 * 1024 - 1


def _format_platform(platform: tuple[str, str, str]) -> str:
    return "/".join(part for part in platform if part)


# --- Lines -----------------------------------------------------------------


def _lines(dockerfile: str) -> list[str]:
    """The lines as docker's scanner reads them: split at \\n only, BOM dropped."""
    lines = dockerfile.split("\n")
    if not lines[-1]:
        lines.pop()  # the text after the last newline
    # A char is at most 4 bytes: only long lines need encoding to be measured.
    if lines and max(map(len, lines)) > _MAX_LINE_BYTES // 4:
        for number, text in enumerate(lines, 1):
            if len(text.encode("utf-8", "replace")) > _MAX_LINE_BYTES:
                raise DockerfileError(
                    f"line {number}: dockerfile line greater than max allowed size of "
                    f"{_MAX_LINE_BYTES}"
                )
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    return lines


# --- Parser directives -----------------------------------------------------

_DIRECTIVE_NAMES = frozenset({"syntax", "escape", "check"})


def _directive(text: str) -> tuple[str, str] | None:
    """(name, value) of `name = value`, as directiveRegexp
    `^([a-zA-Z][a-zA-Z0-9]*)\\s*=\\s*(.+?)\\s*$` matches it."""
    end = 0
    while end < len(text) and text[end] in (_ASCII_ALNUM if end else _ASCII_LETTERS):
        end += 1
    equals = end
    while equals < len(text) and text[equals] in _DIRECTIVE_SPACE:
        equals += 1
    if not end or equals == len(text) or text[equals] != "=":
        return None
    after = text[equals + 1 :]
    # (.+?) needs one char: after nothing but blanks it is the last blank.
    value = after.strip(_DIRECTIVE_SPACE) or after[-1:]
    return (text[:end].lower(), value) if value else None


class _Directives:
    """docker's DirectiveParser: directives only until the first other line."""

    def __init__(self, comment: str = "#", line: int = 0) -> None:
        self.comment, self.line = comment, line
        self.done = False
        self.seen: set[str] = set()

    def parse(self, text: str) -> tuple[str, str] | None:
        """(name, value) if this line is a directive; raises on a repeated one."""
        self.line += 1
        if self.done:
            return None
        found = None
        if text.startswith(self.comment):
            found = _directive(text[len(self.comment) :].lstrip(_SPACE))
        if not found or found[0] not in _DIRECTIVE_NAMES:
            self.done = True
            return None
        if found[0] in self.seen:
            raise DockerfileError(
                f"line {self.line}: only one {found[0]} parser directive can be used"
            )
        self.seen.add(found[0])
        return found


def _syntax_directive(lines: list[str]) -> tuple[str, int] | None:
    """The `# syntax=` image and its line, as BuildKit's DetectSyntax finds it.

    Unlike the instruction parser it skips a `#!` first line, and falls back
    to `// syntax=` (for other frontends); the JSON form is not read.
    """
    first = 1 if lines and lines[0].startswith("#!") else 0
    for comment in ("#", "//"):
        parser = _Directives(comment, first)
        for text in lines[first:]:
            try:
                # bufio.ScanLines drops one \r; the directive's \s* the rest.
                found = parser.parse(text.removesuffix("\r"))
            except DockerfileError:
                break  # docker keeps the directives before the repeated one
            if parser.done:
                break
            if found and found[0] == "syntax":
                return found[1].split(" ", 1)[0], parser.line
    return None


# --- Lines to instructions -------------------------------------------------


class _Instruction(NamedTuple):
    line: int  # first line, 1-based
    text: str  # continuation lines joined, comments inside dropped


def _trim_continuation(text: str, escape: str) -> tuple[str, bool]:
    """The line without its continuation char, and whether it ends the instruction.

    As docker's `([^E])E[ \\t]*$|^E[ \\t]*$`: the escape char E ending the line
    (but for blanks) continues it, unless the char before it is E too.
    """
    body = text.rstrip(" \t")
    if body.endswith(escape) and (len(body) == 1 or body[-2] != escape):
        return body[:-1], False
    return text, True


_HEREDOC_COMMANDS = frozenset({"run", "copy", "add"})


def _words(text: str, *, keep_quotes: bool) -> list[str]:  # noqa: PLR0912 (a lexer)
    """Whitespace-separated words, quotes grouping (for heredoc markers).

    With keep_quotes the quotes and backslashes stay, and `<< EOF` is one
    word, as BuildKit's raw lexing gives them; without, they are removed.
    """
    # Without quotes, escapes or the chars str.split takes for spaces and
    # Go does not, str.split is the lexer, unless a "<<" ends a word.
    if not any(ch in text for ch in "'\"\\\x1c\x1d\x1e\x1f"):
        words = text.split()
        if not keep_quotes or not any(word.endswith("<<") for word in words):
            return words
    words = []
    word: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
                if keep_quotes:
                    word.append(ch)
            elif ch == "\\" and quote == '"' and i < len(text) and text[i] in '"$\\':
                if keep_quotes:
                    word.append(ch)
                word.append(text[i])
                i += 1
            else:
                word.append(ch)
        elif ch in "'\"":
            quote, in_word = ch, True
            if keep_quotes:
                word.append(ch)
        elif ch == "\\" and i < len(text):
            if keep_quotes:
                word.append(ch)
            word.append(text[i])
            in_word = True
            i += 1
        elif ch in _SPACE_SET:
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif keep_quotes and ch == "<" and i < len(text) and text[i] == "<":
            # "<<" swallows the blanks after it into the same word.
            j = i + 1
            while j < len(text) and text[j] in " \t\r":
                j += 1
            word.append(text[i - 1 : j])
            in_word, i = True, j
        else:
            word.append(ch)
            in_word = True
    if quote:
        return []  # docker's lexer fails: a line with an open quote has no heredocs
    if in_word:
        words.append("".join(word))
    return words


def _heredoc(word: str) -> tuple[str, bool] | None:
    """(terminator, strip leading tabs) if the word opens a heredoc, as
    reHeredoc `^(\\d*)<<(-?)\\s*([^<]*)$` and heredocFromMatch read it."""
    if "<<" not in word:
        return None
    i = len(word) - len(word.lstrip(_ASCII_DIGITS))
    if not word.startswith("<<", i):
        return None
    chomp = word.startswith("-", i + 2)
    rest = word[i + 2 + chomp :].lstrip(_DIRECTIVE_SPACE)
    if not rest or "<" in rest:
        return None
    names = _words(rest, keep_quotes=False)
    return (names[0], chomp) if len(names) == 1 else None


def _heredocs(text: str, escape: str) -> list[tuple[str, bool]]:
    """The (terminator, strip leading tabs) of each heredoc a RUN/COPY/ADD opens."""
    cmd, _, args = _split_command(text, escape)
    cmd = cmd.lower()
    if cmd == "onbuild":
        cmd, _, args = _split_command(args, escape)
        cmd = cmd.lower()
    if cmd not in _HEREDOC_COMMANDS:
        return []
    if args.startswith("["):  # the JSON form has no heredocs
        try:
            parsed = json.loads(args)
        except (ValueError, RecursionError):  # deep arrays are no list of strings either
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return []
    return [found for word in _words(text, keep_quotes=True) if (found := _heredoc(word))]


def _escape_directive(lines: list[str]) -> tuple[str, int]:
    """The escape char, and the first line after the parser directives."""
    directives = _Directives()
    escape = "\\"
    i = 0
    while i < len(lines) and not directives.done:
        found = directives.parse(lines[i].rstrip("\r\n").lstrip(_SPACE))
        if found and found[0] == "escape":
            if found[1] not in ("\\", "`"):
                raise DockerfileError(
                    f"line {i + 1}: invalid escape token {found[1]!r} does not match ` or \\"
                )
            escape = found[1]
        if found:
            i += 1  # else the line is read as any other
    return escape, i


def _after_heredocs(lines: list[str], i: int, instruction: _Instruction, escape: str) -> int:
    """The line after the bodies of the heredocs the instruction opens at line i."""
    for name, chomp in _heredocs(instruction.text, escape):
        while i < len(lines):
            text = lines[i].rstrip("\r\n")
            i += 1
            if (text.lstrip("\t") if chomp else text) == name:
                break
        else:
            raise DockerfileError(f"line {instruction.line}: unterminated heredoc")
    return i


def _instructions(lines: list[str]) -> tuple[list[_Instruction], str]:
    """The instructions that may be a FROM or an ARG, and the escape char, as
    docker's parser.Parse reads them (others are only read for heredocs)."""
    escape, i = _escape_directive(lines)
    continuing = (escape, " ", "\t")
    result: list[_Instruction] = []
    while i < len(lines):
        text = lines[i].rstrip("\r\n").lstrip(_SPACE)
        i += 1
        if not text or text[0] == "#":
            continue  # blank line or comment
        start = i
        if text[-1] in continuing:
            body, ended = _trim_continuation(text, escape)
            if ended and not body:
                continue
            parts = [body]
            while not ended and i < len(lines):
                text = lines[i].rstrip("\r\n")
                i += 1
                # docker drops comment and blank lines inside an instruction.
                stripped = text.lstrip(_SPACE)
                if not stripped or stripped[0] == "#":
                    continue
                body, ended = _trim_continuation(text, escape)
                parts.append(body)
            text = "".join(parts)
        instruction = _Instruction(start, text)
        if text[:3].lower() in ("fro", "arg"):  # the others need not be split
            result.append(instruction)
        if "<<" in text:
            i = _after_heredocs(lines, i, instruction, escape)
    return result, escape


def _command(text: str) -> tuple[str, int]:
    """The first word of a stripped instruction and where it ends."""
    end = 0
    while end < len(text) and text[end] not in _BLANKS:
        end += 1
    return text[:end], end


def _split_command(text: str, escape: str) -> tuple[str, list[str], str]:
    """(command, flags, rest) as docker's splitCommand."""
    text = text.strip(_SPACE)
    command, end = _command(text)
    if end == len(text):
        return command, [], ""
    rest, flags = _extract_flags(text[end:].lstrip(_BLANKS), escape)
    return command, flags, rest.strip(_SPACE)


def _extract_flags(text: str, escape: str) -> tuple[str, list[str]]:
    """The leading `--flag` words (quotes and escapes removed) and the rest."""
    flags: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i] in _SPACE_SET:
            i += 1
        if not text.startswith("--", i):
            return text[i:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while i < len(text) and (quote or text[i] not in _SPACE_SET):
            ch = text[i]
            i += 1
            if quote and ch == quote:
                quote = ""
                continue
            if not quote and ch in "'\"":
                quote, blank_ok = ch, True
                continue
            if ch == escape:
                if i == len(text):
                    break  # an escape char at the end is dropped
                ch = text[i]
                i += 1
            word.append(ch)
        flag = "".join(word)
        if flag == "--":
            return text[i:], flags
        if flag or blank_ok:
            flags.append(flag)
        if i >= len(text):
            return "", flags


def _split_blanks(text: str) -> list[str]:
    """reWhitespace.Split of a stripped text (no empty words)."""
    return [word for word in text.translate(_BLANKS_TO_SPACE).split(" ") if word]


def _arg_words(text: str, escape: str) -> list[str]:  # noqa: PLR0912 (a lexer)
    """docker's parseWords: words keeping their quotes and escapes (for ARG)."""
    words: list[str] = []
    word: list[str] = []
    in_word = blank_ok = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if not in_word:
            if ch in _SPACE_SET:
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == len(text):
                    continue
                word.append(ch)
                ch = text[i]
                i += 1
            word.append(ch)
            continue
        if ch in _SPACE_SET:
            if blank_ok or word:
                words.append("".join(word))
            word, in_word, blank_ok = [], False, False
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i == len(text):
                continue
            word.append(ch)
            ch = text[i]
            i += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


# --- Shell patterns --------------------------------------------------------

_STAR, _ANY = 0, 1  # the pattern parts that are not literal chars


def _pattern_parts(pattern: str) -> list[int | str]:
    """docker's convertShellPatternToRegex: `*` any run, `?` any char (neither
    a newline, as Go's `.`), `\\` escaping `*`, `?` or `\\` (before `}` or `/`
    it is dropped); other chars literal. `**` is kept as one `*`: both
    match the same spans, greedy or not."""
    parts: list[int | str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not parts or parts[-1] != _STAR:
                parts.append(_STAR)
            continue
        if ch == "?":
            parts.append(_ANY)
            continue
        if ch == "\\":
            following = pattern[i : i + 1]
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise DockerfileError(
                    f"invalid pattern ({pattern}) in substitution: "
                    f"invalid escape '\\{following or chr(0xFFFD)}'"
                )
            ch = following
            i += 1
        parts.append(ch)
    return parts


def _reverse_pattern(pattern: str) -> str:
    """BuildKit's reversePattern: reversed, each backslash kept before the char it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        step = 2 if pattern[i] == "\\" and i + 1 < len(pattern) else 1
        tokens.append(pattern[i : i + step])
        i += step
    return "".join(reversed(tokens))


class _Automaton:
    """A pattern's NFA run bit-parallel: bit j of a state set means "the first
    j parts matched". No `*` follows another, so one shift closes a set
    under a `*`'s empty match. For these patterns (no alternation) Go's
    leftmost-first match is the longest from its start with greedy stars,
    the shortest with lazy ones, which is what a state set can tell."""

    def __init__(self, parts: list[int | str]) -> None:
        literals: dict[str, int] = {}
        anychar = stars = 0
        for j, part in enumerate(parts):
            if isinstance(part, str):
                literals[part] = literals.get(part, 0) | 1 << j
            elif part == _STAR:
                stars |= 1 << j
            else:
                anychar |= 1 << j
        # The parts a char moves past; `*` and `?` take any char but a newline.
        self.moves = {ch: bits | anychar for ch, bits in literals.items()}
        self.moves["\n"] = literals.get("\n", 0)
        self.other = anychar
        self.stars = stars
        self.accept = 1 << len(parts)
        self.start = 1 | (stars & 1) << 1

    def step(self, states: int, ch: str) -> int:
        stars = self.stars
        states = (states & self.moves.get(ch, self.other)) << 1 | (
            states & stars if ch != "\n" else 0
        )
        return states | (states & stars) << 1

    def prefix(self, chars: str, longest: bool) -> int:
        """The length of the longest or shortest match at the start, or -1."""
        states, accept = self.start, self.accept
        end = 0 if states & accept else -1
        if end == 0 and not longest:
            return 0
        for i, ch in enumerate(chars, 1):
            states = self.step(states, ch)
            if not states:
                break
            if states & accept:
                end = i
                if not longest:
                    break
        return end

    def match_starts(self, value: str) -> bytearray:
        """1 at each position where a match of the reversed parts ends when
        this automaton is of the reversed parts: where a match starts."""
        states, accept, start = self.start, self.accept, self.start
        starts = bytearray(len(value) + 1)
        starts[len(value)] = 1 if states & accept else 0
        for i in range(len(value) - 1, -1, -1):
            states = self.step(states, value[i]) | start
            if states & accept:
                starts[i] = 1
        return starts

    def longest_from(self, value: str, begin: int) -> int:
        """The end of the longest match starting at begin (one is known to)."""
        states, accept = self.start, self.accept
        end = begin
        i = begin
        while states and i < len(value):
            states = self.step(states, value[i])
            i += 1
            if states & accept:
                end = i
        return end


def _trim(pattern: str, value: str, longest: bool, suffix: bool) -> str:
    """${value#pattern} and ##, or %, %% with suffix: BuildKit's trimPrefix and
    trimSuffix (which reverses both pattern and value)."""
    if suffix:
        length = _Automaton(_pattern_parts(_reverse_pattern(pattern))).prefix(value[::-1], longest)
        return value[: len(value) - length] if length > 0 else value
    length = _Automaton(_pattern_parts(pattern)).prefix(value, longest)
    return value[length:] if length > 0 else value


def _expand_template(template: str) -> list[str | None]:
    """Go's Regexp.Expand of a ReplaceAllString template: `$0`/`${0}` the
    match (None here), any other `$name` or `${name}` nothing (the regexp
    has no groups), `$$` a `$`, a `$` that is neither itself."""
    pieces: list[str | None] = []
    i = 0
    while (dollar := template.find("$", i)) >= 0:
        pieces.append(template[i:dollar])
        i = dollar + 1
        if template.startswith("$", i):
            pieces.append("$")
            i += 1
            continue
        brace = template.startswith("{", i)
        end = i + brace
        while end < len(template) and (
            template[end].isalpha() or template[end].isdecimal() or template[end] == "_"
        ):
            end += 1
        name = template[i + brace : end]
        if not name or (brace and not template.startswith("}", end)):
            pieces.append("$")
            continue
        i = end + brace
        if name == "0":
            pieces.append(None)
    pieces.append(template[i:])
    return [piece for piece in pieces if piece != ""]


def _replace(pattern: str, value: str, replacement: str, replace_all: bool, budget: _Budget) -> str:
    """${value/pattern/replacement} and //: BuildKit's greedy, unanchored
    regexp, the first match replaced as is, or Go's ReplaceAllString."""
    parts = _pattern_parts(pattern)
    forward, backward = _Automaton(parts), _Automaton(parts[::-1])
    starts = backward.match_starts(value)
    if not replace_all:
        begin = starts.find(1)
        if begin < 0:
            return value
        end = forward.longest_from(value, begin)
        budget.spend(len(value) + len(replacement))
        return value[:begin] + replacement + value[end:]
    template = _expand_template(replacement)
    out: list[str] = []
    search = last_end = 0
    while search <= len(value):
        begin = starts.find(1, search)
        if begin < 0:
            break
        end = forward.longest_from(value, begin)
        out.append(value[last_end:begin])
        # Go skips an empty match right after the previous match.
        if end > last_end or begin == 0:
            for piece in template:
                out.append(value[begin:end] if piece is None else piece)
                budget.spend(len(out[-1]))
        last_end = end
        # Go goes on at the match's end, and at least one char further.
        search = max(search + 1, end)
    out.append(value[last_end:])
    budget.spend(len(value))
    return "".join(out)


# --- Variable expansion ----------------------------------------------------

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _Budget:
    """What expansion may copy and scan for one Dockerfile, in chars.

    docker has no bound, but a few lines can ask for exabytes
    (`ARG B=$A$A C=$B$B ...`); this allows far more than any real use.
    """

    def __init__(self, input_size: int) -> None:
        self.limit = (1 << 24) + 16 * input_size
        self.left = self.limit

    def spend(self, chars: int) -> None:
        self.left -= chars
        if self.left < 0:
            raise DockerfileError(f"expansions copy more than {self.limit} characters")

    def join(self, pieces: list[str]) -> str:
        if len(pieces) == 1:
            return pieces[0]  # no copy
        self.spend(sum(map(len, pieces)))
        return "".join(pieces)


_TOP, _QUOTED, _MODIFIED, _PATTERN, _REPLACEMENT = range(5)


class _Frame:
    """An open construct of a word: the word itself (_TOP), "...", or the
    word inside ${name<modifier>...} (for / first the pattern, then the
    replacement). BuildKit recurses; this is its stack, made explicit."""

    __slots__ = ("kind", "modifier", "name", "out", "pattern", "raw_escapes")

    def __init__(
        self, kind: int, raw_escapes: bool, name: str = "", modifier: str = "", pattern: str = ""
    ) -> None:
        self.kind, self.raw_escapes = kind, raw_escapes
        self.name, self.modifier, self.pattern = name, modifier, pattern
        self.out: list[str] = []


class _Expander:
    """docker's shell.Lex ProcessWord: quotes removed, escapes and $ expanded."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, budget: _Budget) -> None:
        self.text, self.env, self.escape, self.budget = text, env, escape, budget
        self.pos = 0
        self.stack = [_Frame(_TOP, False)]

    def fail(self, message: str) -> DockerfileError:
        """The error as docker reports it: a `${` open at the end of the
        text turns any error into its own (the outermost one's wins)."""
        if self.pos >= len(self.text):
            for frame in self.stack:
                if frame.kind == _PATTERN:
                    return DockerfileError("syntax error: missing '/' in ${}")
                if frame.kind in (_MODIFIED, _REPLACEMENT):
                    return DockerfileError("syntax error: missing '}'")
        return DockerfileError(message)

    def expand(self) -> str:
        try:
            return self.run()
        except DockerfileError as e:
            raise self.fail(str(e)) from None

    def run(self) -> str:  # noqa: PLR0912 (a lexer)
        text, escape, stack = self.text, self.escape, self.stack
        while True:
            frame = stack[-1]
            out = frame.out
            ch = text[self.pos] if self.pos < len(text) else ""
            if frame.kind == _QUOTED:
                self.quoted(frame, ch)
                continue
            stop = "/" if frame.kind == _PATTERN else "}" if frame.kind != _TOP else ""
            if not ch:
                if not stop:
                    return self.budget.join(out) if out else ""
                raise DockerfileError(
                    f"unexpected end of statement while looking for matching {stop}"
                )
            if ch == stop:
                self.pos += 1
                stack.pop()
                self.close(frame)
            elif ch == "$":
                self.dollar()
            elif ch == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    self.pos = len(text)  # read to the end, as docker's scanner
                    raise DockerfileError(
                        "unexpected end of statement while looking for matching single-quote"
                    )
                out.append(text[self.pos + 1 : end])
                self.pos = end + 1
            elif ch == '"':
                self.pos += 1
                stack.append(_Frame(_QUOTED, frame.raw_escapes))
            else:
                self.pos += 1
                if ch == escape:
                    if frame.raw_escapes:
                        out.append(ch)
                    if self.pos == len(text):
                        continue  # the end: dropped, or missing the stop
                    ch = text[self.pos]
                    self.pos += 1
                out.append(ch)

    def quoted(self, frame: _Frame, ch: str) -> None:
        """One step inside "...": only $ and the escape char are special."""
        if not ch:
            raise DockerfileError(
                "unexpected end of statement while looking for matching double-quote"
            )
        if ch == '"':
            self.pos += 1
            self.stack.pop()
            self.stack[-1].out.append(self.budget.join(frame.out) if frame.out else "")
            return
        if ch == "$":
            self.dollar()
            return
        self.pos += 1
        if ch == self.escape:
            if frame.raw_escapes:
                frame.out.append(ch)
            following = self.text[self.pos : self.pos + 1]
            if not following:
                return
            if following in ('"', "$", self.escape):
                ch = following
                self.pos += 1
        frame.out.append(ch)

    def name(self) -> str:
        text, start = self.text, self.pos
        ch = text[start : start + 1]
        if ch.isdecimal():
            while self.pos < len(text) and text[self.pos].isdecimal():
                self.pos += 1
        elif ch in _SPECIAL_PARAMS and ch:
            self.pos += 1
        else:
            # Go's unicode.IsLetter and IsDigit: isalnum takes more.
            while self.pos < len(text) and (
                (ch := text[self.pos]).isalpha() or ch.isdecimal() or ch == "_"
            ):
                self.pos += 1
        return text[start : self.pos]

    def dollar(self) -> None:
        """After a `$`: a value appended, or a ${...} frame opened."""
        text, out = self.text, self.stack[-1].out
        self.pos += 1
        if not text.startswith("{", self.pos):
            name = self.name()
            out.append(self.env.get(name, "") if name else "$")
            return
        self.pos += 1
        if self.pos == len(text):
            raise DockerfileError("syntax error: missing '}'")
        if text[self.pos] in "{}:":
            raise DockerfileError("syntax error: bad substitution")
        name = self.name()
        if self.pos == len(text):
            raise DockerfileError("syntax error: missing '}'")
        ch = text[self.pos]
        self.pos += 1
        if ch == "}":
            out.append(self.env.get(name, ""))
            return
        if ch == "/":
            replace_all = text.startswith("/", self.pos)
            self.pos += replace_all
            self.stack.append(_Frame(_PATTERN, True, name, "//" if replace_all else "/"))
            return
        modifier = ch
        if ch == ":":
            ch = text[self.pos : self.pos + 1]
            self.pos += 1 if ch else 0
            modifier += ch
            if ch and ch in "#%":
                raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        elif ch not in "+-?#%":
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        self.stack.append(_Frame(_MODIFIED, ch != "" and ch in "#%", name, modifier))

    def close(self, frame: _Frame) -> None:
        """A ${...} word ended: its result goes to the enclosing frame."""
        word = self.budget.join(frame.out) if frame.out else ""
        if frame.kind == _PATTERN:
            self.stack.append(_Frame(_REPLACEMENT, True, frame.name, frame.modifier, word))
            return
        value = self.env.get(frame.name, "")
        if frame.kind == _REPLACEMENT:
            result = _replace(frame.pattern, value, word, frame.modifier == "//", self.budget)
        else:
            result = self.modify(frame.name, frame.modifier, word)
        self.stack[-1].out.append(result)

    def modify(self, name: str, modifier: str, word: str) -> str:
        """${name<modifier>word}: the modifier being -, +, ?, #, %, ## or %%, maybe after :."""
        ch = modifier[-1]
        is_set = name in self.env
        value = self.env.get(name, "")
        unset = not is_set or (modifier[0] == ":" and not value)
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if unset:
                empty = "is not allowed to be unset" if not is_set else "is not allowed to be empty"
                raise DockerfileError(f"{name}: {word or empty}")
            return value
        if ch not in "#%":
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        longest = word.startswith(ch)
        self.budget.spend(len(value))
        return _trim(word[1:] if longest else word, value, longest, ch == "%")


def _expand(text: str, env: Mapping[str, str], escape: str, line: int, budget: _Budget) -> str:
    if "$" not in text and "'" not in text and '"' not in text and escape not in text:
        return text  # nothing to expand or remove
    # The usual $NAME or ${NAME}: an ASCII identifier is a name to docker too.
    name = text[2:-1] if text.startswith("${") and text.endswith("}") else text[1:]
    if text[0] == "$" and name.isascii() and name.isidentifier():
        return env.get(name, "")
    try:
        return _Expander(text, env, escape, budget).expand()
    except DockerfileError as e:
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise DockerfileError(f"line {line}: {e} in {shown!r}") from None


# --- Automatic platform args -----------------------------------------------


def _automatic_args(
    build_platform: tuple[str, str, str],
    target_platform: tuple[str, str, str],
    build_args: Mapping[str, str],
    target_stage: str,
) -> dict[str, str]:
    """BuildKit's global BUILD*/TARGET* args; build args override them undeclared."""
    args = {
        "BUILDPLATFORM": _format_platform(build_platform),
        "BUILDOS": build_platform[0],
        "BUILDOSVERSION": "",
        "BUILDARCH": build_platform[1],
        "BUILDVARIANT": build_platform[2],
        "TARGETPLATFORM": _format_platform(target_platform),
        "TARGETOS": target_platform[0],
        "TARGETOSVERSION": "",
        "TARGETARCH": target_platform[1],
        "TARGETVARIANT": target_platform[2],
        "TARGETSTAGE": target_stage,
    }
    return {name: build_args.get(name, value) for name, value in args.items()}


# --- FROM and the meta-args ------------------------------------------------

_STAGE_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_."


class _Stage(NamedTuple):
    line: int
    base: str  # before expansion
    platform: str  # the --platform flag before expansion; "" when absent
    name: str  # lowercased; "" when unnamed


def _parse_from(line: int, flags: list[str], args: str) -> _Stage:
    platform: str | None = None
    for flag in flags:
        name, eq, value = flag.partition("=")
        if not name.startswith("--"):
            raise DockerfileError(f"line {line}: FROM: arg should start with -- : {flag}")
        if name != "--platform":
            raise DockerfileError(f"line {line}: FROM: unknown flag: {name}")
        if platform is not None:
            raise DockerfileError(f"line {line}: FROM: duplicate flag specified: {name}")
        if not eq:
            raise DockerfileError(f"line {line}: FROM: missing a value on flag: {name}")
        platform = value
    words = _split_blanks(args)
    stage = ""
    # Go's strings.EqualFold: casefold, as U+017F (long s) is an s there too.
    if len(words) == 3 and words[1].casefold() == "as":
        stage = words[2].lower()
        if not ("a" <= stage[:1] <= "z" and not stage.lstrip(_STAGE_NAME_CHARS)):
            raise DockerfileError(
                f"line {line}: invalid name for build stage: {words[2]!r}, "
                "name can't start with a number or contain symbols"
            )
    elif len(words) != 1:
        raise DockerfileError(f"line {line}: FROM requires either one or three arguments")
    return _Stage(line, words[0], platform or "", stage)


class _MetaArg(NamedTuple):
    line: int
    name: str
    default: str | None  # before expansion; None when declared without one


def _parse_arg(line: int, args: str, escape: str) -> list[tuple[str, str | None]]:
    """The (name, default before expansion or None) of an ARG."""
    words = _arg_words(args, escape)
    if not words:
        raise DockerfileError(f"line {line}: ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, eq, value = word.partition("=")
        if not name:
            raise DockerfileError(f"line {line}: ARG names can not be blank")
        pairs.append((name, value if eq else None))
    return pairs


def _syntax_image(
    lines: list[str], build_args: Mapping[str, str], build_platform: str
) -> BaseImage | None:
    """The frontend image: BUILDKIT_SYNTAX from the build args, else `# syntax=`."""
    found: tuple[str, int] | None
    if "BUILDKIT_SYNTAX" in build_args:
        value = build_args["BUILDKIT_SYNTAX"].strip()
        found = (value.split(" ", 1)[0], 0) if value else None
    else:
        found = _syntax_directive(lines)
    # dockerfile.v0 names the frontend built into BuildKit: nothing to pull.
    if not found or not found[0] or found[0] == "dockerfile.v0":
        return None
    name, line = found
    return BaseImage(name, build_platform, line, "@sha256:" in name)


def _read(lines: list[str]) -> tuple[list[_MetaArg], list[_Stage], str]:
    """The ARGs before the first FROM, the FROMs, and the escape char."""
    instructions, escape = _instructions(lines)
    meta_args: list[_MetaArg] = []
    stages: list[_Stage] = []
    for instruction in instructions:
        if stages and instruction.text[:3].lower() == "arg":
            continue  # not a meta-arg
        command, flags, args = _split_command(instruction.text, escape)
        command = command.lower()
        if command == "from":
            stages.append(_parse_from(instruction.line, flags, args))
        elif command == "arg" and not stages:
            for name, default in _parse_arg(instruction.line, args, escape):
                meta_args.append(_MetaArg(instruction.line, name, default))
    return meta_args, stages, escape


def base_images(
    dockerfile: str,
    build_args: Mapping[str, str],
    build_platform: tuple[str, str, str],
    target_platform: tuple[str, str, str],
    *,
    target_stage: str | None = None,
) -> list[BaseImage]:
    """The images the build pulls, in order: the frontend, then one per FROM of an image.

    build_args: the --build-arg values docker sends (name -> value);
    build_platform: the engine's (os, architecture, variant), normalized,
    for BUILDPLATFORM and the other BUILD* args; target_platform: the
    build's (the first of a --platform list, else the engine's), normalized,
    for TARGETPLATFORM and the other TARGET* args; target_stage: --target
    (only TARGETSTAGE depends on it). A FROM of an earlier stage or of
    scratch is no image. Raises DockerfileError on what docker would refuse
    in the lines, the parser directives, an ARG before the first FROM, or a
    FROM.
    """
    lines = _lines(dockerfile)
    syntax = _syntax_image(lines, build_args, _format_platform(build_platform))
    images = [syntax] if syntax else []
    meta_args, stages, escape = _read(lines)

    stage_name = target_stage or (stages[-1].name if stages else "") or "default"
    env = _automatic_args(build_platform, target_platform, build_args, stage_name)
    budget = _Budget(len(dockerfile) + sum(len(k) + len(v) for k, v in build_args.items()))
    # One at a time: a default sees the args declared before it.
    for arg in meta_args:
        if arg.name in build_args:
            env[arg.name] = build_args[arg.name]
        elif arg.default is not None:
            env[arg.name] = _expand(arg.default, env, escape, arg.line, budget)

    stage_names: set[str] = set()
    for stage in stages:
        name = _expand(stage.base, env, escape, stage.line, budget)
        if not name:
            raise DockerfileError(
                f"line {stage.line}: base name ({stage.base}) should not be blank"
            )
        platform = _expand(stage.platform, env, escape, stage.line, budget)
        if stage.platform and not platform:
            raise DockerfileError(
                f"line {stage.line}: empty platform value from expression {stage.platform}"
            )
        if name.lower() not in stage_names and name != "scratch":
            images.append(BaseImage(name, platform or None, stage.line, "@sha256:" in name))
        if stage.name:
            stage_names.add(stage.name)
    return images
