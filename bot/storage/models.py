"""Database tables (SQLAlchemy 2). Every change here comes with an Alembic migration in bot/migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Conversation(Base):
    """Where one user stands in one chat: the flow and its step in plain words (the jobs that tidy drafts away need
    them), and everything else sealed. `user_id` and `chat_id` are keyed fingerprints, never platform ids
    (bot/storage/conversations.py), so without the secret key no row can be tied to a person."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "user_id", "chat_id", name="uq_conversation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(128))
    flow: Mapped[str | None] = mapped_column(String(32), default=None)
    step: Mapped[str | None] = mapped_column(String(32), default=None)
    # sealed JSON {"user": platform id, "data": the flow's draft, "menu": the menu last shown}; NULL: nothing kept
    state: Mapped[str | None] = mapped_column(Text, default=None)
    # sealed: something to tell the user at their next message (a tip's new status when no message could reach them)
    notice: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # bumped by every write: a message's answer is kept only if nobody changed the row since it was read
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Subscriber(Base):
    """A resident who asked for warnings, with the profile used to pick audience segments."""

    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("channel", "user_id", name="uq_subscriber"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    audience: Mapped[str] = mapped_column(String(16))
    township: Mapped[str | None] = mapped_column(String(64), default=None)
    village: Mapped[str | None] = mapped_column(String(64), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # when a WeChat subscriber last wrote or tapped (at most SEEN_EVERY late): their 48-hour window
    last_seen: Mapped[datetime | None] = mapped_column(default=None)


class QuestionGap(Base):
    """A question the knowledge base could not answer, normalised and capped, with how often it was asked (no user
    id, no channel, long digit runs masked): editors read the most frequent with `kb gaps`."""

    __tablename__ = "question_gaps"
    __table_args__ = (Index("ix_question_gaps_last_seen", "last_seen"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(200), unique=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    mark: Mapped[str | None] = mapped_column(String(16), default=None)  # editors': write-entry | off-topic | done


class GroupChat(Base):
    """A group the bot was added to (and whether it is still there)."""

    __tablename__ = "group_chats"
    __table_args__ = (UniqueConstraint("channel", "chat_id", name="uq_group_chat"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(256), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InboxRecord(Base):
    """Each platform message once (WeChat MsgId, or a fingerprint of sender + time for events; Telegram's update
    id): a redelivery finds the record, and for WeChat the stored passive answer."""

    __tablename__ = "inbox"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(32), default="processing")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatUser(Base):
    """A follower of the Official Account: where they came from (QR scene) and whether they still follow."""

    __tablename__ = "wechat_users"

    openid: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[str | None] = mapped_column(String(64), default=None)
    following: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ApiToken(Base):
    """Platform access tokens shared by every process (WeChat's stable_token)."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()


class Lease(Base):
    """Who leads the periodic jobs that must run in one process only (bot/leader.py), and until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()


class Tip(Base):
    """A tip (举报线索) in the ledger. The reporter's identity is only ever stored sealed (bot/vault.py):
    `reporter` is a keyed fingerprint of who filed it (to let them, and only them, ask about it)."""

    __tablename__ = "tips"
    __table_args__ = (Index("ix_tips_reporter", "reporter", "created_at"), Index("ix_tips_status", "status"),
                      Index("ix_tips_created_at", "created_at"), Index("ix_tips_township", "township", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    receipt: Mapped[str] = mapped_column(String(16), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    reporter: Mapped[str] = mapped_column(String(64))
    reporter_sealed: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new")
    closing_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    category: Mapped[str | None] = mapped_column(String(64), default=None)
    township: Mapped[str | None] = mapped_column(String(64), default=None)
    village: Mapped[str | None] = mapped_column(String(64), default=None)
    place: Mapped[str | None] = mapped_column(String(200), default=None)
    what: Mapped[str] = mapped_column(Text)
    who: Mapped[str | None] = mapped_column(Text, default=None)
    money: Mapped[str | None] = mapped_column(String(200), default=None)
    happened: Mapped[str | None] = mapped_column(String(200), default=None)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=True)
    name_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    contact_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    assignee: Mapped[str | None] = mapped_column(String(64), default=None)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TipEvidence(Base):
    """A photo or file sent with a tip: the platform's reference to it (Telegram file_id, WeChat MediaId/URL)."""

    __tablename__ = "tip_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text, default=None)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    size: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the file itself, fetched from the platform (bot/tips/evidence.py) and sealed like an identity; deferred so
    # listing evidence never loads the bytes (read them with evidence.content())
    content_sealed: Mapped[str | None] = mapped_column(Text, default=None, deferred=True, deferred_raiseload=True)
    content_type: Mapped[str | None] = mapped_column(String(64), default=None)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)


class TipChange(Base):
    """The ledger's history: every change to a tip, with who made it and when."""

    __tablename__ = "tip_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tip_id: Mapped[int] = mapped_column(ForeignKey("tips.id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(32))
    old: Mapped[str | None] = mapped_column(Text, default=None)
    new: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """An access to confidential data (a reporter's identity): who, what, when. Never deleted by the program."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # why, or with what filter (a reveal's reason, an export's filter); never personal data
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class ReceiptCounter(Base):
    """The last receipt number given out in a year (FF-YYYY-NNNNNN)."""

    __tablename__ = "receipt_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class OutboxMessage(Base):
    """A message to deliver to someone outside the request (staff alert, a reporter's status notice): written in
    the same transaction as the change it announces, then sent by the dispatcher, retried with backoff.
    `dedup` names the message so it is enqueued once; `lease_until` marks a claim that lapses if its worker dies;
    `unknowns` counts sends whose outcome is unknown (the message may have arrived): a second one gives it up."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    unknowns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), default=None)
    # higher first among due rows (a credible tip's alert before a flood's)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # a warning broadcast's delivery (bot/broadcasts/); NULL for alerts and notices
    broadcast_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    # held back during quiet hours (a non-urgent warning to elderly residents)
    quiet: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Cadre(Base):
    """A village cadre or grid worker who relays warnings into the village's own WeChat groups (no bot can post
    there), reachable on a platform by their own account (a staff contact, not a resident)."""

    __tablename__ = "cadres"
    __table_args__ = (UniqueConstraint("channel", "user_id", "village", name="uq_cadre"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    village: Mapped[str] = mapped_column(String(64))  # a village code of config.yaml region
    channel: Mapped[str] = mapped_column(String(16))  # telegram | wechat
    user_id: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Relay(Base):
    """A warning handed to one cadre to forward into their village's groups, and whether and when they did."""

    __tablename__ = "relays"
    __table_args__ = (UniqueConstraint("broadcast_id", "cadre_id", name="uq_relay"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    cadre_id: Mapped[int] = mapped_column(ForeignKey("cadres.id", ondelete="CASCADE"))
    village: Mapped[str] = mapped_column(String(64))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    relayed_at: Mapped[datetime | None] = mapped_column(default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)


class RateBucket(Base):
    """A send rate shared by every process (bot/rate.py): the next free send slot."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot: Mapped[datetime] = mapped_column()


class Broadcast(Base):
    """A warning (预警提示) for a segment of subscribers: what it says, whom it is for, who drafted and approved it,
    and where it stands. Its deliveries are outbox rows (`OutboxMessage.broadcast_id`), one per recipient."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)  # as residents read it, before the unsubscribe line
    template: Mapped[str | None] = mapped_column(String(64), default=None)
    audience: Mapped[str] = mapped_column(String(16))  # elderly | student | other | all
    # {"townships": [codes], "villages": [codes], "channels": [names]}; no township or village: the whole county
    segment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    send_at: Mapped[datetime | None] = mapped_column(default=None)
    # draft | approved (waits for send_at) | sending | paused | done | cancelled
    state: Mapped[str] = mapped_column(String(16), default="draft")
    drafted_by: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64), default=None)
    # residents of the segment left out when it was sent, by reason ({"blocked": 3, "no-route:wecom": 1})
    skipped: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class QuizCampaign(Base):
    """A knowledge-quiz campaign (防范非法集资知识答题): who it is for, how an attempt runs, when it is open."""

    __tablename__ = "quiz_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    audience: Mapped[str] = mapped_column(String(16))  # elderly | student | all
    questions: Mapped[int] = mapped_column(Integer, default=10)  # per attempt
    seconds_per_question: Mapped[int | None] = mapped_column(Integer, default=None)
    attempts_per_day: Mapped[int] = mapped_column(Integer, default=3)
    scoring: Mapped[str] = mapped_column(String(8), default="best")  # best | last
    pass_mark: Mapped[int] = mapped_column(Integer, default=60)  # percent of the questions right
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    # draft | scheduled (opens by itself at its start) | open | closed
    state: Mapped[str] = mapped_column(String(16), default="draft")
    townships: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"codes": [...]}; none: the whole county
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuizPlayer(Base):
    """One person across the attempts of a campaign, known by a keyed fingerprint of their chat id, WeChat openid
    or quiz-page cookie (never the id itself), with the region they play for and the name they chose to give."""

    __tablename__ = "quiz_players"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_quiz_player"),
                      Index("ix_quiz_players_region", "campaign_id", "region"),
                      Index("ix_quiz_players_standing", "campaign_id", "best_score", "best_seconds"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("quiz_campaigns.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(32), default=None)
    region: Mapped[str | None] = mapped_column(String(64), default=None)  # a village or school code
    on_paper: Mapped[bool] = mapped_column(Boolean, default=False)  # results recorded by a cadre (proxy entry)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the counting attempt (best, or last, by the campaign's scoring), kept when an attempt finishes
    best_attempt_id: Mapped[int | None] = mapped_column(Integer, default=None)
    best_score: Mapped[int | None] = mapped_column(Integer, default=None)
    best_seconds: Mapped[float | None] = mapped_column(default=None)


class QuizAttempt(Base):
    """One go at a campaign: the questions as drawn (so later bank edits change no past score), and the score and
    time derived from its stored answers."""

    __tablename__ = "quiz_attempts"
    __table_args__ = (Index("ix_quiz_attempts_player", "player_id", "day"),
                      Index("ix_quiz_attempts_campaign", "campaign_id", "finished_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)  # the attempt's id outside (unguessable)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("quiz_campaigns.id", ondelete="CASCADE"))
    player_id: Mapped[int] = mapped_column(ForeignKey("quiz_players.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    day: Mapped[str] = mapped_column(String(10))  # the China date it started, for attempts per day
    drawn: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"questions": [{id, text, options, answer, …}]}
    answered: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(default=0.0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)  # when the current question was put
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    certificate: Mapped[str | None] = mapped_column(String(16), default=None, unique=True)


class QuizAnswer(Base):
    """One answer to one drawn question of an attempt: stored once (the unique key refuses a replay)."""

    __tablename__ = "quiz_answers"
    __table_args__ = (UniqueConstraint("attempt_id", "position", name="uq_quiz_answer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("quiz_attempts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based index into the attempt's drawn questions
    question_id: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    choice: Mapped[int] = mapped_column(Integer)
    correct: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(default=0.0)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


RUNNING = text("state = 'running'")


class GroupQuizRound(Base):
    """A quiz round in a group chat: the questions drawn and frozen with it, the step it has reached (the index of
    the next poll to post; the number of questions: the leaderboard) and when that step is due. `claimed_until`
    marks a process posting the step; `unknowns` counts posts of it whose outcome is unknown (quizzes/group_rounds.py).
    One running round per group: the partial unique index refuses a second."""

    __tablename__ = "group_quiz_rounds"
    __table_args__ = (Index("uq_group_quiz_running", "channel", "chat_id", unique=True, sqlite_where=RUNNING,
                            postgresql_where=RUNNING),
                      Index("ix_group_quiz_rounds_due", "state", "due_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))  # the group's id (a group, not a person)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("quiz_campaigns.id", ondelete="SET NULL"),
                                                    default=None)  # None: a practice round
    audience: Mapped[str] = mapped_column(String(16))  # elderly | student | other
    title: Mapped[str] = mapped_column(String(200))
    drawn: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"questions": [{id, text, options, answer, …}]}
    open_seconds: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(16), default="admin")  # admin (/quiz) | schedule
    state: Mapped[str] = mapped_column(String(16), default="running")  # running | finished | stopped
    step: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    unknowns: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class GroupQuizPoll(Base):
    """A posted quiz poll: the platform's poll id names the round and the question, so answers are scored from here
    (not from memory) after any restart."""

    __tablename__ = "group_quiz_polls"

    poll_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("group_quiz_rounds.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0-based index into the round's drawn questions
    correct: Mapped[int] = mapped_column(Integer)  # the right option's index, as posted
    message_id: Mapped[int | None] = mapped_column(Integer, default=None)
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)
    closes_at: Mapped[datetime] = mapped_column()


class GroupQuizAnswer(Base):
    """One group member's answer to one poll, stored once: `player` is a keyed fingerprint of their platform id
    (never the id), `name` only ever masked (王*明) for the leaderboard."""

    __tablename__ = "group_quiz_answers"
    __table_args__ = (UniqueConstraint("poll_id", "player", name="uq_group_quiz_answer"),
                      Index("ix_group_quiz_answers_round", "round_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    poll_id: Mapped[str] = mapped_column(ForeignKey("group_quiz_polls.poll_id", ondelete="CASCADE"))
    round_id: Mapped[int] = mapped_column(ForeignKey("group_quiz_rounds.id", ondelete="CASCADE"))
    player: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(32))
    choice: Mapped[int] = mapped_column(Integer)
    correct: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(default=0.0)  # from the poll's posting to the answer
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupQuizGroup(Base):
    """A group's quiz settings, kept by its admins (`/quiz on|off`, `/quiz 老年人|学生|其他`): the audience its
    rounds are drawn for, and whether a round is posted by itself each day while a campaign is open."""

    __tablename__ = "group_quiz_groups"
    __table_args__ = (UniqueConstraint("channel", "chat_id", name="uq_group_quiz_group"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    audience: Mapped[str] = mapped_column(String(16), default="other")
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_day: Mapped[str | None] = mapped_column(String(10), default=None)  # China date of the last scheduled round
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StaffAccount(Base):
    """A staff member who signs in to the console and is named by the CLI's --as: a role, the townships they may
    see (none: the whole county), an argon2 hash of the password, and the lock-out after failed sign-ins."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(48), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | handler | approver | staff
    townships: Mapped[list[str]] = mapped_column(JSON, default=list)  # township codes; empty: the whole county
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(default=None)


class StaffSession(Base):
    """A signed-in console session: the browser holds the token, we keep only its hash, its CSRF token and when
    it was last used (idle expiry)."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class WeChatMassSend(Base):
    """A warning's WeChat mass send (群发) to a tag: the intent is written before the API call and the outcome after,
    so a send whose process died in between is reported as of unknown outcome, never sent again."""

    __tablename__ = "wechat_mass_sends"

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(10))  # the quota's period: 2026-05 (service) or 2026-05-14
    state: Mapped[str] = mapped_column(String(16))  # sending | sent | failed | unknown | retry
    msg_id: Mapped[str | None] = mapped_column(String(32), default=None)
    error: Mapped[str | None] = mapped_column(String(200), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)


class WeChatMassQuota(Base):
    """Mass sends counted against the account's quota in one period (a month or a China day)."""

    __tablename__ = "wechat_mass_quota"

    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
