"""Content types for static files, by file extension.

The table is the standard library's built-in :mod:`mimetypes` table (never the
machine's ``/etc/mime.types``, so every machine answers the same) overlaid with
the types the web actually uses, several of which the stdlib lacks or gets
wrong for browsers (``.woff2``, ``.mjs`` as JavaScript, ``.ts`` as MPEG-TS as
nginx does, ...).

Textual types carry ``; charset=utf-8`` so browsers do not guess an encoding.
"""

from __future__ import annotations

import mimetypes as _stdlib_mimetypes
import os

__all__ = ["DEFAULT_TYPE", "content_type_for", "guess_type", "is_text_type", "TYPES"]

#: Type of files whose extension is unknown: browsers download them rather
#: than try to render something they cannot identify.
DEFAULT_TYPE = "application/octet-stream"

# Web types that take precedence over the stdlib table. Sources: the WHATWG
# specs, RFC 9239 (JavaScript is text/javascript), nginx's mime.types.
_WEB_TYPES: dict[str, str] = {
    # documents
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".css": "text/css",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".xml": "text/xml",
    ".xsl": "application/xslt+xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".ics": "text/calendar",
    ".vtt": "text/vtt",
    ".pdf": "application/pdf",
    # scripts and data
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".json": "application/json",
    ".jsonld": "application/ld+json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    # images
    ".svg": "image/svg+xml",
    ".svgz": "image/svg+xml",
    ".png": "image/png",
    ".apng": "image/apng",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".jxl": "image/jxl",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    # fonts
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    # audio and video
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".weba": "audio/webm",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    # archives and binaries
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".br": "application/x-brotli",
    ".zst": "application/zstd",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".tar": "application/x-tar",
    ".7z": "application/x-7z-compressed",
    ".bin": "application/octet-stream",
    ".exe": "application/octet-stream",
    ".iso": "application/octet-stream",
    ".dmg": "application/octet-stream",
    ".whl": "application/zip",
    ".jar": "application/java-archive",
    ".apk": "application/vnd.android.package-archive",
}

# application/* types that are text and therefore get a charset.
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/xhtml+xml",
        "application/xslt+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/yaml",
        "application/toml",
        "application/dash+xml",
        "application/vnd.apple.mpegurl",
        "image/svg+xml",
    }
)


def _build_table() -> dict[str, str]:
    # MimeTypes(filenames=()) holds only the stdlib's built-in defaults: the
    # module-level table would also read the host's mime.types files, and a
    # server must not change its answers from one machine to the next.
    stdlib = _stdlib_mimetypes.MimeTypes(filenames=())
    table: dict[str, str] = {}
    table.update(stdlib.types_map[False])  # "non-strict" (common but unofficial)
    table.update(stdlib.types_map[True])  # official ones win over those
    table.update(_WEB_TYPES)  # and what browsers expect wins over everything
    return table


def is_text_type(media_type: str) -> bool:
    """True when ``media_type`` (without parameters) is textual and should carry a charset."""
    return media_type.startswith("text/") or media_type in _TEXT_APPLICATION_TYPES


def content_type_for(media_type: str) -> str:
    """The Content-Type header value for ``media_type``: ``; charset=utf-8`` added to text types."""
    if is_text_type(media_type):
        return media_type + "; charset=utf-8"
    return media_type


#: Extension (lower case, with the dot) -> full Content-Type header value.
TYPES: dict[str, str] = {ext: content_type_for(t) for ext, t in _build_table().items()}

_DEFAULT_HEADER = content_type_for(DEFAULT_TYPE)


# name -> its extension, lower-cased, for the names served over and over (splitext alone
# costs ~6,000 instructions). Only the extension is cached, so TYPES is read afresh each
# time. Bounded: once full, further names are split each time.
_EXTENSIONS: dict[str, str] = {}
_EXTENSIONS_MAX = 4096


def guess_type(name: str) -> str:
    """The Content-Type header value for a file name (only its extension matters).

    Extensions are matched case-insensitively; names without a known extension
    get :data:`DEFAULT_TYPE`.
    """
    ext = _EXTENSIONS.get(name)
    if ext is None:
        ext = os.path.splitext(name)[1].lower()
        if len(_EXTENSIONS) < _EXTENSIONS_MAX:
            _EXTENSIONS[name] = ext
    return TYPES.get(ext, _DEFAULT_HEADER)
