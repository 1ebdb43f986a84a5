// LLM Mesh ledger: check one entry in this browser, with its own WebCrypto.
//
// 1. fetch the entry (/v1/ledger) and recompute its leaf hash from its fields
//    (core/ledger_entry.py's encoding; SHA-256(0x00 || leaf), RFC 9162 §2.1.1);
// 2. fetch the first signed checkpoint that holds it (/v1/ledger/checkpoints) and the
//    published keys (/v1/ledger/keys); check the checkpoint note's Ed25519 signature
//    (C2SP signed-note: key hash = SHA-256(name || 0x0A || 0x01 || key)[:4]);
// 3. fetch the inclusion proof (/v1/ledger/proof/inclusion) and fold it from the leaf
//    hash to a root (RFC 9162 §2.1.3.2), which must be the root the checkpoint signs.
// Where the browser cannot (no WebCrypto outside a secure context, no Ed25519 in it),
// the step is asked of the server (/dashboard/api/verify), and the page says so.
(() => {
  "use strict";
  const form = document.getElementById("verify-form");
  if (!form) return;
  const base = document.body.dataset.base;
  const gateway = document.body.dataset.gateway;
  const result = document.getElementById("verify-result");
  const seqInput = document.getElementById("verify-seq");
  const enc = new TextEncoder();
  const subtle = window.crypto && window.crypto.subtle; // undefined outside secure contexts
  const BIG = new Set(["seq", "time_us", "amount", "tree_size", "index"]);

  // JSON with the integers that may pass 2^53 read exactly (the reviver's source text)
  function parseExact(text) {
    return JSON.parse(text, (k, v, ctx) =>
      BIG.has(k) && typeof v === "number" && ctx && typeof ctx.source === "string" ? BigInt(ctx.source) : v);
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store" });
    const text = await r.text();
    if (!r.ok) {
      let msg = "HTTP " + r.status;
      try { msg = JSON.parse(text).error.message || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    return parseExact(text);
  }

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  function unhex(s) {
    if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error("not hex");
    const out = new Uint8Array(s.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }
  function unb64(s) {
    const bin = atob(s);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function u64(n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return b;
  }
  function i64(n) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigInt64(0, BigInt(n));
    return b;
  }
  function str(s) {
    const d = enc.encode(s || "");
    if (d.length > 0xffff) throw new Error("a field is longer than 65535 bytes");
    const b = new Uint8Array(2 + d.length);
    new DataView(b.buffer).setUint16(0, d.length);
    b.set(d, 2);
    return b;
  }
  const sha256 = async (bytes) => new Uint8Array(await subtle.digest("SHA-256", bytes));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  function entryLeaf(e) {
    return concat(
      enc.encode("llm-mesh/ledger-entry/v1\0"), u64(e.seq), i64(e.time_us), str(e.kind),
      str(e.from), str(e.to), u64(e.amount), str(e.request_id), str(e.receipt_hash),
      unhex(e.prev_hash),
    );
  }

  // RFC 9162 §2.1.3.2, step by step; null when the proof does not reach a root
  async function rootFromProof(index, size, leaf, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    if (fn > sn) return null;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) return null;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), p, r));
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  // A C2SP checkpoint note: its signed body, what it says, and its signature lines
  function openNote(note) {
    const cut = note.indexOf("\n\n");
    if (cut < 0) throw new Error("not a signed note");
    const body = note.slice(0, cut + 1);
    const lines = body.split("\n").slice(0, -1);
    if (lines.length !== 4 || !lines[3].startsWith("time ")) throw new Error("not a checkpoint");
    const sigs = note.slice(cut + 2).split("\n").filter((l) => l.startsWith("\u2014 ")).map((l) => {
      const rest = l.slice(2);
      const sp = rest.lastIndexOf(" ");
      return { name: rest.slice(0, sp), raw: unb64(rest.slice(sp + 1)) };
    });
    return { body, origin: lines[0], size: BigInt(lines[1]), root: unb64(lines[2]), sigs };
  }

  async function ed25519(pub, sig, body) {
    const key = await subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return subtle.verify({ name: "Ed25519" }, key, sig, body);
  }

  function show(seq, steps, summary) {
    const h = document.createElement("h3");
    h.textContent = "Entry #" + seq + ": " + summary;
    const ul = document.createElement("ul");
    ul.className = "verify-steps";
    for (const s of steps) {
      const li = document.createElement("li");
      li.className = s.ok === true ? "ok" : s.ok === false ? "bad" : "skip-step";
      li.textContent = s.text + " ";
      const where = document.createElement("span");
      where.className = "where";
      where.textContent = s.where === "server" ? "(checked by the server)" : s.where === "browser" ? "(checked in this browser)" : "";
      li.appendChild(where);
      li.dataset.step = s.id;
      li.dataset.where = s.where || "";
      ul.appendChild(li);
    }
    result.replaceChildren(h, ul);
    result.dataset.seq = String(seq);
    result.dataset.verdict = steps.every((s) => s.ok === true) ? "ok" : steps.some((s) => s.ok === false) ? "bad" : "incomplete";
  }

  async function verify(seq) {
    result.dataset.verdict = "running";
    result.textContent = "Checking entry #" + seq + "…";
    const steps = [];
    const n = BigInt(seq);
    const page = await getJSON(gateway + "/v1/ledger?after=" + (n - 1n) + "&limit=1");
    const e = page.data[0];
    if (!e || BigInt(e.seq) !== n) throw new Error("there is no entry #" + seq);
    const cps = await getJSON(gateway + "/v1/ledger/checkpoints?after=" + n + "&limit=1");
    const cp = cps.data[0];
    if (!subtle) {
      // plain http to another machine: no WebCrypto at all; the server runs every check
      const s = await getJSON(base + "/api/verify?seq=" + n);
      steps.push({ id: "leaf", ok: s.leaf_ok, where: "server", text: "the leaf hash matches the entry's fields" });
      steps.push({ id: "signature", ok: s.signature_ok, where: "server", text: "the checkpoint is signed by the registry's published key" });
      steps.push({ id: "inclusion", ok: s.inclusion_ok, where: "server", text: "the inclusion proof leads to the signed root" });
      show(seq, steps, "this page is not a secure context (plain http to another machine), so the browser has no WebCrypto: the server checked it");
      return;
    }
    const leaf = await sha256(concat(Uint8Array.of(0), entryLeaf(e)));
    steps.push({ id: "leaf", ok: hex(leaf) === e.leaf_hash, where: "browser",
      text: "the leaf hash recomputed from the entry's fields is " + hex(leaf).slice(0, 16) + "… (published: " + e.leaf_hash.slice(0, 16) + "…)" });
    if (!cp) {
      steps.push({ id: "signature", ok: null, where: "", text: "no signed checkpoint holds this entry yet (one is signed within a minute)" });
      show(seq, steps, "not yet in a signed checkpoint");
      return;
    }
    const keys = await getJSON(gateway + "/v1/ledger/keys");
    const key = keys.data.find((k) => k.public_key === cp.public_key);
    const note = openNote(cp.note);
    let sigOk = false;
    let where = "browser";
    let sigText = "the checkpoint of size " + note.size + " is signed by the published key " + (key ? key.vkey : "(none matches)");
    if (key && note.origin === key.origin && note.size === BigInt(cp.tree_size)) {
      const pub = unb64(key.public_key);
      const kh = (await sha256(concat(enc.encode(key.origin + "\n"), Uint8Array.of(1), pub))).slice(0, 4);
      const line = note.sigs.find((s) => s.name === key.origin && s.raw.length === 68 && same(s.raw.slice(0, 4), kh));
      if (line) {
        try {
          sigOk = await ed25519(pub, line.raw.slice(4), enc.encode(note.body));
        } catch (err) {
          // this browser's WebCrypto has no Ed25519: ask the server
          const s = await getJSON(base + "/api/verify?seq=" + n);
          sigOk = s.signature_ok === true;
          where = "server";
          sigText += " — this browser's WebCrypto has no Ed25519";
        }
      }
    }
    steps.push({ id: "signature", ok: sigOk, where, text: sigText });
    const proof = await getJSON(gateway + "/v1/ledger/proof/inclusion?index=" + n + "&tree_size=" + cp.tree_size);
    const root = await rootFromProof(n, BigInt(cp.tree_size), leaf, proof.proof.map(unhex));
    steps.push({ id: "inclusion", ok: root !== null && same(root, note.root), where: "browser",
      text: "the inclusion proof (" + proof.proof.length + " hashes) leads from the leaf to the signed root " + hex(note.root).slice(0, 16) + "…" });
    const ok = steps.every((s) => s.ok === true);
    show(seq, steps, ok ? "included in the signed ledger" : "NOT verified");
  }

  async function run(seq) {
    try {
      await verify(seq);
    } catch (err) {
      result.dataset.verdict = "error";
      result.textContent = "Could not check entry #" + seq + ": " + (err && err.message ? err.message : err);
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = seqInput.value.trim();
    if (/^\d+$/.test(v)) run(v);
  });
  // the entry tables are refreshed in place: listen on the document
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest && ev.target.closest("button[data-verify]");
    if (!b) return;
    seqInput.value = b.dataset.verify;
    run(b.dataset.verify);
  });
})();
