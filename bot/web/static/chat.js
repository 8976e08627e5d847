// The web chat page (templates/chat.html): served as a file, so the page's CSP needs no inline script.
const log = document.getElementById("log");
const input = document.getElementById("text");
let user = localStorage.getItem("fangfei-user");
if (!user) {
  user = "w-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
  localStorage.setItem("fangfei-user", user);
}
function bubble(text, who) {
  const div = document.createElement("div");
  div.className = "msg " + who;
  div.textContent = text;
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}
function options(list) {
  if (!list.length) return;
  const box = document.createElement("div");
  box.className = "options";
  for (const o of list) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = o.label;
    b.onclick = () => send(o.value, o.label);
    box.appendChild(b);
  }
  log.appendChild(box);
  log.scrollTop = log.scrollHeight;
}
async function send(text, shown) {
  bubble(shown === undefined ? text : shown, "me");
  try {
    const res = await fetch("api/chat", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({user: user, text: text})});
    const data = await res.json();
    for (const r of data.replies || []) { bubble(r.text, "bot"); options(r.options || []); }
    if (!data.replies && data.error) bubble("出了点问题，请稍后再试。", "bot");
  } catch (e) {
    bubble("网络不太好，请稍后再发一次。", "bot");
  }
}
document.getElementById("form").onsubmit = (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  send(text);
};
send("/start", "开始");
