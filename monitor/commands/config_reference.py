"""The configuration reference, generated from the settings model so that it cannot drift.

`render_markdown()` is committed as ``docs/configuration.md`` and `render_env_sample()` as
``deploy/monitor.env.example``; a test compares both with the model (`monitor config reference` rewrites
them). `effective_settings()` lists the values a process would use, secrets masked (`monitor config show`).
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from monitor.settings import Settings

ENV_PREFIX = "MONITOR_"
NESTED_DELIMITER = "__"
MASK = "***"


@dataclass(frozen=True)
class SettingDoc:
    """One leaf setting: ``section.name``, its variable, type, default and meaning."""

    path: str
    env: str
    type: str
    default: str
    description: str
    secret: bool


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " / ".join(str(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = " or ".join(_type_name(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(typing.get_args(annotation)) else inner
    if annotation is SecretStr:
        return "secret string"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__.lower().replace("posixpath", "path")
        )
    return str(annotation)


def _bounds(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        if isinstance(item, Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
    return ", ".join(parts)


def _plain(value: Any) -> str:
    """A default or value as it would be written in the environment."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _leaves(model: type[BaseModel], prefix: str) -> list[tuple[str, FieldInfo]]:
    out: list[tuple[str, FieldInfo]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(_leaves(annotation, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", info))
    return out


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def setting_docs(model: type[BaseModel] = Settings) -> list[SettingDoc]:
    """Every leaf setting of the model, in declaration order."""
    docs = []
    for path, info in _leaves(model, ""):
        bounds = _bounds(info)
        description = (info.description or "").strip()
        if bounds:
            description = f"{description} Allowed: {bounds}.".strip()
        docs.append(SettingDoc(
            path=path,
            env=ENV_PREFIX + path.replace(".", NESTED_DELIMITER).upper(),
            type=_type_name(info.annotation),
            default=_plain(info.get_default(call_default_factory=True)),
            description=description,
            secret=_is_secret(info.annotation),
        ))
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(model: type[BaseModel] = Settings) -> str:
    """The committed reference document (docs/configuration.md)."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from monitor/settings.py by `monitor config reference`; do not edit by hand. -->",
        "",
        "Every setting is read from the environment as `MONITOR_<SECTION>__<FIELD>` (case-insensitive).",
        "Secrets (marked **secret**) are never printed: `monitor config show` masks them. A commented sample",
        "with every variable is `deploy/monitor.env.example` (usable as a compose `env_file` or a",
        "Kubernetes ConfigMap). An empty default means unset.",
    ]
    section = None
    for doc in setting_docs(model):
        head = doc.path.split(".")[0] if "." in doc.path else "general"
        if head != section:
            section = head
            lines += ["", f"## `{section}`", "", "| Setting | Environment variable | Type | Default | Meaning |",
                      "|---|---|---|---|---|"]
        default = f"`{doc.default}`" if doc.default else ""
        meaning = ("**secret** " if doc.secret else "") + doc.description
        lines.append(f"| `{doc.path}` | `{doc.env}` | {_cell(doc.type)} | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def render_env_sample(model: type[BaseModel] = Settings) -> str:
    """The committed sample configuration (deploy/monitor.env.example): every variable, commented out."""
    lines = [
        "# Sample configuration of the monitor: environment variables, all commented out at their defaults.",
        "# Generated from monitor/settings.py by `monitor config reference --format env`; do not edit by hand.",
        "# Copy it, uncomment what you change. Secrets belong in a secret store, not in this file.",
    ]
    section = None
    for doc in setting_docs(model):
        head = doc.path.split(".")[0] if "." in doc.path else "general"
        if head != section:
            section = head
            lines += ["", f"# --- {section} ---"]
        lines.append(f"# {doc.description}" + (" (secret)" if doc.secret else ""))
        lines.append(f"# {doc.env}={doc.default}")
    return "\n".join(lines) + "\n"


def _mask(path: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        if path == "db.url":
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                return make_url(raw).render_as_string(hide_password=True)
            except ArgumentError:
                return MASK
        return MASK
    return _plain(value)


def effective_settings(settings: Settings) -> dict[str, str]:
    """``{ENV_VAR: value}`` of a loaded settings object, secrets masked (the DB URL keeps all but its password)."""
    out: dict[str, str] = {}
    for doc in setting_docs(type(settings)):
        value: Any = settings
        for part in doc.path.split("."):
            value = getattr(value, part)
        out[doc.env] = _mask(doc.path, value)
    return out


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it; True when the file changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True
