"""``Config``: every option validated at construction, with an error naming the field."""

from __future__ import annotations

import dataclasses

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


BAD = [
    ("port", -1),
    ("port", 65536),
    ("port", "80"),
    ("port", True),
    ("workers", -1),
    ("backlog", 0),
    ("keep_alive_timeout", 0),
    ("keep_alive_timeout", -1.0),
    ("keep_alive_timeout", "5"),
    ("header_timeout", 0),
    ("body_timeout", -0.5),
    ("send_timeout", 0),
    ("max_request_line", 0),
    ("max_request_line", 1.5),
    ("max_header_size", -1),
    ("max_header_count", 0),
    ("max_body_size", -1),
    ("max_connections", 0),
    ("max_pipelined", 0),
    ("write_buffer_high", 0),
    ("write_buffer_low", -1),
    ("graceful_timeout", -1),
    ("max_requests", -1),
    ("loop", "tokio"),
    ("log_level", "verbose"),
    ("ws_compression_window_bits", 8),
    ("ws_compression_level", 10),
]


@pytest.mark.parametrize("field, value", BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_bad_value_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        Config(**{field: value})
    assert f"Config.{field}" in str(info.value)


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
