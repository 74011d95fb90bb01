// The Shoal console: plain browser JavaScript over the gateway's REST API (no build step, no library).
"use strict";

const API = "/v1";
const SNIPPET_FIELDS = ["summary", "text_en", "name", "title", "text"];
const state = { collections: [], current: null, image: null, lastHits: [] };
const $ = (id) => document.getElementById(id);

function headers() {
  const key = $("api-key").value.trim();
  sessionStorage.setItem("shoal-api-key", key);
  return Object.assign({ "content-type": "application/json" }, key ? { authorization: `Bearer ${key}` } : {});
}

async function call(method, path, body) {
  const resp = await fetch(API + path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = data.error || { code: String(resp.status), message: resp.statusText };
    throw new Error(`${resp.status} ${err.code}: ${err.message}`);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// ---- collections ---------------------------------------------------------------------------
async function loadCollections() {
  $("status").textContent = "loading collections…";
  try {
    const { collections } = await call("GET", "/collections");
    const described = await Promise.all(collections.map((c) => call("GET", `/collections/${encodeURIComponent(c.name)}`)
      .catch(() => c)));
    state.collections = described;
    const body = $("collections").querySelector("tbody");
    body.replaceChildren(...described.map((c) => el("tr", { "data-name": c.name, "aria-selected": "false",
      onclick: () => select(c.name) },
      el("td", {}, el("button", { class: "pick", type: "button", onclick: (e) => { e.stopPropagation(); select(c.name); } },
        c.name)),
      el("td", {}, c.model || `${c.dim}-d vectors`), el("td", { class: "num count" }, c.count),
      el("td", { class: "num" }, c.shards))));
    $("status").textContent = `${described.length} collections`;
    const wanted = state.current?.name || new URLSearchParams(location.search).get("collection") || described[0]?.name;
    if (wanted && described.some((c) => c.name === wanted)) select(wanted);
  } catch (e) {
    $("status").textContent = e.message;
  }
}

function select(name) {
  const c = state.collections.find((x) => x.name === name);
  if (!c) return;
  state.current = c;
  for (const tr of $("collections").querySelectorAll("tbody tr")) tr.setAttribute("aria-selected", tr.dataset.name === name);
  $("current-collection").textContent = `in ${name}`;
  $("shards-of").textContent = name;
  $("shards-box").hidden = false;
  $("shards").querySelector("tbody").replaceChildren(...(c.shard_info || []).map((s) => el("tr", {},
    el("td", { class: "num" }, s.index), el("td", { class: "num" }, s.replica), el("td", { class: "num" }, s.live),
    el("td", { class: "num" }, s.tombstones), el("td", { class: "num" }, s.tombstone_ratio.toFixed(3)),
    el("td", { class: "num" }, bytes(s.memory_bytes)), el("td", { class: "num" }, bytes(s.disk_bytes)),
    el("td", { class: "num" }, s.m),
    el("td", {}, s.rebuild.running ? `${s.rebuild.phase} ${s.rebuild.progress}/${s.rebuild.total}`
      : (s.available ? "idle" : `down: ${s.error}`)))));
  const images = (c.modality || "").includes("image");
  $("image-box").hidden = !images;
  if (!images) clearImage();
  $("fields").replaceChildren(...Object.entries(c.fields || {}).map(([f, type]) => el("button", { type: "button",
    title: `${type} field: add ${f}: to the query string`, onclick: () => addToFilter(`${f}:`) }, `${f} (${type})`)));
}

function addToFilter(text) {
  const box = $("filter");
  box.value = box.value.trim() ? `${box.value.trim()} AND ${text}` : text;
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

// ---- image input ---------------------------------------------------------------------------
function takeImage(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.image = String(reader.result).split(",", 2)[1];
    $("image-preview").src = reader.result;
    $("image-preview").hidden = false;
    $("image-preview").alt = `query image ${file.name}`;
    $("clear-image").hidden = false;
    $("drop-help").textContent = file.name;
    search();
  };
  reader.readAsDataURL(file);
}

function clearImage() {
  state.image = null;
  $("image").value = "";
  $("image-preview").hidden = true;
  $("clear-image").hidden = true;
  $("drop-help").textContent = "Drop an image here, or press Enter to choose one";
}

// ---- search --------------------------------------------------------------------------------
function searchBody() {
  const text = $("q").value.trim();
  const qs = $("filter").value.trim();
  const body = { k: Number($("k").value) || 10, explain: $("explain").checked, with_payload: true };
  if (state.image) body.image = state.image; else if (text) body.text = text;
  // With a text or an image the query string filters; alone, it is the whole query and ranks by its near/match.
  if (body.image || body.text) { if (qs) body.filter = qs; } else if (qs) body.query = qs;
  if (state.current?.model) body.vectors_model = state.current.model;
  return body;
}

async function search(event) {
  event?.preventDefault();
  if (!state.current) return;
  const body = searchBody();
  $("error").textContent = "";
  if (!body.text && !body.image && !body.query) { $("error").textContent = "type a query, drop an image or write a query string"; return; }
  $("summary").textContent = "searching…";
  try {
    const res = await call("POST", `/collections/${encodeURIComponent(state.current.name)}/search`, body);
    state.lastHits = res.hits;
    renderHits(res);
    renderPlan(res);
  } catch (e) {
    $("summary").textContent = "";
    $("results").replaceChildren();
    $("explain-view").hidden = true;
    $("error").textContent = e.message;
  }
}

function snippet(payload) {
  for (const f of SNIPPET_FIELDS) if (typeof payload[f] === "string" && payload[f]) return payload[f].slice(0, 200);
  return Object.entries(payload).filter(([k]) => k !== "thumbnail").map(([k, v]) => `${k}: ${v}`).join(", ").slice(0, 200);
}

function renderHits(res) {
  const missing = res.missing_shards.length ? ` (shards ${res.missing_shards.join(", ")} did not answer)` : "";
  $("summary").textContent = `${res.hits.length} hits in ${res.took_ms.toFixed(1)} ms${missing}`;
  $("results").replaceChildren(...res.hits.map((h, i) => el("li", { class: "card", "data-id": h.id },
    ...(h.payload.thumbnail ? [el("img", { src: h.payload.thumbnail, alt: h.payload.name || h.id, loading: "lazy" })] : []),
    el("span", { class: "id" }, `${i + 1}. ${h.id}`),
    el("span", { class: "score" }, `score ${h.score.toFixed(4)}`),
    el("span", { class: "snippet" }, snippet(h.payload)),
    el("span", { class: "actions" },
      el("button", { type: "button", class: "more", "aria-label": `more like ${h.id}`, onclick: () => steer(h.id, true) },
        "More like this"),
      el("button", { type: "button", class: "not", "aria-label": `not like ${h.id}`, onclick: () => steer(h.id, false) },
        "Not like this")))));
}

function vectorText(v) {
  return `[${v.map((x) => Number(x.toFixed(4))).join(", ")}]`;
}

// "More like this" ranks by the hit's own vector (the text box and image step aside, the query string ranks);
// "not like this" keeps the search and excludes the hit's nearest neighbours: both are visible in the query string.
async function steer(id, like) {
  try {
    const doc = await call("GET", `/collections/${encodeURIComponent(state.current.name)}/documents/${encodeURIComponent(id)}?with_vectors=true`);
    const near = `near:${vectorText(doc.vector)}`;
    if (like) {
      $("q").value = "";
      clearImage();
      const rest = $("filter").value.trim().replace(/^near:\[[^\]]*\](\s+AND\s+)?/, "");
      $("filter").value = rest ? `${near} AND ${rest}` : near;
    } else {
      addToFilter(`NOT ${near}@top:${Number($("exclude-k").value) || 5}`);
    }
    await search();
  } catch (e) {
    $("error").textContent = e.message;
  }
}

// ---- explain -------------------------------------------------------------------------------
function treeNode(label, children = []) {
  return el("li", {}, el("span", { class: "node" }, label), ...(children.length ? [el("ul", {}, ...children)] : []));
}

function renderPlan(res) {
  const plan = res.plan;
  $("explain-view").hidden = !plan;
  if (!plan) return;
  const clauses = (list) => (list || []).map((c) => treeNode(`${c.clause}  est ${c.estimated} / actual ${c.actual}`));
  const shards = (plan.shards || []).map((s) => treeNode(
    `shard ${s.shard}: ${s.strategy}, live ${s.live}, allowed ${s.allowed}, rounds ${s.rounds}, ef ${s.ef}` +
    (s.text_matches ? `, text matches ${s.text_matches}` : "") + `, ${s.latency_ms.toFixed(2)} ms`, clauses(s.clauses)));
  const resolved = plan.resolved?.length ? [treeNode("resolved first (rank-form sets)", clauses(plan.resolved))] : [];
  $("plan-tree").replaceChildren(el("ul", {}, treeNode(`ranking ${plan.ranking}: ${plan.tree || "(no filter)"}`,
    [...resolved, ...shards])));
  drawTimings([{ label: "gateway call (incl. embedding)", ms: res.took_ms, stage: true },
    { label: "coordinator", ms: plan.latency_ms, stage: true },
    ...(plan.shards || []).map((s) => ({ label: `shard ${s.shard} (${s.strategy})`, ms: s.latency_ms }))]);
}

function drawTimings(rows) {
  const svg = $("timings-chart");
  const NS = "http://www.w3.org/2000/svg";
  const rowH = 22, labelW = 230, width = 700, barW = width - labelW - 80;
  const max = Math.max(...rows.map((r) => r.ms), 0.001);
  svg.setAttribute("viewBox", `0 0 ${width} ${rows.length * rowH + 24}`);
  svg.replaceChildren();
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    add("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, r.label);
    add("rect", { class: r.stage ? "bar stage" : "bar", x: labelW, y, height: rowH - 6,
      width: Math.max(1, (r.ms / max) * barW), "data-ms": r.ms.toFixed(3) });
    add("text", { x: labelW + Math.max(1, (r.ms / max) * barW) + 4, y: y + 14 }, `${r.ms.toFixed(2)} ms`);
  });
  add("text", { x: labelW, y: rows.length * rowH + 18, fill: "#5b6775" }, "milliseconds (green: whole stages, blue: per shard)");
}

// ---- wiring --------------------------------------------------------------------------------
function init() {
  $("api-key").value = sessionStorage.getItem("shoal-api-key") || "";
  $("api-key").addEventListener("change", loadCollections);
  $("refresh").addEventListener("click", loadCollections);
  $("search-form").addEventListener("submit", search);
  $("filter").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) search(e); });
  const drop = $("drop");
  drop.addEventListener("click", () => $("image").click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("image").click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); takeImage(e.dataTransfer.files[0]); });
  $("image").addEventListener("change", () => takeImage($("image").files[0]));
  $("clear-image").addEventListener("click", clearImage);
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !["INPUT", "TEXTAREA"].includes(document.activeElement.tagName)) { e.preventDefault(); $("q").focus(); }
  });
  loadCollections();
}

document.addEventListener("DOMContentLoaded", init);
