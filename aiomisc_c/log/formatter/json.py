"""The ``json`` log format: one JSON object per record, one record per line."""
from __future__ import annotations

import logging
import sys
import traceback
from types import MappingProxyType
from typing import IO, Any, Callable, Dict, Optional, Union

from typing import Literal

__all__ = (
    "DumpsType",
    "JSONLogFormatter",
    "JSONObjType",
    "StyleType",
    "json_handler",
)

StyleType = Union[Literal["%"], Literal["{"], Literal["$"]]
JSONObjType = Dict[str, Any]
DumpsType = Callable[[JSONObjType, Any], str]


def _dump_json(obj: JSONObjType, *args: Any, **kwargs: Any) -> str:
    # json is imported on first use: importing aiomisc_c.log stays cheap.
    import json

    # Non-serialisable values (extra fields, exc_info) become their repr().
    kwargs["default"] = repr
    kwargs["ensure_ascii"] = False
    return json.dumps(obj, *args, **kwargs)


class JSONLogFormatter(logging.Formatter):
    # CRITICAL == FATAL, so the later "fatal" entry wins over "crit".
    LEVELS = MappingProxyType({
        logging.CRITICAL: "crit",
        logging.FATAL: "fatal",
        logging.ERROR: "error",
        logging.WARNING: "warn",
        logging.INFO: "info",
        logging.DEBUG: "debug",
        logging.NOTSET: None,
    })

    # record attribute -> (JSON field name, type it is converted to)
    FIELD_MAPPING = MappingProxyType({
        "filename": ("code_file", str),
        "funcName": ("code_func", str),
        "lineno": ("code_line", int),
        "module": ("code_module", str),
        "name": ("identifier", str),
        "msg": ("message_raw", str),
        "process": ("pid", int),
        "processName": ("process_name", str),
        "threadName": ("thread_name", str),
    })

    def __init__(
        self,
        fmt: Optional[str] = None,
        datefmt: Optional[str] = None,
        style: StyleType = "%",
        dumps: DumpsType = _dump_json,
    ):
        super().__init__(
            fmt=fmt,
            datefmt=(
                datefmt
                if datefmt is not Ellipsis  # type: ignore[comparison-overlap]
                else None
            ),
            style=style,
        )
        self.dumps = dumps

    def _level_name(self, record: logging.LogRecord) -> Optional[str]:
        try:
            return self.LEVELS[record.levelno]
        except KeyError:
            # 17.x raises KeyError for custom levels; a name is more useful.
            return str(record.levelname).lower()

    def format(self, record: logging.LogRecord) -> str:
        attributes = record.__dict__
        fields: Dict[str, Any] = {"errno": 255 if record.exc_info else 0}

        for attribute, (field, field_type) in self.FIELD_MAPPING.items():
            value = attributes.get(attribute)
            if not isinstance(value, field_type):
                value = field_type(value)
            fields[field] = value

        # Everything else the record carries (extra= fields included).
        for key, value in attributes.items():
            if (
                value is None or key[0] == "_" or key in fields
                or key in self.FIELD_MAPPING
            ):
                continue
            fields[key] = value

        args: Any = fields.pop("args", None) or ()
        for index, item in enumerate(args):
            fields[f"argument_{index}"] = str(item)

        payload: JSONObjType = {
            "@fields": fields,
            "msg": self.formatMessage(record),
            "level": self._level_name(record),
        }
        if self.datefmt:
            payload["@timestamp"] = self.formatTime(record, self.datefmt)
        if record.exc_info:
            payload["stackTrace"] = self.formatException(record.exc_info)
        return self.dumps(payload)  # type: ignore[call-arg]

    def formatMessage(self, record: logging.LogRecord) -> str:
        return record.getMessage()

    def formatException(self, exc_info: Any) -> str:
        return "\n".join(traceback.format_exception(*exc_info))

    def formatTime(  # type: ignore[override]
        self, record: logging.LogRecord, datefmt: Optional[str] = None,
    ) -> Union[float, str]:
        if datefmt == "%s":
            return record.created
        return super().formatTime(record, datefmt=datefmt)


def json_handler(
    stream: Optional[IO[str]] = None,
    date_format: Optional[str] = None,
    **kwargs: Any,
) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JSONLogFormatter(datefmt=date_format, **kwargs))
    return handler
