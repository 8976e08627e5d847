"""The bundled quiz banks meet the content rules, and the validator reports each kind of broken bank exactly."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings
from knowledge import schema
from quizzes import bank

MIN_PER_AUDIENCE = {"elderly": 80, "student": 80, "general": 40}
MIN_PER_CATEGORY = 3


@pytest.fixture(scope="module")
def region(base_settings: Settings) -> dict[str, str]:
    return base_settings.region.placeholders()


@pytest.fixture(scope="module")
def bundled(region: dict[str, str]) -> list[bank.Question]:
    questions, problems = bank.load(region_keys=region)
    assert [str(p) for p in problems] == []
    return questions


def _raw_banks() -> dict[str, list[dict[str, Any]]]:
    return {path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]
            for path in sorted(bank.BANKS_DIR.glob("*.yaml"))}


def _all_text(q: bank.Question) -> str:
    return " ".join([q.question, *q.options, q.explanation, q.source or ""])


def test_bundled_banks_load_and_meet_counts_and_spread(bundled: list[bank.Question],
                                                       region: dict[str, str]) -> None:
    raw = _raw_banks()
    assert sorted(raw) == sorted(bank.AUDIENCES)
    # every question in the files passed every check
    assert len(bundled) == sum(len(items) for items in raw.values())
    per_audience = Counter(q.audience for q in bundled)
    for audience, minimum in MIN_PER_AUDIENCE.items():
        assert per_audience[audience] >= minimum, audience
        assert {q.difficulty for q in bundled if q.audience == audience} == {1, 2, 3}, audience
    per_category = Counter(q.category for q in bundled)
    taxonomy = schema.load_taxonomy()
    assert {c.kind for c in taxonomy.values()} == {"scheme", "guide"}
    for slug in taxonomy:
        assert per_category[slug] >= MIN_PER_CATEGORY, slug
    # the reporting and reward questions use the region's own channels and amount
    texts = [_all_text(q) for q in bundled if q.category in ("how-to-report", "report-reward")]
    for name in ("reward_max", "office_phone", "report_online"):
        assert any("{" + name + "}" in t for t in texts), name


def test_right_answer_has_no_telltale_position_or_length(bundled: list[bank.Question],
                                                         region: dict[str, str]) -> None:
    first = sum(1 for q in bundled if q.answer_index == 0) / len(bundled)
    assert 0.3 <= first <= 0.6
    assert any(q.answer_index == 2 for q in bundled)

    def size(text: str) -> int:
        return len(bank.fill(text, region))

    longest = sum(1 for q in bundled if all(size(q.answer) > size(o) for o in q.options if o != q.answer))
    shortest = sum(1 for q in bundled if all(size(q.answer) < size(o) for o in q.options if o != q.answer))
    assert longest / len(bundled) <= 0.55
    assert shortest / len(bundled) <= 0.55


def test_elderly_questions_are_short_situations_without_articles(bundled: list[bank.Question],
                                                                 region: dict[str, str]) -> None:
    elderly = [q for q in bundled if q.audience == "elderly"]
    for q in elderly:
        assert len(bank.fill(q.question, region)) <= 40, q.id
        assert not re.search(r"《|第[一二三四五六七八九十百\d]+条", q.question), q.id
    for q in bundled:
        assert len(bank.fill(q.explanation, region)) <= 80, q.id


def test_fine_multiples_follow_domain_brief(bundled: list[bank.Question]) -> None:
    """Helpers (协助人) are fined 1–3× their illegal gains (Art. 31), never the 1–5× some published banks print."""
    helpers_fine = re.compile(r"(1|一)\s*(至|到|-|–|~|～|倍以上)\s*(3|三)\s*倍")
    five = re.compile(r"(5|五)\s*倍")
    multiples = [q for q in bundled if "倍" in _all_text(q) and re.search(r"罚|处罚", _all_text(q))]
    helper_questions = [q for q in multiples if re.search(r"协助|帮|宣传|拉人", _all_text(q))]
    assert helper_questions, "the banks must test the helpers' fine"
    for q in helper_questions:
        assert helpers_fine.search(_all_text(q)), q.id
        assert "三十一条" in (q.source or ""), q.id
    for q in bundled:
        assert not five.search(_all_text(q)), q.id
        assert not re.search(r"(1|一)\s*(至|到|-|–|~|～)\s*(5|五)", _all_text(q)), q.id
    organisers = [q for q in bundled if "组织者" in q.question and "罚" in q.question]
    assert organisers
    for q in organisers:
        assert "20%" in q.answer and "1倍" in q.answer and "第三十条" in (q.source or ""), q.id


def test_legal_figures_are_current(bundled: list[bank.Question]) -> None:
    """Prosecution thresholds are the 2022 ones; the 2010 ¥200,000 figure never appears; losses are one's own."""
    for q in bundled:
        text = _all_text(q)
        assert not re.search(r"20万|二十万", text), q.id
        if "非法吸收" in text and "追究" in text:
            assert "100万" in text or "150人" in text, q.id
    thresholds = [q for q in bundled if "非法吸收公众存款" in q.question and "追究" in q.question]
    assert {q.answer for q in thresholds} >= {"100万元以上", "150人以上"}
    losses = [q for q in bundled if q.entry == "legal-losses-self-borne"]
    assert losses and all("第二十五条" in (q.source or "") for q in losses)


