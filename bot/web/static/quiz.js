// The quiz page (templates/quiz.html): plays one attempt through the JSON API (bot/web/quiz_api.py). Served as a
// file, so the page's CSP needs no inline script; no framework. The player is the HttpOnly cookie the server sets.
(function () {
  "use strict";
  const main = document.getElementById("quiz");
  const form = document.getElementById("start-form");
  if (!main || !form) return;  // the campaign is not open: the page says so and there is nothing to play
  const $ = (id) => document.getElementById(id);
  const slug = main.dataset.slug;
  const api = main.dataset.root + "api/quiz/" + encodeURIComponent(slug);
  const GRACE_MS = 3000;  // past a deadline the server forgives 2 s; wait longer so a timed-out answer counts as late
  let skew = 0;  // the server's clock minus ours, from the Date header (whole seconds)
  let attempt = null, question = null, upcoming = null, result = null, region = null, busy = false;
  let ticker = null, lateSend = null;

  function show(id) {
    for (const s of ["start", "question", "result"]) $(s).hidden = s !== id;
    window.scrollTo(0, 0);
  }
  function say(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }
  async function call(method, url, body) {
    const init = {method: method, credentials: "same-origin", headers: {}};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    const date = res.headers.get("Date");
    if (date && !isNaN(Date.parse(date))) skew = Date.parse(date) + 500 - Date.now();
    let data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    return {status: res.status, data: data};
  }

  // -- the region picker: township → village, or a school ------------------------------------------------------
  const township = $("township"), village = $("village"), school = $("school");
  const allVillages = village ? Array.prototype.slice.call(village.options) : [];
  function filterVillages() {
    if (!township) return;
    village.textContent = "";
    for (const o of allVillages) if (o.dataset.township === township.value) village.appendChild(o);
    village.selectedIndex = 0;
  }
  if (township) { township.onchange = filterVillages; filterVillages(); }
  function kind() {
    const checked = document.querySelector("input[name=kind]:checked");
    return checked ? checked.value : (village ? "village" : "school");
  }
  for (const radio of document.querySelectorAll("input[name=kind]")) {
    radio.onchange = () => {
      $("village-picker").hidden = kind() !== "village";
      $("school-picker").hidden = kind() !== "school";
    };
  }
  function chosen() {
    const select = kind() === "school" ? school : village;
    if (!select || select.selectedIndex < 0) return null;
    const option = select.options[select.selectedIndex];
    const place = kind() === "school" ? option.textContent
      : township.options[township.selectedIndex].textContent + " " + option.textContent;
    return {code: select.value, name: place};
  }

  // -- starting an attempt -------------------------------------------------------------------------------------
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    if (busy) return;
    region = chosen();
    if (!region) { say("请先选好您所在的村（社区）或学校。"); return; }
    const body = {region: region.code};
    const name = $("name").value.trim();
    if (name) body.name = name;
    busy = true;
    $("start-button").disabled = true;
    try {
      const res = await call("POST", api + "/attempts", body);
      if (res.status === 201) {
        say("");
        attempt = res.data.attempt;
        main.dataset.total = res.data.total;
        ask(res.data.question);
      } else if (res.status === 429) {
        say("今天的 " + main.dataset.attempts + " 次答题机会已经用完了。明天再来吧，今天的成绩已经记下了。");
      } else if (res.status === 409) {
        say("这次答题现在没有开放。请留意村里或学校的通知，开放后再来。");
      } else if (res.status === 400 && res.data.kind === "region") {
        say("请先选好您所在的村（社区）或学校。");
      } else if (res.status === 400) {
        say("名字最多 32 个字，不要用特殊符号。也可以不填。");
      } else {
        say("出了点问题，请稍后再试。");
      }
    } catch (e) {
      say("网络不太好，请稍后再点一次“开始答题”。");
    } finally {
      busy = false;
      $("start-button").disabled = false;
    }
  };

  // -- one question at a time ----------------------------------------------------------------------------------
  function ask(q) {
    question = q;
    upcoming = null;
    result = null;
    $("progress").textContent = "第 " + q.index + " 题 / 共 " + main.dataset.total + " 题";
    $("question-text").textContent = q.text;
    const box = $("options");
    box.textContent = "";
    q.options.forEach((text, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = String.fromCharCode(65 + i) + ". " + text;
      b.onclick = () => answer(i, false);
      box.appendChild(b);
    });
    $("feedback").hidden = true;
    show("question");
    startTimer(q.deadline);
  }
  function stopTimer() {
    if (ticker) clearInterval(ticker);
    if (lateSend) clearTimeout(lateSend);
    ticker = lateSend = null;
  }
  function startTimer(deadline) {
    stopTimer();
    const timer = $("timer");
    timer.classList.remove("up");
    timer.hidden = !deadline;
    if (!deadline) return;
    const end = Date.parse(deadline);
    const tick = () => {
      const left = Math.ceil((end - (Date.now() + skew)) / 1000);
      if (left > 0) { timer.textContent = "还剩 " + left + " 秒"; return; }
      clearInterval(ticker);
      ticker = null;
      timer.textContent = "时间到了";
      timer.classList.add("up");
      lock();
      // the answer goes anyway, once the server's grace is over: it is recorded as not answered in time
      lateSend = setTimeout(() => answer(0, true), GRACE_MS);
    };
    tick();
    if (!lateSend) ticker = setInterval(tick, 250);
  }
  function lock() {
    for (const b of $("options").children) b.disabled = true;
  }
  async function answer(choice, timedOut) {
    if (busy || !question) return;
    busy = true;
    stopTimer();
    lock();
    const buttons = $("options").children;
    let res;
    try {
      res = await call("POST", api + "/attempts/" + encodeURIComponent(attempt) + "/answers",
                       {question: question.id, choice: choice});
    } catch (e) {
      busy = false;
      say("网络不太好，请再点一次您的答案。");
      for (const b of buttons) b.disabled = false;
      return;
    }
    busy = false;
    const data = res.data;
    const late = res.status === 409 && data.kind === "deadline";
    if (res.status !== 200 && !late) {
      if (res.status === 409 && data.kind === "closed") say("答题已经结束了，这道题没有记上。");
      else if (res.status === 409 || res.status === 404) say("这次答题已经不能接着答了。请刷新页面，重新开始。");
      else say("出了点问题，请稍后再试。");
      return;
    }
    say("");
    const verdict = $("verdict");
    verdict.textContent = late ? "时间到了" : (data.correct ? "答对了！" : "答错了");
    verdict.className = "verdict " + (data.correct ? "right" : "wrong");
    if (buttons[data.answer]) buttons[data.answer].classList.add("right");
    if (!timedOut && !data.correct && buttons[choice]) buttons[choice].classList.add("wrong");
    $("explanation").textContent = (late ? "这道题没有在时间内答完。" : "") + (data.explanation || "");
    upcoming = data.next;
    result = data.result || null;
    $("next").textContent = upcoming ? "下一题" : "看成绩";
    $("feedback").hidden = false;
    $("next").focus();
  }
  $("next").onclick = () => {
    if (upcoming) ask(upcoming);
    else if (result) finish(result);
  };

  // -- the result, the certificate, the region's standing -------------------------------------------------------
  async function finish(r) {
    question = null;
    $("score").textContent = "答对 " + r.score + " 题，共 " + r.total + " 题";
    $("rank").textContent = "您现在排第 " + r.rank + " 名。";
    $("passed").hidden = !r.certificate;
    $("not-passed").hidden = !!r.certificate;
    if (r.certificate) {
      $("certificate-link").href = encodeURIComponent(slug) + "/certificate/" + encodeURIComponent(r.certificate);
    }
    show("result");
    try {
      const res = await call("GET", api + "/leaderboard");
      if (res.status !== 200) return;
      const mine = (res.data.regions || []).filter((x) => x.code === region.code)[0];
      if (mine) {
        let text = region.name + "：已有 " + mine.participants + " 人参加";
        if (mine.rate !== null) text += "，参与率 " + (mine.rate * 100).toFixed(1) + "%";
        if (mine.mean_score !== null) text += "，平均答对 " + mine.mean_score + " 题";
        $("my-region").textContent = text + "。";
      }
      const list = $("players");
      list.textContent = "";
      for (const p of (res.data.players || []).slice(0, 10)) {
        const li = document.createElement("li");
        li.textContent = p.name + "（" + p.region + "）" + p.score + " 题";
        list.appendChild(li);
      }
      $("standings").hidden = false;
    } catch (e) {
      // the standings are a bonus: the result is shown already
    }
  }
  $("again").onclick = () => { say(""); show("start"); };

  // -- 读给我听: the browser's speech synthesis, where there is one ---------------------------------------------
  const speak = $("speak");
  if ("speechSynthesis" in window && typeof window.SpeechSynthesisUtterance === "function") {
    speak.hidden = false;
    speak.onclick = () => {
      if (!question) return;
      const parts = [question.text];
      question.options.forEach((o, i) => parts.push("选项" + String.fromCharCode(65 + i) + "，" + o));
      const u = new SpeechSynthesisUtterance(parts.join("。"));
      u.lang = "zh-CN";
      u.rate = 0.9;
      window.speechSynthesis.cancel();
      window.speechSynthesis.speak(u);
    };
  }
})();
