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

Not covered: images named by `COPY --from=`/`RUN --mount=from=` and named
build contexts (`--build-context`); stages a `--target` makes unreachable are
still listed.
"""

from __future__ import annotations

import json
import re
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


# --- Parser directives -----------------------------------------------------

_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_DIRECTIVE_NAMES = frozenset({"syntax", "escape", "check"})


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
        if not text.startswith(self.comment):
            self.done = True
            return None
        match = _DIRECTIVE.fullmatch(text[len(self.comment) :].lstrip())
        name = match.group(1).lower() if match else ""
        if not match or name not in _DIRECTIVE_NAMES:
            self.done = True
            return None
        if name in self.seen:
            raise DockerfileError(f"line {self.line}: only one {name} parser directive can be used")
        self.seen.add(name)
        return name, match.group(2)


def _syntax_directive(dockerfile: str) -> tuple[str, int] | None:
    """The `# syntax=` image and its line, as BuildKit's DetectSyntax finds it.

    Unlike the instruction parser it skips a `#!` first line, and falls back
    to `// syntax=` (for other frontends); the JSON form is not read.
    """
    lines = [line.rstrip("\r") for line in dockerfile.removeprefix("\ufeff").split("\n")]
    first = 0
    if lines and lines[0].startswith("#!"):
        lines, first = lines[1:], 1
    for comment in ("#", "//"):
        parser = _Directives(comment, first)
        for text in lines:
            try:
                found = parser.parse(text)
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


def _is_comment(text: str) -> bool:
    return text.lstrip().startswith("#")


def _continuation(escape: str) -> re.Pattern[str]:
    # As docker's: the escape char ending a line continues it, unless the
    # char before it is the escape char too.
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")


_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)", re.DOTALL)
_HEREDOC_COMMANDS = frozenset({"run", "copy", "add"})


def _words(text: str, *, keep_quotes: bool) -> list[str]:  # noqa: PLR0912 (a lexer)
    """Whitespace-separated words, quotes grouping (for heredoc markers).

    With keep_quotes the quotes and backslashes stay, and `<< EOF` is one
    word, as BuildKit's raw lexing gives them; without, they are removed.
    """
    words: list[str] = []
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
        elif ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif keep_quotes and text.startswith("<<", i - 1):
            # "<<" swallows the blanks after it into the same word.
            j = i + 1
            while j < len(text) and text[j] in " \t\r":
                j += 1
            word.append(text[i - 1 : j])
            in_word, i = True, j
        else:
            word.append(ch)
            in_word = True
    if in_word:
        words.append("".join(word))
    return words


def _heredocs(text: str, escape: str) -> list[tuple[str, bool]]:
    """The (terminator, strip leading tabs) of each heredoc a RUN/COPY/ADD opens."""
    cmd, _, args = _split_command(text, escape)
    cmd = cmd.lower()
    if cmd == "onbuild":
        cmd, _, args = _split_command(args, escape)
        cmd = cmd.lower()
    if cmd not in _HEREDOC_COMMANDS or "<<" not in text:
        return []
    if args.startswith("["):  # the JSON form has no heredocs
        try:
            parsed = json.loads(args)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return []
    found: list[tuple[str, bool]] = []
    for word in _words(text, keep_quotes=True):
        match = _HEREDOC.fullmatch(word)
        if match and match.group(3):
            names = _words(match.group(3), keep_quotes=False)
            if len(names) == 1:
                found.append((names[0], match.group(2) == "-"))
    return found


def _instructions(dockerfile: str) -> tuple[list[_Instruction], str]:
    """The instructions and the escape char, as docker's parser.Parse reads them."""
    lines = dockerfile.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the text after the last newline
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    directives = _Directives()
    escape = "\\"
    continuation = _continuation(escape)

    def directive(text: str) -> None:
        nonlocal escape, continuation
        found = directives.parse(text)
        if found and found[0] == "escape":
            if found[1] not in ("\\", "`"):
                raise DockerfileError(
                    f"line {directives.line}: invalid escape token {found[1]!r} "
                    "does not match ` or \\"
                )
            escape, continuation = found[1], _continuation(found[1])

    def trim(text: str) -> tuple[str, bool]:
        """The line without its continuation char, and whether it ends the instruction."""
        if continuation.search(text):
            return continuation.sub(r"\1", text, count=1), False
        return text, True

    result: list[_Instruction] = []
    i = 0
    while i < len(lines):
        text = lines[i].rstrip("\r\n").lstrip()
        i += 1
        directive(text)
        start = i
        body, ended = trim("" if _is_comment(text) else text)
        if ended and not body:
            continue  # blank line or comment
        parts = [body]
        while not ended and i < len(lines):
            raw = lines[i]
            i += 1
            text = raw.rstrip("\r\n")
            directive(text)
            # docker drops comment and blank lines inside an instruction.
            if _is_comment(raw) or not text.strip():
                continue
            body, ended = trim(text)
            parts.append(body)
        instruction = _Instruction(start, "".join(parts))
        result.append(instruction)
        for name, chomp in _heredocs(instruction.text, escape):
            while i < len(lines):
                text = lines[i].rstrip("\r\n")
                i += 1
                if (text.lstrip("\t") if chomp else text) == name:
                    break
            else:
                raise DockerfileError(f"line {start}: unterminated heredoc")
    return result, escape


