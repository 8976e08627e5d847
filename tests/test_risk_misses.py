"""The risk check misses less (issue 15 §4): someone who has paid already, a price promised for something bought,
光伏贷 — in the style of tests/test_risk.py."""

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


@pytest.mark.parametrize("text", ["已经交了两万多", "钱已经转过去了"])
def test_paid_without_red_flags_still_says_what_to_do(checker: RiskChecker, text: str) -> None:
    report = checker.check(text)
    assert report.level == "low"
    assert "别再交钱" in report.advice and "记录" in report.advice
    assert REGION["hotline"] in report.advice and f"打 {REGION['police']} 报警" in report.advice
    assert 2 <= len(_sentences(report.advice)) <= 4


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