def test_no_hard_coded_regional_facts_and_no_reward_for_sharing(bundled: list[bank.Question]) -> None:
    phone = re.compile(r"(?<![\d{])(?:\d{3,4}-\d{7,8}|1[3-9]\d{9}|12345|110)(?!\d)")
    money = re.compile(r"最高\s*\d+\s*万")
    for q in bundled:
        text = _all_text(q)
        assert not phone.search(text), (q.id, phone.search(text))
        assert not money.search(text), q.id
        assert not re.search(r"(转发|分享)[^。；，]{0,8}(得|送|奖|积分|红包)", text), q.id


# --- the validator on broken banks -----------------------------------------------------------------------------

def _question(qid: str, **changes: Any) -> dict[str, Any]:
    audience = qid.split("-")[0]
    q: dict[str, Any] = {
        "id": qid, "audience": audience, "category": "pension-elderly-care", "difficulty": 1,
        "question": "有人说交一万每月返八百，您怎么办？",
        "options": ["马上交钱", "先别交，打{hotline}核实"], "answer": "先别交，打{hotline}核实",
        "explanation": "每月返8%是高息诱饵。别交钱，拨{hotline}。", "entry": "pension-bed-membership",
    }
    q.update(changes)
    return {k: v for k, v in q.items() if v is not None}


def _write(directory: Path, name: str, questions: list[dict[str, Any]]) -> None:
    (directory / name).write_text(yaml.safe_dump({"questions": questions}, allow_unicode=True, sort_keys=False),
                                  encoding="utf-8")


