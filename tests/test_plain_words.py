"""Plain words for elderly readers (issue 15 §3): short sentences, jargon explained, every reply ends in an action.

The base is loaded through `knowledge.schema.load`, as the bot loads it; sentences are cut and measured with the
same rule as `scripts/sentence_lengths.py` (schema.sentences / schema.sentence_length)."""

from __future__ import annotations

import re

import pytest

from knowledge import schema
from knowledge.schema import Entry

# What a reader can do now; the last sentence of a summary and of the details (they end with 怎么办) names one.
ACTIONS = ("拨打", "打电话", "打 {", "打{", "报警", "报案", "举报", "反映", "不要", "停止", "停下", "先停",
           "保存", "保留", "留好", "留着", "核实", "查询", "查一查", "先查", "去查", "回复", "咨询", "问问", "先问",
           "商量", "别交", "别转", "别签", "别信", "别投", "别买", "别借", "别再", "别给", "别碰", "别点",
           "别急", "别把", "别去", "别听", "别帮", "别拉", "别让", "别下", "不交", "不签", "不投", "不借", "不买",
           "不碰", "不转", "只走", "只认", "只在", "只到", "交给", "退回", "退掉", "要回", "停手", "马上停")
# 别 asks something of the reader (别交, 别往里充, 别理), except in 识别, 区别, 别人, 别的 ...
DONT = re.compile(r"(?<![识区分特告级类个差性])别(?![人的])")

# Words residents do not know: where an entry uses one, its first use (summary first, then the body in the order
# the bot sends it) is followed by a gloss in brackets, e.g. 保理公司（专门买下货款欠条的持牌公司）.
JARGON = ("应收账款", "保理", "杠杆", "核心企业", "私募", "定融", "入金", "(?<![卖售])出金", "合格投资者", "城投",
          "期权", "集资参与人", "资金盘", "收益权", "代偿", "资产置换", "追诉", "清退", "LPR", "货币基金", "新三板",
          "跑分", "矿机", "通证", "数字藏品", "年化", "兑付", "资金池", "飞单", "兜底", "备案", "挂牌", "征信", "复投",
          "清算", "打新", "债权", "区块链", "元宇宙")
# the bracket may follow a closing quote or the word the term is part of: 保理公司（, 追诉期（
GLOSSED = re.compile(r"[”」’\"]?[\u4e00-\u9fff]{0,2}[”」’\"]?[（(]")


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    kb, problems = schema.load()
    assert problems == []
    return kb.entries


def sentences(entries: list[Entry]) -> list[tuple[str, int, str]]:
    """(where, length, sentence) of every sentence the base sends as a reply."""
    return [(f"{e.source}: {e.id}: {fld}", schema.sentence_length(s), s)
            for e in entries for fld, text in schema.reply_texts(e) for s in schema.sentences(text)]


def acts(sentence: str) -> bool:
    return any(a in sentence for a in ACTIONS) or DONT.search(sentence) is not None


def test_splitting_and_counting() -> None:
    assert schema.sentences("先别交钱。保存合同；\n拨打 {hotline} 问问！") == [
        "先别交钱", "保存合同", "拨打 {hotline} 问问"]
    assert schema.sentence_length("拨打 {hotline} 问问") == 2 + len("hotline") + 2


def test_no_sentence_is_longer_than_the_limit(entries: list[Entry]) -> None:
    long = [f"{where}: {n}: {s}" for where, n, s in sentences(entries) if n > schema.SENTENCE_MAX]
    assert not long, f"{len(long)} sentences longer than {schema.SENTENCE_MAX} characters:\n" + "\n".join(long)


def test_most_sentences_are_short(entries: list[Entry]) -> None:
    found = sentences(entries)
    long = [f"{where}: {n}: {s}" for where, n, s in sorted(found, key=lambda f: -f[1]) if n > schema.SENTENCE_PLAIN]
    assert found and len(long) <= schema.LONG_SHARE * len(found), (
        f"{len(long)} of {len(found)} sentences ({len(long) / len(found):.1%}) are longer than "
        f"{schema.SENTENCE_PLAIN} characters, at most {schema.LONG_SHARE:.0%} may be:\n" + "\n".join(long))


def test_every_reply_ends_with_what_to_do(entries: list[Entry]) -> None:
    """The summary is the first reply; the details are sent as 套路, 识别, 怎么办, so 怎么办 ends them."""
    silent = []
    for e in entries:
        for fld, text in (("summary", e.summary), ("body.怎么办", e.body["怎么办"])):
            last = schema.sentences(text)[-1]
            if not acts(last):
                silent.append(f"{e.source}: {e.id}: {fld}: last sentence names no action: {last}")
    assert not silent, "\n".join(silent)


def test_jargon_is_glossed_where_first_used(entries: list[Entry]) -> None:
    bare = []
    for e in entries:
        text = "\n".join(t for _, t in schema.reply_texts(e))
        for term in JARGON:
            first = re.search(term, text)
            if first and not GLOSSED.match(text, first.end()):
                sentence = next(s for s in schema.sentences(text) if re.search(term, s))
                bare.append(f"{e.source}: {e.id}: {first.group()} has no gloss in brackets at its first use: "
                            f"{sentence}")
    assert not bare, "\n".join(bare)


def test_action_markers_are_not_fooled_by_red_flag_words() -> None:
    """识别, 区别 and 别人 hold 别 but ask nothing of the reader."""
    for sentence in ("这样就能识别", "和存款有区别", "钱给了别人"):
        assert not acts(sentence), sentence
    for sentence in ("别往卡里多存钱", "先别交钱", "事后再要钱的，别理"):
        assert acts(sentence), sentence


def test_ends_check_names_the_entry_and_sentence() -> None:
    e = Entry(id="x-demo", category="c", title="t", questions=(), summary="交钱就返利，多半是骗局。",
              body={"套路": "a", "识别": "b", "怎么办": "高息都要当心。"}, legal_basis=(), audience=(),
              related=(), keywords=(), source="demo.yaml")
    with pytest.raises(AssertionError, match=re.escape("demo.yaml: x-demo: summary: last sentence names no action: "
                                                       "交钱就返利，多半是骗局\n")):
        test_every_reply_ends_with_what_to_do([e])
