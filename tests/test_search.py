"""Chinese search: typos, homophones, pinyin, traditional script, honest no-match, and quality against BM25."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluation import cross_validate, folds, read_jsonl, score_kb
from bot.services import Services
from knowledge.classify import CategoryModel
from knowledge.search import RATE_WORD, PlainBM25, SearchIndex, load_asked, load_offtopic
from knowledge.text import normalize
from tests.test_cli import run

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "eval" / "kb_dev.jsonl"
DATA = ROOT / "tests" / "data"
HELD_OUT = DATA / "kb_cases.jsonl"


def best_category(shared: Services, query: str) -> str | None:
    result = shared.search(query)
    return result.best.entry.category if result.matched and result.best else None


@pytest.mark.parametrize(("query", "category"), [
    ("养老投姿", "pension-elderly-care"),            # homophone typo of 投资
    ("区快链 每天挖矿分币", "crypto-blockchain"),      # 区块链
    ("非法集姿的特征", "identify-features"),          # 集资
    ("fei fa ji zi ju bao", "how-to-report"),          # plain pinyin
    ("feifajizi jubao", "how-to-report"),              # pinyin without spaces
    ("wakuang zhende neng zhuanqian ma, pengyou jiao wo touzi kuangji?", "crypto-blockchain"),  # with punctuation
    ("非法集資有哪些特徵", "identify-features"),       # traditional characters
    ("ＮＦＴ藏品平台承诺回购", "crypto-blockchain"),     # full-width letters
    ("我妈在讲座上买了保健床垫，说能当股东分红", "health-product-sales"),
    ("消費全返是真的嗎", "consumer-rebate"),
])
def test_tolerant_matching(shared: Services, query: str, category: str) -> None:
    assert best_category(shared, query) == category


# what a first-time user tried and got wrong (issue 15 §1)
@pytest.mark.parametrize(("query", "entry"), [
    ("非法集资是什么", "identify-four-features"),      # was the reporting entry
    ("非法集资", "identify-four-features"),
    ("集资", "identify-four-features"),              # was the prosecution time-limit entry
    ("feifa jizi shi shenme", "identify-four-features"),
    ("非法急资怎么认", "identify-four-features"),      # typo; was the crimes entry
    ("伪私募是什么意思", "private-fund-public-sale"),   # 意思 matched another entry's sample
    ("每天返1%", "ponzi-daily-return"),               # the digit token outweighed everything
    ("抖音直播间老师推荐的股票能跟吗", "wealth-livestream-stock-tips"),  # 抖音 was cut into 抖/音
    ("投资养殖场 一年回本", "agri-custody-breeding"),  # 养殖场, 回本 were unknown
])
def test_first_users_questions_find_the_right_entry(shared: Services, query: str, entry: str) -> None:
    result = shared.search(query)
    assert result.matched and result.best is not None and result.best.entry.id == entry, result.hits[:3]


def test_function_words_are_no_typo_and_question_forms_carry_no_topic(shared: Services) -> None:
    """这是 sounded like 这时 and was "repaired" into it; jieba cut 靠谱 into 靠/谱, which then weighed as topics."""
    assert shared.index.query_tokens("这是骗局吗") == ["骗局"]
    assert shared.index.query_tokens("养老公寓靠谱吗") == ["养老公寓"]
    for vague in ("这个靠谱吗", "真的假的", "靠不靠谱"):
        result = shared.search(vague)
        assert not result.matched and not result.worded
    assert shared.search("天气预报").worded


@pytest.mark.parametrize("query", ["請問虛擬貨幣投資是不是非法集資", "虚拟货币投资是不是非法集资"])
def test_a_polite_prefix_does_not_change_the_answer(shared: Services, query: str) -> None:
    """请问 sent this to 数字人民币; without it the answer was right."""
    assert best_category(shared, query) == "crypto-blockchain"


def test_a_request_for_a_poem_is_no_match(shared: Services) -> None:
    """帮/写 matched "how to check a licence"."""
    assert not shared.search("帮我写一首诗").matched


@pytest.mark.parametrize("text", ["每天返1%", "日息千分之五", "一分利", "年化12.5%", "百分之二十", "返三个点"])
def test_a_rate_is_one_word_however_written(shared: Services, text: str) -> None:
    tokens = shared.index.query_tokens(text)
    assert shared.index.query_tokens(RATE_WORD)[0] in tokens
    assert not any(ch.isdigit() for t in tokens for ch in t), tokens


def test_filler_words_carry_no_meaning(shared: Services) -> None:
    assert shared.index.query_tokens("请问伪私募是什么意思") == shared.index.query_tokens("伪私募")
    assert "抖音" in shared.index._words("抖音直播间")  # a domain word, not 抖/音


def test_a_typo_is_replaced_not_added(shared: Services) -> None:
    """The misspelt characters used to stay beside the repaired word and drew the crimes entry."""
    assert shared.index._prepare("非法急资怎么认", {}) == "非法集资怎么认"
    assert shared.index.query_tokens("非法急资怎么认") == shared.index.query_tokens("非法集资怎么认")


@pytest.mark.parametrize(("query", "category"), [
    ("我妈今年七十了，前几天在小区门口听了个讲座，人家送鸡蛋，后来让她买了三万块保健品，说算入股年底分红，"
     "我觉得不靠谱，你帮我看看", "health-product-sales"),
    ("我爸在一个群里，群主天天发红包，说投一万每个月给八百，还让他拉亲戚，这是不是骗人的啊，我该怎么劝他",
     "ponzi-recruitment"),
    ("俺村有人收钱说一年给两成利，还说是县里批的，能信不", None),
])
def test_a_long_message_in_a_residents_words_is_answered(shared: Services, query: str, category: str | None) -> None:
    """Answered, with the right category among the first two offered (since the residents' messages of 2026-12-07,
    "群主天天发红包 … 拉亲戚" puts the gifts-for-the-elderly entry just ahead of the recruiting one: 0.95 to 0.94)."""
    result = shared.search(query)
    assert result.matched, result.hits[:2]
    assert category is None or category in [h.entry.category for h in result.hits[:2]], result.hits[:2]


def test_a_weighted_sample_counts_as_its_copies() -> None:
    weighted = CategoryModel([("a", {"养老": 1, "床位": 1}, 3.0), ("b", {"虚拟币": 1, "挖矿": 1})])
    copied = CategoryModel([("a", {"养老": 1, "床位": 1})] * 3 + [("b", {"虚拟币": 1, "挖矿": 1})])
    for text in ({"床位": 1}, {"挖矿": 1, "养老": 1}):
        assert weighted.fits(text) == pytest.approx(copied.fits(text))


def test_the_category_model_learns_from_its_samples() -> None:
    model = CategoryModel([("a", {"养老": 1, "床位": 1}), ("a", {"养老": 1, "公寓": 1}),
                           ("b", {"虚拟币": 1, "挖矿": 1}), ("b", {"虚拟币": 1, "矿机": 1})])
    probs = model.probabilities({"床位": 1, "养老": 1})
    assert probs["a"] > 0.5 > probs["b"] and abs(sum(probs.values()) - 1) < 1e-9
    assert model.probabilities({"没见过": 1}) == {"a": 0.5, "b": 0.5}


def test_folds_hold_every_question_out_exactly_once(shared: Services) -> None:
    everyday, asked = load_offtopic(), load_asked()
    held: list[str] = []
    for train, kept, asked_kept, cases in folds(shared.kb, everyday, 5, asked):
        seen = {q for e in train.entries for q in e.questions} | set(kept) | {a.question for a in asked_kept}
        assert not seen & {c["q"] for c in cases}  # the index never sees the questions it is scored on
        held += [c["q"] for c in cases]
        assert all(c["cats"] == [] for c in cases if c["q"] in everyday)
    every = [q for e in shared.kb.entries for q in e.questions] + everyday + [a.question for a in asked]
    assert sorted(held) == sorted(every)


@pytest.mark.parametrize("args", [(), ("--folds", "1"), ("some.jsonl", "--folds", "5"),
                                  ("--by-writer", "--folds", "5")])
def test_eval_kb_wants_a_file_or_folds(args: tuple[str, ...]) -> None:
    proc = run("eval", "kb", *args, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("query", ["天气预报", "给我讲个笑话", "火车票怎么买", "怎么办理社保卡", "谢谢", "", "😀",
                                   "asdfgh qwerty", "今天中午吃什么", "孩子发烧39度怎么办", "明天去县城的车几点"])
def test_out_of_scope_is_no_match(shared: Services, query: str) -> None:
    assert not shared.search(query).matched


def test_scores_are_ranked_and_bounded(shared: Services) -> None:
    result = shared.search("原始股马上上市 翻十倍", top=5)
    assert result.matched and len(result.hits) == 5
    assert all(0 <= h.score <= 1 for h in result.hits)
    assert result.best is not None and result.best.entry.category == "original-stock-ipo"


def test_group_threshold_is_stricter(shared: Services) -> None:
    weak = "网络理财平台还能信吗"
    strict = shared.settings.search.group_threshold
    score = shared.search(weak).best.score  # type: ignore[union-attr]
    assert shared.settings.search.threshold <= strict
    assert shared.search(weak, group=True).matched == (score >= strict)


def test_cross_validated_quality_beats_plain_bm25(shared: Services) -> None:
    """Issue 15 §1: on the base's own questions and the residents' messages, each fold held out of the index it is
    asked against (2026-12-07: 88.7 / 94.0 / no-match 98.1 against BM25's 80.6 / 92.0 / 6.1)."""
    scores = cross_validate(shared.kb, load_offtopic(), 5, {
        "ours": lambda kb, everyday, asked: SearchIndex(kb, offtopic=everyday, asked=asked).search,
        "base": lambda kb, everyday, asked: PlainBM25(kb).search}, asked=load_asked())
    ours, base = scores["ours"].figures(), scores["base"].figures()
    assert ours["top1"] >= 87 and ours["top3"] >= 93 and ours["no_match"] >= 96, ours
    assert ours["top1"] >= base["top1"] + 3 and ours["top3"] > base["top3"], (ours, base)


def test_quality_holds_for_a_writer_it_never_read(shared: Services) -> None:
    """Each writer of knowledge/asked.jsonl held out in turn: their style and topics are new to the index, as a
    real resident's are (2026-12-07, eleven writers: 89.1 / 93.9 / no-match 97.1 against BM25's 77.3 / 89.6 / 6.5)."""
    scores = cross_validate(shared.kb, load_offtopic(), 0, {
        "ours": lambda kb, everyday, asked: SearchIndex(kb, offtopic=everyday, asked=asked).search,
        "base": lambda kb, everyday, asked: PlainBM25(kb).search}, asked=load_asked(), by_writer=True)
    ours, base = scores["ours"].figures(), scores["base"].figures()
    assert ours["top1"] >= 85 and ours["no_match"] >= 94, ours
    assert ours["top1"] >= base["top1"] + 5 and ours["top3"] > base["top3"], (ours, base)


def test_residents_messages_are_labelled_and_apart_from_every_evaluation_set(shared: Services) -> None:
    """knowledge/asked.jsonl teaches the models: its slugs must exist, every line must name its writer, and no
    line may be one of the questions the search is scored on."""
    asked = load_asked()
    assert len(asked) > 3500 and len({a.by for a in asked}) >= 11 and all(a.by for a in asked)
    assert all(c in shared.kb.categories for a in asked for c in a.categories)
    scored = {normalize(c["q"]) for path in sorted(DATA.glob("kb_*.jsonl")) for c in read_jsonl(path)}
    assert scored and not {normalize(a.question) for a in asked} & scored


@pytest.mark.parametrize("path", [DEV, HELD_OUT], ids=["dev", "held-out"])
def test_quality_targets_and_beats_plain_bm25(shared: Services, path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present")
    cases = read_jsonl(path)
    ours = score_kb(cases, lambda q: shared.search(q)).figures()
    base = score_kb(cases, PlainBM25(shared.kb).search).figures()
    print(path.name, "ours", ours, "plain BM25", base)
    assert ours["top1"] >= 90 and ours["top3"] >= 97 and ours["no_match"] >= 90, ours
    assert ours["top1"] > base["top1"] and ours["no_match"] > base["no_match"]
