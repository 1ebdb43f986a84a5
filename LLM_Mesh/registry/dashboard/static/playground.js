// LLM Mesh playground: one streamed request through the gateway's OpenAI API, then what
// the mesh says about it (node, timings, cost, receipt). Everything is put on the page
// with textContent: nothing the model or the server sends is parsed as HTML.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const form = $("play-form");
  if (!form) return;
  const base = document.body.dataset.base;
  const gateway = document.body.dataset.gateway;
  const out = $("play-output");
  const status = $("play-status");
  const meta = $("play-meta");
  const send = $("play-send");
  const stop = $("play-stop");
  let controller = null;

  function chosenModel() {
    const task = $("play-task");
    const opt = task.options[task.selectedIndex];
    if (task.value && opt && opt.dataset.model) return opt.dataset.model;
    return $("play-model").value;
  }

  function row(dl, name, value) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    dl.append(dt, dd);
  }

  const ms = (v) => (typeof v === "number" ? v.toFixed(1) + " ms" : "—");

  function showMeta(mesh, usage, clientTtft, clientTotal, headers) {
    meta.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = "What the mesh says about it";
    const dl = document.createElement("dl");
    dl.className = "facts";
    dl.id = "play-facts";
    const nodeId = (mesh && mesh.node_id) || headers.get("x-mesh-node") || "";
    if (nodeId) {
      const a = document.createElement("a");
      a.href = base + "/nodes/" + encodeURIComponent(nodeId);
      a.textContent = nodeId;
      a.dataset.field = "node";
      row(dl, "Node", a);
    } else {
      row(dl, "Node", "—");
    }
    if (mesh) {
      row(dl, "Model", (mesh.model || "") + (mesh.engine ? " (" + mesh.engine + ")" : ""));
      if (mesh.simulated) row(dl, "Simulated", "yes: a simulated engine answered, not a real model");
      row(dl, "Time to first token (gateway)", ms(mesh.ttft_ms));
      row(dl, "Latency (gateway)", ms(mesh.latency_ms));
      row(dl, "Tokens", (mesh.prompt_tokens ?? "?") + " prompt + " + (mesh.completion_tokens ?? "?") + " completion");
      if (typeof mesh.tokens_per_s === "number") row(dl, "Speed (node)", mesh.tokens_per_s.toFixed(1) + " tokens/s");
      row(dl, "Cost", String(mesh.cost) + " " + (mesh.currency || "NetworkToken"));
      row(dl, "Attempts", String(mesh.attempts ?? 1) + (mesh.failover_from ? " (continued after " + mesh.failover_from.join(", ") + ")" : ""));
      row(dl, "Request id", mesh.request_id || headers.get("x-mesh-request-id") || "—");
      if (mesh.receipt) {
        const pre = document.createElement("pre");
        pre.className = "output";
        pre.textContent = JSON.stringify(mesh.receipt, null, 2);
        row(dl, "Receipt", pre);
      } else {
        row(dl, "Receipt", "no receipt in this answer");
      }
    } else if (usage) {
      row(dl, "Tokens", usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion");
    }
    row(dl, "In this browser", "first token after " + ms(clientTtft) + ", done after " + ms(clientTotal));
    meta.append(h, dl);
  }

  async function errorText(r) {
    try {
      const body = await r.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      // not JSON
    }
    return "HTTP " + r.status;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const model = chosenModel();
    if (!model) {
      status.textContent = "No model is up: start a node first.";
      return;
    }
    const body = {
      model,
      messages: [{ role: "user", content: $("play-prompt").value }],
      max_tokens: Number($("play-max").value) || 64,
      stream: true,
    };
    const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
    const key = $("play-key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    out.textContent = "";
    meta.replaceChildren();
    out.dataset.state = "streaming";
    status.textContent = "Sending to " + model + "…";
    const t0 = performance.now();
    let firstAt = null;
    let mesh = null;
    let usage = null;
    let failed = null;
    let chunks = 0;
    try {
      const r = await fetch(gateway + "/v1/chat/completions", {
        method: "POST", headers, body: JSON.stringify(body), signal: controller.signal,
      });
      if (!r.ok) {
        failed = await errorText(r);
      } else {
        status.textContent = "Streaming from " + (r.headers.get("x-mesh-node") || "a node") + "…";
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        let done = false;
        while (!done) {
          const { value, done: end } = await reader.read();
          if (end) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const event = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            for (const line of event.split("\n")) {
              if (!line.startsWith("data:")) continue;
              const data = line.slice(5).trim();
              if (data === "[DONE]") { done = true; break; }
              let obj;
              try { obj = JSON.parse(data); } catch (_) { continue; }
              if (obj.error) { failed = obj.error.message || "the stream failed"; continue; }
              const delta = obj.choices && obj.choices[0] && obj.choices[0].delta;
              if (delta && delta.content) {
                if (firstAt === null) firstAt = performance.now() - t0;
                out.textContent += delta.content;
                chunks += 1;
                out.dataset.chunks = String(chunks);
              }
              if (obj.mesh) mesh = obj.mesh;
              if (obj.usage) usage = obj.usage;
            }
          }
        }
        showMeta(mesh, usage, firstAt, performance.now() - t0, r.headers);
      }
    } catch (e) {
      failed = e && e.name === "AbortError" ? "stopped" : "the gateway could not be reached";
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
    out.dataset.state = failed ? "failed" : "done";
    status.textContent = failed ? "Not answered: " + failed : "Done.";
  });

  stop.addEventListener("click", () => {
    if (controller) controller.abort();
  });
})();
