"""The risk check misses less (issue 15 §4): someone who has paid already, a price promised for something bought,
光伏贷, offers with one or two red flags in everyday words and their safe look-alikes — in the style of
tests/test_risk.py."""

from __future__ import annotations

import re

import pytest

from knowledge.risk import RiskChecker, RiskReport
from tests.test_risk import REGION


@pytest.fixture(scope="module")
def checker() -> RiskChecker:
    return RiskChecker(REGION)


def _sentences(advice: str) -> list[str]:
    return [s for s in re.split(r"[。！？]", advice) if s.strip()]


def _lure_rates(report: RiskReport) -> list[str]:
    return re.findall(r"约(\d+(?:\.\d)?)%", report.advice)


# ---- already paid: a victim's steps ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "有人说投养老公寓每年返百分之十五，我已经交了两万多",
    "他说投十万每月分红五千，钱已经转过去了",
    "我妈在讲座上交了三千块，说买保健品还返钱",
    "群里老师带着炒币，说稳赚不赔，我投进去了，现在提不出来",
])
def test_someone_who_has_paid_gets_the_victims_steps(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.risky, text
    advice = report.advice
    assert "千万别交钱" not in advice and "别再交" in advice                  # stop paying
    assert "记录" in advice and "合同" in advice                               # keep records
    assert f"打 {REGION['police']} 报警" in advice and REGION["office"] in advice  # report
    assert "登记为集资参与人" in advice                                         # when the case opens
    assert "追回损失" in advice and "骗局" in advice                           # paid "recovery" is a second scam
    # five steps, one short sentence each (the unpaid advice keeps its 2-4 sentences); it ends with what to do now
    sentences = _sentences(advice)
    assert len(sentences) == 5 and all(len(s) <= 25 for s in sentences if "{" not in s), sentences
    assert REGION["police"] in sentences[-1] and advice.endswith("。")
    assert "{" not in advice


@pytest.mark.parametrize("text", ["已经交了两万多", "钱已经转过去了", "我妈已经交了五万块"])
def test_paid_without_red_flags_still_gets_the_victims_steps(checker: RiskChecker, text: str) -> None:
    """Whatever the level, someone who has paid gets every step a victim takes (issue 15 §4)."""
    report = checker.check(text)
    assert report.level == "low"
    advice = report.advice
    assert "别再交" in advice and "记录" in advice and "合同" in advice            # stop paying, keep records
    assert f"打 {REGION['police']} 报警" in advice and REGION["office"] in advice   # report
    assert "登记为集资参与人" in advice                                             # when the case opens
    assert "追回损失" in advice and "骗局" in advice                               # paid "recovery"
    sentences = _sentences(advice)
    assert len(sentences) == 5 and all(len(s) <= 25 for s in sentences), sentences
    assert REGION["police"] in sentences[-1] and "{" not in advice


@pytest.mark.parametrize("text", [
    "我还没交钱，他说每月返利8%",
    "他说每月返利8%，让我先交两万，我没转过去",
    "他们说每月返利8%，我不打算交",
])
def test_not_paid_yet_keeps_the_warning(checker: RiskChecker, text: str) -> None:
    advice = checker.check(text).advice
    assert "别交钱" in advice and "集资参与人" not in advice
    assert "96%" in advice  # the worked-out rate is still explained


def test_paying_into_a_safe_product_is_no_victim(checker: RiskChecker) -> None:
    report = checker.check("我在银行买了大额存单，已经存了五万")
    assert report.level == "low" and "集资参与人" not in report.advice and "报警" not in report.advice


# ---- a promised price for something bought -----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "rate", "yearly"), [
    ("数字藏品 100 元买的，说能涨到 1000", "900", False),
    ("花五万买的字画，他说三年后能卖到五十万", "300", True),
    ("这套邮票两千块买的，老板保证明年能涨到六千", "200", True),
])
def test_a_promised_price_is_worked_out_as_a_return(checker: RiskChecker, text: str, rate: str,
                                                    yearly: bool) -> None:
    report = checker.check(text)
    assert report.risky and "利诱性" in {s.feature for s in report.signals}
    assert _lure_rates(report) == [rate], report.advice
    assert ("一年回报" in report.advice) == yearly  # a year's rate only where a term is named


