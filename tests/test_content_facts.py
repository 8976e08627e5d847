"""Legal facts the knowledge base and the risk rules must state correctly (issue 15 §3, /work/shared/domain.md).

Each test loads the bundled base through `knowledge.schema.load` (or asks the risk checker / search the bot uses)
and checks that a corrected statement is there and the wrong one it replaced is gone."""

from __future__ import annotations

import re

import pytest
import yaml

from bot.services import Services
from knowledge import schema
from knowledge.risk import RULES_FILE
from knowledge.schema import Entry


@pytest.fixture(scope="module")
def entries() -> dict[str, Entry]:
    kb, problems = schema.load()
    assert problems == []
    return kb.by_id()


@pytest.fixture(scope="module")
def rules() -> dict:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def text(entry: Entry) -> str:
    """What a resident reads: title, summary and the three body parts."""
    return "\n".join([entry.title, entry.summary, *entry.body.values()])


def bases(entry: Entry) -> str:
    return "\n".join(entry.legal_basis)


# ---- definition --------------------------------------------------------------------------------------------

def test_three_features_are_enough_and_word_of_mouth_is_promotion(entries: dict[str, Entry]) -> None:
    """Art. 2 of the Regulation: unlicensed + promised returns + the public; all four are not needed to act.
    The judicial interpretation's Art. 1 (a crime) also needs public promotion, and word of mouth or letting it
    spread knowingly (明知扩散而放任) counts as promotion: "the law looks only at three" was wrong."""
    e = entries["identify-four-features"]
    assert "这四条都沾上，就是非法集资" not in text(e)
    assert "只看三条" not in text(e) and "不用四条都有" not in e.summary
    assert "三条占全，就要查处" in e.body["套路"]
    assert "要判刑，法院还看第四条：有没有公开宣传" in e.body["套路"]
    assert "口口相传，也算公开宣传" in e.summary
    assert "口口相传" in text(e) and "再介绍别人" in text(e) and "明知道消息会传开，还由着它传，也算" in text(e)
    assert "若干问题的解释》第一条" in bases(e)  # the four features of the crime
    assert "适用法律若干问题的意见》第二条" in bases(e)  # 明知扩散而放任 counts as public promotion


# ---- returns, safe products and the rate rules -------------------------------------------------------------

def test_return_levels_compare_with_todays_safe_rates(entries: dict[str, Entry], rules: dict) -> None:
    e = entries["safe-investing-return-levels"]
    assert "超过6%要打问号" not in text(e)
    assert "1%到2.5%" in text(e) and "比国债高一倍" in text(e)
    assert rules["rates"]["threshold"] <= 5  # was 6: twice the 国债 rate is already a warning sign


@pytest.mark.parametrize("offer", ["这个项目年化百分之六", "月息五厘", "投十万，一年给六千利息"])
def test_six_percent_a_year_is_now_a_lure(shared: Services, offer: str) -> None:
    report = shared.risk.check(offer)
    assert report.risky and "利诱性" in {s.feature for s in report.signals}, report


@pytest.mark.parametrize("offer", ["国债利率2.3%", "大额存单三年期利率2.6%", "银行理财年化3.8%"])
def test_todays_safe_rates_are_not_lures(shared: Services, offer: str) -> None:
    assert not shared.risk.check(offer).risky


def test_money_market_funds_are_not_called_principal_guaranteed(shared: Services, rules: dict,
                                                                entries: dict[str, Entry]) -> None:
    """余额宝/零钱通 are money-market funds: not banks, not guaranteed."""
    assert not re.search(rules["contexts"]["safe_products"], "余额宝")
    assert not re.search(rules["contexts"]["safe_products"], "零钱通")
    for question in ("余额宝保本吗", "零钱通保本吗"):
        report = shared.risk.check(question)
        assert "这是对的" not in report.advice and "在银行、保险公司等正规机构办理" not in report.advice
        assert "余额宝、零钱通都不保本" in report.advice, report.advice
    # asked in the chat, the answer is the entry that says so
    found = shared.search("余额宝保本吗")
    assert found.matched and found.best is not None
    assert "余额宝、零钱通是货币基金" in text(found.best.entry) and "也不保本" in text(found.best.entry)
    assert "余额宝、零钱通是货币基金" in text(entries["safe-investing-return-levels"])


