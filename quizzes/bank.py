"""The quiz question banks: schema, loading and validation (`fangfei quiz check`).

The banks are YAML files under quizzes/banks/, one per audience (elderly.yaml, student.yaml, general.yaml); see
quizzes/banks/README.md for the format. `load` returns the questions that passed every check and every problem
found, each printed as `file: id: field: problem` like the knowledge base's (knowledge/schema.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knowledge import schema
from knowledge.schema import Category

BANKS_DIR = Path(__file__).resolve().parent / "banks"

AUDIENCES = ("elderly", "student", "general")
QUESTION_MAX = {"elderly": 40, "student": 120, "general": 120}
EXPLANATION_MAX = 80
OPTION_MAX = 40
OPTIONS_MIN, OPTIONS_MAX = 2, 4
ID_PATTERN = re.compile(r"^(elderly|student|general)-\d{3}$")
STATUTE = re.compile(r"《[^《》]+》")
# A question or explanation that cites an article must say where it comes from in `source`.
CITES_ARTICLE = re.compile(r"《[^《》]+》|第[一二三四五六七八九十百零\d]+条")
TEXT_FIELDS = ("question", "explanation")


class Question(BaseModel):
    """One single-choice question as written in a bank (texts still hold their {placeholders})."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    audience: Literal["elderly", "student", "general"]
    category: str
    difficulty: int = Field(ge=1, le=3)
    question: str
    options: list[str]
    answer: str
    explanation: str
    entry: str
    source: str | None = None

    @property
    def answer_index(self) -> int:
        """The right option's position in `options`."""
        return self.options.index(self.answer)


class Bank(BaseModel):
    """A bank file: a mapping with one key, `questions`, holding the list of questions."""

    model_config = ConfigDict(extra="forbid", strict=True)

    questions: list[Any]


@dataclass(frozen=True)
class Problem:
    file: str
    id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.id}: {self.field}: {self.message}"


def fill(text: str, placeholders: Mapping[str, str]) -> str:
    """Put the region's facts into a text's {placeholders}; any other braces are left as they are."""
    if "{" in text:
        for key, value in placeholders.items():
            text = text.replace("{" + key + "}", value)
    return text


def _schema_message(error: Any) -> str:
    kind, where = error["type"], error["loc"][0] if error["loc"] else ""
    if kind == "missing":
        return "missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if where == "audience" and kind == "literal_error":
        return f"unknown audience {error['input']!r} (use {', '.join(AUDIENCES)})"
    if where == "difficulty" and kind in ("greater_than_equal", "less_than_equal"):
        return f"{error['input']!r}: use 1 (easy), 2 (medium) or 3 (hard)"
    return str(error["msg"])


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "-"


@dataclass
class _Context:
    taxonomy: Mapping[str, Category]
    entry_ids: Collection[str]
    region_keys: Collection[str] | None
    values: Mapping[str, str]


