"""Risk check: does an offer a resident describes show the red flags of illegal fundraising (非法集资)?

The checker is rule based and explainable. The rules (word patterns, feature labels, weights, advice texts) live in
`risk_rules.yaml` beside this file; this module only holds the mechanics:

1. the input is normalized (`knowledge.text.normalize`) and read through a "view" in which a space between words
   acts as a comma and common misspellings are corrected; the view maps back to the normalized input, so evidence
   is always the input's own words;
2. every rule's regex is run over the view; a match may be cancelled by a negation ("不保本"), need a context
   ("押金" counts only where money is invested) or be downgraded next to safe products (国债, 定期, 存单);
3. figures are parsed (百分之十二, 月息两分, 一成五的利息, 每天三厘, 投一千每天返十块, 每天涨百分之一 for something
   sold or kept for you …) and a promised return above the threshold a year (default 6 %) becomes a 利诱性 signal;
   paying a small fee to receive a huge sum (交一千能领一百万) is a 先交费 signal;
4. texts that are no offer drop their signals: lessons, warnings and news about scams (unless the writer is being
   drawn in), refunds after a case, general questions ("虚拟货币交易合法吗"); weak signals next to licensed
   institutions are dropped;
5. the level follows from the features found, the category from keywords, the advice from the strongest findings.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowledge import yamlfile

from .text import is_meaningful, normalize

RULES_FILE = Path(__file__).resolve().with_name("risk_rules.yaml")

LURE = "利诱性"
FEE = "先交费"
STRONG = 2
MEDIUM_SCORE = 3

# A number as residents write it: Arabic (1,000 / 12.5 / 1w / 5k) or Chinese (一千二 / 两点几 / 十几万).
# Atomic and bounded, so a long run of digits cannot make matching slow.
NUM = (r"(?>(?:\d{1,3}(?:,\d{3}){1,4}|\d{1,12}(?:\.\d{1,6})?|[零〇一二两三四五六七八九十几])"
       r"(?:\d|[零〇一二两三四五六七八九十百千万亿几]|点(?=[\d零〇一二两三四五六七八九几多])|点?多|[kw](?![a-z])){0,10})")
_SENTENCE_END = re.compile(r"[。!?;\n]")
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9, "几": 5, "多": 5}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "k": 1000}
_CN_BIG = {"万": 10_000, "w": 10_000, "亿": 100_000_000}
# return verbs naming the total paid back ("十天拿回一千二"), and those that may name either the total or the gain
_TOTAL_VERBS = frozenset(("连本带利拿回", "连本带利", "拿回", "收回", "领回", "取回", "回来", "变成", "一共", "还",
                          "退回", "退还", "退给", "退", "变"))
_EITHER_VERBS = frozenset(("返还", "返", "给", "拿", "领", "得", "拿到"))
# Words of the amount-based return grammar ("投一千 … 每天返十块").
_STAKE_VERBS = "投资|投入|投了|投|存入|存了|存|交了|交|入股|出资|借给[他她]?|放|买了|买|充值|充了|充|认购|拿出|花了"
_RETURN_VERBS = ("连本带利拿回|连本带利|拿回|返还|收回|领回|取回|回来|变成|一共|拿到|退回|退还|退给|退|变"
                 "|返息|返利|返|还|给|发|分红|分润|分|利息|收益|赚|挣|拿|领|得|补贴|回报|能有|有")
# "每天能有一百多的收益": 有 names a return only when a return word follows the figure
_HAVE_VERBS = frozenset(("有", "能有"))
_HAVE_RETURN = re.compile(r"(?:多|来)?(?:块|元)?钱?的?(?:收益|利息|回报|分红|进账|收入|利润|返利)")
_PRONOUNS = "我|你|您|咱|他|她|大家|我们|你们|他们|她们"
_HEDGES = "有|能有|就有|能到|能达到|达到|高达|达|可达|可以到|大概|大约|差不多|约|至少|都有|不低于|不少于|最少|起码"
_NUM_TOKEN = re.compile(r"\d+(?:\.\d+)?|[零〇一二两三四五六七八九几十百千万亿kw]")
_MONEY_AFTER = re.compile(r"元|块|万|千|百")
_BIG_UNIT = re.compile(r"[百千万kw]")
# a sum received as goods, coupons or points is no return in money ("交五百块能领两千块的购物卡")
_GOODS_AFTER = re.compile(r"[^,。!?;]{0,4}?(?:卡|券|礼|积分|货|东西|商品|赠品|米|油)")
# after an amount, these make it a count or a date, not money ("一万年底" is still money: 年底, 年后)
_NOT_MONEY_AFTER = re.compile(r"(?:个|年(?!底|后|终|末)|天|日|月|周|岁|人|头|只|亩|斤|号|点|分|层|楼|次|期"
                              r"|股|份|棵|台|箱|倍|成|%)")

# Question forms ("什么是非法集资", "培训贷是什么", "消费全返是真的吗").
_QUESTION = re.compile(
    r"^(?:请问|问一下|问下|想问|想问问|咨询一下|我想知道)?(?:什么是|啥是|何为|怎么|如何|怎样|为什么|为啥|哪些|哪里|在哪|去哪|能不能|可不可以|是不是)"
    r"|(?:是什么|是啥|什么意思|啥意思|怎么回事|有哪些|有什么|怎么办|怎么举报|如何举报|怎么查|如何识别|怎么识别|怎么区分|是真的吗|真的吗"
    r"|靠谱吗|可信吗|合法吗|违法吗|是骗局吗|犯法吗|能信吗|能买吗|能投吗|安全吗|[吗么呢嘛啥]|\?"
    r"|是不是(?:骗局|骗人的?|骗子|真的|非法集资|违法的?|合法的?|犯法的?|传销|正规的?|靠谱的?)|算不算[^,]{0,8}"
    r"|注意(?:点|些)?(?:啥|什么)|[咋怎]么?办|咋整|怎么防|怎么避免|能信不|靠谱不|合法不|违法不|犯法不|行不行)$")
# a money amount or a figure: a question naming one is about a concrete offer
_CONCRETE = re.compile(rf"{NUM}(?:元|块|万|千|百|%|个点|倍)|百分之|千分之|万分之")
_CLAUSE = re.compile(r"[^,.。!?;:]+\??")


@dataclass(frozen=True)
class Signal:
    feature: str    # a feature label: 非法性 公开性 利诱性 社会性 先交费 要求保密 承诺回购 拉人头奖励 冒用政府背景
    evidence: str   # the exact words of the (normalized) input that triggered it


@dataclass(frozen=True)
class RiskReport:
    text: str
    risky: bool
    level: str                  # "high" | "medium" | "low"   (risky is True exactly for high and medium)
    signals: tuple[Signal, ...]
    advice: str                 # plain simplified Chinese, short sentences, ends with what to do next
    category: str | None        # the taxonomy slug that best explains the offer (None if nothing fits)


@dataclass(frozen=True)
class _Rule:
    id: str
    feature: str
    weight: int
    regex: re.Pattern[str]
    needs: tuple[re.Pattern[str], ...]
    unless: re.Pattern[str] | None
    unless_contexts: tuple[str, ...]    # names of contexts: the rule is skipped where any of them holds
    negatable: bool
    safe_downgrade: bool
    category: str | None
    tip: str | None


@dataclass(frozen=True)
class _Hit:
    feature: str
    weight: int
    start: int          # offsets in the view
    end: int
    tip: str | None
    category: str | None
    rate: float | None = None   # promised return, percent a year
    rule: str | None = None     # the rule's id (None for figures worked out from rates)


def _alternation(patterns: Any) -> str:
    if isinstance(patterns, str):
        return patterns
    return "|".join(f"(?:{p})" for p in patterns)


def parse_number(text: str) -> float | None:
    """Value of a number written in Arabic or Chinese digits, or a mix ("1万2" = 12000, "两点几" = 2.5)."""
    text = text.replace(",", "")
    if "点" in text:
        whole, _, rest = text.partition("点")
        base = _parse_integer(whole) if whole else 0.0
        if base is None:
            return None
        digits = ""
        for i, ch in enumerate(rest):
            if ch.isdigit():
                digits += ch
            elif ch in _CN_DIGITS:
                digits += str(_CN_DIGITS[ch])
            else:
                rest = rest[i:]
                break
        else:
            rest = ""
        value = base + (float("0." + digits) if digits else 0.0)
        for ch in rest:
            value *= _CN_BIG.get(ch, _CN_UNITS.get(ch, 1))
        return value
    return _parse_integer(text)


def _parse_integer(text: str) -> float | None:
    tokens = _NUM_TOKEN.findall(text)
    if not tokens:
        return None
    total = section = number = 0.0
    last_unit = 0.0
    after_unit = False
    for tok in tokens:
        if tok[0].isdigit():
            number, after_unit = float(tok), after_unit and len(tok) == 1
        elif tok in _CN_DIGITS:
            number = _CN_DIGITS[tok]
        elif tok in _CN_UNITS:
            section += (number or 1) * _CN_UNITS[tok]
            number, last_unit, after_unit = 0.0, _CN_UNITS[tok], True
            continue
        else:  # 万, 亿
            total += (section + number) * _CN_BIG[tok]
            section = number = 0.0
            last_unit, after_unit = _CN_BIG[tok], True
            continue
        if not after_unit:
            continue
        # a single digit right after a unit: "一千二" = 1200, "两万五" = 25000, "十二" = 12
        section += number * max(last_unit / 10, 1)
        number, after_unit = 0.0, False
    return total + section + number


class RiskChecker:
    """Rule-based red-flag check of an offer; construct once, call `check` per message."""

    def __init__(self, region: Mapping[str, str], rules_path: Path | None = None) -> None:
        data = yamlfile.load(rules_path or RULES_FILE)
        self.features: tuple[str, ...] = tuple(data["features"])
        self._region = {**data.get("region_defaults", {}), **{k: str(v) for k, v in region.items()
                                                               if isinstance(v, (str, int, float))}}
        typos: dict[str, str] = dict(data.get("typos") or {})
        for wrong, right in typos.items():
            if len(wrong) != len(right):
                raise ValueError(f"risk rules: typo {wrong!r} -> {right!r} must keep the length")
        self._typos = typos
        self._typo_re = re.compile("|".join(sorted(map(re.escape, typos), key=len, reverse=True))) if typos else None
        ctx = {name: re.compile(p) for name, p in data["contexts"].items()}
        self._ctx = ctx
        self._neg_before = re.compile(data["negation_before"])
        self._neg_after = re.compile(data["negation_after"])
        self._rules = [self._compile_rule(r, ctx) for r in data["rules"]]
        rates = data["rates"]
        self._rate_threshold = float(rates["threshold"])
        self._kin_threshold = float(rates["kin_threshold"])
        self._rate_weight = int(rates["weight"])
        self._rate_tip: str = rates["tip"]
        self._compile_rates(rates)
        self._compile_windfall(data["windfall"])
        self._feature_order = {f: i for i, f in enumerate(data["feature_order"])}
        self._categories = [(slug, re.compile(p)) for slug, p in data["categories"].items()]
        self._category_order = {slug: i for i, (slug, _) in enumerate(self._categories)}
        self._category_fallback: str | None = data.get("category_fallback")
        self._category_safe: str | None = data.get("category_safe")
        self._advice: dict[str, Any] = data["advice"]
        combine = data.get("combine") or {}
        unknown = set(combine.get("core") or ()) - {r.id for r in self._rules}
        if unknown:
            raise ValueError(f"risk rules: combine: unknown rules {sorted(unknown)}")
        self._combine_core = frozenset(combine.get("core") or ())
        self._combine_off = tuple(ctx[self._known_context(ctx, "combine", name)]
                                  for name in combine.get("off_contexts") or ())

    def _compile_rule(self, raw: Mapping[str, Any], ctx: Mapping[str, re.Pattern[str]]) -> _Rule:
        if raw["feature"] not in self.features:
            raise ValueError(f"risk rules: {raw['id']}: unknown feature {raw['feature']!r}")
        needs = raw.get("needs") or ()
        unless_ctx = raw.get("unless_contexts") or ()
        return _Rule(
            id=raw["id"], feature=raw["feature"], weight=int(raw.get("weight", 1)),
            regex=re.compile(_alternation(raw["patterns"])),
            needs=tuple(ctx[name] for name in ([needs] if isinstance(needs, str) else needs)),
            unless=re.compile(raw["unless"]) if raw.get("unless") else None,
            unless_contexts=tuple(self._known_context(ctx, raw["id"], name)
                                  for name in ([unless_ctx] if isinstance(unless_ctx, str) else unless_ctx)),
            negatable=bool(raw.get("negatable", False)), safe_downgrade=bool(raw.get("safe_downgrade", False)),
            category=raw.get("category"), tip=raw.get("tip"))

    @staticmethod
    def _known_context(ctx: Mapping[str, re.Pattern[str]], rule_id: str, name: str) -> str:
        if name not in ctx:
            raise ValueError(f"risk rules: {rule_id}: unknown context {name!r}")
        return name

    def _compile_rates(self, rates: Mapping[str, Any]) -> None:
        self._return_words = re.compile(rates["return_words"])
        self._rate_blockers = re.compile(rates["blockers"])
        self._payouts = re.compile(rates["payouts"])
        words: list[tuple[str, float]] = []
        for group in rates["periods"]:
            words += [(w, float(group["per_year"])) for w in group["words"].split("|")]
        words.sort(key=lambda wp: len(wp[0]), reverse=True)
        self._period_words = dict(words)
        alternatives = "|".join(re.escape(w) for w, _ in words)
        period = (r"(?:(?P<pn>[\d一二两三四五六七八九十几半]{1,3})个?"
                  r"(?P<pu>天|日|周|星期|礼拜|季度|个月|月|年)(?P<pq>期)?"
                  # "这个月收益率…" names a month, not a period of the return
                  rf"|(?<![这本上下]个)(?<![这本上下])(?P<pw>{alternatives}))")
        self._period = re.compile(period)
        self._percents: list[tuple[re.Pattern[str], float]] = [
            (re.compile(rf"百分之?(?P<n>{NUM})"), 1.0),
            (re.compile(rf"(?P<n>{NUM})%"), 1.0),
            (re.compile(rf"千分之(?P<n>{NUM})"), 0.1),
            (re.compile(rf"万分之(?P<n>{NUM})"), 0.01),
            (re.compile(rf"(?P<n>{NUM})个(?:百分)?点"), 1.0),
            # 一成五 = 15 %, 两成半 = 25 %
            (re.compile(r"(?P<n>[一二两三四五六七八九\d]{1,2})成(?![本功员立年人交熟绩都为了品果长])"
                        r"(?P<n2>[一二三四五六七八九半](?![\d十百千万亿成个年]))?"), 10.0),
        ]
        # folk interest: 月息两分 = 2 % a month, 三分利, 一分五的利息, 年息一分 = 10 % a year
        self._fen = re.compile(r"(?P<pre>月息|月利|年息|年利|日息|利息|息)?"
                               r"(?P<n>[\d一二两三四五六七八九几]{1,4}(?:\.\d{1,4})?)"
                               r"(?P<u>分|厘)(?!钟|之|期|数|钱)(?P<n2>[一二三四五六七八九半\d](?![\d十百千万]))?"
                               r"(?P<post>的?(?:利息|利|息))?")
        # a figure right after a rate word: 利率两点几, 年化12, 年息10
        self._implicit = re.compile(r"(?:利率|年化|月化|日化|收益率|回报率|年息|月息|日息)(?:收益|利率)?"
                                    rf"(?:是|在|为|才|只有|{_HEDGES})?(?P<n>{NUM})(?![\d%个分厘成倍])")
        # a figure right after a period ("一个月两分", "每天三厘", "一天千分之三"): a rate where money is involved
        self._period_lead = re.compile(rf"(?:{period})(?:都|就|能|能有|有|是|给|返|付|按|可以|可以拿|能拿|拿)?$")
        self._rise = re.compile(rates["rise_words"])
        self._rise_past = re.compile(rates["rise_past"])
        # a price paid, then the price promised: "100 元买的，说能涨到 1000", "花五万买的字画，三年后能卖到五十万"
        self._rise_to = re.compile(
            rf"(?:(?:花|用|出)了?(?P<a>{NUM})(?:元|块钱|块)?(?:钱)?[^,。!?;]{{0,8}}?(?:买|入手|拿|收)"
            rf"|(?P<a2>{NUM})(?:元|块钱|块)?(?:钱)?(?:买的|买了|买进|买入|入手|拿的|进的|收的)"
            # a seller's price now, of something kept or collected: "这个茶现在八百一饼，放三年能卖三千"
            rf"|(?:现在|如今|目前)(?:是|卖|才|只要|只卖|值|只值)?(?P<a3>{NUM})(?:元|块钱|块)?(?:钱)?(?:一|每)?"
            r"[饼斤克个件套张瓶盒箱片份枚颗株棵幅块]?)"
            rf"(?P<gap>[^。!?;]{{0,24}}?)(?:{rates['rise_to']})(?:{_HEDGES})?(?P<b>{NUM})")
        self._rise_to_tip: str = rates["rise_to_tip"]
        self._decimal_rate = re.compile(r"(?P<n>[一二两三四五六七八九\d]点[\d一二两三四五六七八九几多]{1,4})"
                                        r"的?(?:利息|利率|收益|年化)")
        self._after_rate = re.compile(r"的?(?:年化|利息|收益|回报|分红|利润|红利|返利|返点|补贴|租金|利|息)"
                                      r"|(?:给|返)(?:你|我|您|大家)?(?:返点|返利|利息|分红)")
        # amount based: 投一千 … 每天返十块 / 十天拿回一千二 / 每年保底分红一万
        self._principal = re.compile(rf"(?:{_STAKE_VERBS})了?(?P<n>{NUM})")
        self._any_amount = re.compile(NUM)
        # a total promised back after an event rather than a period: "投一万，上映后至少拿回一万五",
        # "交五千，回来返六千", "出十万，等公司上市能换成一百万" (the whole gain; periods are read above)
        self._stake_back = re.compile(
            rf"(?:投资|投入|投了|投|存入|存了|存|交了|交|入股|出资|出了|出|认购)(?P<a>{NUM})(?:元|块钱|块)?"
            r"(?P<gap>[^。!?;]{1,16}?)(?<![只才])(?:至少|最少|起码|保证|就能|就可以|就会|能|可以|会|就|还|再)?"
            rf"(?:拿回|收回|领回|变成|换成|返还|返|退回|还你|还给你)(?:{_HEDGES})?(?P<b>{NUM})")
        self._return = re.compile(
            rf"(?P<p>{period})(?:后|以后|之后|到期后?)?[^,。!?;]{{0,4}}?(?P<v>{_RETURN_VERBS})"
            rf"(?:{_PRONOUNS}|了){{0,3}}(?:发|打|转|付|返)?的?"
            rf"(?:利息|分红|收益|回报|红利|现金|补贴|电费|租金|利润|收入)?(?:{_HEDGES})?(?P<n>{NUM})"
            # ... or the verb first: "给你每个月两万", "返你每年三千"
            rf"|(?P<v2>返|给|分红|分|赚|挣|付)(?:{_PRONOUNS}){{0,3}}(?P<p2>{period.replace('?P<', '?P<x')})"
            rf"(?:都|能|可以|{_HEDGES})?(?P<n2>{NUM})"
            # ... or a one-off return on an investment: "投一万返两千"
            # ("交一千能领三千", "捐一千返两千"), or a bare sum with 返 ("一万返八百"; not "满一千返一百")
            rf"|(?:(?:投资|投入|投|存入|存|交了|交|捐了|捐)(?P<n3>{NUM})(?:元|块钱|块)?,?(?:就能|就可以|就|能|可以|便能)?"
            rf"(?P<v3>返|拿回|变成|赚|领回|领|拿到|收回)"
            rf"|(?<![满费买物额了\d零〇一二两三四五六七八九十百千万])(?P<n5>{NUM})(?:元|块钱|块)?(?P<v5>返)"
            # ... or more back than the price of goods bought ("买一万返一万二"; "买一千返一百" is a discount)
            rf"|(?:买了?|消费了?|花了?)(?P<n6>{NUM})(?:元|块钱|块)?(?:的?东西|的?货)?,?(?:就能|就可以|就|能|可以|便能)?返"
            rf")(?P<n4>{NUM})")

    def _compile_windfall(self, raw: Mapping[str, Any]) -> None:
        if raw["feature"] not in self.features:
            raise ValueError(f"risk rules: windfall: unknown feature {raw['feature']!r}")
        self._windfall_feature: str = raw["feature"]
        self._windfall_weight = int(raw["weight"])
        self._windfall_ratio = float(raw["min_ratio"])
        self._windfall_sum = float(raw["min_sum"])
        self._windfall_tip: str = raw["tip"]
        self._windfall_unless = re.compile(raw["unless"])
        # "交一千能领一百万", "交三百元手续费就可以拿到五十万", "交五百块能分到国家的一千万"
        self._windfall = re.compile(
            rf"(?:交|缴|付|转|出|花|充)了?(?P<a>{NUM})(?:元|块钱|块|钱)?(?:的?[\u4e00-\u9fff]{{0,3}}费)?,?"
            # "交一万块钱给一个公司，十年后能领二十万": a short gap, a comma allowed
            r"[^。!?;]{0,12}?(?:就能|才能|便能|就可以|即可|可以|就会|能|会|就)[^,。!?;]{0,2}?"
            r"(?:领取|领到|领|拿到|拿|得到|获得|得|分到|分|提取|到账|收到|返)"
            rf"[^,。!?;\d零〇一二两三四五六七八九十几]{{0,6}}(?P<b>{NUM})")

    # ---- public API -------------------------------------------------------------------------------------

    def check(self, text: str) -> RiskReport:
        norm = normalize(text or "")
        if not is_meaningful(norm):
            return self._report(text, [], "", [], False)
        view, index = self._view(norm)
        safe = licensed = False
        # no reassurance where the text compares itself with banks, takes money out of a deposit or says the seller
        # is no licensed institution ("不是保险公司卖的")
        if not (self._scam_compare(view) or self._ctx["leave_safe"].search(view)
                or self._ctx["not_licensed"].search(view)):
            safe = self._ctx["safe_products"].search(view) is not None
            licensed = self._ctx["licensed"].search(view) is not None
        hits = self._not_offers(view, self._hits(view, safe, licensed))
        if safe or licensed:
            hits = [h for h in hits if h.weight >= STRONG]
        paid = self._ctx["paid"].search(view) is not None and not self._about_scams(view)
        loan = self._ctx["kin_lending"].search(view) is not None
        return self._report(text, hits, norm, index, safe or licensed, view, paid, loan)

    def offer_check(self, text: str) -> RiskReport | None:
        """The check of the text when it describes an offer someone was told about; None for a general question."""
        norm = normalize(text or "")
        if not is_meaningful(norm):
            return None
        view, _ = self._view(norm)
        ctx = self._ctx
        told = self._told(view)
        if told and ctx["money"].search(view) and not (ctx["post_case"].search(view) or self._about_scams(view)):
            return self.check(text)
        clauses = [c for c in _CLAUSE.findall(view) if c.strip()]
        if all(_QUESTION.search(c) for c in clauses):
            return None
        report = self.check(text)
        return report if report.signals else None

    # ---- matching ---------------------------------------------------------------------------------------

    def _view(self, norm: str) -> tuple[str, list[int]]:
        """The text as matched, and a map from view offsets to normalized offsets.

        A space between Chinese words is read as a comma ("每股一万 年分红三千"); a space next to a digit or Latin
        letter ("年化 12%") or between single spaced-out characters ("保 本 高 息") is dropped. Misspellings are
        corrected with same-length replacements, so offsets stay exact."""
        chars: list[str] = []
        index: list[int] = []
        for i, ch in enumerate(norm):
            if ch == " ":
                left, right = norm[i - 1], norm[i + 1]      # normalize() strips and collapses spaces
                if not (_is_han(left) and _is_han(right)) or (
                        (i < 2 or norm[i - 2] == " ") and (i + 2 >= len(norm) or norm[i + 2] == " ")):
                    continue
                ch = ","
            chars.append(ch)
            index.append(i)
        view = "".join(chars)
        if self._typo_re is not None:
            view = self._typo_re.sub(lambda m: self._typos[m.group(0)], view)
        return view, index

    def _scam_compare(self, view: str) -> bool:
        """"比存银行划算": the text holds itself up against banks, so bank words in it are no reassurance."""
        if self._ctx["compare_strong"].search(view):
            return True
        return bool(self._ctx["compare"].search(view)) and not self._ctx["sound"].search(view)

    def _not_offers(self, view: str, hits: list[_Hit]) -> list[_Hit]:
        """Drop the signals of a text that talks ABOUT scams or asks a general question instead of describing an offer.

        - after a case, refunds (清退, 按比例退) are no offer: only a demand for a fee still counts;
        - lessons and warnings ("防范", "骗局") drop their signals unless someone is telling of an offer;
        - warnings and news ("冒充", "破获", "请大家") drop them even after "有人" / "听说", unless the writer or their
          family is being drawn in ("让我", "我妈交了");
        - a general question ("虚拟货币交易合法吗") drops them unless it names a figure or a particular offer."""
        if not hits:
            return hits
        ctx = self._ctx
        if ctx["post_case"].search(view):
            hits = [h for h in hits if h.feature == FEE and h.weight >= STRONG]
            if not hits:
                return hits
        if self._about_scams(view) or self._general_question(view, hits):
            return []
        return hits

    def _about_scams(self, view: str) -> bool:
        """A lesson, warning or news item about scams, not an offer made to the writer (or their family)."""
        ctx = self._ctx
        if ctx["engaged"].search(view):
            return False
        pitch = ctx["pitch"].search(view) is not None
        if ctx["about"].search(view) and not (pitch or ctx["narrative"].search(view)):
            return True
        return ctx["warning"].search(view) is not None or (not pitch and ctx["news"].search(view) is not None)

    def _told(self, view: str) -> bool:
        """Someone tells of an offer ("有人说", "他说", "我妈交了"); mere hearsay ("听说") is not enough."""
        ctx = self._ctx
        return any(not ctx["hearsay"].match(m.group(0)) for m in ctx["narrative"].finditer(view))

    def _general_question(self, view: str, hits: list[_Hit]) -> bool:
        """A question about a kind of offer, with no particular offer told of: every signal lies in a question clause,
        and nothing names a figure, a narrator, a seller or the writer's own money."""
        if any(h.rate is not None for h in hits) or _CONCRETE.search(view):
            return False
        ctx = self._ctx
        if ctx["engaged"].search(view) or ctx["deictic"].search(view) or self._told(view):
            return False
        spans = [(m.start(), m.end()) for m in _CLAUSE.finditer(view) if m.group(0).strip()]
        if not spans or not _QUESTION.search(view[spans[-1][0]:spans[-1][1]]):
            return False
        asked = [(s, e) for s, e in spans if _QUESTION.search(view[s:e]) or ctx["hearsay"].match(view[s:e].lstrip())]
        return all(any(s <= h.start and h.end <= e for s, e in asked) for h in hits)

    def _negated(self, view: str, start: int, end: int) -> bool:
        return (self._neg_before.search(view[max(0, start - 8):start]) is not None
                or self._neg_after.match(view, end) is not None)

    def _hits(self, view: str, safe: bool, licensed: bool = False) -> list[_Hit]:
        hits: list[_Hit] = []
        # safe products and licensed institutions as check() judged them: no reassurance where the text compares
        # itself with banks or takes money out of a deposit ("把存款放到一个公司里")
        judged = {"safe_products": safe, "licensed": licensed}

        def holds(name: str) -> bool:
            return judged[name] if name in judged else self._ctx[name].search(view) is not None

        for rule in self._rules:
            if rule.needs and not any(n.search(view) for n in rule.needs):
                continue
            if rule.unless is not None and rule.unless.search(view):
                continue
            if any(holds(name) for name in rule.unless_contexts):
                continue
            for m in rule.regex.finditer(view):
                if m.end() == m.start():
                    continue
                if rule.negatable and self._negated(view, m.start(), m.end()):
                    continue
                weight = 1 if safe and rule.safe_downgrade else rule.weight
                hits.append(_Hit(rule.feature, weight, m.start(), m.end(), rule.tip, rule.category, rule=rule.id))
        hits += self._rate_hits(view)
        hits += self._rise_to_hits(view)
        hits += self._windfall_hits(view)
        return hits

    def _rise_to_hits(self, view: str) -> list[_Hit]:
        """A price promised for something bought: the gain in percent (a year's, when a term is named)."""
        out = []
        for m in self._rise_to.finditer(view):
            paid, promised = parse_number(m.group("a") or m.group("a2") or m.group("a3")), parse_number(m.group("b"))
            if not paid or not promised or promised <= paid or paid < 1:
                continue
            if m.group("a3") and not self._ctx["asset"].search(view):
                continue
            if (_NOT_MONEY_AFTER.match(view, m.end()) or view.startswith("了", m.end())   # "涨到一千了": it did
                    or self._rise_past.search(m.group("gap")) or self._rate_blockers.search(m.group(0))):
                continue
            percent = (promised - paid) / paid * 100
            # a named term: "三年后", "两个月", or a year's word ("明年", "一年"); a lone 日/月 in the words is none
            term = next((t for t in self._period.finditer(m.group("gap"))
                         if t.group("pn") or self._period_words.get(t.group("pw")) == 1.0), None)
            if term is not None:
                percent *= self._per_year(term)
            if percent > self._rate_threshold:
                tip = self._rate_tip if term is not None else self._rise_to_tip  # "一年回报约…" only for a term
                out.append(_Hit(LURE, self._rate_weight, m.start(), m.end(), tip, None, percent))
        return out

    def _windfall_hits(self, view: str) -> list[_Hit]:
        """Pay a small fee to receive a huge sum ("国家解冻的资产，交一千能领一百万")."""
        if self._windfall_unless.search(view):
            return []
        out = []
        for m in self._windfall.finditer(view):
            fee, prize = parse_number(m.group("a")), parse_number(m.group("b"))
            if (fee and prize and prize >= self._windfall_sum and prize >= fee * self._windfall_ratio
                    and not _NOT_MONEY_AFTER.match(view, m.end())):
                out.append(_Hit(self._windfall_feature, self._windfall_weight, m.start(), m.end(),
                                self._windfall_tip, None))
        return out

    # ---- promised rates ---------------------------------------------------------------------------------

    def _per_year(self, m: re.Match[str]) -> float:
        if m.group("pw"):
            return self._period_words[m.group("pw")]
        n = 0.5 if m.group("pn") == "半" else (parse_number(m.group("pn")) or 1.0)
        unit = m.group("pu")
        if m.group("pq"):      # "三年期利率": rates are quoted per year whatever the term
            return 1.0
        base = {"天": 365.0, "日": 365.0, "周": 52.0, "星期": 52.0, "礼拜": 52.0, "季度": 4.0,
                "个月": 12.0, "月": 12.0, "年": 1.0}[unit]
        return base / max(n, 0.5)

    def _period_before(self, view: str, lo: int, hi: int) -> tuple[float, int] | None:
        last = None
        for m in self._period.finditer(view, lo, hi):
            last = m
        return (self._per_year(last), last.start()) if last else None

    def _rate_hits(self, view: str) -> list[_Hit]:
        found: list[tuple[int, int, float]] = []    # (start, end, percent a year)
        taken = bytearray(len(view) + 1)            # characters already read as part of a rate
        starts = [0] + [m.end() for m in _SENTENCE_END.finditer(view)]

        def sentence_start(pos: int) -> int:
            return starts[bisect_right(starts, pos) - 1]

        def overlaps(s: int, e: int) -> bool:
            return any(taken[s:e])

        def add(start: int, num_start: int, end: int, percent: float, default_per_year: float) -> None:
            lo = max(sentence_start(start), start - 10)
            if self._rate_blockers.search(view, lo, end + 6):
                return
            period = self._period_before(view, lo, num_start)
            if period is None:
                m = self._period.match(view, end, end + 5)
                per_year = self._per_year(m) if m else default_per_year
                first = start
            else:
                per_year, first = period[0], min(start, period[1])
            found.append((first, end, percent * per_year))
            taken[start:end] = b"\x01" * (end - start)

        money = self._ctx["money"].search(view) is not None
        asset = self._ctx["asset"].search(view) is not None

        def after_period(pos: int) -> bool:
            return money and self._period_lead.search(view, max(0, pos - 8), pos) is not None

        for m in self._fen.finditer(view):
            if not (m.group("pre") or m.group("post") or after_period(m.start())):
                continue
            value = parse_number(m.group("n"))
            if value is None or value > 20:
                continue
            value += _tenths(m.group("n2"))
            pre = m.group("pre") or ""
            lo = max(sentence_start(m.start()), m.start() - 10)
            period = self._period_before(view, lo, m.start("n"))
            annual = (pre.startswith("年") or (not pre.startswith(("月", "日")) and period is not None
                                              and period[0] == 1.0))
            percent = value * (10 if annual else 1) if m.group("u") == "分" else value * (1 if annual else 0.1)
            add(m.start(), m.start("n"), m.end(), percent, 12.0)
        for regex, factor in self._percents:
            for m in regex.finditer(view):
                if overlaps(m.start(), m.end()):
                    continue
                value = parse_number(m.group("n"))
                if value is None:
                    continue
                value += _tenths(m.groupdict().get("n2"))
                lo = max(sentence_start(m.start()), m.start() - 10)
                if not (self._return_words.search(view, lo, m.start()) or self._after_rate.match(view, m.end())
                        or after_period(m.start()) or (asset and self._promised_rise(view, lo, m.start()))):
                    continue
                add(m.start(), m.start(), m.end(), value * factor, 1.0)
        for regex in (self._implicit, self._decimal_rate):
            for m in regex.finditer(view):
                if overlaps(m.start("n"), m.end("n")):
                    continue
                value = parse_number(m.group("n"))
                if value is None or value >= 50:
                    continue
                add(m.start(), m.start("n"), m.end(), value, 1.0)
        if not self._payouts.search(view):
            for start, end, percent in self._amount_rates(view, sentence_start):
                if not overlaps(start, end):
                    found.append((start, end, percent))
        threshold = self._kin_threshold if self._ctx["kin_lending"].search(view) else self._rate_threshold
        return [_Hit(LURE, self._rate_weight, s, e, self._rate_tip, None, rate)
                for s, e, rate in found if rate > threshold]

    def _promised_rise(self, view: str, lo: int, hi: int) -> bool:
        """"每天涨百分之一": a price rise promised (not one that happened) just before a figure."""
        return self._rise.search(view, lo, hi) is not None and self._rise_past.search(view, lo, hi) is None

    def _amount_rates(self, view: str, sentence_start: Callable[[int], int]) -> list[tuple[int, int, float]]:
        out = []
        for ret in self._return.finditer(view):
            if ret.group("n3") or ret.group("n5") or ret.group("n6"):   # one-off: the stake is in the match
                bare, bought = ret.group("n5"), ret.group("n6")
                amount = parse_number(ret.group("n3") or bare or bought)
                received = parse_number(ret.group("n4"))
                if bare and not _BIG_UNIT.search(bare):
                    continue
                if bought and not (amount and received and received > amount):
                    continue
                if (amount and received and amount >= 100 and not _NOT_MONEY_AFTER.match(view, ret.end())
                        and not _GOODS_AFTER.match(view, ret.end())
                        and not self._rate_blockers.search(view, max(0, ret.start() - 6), ret.end())
                        and not self._windfall_unless.search(ret.group(0))):
                    gain = received - amount if received > amount and ret.group("v3") != "赚" else received
                    out.append((ret.start(), ret.end(), gain / amount * 100))
                continue
            received = parse_number(ret.group("n") or ret.group("n2"))
            if not received or _NOT_MONEY_AFTER.match(view, ret.end()):
                continue
            if view.startswith(("毛", "角"), ret.end()):     # "每天收益几毛钱": tenths of a yuan
                received /= 10
            if ret.group("v") in _HAVE_VERBS and not _HAVE_RETURN.match(view, ret.end()):
                continue
            principal = self._find_principal(view, sentence_start(ret.start()), ret.start())
            if principal is None:   # "一天收益两百 投五千就行": the stake named after the return
                end = _SENTENCE_END.search(view, ret.end())
                principal = self._find_principal(view, ret.end(), min(end.start() if end else len(view),
                                                                        ret.end() + 20), after=True)
            if principal is None:
                continue
            p_start, amount = principal
            p_start, p_end = min(p_start, ret.start()), max(p_start, ret.end())
            # "拿回一千二" for one thousand is the total paid back; "分红一万" is the gain itself
            verb = ret.group("v") or ret.group("v2")
            if verb in _TOTAL_VERBS or (verb in _EITHER_VERBS and received > amount):
                gain = received - amount
            else:
                gain = received
            if gain <= 0:
                continue
            per_year = self._per_year(self._period.match(ret.group("p") or ret.group("p2")))
            out.append((p_start, p_end, gain / amount * per_year * 100))
        for m in self._stake_back.finditer(view):
            amount, received = parse_number(m.group("a")), parse_number(m.group("b"))
            if (not amount or not received or amount < 100 or received <= amount or self._period.search(m.group("gap"))
                    or _NOT_MONEY_AFTER.match(view, m.end()) or _NOT_MONEY_AFTER.match(view, m.end("a"))
                    or _GOODS_AFTER.match(view, m.end())
                    or self._rate_blockers.search(view, max(0, m.start() - 6), m.end())):
                continue
            out.append((m.start(), m.end(), (received - amount) / amount * 100))
        return out

    def _find_principal(self, view: str, lo: int, hi: int, after: bool = False) -> tuple[int, float] | None:
        """The stake: the nearest "投/存/交 + amount" (else a bare money amount) before hi, or after lo."""
        if not after:
            lo = max(lo, hi - 40)
        best = None
        for m in self._principal.finditer(view, lo, hi):
            value = parse_number(m.group("n"))
            if value and value >= 100 and not _NOT_MONEY_AFTER.match(view, m.end()):
                best = (m.start(), value)
                if after:
                    return best
        if best:
            return best
        for m in self._any_amount.finditer(view, lo, hi):
            value = parse_number(m.group(0))
            money_like = _MONEY_AFTER.match(view, m.end()) or _BIG_UNIT.search(m.group(0))
            if value and value >= 100 and money_like and not _NOT_MONEY_AFTER.match(view, m.end()):
                best = (m.start(), value)
                if after:
                    return best
        return best

    # ---- report -----------------------------------------------------------------------------------------

    def _report(self, text: str, hits: list[_Hit], norm: str, index: list[int], safe: bool,
                view: str = "", paid: bool = False, loan: bool = False) -> RiskReport:
        weights: dict[str, int] = {}
        for h in hits:
            weights[h.feature] = max(weights.get(h.feature, 0), h.weight)
        strong = [f for f, w in weights.items() if w >= STRONG]
        if (LURE in strong and len(weights) >= 2) or len(strong) >= 2:
            level = "high"
        elif strong or sum(weights.values()) >= MEDIUM_SCORE or self._weak_pair(hits, weights, view):
            level = "medium"
        else:
            level = "low"
        # strongest first; within a feature a stated figure ("一年回报约365%") explains best
        ordered = sorted(hits, key=lambda h: (-h.weight, self._feature_order.get(h.feature, 99), h.rate is None,
                                              h.start))
        # one signal per piece of evidence; words inside a longer match of the same feature add nothing
        signals: dict[Signal, None] = {}
        reach: dict[str, int] = {}
        for h in sorted(hits, key=lambda h: (self._feature_order.get(h.feature, 99), h.start, -h.end)):
            if h.end <= reach.get(h.feature, -1):
                continue
            reach[h.feature] = h.end
            signals[Signal(h.feature, norm[index[h.start]:index[h.end - 1] + 1])] = None
        return RiskReport(text=text, risky=level != "low", level=level, signals=tuple(signals),
                          advice=self._advise(level, ordered, safe, paid, loan),
                          category=self._category(view, hits, level, safe))

    def _weak_pair(self, hits: list[_Hit], weights: Mapping[str, int], view: str) -> bool:
        """Two weak signals of different features, one of them from a core rule (the shape of an offer: more back
        than paid, pay first to join, money taken from many people), make an offer together: "先交钱才能入会" +
        "入了会有钱拿". Not next to ordinary pay or a relative's loan."""
        core = {h.feature for h in hits if h.rule in self._combine_core}
        weak = [f for f, w in weights.items() if w < STRONG]
        return (len(weak) >= 2 and any(f in core for f in weak)
                and not any(c.search(view) for c in self._combine_off))

    def _category(self, view: str, hits: list[_Hit], level: str, safe: bool) -> str | None:
        if level == "low":
            return self._category_safe if safe else None
        scores: dict[str, float] = {}
        for slug, regex in self._categories:
            n = len({m.group(0) for m in regex.finditer(view)})
            if n:
                scores[slug] = n
        for h in hits:
            if h.category:
                scores[h.category] = scores.get(h.category, 0) + 1.5 * h.weight
        if scores:
            return max(scores, key=lambda s: (scores[s], -self._category_order.get(s, 99)))
        return self._category_fallback

    def _advise(self, level: str, ordered: list[_Hit], safe: bool, paid: bool = False, loan: bool = False) -> str:
        """What to do: the strongest findings' tips and the next step; for someone who has paid already, the steps
        a victim takes instead, whatever the level (the signals shown above the advice say what is wrong with the
        offer); paying into a safe product (a deposit, 国债) is no sign of being a victim. A loan between people who
        know each other at or under the legal ceiling is ordinary private lending, and the advice says so."""
        advice = self._advice
        values = _Defaults({**self._region, "loan_cap": f"{self._kin_threshold:g}"})
        if paid and (level != "low" or not (safe or loan)):
            return advice["paid" if level != "low" else "low_paid"].format_map(values)
        tips: list[str] = []
        features_done: set[str] = set()
        wanted = {"high": 2, "medium": 1, "low": 0}[level]
        for h in ordered:
            if len(tips) >= wanted:
                break
            if h.feature in features_done:
                continue
            tip = h.tip or advice["feature_tips"][h.feature]
            if h.rate is not None:
                best = max((x.rate for x in ordered if x.rate is not None), default=h.rate)
                tip = tip.format(rate=f"{best:.0f}" if best >= 10 else f"{best:.1f}")
            if tip not in tips:
                tips.append(tip)
                features_done.add(h.feature)
        if level == "high":
            body = "".join(tips) + advice["high_next"]
        elif level == "medium":
            body = "".join(tips) + advice["medium_next"]
        elif loan:
            body = advice["low_loan"]
        elif ordered:
            body = advice["low_weak"]
        else:
            body = advice["low_safe"] if safe else advice["low_none"]
        return body.format_map(values)


def _tenths(digit: str | None) -> float:
    """The digit after 分 / 成 in folk rates: "一分五" = 1.5, "两成半" = 2.5."""
    if not digit:
        return 0.0
    return 0.5 if digit == "半" else (parse_number(digit) or 0.0) / 10


def _is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


class _Defaults(dict[str, str]):
    """Placeholder values; an unknown placeholder is left as written instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
