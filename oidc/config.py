"""Trusted issuers: which OIDC issuers the CA accepts, and how each becomes an identity.

Two file formats load into the same model:
- keyless's own YAML (`issuers:` list, see config/issuers.yaml for every field);
- Fulcio's configuration as it is: kebab-case YAML (`oidc-issuers`, `meta-issuers`,
  `ci-issuer-metadata`) or JSON with PascalCase keys (`OIDCIssuers`, ...). Fulcio matches keys
  case-insensitively; so do we, and dashes are ignored, so `issuer-url` equals `IssuerURL`.

Unlike Fulcio, an unknown key inside an issuer entry is an error: a misspelt
`skip-email-verification` must not silently change who gets certificates. So is what no one
could mean: a duplicate YAML key (`keyless.core.strictyaml` reads the file) and two spellings
of one key (`type` and `Type`), a meta-issuer pattern whose `*` stands for the whole domain
(`https://*`), and two spellings of one issuer URL (`/` at the end, case, a default port). Each
problem is one line naming the file, the line (YAML gives it; JSON does not) and the field.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from keyless import strictjson
from keyless.core import strictyaml
from keyless.oidc.errors import ConfigError
from keyless.oidc.oids import TEMPLATE_NAMES
from keyless.oidc.templates import Template, TemplateError

DEFAULT_CLIENT_ID = "sigstore"


class IssuerType(enum.Enum):
    """How an issuer's claims become a certificate identity (fulcio.md §3.5)."""

    EMAIL = "email"
    URI = "uri"
    USERNAME = "username"
    SPIFFE = "spiffe"
    KUBERNETES = "kubernetes"
    CHAINGUARD = "chainguard-identity"
    CI_PROVIDER = "ci-provider"
    GITHUB_WORKFLOW = "github-workflow"
    GITLAB_PIPELINE = "gitlab-pipeline"
    BUILDKITE_JOB = "buildkite-job"
    CODEFRESH_WORKFLOW = "codefresh-workflow"

    @property
    def default_challenge_claim(self) -> str:
        return "email" if self is IssuerType.EMAIL else "sub"


# The legacy CI types are served by the ci-provider mechanism with the built-in metadata of the
# same name, which is what public Fulcio does for these providers today.
_CI_TYPES = frozenset(
    {
        IssuerType.GITHUB_WORKFLOW,
        IssuerType.GITLAB_PIPELINE,
        IssuerType.BUILDKITE_JOB,
        IssuerType.CODEFRESH_WORKFLOW,
    }
)


@dataclass(frozen=True)
class CIProviderMetadata:
    """Templates that turn one CI system's claims into a SAN and extensions (fulcio.md §3.6)."""

    name: str
    defaults: Mapping[str, str]
    extensions: Mapping[int, Template]  # Fulcio extension arc -> template
    san: Template


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted issuer: an exact URL, or a meta-issuer pattern with `*` wildcards."""

    type: IssuerType
    url: str | None = None
    pattern: str | None = None
    client_id: str = DEFAULT_CLIENT_ID
    ci_provider: CIProviderMetadata | None = None
    issuer_claim: str | None = None
    subject_domain: str | None = None
    spiffe_trust_domain: str | None = None
    challenge_claim: str | None = None
    skip_email_verification: bool = False
    ca_cert: str | None = None
    allow_insecure_loopback: bool = False
    description: str = ""
    contact: str = ""

    @property
    def effective_challenge_claim(self) -> str:
        return self.challenge_claim or self.type.default_challenge_claim

    @cached_property
    def _pattern_regex(self) -> re.Pattern[str] | None:
        if self.pattern is None:
            return None
        # Each `*` matches one host label or path segment: no `.`, `/`, `?` or `:`. Anchored at
        # both ends (GHSA-59jp-pj84-45mr was an unanchored pattern).
        parts = (re.escape(part) for part in self.pattern.split("*"))
        return re.compile("[-_a-zA-Z0-9]+".join(parts))

    def matches(self, issuer: str) -> bool:
        """Whether a token's `iss` is this issuer (exactly, or by its anchored pattern)."""
        if self.url is not None:
            return issuer == self.url
        regex = self._pattern_regex
        return regex is not None and regex.fullmatch(issuer) is not None

    def for_issuer(self, issuer: str) -> IssuerConfig:
        """The effective configuration for a token from `issuer` (a meta match gets its URL)."""
        return self if self.url == issuer else replace(self, url=issuer, pattern=None)


