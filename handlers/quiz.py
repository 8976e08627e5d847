"""知识答题 in a private chat: who you are (asked once), where you play for, then one question a message with its
options, "答对了/答错了" and why, and at the end the score, the rank and what to do next.

With an open campaign for the resident's audience the attempt is ranked (quizzes/campaigns.py); with none, a
practice round from their bank is kept in the conversation only. An attempt left half-way goes on where it
stopped at the next "答题".
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from bot import subscribers
from bot.conversation import Choice, Flow, Turn, action, keywords, register_flow
from bot.storage.models import QuizAttempt, QuizCampaign
from handlers.menu import BACK, MAIN_MENU
from quizzes import campaigns
from quizzes.campaigns import QuizError

FLOW = "quiz"
PRACTICE_QUESTIONS = 5
WHO = {"elderly": "老年人", "student": "学生", "other": "其他"}
BANK_OF = {"elderly": "elderly", "student": "student", "other": "all"}


@action("quiz.start")
async def start(turn: Turn, _: str = "") -> None:
    if turn.inbound.is_group:
        turn.say("群里的答题请让群管理员发 /quiz。\n想自己答，请私聊我，发“答题”。")
        return
    sub = await subscribers.find(turn.session, turn.inbound.channel, turn.inbound.user)
    if sub is None:
        turn.go(FLOW, "audience")
        turn.say("欢迎来答题！先说说您是：",
                 [*(Choice(label, "quiz.audience", key) for key, label in WHO.items()), BACK])
        return
    await _begin(turn, sub.audience)


@action("quiz.audience")
async def audience(turn: Turn, key: str) -> None:
    if key not in WHO:
        await expired(turn)
        return
    await subscribers.remember_audience(turn.session, turn.inbound.channel, turn.inbound.user, key)
    await _begin(turn, key)


async def _begin(turn: Turn, who: str) -> None:
    campaign = await campaigns.open_for(turn.session, who)
    if campaign is None:
        _practice(turn, who)
        return
    player = await _player(turn, campaign)
    unfinished = await turn.session.scalar(
        select(QuizAttempt).where(QuizAttempt.player_id == player.id, QuizAttempt.finished_at.is_(None))
        .order_by(QuizAttempt.id.desc()).limit(1))
    if unfinished is not None:
        turn.say("您上次的答题还没做完，我们接着来。")
        _ask(turn, campaign, unfinished)
        return
    if player.region is None:
        _ask_region(turn, campaign)
        return
    await _new_attempt(turn, campaign, player)


def _ask_region(turn: Turn, campaign: QuizCampaign) -> None:
    places = campaigns.regions(turn.services.settings.region, campaign)
    towns = {t.code: t.name for t in turn.services.settings.region.townships}
    turn.go(FLOW, "region", campaign=campaign.slug)
    schools = [p for p in places if p.kind == "school"]
    choices = [Choice(name, "quiz.township", code) for code, name in towns.items()
               if any(p.township == code and p.kind == "village" for p in places)]
    choices += [Choice(p.name, "quiz.region", p.code) for p in schools]
    turn.say(f"「{campaign.name}」\n成绩按村（社区）和学校排名。请选您所在的地方：", [*choices, BACK])


@action("quiz.township")
async def township(turn: Turn, code: str) -> None:
    campaign = await _campaign(turn)
    if campaign is None:
        return
    villages = [p for p in campaigns.regions(turn.services.settings.region, campaign)
                if p.kind == "village" and p.township == code]
    turn.say("哪个村（社区）？", [*(Choice(p.name.split(" ")[-1], "quiz.region", p.code) for p in villages), BACK])


@action("quiz.region")
async def region(turn: Turn, code: str) -> None:
    campaign = await _campaign(turn)
    if campaign is None:
        return
    try:
        player = await _player(turn, campaign, region=code)
    except QuizError:
        await expired(turn)
        return
    await _new_attempt(turn, campaign, player)


async def _new_attempt(turn: Turn, campaign: QuizCampaign, player: Any) -> None:
    services = turn.services
    try:
        attempt = await campaigns.start(turn.session, campaign, player, services.quiz_questions,
                                        turn.inbound.channel, services.fill)
    except QuizError as exc:
        turn.finish()
        if exc.kind == "limit":
            turn.say(f"今天的 {campaign.attempts_per_day} 次答题机会用完了，成绩按最好的一次算。\n明天再来吧！",
                     MAIN_MENU)
        else:
            turn.say("这次答题已经结束了。可以先问问题，或者做个风险自测。", MAIN_MENU)
        return
    total = len(attempt.drawn["questions"])
    turn.say(f"「{campaign.name}」一共 {total} 道题。\n选您认为对的答案。随时发“取消”可以退出。")
    _ask(turn, campaign, attempt)


def _ask(turn: Turn, campaign: QuizCampaign, attempt: QuizAttempt) -> None:
    asked = campaigns.current(campaign, attempt)
    if asked is None:
        turn.finish()
        return
    turn.go(FLOW, "question", campaign=campaign.slug, attempt=attempt.token, position=asked.position)
    turn.say(f"第 {asked.position + 1}/{asked.total} 题：{asked.text}",
             [Choice(option, "quiz.answer", f"{attempt.token}|{asked.position}|{i}")
              for i, option in enumerate(asked.options)])


@action("quiz.answer")
async def answer(turn: Turn, arg: str) -> None:
    token, _, rest = arg.partition("|")
    position, _, choice = rest.partition("|")
    if turn.data.get("practice"):
        await _practice_answer(turn, int(position), int(choice))
        return
    campaign = await _campaign(turn)
    if campaign is None:
        return
    try:
        player = await _player(turn, campaign)
        attempt = await campaigns.attempt_of(turn.session, token, player)
        asked = campaigns.current(campaign, attempt)
        if asked is None or str(asked.position) != position:
            raise QuizError("answered", "an old question")
        result = await campaigns.answer(turn.session, campaign, attempt, asked.id, int(choice))
    except QuizError as exc:
        if exc.kind == "closed":
            turn.finish()
            turn.say("这次答题已经结束了，谢谢参加！", MAIN_MENU)
        else:
            turn.say("这道题已经答过了。我们接着来：")
            await resume(turn)
        return
    q = attempt.drawn["questions"][asked.position]
    if result.late:
        turn.say(f"时间到了，这题没算分。正确答案是：{q['options'][result.answer]}\n{result.explanation}")
    elif result.correct:
        turn.say(f"答对了！\n{result.explanation}")
    else:
        turn.say(f"答错了。正确答案是：{q['options'][result.answer]}\n{result.explanation}")
    if result.next is not None:
        _ask(turn, campaign, result.attempt)
        return
    await _finished(turn, campaign, result.attempt)


async def _finished(turn: Turn, campaign: QuizCampaign, attempt: QuizAttempt) -> None:
    turn.finish()
    total = len(attempt.drawn["questions"])
    rank = await campaigns.rank_of(turn.session, campaign, attempt)
    lines = [f"答完了！您答对了 {attempt.score}/{total} 题，目前排第 {rank} 名。"]
    if attempt.certificate:
        lines.append(f"恭喜您通过了！证书编号：{attempt.certificate}")
    else:
        lines.append("再学一学，明天还可以再答。")
    turn.say("\n".join(lines))
    turn.say("遇到拿不准的投资，先问问我，或者打 {hotline}。请选择：",
             [Choice("再答一次", "quiz.start"), Choice("问问题", "ask.start"), BACK])


# -- practice (no open campaign) ---------------------------------------------------------------------------------
def _practice(turn: Turn, who: str) -> None:
    services = turn.services
    bank = [q for q in services.quiz_questions if q.audience in campaigns.BANKS_FOR[BANK_OF[who]]]
    rng = random.SystemRandom()
    drawn = []
    for q in campaigns.draw(bank, PRACTICE_QUESTIONS, rng):
        drawn.append({"text": services.fill(q.question), "options": [services.fill(o) for o in q.options],
                      "answer": q.options.index(q.answer), "explanation": services.fill(q.explanation)})
    if not drawn:
        turn.finish()
        turn.say("题库还在准备中。可以先问问题，或者做个风险自测。", MAIN_MENU)
        return
    turn.go(FLOW, "question", practice=True, questions=drawn, position=0, score=0)
    turn.say(f"现在没有正在进行的答题比赛，先来 {len(drawn)} 道练习题（不排名）。")
    _ask_practice(turn)


def _ask_practice(turn: Turn) -> None:
    d = turn.data
    q, n = d["questions"][d["position"]], d["position"]
    turn.say(f"第 {n + 1}/{len(d['questions'])} 题：{q['text']}",
             [Choice(option, "quiz.answer", f"practice|{n}|{i}") for i, option in enumerate(q["options"])])


async def _practice_answer(turn: Turn, position: int, choice: int) -> None:
    d = turn.data
    if position != d.get("position"):
        turn.say("这道题已经答过了。我们接着来：")
        _ask_practice(turn)
        return
    q = d["questions"][position]
    right = choice == q["answer"]
    turn.say(("答对了！\n" if right else f"答错了。正确答案是：{q['options'][q['answer']]}\n") + q["explanation"])
    score = d.get("score", 0) + right
    if position + 1 < len(d["questions"]):
        turn.go(FLOW, "question", position=position + 1, score=score)
        _ask_practice(turn)
        return
    turn.finish()
    turn.say(f"练习做完了，答对 {score}/{len(d['questions'])} 题。",
             [Choice("再练一次", "quiz.start"), Choice("问问题", "ask.start"), BACK])


# -- helpers and what the engine needs ------------------------------------------------------------------------------
async def _campaign(turn: Turn) -> QuizCampaign | None:
    campaign = await campaigns.find(turn.session, turn.data.get("campaign") or "")
    if campaign is None:
        await expired(turn)
    return campaign


async def _player(turn: Turn, campaign: QuizCampaign, region: str | None = None) -> Any:
    key = campaigns.player_key(turn.services.vault, turn.inbound.channel, turn.inbound.user)
    return await campaigns.player(turn.session, campaign, key, region=region,
                                  region_settings=turn.services.settings.region)


async def resume(turn: Turn) -> None:
    """Put the current question again."""
    if turn.data.get("practice"):
        _ask_practice(turn)
        return
    campaign = await campaigns.find(turn.session, turn.data.get("campaign") or "")
    token = turn.data.get("attempt")
    if campaign is None or not token:
        await start(turn)
        return
    attempt = await turn.session.scalar(select(QuizAttempt).where(QuizAttempt.token == token))
    if attempt is None or attempt.finished_at is not None:
        await start(turn)
        return
    _ask(turn, campaign, attempt)


async def expired(turn: Turn) -> None:
    turn.finish()
    turn.say("这个选项已经过期了。想答题，请再发“答题”。", MAIN_MENU)


async def stale(turn: Turn) -> None:
    """A button of an earlier question or menu, in the middle of a quiz: the current question again."""
    turn.say("这个选项已经过期了。我们接着答题：")
    await resume(turn)


register_flow(Flow(FLOW, button_steps=frozenset({"audience", "region", "question"}), resume=resume,
                   expired=stale))
keywords("quiz.start", "知识答题", "答题", "/quiz")