def test_kin_lending_limit_is_four_times_the_lpr(shared: Services, rules: dict) -> None:
    """Courts do not protect private-loan interest above 4 × the one-year LPR (民间借贷司法解释 第二十五条)."""
    rates = rules["rates"]
    assert rates["kin_threshold"] == pytest.approx(4 * rates["lpr_1y"])
    assert 2.5 <= rates["lpr_1y"] <= 4.5
    assert shared.risk.check("借给表哥五万，年息13%").risky            # above 4 × 3.0 %
    assert not shared.risk.check("借给表哥五万，年息10%").risky        # below it: ordinary private lending


def test_insurance_guarantees_are_low_not_absent(entries: dict[str, Entry]) -> None:
    e = entries["verify-legit-never-do"]
    assert "除了存款、国债，正规机构不承诺保本" not in text(e)
    assert "保险合同里写明的保底利益" in text(e)


def test_daily_return_arithmetic(entries: dict[str, Entry]) -> None:
    """"More than three times the principal a year" is true at 1 % a day only (365 %); 0.3 % a day is 109.5 %."""
    e = entries["ponzi-daily-return"]
    assert "每天固定返利，一年算下来超过本金的三倍" not in text(e)
    assert "每天百分之一，一年是本金的三倍多" in text(e) and "每天千分之三，一年就超过本金" in text(e)
    assert 0.01 * 365 > 3 and 1 < 0.003 * 365 < 2


# ---- scheme facts ------------------------------------------------------------------------------------------

def test_forest_rights_are_checked_at_the_real_estate_registry(entries: dict[str, Entry]) -> None:
    e = entries["agri-forest-seedling"]
    assert "林权证不是林业部门发的" not in text(e)
    assert "不动产登记中心" in e.body["怎么办"] and "以前发的林权证照样有效" in e.body["怎么办"]
    assert "《不动产登记暂行条例》" in bases(e)


def test_only_ordinary_commemorative_coins_are_exchanged_at_face_value(entries: dict[str, Entry]) -> None:
    e = entries["collectibles-buyback-consignment"]
    assert "人民银行发行的纪念币、纪念钞，按面值" not in text(e)
    assert "普通纪念币、纪念钞，按面值在银行预约兑换" in text(e) and "金银纪念币不按面值兑换" in text(e)


def test_agents_and_bank_counters_sell_insurance_too(entries: dict[str, Entry]) -> None:
    e = entries["insurance-unlicensed-high-return"]
    assert "只有持牌保险公司能卖保险" not in text(e)
    assert "代理人" in e.summary and "银行柜台" in e.summary
    assert "《保险法》第六条" in bases(e)


def test_real_local_financing_vehicles_defaulted_too(entries: dict[str, Entry]) -> None:
    e = entries["soe-fake-central-enterprise"]
    assert "国企不会向社会公众高息借钱" not in text(e) and "真国企也不会向老百姓高息借钱" not in text(e)
    assert "城投" in text(e) and "定融" in text(e) and "到期还不上" in text(e)


def test_chengtou_bonds_are_for_professional_investors(entries: dict[str, Entry]) -> None:
    """Many 城投 bonds are sold only to professional (qualified) investors; only some local-government bonds are
    sold at bank counters: "城投债在银行柜台或证券账户里就能买" was wrong."""
    e = entries["wealth-chengtou-dingrong"]
    assert "在银行柜台或证券账户里就能买" not in text(e)
    said = schema.sentences(e.body["怎么办"])
    assert any("地方政府债券" in s and "有的在银行柜台" in s and "城投" not in s for s in said), said
    assert any("城投债" in s and "专业投资者（" in s for s in said), said
    assert "普通人一般买不到" in e.body["怎么办"]


def test_crypto_business_is_illegal_and_trading_unprotected(entries: dict[str, Entry]) -> None:
    e = entries["crypto-coin-mining"]
    assert "个人买卖虚拟币不受法律保护" in text(e)
    assert "银发〔2021〕237号" in bases(e)


@pytest.mark.parametrize("eid", ["soe-national-asset-unlock", "insurance-fake-agent-surrender"])
def test_plain_fraud_is_not_filed_under_fundraising_fraud(entries: dict[str, Entry], eid: str) -> None:
    assert "第二百六十六条" in bases(entries[eid]) and "第一百九十二条" not in bases(entries[eid])
    assert "诈骗" in text(entries[eid])


# ---- legal consequences ------------------------------------------------------------------------------------

