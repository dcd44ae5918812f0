"""The rest of patternmatcher's API, and what docker's CLI and daemon do with
the .dockerignore and the Dockerfile, on dockerignore.py's internals.

The tool calls none of this: the tests use it to run patternmatcher's own
tables and the results recorded from Go through the same matcher, and to
show why the tool hashes the Dockerfile and .dockerignore as it does.
"""

from __future__ import annotations

from collections.abc import Sequence

import dockerignore
from dockerignore import DockerignoreError, MatchInfo, PatternMatcher


def has_exclusions(matcher: PatternMatcher) -> bool:
    """PatternMatcher.Exclusions(): some pattern starts with '!'."""
    return any(pattern.exclusion for pattern in matcher._patterns)


def matches_or_parent_matches(matcher: PatternMatcher, path: str) -> bool:
    """MatchesOrParentMatches: path or one of its directories is excluded."""
    return matcher.matches(path, None)[0]


def legacy_matches(matcher: PatternMatcher, path: str) -> bool:
    """The deprecated Matches, which tests a single parent directory: the
    one as deep as the pattern. TrimBuildFilesFromExcludes uses it."""
    go_path = dockerignore._go_runes(path)
    parent_path = dockerignore._dir(path)
    parent_dirs = parent_path.split("/")
    matched = False
    for pattern in matcher._patterns:
        if pattern.exclusion != matched:
            continue
        match = pattern.match(path, go_path)
        depth = len(pattern.cleaned.split("/"))
        if not match and parent_path != "." and depth <= len(parent_dirs):
            match = pattern.match_quiet("/".join(parent_dirs[:depth]))
        if match:
            matched = not pattern.exclusion
    return matched


def module_matches(path: str, patterns: Sequence[str], legacy: bool) -> bool:
    """patternmatcher.Matches / MatchesOrParentMatches, with their errors
    dropped as every caller in docker does (`keep, _ := ...`)."""
    try:
        matcher = PatternMatcher(patterns)
        path = dockerignore._clean(path)
        if path == ".":
            return False
        if legacy:
            return legacy_matches(matcher, path)
        return matches_or_parent_matches(matcher, path)
    except DockerignoreError:
        return False


def trim_build_files_from_excludes(
    excludes: Sequence[str], dockerfile: str, dockerfile_from_stdin: bool = False
) -> list[str]:
    """docker/cli TrimBuildFilesFromExcludes: the classic builder's CLI sends
    .dockerignore and the Dockerfile (path relative to the context) even when
    excluded, by appending exceptions; the daemon removes them afterwards."""
    out = list(excludes)
    if module_matches(".dockerignore", out, legacy=True):
        out.append("!.dockerignore")
    if module_matches(dockerfile, out, legacy=True) and not dockerfile_from_stdin:
        out.append("!" + dockerfile)
    return out


def files_removed_by_daemon(excludes: Sequence[str], dockerfile: str) -> list[str]:
    """moby removeDockerfile (daemon >= 23): which of .dockerignore and the
    Dockerfile the classic builder deletes from the received context before
    the build, given the patterns of the .dockerignore it received. (20.10
    daemons test with the legacy Matches instead.)"""
    return [f for f in (".dockerignore", dockerfile) if module_matches(f, excludes, legacy=False)]


def matches_in_order(
    matcher: PatternMatcher, path: str, parent: MatchInfo | None
) -> tuple[bool, MatchInfo]:
    """MatchesUsingParentResults as Go loops: every pattern in turn, none
    skipped by the index that PatternMatcher.matches uses."""
    go_path = dockerignore._go_runes(path)
    ancestors = [] if parent else dockerignore._ancestors(path)
    matched = False
    info: list[bool] = []
    for i, pattern in enumerate(matcher._patterns):
        match = parent[i] if parent else False
        if not match:
            if pattern.exclusion != matched:
                info.append(False)
                continue
            match = pattern.match(path, go_path) or any(map(pattern.match_quiet, ancestors))
        info.append(match)
        if match:
            matched = not pattern.exclusion
    return matched, tuple(info)
