"""Text from a file's bytes, by its name and content: plain text, Markdown, code, JSON,
CSV, HTML, PDF (pypdf) and DOCX (python-docx). What cannot be read raises
``ExtractionError`` with OpenAI's codes and a message a person understands."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath

__all__ = ["ExtractionError", "extract_text"]

TEXT_EXTENSIONS = {
    ".txt", ".md", ".markdown", ".rst", ".log", ".csv", ".tsv", ".json", ".jsonl", ".xml",
    ".yaml", ".yml", ".toml", ".ini", ".cfg", ".tex", ".py", ".js", ".ts", ".tsx", ".jsx",
    ".java", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".go", ".rs", ".rb", ".php", ".sh",
    ".sql", ".swift", ".kt", ".scala", ".r", ".lua", ".pl", ".css", ".vue",
}  # fmt: skip
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"


class ExtractionError(Exception):
    """``code`` is ``unsupported_file`` or ``invalid_file``, as OpenAI's last_error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def extract_text(filename: str, data: bytes) -> str:
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix == ".pdf" or data.startswith(PDF_MAGIC):
        return _pdf(filename, data)
    if suffix == ".docx":
        return _docx(filename, data)
    if suffix in HTML_EXTENSIONS:
        return _html(_decode(filename, data))
    if suffix == ".json":
        text = _decode(filename, data)
        try:
            json.loads(text)
        except ValueError as exc:
            raise ExtractionError(
                "invalid_file", f"{filename} is not valid JSON ({exc})."
            ) from None
        return text
    if suffix in TEXT_EXTENSIONS or (not suffix and _looks_textual(data)):
        return _decode(filename, data)
    if _looks_textual(data) and suffix not in {".zip", ".png", ".jpg", ".jpeg", ".gif"}:
        return _decode(filename, data)
    raise ExtractionError(
        "unsupported_file",
        f"{filename} is not a supported file type for search: text, Markdown, code, JSON, "
        "CSV, HTML, PDF and DOCX files are.",
    )


def _looks_textual(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample or data.startswith(ZIP_MAGIC):
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3  # a character cut by the sample's end
    return True


def _decode(filename: str, data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:4096]:
        raise ExtractionError("invalid_file", f"{filename} is binary, not text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Text that is not UTF-8 is most often Latin-1 / Windows-1252; every byte decodes.
        return data.decode("cp1252", errors="replace")


def _pdf(filename: str, data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("invalid_file", f"{filename} is an encrypted PDF.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ExtractionError(
            "invalid_file", f"{filename} could not be read as a PDF ({exc})."
        ) from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise ExtractionError(
            "invalid_file", f"{filename} has no text to extract (a scanned PDF needs OCR)."
        )
    return text


def _docx(filename: str, data: bytes) -> str:
    from docx import Document
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = Document(io.BytesIO(data))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as exc:
        raise ExtractionError(
            "invalid_file", f"{filename} could not be read as a Word document ({exc})."
        ) from None
    except Exception as exc:  # a broken zip or XML inside surfaces as many types
        raise ExtractionError(
            "invalid_file", f"{filename} could not be read as a Word document ({exc})."
        ) from None
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


class _TextOfHTML(HTMLParser):
    SKIP = {"script", "style", "head", "noscript", "template"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html(markup: str) -> str:
    parser = _TextOfHTML()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)
