"""XSLT 1.0 over the XML export (`format_options.xslt`): the shipped presets on the demo data,
byte for byte against files built here from the database's rows; stylesheets that try to
read the machine, stop themselves, or do not compile; the document-scope memory limit."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.core.errors import ConfigurationError, FormatError
from flows.export import export
from flows.formats.xslt import load_stylesheet
from flows.parameters import validate_export_parameters
from tests.flows.destinations.stores import s3_store
from tests.servers import S3Server

ROOT = Path(__file__).parents[3]
DEMO = ROOT / "demo" / "demo.sqlite"
FIXED_WIDTH = str(ROOT / "definitions" / "fixed_width.xsl")
GROUP_BY_STATUS = str(ROOT / "definitions" / "group_by_status.xsl")


def demo_rows(columns: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(DEMO)) as conn:
        return conn.execute(f"SELECT {columns} FROM orders ORDER BY order_id").fetchall()


def run(folder: Path, columns: list[str], **options: Any) -> Path:
    result = export(
        source={"url": f"sqlite:///{DEMO}", "table": "orders", "columns": columns},
        destination={"url": str(folder / "out" / "{export}.{ext}")},
        format="xml",
        format_options=options,
    )
    [path] = result.files
    return Path(path)


@pytest.mark.usefixtures("prefect_api")
class TestPresets:
    def test_fixed_width_text_one_line_per_row(self, tmp_path: Path) -> None:
        path = run(tmp_path, ["order_id", "status", "quantity"], xslt=FIXED_WIDTH)
        assert path.name == "orders.txt"  # the stylesheet's media-type: text/plain

        def cell(value: Any) -> str:
            return ("" if value is None else str(value))[:16].ljust(16)

        rows = demo_rows("order_id, status, quantity")
        expected = "".join("".join(map(cell, row)) + "\n" for row in rows)
        assert path.read_bytes() == expected.encode()

    def test_rows_grouped_under_their_status_with_counts(self, tmp_path: Path) -> None:
        path = run(tmp_path, ["order_id", "status"], xslt=GROUP_BY_STATUS, xslt_scope="document")
        rows = demo_rows("order_id, status")
        groups: dict[str, list[tuple[int, str | None]]] = {}
        for order_id, status in rows:
            groups.setdefault(status or "", []).append((order_id, status))

        def item(order_id: int, status: str | None) -> str:
            if status is None:
                element = '<status type="null"/>'
            elif status == "":
                element = '<status type="str"/>'
            else:
                element = f'<status type="str">{status}</status>'
            return f'<item type="dict"><order_id type="int">{order_id}</order_id>{element}</item>'

        expected = f'<?xml version="1.0" encoding="UTF-8" ?><groups rows="{len(rows)}">'
        for status in sorted(groups):
            members = groups[status]
            expected += f'<group status="{status}" count="{len(members)}">'
            expected += "".join(item(*member) for member in members) + "</group>"
        expected += "</groups>"
        assert path.read_bytes() == expected.encode()


@pytest.mark.usefixtures("prefect_api")
class TestStylesheetsThatFail:
    def stylesheet(self, folder: Path, body: str, method: str = "text") -> str:
        path = folder / "sheet.xsl"
        path.write_text(
            '<?xml version="1.0"?>\n'
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
            f'  <xsl:output method="{method}"/>\n'
            f'  <xsl:template match="/item">{body}</xsl:template>\n'
            "</xsl:stylesheet>\n"
        )
        return str(path)

    @pytest.mark.parametrize(
        ("target", "refused"),
        [
            ("/etc/passwd", "Local file read for /etc/passwd refused"),
            ("http://127.0.0.1:9/x.xml", "Network file read for http://127.0.0.1:9/x.xml refused"),
        ],
    )
    def test_it_cannot_read_the_machine_or_the_network(
        self, tmp_path: Path, target: str, refused: str
    ) -> None:
        sheet = self.stylesheet(tmp_path, f"<xsl:value-of select=\"document('{target}')\"/>")
        with pytest.raises(FormatError) as raised:
            run(tmp_path, ["order_id"], xslt=sheet)
        assert f"format_options.xslt: `{sheet}` stopped: " in str(raised.value)
        assert refused in str(raised.value)
        assert not list((tmp_path / "out").iterdir()), "nothing published"

    def test_includes_come_from_its_own_folder_only(self, tmp_path: Path) -> None:
        folder = tmp_path / "sheets"
        folder.mkdir()
        (folder / "parts.xsl").write_text(
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
            '<xsl:template name="id">#<xsl:value-of select="order_id"/>'
            "<xsl:text>&#10;</xsl:text></xsl:template>"
            "</xsl:stylesheet>"
        )
        (tmp_path / "outside.xsl").write_text((folder / "parts.xsl").read_text())
        sheet = folder / "main.xsl"
        for included in ("parts.xsl", "../outside.xsl"):
            sheet.write_text(
                '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
                f'<xsl:include href="{included}"/><xsl:output method="text"/>'
                '<xsl:template match="/item"><xsl:call-template name="id"/></xsl:template>'
                "</xsl:stylesheet>"
            )
            if included == "parts.xsl":
                path = run(tmp_path / "ok", ["order_id"], xslt=str(sheet))
                assert path.read_text().startswith("#1\n#2\n")
            else:
                load_stylesheet.cache_clear()
                with pytest.raises(ConfigurationError) as raised:
                    run(tmp_path / "refused", ["order_id"], xslt=str(sheet))
                assert "may read only files in its own folder" in str(raised.value)

    def test_xsl_message_terminate_fails_the_run_with_its_text(self, tmp_path: Path) -> None:
        sheet = self.stylesheet(
            tmp_path,
            '<xsl:if test="order_id = 7"><xsl:message terminate="yes">order 7 is not allowed'
            '</xsl:message></xsl:if><xsl:value-of select="order_id"/>',
        )
        with pytest.raises(FormatError) as raised:
            run(tmp_path, ["order_id"], xslt=sheet)
        assert str(raised.value).endswith("stopped: order 7 is not allowed")
        assert not list((tmp_path / "out").iterdir())

    def test_a_document_past_xslt_max_mb_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(FormatError) as raised:
            run(
                tmp_path,
                ["order_id", "status", "comment"],
                xslt=GROUP_BY_STATUS,
                xslt_scope="document",
                xslt_max_mb=0.01,
            )
        assert "format_options.xslt_max_mb: the XML document passed" in str(raised.value)
        assert "use xslt_scope: item" in str(raised.value)
        assert not list((tmp_path / "out").iterdir())


INCLUDING = (  # fixed_width.xsl's rows, with the line break from a sibling file
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
    '<xsl:include href="{href}"/><xsl:output method="text" media-type="text/plain"/>'
    '<xsl:template match="/item"><xsl:value-of select="order_id"/>'
    '<xsl:call-template name="end"/></xsl:template></xsl:stylesheet>'
)
END = (
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
    '<xsl:template name="end"><xsl:text>&#10;</xsl:text></xsl:template></xsl:stylesheet>'
)


@pytest.fixture
def web_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain web server on loopback serving a folder (and, beside it, a file it may not)."""
    served = tmp_path / "web" / "defs"
    served.mkdir(parents=True)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "web"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/defs/", served
    finally:
        server.shutdown()
        server.server_close()
        load_stylesheet.cache_clear()