_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def _split_command(text: str, escape: str) -> tuple[str, list[str], str]:
    """(command, flags, rest) as docker's splitCommand."""
    parts = _WHITESPACE.split(text.strip(), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(text: str, escape: str) -> tuple[str, list[str]]:
    """The leading `--flag` words (quotes and escapes removed) and the rest."""
    flags: list[str] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if not text.startswith("--", i):
            return text[i:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while i < len(text) and (quote or not text[i].isspace()):
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
            if ch.isspace():
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
        if ch.isspace():
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


# --- Variable expansion ----------------------------------------------------

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _Expander:
    """docker's shell.Lex ProcessWord: quotes removed, escapes and $ expanded."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def until(self, stop: str, raw_escapes: bool) -> str:
        """Up to `stop` (consumed), or to the end when stop is ""."""
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == "'":
                out.append(self.single_quoted())
            elif ch == '"':
                out.append(self.double_quoted(raw_escapes))
            else:
                self.pos += 1
                if ch == self.escape:
                    if raw_escapes:
                        out.append(ch)
                    if self.pos == len(self.text):
                        break
                    ch = self.next()
                out.append(ch)
        if stop:
            raise DockerfileError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise DockerfileError(
                "unexpected end of statement while looking for matching single-quote"
            )
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def double_quoted(self, raw_escapes: bool) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise DockerfileError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.pos
        ch = self.peek()
        if ch.isdecimal():
            while self.peek().isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch in _SPECIAL_PARAMS and ch:
            self.pos += 1
            return ch
        while (ch := self.peek()) and (ch.isalnum() or ch == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        if not self.peek():
            raise DockerfileError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise DockerfileError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == "/":
            return self.replace(name)
        if not ch:
            raise DockerfileError("syntax error: missing '}'")
        modifier = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self.next()
            modifier += ch
        elif ch not in "+-?#%":
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        raw_escapes = ch != "" and ch in "#%"
        if null_is_unset and raw_escapes:
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        word = self.word_until("}", raw_escapes)
        return self.modify(name, modifier, word)

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
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "#":
            return _trim_prefix(word, value, greedy)
        return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]

    def word_until(self, stop: str, raw_escapes: bool) -> str:
        try:
            return self.until(stop, raw_escapes)
        except DockerfileError:
            if not self.peek():
                raise DockerfileError(f"syntax error: missing '{stop}'") from None
            raise

    def replace(self, name: str) -> str:
        """${name/pattern/replacement}, or // for all."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self.word_until("/", True)
        replacement = self.word_until("}", True)
        regex = _pattern_regex(pattern, greedy=True)
        value = self.env.get(name, "")
        return regex.sub(lambda _: replacement, value, count=0 if replace_all else 1)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool = False) -> re.Pattern[str]:
    """docker's convertShellPatternToRegex: `*`, `?` and backslash escapes."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise DockerfileError(f"invalid pattern ({pattern}) in substitution")
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end() :] if match else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern reversed, each backslash escape kept before its char."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        step = 2 if pattern[i] == "\\" and i + 1 < len(pattern) else 1
        tokens.append(pattern[i : i + step])
        i += step
    return "".join(reversed(tokens))


def _expand(text: str, env: Mapping[str, str], escape: str, line: int) -> str:
    try:
        return _Expander(text, env, escape).until("", False)
    except DockerfileError as e:
        raise DockerfileError(f"line {line}: {e} in {text!r}") from None


# --- Automatic platform args -----------------------------------------------


def _format_platform(platform: tuple[str, str, str]) -> str:
    return "/".join(part for part in platform if part)


def _automatic_args(
    build: tuple[str, str, str],
    target: tuple[str, str, str],
    build_args: Mapping[str, str],
    target_stage: str,
) -> dict[str, str]:
    """BuildKit's global BUILD*/TARGET* args; build args override them undeclared."""
    args = {
        "BUILDPLATFORM": _format_platform(build),
        "BUILDOS": build[0],
        "BUILDOSVERSION": "",
        "BUILDARCH": build[1],
        "BUILDVARIANT": build[2],
        "TARGETPLATFORM": _format_platform(target),
        "TARGETOS": target[0],
        "TARGETOSVERSION": "",
        "TARGETARCH": target[1],
        "TARGETVARIANT": target[2],
        "TARGETSTAGE": target_stage,
    }
    return {name: build_args.get(name, value) for name, value in args.items()}


# --- FROM and the meta-args ------------------------------------------------

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")


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
    words = _WHITESPACE.split(args) if args else []
    stage = ""
    if len(words) == 3 and words[1].lower() == "as":
        stage = words[2].lower()
        if not _STAGE_NAME.fullmatch(stage):
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
    dockerfile: str, build_args: Mapping[str, str], build_platform: str
) -> BaseImage | None:
    """The frontend image: BUILDKIT_SYNTAX from the build args, else `# syntax=`."""
    found: tuple[str, int] | None
    if "BUILDKIT_SYNTAX" in build_args:
        value = build_args["BUILDKIT_SYNTAX"].strip()
        found = (value.split(" ", 1)[0], 0) if value else None
    else:
        found = _syntax_directive(dockerfile)
    # dockerfile.v0 names the frontend built into BuildKit: nothing to pull.
    if not found or not found[0] or found[0] == "dockerfile.v0":
        return None
    name, line = found
    return BaseImage(name, build_platform, line, "@sha256:" in name)


