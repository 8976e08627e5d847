"""Requests built the way WeChat builds them: signed with wechatpy, AES-encrypted with wechatpy in safe mode."""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET
from typing import Any

import httpx
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

TOKEN = "fangfei-wechat-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
APP_ID = "wx0123456789abcdef"
ACCOUNT = "gh_fangfei"
_ids = itertools.count(8_000_000_000)


def sign(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def text_xml(openid: str, content: str, msg_id: int | str | None = None, created: int | str | None = None) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or next(_ids)}</MsgId></xml>")


def voice_xml(openid: str, recognition: str | None) -> str:
    rec = f"<Recognition><![CDATA[{recognition}]]></Recognition>" if recognition is not None else ""
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[voice]]></MsgType>"
            f"<MediaId><![CDATA[media1]]></MediaId><Format><![CDATA[amr]]></Format>{rec}<MsgId>{next(_ids)}</MsgId>"
            "</xml>")


def image_xml(openid: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[http://127.0.0.1/x.jpg]]></PicUrl><MediaId><![CDATA[m2]]></MediaId>"
            f"<MsgId>{next(_ids)}</MsgId></xml>")


def event_xml(openid: str, event: str, key: str | None = None, created: int | str | None = None) -> str:
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event>{key_xml}</xml>")


class WeChatServer:
    """Plays WeChat's part: posts signed (and, in safe mode, encrypted) XML and reads the replies."""

    def __init__(self, client: httpx.AsyncClient, safe: bool, path: str = "/wechat") -> None:
        self.client, self.safe, self.path = client, safe, path
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)

    def params(self, timestamp: int | None = None, nonce: str = "n0nce", forged: bool = False) -> dict[str, str]:
        ts = str(timestamp or int(time.time()))
        signature = sign(TOKEN, ts, nonce)
        return {"signature": "0" * 40 if forged else signature, "timestamp": ts, "nonce": nonce, "openid": "x"}

    async def post(self, xml: str, **kw: Any) -> httpx.Response:
        params = self.params(**kw)
        body = xml
        if self.safe:
            encrypted = self.crypto.encrypt_message(xml, params["nonce"], params["timestamp"])
            root = ET.fromstring(encrypted)
            params.update(encrypt_type="aes", msg_signature=root.findtext("MsgSignature") or "")
            body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[" \
                   f"{root.findtext('Encrypt')}]]></Encrypt></xml>"
        return await self.client.post(self.path, params=params, content=body.encode(),
                                      headers={"content-type": "text/xml"})

    def reply_text(self, res: httpx.Response) -> str:
        """The passive reply's text ('' for WeChat's empty 'success')."""
        assert res.status_code == 200, (res.status_code, res.text)
        if res.text in ("success", ""):
            return ""
        xml = res.text
        if self.safe:
            root = ET.fromstring(xml)
            xml = self.crypto.decrypt_message(xml, root.findtext("MsgSignature"), root.findtext("TimeStamp"),
                                              root.findtext("Nonce"))
        return ET.fromstring(xml).findtext("Content") or ""

    async def say(self, openid: str, text: str) -> str:
        return self.reply_text(await self.post(text_xml(openid, text)))