@pytest.mark.usefixtures("prefect_api")
class TestStylesheetsAtUrls:
    """`format_options.xslt` as a URL: a bucket read with a saved block's credentials, and a
    web server; includes come from the same folder only."""

    def test_a_preset_in_s3_with_a_saved_block_gives_the_same_file(
        self, s3: S3Server, tmp_path: Path
    ) -> None:
        store = s3_store(s3)
        block = store.save_block(f"sheets-{store.container}")
        client: Any = s3.client()
        sheet = Path(FIXED_WIDTH).read_bytes()
        client.put_object(Bucket=store.container, Key="defs/fixed_width.xsl", Body=sheet)
        client.put_object(
            Bucket=store.container,
            Key="defs/ids.xsl",
            Body=INCLUDING.format(href="end.xsl").encode(),
        )
        client.put_object(Bucket=store.container, Key="defs/end.xsl", Body=END.encode())
        columns = ["order_id", "status", "quantity"]
        local = run(tmp_path / "local", columns, xslt=FIXED_WIDTH)
        remote = run(
            tmp_path / "s3", columns, xslt=store.url("defs/fixed_width.xsl"), xslt_block=block
        )
        assert remote.name == "orders.txt"
        assert remote.read_bytes() == local.read_bytes()
        ids = run(tmp_path / "ids", ["order_id"], xslt=store.url("defs/ids.xsl"), xslt_block=block)
        expected = "".join(f"{row[0]}\n" for row in demo_rows("order_id"))
        assert ids.read_text() == expected  # the include came from the bucket's folder
        with pytest.raises(ConfigurationError) as raised:
            run(
                tmp_path / "missing",
                ["order_id"],
                xslt=store.url("defs/nope.xsl"),
                xslt_block=block,
            )
        assert f"format_options.xslt: no stylesheet at `{store.url('defs/nope.xsl')}`" in str(
            raised.value
        )
        assert not (tmp_path / "missing").exists()

    def test_a_stylesheet_on_a_web_server_reads_only_its_own_folder(
        self, web_folder: tuple[str, Path], tmp_path: Path
    ) -> None:
        base, served = web_folder
        (served / "fixed_width.xsl").write_bytes(Path(FIXED_WIDTH).read_bytes())
        (served / "end.xsl").write_text(END)
        (served.parent / "outside.xsl").write_text(END)
        (served / "ids.xsl").write_text(INCLUDING.format(href="end.xsl"))
        (served / "sneaky.xsl").write_text(INCLUDING.format(href="../outside.xsl"))
        columns = ["order_id", "status", "quantity"]
        local = run(tmp_path / "local", columns, xslt=FIXED_WIDTH)
        assert run(tmp_path / "web", columns, xslt=base + "fixed_width.xsl").read_bytes() == (
            local.read_bytes()
        )
        ids = run(tmp_path / "ids", ["order_id"], xslt=base + "ids.xsl")
        assert ids.read_text().startswith("1\n2\n")
        with pytest.raises(ConfigurationError) as raised:
            run(tmp_path / "sneaky", ["order_id"], xslt=base + "sneaky.xsl")
        outside = base.removesuffix("defs/") + "outside.xsl"  # as libxml2 joined the href
        assert (
            f"tried to read `{outside}`; a stylesheet may read only files in its own folder ("
            in (str(raised.value))
        )
        assert not (tmp_path / "sneaky").exists()


