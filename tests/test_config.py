"""``Config``: every option validated at construction, with an error naming the field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import peregrine
from peregrine.config import Config


def test_defaults_are_valid_and_safe() -> None:
    config = Config()
    assert config.keep_alive_timeout == 5.0
    assert config.header_timeout == 10.0
    assert (
        config.max_request_line > 0 and config.max_header_size > 0 and config.max_header_count > 0
    )
    assert 0 < config.max_body_size <= 64 * 1024 * 1024
    assert config.max_connections > 0
    assert config.server_header is True and config.access_log is False
    assert config.write_buffer_low <= config.write_buffer_high


# At least one bad value for every field (test_every_field_has_a_bad_value keeps it so).
BAD = [
    ("interface", "cgi"),
    ("factory", "yes"),
    ("root_path", "api"),
    ("root_path", "/api/"),
    ("root_path", None),
    ("lifespan", "maybe"),
    ("threads", -1),
    ("threads", True),
    ("host", 5),
    ("host", ""),
    ("host", "a b"),
    ("host", "[::1]"),
    ("host", "-bad-.example"),
    ("port", -1),
    ("port", 65536),
    ("port", "80"),
    ("port", True),
    ("port", 80.0),
    ("uds", ""),
    ("uds", 7),
    ("uds", "/tmp/a\0b"),
    ("uds", "/tmp/" + "s" * 200),
    ("uds_permissions", -5),
    ("uds_permissions", 0o1777),
    ("uds_permissions", "660"),
    ("fd", -3),
    ("fd", "3"),
    ("fd", 3.0),
    ("backlog", 0),
    ("backlog", None),
    ("reuse_port", 1),
    ("reuse_port", "yes"),
    ("workers", -1),
    ("workers", 2.5),
    ("cpu_affinity", "true"),
    ("graceful_timeout", -1),
    ("graceful_timeout", float("inf")),
    ("max_requests", -1),
    ("max_requests_jitter", -1),
    ("worker_timeout", -1),
    ("worker_timeout", float("nan")),
    ("worker_timeout", "30"),
    ("loop", "tokio"),
    ("loop", None),
    ("keep_alive_timeout", 0),
    ("keep_alive_timeout", -1.0),
    ("keep_alive_timeout", "5"),
    ("keep_alive_timeout", float("nan")),
    ("header_timeout", 0),
    ("body_timeout", -0.5),
    ("send_timeout", 0),
    ("tls_handshake_timeout", 0),
    ("lingering_timeout", -1),
    ("lingering_timeout", float("inf")),
    ("lingering_timeout", True),
    ("max_request_line", 0),
    ("max_request_line", 1.5),
    ("max_header_size", -1),
    ("max_header_count", 0),
    ("max_body_size", -1),
    ("max_chunk_extensions", -1),
    ("max_chunk_extensions", "16k"),
    ("max_connections", 0),
    ("max_pipelined", 0),
    ("write_buffer_high", 0),
    ("write_buffer_low", -1),
    ("lingering_max", -1),
    ("lingering_max", 1.5),
    ("ssl_certfile", ""),
    ("ssl_certfile", 5),
    ("ssl_keyfile", ""),
    ("ssl_keyfile_password", 1234),
    ("ssl_ca_certs", ""),
    ("ssl_cert_reqs", "sometimes"),
    ("ssl_min_version", "1.1"),
    ("forwarded_allow_ips", "10.0.0.0/8, proxy.example"),
    ("forwarded_allow_ips", ["127.0.0.1"]),
    ("forwarded_headers", "x-real-ip"),
    ("ws_max_message_size", 0),
    ("ws_ping_interval", -1),
    ("ws_ping_timeout", 0),
    ("ws_write_limit", 0),
    ("ws_close_timeout", 0),
    ("ws_compression", "on"),
    ("ws_compression_window_bits", 8),
    ("ws_compression_window_bits", 16),
    ("ws_compression_level", 0),
    ("ws_compression_level", 10),
    ("server_header", None),
    ("access_log", 1),
    ("health_path", "healthz"),
    ("health_path", "/health?x=1"),
    ("health_path", "/h\u00e9alth"),
    ("health_path", "/a b"),
    ("drain_delay", -1),
    ("drain_delay", float("inf")),
    ("drain_delay", "2"),
    ("metrics_port", 65536),
    ("metrics_port", -1),
    ("metrics_port", True),
    ("metrics_host", ""),
    ("metrics_host", "[::1]"),
    ("log_level", "verbose"),
    ("log_level", "INFO"),
    ("uds_group", ""),
    ("access_log_format", "{status} {colour}"),
    ("access_log_format", "{status"),
    ("access_log_json", "yes"),
    ("log_config", ""),
    ("pid_file", ""),
    ("http2", "yes"),
    ("http2_max_concurrent_streams", 0),
    ("http2_stream_window", 0),
    ("http2_stream_window", 2**31),
    ("http2_max_resets", 0),
    ("http2_max_control_frames", 0),
]

# Values at the edge of what a field allows: accepted.
GOOD = [
    ("root_path", ""),
    ("root_path", "/api"),
    ("threads", 0),
    ("host", "::1"),
    ("host", "0.0.0.0"),
    ("host", "localhost"),
    ("host", "fe80::1%lo"),
    ("port", 0),
    ("port", 65535),
    ("uds", "/tmp/peregrine.sock"),
    ("uds", "\0peregrine-abstract"),
    ("fd", 0),
    ("backlog", 1),
    ("graceful_timeout", 0),
    ("worker_timeout", 0),
    ("worker_timeout", 0.5),
    ("keep_alive_timeout", 1),
    ("lingering_timeout", 0),
    ("lingering_max", 0),
    ("max_body_size", 0),
    ("write_buffer_low", 0),
    ("ws_ping_interval", 0),
    ("ws_compression_window_bits", 9),
    ("ws_compression_window_bits", 15),
    ("forwarded_allow_ips", "*"),
    ("forwarded_allow_ips", "unix, 10.0.0.0/8,::1"),
    ("ssl_keyfile_password", ""),
    ("uds_group", "www-data"),
    ("access_log_format", "{status} {duration_us}"),
    ("access_log_format", "no fields at all"),
    ("log_config", "logging.toml"),
    ("pid_file", "/run/app/server.pid"),
    ("health_path", "/"),
    ("health_path", "/-/ready"),
    ("drain_delay", 0),
    ("drain_delay", 0.25),
    ("metrics_port", 0),
    ("metrics_port", 65535),
    ("metrics_host", "::1"),
    ("http2", False),
    ("http2_max_concurrent_streams", 1),
    ("http2_stream_window", 2**31 - 1),
    ("http2_max_resets", 1),
    ("http2_max_control_frames", 1),
]


@pytest.mark.parametrize("field, value", BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_bad_value_is_refused_in_one_line_naming_field_value_and_what_is_allowed(
    field: str, value: Any
) -> None:
    with pytest.raises(ValueError) as info:
        Config(**{field: value})
    message = str(info.value)
    secret = next(f for f in dataclasses.fields(Config) if f.name == field).metadata.get("secret")
    shown = "a value not shown here (secret)" if secret else repr(value)
    assert message.startswith(f"Config.{field} must be "), message
    assert message.endswith(f", got {shown}"), message
    assert "\n" not in message


@pytest.mark.parametrize("field, value", GOOD, ids=[f"{f}={v!r}" for f, v in GOOD])
def test_edge_value_is_accepted(field: str, value: Any) -> None:
    assert getattr(Config(**{field: value}), field) == value


def test_every_field_has_a_bad_value() -> None:
    assert {f.name for f in dataclasses.fields(Config)} == {name for name, _ in BAD}


def test_bad_password_is_not_shown() -> None:
    with pytest.raises(ValueError, match="Config.ssl_keyfile_password") as info:
        Config(ssl_keyfile_password=b"hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


def test_low_water_mark_above_high() -> None:
    with pytest.raises(ValueError, match="write_buffer_low"):
        Config(write_buffer_high=1000, write_buffer_low=2000)


def test_keyfile_without_certfile() -> None:
    with pytest.raises(ValueError, match="ssl_keyfile"):
        Config(ssl_keyfile="key.pem")


def test_uds_and_fd_are_exclusive() -> None:
    with pytest.raises(ValueError, match="uds"):
        Config(uds="/tmp/x.sock", fd=3)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError):
        Config(no_such_option=1)  # type: ignore[call-arg]


def test_replace_validates_again() -> None:
    config = Config(port=8000)
    assert config.replace(port=9000).port == 9000
    assert config.port == 8000
    with pytest.raises(ValueError, match="Config.port"):
        config.replace(port=-5)


def test_every_field_documents_itself() -> None:
    for field in dataclasses.fields(Config):
        assert field.metadata.get("help"), field.name


def test_server_takes_config_fields_as_keywords() -> None:
    server = peregrine.Server(lambda req, resp: None, port=0, keep_alive_timeout=2.5)
    assert server.config.keep_alive_timeout == 2.5
    with pytest.raises(ValueError, match="Config.header_timeout"):
        peregrine.Server(lambda req, resp: None, header_timeout=0)
    with pytest.raises(TypeError):
        peregrine.Server(lambda req, resp: None, bogus=1)
