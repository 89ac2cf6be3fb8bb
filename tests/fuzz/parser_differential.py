"""Differential fuzzer: the request parser against an older version of itself.

Run by hand (not collected by pytest)::

    git archive d9445f4 src | tar -x -C /tmp/oldsrc
    .venv/bin/python tests/fuzz/parser_differential.py --old /tmp/oldsrc/src/peregrine/http \
        --streams 3000 --seconds 300 --seed 1

Each generated stream (pipelined requests, some mutated) is fed to both parsers whole, split at
random points, in fixed-size reads and (when short) one byte at a time. Reported:

- a difference between old and new that none of the intended changes explains;
- a new-parser result (requests, status, upgrade data) that depends on the split;
- the streaming mode (``stream_bodies=True``) disagreeing with the buffered mode;
- any exception other than ``ProtocolError``.

Bounded by ``--streams`` and ``--seconds``; deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import signal
import sys
import time
import types
from collections import Counter
from typing import Any

from peregrine.http.errors import ProtocolError
from peregrine.http.parser import RequestParser


def load_old(http_dir: str) -> Any:
    """Import the old ``peregrine.http`` modules as package ``oldhttp``."""
    package = types.ModuleType("oldhttp")
    package.__path__ = [http_dir]
    sys.modules["oldhttp"] = package
    for name in ("errors", "headers", "request", "parser"):
        spec = importlib.util.spec_from_file_location(f"oldhttp.{name}", f"{http_dir}/{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"oldhttp.{name}"] = module
        spec.loader.exec_module(module)
    return sys.modules["oldhttp.parser"], sys.modules["oldhttp.errors"].ProtocolError


# --- outcomes ------------------------------------------------------------------------------------


def summary(r: Any, body: bytes | None = None) -> tuple[Any, ...]:
    raw = r._headers if isinstance(r._headers, list) else r._headers.raw
    return (
        r.method,
        r.raw_path,
        r.query_bytes,
        r.version,
        tuple(raw),
        r.body if body is None else body,
        r.keep_alive,
    )


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang("no result within 5 s")


def run(
    cls: Any, error_cls: Any, pieces: list[bytes], limits: dict[str, int], stream: bool = False
):
    """(requests, status, upgrade_data, crash) after feeding ``pieces``; stops at an error."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        return _run(cls, error_cls, pieces, limits, stream)
    except Hang as exc:
        return (
            (),
            None,
            None,
            f"HANG {exc} ({'old' if cls is not RequestParser else 'new'}, stream={stream})",
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _run(cls: Any, error_cls: Any, pieces: list[bytes], limits: dict[str, int], stream: bool):
    parser = cls(**limits, stream_bodies=True) if stream else cls(**limits)
    status = None
    crash = None
    for piece in pieces:
        try:
            parser.feed(piece)
        except error_cls as exc:
            status = exc.status
            break
        except Exception as exc:  # noqa: BLE001 - a crash is a finding
            crash = f"{type(exc).__name__}: {exc}"
            break
    if stream:
        requests = []
        head = None
        body: list[bytes] = []
        for event in parser.events:
            if event is None:
                if head is None:
                    crash = (crash or "") + " None without a head"
                    continue
                requests.append(summary(head, b"".join(body)))
                head = None
            elif isinstance(event, bytes):
                if head is None:
                    crash = (crash or "") + " body without a head"
                body.append(event)
            else:
                if head is not None:
                    crash = (crash or "") + " head before the previous message ended"
                head = event
                body = []
        if parser.requests:
            crash = (crash or "") + " requests filled in streaming mode"
    else:
        requests = [summary(r) for r in parser.requests]
    return tuple(requests), status, parser.upgrade_data, crash


# --- generation ----------------------------------------------------------------------------------

TOKENS = [b"a", b"x-y", b"ext", b"Z9"]
VALUES = [b"1", b"v", b'"q s"', b'"a\\"b"', b"tok"]


def chunk_ext(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.choice([0, 0, 1, 2])):
        sp = lambda: rng.choice([b"", b"", b" ", b"\t", b"  "])  # noqa: E731
        out += sp() + b";" + sp() + rng.choice(TOKENS)
        if rng.random() < 0.6:
            out += sp() + b"=" + sp() + rng.choice(VALUES)
    return out


def chunked_body(rng: random.Random, limits: dict[str, int]) -> tuple[bytes, int]:
    data = b""
    total = 0
    for _ in range(rng.choice([0, 1, 2, 3, 5])):
        size = rng.choice([1, 3, 10, 16, 100, limits["max_body_size"] // 3])
        payload = bytes(rng.choice(b"abc\r\n0;") for _ in range(size))
        hexs = b"%x" % size if rng.random() < 0.8 else b"%X" % size
        if rng.random() < 0.1:
            hexs = b"0" + hexs
        data += hexs + chunk_ext(rng) + b"\r\n" + payload + b"\r\n"
        total += size
    data += b"0" + chunk_ext(rng) + b"\r\n"
    for _ in range(rng.choice([0, 0, 1, 2])):
        data += rng.choice([b"X-T", b"Trailer-A", b"ETag"]) + b": " + rng.choice(VALUES) + b"\r\n"
    data += b"\r\n"
    return data, total


HOSTS = [
    b"example.com",
    b"example.com:8080",
    b"127.0.0.1",
    b"[::1]:80",
    b"[::1]",
    b"a b",
    b"",
    b"h:",
    b"[zz]",
    b"ex%41mple",
    b"h:p",
    b"user@h",
    b"h/x",
]


def message(rng: random.Random, limits: dict[str, int]) -> bytes:
    method = rng.choice(
        [b"GET"] * 6 + [b"POST"] * 5 + [b"PUT", b"HEAD", b"OPTIONS", b"CONNECT", b"FOO", b"DELETE"]
    )
    if method == b"CONNECT":
        target = rng.choice([b"h:443", b"example.com:80", b"/x", b"h", b"http://h/", b"[::1]:1"])
    else:
        target = rng.choice(
            [
                b"/",
                b"/a/b?c=d&e",
                b"/%41?q",
                b"*",
                b"http://h/p?q=1",
                b"https://h",
                b"/a#frag",
                b"/" + b"p" * (limits["max_request_line"] - rng.choice([2, 1, 0, -1])),
                b"ftp://h/",
            ]
        )
    version = rng.choice([b"HTTP/1.1"] * 8 + [b"HTTP/1.0"] * 3 + [b"HTTP/1.2", b"HTTP/2.0", b""])
    line = method + b" " + target + (b" " + version if version else b"") + b"\r\n"
    fields: list[bytes] = []
    if rng.random() < 0.9:
        fields.append(b"Host: " + rng.choice(HOSTS[:5] * 4 + HOSTS))
    if rng.random() < 0.05:
        fields.append(b"Host: other")
    body = b""
    framing = rng.choice(["none", "none", "cl", "cl", "chunked", "both"])
    if method in (b"POST", b"PUT") and framing == "none":
        framing = "cl"
    if framing in ("cl", "both"):
        size = rng.choice([0, 1, 5, 50, limits["max_body_size"], limits["max_body_size"] + 1])
        body = bytes(rng.choice(b"xyz\r\n") for _ in range(min(size, 3000)))
        fields.append(b"Content-Length: %d" % len(body))
    if framing in ("chunked", "both"):
        te = rng.choice(
            [b"chunked"] * 6
            + [
                b", chunked",
                b"chunked\t",
                b"chunked ",
                b"gzip, chunked",
                b"chunked, gzip",
                b"identity",
            ]
            + [b"chunked,", b" , chunked", b"CHUNKED"]
        )
        fields.append(b"Transfer-Encoding: " + te)
        body, _ = chunked_body(rng, limits)
    if rng.random() < 0.3:
        fields.append(
            b"Connection: "
            + rng.choice([b"keep-alive", b"close", b"Upgrade", b"upgrade, keep-alive"])
        )
    if rng.random() < 0.1:
        fields.append(b"Upgrade: websocket")
    if rng.random() < 0.1:
        fields.append(b"Expect: " + rng.choice([b"100-continue", b"100-Continue", b"nope"]))
    for i in range(rng.choice([0, 0, 1, 3, limits["max_header_count"] - len(fields)])):
        fields.append(b"X-F%d: %s" % (i, b"v" * rng.choice([1, 10, 40])))
    if rng.random() < 0.2:
        # a field that brings the head near max_header_size (counted either way)
        head_so_far = len(line) + sum(len(f) + 2 for f in fields) + 2
        pad = (
            limits["max_header_size"]
            - head_so_far
            - len(b"X-Long: \r\n")
            + rng.choice([-3, -1, 0, 1, 2, 5])
        )
        value = rng.choice([b"w", b" "]) * max(pad, 0)
        if value.startswith(b" "):
            value = b" " * (len(value) - 1) + b"w"
        fields.append(b"X-Long: " + value)
    rng.shuffle(fields)
    sep = rng.choice([b": ", b": ", b":", b":\t", b":  "])
    head = line + b"".join(f.replace(b": ", sep, 1) + b"\r\n" for f in fields) + b"\r\n"
    return head + body


INSERTS = [
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b":",
    b"\r\n",
    b";",
    b",",
    b"#",
    b"\x00",
    b"0",
    b"\r\n\r\n",
    b"\x7f",
    b"\xff",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        i = rng.randrange(len(data) + 1)
        op = rng.random()
        if op < 0.3:
            data = data[:i] + rng.choice(INSERTS) + data[i:]
        elif op < 0.55 and i < len(data):
            data = data[:i] + data[i + 1 :]
        elif op < 0.8 and i < len(data):
            data = data[:i] + bytes([rng.choice(b"\r\n \t:;,#aZ0\x00\x80")]) + data[i + 1 :]
        elif op < 0.9 and i < len(data):
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        else:
            j = min(len(data), i + rng.randrange(1, 20))
            data = data[:i] + data[i:j] * rng.choice([2, 10]) + data[j:]
    return data


def gen_stream(rng: random.Random) -> tuple[list[bytes], dict[str, int]]:
    limits = {
        "max_request_line": rng.choice([32, 64, 200, 8192]),
        "max_header_size": rng.choice([128, 256, 512, 32768]),
        "max_header_count": rng.choice([4, 8, 20, 100]),
        "max_body_size": rng.choice([64, 300, 2000]),
    }
    messages = [message(rng, limits) for _ in range(rng.choice([1, 1, 2, 3, 4]))]
    if rng.random() < 0.1:
        messages.insert(0, b"\r\n")
    if rng.random() < 0.6:
        k = rng.randrange(len(messages))
        messages[k] = mutate(rng, messages[k])
    return messages, limits


def splits(rng: random.Random, data: bytes, bytewise_max: int) -> list[tuple[str, list[bytes]]]:
    out = [("whole", [data])]
    if len(data) <= bytewise_max:
        out.append(("bytewise", [data[i : i + 1] for i in range(len(data))]))
    for size in (7, 64):
        if len(data) > size:
            out.append((f"every{size}", [data[i : i + size] for i in range(0, len(data), size)]))
    for _ in range(4):
        cuts = (
            sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.choice([1, 2, 5]))))
            if len(data) > 1
            else []
        )
        bounds = [0, *cuts, len(data)]
        out.append((f"cuts{cuts}", [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]))
    return out


# --- explanations of old/new differences (the intended changes) ----------------------------------

_HOST_OK = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
)