def test_helpers_are_liable_only_when_they_knew_and_gained(entries: dict[str, Entry]) -> None:
    """Art. 3: a 协助人 knows it is illegal fundraising and gains from helping; Art. 31: warning and 1–3× fine."""
    e = entries["legal-helpers-promoters"]
    assert not e.summary.startswith("帮非法集资宣传、拉人会被警告罚款")
    assert "明知" in e.summary and "拿好处" in e.summary
    assert "不会因此被罚款" in text(e) and "1到3倍" in text(e) and "1到5倍" not in text(e)
    assert "第三条" in bases(e) and "第三十一条" in bases(e)


def test_fundraising_fraud_needs_intent_which_may_form_later(entries: dict[str, Entry]) -> None:
    e = entries["legal-crimes-thresholds"]
    assert "一开始就想把钱骗走" not in text(e)
    assert "集资到一半才有" in text(e) and "光是到期还不上钱，不等于集资诈骗" in text(e)
    assert "解释》第七条" in bases(e)


# ---- legal bases that were missing -------------------------------------------------------------------------

@pytest.mark.parametrize(("eid", "basis"), [
    ("campus-loan-traps", "《关于进一步规范大学生互联网消费贷款监督管理工作的通知》"),
    ("private-fund-public-sale", "《私募投资基金监督管理条例》"),
    ("private-fund-split-shares", "《私募投资基金监督管理暂行办法》第十二条"),
    ("verify-private-fund-registry", "《私募投资基金监督管理条例》"),
    ("stock-original-shares", "《证券法》第九条"),
    ("stock-crowdfunding-options", "《证券法》第九条"),
])
def test_missing_legal_bases_are_cited(entries: dict[str, Entry], eid: str, basis: str) -> None:
    assert basis in bases(entries[eid])


def test_small_loan_companies_may_not_lend_to_students(entries: dict[str, Entry]) -> None:
    assert "小额贷款公司不准向大学生放网上消费贷款" in text(entries["campus-loan-traps"])


def test_private_fund_minimum_is_one_million(entries: dict[str, Entry]) -> None:
    for eid in ("private-fund-split-shares", "verify-private-fund-registry"):
        assert "100万元" in text(entries[eid]), eid


# ---- plain words -------------------------------------------------------------------------------------------

ACTION = re.compile(r"别|不要|停|打 ?\{|举报|报案|报警|核实|问|保存|留证|不碰|不签|查|登记|商量|退回|要退"
                    r"|只走|只认|交给")


def test_every_summary_says_what_to_do(entries: dict[str, Entry]) -> None:
    """The first reply is the summary: it must end in something the reader can do now."""
    silent = [f"{e.id}: {e.summary}" for e in entries.values() if not ACTION.search(e.summary)]
    assert silent == []


@pytest.mark.parametrize(("eid", "glossed"), [
    ("p2p-supply-chain", "“应收账款”（别人欠的货款）"),
    ("p2p-supply-chain", "保理公司（"),
    ("p2p-supply-chain", "核心企业（"),
    ("exchange-spot-platform", "杠杆（"),
    ("exchange-spot-platform", "“入金”（"),
    ("private-fund-public-sale", "合格投资者（"),
    ("crypto-coin-mining", "“静态”（"),
    ("insurance-fake-agent-surrender", "“飞单”（"),
    ("soe-fake-central-enterprise", "城投公司（"),
    ("hot-solar-loan", "征信（银行记的信用记录）"),
    ("soe-fake-central-enterprise", "“有国家兜底”（"),
    ("exchange-fake-listing", "“交易中心挂牌”（"),
    ("exchange-asset-registration", "“登记备案”（"),
    ("ponzi-daily-return", "复投（"),
    ("safe-investing-deposit-insurance", "清算（"),
    ("wealth-livestream-stock-tips", "“打新必中”（"),
    ("debt-relief-business", "债权银行（"),
    ("crypto-coin-mining", "区块链（"),
    ("crypto-nft-metaverse", "元宇宙（"),
])
def test_jargon_has_a_plain_gloss(entries: dict[str, Entry], eid: str, glossed: str) -> None:
    assert glossed in text(entries[eid])


# ---- what the base lacked (issue 15 §3) --------------------------------------------------------------------

