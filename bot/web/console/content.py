"""The content page (内容): the questions residents asked that the bot could not answer, by editors' mark and
most asked first, with the marks editors keep; and the quiz questions most often answered wrong."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from bot import services as domain
from bot.staff import audit
from bot.tips.export import local_time
from bot.web.console.auth import NO_STORE, Desk, base, clean, row_id
from knowledge.schema import load_taxonomy
from quizzes import statistics

MARK_NAMES = {None: "待处理", "write-entry": "要写新条目", "off-topic": "与防非无关", "done": "已处理"}
KEYS = {"new": None, "write-entry": "write-entry", "off-topic": "off-topic", "done": "done"}


async def page(desk: Desk) -> Response:
    shown = desk.request.query_params.get("mark", "new")
    mark = KEYS.get(shown)
    texts = {q.id: q.question for q in desk.services.quiz_questions}
    return desk.page("content.html", gaps=await domain.gaps(desk.session, mark), shown=shown if shown in KEYS
                     else "new", counts=await domain.gap_marks(desk.session), names=MARK_NAMES, keys=KEYS,
                     weakest=await statistics.weakest_questions(desk.session), texts=texts,
                     categories={slug: c.name for slug, c in load_taxonomy().items()}, local_time=local_time)


async def mark(desk: Desk) -> Response:
    form = desk.request.state.form or {}
    number = row_id(form.get("id"))
    wanted = clean(form.get("mark"), 16)
    back = clean(form.get("shown"), 16) or "new"
    if number is None or wanted not in KEYS:
        return desk.page("refused.html", 400, message="没有这个标记。请用页面上的按钮。")
    gap, changed = await domain.mark_gap(desk.session, number, KEYS[wanted])
    if gap is None:
        return desk.page("refused.html", 404, message="这个问题已经不在列表里了（可能太久没人问，已清理）。")
    if changed:  # (clicked twice: the second changes nothing, and is not audited)
        audit.record(desk.session, desk.actor, "gap-mark", f"gap:{gap.id}", wanted)
    return RedirectResponse(f"{base(desk.request)}/content?mark={back if back in KEYS else 'new'}", status_code=303,
                            headers=NO_STORE)
