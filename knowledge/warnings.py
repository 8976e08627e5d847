"""Warning templates (预警提示模板): reviewed texts for common situations, `knowledge/warnings/*.yaml`.

A template's text may use the region's placeholders (`config.yaml` `region:`) and the broadcast's own fields
({township}: the township's name, {company}: a name staff type in). `load` returns the templates and every problem
found; `render` fills one in and refuses a field the broadcast did not give.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from knowledge import yamlfile
from knowledge.schema import ID_PATTERN, KNOWLEDGE_DIR, Problem, load_taxonomy, placeholders

WARNINGS_DIR = KNOWLEDGE_DIR / "warnings"
AUDIENCES = {"elderly", "student", "other", "all"}
FIELDS = {"township", "company"}  # filled from the broadcast, not from config
FIELDS_REQUIRED = ("id", "title", "audience", "occasion", "text")
TITLE_MAX = 30
TEXT_MAX = 300  # characters: a warning is read on a phone, and the unsubscribe line follows


@dataclass(frozen=True)
class Template:
    id: str
    title: str
    audience: str
    occasion: str
    text: str
    category: str | None = None

    @property
    def fields(self) -> set[str]:
        """The broadcast fields this template needs."""
        return placeholders(self.text) & FIELDS


class MissingField(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def render(template: Template, region: dict[str, str], fields: dict[str, str | None]) -> str:
    """The template's text with the region's values and the broadcast's fields filled in."""
    missing = sorted(name for name in template.fields if not (fields.get(name) or "").strip())
    if missing:
        raise MissingField(missing)
    given = {name: (fields.get(name) or "").strip() for name in template.fields}
    return template.text.strip().format(**{**region, **given})


def load(directory: Path = WARNINGS_DIR, region_keys: set[str] | None = None) -> tuple[dict[str, Template],
                                                                                          list[Problem]]:
    taxonomy = load_taxonomy()
    known = (region_keys or set()) | FIELDS
    templates: dict[str, Template] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yamlfile.load(path) or []
        except (OSError, yaml.YAMLError) as exc:
            problems.append(Problem(path.name, "-", "-", f"cannot be read: {exc.__class__.__name__}"))
            continue
        if not isinstance(data, list):
            problems.append(Problem(path.name, "-", "-", "must be a list of templates"))
            continue
        for raw in data:
            found = _check(raw, path.name, taxonomy, known)
            problems += found
            if found:
                continue
            if raw["id"] in templates:
                problems.append(Problem(path.name, raw["id"], "id", "used twice"))
                continue
            templates[raw["id"]] = Template(id=raw["id"], title=raw["title"], audience=raw["audience"],
                                            occasion=raw["occasion"], text=raw["text"].strip(),
                                            category=raw.get("category"))
    return templates, problems


def _check(raw: Any, fname: str, taxonomy: dict[str, Any], known: set[str]) -> list[Problem]:
    if not isinstance(raw, dict):
        return [Problem(fname, "?", "-", "a template must be a mapping")]
    tid = str(raw.get("id", "?"))
    problems: list[Problem] = []

    def bad(field: str, problem: str) -> None:
        problems.append(Problem(fname, tid, field, problem))

    for key in FIELDS_REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            bad(key, "missing")
    for key in raw:
        if key not in (*FIELDS_REQUIRED, "category"):
            bad(key, "unknown field")
    if isinstance(raw.get("id"), str) and not ID_PATTERN.match(raw["id"]):
        bad("id", "use lowercase letters, digits and hyphens")
    if raw.get("audience") not in AUDIENCES:
        bad("audience", f"use one of {', '.join(sorted(AUDIENCES))}")
    if raw.get("category") is not None and raw["category"] not in taxonomy:
        bad("category", f"unknown taxonomy slug {raw['category']!r}")
    if isinstance(raw.get("title"), str) and len(raw["title"]) > TITLE_MAX:
        bad("title", f"{len(raw['title'])} characters, at most {TITLE_MAX}")
    text = raw.get("text")
    if isinstance(text, str):
        if len(text.strip()) > TEXT_MAX:
            bad("text", f"{len(text.strip())} characters, at most {TEXT_MAX}")
        try:
            names = placeholders(text)
        except ValueError as exc:
            bad("text", f"broken placeholder: {exc}")
        else:
            for name in sorted(names - known):
                bad("text", f"placeholder {{{name}}} is neither in config region nor a broadcast field")
    return problems