@dataclass(frozen=True)
class TrustedIssuers:
    """The issuers a CA trusts, matched exact URLs first, then meta-issuer patterns."""

    issuers: tuple[IssuerConfig, ...] = ()
    meta_issuers: tuple[IssuerConfig, ...] = ()
    source: str = "<built-in>"
    _by_url: dict[str, IssuerConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_url", {i.url: i for i in self.issuers if i.url})

    def match(self, issuer: str) -> IssuerConfig | None:
        """The effective configuration for a token's `iss`, or None if it is not trusted."""
        exact = self._by_url.get(issuer)
        if exact is not None:
            return exact
        for meta in self.meta_issuers:
            if meta.matches(issuer):
                return meta.for_issuer(issuer)
        return None

    def merged(self, other: TrustedIssuers) -> TrustedIssuers:
        """These issuers plus `other`'s (used to add the development issuer in dev mode)."""
        return TrustedIssuers(
            self.issuers + other.issuers,
            self.meta_issuers + other.meta_issuers,
            source=f"{self.source} + {other.source}",
        )


def load_issuers(path: str | Path) -> TrustedIssuers:
    """Load and validate an issuer file in keyless or Fulcio format.

    Raises:
        ConfigError: with one line per problem found.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    return parse_issuers(text, source=str(path))


def parse_issuers(text: str, *, source: str) -> TrustedIssuers:
    """Parse issuer configuration text: JSON first, then YAML, as Fulcio does.

    `source` names the file in every problem line ("" when the caller prefixes its own).
    """
    try:
        document = strictjson.loads(text, max_depth=64, what="the file")
    except strictjson.JSONError:
        try:
            document = strictyaml.load(text, source=source, locate=True, scalar_aliases=True)
        except strictyaml.StrictYAMLError as exc:
            raise ConfigError(source, [_at(source, exc.line) + exc.problem]) from exc
    return issuers_from_document(document, source=source)


def issuers_from_document(document: Any, *, source: str) -> TrustedIssuers:
    """Validate an already-loaded issuer document (`LocatedDict` mappings give problems lines).

    Raises:
        ConfigError: with one line per problem found.
    """
    if not isinstance(document, dict):
        raise ConfigError(source, [_at(source, None) + "the top level must be a mapping"])
    return _Loader(source).load(document)


def _at(source: str, line: int | None) -> str:
    """The location prefix of a problem line: `file:line: `, `file: ` or nothing."""
    if not source:
        return ""
    return f"{source}:{line}: " if line is not None else f"{source}: "


def _line_of(entry: Any, key: str | None = None) -> int | None:
    """The line of `key` in a loaded mapping (matched as `_norm` matches keys), else its own."""
    if not isinstance(entry, strictyaml.LocatedDict):
        return None
    for raw, line in entry.key_lines.items() if key is not None else ():
        if _norm(raw) == _norm(key):
            return line
    return entry.line


def builtin_ci_providers() -> dict[str, Mapping[str, Any]]:
    """The raw built-in ci-provider metadata shipped with keyless."""
    data = resources.files("keyless.oidc").joinpath("data/ci-providers.yaml").read_text()
    providers: dict[str, Mapping[str, Any]] = strictyaml.load(
        data, source="keyless.oidc/data/ci-providers.yaml"
    )
    return providers


def _norm(key: object) -> str:
    return str(key).replace("-", "").replace("_", "").lower()


_ISSUER_KEYS = {
    _norm(k): k
    for k in (
        "issuer",
        "issuer-pattern",
        "issuer-url",
        "client-id",
        "type",
        "ci-provider",
        "issuer-claim",
        "subject-domain",
        "spiffe-trust-domain",
        "challenge-claim",
        "skip-email-verification",
        "ca-cert",
        "allow-insecure-loopback",
        "description",
        "contact",
        "environment",
    )
}
_TEMPLATE_KEYS = {_norm(name): arc for name, arc in TEMPLATE_NAMES.items()}
# Fulcio's JSON names that do not normalise to the kebab-case ones.
_TEMPLATE_KEYS.update({"githubworkflowsha": 3, "issuer": 8, "subject": 24})
_SPIFFE_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")


class _Loader:
    """Collects every problem in one pass, so the operator fixes the file once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def _add(self, line: int | None, problem: str) -> None:
        self.problems.append(_at(self.source, line) + problem)

    def _one_spelling(self, mapping: Mapping[Any, Any], where: str) -> None:
        """Fulcio matches keys without regard to case, '-' and '_': `type` and `Type` are two
        keys to YAML and one to it, so the second is refused, never silently the one taken."""
        first: dict[str, str] = {}
        for key in mapping:
            spelling = first.setdefault(_norm(key), str(key))
            if spelling != str(key):
                located = mapping if isinstance(mapping, strictyaml.LocatedDict) else None
                self._add(
                    located.key_lines.get(str(key)) if located is not None else None,
                    f"{where}{key!r} is the same key as {spelling!r} (keys match without regard"
                    " to case, '-' and '_')",
                )

    def load(self, document: Mapping[str, Any]) -> TrustedIssuers:
        self._one_spelling(document, "")
        top = {_norm(k): v for k, v in document.items()}
        top_line = {_norm(k): _line_of(document, str(k)) for k in document}
        providers_raw = dict(builtin_ci_providers())
        own_format = "issuers" in top
        extra = top.get("ciproviders") if own_format else top.get("ciissuermetadata")
        if extra is not None:
            if isinstance(extra, dict):
                providers_raw.update(extra)
            else:
                self._add(
                    top_line.get("ciproviders") or top_line.get("ciissuermetadata"),
                    "ci-providers must be a mapping of name to metadata",
                )
        providers = self._ci_providers(providers_raw)
        loaded: list[tuple[IssuerConfig, str, int | None]] = []
        if own_format:
            entries = top["issuers"] or []
            if not isinstance(entries, list):
                self._add(top_line["issuers"], "issuers must be a list")
                entries = []
            for n, entry in enumerate(entries, 1):
                config = self._issuer(f"issuers[{n}]", entry, providers, key_url=None)
                if config is not None:
                    key = "issuer-pattern" if config.pattern else "issuer"
                    loaded.append((config, f"issuers[{n}]: {key}", _line_of(entry, key)))
        else:
            if "oidcissuers" not in top and "metaissuers" not in top:
                self._add(
                    None,
                    "no issuers: expected `issuers:` (keyless) or `oidc-issuers:` /"
                    " `meta-issuers:` (Fulcio)",
                )
            for section, meta in (("oidcissuers", False), ("metaissuers", True)):
                entries = top.get(section) or {}
                if not isinstance(entries, dict):
                    self._add(
                        top_line.get(section),
                        f"{section} must be a mapping of issuer URL to settings",
                    )
                    continue
                for url, entry in entries.items():
                    config = self._issuer(
                        f"issuer {url}",
                        entry,
                        providers,
                        key_url=str(url),
                        meta=meta,
                        line=_line_of(entries, str(url)),
                    )
                    if config is not None:
                        loaded.append((config, "issuer", _line_of(entries, str(url))))
        self._refuse_duplicates(loaded)
        issuers = [config for config, _, _ in loaded if config.pattern is None]
        metas = [config for config, _, _ in loaded if config.pattern is not None]
        if self.problems:
            raise ConfigError(self.source, self.problems)
        return TrustedIssuers(tuple(issuers), tuple(metas), source=self.source or "<inline>")

    def _refuse_duplicates(self, loaded: list[tuple[IssuerConfig, str, int | None]]) -> None:
        """One issuer, one entry: a second spelling of a URL (a `/` at the end, upper case, a
        default port) is refused, since a token's `iss` matches only one of them exactly and
        which entry's settings then apply is left to chance."""
        first: dict[str, tuple[str, int | None]] = {}
        for config, label, line in loaded:
            location = config.url or config.pattern or ""
            key = _canonical_url(location)
            if key not in first:
                first[key] = (location, line)
                continue
            other, other_line = first[key]
            at = f" at line {other_line}" if other_line is not None else ""
            if other == location:
                self._add(line, f"{label} {location!r} is configured twice (first{at or ' above'})")
            else:
                self._add(
                    line,
                    f"{label} {location!r} is the same issuer as {other!r}{at} (they differ only"
                    " in a trailing '/', case or a default port)",
                )

    def _ci_providers(self, raw: Mapping[str, Any]) -> dict[str, CIProviderMetadata]:
        providers: dict[str, CIProviderMetadata] = {}
        for name, entry in raw.items():
            where = _at(self.source, _line_of(entry)) + f"ci-provider {name}"
            if not isinstance(entry, dict):
                self.problems.append(f"{where}: must be a mapping")
                continue
            self._one_spelling(entry, f"ci-provider {name}: ")
            fields = {_norm(k): v for k, v in entry.items()}
            defaults = fields.pop("defaulttemplatevalues", None) or {}
            templates = fields.pop("extensiontemplates", None) or {}
            san = fields.pop("subjectalternativenametemplate", None)
            for unknown in fields:
                self.problems.append(f"{where}: unknown key {unknown!r}")
            if not isinstance(defaults, dict) or not isinstance(templates, dict):
                self.problems.append(f"{where}: templates and defaults must be mappings")
                continue
            if not san:
                self.problems.append(f"{where}: subject-alternative-name-template is required")
                continue
            self._one_spelling(templates, f"ci-provider {name}: extension-templates: ")
            extensions: dict[int, Template] = {}
            for key, source in templates.items():
                arc = _TEMPLATE_KEYS.get(_norm(key))
                if arc is None:
                    self.problems.append(f"{where}: unknown extension template {key!r}")
                elif source and arc not in (8, 24):  # Issuer and Subject come from the token.
                    extensions[arc] = self._template(where, str(source))
            providers[name] = CIProviderMetadata(
                name=str(name),
                defaults={str(k): "" if v is None else str(v) for k, v in defaults.items()},
                extensions=extensions,
                san=self._template(where, str(san)),
            )
        return providers

    def _template(self, where: str, source: str) -> Template:
        try:
            return Template.template_or_claim(source)
        except TemplateError as exc:
            self.problems.append(f"{where}: template {source!r} does not parse: {exc}")
            return Template("")

    def _issuer(
        self,
        where: str,
        entry: Any,
        providers: Mapping[str, CIProviderMetadata],
        *,
        key_url: str | None,
        meta: bool = False,
        line: int | None = None,
    ) -> IssuerConfig | None:
        line = line if line is not None else _line_of(entry)
        if not isinstance(entry, dict):
            self._add(line, f"{where}: settings must be a mapping")
            return None
        self._one_spelling(entry, f"{where}: ")
        fields: dict[str, Any] = {}
        for key, value in entry.items():
            if _norm(key) not in _ISSUER_KEYS:
                self._add(_line_of(entry, str(key)), f"{where}: unknown key {key!r}")
            else:
                fields[_ISSUER_KEYS[_norm(key)]] = value
        before = len(self.problems)
        url, pattern = self._location(where, entry, fields, key_url=key_url, meta=meta)
        if url is None and pattern is None:
            return None
        known = ", ".join(t.value for t in IssuerType)
        if fields.get("type") is None:
            self._add(line, f"{where}: type is required (known: {known})")
            return None
        try:
            issuer_type = IssuerType(fields["type"])
        except ValueError:
            self._add(
                _line_of(entry, "type"),
                f"{where}: unknown type {fields['type']!r} (known: {known})",
            )
            return None
        where = _at(self.source, line) + where
        provider = None
        if issuer_type is IssuerType.CI_PROVIDER or issuer_type in _CI_TYPES:
            name = fields.get("ci-provider") or issuer_type.value
            provider = providers.get(name)
            if provider is None:
                self.problems.append(f"{where}: no ci-provider metadata named {name!r}")
        config = IssuerConfig(
            type=issuer_type,
            url=url,
            pattern=pattern,
            client_id=str(fields.get("client-id") or DEFAULT_CLIENT_ID),
            ci_provider=provider,
            issuer_claim=fields.get("issuer-claim") or None,
            subject_domain=fields.get("subject-domain") or None,
            spiffe_trust_domain=fields.get("spiffe-trust-domain") or None,
            challenge_claim=fields.get("challenge-claim") or None,
            skip_email_verification=fields.get("skip-email-verification") is True,
            ca_cert=fields.get("ca-cert") or None,
            allow_insecure_loopback=fields.get("allow-insecure-loopback") is True,
            description=str(fields.get("description") or ""),
            contact=str(fields.get("contact") or ""),
        )
        self._validate(where, config, meta=pattern is not None)
        return config if len(self.problems) == before else None

    def _location(
        self,
        where: str,
        entry: Mapping[str, Any],
        fields: Mapping[str, Any],
        *,
        key_url: str | None,
        meta: bool,
    ) -> tuple[str | None, str | None]:
        if key_url is None:  # keyless format: `issuer` or `issuer-pattern`
            url, pattern = fields.get("issuer"), fields.get("issuer-pattern")
            if (url is None) == (pattern is None):
                self._add(_line_of(entry), f"{where}: set exactly one of issuer or issuer-pattern")
                return None, None
            if url is not None and "*" in str(url):
                self._add(
                    _line_of(entry, "issuer"), f"{where}: issuer has a '*'; use issuer-pattern"
                )
            if pattern is not None:
                problem = _pattern_problem(str(pattern))
                if problem:
                    self._add(_line_of(entry, "issuer-pattern"), f"{where}: {problem}")
                    return None, None
            return (str(url), None) if url is not None else (None, str(pattern))
        if meta:
            problem = _pattern_problem(key_url)
            if problem:
                self._add(_line_of(entry), f"{where}: {problem}")
                return None, None
            return None, key_url
        declared = fields.get("issuer-url")
        if declared is not None and declared != key_url:
            self._add(
                _line_of(entry, "issuer-url"),
                f"{where}: issuer-url {declared!r} differs from its key",
            )
        return key_url, None

    def _validate(self, where: str, config: IssuerConfig, *, meta: bool) -> None:
        location = config.url or config.pattern or ""
        parts = urlsplit(location.replace("*", "x"))
        loopback = is_loopback_host(parts.hostname)
        if config.allow_insecure_loopback and not loopback:
            self.problems.append(f"{where}: allow-insecure-loopback needs a loopback issuer")
        elif parts.scheme != "https" and not (
            parts.scheme == "http" and loopback and config.allow_insecure_loopback
        ):
            self.problems.append(
                f"{where}: issuer must be an https:// URL (http is allowed only for loopback"
                " issuers with allow-insecure-loopback)"
            )
        elif not parts.hostname:
            self.problems.append(f"{where}: issuer {location!r} has no host")
        if meta and config.type is IssuerType.SPIFFE:
            self.problems.append(f"{where}: spiffe issuers cannot be meta-issuers")
        if config.issuer_claim and config.type is not IssuerType.EMAIL:
            self.problems.append(f"{where}: issuer-claim is only allowed for email issuers")
        if config.issuer_claim and not re.fullmatch(r"\$(\.[^.\s]+)+", config.issuer_claim):
            self.problems.append(f"{where}: issuer-claim must be a path like $.a.b")
        if config.ca_cert:
            try:
                x509.load_pem_x509_certificates(config.ca_cert.encode())
            except ValueError:
                self.problems.append(f"{where}: ca-cert is not a PEM certificate")
        if config.type is IssuerType.SPIFFE:
            domain = config.spiffe_trust_domain or ""
            if not _SPIFFE_TRUST_DOMAIN.fullmatch(domain):
                self.problems.append(f"{where}: spiffe issuers need a valid spiffe-trust-domain")
        if config.type is IssuerType.URI:
            self._validate_uri_domain(where, config, parts)
        if config.type is IssuerType.USERNAME:
            domain = config.subject_domain or ""
            if not domain or "://" in domain:
                self.problems.append(
                    f"{where}: username issuers need a subject-domain without a scheme"
                )
            elif not _same_registered_domain(domain, parts.hostname):
                self.problems.append(
                    f"{where}: subject-domain {domain} must share its last two labels"
                    " with the issuer"
                )

    def _validate_uri_domain(self, where: str, config: IssuerConfig, issuer: Any) -> None:
        domain = urlsplit(config.subject_domain or "")
        if not domain.scheme or not domain.hostname:
            self.problems.append(f"{where}: uri issuers need a subject-domain with a scheme")
        elif domain.scheme != issuer.scheme:
            self.problems.append(f"{where}: subject-domain scheme must match the issuer's")
        elif not _same_registered_domain(domain.hostname, issuer.hostname):
            self.problems.append(
                f"{where}: subject-domain {config.subject_domain} must share its last two labels"
                " with the issuer"
            )


def _pattern_problem(pattern: str) -> str | None:
    """Why a meta-issuer pattern admits issuers no one could mean, or None.

    Each `*` stands for one host label or path segment, so the pattern must fix the scheme, the
    port and the last two host labels (the registered domain): `https://*` or
    `https://*.com` would let any token name any host, and the CA would fetch its discovery
    document and keys.
    """
    if "*" not in pattern:
        return f"issuer-pattern {pattern!r} has no '*'; use issuer for an exact URL"
    scheme, _, rest = pattern.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    if "*" in scheme or "*" in port:
        return f"issuer-pattern {pattern!r} has a '*' in the scheme or port"
    labels = host.split(".")
    if len(labels) < 2 or any("*" in label or not label for label in labels[-2:]):
        return (
            f"issuer-pattern {pattern!r} lets '*' stand for the whole host; the last two host"
            " labels must be literal (like https://*.example.com)"
        )
    return None


def _canonical_url(url: str) -> str:
    """`url` with what does not change the issuer it names folded away."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}?{parts.query}"


def _same_registered_domain(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.lower().split(".")[-2:] == b.lower().split(".")[-2:] and a.count(".") >= 1


def is_loopback_host(host: str | None) -> bool:
    """Whether `host` is localhost or a loopback address (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
