// LLM Mesh dashboard: live regions and charts. No framework, no build step.
//
// - Every element with data-live="URL" is refreshed from that URL (server-rendered,
//   escaped HTML) every data-every ms while the page is visible, except while the
//   keyboard focus is inside it (so tabbing through a table is never interrupted).
// - data-series / data-history containers draw their charts with uPlot (vendored).
(() => {
  "use strict";

  const visible = () => document.visibilityState !== "hidden";

  function focusInside(el) {
    const a = document.activeElement;
    return a && a !== document.body && el.contains(a);
  }

  function startLive(el) {
    const url = el.dataset.live;
    const every = Number(el.dataset.every) || 5000;
    let busy = false;
    async function tick() {
      if (busy || !visible() || focusInside(el)) return;
      busy = true;
      try {
        const r = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
        if (r.ok) {
          const doc = new DOMParser().parseFromString(await r.text(), "text/html");
          el.replaceChildren(...doc.body.childNodes);
          el.dataset.updated = String(Date.now());
        }
      } catch (_) {
        // the gateway is restarting or the network hiccupped: try again next time
      } finally {
        busy = false;
      }
    }
    setInterval(tick, every);
  }

  // -- charts -------------------------------------------------------------------------------

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function makeChart(el, series) {
    const fg = css("--muted") || "#666";
    const grid = css("--line") || "#ddd";
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: 200,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1e-3, max * 1.1)] } },
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      series: [{}].concat(series.map((s) => ({
        label: s.label, stroke: s.color, width: 2, spanGaps: false,
        // percentiles have gaps (no request, no value): dots keep a lone value visible
        points: s.dots ? { show: true, size: 4, fill: s.color } : { show: false },
      }))),
      axes: [axis, Object.assign({ size: 55 }, axis)],
    };
    const empty = [[]].concat(series.map(() => []));
    const u = new uPlot(opts, empty, el);
    new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: 200 });
    }).observe(el);
    return u;
  }

  const OVERVIEW = {
    rps: [["req_per_s", "requests/s", "--accent"], ["errors_per_s", "failed/s", "--bad"]],
    latency: [["latency_p50_ms", "p50", "--accent", true], ["latency_p95_ms", "p95", "--sim", true]],
    ttft: [["ttft_p50_ms", "p50", "--accent", true], ["ttft_p95_ms", "p95", "--sim", true]],
    tps: [["tokens_per_s", "tokens/s", "--accent"]],
  };
  const HISTORY = {
    "node-requests": [["requests", "requests", "--accent"], ["errors", "failed", "--bad"]],
    "node-latency": [["latency_ms", "mean latency", "--accent", true]],
  };

  function chartsIn(box, spec) {
    const out = [];
    box.querySelectorAll("[data-chart]").forEach((el) => {
      const cols = spec[el.dataset.chart];
      if (!cols) return;
      const u = makeChart(el, cols.map(([, label, color, dots]) => ({ label, color: css(color), dots })));
      out.push({ u, cols, el });
    });
    return out;
  }

  // the points from ``from`` (unix seconds) on; all of them without ``from``
  function draw(charts, data, from) {
    let i0 = 0;
    if (from !== undefined) {
      while (i0 < data.t.length && data.t[i0] < from) i0++;
    }
    const cut = (arr) => (i0 ? arr.slice(i0) : arr);
    for (const c of charts) {
      c.u.setData([cut(data.t)].concat(c.cols.map(([key]) => cut(data[key]))));
      c.el.dataset.points = String(data.t.length - i0);
    }
  }

  // The overview's series: the first poll takes the whole hour, later ones what changed
  // since the last bucket held (which may have grown since).
  function startSeries(box) {
    if (typeof uPlot === "undefined") return;
    const charts = chartsIn(box, OVERVIEW);
    const every = Number(box.dataset.every) || 5000;
    const control = document.getElementById(box.dataset.windowControl || "");
    let data = null;
    let now = 0;
    const redraw = () => {
      if (!data) return;
      const span = control ? Number(control.value) : 0;
      draw(charts, data, span ? now - span : undefined);
    };
    if (control) control.addEventListener("change", redraw);
    async function tick() {
      if (!visible()) return;
      const since = data && data.t.length ? data.t[data.t.length - 1] : null;
      const url = box.dataset.series + (since === null ? "" : "?since=" + since);
      try {
        const r = await fetch(url, { cache: "no-store" });
        if (!r.ok) return;
        const body = await r.json();
        const p = body.points;
        if (!data || !p.t.length) {
          data = p;
        } else {
          const first = p.t[0];
          let keep = data.t.findIndex((t) => t >= first);
          if (keep < 0) keep = data.t.length;
          const horizon = body.now - body.window_s;
          let drop = 0;
          while (drop < keep && data.t[drop] <= horizon) drop++;
          for (const k of Object.keys(data)) {
            data[k] = data[k].slice(drop, keep).concat(p[k] || []);
          }
        }
        now = body.now;
        redraw();
      } catch (_) {
        // try again next time
      }
    }
    tick();
    setInterval(tick, every);
  }

  function startHistory(box) {
    if (typeof uPlot === "undefined") return;
    const charts = chartsIn(box, HISTORY);
    const every = Number(box.dataset.every) || 10000;
    async function tick() {
      if (!visible()) return;
      try {
        const r = await fetch(box.dataset.history, { cache: "no-store" });
        if (r.ok) draw(charts, (await r.json()).points);
      } catch (_) {
        // try again next time
      }
    }
    tick();
    setInterval(tick, every);
  }

  document.querySelectorAll("[data-live]").forEach(startLive);
  document.querySelectorAll("[data-series]").forEach(startSeries);
  document.querySelectorAll("[data-history]").forEach(startHistory);
})();
