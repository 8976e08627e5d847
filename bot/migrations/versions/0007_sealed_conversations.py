"""Conversations hold no platform id and no plain words: rows are keyed by keyed fingerprints of the user and chat,
and the draft, the menu (option arguments can name a tip's receipt) and the notice are sealed with the secret key.
The message inbox is shared by every channel (WeChat MsgIds, Telegram update ids).

Existing rows are converted with the key handed over by `fangfei db upgrade`; without it, a database that holds
conversations is not migrated (nothing is changed). Downgrading drops what conversations held (drafts, menus,
notices): they cannot be written back in plain text without the key, and should not be.

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, channel, user_id, chat_id, data, menu, notice FROM conversations")).all()
    vault = op.get_context().config.attributes.get("vault")
    if rows and vault is None:
        raise RuntimeError("conversations must be sealed with the secret key: run `fangfei db upgrade`")
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("state", sa.Text(), nullable=True))
    for row in rows:
        data, menu = (json.loads(v) if isinstance(v, str) else v for v in (row.data, row.menu))
        state = json.dumps({"user": row.user_id, "data": data or {}, "menu": menu or {}}, ensure_ascii=False)
        bind.execute(sa.text("UPDATE conversations SET user_id = :u, chat_id = :c, state = :s, notice = :n,"
                             " data = '{}', menu = '{}' WHERE id = :id"),
                     {"id": row.id, "u": vault.fingerprint("conversation", row.channel, row.user_id),
                      "c": vault.fingerprint("conversation", row.channel, row.chat_id), "s": vault.seal(state),
                      "n": vault.seal(row.notice) if row.notice else None})
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("data")
        batch.drop_column("menu")
    op.rename_table("wechat_inbox", "inbox")


def downgrade() -> None:
    op.rename_table("inbox", "wechat_inbox")
    op.execute("DELETE FROM conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("state")
        batch.add_column(sa.Column("data", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("menu", sa.JSON(), nullable=False, server_default="{}"))