def _read(dockerfile: str) -> tuple[list[_MetaArg], list[_Stage], str]:
    """The ARGs before the first FROM, the FROMs, and the escape char."""
    instructions, escape = _instructions(dockerfile)
    meta_args: list[_MetaArg] = []
    stages: list[_Stage] = []
    for instruction in instructions:
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
    in the parser directives, an ARG before the first FROM, or a FROM.
    """
    syntax = _syntax_image(dockerfile, build_args, _format_platform(build_platform))
    images = [syntax] if syntax else []
    meta_args, stages, escape = _read(dockerfile)

    stage_name = target_stage or (stages[-1].name if stages else "") or "default"
    env = _automatic_args(build_platform, target_platform, build_args, stage_name)
    # One at a time: a default sees the args declared before it.
    for arg in meta_args:
        if arg.name in build_args:
            env[arg.name] = build_args[arg.name]
        elif arg.default is not None:
            env[arg.name] = _expand(arg.default, env, escape, arg.line)

    stage_names: set[str] = set()
    for stage in stages:
        name = _expand(stage.base, env, escape, stage.line)
        if not name:
            raise DockerfileError(
                f"line {stage.line}: base name ({stage.base}) should not be blank"
            )
        platform = _expand(stage.platform, env, escape, stage.line)
        if stage.platform and not platform:
            raise DockerfileError(
                f"line {stage.line}: empty platform value from expression {stage.platform}"
            )
        if name.lower() not in stage_names and name != "scratch":
            images.append(BaseImage(name, platform or None, stage.line, "@sha256:" in name))
        if stage.name:
            stage_names.add(stage.name)
    return images
