"""Proxy headers: who the client really is when a trusted proxy says so (no I/O here).

A reverse proxy or load balancer connects to Peregrine on the client's behalf and reports the
original client in ``X-Forwarded-For`` / ``X-Forwarded-Proto`` or in the standard ``Forwarded``
header (RFC 7239). Anyone can send those headers, so they are believed only from peers listed in
``forwarded_allow_ips``; from anyone else they are ignored.

Every proxy on the way appends the address it received the request from, so the list reads
``client, proxy1, proxy2`` and only its right end is vouched for by proxies we trust. The client
is therefore the right-most address that is *not* a trusted proxy; if every address is trusted,
the left-most one.

``Forwarded`` wins over the ``X-Forwarded-*`` pair when both are present: it is the standard, and
a proxy that speaks it is deliberate about it.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Optional, Union

from .request import Request

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

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


def parse_ip(text: str) -> Optional[IPAddress]:
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

    Parameter names are lower-cased; quoted-string values are unquoted. A malformed pair is
    skipped rather than failing the whole header.
    """
    elements: list[dict[str, str]] = []
    for value in values:
        for element_text in _split_quoted(value, ","):
            element: dict[str, str] = {}
            for pair in _split_quoted(element_text, ";"):
                name, eq, raw = pair.partition("=")
                name = name.strip().lower()
                if not eq or not name:
                    continue
                element.setdefault(name, _unquote(raw.strip()))
            elements.append(element)
    return elements


def _split_quoted(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes (a quoted value may contain , and ;)."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out, escaped = [], False
        for char in inner:
            if char == "\\" and not escaped:
                escaped = True
                continue
            escaped = False
            out.append(char)
        return "".join(out)
    return value


def _split_list(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _pick(hops: list[str], is_trusted: Callable[[str], bool]) -> int:
    """Index of the client in ``hops`` (hosts, client first): right-most untrusted, else 0."""
    for index in range(len(hops) - 1, -1, -1):
        if not is_trusted(hops[index]):
            return index
    return 0


def resolve(request: Request, is_trusted: Callable[[str], bool]) -> None:
    """Set ``request.client`` and ``request.scheme`` from the proxy headers it carries.

    Call it only for requests whose peer is a trusted proxy. Values that are not IP addresses
    (``unknown``, obfuscated ``_hidden`` nodes) leave ``client`` as it was: a made-up host would
    be worse than the proxy's address.
    """
    headers = request.headers
    forwarded = headers.getall("forwarded")
    if forwarded:
        elements = [e for e in parse_forwarded(forwarded) if "for" in e]
        if not elements:
            # Forwarded without "for" may still say the protocol
            protos = [e["proto"] for e in parse_forwarded(forwarded) if "proto" in e]
            if protos:
                _set_scheme(request, protos[-1])
            return
        nodes = [split_node(e["for"]) for e in elements]
        index = _pick([host for host, _ in nodes], is_trusted)
        host, port = nodes[index]
        if parse_ip(host) is not None:
            request.client = (str(parse_ip(host)), port)
        proto = elements[index].get("proto")
        if proto is not None:
            _set_scheme(request, proto)
        return
    hops = _split_list(headers.getall("x-forwarded-for"))
    index = 0
    if hops:
        index = _pick(hops, is_trusted)
        address = parse_ip(hops[index])
        if address is not None:
            request.client = (str(address), 0)
    protos = _split_list(headers.getall("x-forwarded-proto"))
    if protos:
        # One value is the usual case; a list that lines up with X-Forwarded-For gives the
        # protocol of the very hop we chose; otherwise the first proxy's word.
        proto = protos[index] if len(protos) == len(hops) and hops else protos[0]
        _set_scheme(request, proto)


def _set_scheme(request: Request, proto: str) -> None:
    scheme = _SCHEMES.get(proto.strip().lower())
    if scheme is not None:
        request.scheme = scheme


def make_proxy_hooks(allow_ips: str) -> tuple[Callable[[str], bool], Callable[[Request], None]]:
    """``(is_trusted(host) -> bool, apply(request))`` for a worker's connections.

    The connection asks ``is_trusted`` once per connection with the peer's address (``"unix"``
    for a unix socket peer) and calls ``apply`` on each request of a trusted peer.
    """
    is_trusted = TrustedProxies(allow_ips)

    def apply(request: Request) -> None:
        resolve(request, is_trusted)

    return is_trusted, apply