@pytest.mark.unit
class TestRefusedBeforeTheRun:
    def parameters(self, fmt: str, **options: Any) -> dict[str, Any]:
        return {
            "source": {"url": "sqlite:///x.db", "table": "t"},
            "destination": {"url": "out/{export}.{ext}"},
            "format": fmt,
            "format_options": options,
        }

    def test_a_stylesheet_that_does_not_compile_names_file_and_line(self, tmp_path: Path) -> None:
        sheet = tmp_path / "bad.xsl"
        sheet.write_text(
            '<?xml version="1.0"?>\n'
            '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
            '  <xsl:template match="/">\n'
            '    <xsl:value-of select="((1"/>\n'
            "  </xsl:template>\n"
            "</xsl:stylesheet>\n"
        )
        with pytest.raises(ConfigurationError) as raised:
            validate_export_parameters(self.parameters("xml", xslt=str(sheet)))
        message = str(raised.value)
        assert f"`{sheet}` (line 4) is not a valid XSLT 1.0 stylesheet" in message
        assert "could not compile select expression '((1'" in message

    def test_a_file_that_is_not_xml(self, tmp_path: Path) -> None:
        sheet = tmp_path / "broken.xsl"
        sheet.write_text('<?xml version="1.0"?>\n<xsl:stylesheet version="1.0"\n <oops>\n')
        with pytest.raises(ConfigurationError) as raised:
            validate_export_parameters(self.parameters("xml", xslt=str(sheet)))
        assert "is not well-formed XML (line 3)" in str(raised.value)

    @pytest.mark.parametrize(
        ("fmt", "options", "message"),
        [
            ("csv", {"xslt": FIXED_WIDTH}, "format_options.xslt: a stylesheet transforms the XML"),
            ("xml", {"xslt": "no/such.xsl"}, "format_options.xslt: no stylesheet at `no/such.xsl`"),
            ("xml", {"ext": "txt"}, "format_options.ext: names a stylesheet's files; set xslt"),
            ("xml", {"xslt": FIXED_WIDTH, "ext": "a/b"}, "`a/b` is not a file extension"),
            ("xml", {"xslt_block": "creds"}, "format_options.xslt_block: names credentials"),
            (
                "xml",
                {"xslt": FIXED_WIDTH, "xslt_block": "creds"},
                "is a file of this machine, read without credentials",
            ),
        ],
    )
    def test_options_that_cannot_work(
        self, fmt: str, options: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ConfigurationError) as raised:
            validate_export_parameters(self.parameters(fmt, **options))
        assert message in str(raised.value)