@pytest.mark.parametrize("text", [
    "这件衣服100块买的，现在涨到1000了",       # it happened; no promise
    "我100元买的数字藏品，已经涨到1000了",
    "一斤猪肉去年十块买的，今年涨到十五了",
])
def test_a_rise_that_happened_is_no_promised_return(checker: RiskChecker, text: str) -> None:
    assert _lure_rates(checker.check(text)) == []


# ---- 光伏贷 ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "免费装光伏，发电还贷",
    "公司上门说免费给屋顶装光伏，不用花一分钱，发电的钱就够还贷款",
    "业务员说装太阳能板零首付，卖电的钱抵月供",
])
def test_solar_loans_are_at_least_medium(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.level in ("medium", "high"), text
    assert report.category == "hot-concept-projects"
    assert "名下" in report.advice and REGION["hotline"] in report.advice


@pytest.mark.parametrize("text", ["我家自己花钱装了光伏，卖电给电网", "光伏贷是什么"])
def test_solar_without_the_loan_lure_is_not_flagged(checker: RiskChecker, text: str) -> None:
    assert checker.check(text).level == "low"


# ---- one or two red flags in everyday words (tests/data/risk_tuning.jsonl and later probes) -----------------------

@pytest.mark.parametrize(("text", "feature"), [
    # money paid in, then paid out on a schedule
    ("说是扶贫项目，交两千块以后每个月都能领补贴", "利诱性"),
    ("有人上门跟我爸说把房子抵押出去，钱交给他们打理，每个月给养老钱", "利诱性"),
    ("我奶奶说有人叫她把存款转出来买一种高息的养老产品，月月领钱", "利诱性"),   # leaving a deposit is no safe context
    # buying in to someone's business for dividends
    ("村里老李让我入股他的养猪场，一股五千，年底按股分红", "利诱性"),
    ("我姨让我去她们的茶叶店当股东，交三万，每年分红不低于五千", "利诱性"),
    # a multiple or the whole sum back, buy-back at a premium
    ("有个社团，每月交一百会费，年底按会费的两倍返", "利诱性"),
    ("茶厂的人说买他们的普洱，三年后按买价的一倍半收回去", "承诺回购"),
    ("超市办卡充五千，说一年后全额退回来，东西等于白拿", "利诱性"),
    ("有个卖大米的说，交两千块，以后一年的米都免费送，到年底两千块还退给你", "利诱性"),
    # what a group or a 'teacher' shows and says
    ("群里每天都有人发返现截图，说昨天又到账三百，让我也投点", "公开性"),
    ("群里的老师带着买股票，说跟着他买保证一个礼拜涨两成", "利诱性"),
    # the money cannot be taken out any more
    ("我已经交了三万给一个养老项目，现在说钱取不出来了", "非法性"),
    # fees in new clothes
    ("有个公司说能帮我还信用卡，先交欠款的三成给他们，剩下的他们替我还", "先交费"),
    ("有人打电话说可以帮我代理退保，能退回全部保费，只要交一点手续费", "先交费"),
])
def test_everyday_lures_are_at_least_medium(checker: RiskChecker, text: str, feature: str) -> None:
    report = checker.check(text)
    assert report.level in ("medium", "high"), report
    assert feature in {s.feature for s in report.signals}, report


def test_money_stuck_after_paying_gets_the_victims_steps(checker: RiskChecker) -> None:
    advice = checker.check("我已经交了三万给一个养老项目，现在说钱取不出来了").advice
    assert "别再交" in advice and "登记为集资参与人" in advice and f"打 {REGION['police']} 报警" in advice


@pytest.mark.parametrize(("text", "rate"), [
    ("我是开小超市的，有个供货商说预付五万货款，每个月按百分之三给我返点", "36"),   # 按 after the period, 返点
    ("有个什么会员，交三千入会，以后每个月给我发两百", "80"),                     # 给我发两百
    ("有人说一万返八百", "8.0"),                                                   # a bare sum with 返
    ("一位大姐说她们在搞一个慈善互助，交一千能领三千", "200"),                     # 交 … 能领
    ("他说投五万，每天能有一百的收益", "73"),                                       # 有 + a return word
])
def test_everyday_figures_are_read_as_a_yearly_rate(checker: RiskChecker, text: str, rate: str) -> None:
    report = checker.check(text)
    assert report.risky and _lure_rates(report) == [rate], report.advice


def test_the_rate_is_compared_with_todays_safe_rates(checker: RiskChecker) -> None:
    """Deposits and 国债 pay 1 %-2.5 % a year (/work/shared/domain.md): the advice says so beside the figure."""
    advice = checker.check("有人说年化百分之六，保本").advice
    assert "约6.0%" in advice and "存款和国债一年才1%到2.5%" in advice


@pytest.mark.parametrize("text", [
    "超市的储值卡充了五百，没有利息，买东西用",
    "我在家门口的理发店办了张卡，充三百送三十，没有返钱一说",
    "超市买满两百积分翻倍",
    "物业说提前交一年物业费打九折",
    "微信零钱通里有点钱，每天有几分钱收益",
    "买了农业保险，政府补贴一部分保费",
    "单位组织员工购买企业的股票，是上市公司的员工持股计划，有公告",
    "我儿子公司上市了，他按公司的股权激励计划拿了点股票，要锁定三年",
    "村里搞土地入股，合作社统一经营，年底按土地面积分红，村委会公示了",
    "朋友开饭店，我投了两万，他每年按实际利润给我分，亏了我也认",
    "我在银行买的理财产品，这个月收益率百分之二点八，说明书写着不保本",   # 这个月 names a month
    "我表哥借了我十万，一年后连本带利还我十万零五千，写了借条",
    "我买的国债是保本保息的，国家发行的",
    "交五百块能领两千块的购物卡",
    "每满一千返一百",
])
def test_safe_look_alikes_stay_low(checker: RiskChecker, text: str) -> None:
    assert not checker.check(text).risky, checker.check(text)


# ---- the general shape of an offer: someone else offers, money goes in, more is promised back ---------------------

@pytest.mark.parametrize("text", [
    "网上有个人让我买他们的会员卡，说会员卡本身就会升值，以后可以转卖赚钱",
    "我妈单位的老同事拉她去一个“健康驿站”，后来让她存钱进去说有利息",
    "有个人说现在买这块地的“使用权”，两万一亩，以后征收能赔二十万",
    "有个人说他们公司发行了一种“消费券”，现在买八折，半年后可以原价兑现",
])
def test_an_offer_of_more_money_back_is_a_lure(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.risky and "利诱性" in {s.feature for s in report.signals}, report


@pytest.mark.parametrize("text", [
    "保险业务员说这个保险交十年，以后每年能领钱",
    "卖房的中介说买这房子以后肯定升值",
    "驾校说交了学费以后包拿证",
    "理财经理说买这个基金以后可能会涨",
    "房东说交了押金，退房时能退回来",
    "银行的客户经理打电话说有一款新的大额存单，利率二点一，让我去柜台办",
])
def test_ordinary_promises_are_no_offer_of_that_shape(checker: RiskChecker, text: str) -> None:
    assert not checker.check(text).risky, checker.check(text)


# ---- the audit of 2026-12-07 (issue 15 §4): classes of misses and false alarms ------------------------------------

@pytest.mark.parametrize("text", [
    "交三千当区域代理，下面每单有提成",
    "这个币一毛，明年上交易所十块",
    "交两万以后免费住养老",
    "网上朋友带炒外汇有内幕",
])
def test_audit_misses_are_risky(checker: RiskChecker, text: str) -> None:
    assert checker.check(text).risky, checker.check(text)


@pytest.mark.parametrize("text", [
    # a fee to become an agent, paid back by commissions on the sales below
    "花五千拿个市级代理，底下的人卖一单我抽一单的提成",
    "入门费一千九，拉五个人进来就回本",
    "花两千块当个店长，以后团队里每个人的单子我都能抽成",
    # a promised listing, with the price it will reach
    "那个币才几分钱，说年底登陆交易所就值好几块",
    "现在买一点，等它上了交易所价格能翻几百倍",
    "那个公司说明年去纳斯达克上市，现在一块钱一股",
    # prepaid care or housing
    "一次性交五万办个养老卡，以后老了免费入住",
    "预存八万订个床位，将来住进去不用再花钱",
    "给我爸办了张养老院的会员卡，交了八万，说以后住进去打折还送旅游",
    # "inside information" on futures
    "有个老乡说他能拿到期货的内部消息",
    # someone befriends an old person, then asks for money
    "有个姑娘经常来陪我妈聊天，认了干妈，后来劝她买理财",
    # gifts for attending an investment talk
    "去听个项目推介会，每人发一百块红包",
    "小区里有个公司，签到就送鸡蛋，讲的是一个投资项目",
    "我奶奶上完课领两斤米，天天都去",                  # a quantity between the gift verb and the gift
    # a painting split into shares
    "一幅字画拆成五百份卖，份额能在平台上转让",
    # an "insurance" said not to come from an insurer
    "有个公司卖的养老保险，不是保险公司的，交十万每年返一万",
    # points that turn into cash day by day
    "买东西送积分，积分每天按一定比例换成现金",
])
def test_everyday_red_flags_of_each_class_are_risky(checker: RiskChecker, text: str) -> None:
    assert checker.check(text).risky, checker.check(text)


@pytest.mark.parametrize("text", [
    "朋友借五万一年还五万五",                          # 10 % a year, under 4 × LPR
    "同事找我借两万，说一年后还两万二，写了借条",
    "老同学借了我三万开店，年息百分之八",
    "我姐借了我五万，一年给我六千利息",                # 12 % = 4 × LPR, the ceiling itself
    "交两百九十九成为超市会员，买东西便宜",
    "我是保险公司的代理人，卖出保单按公司规定拿佣金",   # a licensed agent's commission
    "在期货公司开户自己做期货，知道风险很大",
    "保险公司的年金险，合同写明只有很低的保底利率",
    "给我妈在养老院办了入住，按月交费，一个月四千",
    "打新股中了一签，下周上市",
])
def test_safe_look_alikes_of_the_audit_stay_low(checker: RiskChecker, text: str) -> None:
    assert not checker.check(text).risky, checker.check(text)


@pytest.mark.parametrize("text", ["朋友找我借十万，说月息三分", "同事借我五万，说一年后还八万"])
def test_a_private_loan_above_the_legal_ceiling_is_still_flagged(checker: RiskChecker, text: str) -> None:
    assert checker.check(text).risky, checker.check(text)


def test_virtual_currency_and_nft_tips_are_each_accurate(checker: RiskChecker) -> None:
    nft = checker.check("数字藏品 100 元买的，说能涨到 1000").advice
    assert "虚拟币" not in nft and "数字藏品" in nft and "炒作" in nft, nft
    coin = checker.check("群里有人拉我炒虚拟币，说稳赚不赔").advice
    assert "炒虚拟币在我国属于非法金融活动" not in coin
    assert "业务" in coin and "非法金融活动" in coin and "不保护" in coin, coin


def test_a_private_loan_within_the_ceiling_is_explained(checker: RiskChecker) -> None:
    advice = checker.check("朋友借五万一年还五万五").advice
    cap = f"{checker._kin_threshold:g}"
    assert f"不超过{cap}%" in advice and "不算非法集资" in advice and "借条" in advice, advice
    assert advice.endswith(f"打 {REGION['hotline']} 问问。")
