"""Connecting to a source database: its URL (from the parameters or a saved SqlSource block),
the form of it that may be logged, and a SQLAlchemy engine with clear errors for bad URLs."""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from flows.core.config import SourceConfig
from flows.core.errors import ConfigurationError


def resolve_url(source: SourceConfig) -> str:
    """The SQLAlchemy URL of the source, from the config or its saved block."""
    if source.url is not None:
        return normalise_url(source.url)
    from blocks.integrations import connector_url, load_named_block
    from blocks.sources import SqlSource

    block = load_named_block("source.block", str(source.block), SqlSource)
    if isinstance(block, SqlSource):
        return normalise_url(block.url.get_secret_value())
    return normalise_url(connector_url(block))  # a prefect-sqlalchemy SqlAlchemyConnector


def normalise_url(url: str) -> str:
    """The drivers we install for plain URLs: psycopg 3 for postgresql://, PyMySQL (the
    `mysql` extra) for mysql:// and mariadb://."""
    for prefixes, driver in (
        (("postgresql://", "postgres://"), "postgresql+psycopg://"),
        (("mysql://", "mariadb://"), "mysql+pymysql://"),
    ):
        for prefix in prefixes:
            if url.startswith(prefix):
                return driver + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL with its password hidden: the only form that is logged."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"source.url: `{display_url(url)}` is not a SQLAlchemy URL",
            field="source.url",
            hint="use e.g. sqlite:///path/to.db or postgresql://user:pass@host/db",
        ) from exc
    _check_sqlite_file(parsed)
    try:
        return sa.create_engine(parsed, pool_pre_ping=False)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigurationError(
            f"source.url: no driver for `{parsed.drivername}`",
            field="source.url",
            hint="install its DB-API package "
            "(for MySQL and MariaDB: pip install 'prefect-exports[mysql]'), or use "
            "postgresql://, sqlite:// or mysql://",
        ) from exc


def _check_sqlite_file(url: URL) -> None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if url.database.startswith("file:"):
        return
    if not os.path.isfile(url.database):
        raise ConfigurationError(
            f"source.url: SQLite database `{url.database}` does not exist "
            f"(relative to {os.getcwd()})",
            field="source.url",
            hint="check the path",
        )


def is_psycopg(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def is_pymysql(engine: Engine) -> bool:
    """MySQL or MariaDB through PyMySQL (SQLAlchemy names both dialects `mysql`/`mariadb`)."""
    return engine.dialect.name in ("mysql", "mariadb") and engine.dialect.driver == "pymysql"
