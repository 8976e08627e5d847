"""`wechat`: the WeChat Official Account."""

from __future__ import annotations

import asyncio

import typer

from bot.cli.common import say_error, settings, vault

app = typer.Typer(help="The WeChat Official Account.")


@app.command("menu")
def wechat_menu() -> None:
    """Publish the custom menu defined in config.yaml (wechat.menu)."""
    from bot.channels.wechat_api import WeChatApi, WeChatApiError
    from bot.config import MenuButton
    from bot.storage.database import Database

    s = settings()
    if not (s.wechat.app_id and s.wechat.app_secret and s.wechat.menu):
        say_error("wechat menu: set wechat.app_id, FANGFEI_WECHAT__APP_SECRET and wechat.menu first")
        raise typer.Exit(2)

    def button(b: MenuButton) -> dict[str, object]:
        if b.sub:
            return {"name": b.name, "sub_button": [button(x) for x in b.sub]}
        return {"type": "view", "name": b.name, "url": b.url} if b.url else {"type": "click", "name": b.name,
                                                                               "key": b.key}

    async def main() -> tuple[bool, str]:
        db = Database(s.database.url)
        api = WeChatApi(s.wechat, db)
        try:
            if db.is_sqlite:
                await db.upgrade(vault(s))
            result = await api.create_menu([button(b) for b in s.wechat.menu])
            return result.ok, f"errcode {result.errcode} {result.errmsg}"
        except WeChatApiError as exc:
            return False, str(exc)
        finally:
            await api.close()
            await db.close()

    ok, detail = asyncio.run(main())
    if not ok:
        say_error(f"wechat menu: not published: {detail}")
        raise typer.Exit(1)
    print("wechat menu published")
