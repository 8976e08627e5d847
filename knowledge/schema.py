"""The knowledge base: entry schema, loading and validation (`fangfei kb check`)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge import yamlfile

KNOWLEDGE_DIR = Path(__file__).resolve().parent
ENTRIES_DIR = KNOWLEDGE_DIR / "entries"
TAXONOMY_FILE = KNOWLEDGE_DIR / "taxonomy.yaml"

BODY_PARTS = ("套路", "识别", "怎么办")
AUDIENCES = {"elderly", "student", "farmer", "all"}
SUMMARY_MAX = 60
TITLE_MAX = 30
MIN_QUESTIONS = 6
MIN_PER_CATEGORY = 2
MIN_QUESTIONS_PER_CATEGORY = 20  # sample questions over a category's entries: what search learns a category from
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REQUIRED = ("id", "category", "title", "questions", "summary", "body", "legal_basis", "audience", "related",
            "keywords")


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    kind: str
    covers: str


@dataclass(frozen=True)
class Entry:
    id: str
    category: str
    title: str
    questions: tuple[str, ...]
    summary: str
    body: dict[str, str]
    legal_basis: tuple[str, ...]
    audience: tuple[str, ...]
    related: tuple[str, ...]
    keywords: tuple[str, ...]
    source: str = ""


@dataclass(frozen=True)
class Problem:
    file: str
    entry: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.entry}: {self.field}: {self.problem}"


@dataclass
class KnowledgeBase:
    categories: dict[str, Category]
    entries: list[Entry] = field(default_factory=list)

    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    def in_category(self, slug: str) -> list[Entry]:
        return [e for e in self.entries if e.category == slug]


def load_taxonomy(path: Path = TAXONOMY_FILE) -> dict[str, Category]:
    data = yamlfile.load(path)
    return {c["slug"]: Category(c["slug"], c["name"], c["kind"], c.get("covers", "")) for c in data["categories"]}


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def placeholders(text: str) -> set[str]:
    """Names of `{placeholder}` fields in a text (filled from config `region:`)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# Plain words (issue 15 §3): what a resident reads, cut into sentences, each measured in characters.
SENTENCE_END = re.compile(r"[。！？；!?;\n]")
SENTENCE_PLAIN = 25   # most sentences at most this long ...
SENTENCE_MAX = 45     # ... and none longer than this
LONG_SHARE = 0.12     # the share of sentences allowed past SENTENCE_PLAIN


def reply_texts(entry: Entry) -> list[tuple[str, str]]:
    """The texts of an entry that are sent as replies, by field: the summary and the three body parts."""
    return [("summary", entry.summary), *((f"body.{part}", entry.body[part]) for part in BODY_PARTS)]


