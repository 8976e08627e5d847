"""Tests of the risk check (knowledge/risk.py and knowledge/risk_rules.yaml)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from knowledge.risk import RULES_FILE, RiskChecker, RiskReport, parse_number
from knowledge.text import normalize

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT.parent / "shared" / "eval" / "risk_dev.jsonl"
OWN_SET = ROOT / "knowledge" / "risk_cases.jsonl"
TAXONOMY = ROOT / "knowledge" / "taxonomy.yaml"
FEATURES = {"非法性", "公开性", "利诱性", "社会性", "先交费", "要求保密", "承诺回购", "拉人头奖励", "冒用政府背景"}
REGION = {
    "region": "测试县",
    "office": "测试县处非办",
    "office_phone": "0000-7654321",
    "hotline": "96123",
    "police": "110",
    "report_online": "测试公众号",
    "reward_max": "5万元",
}


@pytest.fixture(scope="module")
def checker() -> RiskChecker:
    return RiskChecker(REGION)


def _features(report: RiskReport) -> set[str]:
    return {s.feature for s in report.signals}


def _load(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- evaluation sets --------------------------------------------------------------------------------------

def _evaluate(checker: RiskChecker, path: Path) -> None:
    rows = _load(path)
    missed = [r for r in rows if r["risky"] and not checker.check(str(r["t"])).risky]
    alarms = [r for r in rows if not r["risky"] and checker.check(str(r["t"])).risky]
    positives = sum(1 for r in rows if r["risky"])
    negatives = len(rows) - positives
    recall = 1 - len(missed) / positives
    specificity = 1 - len(alarms) / negatives
    print(f"{path.name}: recall {recall:.3f} specificity {specificity:.3f} ({len(rows)} lines)")
    for r in missed:
        print("  missed risky:", r["t"])
    for r in alarms:
        print("  false alarm: ", r["t"])
    assert recall >= 0.95, f"recall {recall:.3f} on {path}"
    assert specificity >= 0.90, f"specificity {specificity:.3f} on {path}"


def test_dev_set(checker: RiskChecker) -> None:
    if not DEV_SET.exists():
        pytest.skip(f"{DEV_SET} is not available here")
    _evaluate(checker, DEV_SET)


def test_own_set(checker: RiskChecker) -> None:
    _evaluate(checker, OWN_SET)


def test_own_set_shape() -> None:
    rows = _load(OWN_SET)
    assert len(rows) >= 150
    assert all(set(r) == {"t", "risky"} and isinstance(r["t"], str) and isinstance(r["risky"], bool) for r in rows)
    share = sum(1 for r in rows if r["risky"]) / len(rows)
    assert 0.4 <= share <= 0.6
    assert len({r["t"] for r in rows}) == len(rows), "duplicate lines"


# ---- negation and context -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "银行说这个理财不保本",
    "理财经理说这个产品不保证收益，有风险",
    "保险公司说分红不保证",
    "社区民警提醒大家不要相信稳赚不赔的投资",
    "学校通知家长注意校园贷",
    "村里组织大家学习防范非法集资知识",
    "储蓄国债保本保息",
    "银行的人说国债利率比定期高一点",
])
def test_ordinary_or_warning_text_is_not_risky(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert not report.risky, report
    assert "利诱性" not in _features(report) or report.level == "low"


def test_disclosure_is_not_a_lure(checker: RiskChecker) -> None:
    report = checker.check("银行说这个理财不保本")
    assert "利诱性" not in _features(report)
    assert report.level == "low"


@pytest.mark.parametrize("text", ["稳赚不赔", "他说肯定不会亏", "只赚不赔", "零风险", "保证不亏本"])
def test_lures_containing_a_negation_count(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert "利诱性" in _features(report), report
    assert report.risky


def test_bank_comparison_is_a_lure_unless_mild(checker: RiskChecker) -> None:
    assert checker.check("有人说存他们那里比存银行划算多了").risky
    assert checker.check("朋友圈有人卖理财 说比余额宝高十倍 保本").risky
    assert not checker.check("儿子说储蓄国债比定期利息高一点").risky


# ---- evidence -----------------------------------------------------------------------------------------------

def test_evidence_is_a_substring_of_the_normalized_input(checker: RiskChecker) -> None:
    texts = [str(r["t"]) for r in _load(OWN_SET)] + [
        "保 本 高 息，１２％ 年化，拉人头奖励",
        "他說這是內部名額　不能告訴別人　每個月利息百分之五",
        "每股一万 年分红三千",
        "投 1000 元 每天返 10 块",
    ]
    seen = 0
    for text in texts:
        norm = normalize(text)
        for signal in checker.check(text).signals:
            assert signal.feature in FEATURES, signal
            assert signal.evidence and signal.evidence in norm, (text, signal)
            seen += 1
    assert seen > 500


def test_evidence_names_the_words(checker: RiskChecker) -> None:
    report = checker.check("合作社说交五万入股，每年保底分红一万")
    evidence = " ".join(s.evidence for s in report.signals)
    assert "保底" in evidence
    report = checker.check("推荐一个人奖励两百，下线投资还有提成")
    assert any(s.feature == "拉人头奖励" and "推荐一个人奖励" in s.evidence for s in report.signals)


def test_spaces_between_words_act_as_punctuation(checker: RiskChecker) -> None:
    assert checker.check("保 本 高 息").risky
    report = checker.check("招募股东 每股一万 年分红三千")
    assert report.risky and "利诱性" in _features(report)


# ---- rates --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "月息两分",
    "年化百分之十二",
    "每天返千分之三",
    "每个月利息百分之五",
    "投一千每天返十块",
    "一千十天拿回一千二",
    "年息一分",
    "一年给20个点的利息",
    "存十万一年给一万五利息",
    "十五天收益百分之三十",
])
def test_high_promised_rate_is_a_lure(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert "利诱性" in _features(report), report
    assert report.risky


@pytest.mark.parametrize("text", [
    "利率两点几",
    "我在银行买了大额存单，利率两点几",
    "三年期利率百分之二点三八",
    "存了一万块，一年利息两百多",
    "月息一厘",  # 1.2 % a year (月息五厘, 6 %, is now above what is safe: test_content_facts)
    "年化百分之三",
    "借给表哥两万，他说一年后还两万二",
    "邻居借了我一万，说一年后还一万",
])
def test_bank_level_rate_is_not_a_lure(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert "利诱性" not in _features(report), report
    assert not report.risky


def test_rate_advice_states_the_annual_figure(checker: RiskChecker) -> None:
    assert "24%" in checker.check("月息两分").advice
    assert "365%" in checker.check("投一千每天返十块").advice


@pytest.mark.parametrize(("words", "value"), [
    ("一千二", 1200), ("两万五", 25000), ("十二", 12), ("二十", 20), ("三百五", 350), ("一千零五十", 1050),
    ("两点几", 2.5), ("1万2", 12000), ("1.5万", 15000), ("5w", 50000), ("10,000", 10000), ("十几", 15),
    ("abc", None),
])
def test_parse_number(words: str, value: float | None) -> None:
    assert parse_number(words) == value


# ---- levels -------------------------------------------------------------------------------------------------

def test_levels(checker: RiskChecker) -> None:
    high = checker.check("群里的老师带大家买虚拟币，说稳赚不赔")      # lure + other features
    medium = checker.check("有人说买纪念币三个月后高价回收")          # one strong signal
    low_weak = checker.check("微信群里有人卖自家种的橘子")             # public promotion alone
    low_none = checker.check("我去社区医院量了血压")
    assert [high.level, medium.level, low_weak.level, low_none.level] == ["high", "medium", "low", "low"]
    assert high.risky and medium.risky and not low_weak.risky and not low_none.risky
    assert low_weak.signals and not low_none.signals


def test_lure_with_any_other_feature_is_high(checker: RiskChecker) -> None:
    alone = checker.check("年化百分之二十")
    shared = checker.check("年化百分之二十，谁都能投")
    assert alone.level == "medium" and shared.level == "high"


def test_risky_exactly_for_high_and_medium(checker: RiskChecker) -> None:
    for row in _load(OWN_SET)[:200]:
        report = checker.check(str(row["t"]))
        assert report.level in ("high", "medium", "low")
        assert report.risky == (report.level in ("high", "medium"))


def test_several_weak_signals_add_up(checker: RiskChecker) -> None:
    report = checker.check("有人在村口搞推介会，说投资光伏发电板，一块板一年挣两千，谁都能买")
    assert len(_features(report)) >= 3
    assert report.level == "medium"


# ---- advice -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "有人推荐我投资养老院，每年返息百分之十二，到期还本",
    "推荐一个人奖励两百，下线投资还有提成",
    "在淘宝买东西有返现，返了五块钱",
    "我在银行买了大额存单，利率两点几",
    "",
])
def test_advice_is_short_plain_and_ends_with_the_configured_next_step(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    advice = report.advice
    sentences = [s for s in re.split(r"[。！？]", advice) if s.strip()]
    assert 2 <= len(sentences) <= 4, advice
    assert advice.endswith("。")
    assert REGION["hotline"] in sentences[-1], advice
    assert "{" not in advice and "}" not in advice
    if report.risky:
        assert REGION["office"] in advice
        assert "别交钱" in advice


def test_advice_is_specific_to_the_findings(checker: RiskChecker) -> None:
    assert "虚拟币" in checker.check("群里的老师带大家买虚拟币，说稳赚不赔").advice
    assert "拉人头" in checker.check("推荐一个人奖励两百，下线投资还有提成").advice
    assert "家" in checker.check("他说这是内部名额 不能告诉别人 每个月利息百分之五").advice


def test_advice_uses_config_region() -> None:
    region = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))["region"]
    checker = RiskChecker(region)
    advice = checker.check("对方说这个项目政府兜底，不会亏").advice
    assert str(region["hotline"]) in advice and str(region["office"]) in advice


def test_missing_region_keys_fall_back_to_generic_words() -> None:
    advice = RiskChecker({}).check("保本高息").advice
    assert "{" not in advice and "12345" in advice


# ---- input handling -----------------------------------------------------------------------------------------

def test_traditional_characters(checker: RiskChecker) -> None:
    report = checker.check("保證高收益")
    assert report.risky and "利诱性" in _features(report)
    assert all(s.evidence in normalize("保證高收益") for s in report.signals)


@pytest.mark.parametrize("text", ["", "   ", "😀🎉👍", "！？。。。", "\u200b\u200b"])
def test_empty_or_meaningless_input(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.level == "low" and not report.risky and report.signals == () and report.category is None
    assert report.text == text
    assert REGION["hotline"] in report.advice
    assert checker.offer_check(text) is None


@pytest.mark.parametrize("text", ["今天天气不错，我去公园散步。" * 715, "1" * 10_000, "一" * 10_000, "保 " * 5000])
def test_long_input(checker: RiskChecker, text: str) -> None:
    assert len(text) >= 10_000
    start = time.perf_counter()
    report = checker.check(text)
    assert report.level == "low" and not report.risky
    assert time.perf_counter() - start < 2.0


def test_report_is_frozen(checker: RiskChecker) -> None:
    report = checker.check("保本高息")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.level = "low"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.signals[0].feature = "x"  # type: ignore[misc]


# ---- classes of offers the checker once missed -------------------------------------------------------------

@pytest.mark.parametrize(("text", "feature"), [
    # returns phrased as price rises of something sold or kept for you
    ("平台上卖的茶饼每天涨百分之一，买了放他们仓库保管", "利诱性"),
    ("那套邮票在文交所挂牌，一年至少涨一倍，平台随时回购", "承诺回购"),
    ("业务员说这块玉以后能涨几十倍，公司替你保管", "利诱性"),
    ("那个app卖的数字茶叶只涨不跌，想卖了平台回购", "利诱性"),
    ("买了他们的红木放店里寄售，每年升值百分之二十", "利诱性"),
    # folk fractions: 一成五 = 15 %, 一分五, 三厘 a day
    ("借钱给那个老板，一成五的利息，年底给", "利诱性"),
    ("存他那里年息一分五，随时能取", "利诱性"),
    ("把钱放他们那，每天三厘", "利诱性"),
    ("有人收钱，一个月给一分半的息", "利诱性"),
    # interest on a schedule without a figure, for a fixed-income product
    ("一个财富公司卖资产收益权，每月付息，到期还本", "非法性"),
    ("理财店推荐定融产品，按季度付息", "利诱性"),
    ("他们卖公司的债权，定期付息", "利诱性"),
    # paying to adopt or have animals and trees kept
    ("交钱认养一头牛", "非法性"),
    ("有人卖认养果树的名额，一棵两千", "非法性"),
    ("交三千认领一只羊，公司统一代养", "非法性"),
    # pay a small fee for a huge sum from "state assets"
    ("国家解冻的资产，交一千能领一百万", "先交费"),
    ("说是红色资产，交三百元就能领五十万", "冒用政府背景"),
    ("扶贫基金要发放了，交一千块登记费", "冒用政府背景"),
    # rotating savings clubs
    ("村里有个互助社，每月交五百，轮到谁谁拿，还有利息", "非法性"),
    ("我们几个起了个会，每月交两千，后拿的有利息", "非法性"),
    ("几个老姐妹搞了个会，每月各交一千，排着队拿钱", "非法性"),
    # fees before appraisal, auction, unfreezing, activation
    ("先交八千鉴定费和拍卖费，就能帮我把古董拍出去", "先交费"),
    ("客服说要交两千解冻费才能提现", "先交费"),
    ("领国家补助要先交六百块手续费", "先交费"),
    # virtual land
    ("买虚拟房产，以后涨几十倍", "非法性"),
    ("元宇宙里的虚拟土地以后能翻几十倍", "利诱性"),
    # seminars for the elderly
    ("讲座上让我们买他们的养老理财，利息比银行高", "公开性"),
    ("茶话会上推销一款养老理财，说到期连本带息", "公开性"),
])
def test_offer_classes_once_missed(checker: RiskChecker, text: str, feature: str) -> None:
    report = checker.check(text)
    assert report.risky, report
    assert feature in _features(report), report


@pytest.mark.parametrize(("text", "rate"), [
    ("借给他钱，一成五的利息", "15%"),
    ("年息一分五", "15%"),
    ("月息一分半", "18%"),
    ("存他们那每天三厘", "110%"),
    ("把钱放他那一个月两分", "24%"),
    ("在平台上买的黄金每天涨千分之三，存在平台上不用取", "110%"),
    ("他们说投一万年底能拿回一万三", "30%"),
])
def test_folk_fractions_and_price_rises_are_read_as_rates(checker: RiskChecker, text: str, rate: str) -> None:
    assert rate in checker.check(text).advice


@pytest.mark.parametrize("text", [
    "月息三厘",                          # 0.3 % a month: bank level
    "我的股票今年涨了百分之二十",          # a rise that happened, of a licensed product
    "我买的藏品去年涨百分之三十",          # a past rise
    "物价每年涨百分之三",
    "我们公司产品每年都在涨价",
    "老伴的退休金每年都涨一点",
    "交一千块押金，退房时领回一千",         # no windfall
    "交三百块保险费，出了事能拿到十万赔偿",  # insurance pays out
])
def test_rises_and_fees_that_are_not_lures(checker: RiskChecker, text: str) -> None:
    assert not checker.check(text).risky, checker.check(text)


def test_windfall_is_a_fee_first_signal_with_its_own_evidence(checker: RiskChecker) -> None:
    report = checker.check("有个老头说交五百块能分到国家的一千万资金")
    assert report.risky
    assert any(s.feature == "先交费" and s.evidence.startswith("交五百块") for s in report.signals)
    assert not checker.check("交五百块能领两千块的购物卡").risky    # not a huge sum for a small fee


# ---- texts that are no offer --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    # questions about legality or advice
    "虚拟货币交易在国内合法吗",
    "买比特币犯法吗",
    "以房养老是不是骗局",
    "保本高息的理财能信吗",
    "听说比特币能赚钱，咱能碰吗",
    "俺想把钱存起来，该注意点啥",
    # warnings, notices, class meetings and news
    "群公告：近期有人冒充央企推销理财产品，请大家不要相信",
    "学校开班会讲了校园贷的危害",
    "公安局通报破获了一起虚拟币传销案",
    "听说有人用高息骗老人",
    "风险提示：近期出现冒用国企名义销售理财产品的情况",
    "听说邻县有人搞抬会崩了，好多人钱都没了",
    # refunds after a case
    "P2P平台的案子清退款发下来了 按比例退了一部分",
    "我之前投的那个平台出事了，法院按比例退了百分之三十",
])
def test_questions_warnings_and_refunds_are_not_risky(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert not report.risky and not report.signals, report
    assert checker.offer_check(text) is None


@pytest.mark.parametrize("text", [
    "听说有人冒充国企卖理财，可他们让我交五万入股，年息百分之二十",   # the writer is being drawn in
    "那个平台上过新闻，说是国家支持的，年化百分之十五",               # news used as a selling point
    "老板说我们公司是派出所备过案的，放心投，月息两分",               # reported pitch
    "P2P的清退款要发了，有人说先交两千手续费才能领",                 # a fee demand after a case
    "每天返千分之三，这个靠谱吗？",                                  # a question about a particular offer
    "保本高息，能投吗",
])
def test_offers_next_to_warning_or_question_words_stay_risky(checker: RiskChecker, text: str) -> None:
    assert checker.check(text).risky, checker.check(text)


@pytest.mark.parametrize("text", [
    "我在银行存了定期，按年付息",
    "我买的国债每年付息一次，到期还本",
    "我在证券公司买的公司债，每半年付一次利息",
    "超市会员积分满五百可以换一袋米",
    "借给我表弟三万块钱买车，说好一年后还",
    "我们厂每个月十五号发工资，一个月四千五",
    "把玉米卖给了村里的合作社，按当天的市场价",
    "村里的股份经济合作社给每个村民分了股，年底分红一千二",
    "孩子上大学申请了国家助学贷款，在校期间免利息",
    "在超市买了认养一头牛的牛奶",
    "幼儿园组织孩子去果园认养小树，说是环保活动",
    "我跟养殖公司签了代养合同，他们出猪苗，我养，按头给代养费",
    "银行开了个讲座介绍养老理财，说不保本有风险",
    "我把字画交给正规拍卖行拍卖了",
    "我们几个同事轮流开车上班",
    "村里搞了个会，每家交两百修路",
])
def test_ordinary_life_stays_safe(checker: RiskChecker, text: str) -> None:
    assert not checker.check(text).risky, checker.check(text)


def test_rule_may_need_any_of_several_contexts(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    multiply = next(r for r in rules["rules"] if r["id"] == "lure-multiply")
    assert multiply["needs"] == ["invest", "asset"]
    text = "那幅画放他们那托管，以后能涨几十倍"
    assert "利诱性" in _features(RiskChecker(REGION).check(text))
    multiply["needs"] = "invest"
    for rule in rules["rules"]:
        if rule["id"] == "lure-price-rise":
            rule["needs"] = "invest"
    custom = tmp_path / "rules.yaml"
    custom.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    assert "利诱性" not in _features(RiskChecker(REGION, custom).check(text))


# ---- offers versus questions ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("什么是非法集资", False),
    ("怎么举报", False),
    ("培训贷是什么", False),
    ("消费全返是真的吗", False),
    ("非法集资有哪些特征？怎么识别？", False),
    ("今天天气不错", False),
    ("有人推荐我投资养老院，每年返息百分之十二", True),
    ("推荐一个人奖励两百，下线投资还有提成", True),
    ("每天返千分之三，这个靠谱吗？", True),
    ("他说买这个保健品能分红，靠谱吗", True),
    ("我在银行买了大额存单，利率两点几", True),
])
def test_offer_check_tells_offers_from_questions(checker: RiskChecker, text: str, expected: bool) -> None:
    assert (checker.offer_check(text) is not None) is expected


# ---- categories and rules file ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "slug"), [
    ("有人推荐我投资养老院，每年返息百分之十二，到期还本", "pension-elderly-care"),
    ("群里的老师带大家买虚拟币，说稳赚不赔", "crypto-blockchain"),
    ("公司对外卖原始股，说明年上市", "original-stock-ipo"),
    ("合作社说交五万入股，每年保底分红一万", "agri-coop"),
    ("交三千会员费，平台帮我还清五万网贷", "debt-relief"),
    ("商城购物全额返还，每天返千分之三", "consumer-rebate"),
    ("讲座上专家说买这个保健品就能成为公司股东分红", "health-product-sales"),
    ("有人说买纪念币三个月后高价回收", "collectibles"),
    ("推荐一个人奖励两百，下线投资还有提成", "ponzi-recruitment"),
    ("某公司说有国资背景，投资新能源项目月息两分", "fake-soe-government"),
    ("说是包租十年，每年返租金8%", "property-leaseback"),
    ("我在银行买了大额存单，利率两点几", "safe-investing"),
    ("在菜市场买菜用手机付款", None),
])
def test_category(checker: RiskChecker, text: str, slug: str | None) -> None:
    assert checker.check(text).category == slug


def test_categories_are_taxonomy_slugs(checker: RiskChecker) -> None:
    slugs = {c["slug"] for c in yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))["categories"]}
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    named = set(rules["categories"]) | {r["category"] for r in rules["rules"] if r.get("category")}
    named |= {rules["category_fallback"], rules["category_safe"]}
    assert named <= slugs, named - slugs
    for row in _load(OWN_SET):
        category = checker.check(str(row["t"])).category
        assert category is None or category in slugs


def test_rules_file_is_validated(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    rules["rules"][0]["feature"] = "高风险"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown feature"):
        RiskChecker(REGION, bad)
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    rules["typos"]["稳赚不陪"] = "稳赚"
    bad.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="keep the length"):
        RiskChecker(REGION, bad)


def test_rules_path_is_used(tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    rules["rates"]["threshold"] = 30
    custom = tmp_path / "rules.yaml"
    custom.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    assert RiskChecker(REGION).check("月息两分").risky
    assert not RiskChecker(REGION, custom).check("月息两分").risky


def test_held_out_set_meets_targets() -> None:
    """An independent set written without seeing the rules (later used to find classes of misses)."""
    from bot.evaluation import KeywordBaseline, read_jsonl, risk_checker_is_risky, score_risk

    cases = read_jsonl(Path(__file__).parent / "data" / "risk_heldout.jsonl")
    ours = score_risk(cases, risk_checker_is_risky(RiskChecker(REGION))).figures()
    base = score_risk(cases, KeywordBaseline().is_risky).figures()
    assert ours["recall"] >= 95 and ours["specificity"] >= 90, ours
    assert ours["recall"] > base["recall"] and ours["specificity"] >= base["specificity"]