def head_of(msg: bytes) -> bytes:
    msg = msg.lstrip(b"\r\n")
    end = msg.find(b"\r\n\r\n")
    return msg if end < 0 else msg[: end + 4]


def explain(
    msg: bytes, limits: dict[str, int], old: tuple, new: tuple, old_statuses: set
) -> str | None:
    head = head_of(msg)
    lines = head.split(b"\r\n")
    first = lines[0].split(b" ")
    method = first[0]
    target = first[1] if len(first) > 1 else b""
    ostatus, nstatus = old[1], new[1]
    fields = [ln for ln in lines[1:] if ln]
    if 431 in (ostatus, nstatus) and len(head) > limits["max_header_size"] - 4:
        return "1: head measured as received"
    if 431 in (ostatus, nstatus) and (
        b"\r\n\r\n" not in msg.lstrip(b"\r\n")[: limits["max_header_size"] + 4]
    ):
        return "1: head measured as received (unterminated)"
    if (
        nstatus is None
        and ostatus == 400
        and re.fullmatch(rb"[\r\n]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+", msg)
    ):
        return "2: an unknown method's verdict waits for the end of its name"
    if len(old_statuses) > 1 and nstatus in old_statuses:
        return "2: old status depended on the split"
    if method == b"CONNECT" or b"CONNECT" in head[:10]:
        return "CONNECT"
    if nstatus == 400 and b"#" in target:
        return "4: fragment"
    if nstatus == 400 and target == b"*" and method != b"OPTIONS":
        return "4: asterisk-form"
    for f in fields:
        name, _, value = f.partition(b":")
        if (
            name.lower() == b"host"
            and nstatus == 400
            and not _HOST_OK.fullmatch(value.strip(b" \t"))
        ):
            return "4: Host grammar"
        if name.lower() == b"host" and nstatus == 400 and b"[" in value:
            return "4: Host grammar (IP literal)"
        if name.lower() == b"transfer-encoding":
            elems = [e.strip(b" \t") for e in value.split(b",")]
            if b"" in elems and ostatus in (400, 501):
                return "4: TE empty element"
            if value.endswith(b"\t") and ostatus == 400:
                return "4: TE trailing tab"
    if ostatus == 400 and re.search(
        rb"\r\n[0-9A-Fa-f]+[ \t]*;|;[ \t]|[ \t]=|=[ \t]", msg[len(head) :]
    ):
        return "4: chunk-extension BWS"
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="the old src/peregrine/http directory")
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bytewise-max", type=int, default=400)
    ap.add_argument("--show", type=int, default=3, help="examples shown per finding kind")
    ap.add_argument(
        "--out", help="write every finding (kind, limits, split, data) here, one repr a line"
    )
    args = ap.parse_args()
    old_parser, old_error = load_old(args.old)
    Old = old_parser.RequestParser
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    streams = feeds = 0
    explained: Counter[str] = Counter()
    findings: dict[str, list[str]] = {}

    saved: list[tuple[str, dict[str, int], str, bytes]] = []

    def finding(kind: str, text: str) -> None:
        findings.setdefault(kind, []).append(text)
        saved.append((kind, limits, name, data))

    while streams < args.streams and time.monotonic() < deadline:
        messages, limits = gen_stream(rng)
        data = b"".join(messages)
        streams += 1
        new_results = {}
        old_results = {}
        for name, pieces in splits(rng, data, args.bytewise_max):
            feeds += 1
            new = run(RequestParser, ProtocolError, pieces, limits)
            streamed = run(RequestParser, ProtocolError, pieces, limits, stream=True)
            old = run(Old, old_error, pieces, limits)
            if new[3] and "HANG" in new[3]:
                print("HANG", limits, name, repr(data)[:2000], flush=True)
            new_results[name] = new
            old_results[name] = (old, pieces)
            if old[3] and "HANG" in old[3]:
                finding("old-hang", f"{old[3]} limits={limits} split={name} data={data!r}")
            if new[3] or streamed[3]:
                finding(
                    "crash", f"{new[3] or streamed[3]} limits={limits} split={name} data={data!r}"
                )
            if streamed[:3] != new[:3]:
                finding(
                    "stream!=buffered",
                    f"limits={limits} split={name} data={data!r}\n  buffered={new[:3]}\n  streamed={streamed[:3]}",
                )
        whole = new_results["whole"]
        for name, res in new_results.items():
            if res[:3] != whole[:3]:
                finding(
                    "split-dependent",
                    f"limits={limits} split={name} data={data!r}\n  whole={whole[:3]}\n  split={res[:3]}",
                )
                break
        old_statuses = {o[1] for o, _ in old_results.values()}
        for name, (old, _) in old_results.items():
            new = new_results[name]
            if old[:3] == new[:3]:
                continue
            # the first message the two disagree on
            k = 0
            while k < min(len(old[0]), len(new[0])) and old[0][k] == new[0][k]:
                k += 1
            same_count = len(old[0]) == len(new[0])
            if k < min(len(old[0]), len(new[0])):
                why = None  # both completed message k, differently
                if old[0][k][0] == "CONNECT" or new[0][k][0] == "CONNECT":
                    why = "CONNECT"
            else:
                # skip messages that are empty lines only
                real = [m for m in messages if m.strip(b"\r\n")]
                msg = real[k] if k < len(real) else b""
                why = explain(msg, limits, old, new, old_statuses)
                if why is None and same_count and old[1] == new[1] and old[2] != new[2]:
                    why = None
            if why is None:
                finding(
                    "old!=new",
                    f"limits={limits} split={name} data={data!r}\n  old={old[:3]}\n  new={new[:3]}",
                )
            else:
                explained[why] += 1
            break  # one comparison per stream is enough once they differ
    print(f"streams={streams} feeds (splits x 3 parsers runs)={feeds} seconds={args.seconds}")
    print("explained differences:", dict(explained))
    for kind, items in findings.items():
        print(f"\n=== {kind}: {len(items)}")
        for text in items[: args.show]:
            print(" -", text[:3000])
    if args.out:
        with open(args.out, "w") as out:
            for item in saved:
                out.write(repr(item) + "\n")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
