"""Proxy headers: who the client really is when a trusted proxy says so (no I/O here).

A reverse proxy or load balancer connects to Peregrine on the client's behalf and reports the
original client in ``X-Forwarded-For`` / ``X-Forwarded-Proto`` or in the standard ``Forwarded``
header (RFC 7239). Anyone can send those headers, so they are believed only from peers listed in
``forwarded_allow_ips``; from anyone else they are ignored.

Every proxy on the way appends the address it received the request from, so the list reads
``client, proxy1, proxy2`` and only its right end is vouched for by proxies we trust. The client
is therefore the right-most address that is *not* a trusted proxy; if every address is trusted,
the left-most one.

One family of headers is believed per request, never a mix: ``X-Forwarded-For`` /
``X-Forwarded-Proto`` when either is present, else ``Forwarded``. Most proxies (nginx, HAProxy's
``option forwardfor``, cloud load balancers) set the ``X-Forwarded-*`` pair and pass any other
header through untouched, so a ``Forwarded`` header next to them was written by the client and
must not override what the proxy appended. A proxy that sets only ``Forwarded`` must therefore
drop ``X-Forwarded-*`` headers from clients (see ``docs/production.md``), or the server must be told
to believe only that family: ``forwarded_headers`` is ``"auto"`` (the rule above),
``"x-forwarded"`` or ``"forwarded"``, the other family then being ignored.

``X-Forwarded-Proto`` is read like ``X-Forwarded-For``: when both lists have the same length the
protocol of the chosen hop, otherwise the right-most value, the one the last proxy wrote.

A ``Forwarded`` header that does not parse (an unterminated quote, a pair without ``=``...) is
ignored as a whole: where one element ends and the next begins can no longer be told, and a
client's broken element must not swallow the one a proxy appended after it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from .request import Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_CACHE_MAX = 1024


class TrustedProxies:
    """The set of peers allowed to set proxy headers, from ``forwarded_allow_ips``.

    The text is a comma-separated list of IP addresses and CIDR networks (``10.0.0.0/8``,
    ``::1``), ``*`` for everyone, and ``unix`` for peers on a unix socket (a local proxy).
    Raises ``ValueError`` on an entry that is none of these.
    """

    def __init__(self, allow_ips: str) -> None:
        self.everyone = False
        self.unix = False
        self.networks: list[IPNetwork] = []
        for entry in (part.strip() for part in allow_ips.split(",")):
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
            elif entry.lower() == "unix":
                self.unix = True
            else:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"forwarded_allow_ips: {entry!r} is not an IP address, a network, '*' or 'unix'"
                    ) from None
        # A worker sees the same few proxy addresses over and over: remember the answers.
        self._cache: dict[str, bool] = {}

    def __call__(self, host: str) -> bool:
        """Is ``host`` (an address as text, or ``"unix"``) a trusted proxy?"""
        known = self._cache.get(host)
        if known is not None:
            return known
        trusted = self._decide(host)
        if len(self._cache) < _CACHE_MAX:
            self._cache[host] = trusted
        return trusted

    def _decide(self, host: str) -> bool:
        if self.everyone:
            return True
        if host == "unix":
            return self.unix
        address = parse_ip(host)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # "::ffff:10.0.0.1" on a dual-stack socket is the IPv4 peer 10.0.0.1
            if any(address.ipv4_mapped in net for net in self.networks):
                return True
        return any(address in net for net in self.networks)


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 zone and brackets allowed), or None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # fe80::1%eth0: the zone is not part of the address
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def split_node(node: str) -> tuple[str, int]:
    """Split a ``Forwarded`` node (``192.0.2.1:4711``, ``[2001:db8::1]:80``, ``2001:db8::1``).

    Returns ``(host, port)`` with port 0 when none is given or it is obfuscated (``_abc``).
    """
    node = node.strip()
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif node.count(":") == 1:
        host, _, port_text = node.partition(":")
    else:
        host, port_text = node, ""  # bare IPv6 (not RFC-conformant, but seen) or no port
    port = int(port_text) if port_text.isdigit() and int(port_text) < 65536 else 0
    return host, port


def parse_forwarded(values: list[str]) -> list[dict[str, str]]:
    """Parse ``Forwarded`` header values into one dict per element, in order (RFC 7239 §4).

    Parameter names are lower-cased; quoted-string values are unquoted; empty elements are
    dropped. Raises ``ValueError`` on anything malformed: an unterminated quote, a pair without
    ``=`` or a name that is not a token, a parameter given twice in one element, or text after a
    value that is not ``;`` or ``,``. The caller then ignores the whole header.
    """
    elements: list[dict[str, str]] = []
    for value in values:
        elements += _parse_forwarded_value(value)
    return [element for element in elements if element]


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"
# An unquoted value is a token by the RFC; anything but whitespace and the separators is taken
# (unquoted IPv6 nodes are seen in the wild), which still cannot hide a separator.
_VALUE_STOP = frozenset(' \t,;"')


def _parse_forwarded_value(text: str) -> list[dict[str, str]]:
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _OWS:
            i += 1
        if i == n:
            break
        if text[i] == ",":
            elements.append(element)
            element = {}
            i += 1
            continue
        if text[i] == ";":
            i += 1
            continue
        start = i
        while i < n and text[i] in _TCHAR:
            i += 1
        name = text[start:i].lower()
        if not name or i == n or text[i] != "=":
            raise ValueError(f"Forwarded: expected name=value at {text[start : start + 20]!r}")
        i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i)
        else:
            start = i
            while i < n and text[i] not in _VALUE_STOP:
                i += 1
            value = text[start:i]
            if not value:
                raise ValueError(f"Forwarded: {name}= without a value")
        if name in element:
            raise ValueError(f"Forwarded: {name}= twice in one element")
        element[name] = value
        while i < n and text[i] in _OWS:
            i += 1
        if i < n and text[i] not in ",;":
            raise ValueError(f"Forwarded: unexpected {text[i : i + 20]!r} after {name}=")
    elements.append(element)
    return elements


def _quoted_string(text: str, i: int) -> tuple[str, int]:
    """The unquoted content of the quoted-string opening at ``text[i]``, and the index after it."""
    out = []
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 == len(text):
                break
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise ValueError("Forwarded: unterminated quoted string")


def _split_list(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _pick(hops: list[str], is_trusted: Callable[[str], bool]) -> int:
    """Index of the client in ``hops`` (hosts, client first): right-most untrusted, else 0."""
    for index in range(len(hops) - 1, -1, -1):
        if not is_trusted(hops[index]):
            return index
    return 0


FAMILIES = ("auto", "x-forwarded", "forwarded")


def resolve(request: Request, is_trusted: Callable[[str], bool], family: str = "auto") -> None:
    """Set ``request.client`` and ``request.scheme`` from the proxy headers it carries.

    Call it only for requests whose peer is a trusted proxy. ``family`` says which headers to
    believe (one of :data:`FAMILIES`): with ``"auto"``, ``X-Forwarded-*`` when present, else
    ``Forwarded`` (see the module docstring). Values that are not IP addresses (``unknown``,
    obfuscated ``_hidden`` nodes) leave ``client`` as it was: a made-up host would be worse than
    the proxy's address.
    """
    headers = request.headers
    if family != "forwarded":
        x_for = headers.getall("x-forwarded-for")
        x_proto = headers.getall("x-forwarded-proto")
        if x_for or x_proto:
            _resolve_x_forwarded(request, _split_list(x_for), _split_list(x_proto), is_trusted)
            return
    if family != "x-forwarded":
        forwarded = headers.getall("forwarded")
        if forwarded:
            _resolve_forwarded(request, forwarded, is_trusted)


def _resolve_x_forwarded(
    request: Request, hops_text: list[str], protos: list[str], is_trusted: Callable[[str], bool]
) -> None:
    hops = [split_node(hop) for hop in hops_text]  # "1.2.3.4:5678" and "[::1]:80" are seen too
    index = 0
    if hops:
        index = _pick([host for host, _ in hops], is_trusted)
        host, port = hops[index]
        address = parse_ip(host)
        if address is not None:
            request.client = (str(address), port)
    if protos:
        # A list that lines up with X-Forwarded-For gives the protocol of the very hop chosen;
        # otherwise the right-most value: the one the proxy wrote, not the client.
        proto = protos[index] if hops and len(protos) == len(hops) else protos[-1]
        _set_scheme(request, proto)


def _resolve_forwarded(
    request: Request, values: list[str], is_trusted: Callable[[str], bool]
) -> None:
    try:
        elements = parse_forwarded(values)
    except ValueError:
        return  # malformed: believe none of it (see the module docstring)
    with_for = [e for e in elements if "for" in e]
    if not with_for:
        # Forwarded without "for" may still say the protocol
        protos = [e["proto"] for e in elements if "proto" in e]
        if protos:
            _set_scheme(request, protos[-1])
        return
    nodes = [split_node(e["for"]) for e in with_for]
    index = _pick([host for host, _ in nodes], is_trusted)
    host, port = nodes[index]
    address = parse_ip(host)
    if address is not None:
        request.client = (str(address), port)
    proto = with_for[index].get("proto")
    if proto is not None:
        _set_scheme(request, proto)


def _set_scheme(request: Request, proto: str) -> None:
    scheme = _SCHEMES.get(proto.strip().lower())
    if scheme is not None:
        request.scheme = scheme


def make_proxy_hooks(
    allow_ips: str,
    family: str = "auto",
) -> tuple[Callable[[str], bool], Callable[[Request], None]]:
    """``(is_trusted(host) -> bool, apply(request))`` for a worker's connections.

    The connection asks ``is_trusted`` once per connection with the peer's address (``"unix"``
    for a unix socket peer) and calls ``apply`` on each request of a trusted peer. ``family`` is
    ``Config.forwarded_headers`` (see :func:`resolve`).
    """
    if family not in FAMILIES:
        raise ValueError(f"forwarded_headers must be one of {', '.join(FAMILIES)}; got {family!r}")
    is_trusted = TrustedProxies(allow_ips)

    def apply(request: Request) -> None:
        resolve(request, is_trusted, family)

    return is_trusted, apply