NEW_ENTRIES = {
    "wealth-livestream-stock-tips": ("wealth-intermediary", "快手上有个股神直播，说跟他买股票保证赚"),
    "collectibles-appraisal-auction-fee": ("collectibles", "家里有个老花瓶，有人说能拍卖，先要两千块"),
    "hot-sharing-franchise": ("hot-concept-projects", "共享充电宝投资靠谱吗"),
    "pension-consumer-travel": ("pension-elderly-care", "买东西返养老金"),
    "health-fake-kin-companion": ("health-product-sales", "有个年轻人认我妈当干妈"),
    "campus-task-rebate": ("campus-student", "网上兼职给好评返钱，让我先付款"),
    "crypto-usdt-brick-laundering": ("crypto-blockchain", "帮别人收款转虚拟币赚手续费"),
    "hot-solar-loan": ("hot-concept-projects", "免费装太阳能板，要签贷款"),
    "wealth-chengtou-dingrong": ("wealth-intermediary", "城投公司的理财能买吗"),
    "campus-private-school-tuition": ("campus-student", "学校让一次性交三年学费"),
    # (会计帮老板收钱 alone is as much the helpers' liability entry: the company's own fundraising must be named)
    "wealth-staff-shares-finance": ("wealth-intermediary", "会计帮老板收员工集资的钱，要负责吗"),
    "legal-prosecution-time-limit": ("legal-consequences", "十年前的集资案还能报吗"),
    "safe-investing-private-loan-rate": ("safe-investing", "月息三分的借条法院认吗"),
    "safe-investing-deposit-insurance": ("safe-investing", "银行倒闭存款能赔多少"),
}


@pytest.mark.parametrize("eid", sorted(NEW_ENTRIES))
def test_new_topics_are_covered_and_found(shared: Services, entries: dict[str, Entry], eid: str) -> None:
    category, question = NEW_ENTRIES[eid]
    e = entries[eid]
    assert e.category == category and len(e.questions) >= 8
    assert question not in e.questions  # asked in other words than the entry's own samples
    found = shared.search(question)
    assert found.matched and found.best is not None and found.best.entry.id == eid, found.hits[:3]


def test_deposit_insurance_limit(entries: dict[str, Entry]) -> None:
    """《存款保险条例》第五条: ¥500,000 per depositor per insured bank, principal and interest together."""
    e = entries["safe-investing-deposit-insurance"]
    assert "同一人在同一家银行，本息合计50万元以内全额赔" in e.summary
    assert "余额宝" in e.body["识别"] and "不在存款保险里" in e.body["识别"]
    assert "《存款保险条例》第五条" in bases(e)


def test_private_loan_rate_is_four_times_lpr_not_24_percent(entries: dict[str, Entry], rules: dict) -> None:
    e = entries["safe-investing-private-loan-rate"]
    assert "一年期LPR的4倍" in e.summary
    assert f"4倍就是一年{4 * rules['rates']['lpr_1y']:.0f}%" in text(e)
    assert "“年利率24%、36%”已经不用了" in text(e)
    assert "第二十五条" in bases(e) and "《民法典》第六百八十条" in bases(e)


def test_prosecution_time_limits(entries: dict[str, Entry]) -> None:
    """Criminal Law Art. 87: max < 5 y → 5 y; < 10 y → 10 y; ≥ 10 y → 15 y; life → 20 y. Art. 176 tops out at
    3 / 10+ years (5 / 15 y limits), Art. 192 at 7 years / life (10 / 20 y)."""
    e = entries["legal-prosecution-time-limit"]
    assert "非法吸收公众存款罪，一般是5年，数额巨大的15年" in text(e)
    assert "集资诈骗罪是10年，数额巨大的20年" in text(e)
    assert "《刑法》第八十七条" in bases(e) and "《刑法》第八十八条" in bases(e)


# ---- strong lures alone (issue 15 §4, rule values only) ----------------------------------------------------

@pytest.mark.parametrize("offer", ["消费返利", "村里搞合作社，让入股分红", "我妈天天去听课领鸡蛋"])
def test_a_strong_lure_alone_is_at_least_medium(shared: Services, offer: str) -> None:
    assert shared.risk.check(offer).level in ("medium", "high")


@pytest.mark.parametrize("text", ["商场消费返利，满100返10元代金券", "合作社年底按交售的粮食给社员返还盈余",
                                  "消费返利是什么"])
def test_ordinary_rebates_and_questions_stay_low(shared: Services, text: str) -> None:
    assert not shared.risk.check(text).risky
