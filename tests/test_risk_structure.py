"""The risk check reads the shape of an offer, not only its words (issue 15 §4): a return promised on money handed
over however it is worded, pay first to join, rewards from recruiting, principal said to be safe, a listing or a
price promised, money paid to a person instead of a company; two weak signals of that shape together reach
"medium", and ordinary pay or a relative's loan switches them off. Dialect (俺) reads as 我."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from knowledge.risk import RULES_FILE, RiskChecker
from tests.test_risk import REGION

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def checker() -> RiskChecker:
    return RiskChecker(REGION)


@pytest.mark.parametrize("text", [
    # a return promised on money handed over, however the return is worded
    "买AI算力卡 每天出收益",
    "交一万进来 每周都发钱",
    "只要交一笔钱进去 以后每个月都有进账",
    "每个月能领到一笔钱 交五千就行",
    "俺爹把钱给了一个老板 老板说每月给他打一千块利息",
    "投十万就算股东 赚了钱按月分给俺们",
    "入会交两千 每个礼拜发一百",
    "一个卖保险的说这个产品是他们公司自己发的 年年分钱",
    # a one-off return worked out as a rate: 退 and 变 name the total paid back
    "交一万块办卡 一年后退一万一",
    "说一万块钱进去 一年变一万五",
    # principal said to be safe or losses made good by whoever takes the money
    "他说本金绝对安全 就放他那半年",
    "投了钱亏了算公司的 你放心",
    "说到期一定还本 还多给",
    # pay first to join, with something back
    "就是先交钱才能入会 入了会有钱拿",
    "先充两千才能当会员 当了会员有钱分",
    # rewards that come from recruiting people who pay
    "不卖东西 就是交钱进来 然后介绍别人交钱 大家都能赚",
    "叫上亲戚朋友一起买 买的人多了奖金就多",
    # a listing or a price promised
    "那个平台说今年底就上市 现在进去的都是原始价",
    "说这个东西放三年肯定能卖一倍的价",
    "买他们的红酒 放他们仓库 到时候他们加价卖掉",
    # an unlicensed seller of financial products
    "说是新三板的股票 不用开户 直接把钱给他就给俺登记股份",
    "把钱直接转给业务员个人卡 说公司账户在升级",
    "那公司也没营业执照 就一个办公室 收了好多老人的钱",
    "字画能拆成份额买 一份一千 平台说涨了随时卖",
    # a private fund sold in public or split below its minimum; registration claimed as legality
    "网上有个博主卖私募基金的份额，一万就能买",
    "私募要一百万起，他说几个人凑钱合买就行",
    "他们说在协会备案过，所以产品都合法，年底分红",
    # levels bought, returns rising with the level; an income shared out on a schedule; a project share
    "先买个套餐升级，等级越高每天收益越多",
    "充电桩众筹，每月的收益都分给投资人",
    "投一个无人机项目，拿运营收益分红",
    "果园认领，一年另外还给分红",
    # recruiting relatives into a listing promised
    "经理让我们把亲戚都叫来入股，说明年就上市",
    # a yearly figure for a product pitched at the door
    "业务员上门说这个产品稳稳的 一年百分之九",
    # a scheme holding itself up against social insurance
    "给老年人办高息的养老保险代办 交三万 以后月月领得比社保多",
    # a total promised back after an event, not a period; more back than the price of goods bought
    "投两万，项目回款后能拿回三万",
    "出十万，等公司上市能换成一百万",
    "买他们的黄金首饰，买五千返六千",
    # an income right sold to residents; a resale profit promised; units of a project with dividends
    "有人卖光伏电站的收益权，一万起",
    "他说这批货拿下来转手就赚",
    "酒店项目卖份额，两万一份，每年分红",
    # an income said to be guaranteed; a seller's price now and a price promised
    "投三万开网店，公司代运营，每月保证收入五千",
    "这个藏品现在值十万，一年后能卖一百万",
    # money handed over with more promised back; income without work; early payers said to be rich; a top-up
    # demanded to go on with paid tasks; a seller's share of what the people below sell
    "他让我把钱放他那，到时候多给我一些",
    "那个人说只要出钱，什么都不用干，年底等着分钱就行",
    "早进去的人都发财了，他让我也赶紧投",
    "做任务就能赚钱，前几单返了钱，后面要我充值才能继续",
    "先囤货两万，成为总代理，下面的人卖货都有我的提成",
    # a minimum figure guaranteed; money paid out by the share on a schedule
    "有个公司招股东，十万一个名额，年底按名额分利润，保证不低于两万",
    "入伙之后，每月按股领钱，一股五千，每月三百",
])
def test_the_shape_of_an_offer_is_risky_however_it_is_worded(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.risky, report


@pytest.mark.parametrize("text", [
    "表哥借俺五万块周转 借条上写年利率百分之六 一年还",       # a relative's loan under 4 × LPR, 俺 as 我
    "俺家自己花钱装了光伏板 电卖给国家电网 每个月按电表结电费 没人跟俺保证收益",
    "俺侄子加盟了个奶茶店 交了加盟费 总部说了不保证赚钱 生意靠自己",
    "加盟费交了 赚不赚看自己经营",
    "健身房交一千块才能入会 可以用一年",
    "公司每月按时发工资到俺个人卡上",
    "姑姑跟俺借了两万块 写了借条 一年后还 给百分之四的利息",
    "朋友开饭店找俺入股 说赚了一起分 亏了一起担",
    "俺在保险公司柜台买了个分红险 合同写着分红不确定",
    "大家都能领的种粮补贴 每年打到一卡通",
    "我去银行买了大额存单 三年期 到期一次还本付息",
    "余额宝里放了几千块零钱，每天收益几毛钱",             # 几毛 is tenths of a yuan: about 3.6 % a year
    "开了家便利店，签了特许经营合同，总部在商务部备案过，没说保证赚钱",
    "买车的时候4S店说分期免息",                            # a loan's cost, not a return
    "房东让俺把房租转到他个人卡上",
    "券商的客户经理说手机上就能开户 不用去营业部",
    "我介绍朋友来我们公司上班 公司给了五百块内推奖",
    "俺们几个合伙开了个饭馆 赚了钱按月分给大家 亏了一起担",
    "表弟在证券公司上班 说私募只卖给合格投资者 一百万起",
    "儿媳妇在网上开了个店，一个月能赚几千",              # a return word and a promotion word: no offer shape
    "我在网上买了一台空调，商家给了三百块的安装补贴",
    # fees earned, not paid; dividends that follow the profit; a return below what was paid; a warning
    "我是村里的快递代理点，按件拿代理费",
    "合作社的社员按入股比例分红，赚得多就多分，没有保底",
    "投了两万，出事后只拿回一万",
    "存了一万，到期拿回一万零二百",
    "超市买一千返一百的购物券",
    "听说有人卖原始股骗人，大家要小心",
    "退休了什么都不用干，等着领退休金",
    "我把钱放我妈那里保管",
    "孩子把工资交给我存着",
    "厂里说工资保证不低于最低工资标准",
    "这个班保证至少考过一门",
    "我收了一批旧家具，转手就赚了两千",
    "我爸收玉米再卖给粮站，转手赚个差价",
    "村里的合作社每月按股领钱，账目都公示了，村集体的",
])
def test_safe_look_alikes_of_the_shapes_stay_low(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert not report.risky, report


def test_two_weak_signals_of_an_offer_add_up(checker: RiskChecker) -> None:
    alone = checker.check("先交钱才能入会")
    assert alone.level == "low" and alone.signals, alone
    together = checker.check("先交钱才能入会，入了会有钱拿")
    assert together.level == "medium", together
    features = {s.feature for s in together.signals}
    assert {"先交费", "利诱性"} <= features, together.signals


def test_weak_signals_do_not_add_up_next_to_ordinary_pay(checker: RiskChecker) -> None:
    assert not checker.check("单位先交钱才能入会，入了会每月工资有钱拿").risky


def test_dialect_pronoun_keeps_the_writers_words_as_evidence(checker: RiskChecker) -> None:
    report = checker.check("投十万就算股东 赚了钱按月分给俺们")
    assert any("俺们" in s.evidence for s in report.signals), report.signals


def test_combine_names_known_rules(tmp_path: Path) -> None:
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    data["combine"]["core"] = ["no-such-rule"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="combine"):
        RiskChecker(REGION, path)


@pytest.mark.parametrize("name", ["risk_w1.jsonl", "risk_w2.jsonl", "risk_w3.jsonl"])
def test_independent_writers_sets_meet_the_targets(name: str) -> None:
    """Sets of 200 offers written by people who never saw the rules (issue 15 §4 targets: recall >= 97,
    specificity >= 95). risk_w1 was used for tuning; risk_w2 was scored once (recall 90.9, specificity 97.8), then
    tuned on; risk_w3 (96.4 / 97.8 before) was tuned on: all are regression sets now."""
    from bot.evaluation import KeywordBaseline, read_jsonl, risk_checker_is_risky, score_risk

    cases = read_jsonl(DATA / name)
    assert len(cases) == 200
    ours = score_risk(cases, risk_checker_is_risky(RiskChecker(REGION))).figures()
    base = score_risk(cases, KeywordBaseline().is_risky).figures()
    assert ours["recall"] >= 97 and ours["specificity"] >= 95, ours
    assert ours["recall"] > base["recall"] and ours["specificity"] >= base["specificity"]


def test_the_fourth_writers_set_keeps_its_honest_figure() -> None:
    """risk_w4 (200 offers by another writer who never saw the rules) was scored once, after tuning on risk_w3, and
    never tuned on: recall 85.5, specificity 95.6, short of the recall target. It is a regression set at that
    figure until someone tunes on it."""
    from bot.evaluation import read_jsonl, risk_checker_is_risky, score_risk

    cases = read_jsonl(DATA / "risk_w4.jsonl")
    assert len(cases) == 200
    ours = score_risk(cases, risk_checker_is_risky(RiskChecker(REGION))).figures()
    assert ours["recall"] >= 85.5 and ours["specificity"] >= 95.6, ours
