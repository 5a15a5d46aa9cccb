"""Files uploaded through the pages' forms: the name they are known by in messages, and
their bytes read only up to a limit plus one byte (so "too large" is seen without
reading the rest). A request declaring more than its form allows is refused earlier,
before its body is read (``server.web.limits``).
"""

from __future__ import annotations

from fastapi import UploadFile


def upload_name(upload: UploadFile, *, max_length: int = 200) -> str:
    """The file's own name, without any directory a browser sent, for messages."""
    name = (upload.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:max_length] or "upload"


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """At most ``limit + 1`` bytes: more than ``limit`` means the file is too large."""
    return upload.file.read(limit + 1)