def _check(raw: dict[str, Any], fname: str, audience: str | None, ctx: _Context) -> list[Problem]:
    """Every problem of one question; each check looks only at fields of the right type (schema errors apart)."""
    qid = str(raw.get("id", "?"))
    probs: list[Problem] = []

    def bad(fld: str, msg: str) -> None:
        probs.append(Problem(fname, qid, fld, msg))

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    try:
        Question.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            bad(_loc(error["loc"]), _schema_message(error))

    own = raw.get("audience")
    if audience is not None and own in AUDIENCES and own != audience:
        bad("audience", f"{own!r} in {fname}: this bank holds {audience!r} questions")
    if isinstance(raw.get("id"), str):
        prefix = own if own in AUDIENCES else audience or "<audience>"
        if not ID_PATTERN.match(raw["id"]) or (own in AUDIENCES and not raw["id"].startswith(f"{own}-")):
            bad("id", f"use {prefix}-NNN, e.g. {prefix}-001")
    category = text("category")
    if category is not None and category not in ctx.taxonomy:
        bad("category", f"unknown taxonomy slug {category!r}")
    entry = text("entry")
    if entry is not None and entry not in ctx.entry_ids:
        bad("entry", f"unknown knowledge entry {entry!r}")

    fields = [(key, value) for key in TEXT_FIELDS if (value := text(key)) is not None]
    options = raw.get("options")
    if isinstance(options, list) and all(isinstance(o, str) for o in options):
        if not OPTIONS_MIN <= len(options) <= OPTIONS_MAX:
            bad("options", f"{len(options)} options, use {OPTIONS_MIN} to {OPTIONS_MAX}")
        for i, option in enumerate(options):
            if not option.strip():
                bad("options", f"option {i + 1} is empty")
            elif options.index(option) != i:
                bad("options", f"option {i + 1} repeats {option!r}")
        fields += [(f"options.{i}", o) for i, o in enumerate(options)]
        answer = text("answer")
        if answer is not None and answer not in options:
            bad("answer", f"{answer!r} is not one of the options")
    for fld, value in fields:
        if not value.strip():
            bad(fld, "empty")
        try:
            names = schema.placeholders(value)
        except ValueError as exc:
            bad(fld, f"broken placeholder: {exc}")
            continue
        if ctx.region_keys is not None:
            for name in sorted(names - set(ctx.region_keys)):
                bad(fld, f"placeholder {{{name}}} is not defined in config region")

    limits = {"question": QUESTION_MAX.get(own if isinstance(own, str) else "", QUESTION_MAX["general"]),
              "explanation": EXPLANATION_MAX}
    for fld, value in fields:
        limit = limits.get(fld, OPTION_MAX)
        size = len(fill(value, ctx.values))
        if size > limit:
            bad(fld, f"{size} characters after filling placeholders, at most {limit}")

    source = raw.get("source")
    if isinstance(source, str) and not STATUTE.search(source):
        bad("source", "name the statute and article, e.g. 《防范和处置非法集资条例》第三十一条")
    if source is None and any(CITES_ARTICLE.search(v) for _, v in fields):
        bad("source", "missing: the question cites a statute or article")
    return probs


def load(directory: Path = BANKS_DIR, region_keys: Mapping[str, str] | Collection[str] | None = None,
         taxonomy: Mapping[str, Category] | None = None,
         entry_ids: Collection[str] | None = None) -> tuple[list[Question], list[Problem]]:
    """Load every bank under `directory`; return the questions without a problem and every problem found.

    `region_keys` is config's `region:` as placeholders (`settings.region.placeholders()`, name -> value): texts may
    use only those names, and lengths are counted after filling in the values. A bare collection of names checks
    the names only (lengths counted as written); None skips the placeholder check, as knowledge.schema.load does.
    The taxonomy and the knowledge entries' ids default to the bundled knowledge base's.
    """
    if taxonomy is None:
        taxonomy = schema.load_taxonomy()
    if entry_ids is None:
        entry_ids = set(schema.load()[0].by_id())
    values = dict(region_keys) if isinstance(region_keys, Mapping) else {}
    ctx = _Context(taxonomy, entry_ids, None if region_keys is None else set(region_keys), values)
    questions: list[Question] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        fname = path.name
        audience = path.stem if path.stem in AUDIENCES else None
        if audience is None:
            names = ", ".join(f"{a}.yaml" for a in AUDIENCES)
            problems.append(Problem(fname, "-", "-", f"unknown bank: name it {names}"))
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(Problem(fname, "-", "-", f"invalid YAML: {exc}".replace("\n", " ")))
            continue
        try:
            bank = Bank.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(Problem(fname, "-", _loc(error["loc"]), _schema_message(error)))
            if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
                problems.append(Problem(fname, "-", "-", "expected a mapping with a list under `questions:`"))
                continue
            bank = Bank.model_construct(questions=data["questions"])
        for raw in bank.questions:
            if not isinstance(raw, dict):
                problems.append(Problem(fname, "?", "-", "a question must be a mapping"))
                continue
            found = _check(raw, fname, audience, ctx)
            problems += found
            qid = raw.get("id")
            if not isinstance(qid, str):
                continue
            if qid in seen:
                problems.append(Problem(fname, qid, "id", f"duplicate id (also in {seen[qid]})"))
                continue
            seen[qid] = fname
            if not found:
                questions.append(Question.model_validate(raw))
    return questions, problems
