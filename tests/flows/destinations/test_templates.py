"""Destination URL templates (flows/core/targets.py): what each token renders to, where a
split export's part number goes, the manifest's name, and the templates and names refused
before a run, with the field and what to change. Pure string rules: no store is touched (the
rendered files in real stores are test_delivery.py's and test_stores.py's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from flows.core.errors import ConfigurationError
from flows.core.targets import (
    TargetContext,
    check_rendered,
    check_targets,
    check_template,
    check_window_tokens,
    manifest_name,
    name_problem,
    render_target,
    template_fields,
    uses_window_tokens,
    with_part_token,
)

pytestmark = pytest.mark.unit

RUN = "0b3c5f0e-6d3b-4a57-9a51-0d3f1c7e2a10"
BERLIN = timezone(timedelta(hours=1))
CONTEXT = TargetContext(
    export="orders",
    deployment="nightly-orders",
    run_id=RUN,
    date=datetime(2026, 3, 7, 4, 5, 6, tzinfo=UTC),
    ext="csv",
    since=datetime(2026, 3, 6, 0, 0, tzinfo=BERLIN),
    until=datetime(2026, 3, 7, 0, 0, tzinfo=BERLIN),
)
NO_WINDOW = TargetContext("orders", "nightly-orders", RUN, CONTEXT.date, "jsonl")


@pytest.mark.parametrize(
    ("template", "part", "rendered"),
    [
        ("out/{export}.{ext}", None, "out/orders.csv"),
        ("out/{deployment}/{export}.{ext}", None, "out/nightly-orders/orders.csv"),
        ("out/{run_id}.{ext}", None, f"out/{RUN}.csv"),
        ("out/{date}.{ext}", None, "out/2026-03-07.csv"),
        ("out/{date:%Y/%m/%d}/{export}.{ext}", None, "out/2026/03/07/orders.csv"),
        ("out/{date:%Y%m%dT%H%M%S}.{ext}", None, "out/20260307T040506.csv"),
        ("out/{export}-{part}.{ext}", 3, "out/orders-3.csv"),
        ("out/{export}-{part:04d}.{ext}", 12, "out/orders-0012.csv"),
        ("out/{export}-{part:03d}.{ext}", None, "out/orders-001.csv"),
        ("out/{export}-{since}-{until}.{ext}", None,
         "out/orders-20260306T000000-20260307T000000.csv"),
        ("out/{since:%Y-%m-%d %H:%M}.{ext}", None, "out/2026-03-06 00:00.csv"),
        ("out/{{literal}}/{export}.{ext}", None, "out/{literal}/orders.csv"),
        ("s3://bucket/{export}/{date:%Y}.{ext}", None, "s3://bucket/orders/2026.csv"),
        ("https://hooks.example.com/in?name={export}.{ext}", None,
         "https://hooks.example.com/in?name=orders.csv"),
    ],
)  # fmt: skip
def test_each_token_renders_its_value(template: str, part: int | None, rendered: str) -> None:
    assert render_target(template, CONTEXT, part=part) == rendered


@pytest.mark.parametrize("template", ["out/{since}.csv", "out/{export}-{until:%Y}.csv"])
def test_a_window_token_without_a_window_is_refused(template: str) -> None:
    token = "since" if "{since" in template else "until"
    with pytest.raises(ConfigurationError) as caught:
        render_target(template, NO_WINDOW, part=None)
    assert str(caught.value) == (
        f"destination.url: `{{{token}}}` in `{template}` needs a window; use :since / :until in "
        "source.query (or set `window`), or remove the token"
    )


@pytest.mark.parametrize(
    ("template", "numbered"),
    [
        ("out/{export}.{ext}", "out/{export}-{part:04d}.{ext}"),
        ("out/{export}.csv.gz", "out/{export}-{part:04d}.csv.gz"),
        ("out/v1.2/{export}.{ext}", "out/v1.2/{export}-{part:04d}.{ext}"),
        ("out/{export}", "out/{export}-{part:04d}"),
        ("out/.hidden", "out/.hidden-{part:04d}"),
        ("out\\win\\{export}.{ext}", "out\\win\\{export}-{part:04d}.{ext}"),
        ("out/{export}-{part:02d}.{ext}", "out/{export}-{part:02d}.{ext}"),
        ("out/{part}/{export}.{ext}", "out/{part}/{export}.{ext}"),
        ("{export}.{ext}", "{export}-{part:04d}.{ext}"),
    ],
)
def test_a_split_exports_part_number_goes_before_the_extension(
    template: str, numbered: str
) -> None:
    assert with_part_token(template) == numbered


@pytest.mark.parametrize(
    ("final", "ext", "compression", "manifest"),
    [
        ("out/orders-20260307.csv", "csv", "none", "out/orders-20260307.manifest.json"),
        ("out/orders.csv.gz", "csv", "none", "out/orders.manifest.json"),
        ("out/orders.csv.gz", "csv", "gzip", "out/orders.manifest.json"),
        ("out/orders.csv.zst", "csv", "zstd", "out/orders.manifest.json"),
        ("out/orders.xml.bz2", "xml", "bz2", "out/orders.manifest.json"),
        ("out/orders.jsonl.xz", "jsonl", "xz", "out/orders.manifest.json"),
        ("out/orders.csv.zst", "csv", "none", "out/orders.csv.zst.manifest.json"),
        ("s3://b/daily/orders.jsonl", "jsonl", "none", "s3://b/daily/orders.manifest.json"),
        ("out/orders.txt", "csv", "none", "out/orders.txt.manifest.json"),
    ],
)
def test_the_manifest_sits_next_to_the_files(
    final: str, ext: str, compression: str, manifest: str
) -> None:
    assert manifest_name(final, ext, compression) == manifest


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("orders", None),
        ("orders 2026-03.v2", None),
        ("Ünïcødé 日本", None),
        ("n" * 255, None),
        ("é" * 127, None),
        ("", "is empty"),
        ("a/b", "has a `/`; it is one file name, and the folders are destination.url's "
                "(e.g. out/tenant-a/{export}.{ext})"),
        ("a\\b", "has a `\\`; it is one file name"),
        ("a\x00b", "has a control character (\\x00), which no file name should hold"),
        ("a\nb", "has a control character (\\n), which no file name should hold"),
        ("a\u2029b", "has a control character (\\u2029), which no file name should hold"),
        (".orders", "starts with `.`; hidden names are the exports' temporary files, and `..` "
                    "leaves the folder"),
        ("..", "starts with `.`"),
        ("n" * 256, "is 256 bytes of UTF-8; a file name holds at most 255"),
        ("é" * 128, "is 256 bytes of UTF-8; a file name holds at most 255"),
    ],
)  # fmt: skip
def test_what_one_file_name_may_hold(value: str, problem: str | None) -> None:
    found = name_problem(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize(
    ("template", "names_file", "message"),
    [
        ("out/{nope}.csv", True, "destination.url: unknown token `{nope}` in `out/{nope}.csv`"),
        ("out/{export", True, "destination.url: template `out/{export` is malformed"),
        ("out/}.csv", True, "destination.url: template `out/}.csv` is malformed"),
        ("out/{date:%Y}{part:x}.csv", True, None),
        ("out/{export:>300}.csv", True, "is 304 bytes of UTF-8; a file or folder name holds at "
                                        "most 255: shorten the export's name or the template"),
        ("out/", True, "destination.url: `out/` names a folder; end it with a file name"),
        ("https://hooks.example.com/in/", False, None),
        ("https://hooks.example.com/a/../in", False, "with a `..` segment"),
        ("out/{run_id:.3}/x.csv", True, None),
    ],
)  # fmt: skip
def test_a_template_is_checked_before_the_run(
    template: str, names_file: bool, message: str | None
) -> None:
    if message is None:
        check_template(template, split=False, names_file=names_file)
        return
    with pytest.raises(ConfigurationError) as caught:
        check_template(template, split=False, names_file=names_file)
    assert message in str(caught.value), caught.value


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("out/a/../b.csv", "renders `out/a/../b.csv`, with a `..` segment, which leaves the "
                           "template's folder"),
        ("out//b.csv", "renders `out//b.csv`, with an empty segment (`//`); write one `/` "
                       "between folders"),
        ("/abs/b.csv", "renders `/abs/b.csv`, an absolute path from a relative template; a "
                       "token's value must not start with `/`"),
        ("out/b\tc.csv", "renders `out/b\\tc.csv`, with a control character (\\t); remove it "
                         "from the template or the values of its tokens"),
        ("out/" + "é" * 130 + ".csv", "is 264 bytes of UTF-8; a file or folder name holds at "
                                      "most 255"),
    ],
)  # fmt: skip
def test_a_rendered_path_that_leaves_its_folder_is_refused(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_rendered("out/{export}.{ext}", url)
    message = str(caught.value)
    assert message.startswith("destination.url: `out/{export}.{ext}` renders `"), message
    assert says in message, message


def test_a_long_rendered_name_is_shown_cut_short() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_rendered("out/{export}.{ext}", "out/" + "x" * 300 + ".csv")
    message = str(caught.value)
    assert "renders `out/" + "x" * 75 + "…`" in message, message
    assert "is 304 bytes of UTF-8" in message, message


@pytest.mark.parametrize(
    ("template", "compression", "manifest", "split", "refused"),
    [
        ("/out/{export}.{ext}", "none", False, False, None),
        ("/out/" + "n" * 250 + ".{ext}", "none", False, False, None),
        ("/out/" + "n" * 250 + ".{ext}", "gzip", False, False, "is 258 bytes"),
        ("/out/" + "n" * 250 + ".{ext}", "zstd", False, False, "is 259 bytes"),
        ("/out/" + "n" * 250 + ".{ext}", "bz2", False, False, "is 259 bytes"),
        ("/out/" + "n" * 250 + ".{ext}", "xz", False, False, "is 258 bytes"),
        ("/out/" + "n" * 250 + ".{ext}", "none", False, True, "is 260 bytes"),
        ("/out/" + "n" * 242 + ".{ext}", "none", True, False, "is 256 bytes"),
        ("/out/" + "n" * 242 + ".{ext}", "zstd", True, False, "is 256 bytes"),
        ("/out/" + "n" * 242 + ".{ext}", "none", False, False, None),
        ("/out/" + "n" * 238 + "-{part}.{ext}", "none", True, False, None),
        ("/out/" + "n" * 240 + "-{part}.{ext}", "none", True, False, "is 256 bytes"),
        ("/out/{export}.{ext}.gz", "gzip", False, False, None),
        ("/out/{export}.{ext}.xz", "xz", False, False, None),
    ],
)  # fmt: skip
def test_every_name_the_run_writes_fits(
    template: str, compression: str, manifest: bool, split: bool, refused: str | None
) -> None:
    """The first part's name, the codec's extension and the manifest's are checked with the
    run's values: `orders.csv` plus gzip is `orders.csv.gz` (zstd `.zst`, bz2 `.bz2`, xz
    `.xz`), a part adds `-0001`, the manifest `.manifest.json`."""
    context = TargetContext("orders", "d", RUN, CONTEXT.date, "csvx")
    if refused is None:
        check_targets(template, context, split=split, compression=compression, manifest=manifest)
        return
    with pytest.raises(ConfigurationError) as caught:
        check_targets(template, context, split=split, compression=compression, manifest=manifest)
    assert f"{refused} of UTF-8; a file or folder name holds at most 255" in str(caught.value)


@pytest.mark.parametrize(
    ("template", "fields", "window"),
    [
        ("out/{export}.{ext}", [("export", ""), ("ext", "")], []),
        ("out/{date:%Y/%m}/{part:03d}", [("date", "%Y/%m"), ("part", "03d")], []),
        ("{until}-{since}-{until:%Y}", [("until", ""), ("since", ""), ("until", "%Y")],
         ["until", "since"]),
        ("out/{{since}}.csv", [], []),
        ("plain.csv", [], []),
    ],
)  # fmt: skip
def test_the_tokens_a_template_uses(
    template: str, fields: list[tuple[str, str]], window: list[str]
) -> None:
    assert template_fields(template) == fields
    assert uses_window_tokens(template) == window
    check_window_tokens(template, has_window=True)  # a run with a window renders them all
