// The quiz page inside WeChat (bot/web/wechat_signin.py, wechat_share.py); loaded only there. It drops the sign-in's
// ?wx= mark from the address, so the page forwarded from here starts a sign-in of its own, then, when the page
// has data-share and the JS-SDK (jweixin-1.6.0.js) is loaded, sets the card WeChat shows for the page.
(function () {
  "use strict";
  const main = document.getElementById("quiz");
  if (!main) return;
  if (window.history && history.replaceState && /[?&]wx=/.test(location.search)) {
    const url = new URL(location.href);
    url.searchParams.delete("wx");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
  const wx = window.wx;
  if (!main.dataset.share || !wx || typeof wx.config !== "function") return;
  const here = location.href.split("#")[0];
  fetch(main.dataset.share + "?url=" + encodeURIComponent(here), {credentials: "same-origin"})
    .then((res) => (res.ok ? res.json() : null))
    .then((card) => {
      if (!card) return;  // no card this time: WeChat shows its plain one, the page works the same
      wx.config({debug: false, appId: card.appId, timestamp: card.timestamp, nonceStr: card.nonceStr,
                 signature: card.signature, jsApiList: ["updateAppMessageShareData", "updateTimelineShareData"]});
      wx.ready(function () {
        wx.updateAppMessageShareData({title: card.title, desc: card.desc, link: card.link, imgUrl: card.imgUrl});
        wx.updateTimelineShareData({title: card.title, link: card.link, imgUrl: card.imgUrl});
      });
    })
    .catch(function () { /* the card is a nicety; the quiz does not depend on it */ });
})();
