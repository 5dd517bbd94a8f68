"""Redaction: secrets in argv become ***** before any record holds them.

Each pattern is searched in each argument on its own. If the pattern has
capture groups, only what the groups matched is masked (so
`--password=hunter2` keeps its flag and becomes `--password=*****`);
without groups the whole match is masked. A built-in rule also masks the
argument after a flag that names a secret (`--password hunter2`).

The built-in patterns (redact.defaults) cover: KEY=VALUE and "KEY": "VALUE"
where KEY names a secret (password, passwd, passphrase, secret, token,
api key, access key, private key, client secret, credentials, MYSQL_PWD;
so also AWS_SECRET_ACCESS_KEY=..., ?access_token=...), credentials in URLs
(https://user:*****@host, https://*****@host), Authorization-style
headers, and well-known token shapes (GitHub, Slack, AWS access key ids).

Cost: the built-in patterns run only on argv where one cheap keyword
search (one regex over the whole argv) found something; user patterns run
on every argument.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from collector.errors import UsageError

MASK = "*****"

_SECRET_WORD = (
    r"(?:password|passwd|passphrase|secret|token|api[-_]?key|apikey|access[-_]?key|"
    r"private[-_]?key|client[-_]?secret|credentials?|mysql_pwd)"
)
DEFAULT_PATTERNS: tuple[str, ...] = (
    # KEY=VALUE, anywhere in the argument (flags, env assignments, query strings)
    rf"(?i){_SECRET_WORD}[\w.-]*=([^\s&;,'\"]+)",
    # "KEY": "VALUE" (JSON on the command line)
    rf"(?i)\"[\w.-]*{_SECRET_WORD}[\w.-]*\"\s*:\s*\"([^\"]*)\"",
    # URL credentials: scheme://user:PASSWORD@host, and a token as the user of http(s)
    r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@",
    r"(?i)\bhttps?://([^/\s:@]+)@",
    # HTTP headers given as arguments (curl -H ...)
    r"(?i)\b(?:proxy-)?authorization\s*:\s*(?:(?:bearer|basic|token|digest)\s+)?(\S+)",
    r"(?i)\b(?:x-api-key|x-auth-token|private-token)\s*:\s*(\S+)",
    # token shapes that are secrets wherever they appear
    r"\b(gh[pousr]_[A-Za-z0-9]{36,})",
    r"\b(xox[abprs]-[A-Za-z0-9-]{10,})",
    r"\b((?:AKIA|ASIA)[0-9A-Z]{16})\b",
)
# a flag naming a secret whose value is the next argument ...
_SECRET_FLAG = re.compile(rf"(?i)--?[\w.-]*{_SECRET_WORD}[\w.-]*")
# ... unless the flag says where the secret is, not what it is
_NOT_A_VALUE_FLAG = re.compile(r"(?i).*[-_](?:file|stdin|path|dir|env|name|id)")
# every built-in pattern needs one of these (lower-case ASCII): one search over the
# lower-cased argv skips the rest (lower() then a case-sensitive search is ~7x faster
# than (?i) in Python's re). The process cache's C exec path runs the same screen on
# ASCII argv without a Python call (collector.enrich._cache; tests/unit/test_redact_screen.py)
SCREEN_KEYWORDS: tuple[str, ...] = (
    "pass", "secret", "token", "key", "credential", "auth", "://", "mysql_pwd",
    *(f"gh{c}_" for c in "pousr"), *(f"xox{c}-" for c in "abprs"), "akia", "asia",
)
_KEYWORDS = re.compile("|".join(map(re.escape, SCREEN_KEYWORDS)))

Redactor = Callable[[list[str]], list[str]]


def _masker(pattern: re.Pattern[str]) -> Callable[[re.Match[str]], str]:
    groups = pattern.groups
    if not groups:
        return lambda m: MASK

    def mask_groups(m: re.Match[str]) -> str:
        text, base, pos = m.group(0), m.start(), 0
        out = []
        for g in range(1, groups + 1):
            a, b = m.span(g)
            if a < 0 or a - base < pos:  # group did not take part, or nested in one masked
                continue
            out.append(text[pos : a - base])
            out.append(MASK)
            pos = b - base
        out.append(text[pos:])
        return "".join(out)

    return mask_groups


class ArgvRedactor:
    """Callable argv → argv with secrets masked; the input list is not changed."""

    def __init__(self, patterns: list[re.Pattern[str]], defaults: bool) -> None:
        self._user = [(p.sub, _masker(p)) for p in patterns]
        self._defaults = [(p.sub, _masker(p)) for p in map(re.compile, DEFAULT_PATTERNS)] \
            if defaults else []
        self.redacted = 0  # arguments changed, for the stats line
        # argv in which none of these occurs (lower-cased) comes back unchanged: a
        # caller may skip the call then; None when every argument must be searched
        self.screen: tuple[str, ...] | None = SCREEN_KEYWORDS if defaults and not patterns \
            else None

    def __call__(self, args: list[str]) -> list[str]:
        subs = self._user
        if self._defaults and _KEYWORDS.search("\0".join(args).lower()):
            subs = self._defaults + subs
            check_flags = True
        else:
            check_flags = False
        if not subs:
            return args
        out: list[str] | None = None
        mask_next = False
        for i, arg in enumerate(args):
            mask_next = mask_next and not arg.startswith("--")  # a flag, not a value
            new = MASK if mask_next else arg
            if not mask_next:
                for sub, mask in subs:
                    new = sub(mask, new)
            mask_next = check_flags and bool(_SECRET_FLAG.fullmatch(arg)) \
                and not _NOT_A_VALUE_FLAG.fullmatch(arg)
            if new != arg:
                if out is None:
                    out = list(args)
                out[i] = new
                self.redacted += 1
        return args if out is None else out


def compile_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append(re.compile(p))
        except re.error as exc:
            raise UsageError(f"config key redact.patterns[{i}]: bad regular expression "
                             f"'{p}': {exc}") from None
        if out[-1].search(""):
            raise UsageError(f"config key redact.patterns[{i}]: '{p}' matches the empty "
                             "string, so it would mask every argument; make it match a secret")
    return out


def build_redactor(cfg: dict[str, Any]) -> ArgvRedactor | None:
    """The redactor for this config, or None when there is nothing to redact."""
    patterns = compile_patterns(cfg["redact.patterns"])
    if not patterns and not cfg["redact.defaults"]:
        return None
    return ArgvRedactor(patterns, cfg["redact.defaults"])