def sentences(text: str) -> list[str]:
    """A reply's sentences: cut at 。！？； and line breaks, stripped, empty pieces dropped."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def sentence_length(sentence: str) -> int:
    """Characters a reader sees, a placeholder counted by its name (`{hotline}` as 7), spaces not counted."""
    return sum(1 for ch in sentence if ch not in "{}" and not ch.isspace())


def _text_fields(raw: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key in ("title", "summary"):
        if isinstance(raw.get(key), str):
            out.append((key, raw[key]))
    body = raw.get("body")
    if isinstance(body, dict):
        out += [(f"body.{k}", v) for k, v in body.items() if isinstance(v, str)]
    return out


def _check_raw(raw: Any, fname: str, taxonomy: dict[str, Category], region_keys: set[str]) -> list[Problem]:
    if not isinstance(raw, dict):
        return [Problem(fname, "?", "-", "an entry must be a mapping")]
    eid = str(raw.get("id", "?"))
    probs: list[Problem] = []

    def bad(fld: str, msg: str) -> None:
        probs.append(Problem(fname, eid, fld, msg))

    for key in REQUIRED:
        if key not in raw or raw[key] in (None, "", [], {}):
            bad(key, "missing")
    for key in raw:
        if key not in REQUIRED and key != "source":
            bad(key, "unknown field")
    if "id" in raw and not ID_PATTERN.match(str(raw["id"])):
        bad("id", "use lowercase letters, digits and hyphens")
    if raw.get("category") and raw["category"] not in taxonomy:
        bad("category", f"unknown taxonomy slug {raw['category']!r}")
    title = raw.get("title")
    if isinstance(title, str) and len(title) > TITLE_MAX:
        bad("title", f"{len(title)} characters, at most {TITLE_MAX}")
    summary = raw.get("summary")
    if isinstance(summary, str) and len(summary) > SUMMARY_MAX:
        bad("summary", f"{len(summary)} characters, at most {SUMMARY_MAX}")
    questions = raw.get("questions")
    if questions is not None:
        if not isinstance(questions, list) or not all(isinstance(q, str) and q.strip() for q in questions):
            bad("questions", "must be a list of non-empty strings")
        elif len(questions) < MIN_QUESTIONS:
            bad("questions", f"{len(questions)} questions, at least {MIN_QUESTIONS}")
        elif len(set(questions)) != len(questions):
            bad("questions", "duplicate question")
    body = raw.get("body")
    if body is not None:
        if not isinstance(body, dict):
            bad("body", f"must be a mapping with parts {', '.join(BODY_PARTS)}")
        else:
            for part in BODY_PARTS:
                if not isinstance(body.get(part), str) or not body[part].strip():
                    bad(f"body.{part}", "missing")
            for part in body:
                if part not in BODY_PARTS:
                    bad(f"body.{part}", "unknown part")
    audience = _as_tuple(raw.get("audience"))
    for a in audience:
        if a not in AUDIENCES:
            bad("audience", f"unknown audience {a!r} (use {', '.join(sorted(AUDIENCES))})")
    for fld in ("related", "keywords", "legal_basis"):
        value = raw.get(fld)
        if value is not None and not isinstance(value, list):
            bad(fld, "must be a list")
    for fld, text in _text_fields(raw):
        try:
            names = placeholders(text)
        except ValueError as exc:
            bad(fld, f"broken placeholder: {exc}")
            continue
        for name in sorted(names - region_keys):
            bad(fld, f"placeholder {{{name}}} is not defined in config region")
    return probs


def load(entries_dir: Path = ENTRIES_DIR, region_keys: set[str] | None = None,
         taxonomy: dict[str, Category] | None = None) -> tuple[KnowledgeBase, list[Problem]]:
    """Load every YAML file under `entries_dir`; return the base and every problem found."""
    taxonomy = taxonomy if taxonomy is not None else load_taxonomy()
    kb = KnowledgeBase(categories=taxonomy)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in sorted(entries_dir.glob("*.yaml")):
        fname = path.name
        try:
            data = yamlfile.load(path)
        except yaml.YAMLError as exc:
            problems.append(Problem(fname, "-", "-", f"invalid YAML: {exc}".replace("\n", " ")))
            continue
        items = data.get("entries") if isinstance(data, dict) else data
        if not isinstance(items, list):
            problems.append(Problem(fname, "-", "-", "expected a list of entries (or a mapping with `entries:`)"))
            continue
        for raw in items:
            found = _check_raw(raw, fname, taxonomy, region_keys if region_keys is not None else set())
            if region_keys is None:
                found = [p for p in found if "not defined in config region" not in p.problem]
            problems += found
            if not isinstance(raw, dict) or "id" not in raw:
                continue
            eid = str(raw["id"])
            if eid in seen:
                problems.append(Problem(fname, eid, "id", f"duplicate id (also in {seen[eid]})"))
                continue
            seen[eid] = fname
            if found and any(p.field in ("category", "body", "questions", "summary", "title") for p in found):
                continue
            body = raw.get("body") or {}
            kb.entries.append(Entry(
                id=eid, category=str(raw["category"]), title=str(raw["title"]),
                questions=_as_tuple(raw["questions"]), summary=str(raw["summary"]),
                body={part: str(body.get(part, "")).strip() for part in BODY_PARTS},
                legal_basis=_as_tuple(raw.get("legal_basis")), audience=_as_tuple(raw.get("audience")),
                related=_as_tuple(raw.get("related")), keywords=_as_tuple(raw.get("keywords")),
                source=fname,
            ))
    ids = set(seen)
    for e in kb.entries:
        for rid in e.related:
            if rid not in ids:
                problems.append(Problem(e.source, e.id, "related", f"unknown id {rid!r}"))
            elif rid == e.id:
                problems.append(Problem(e.source, e.id, "related", "an entry cannot relate to itself"))
    for slug in taxonomy:
        count = sum(1 for e in kb.entries if e.category == slug)
        if count < MIN_PER_CATEGORY:
            problems.append(Problem(TAXONOMY_FILE.name, slug, "category",
                                    f"{count} entries, at least {MIN_PER_CATEGORY}"))
        asked = len({q for e in kb.entries if e.category == slug for q in e.questions})
        if count and asked < MIN_QUESTIONS_PER_CATEGORY:
            problems.append(Problem(TAXONOMY_FILE.name, slug, "questions",
                                    f"{asked} sample questions in its entries, at least {MIN_QUESTIONS_PER_CATEGORY}"))
    return kb, problems