def test_validator_reports_each_problem_as_one_exact_line(tmp_path: Path, region: dict[str, str]) -> None:
    office = region["office"]
    # an explanation that fits as written but not once {office} is filled in
    long_filled = "别交钱" * ((bank.EXPLANATION_MAX - len("{office}")) // 3) + "{office}"
    assert len(long_filled) <= bank.EXPLANATION_MAX < len(bank.fill(long_filled, region))
    _write(tmp_path, "elderly.yaml", [
        _question("elderly-001"),
        _question("elderly-002", answer="交一半"),
        _question("elderly-003", category="nope"),
        _question("elderly-004", entry="no-such-entry"),
        _question("elderly-005", explanation="请拨打{phone}。"),
        _question("elderly-006", question="有" * 41),
        _question("elderly-007", explanation=long_filled),
        _question("elderly-008", audience="student"),
        _question("elderly-009", hint="extra"),
        _question("elderly-010", options=["对"], answer="对"),
        _question("elderly-011", options=["对", "对"], answer="对"),
        _question("elderly-012", difficulty=5),
        _question("elderly-013", entry=None),
        _question("elderly-014", source="条例第三十一条"),
        _question("elderly-015", explanation="按条例第三十一条处理。"),
        _question("elderly-16"),
        _question("elderly-017", options=["对", "错", "不知道", "看情况", "再说"], answer="对"),
    ])
    _write(tmp_path, "student.yaml", [_question("student-001"), _question("elderly-001")])
    (tmp_path / "general.yaml").write_text("questions:\n  - id: general-001\n    options: [a, b\n", encoding="utf-8")
    (tmp_path / "others.yaml").write_text("questions: []\n", encoding="utf-8")

    questions, problems = bank.load(tmp_path, region_keys=region)
    lines = [str(p) for p in problems]
    expected = [
        "elderly.yaml: elderly-002: answer: '交一半' is not one of the options",
        "elderly.yaml: elderly-003: category: unknown taxonomy slug 'nope'",
        "elderly.yaml: elderly-004: entry: unknown knowledge entry 'no-such-entry'",
        "elderly.yaml: elderly-005: explanation: placeholder {phone} is not defined in config region",
        "elderly.yaml: elderly-006: question: 41 characters after filling placeholders, at most 40",
        f"elderly.yaml: elderly-007: explanation: {len(long_filled) - len('{office}') + len(office)} characters "
        "after filling placeholders, at most 80",
        "elderly.yaml: elderly-008: audience: 'student' in elderly.yaml: this bank holds 'elderly' questions",
        "elderly.yaml: elderly-008: id: use student-NNN, e.g. student-001",
        "elderly.yaml: elderly-009: hint: unknown field",
        "elderly.yaml: elderly-010: options: 1 options, use 2 to 4",
        "elderly.yaml: elderly-011: options: option 2 repeats '对'",
        "elderly.yaml: elderly-012: difficulty: 5: use 1 (easy), 2 (medium) or 3 (hard)",
        "elderly.yaml: elderly-013: entry: missing",
        "elderly.yaml: elderly-014: source: name the statute and article, e.g. 《防范和处置非法集资条例》第三十一条",
        "elderly.yaml: elderly-015: source: missing: the question cites a statute or article",
        "elderly.yaml: elderly-16: id: use elderly-NNN, e.g. elderly-001",
        "elderly.yaml: elderly-017: options: 5 options, use 2 to 4",
        "student.yaml: elderly-001: audience: 'elderly' in student.yaml: this bank holds 'student' questions",
        "student.yaml: elderly-001: id: duplicate id (also in elderly.yaml)",
        "others.yaml: -: -: unknown bank: name it elderly.yaml, student.yaml, general.yaml",
    ]
    for line in expected:
        assert line in lines
    invalid = [line for line in lines if line.startswith("general.yaml: -: -: invalid YAML: ")]
    assert len(invalid) == 1 and "line 3" in invalid[0]
    assert all("\n" not in line for line in lines)
    assert len(lines) == len(expected) + 1, lines
    # only the sound questions are served; the first of two duplicates wins
    assert [q.id for q in questions] == ["elderly-001", "student-001"]


def test_schema_problems_name_the_field(tmp_path: Path) -> None:
    _write(tmp_path, "general.yaml", [
        _question("general-001", audience="all"),
        _question("general-002", difficulty="2"),
        _question("general-003", options="对,错"),
        "not a mapping",
    ])
    (tmp_path / "student.yaml").write_text("- id: student-001\n", encoding="utf-8")
    _, problems = bank.load(tmp_path, region_keys=set())
    lines = [str(p) for p in problems]
    assert "general.yaml: general-001: audience: unknown audience 'all' (use elderly, student, general)" in lines
    assert "general.yaml: general-002: difficulty: Input should be a valid integer" in lines
    assert "general.yaml: general-003: options: Input should be a valid list" in lines
    assert "general.yaml: ?: -: a question must be a mapping" in lines
    assert "student.yaml: -: -: expected a mapping with a list under `questions:`" in lines
    # a bare set of names checks the names only: {hotline} is not among them
    assert "general.yaml: general-002: options.1: placeholder {hotline} is not defined in config region" in lines


def test_fill_puts_region_facts_in_and_leaves_other_braces(region: dict[str, str]) -> None:
    filled = bank.fill("拨{hotline}，或找{office}，{x}", region)
    assert filled == f"拨{region['hotline']}，或找{region['office']}，{{x}}"
