"""The bundled knowledge base meets the content rules, and the validator catches what breaks them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.config import Settings
from knowledge import schema

ENTRIES = schema.ENTRIES_DIR


def test_bundled_base_is_complete_and_valid(base_settings: Settings) -> None:
    kb, problems = schema.load(region_keys=set(base_settings.region.placeholders()))
    assert problems == []
    assert len(kb.entries) >= 60
    for slug in kb.categories:
        assert len(kb.in_category(slug)) >= 2, slug
    for e in kb.entries:
        assert len(e.questions) >= 6 and len(e.summary) <= 60
        assert set(e.body) == {"套路", "识别", "怎么办"} and all(e.body.values())
        assert e.legal_basis and e.keywords and e.audience


def test_no_hard_coded_regional_facts() -> None:
    """Phone numbers and reward amounts come from config placeholders, never from the entries."""
    phone = re.compile(r"(?<![\d{])(?:\d{3,4}-\d{7,8}|1[3-9]\d{9}|12345|110)(?!\d)")
    money = re.compile(r"最高\s*\d+\s*万")
    for path in ENTRIES.glob("*.yaml"):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")):
            text = " ".join([entry["summary"], *entry["body"].values()])
            assert not phone.search(text), (path.name, entry["id"], phone.search(text))
            assert not money.search(text), (path.name, entry["id"])


def test_out_of_date_prosecution_figure_is_never_used() -> None:
    """The 2010 threshold (¥200,000 for individuals) was replaced in 2022: only the current figures may appear."""
    texts = [path.read_text(encoding="utf-8") for path in ENTRIES.glob("*.yaml")]
    assert not [t for t in texts if re.search(r"(20万|二十万)元?[^。；\n]{0,20}(立案|追究|起刑)", t)]
    assert any("100万" in t or "一百万" in t for t in texts)


def test_validator_flags_duplicates_and_dangling_links(tmp_path: Path) -> None:
    one = yaml.safe_load((ENTRIES / "collectibles.yaml").read_text(encoding="utf-8"))[0]
    twin = dict(one)
    dangling = dict(one, id="another-id", related=["nowhere"])
    (tmp_path / "a.yaml").write_text(yaml.safe_dump([one], allow_unicode=True), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump([twin, dangling, {"id": "x", "extra": 1}],
                                                                    allow_unicode=True),
                                     encoding="utf-8")
    _, problems = schema.load(tmp_path, region_keys={"office", "hotline", "police", "office_phone"})
    text = "\n".join(map(str, problems))
    assert f"b.yaml: {one['id']}: id: duplicate id (also in a.yaml)" in text
    assert "b.yaml: x: extra: unknown field" in text
    assert "b.yaml: x: title: missing" in text
    assert "b.yaml: another-id: related: unknown id 'nowhere'" in text
    assert "taxonomy.yaml: pension-elderly-care: category: 0 entries, at least 2" in text


def test_validator_wants_twenty_sample_questions_per_category(tmp_path: Path) -> None:
    """Search learns a category from its entries' sample questions: `kb check` wants 20 or more per category."""
    thin = yaml.safe_load((ENTRIES / "collectibles.yaml").read_text(encoding="utf-8"))[:2]
    for entry in thin:
        entry["questions"] = entry["questions"][:6]
        entry["related"] = []
    full = yaml.safe_load((ENTRIES / "debt-relief.yaml").read_text(encoding="utf-8"))
    for entry in full:
        entry["related"] = [r for r in entry["related"] if r.startswith("debt-relief-")]
    (tmp_path / "collectibles.yaml").write_text(yaml.safe_dump(thin, allow_unicode=True), encoding="utf-8")
    (tmp_path / "debt-relief.yaml").write_text(yaml.safe_dump(full, allow_unicode=True), encoding="utf-8")
    _, problems = schema.load(tmp_path)
    said = [str(p) for p in problems if p.field == "questions"]
    assert said == [f"taxonomy.yaml: collectibles: questions: 12 sample questions in its entries, at least "
                    f"{schema.MIN_QUESTIONS_PER_CATEGORY}"], said
    assert schema.MIN_QUESTIONS_PER_CATEGORY == 20


def test_every_category_has_twenty_sample_questions() -> None:
    kb, problems = schema.load()
    assert not [p for p in problems if p.field == "questions"]
    for slug in kb.categories:
        assert len({q for e in kb.in_category(slug) for q in e.questions}) >= 20, slug


# how residents ask: an elderly person, a farmer, a student, a family member asking for a parent (issue 15 §3)
RESIDENTS_VOICE = re.compile(r"我妈|我爸|俺|老人|老年|啥|咋|村里|孩子|娃|老伴|儿子|闺女|女儿|爷爷|奶奶|姥|婆婆|"
                             r"父母|爸妈|大爷|大妈|学生|同学|室友|辅导员|学校|种地|庄稼|乡里|镇上|亲戚|咱|退休|"
                             r"老公|老家")


def test_every_category_is_asked_in_residents_voices() -> None:
    """At least one in five of a category's sample questions sounds like a resident, not like an editor."""
    kb, _ = schema.load()
    thin = []
    for slug in kb.categories:
        questions = {q for e in kb.in_category(slug) for q in e.questions}
        voiced = [q for q in questions if RESIDENTS_VOICE.search(q)]
        if len(voiced) * 5 < len(questions):
            thin.append(f"{slug}: {len(voiced)} of {len(questions)}")
    assert not thin, thin
