// LLM Mesh operator view: the token lives in this tab's sessionStorage only and goes to
// the gateway as a bearer header; the server renders (and escapes) the operator's nodes.
(() => {
  "use strict";
  const KEY = "llm-mesh-operator-token";
  const form = document.getElementById("op-form");
  if (!form) return;
  const input = document.getElementById("op-token");
  const status = document.getElementById("op-status");
  const result = document.getElementById("op-result");
  const url = result.dataset.fragment;
  let timer = null;
  let memory = null; // where session storage is off: this page's memory only

  function stored() {
    try { return sessionStorage.getItem(KEY) || memory; } catch (_) { return memory; }
  }

  function forget(message) {
    memory = null;
    try { sessionStorage.removeItem(KEY); } catch (_) { /* storage off */ }
    if (timer) clearInterval(timer);
    timer = null;
    result.replaceChildren();
    status.textContent = message;
  }

  async function load() {
    const token = stored();
    if (!token || document.visibilityState === "hidden") return;
    if (result.contains(document.activeElement)) return;
    try {
      const r = await fetch(url, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
      if (r.status === 401) {
        forget("That token is not a live operator token; it was forgotten.");
        return;
      }
      if (!r.ok) {
        status.textContent = "The gateway said " + r.status + "; trying again shortly.";
        return;
      }
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      result.replaceChildren(...doc.body.childNodes);
      result.dataset.updated = String(Date.now());
      status.textContent = "Signed in for this tab.";
    } catch (_) {
      status.textContent = "The gateway could not be reached; trying again shortly.";
    }
  }

  function start() {
    load();
    if (!timer) timer = setInterval(load, 10000);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    try { sessionStorage.setItem(KEY, token); } catch (_) { memory = token; }
    input.value = "";
    start();
  });
  document.getElementById("op-forget").addEventListener("click", () => forget("Token forgotten."));
  if (stored()) start();
})();
