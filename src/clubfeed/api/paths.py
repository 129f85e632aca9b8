"""The path of one record, `/v1/{resource}/{record_id}`, which must not swallow the endpoints
beside it: `/v1/users/batch` is the batch endpoint, never a record called "batch", so the
`Allow` header there names exactly the methods the batch endpoint serves.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from clubfeed import catalogue


class RecordIdConvertor(Convertor[str]):
    """Any text but a reserved word; slashes and control characters reach the id check,
    which answers 400 with the rule rather than a bare 404."""

    regex = rf"(?!(?:{'|'.join(catalogue.RESERVED_IDS)})$)(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("record_id", RecordIdConvertor())

RECORD_PATH = "/{record_id:record_id}"
