// cnnlab dashboard: plain JS, no libraries, no network access beyond this server.
// Runs table (sortable), live curves (server-sent events), confusion matrix, feature maps,
// and a "try it" pad whose PNG goes to /api/predict (window.cnnlab.lastUpload keeps the
// exact bytes sent, window.cnnlab.lastPrediction the answer, for tests and curious users).
"use strict";

const cnnlab = (window.cnnlab = { lastUpload: null, lastPrediction: null, answers: 0, events: 0 });
const state = { runs: [], sortKey: "modified", sortDir: -1, run: null, source: null, featuresShown: false, text: false };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function fmt(value, key) {
  if (value === null || value === undefined) return "";
  if (key === "modified") return new Date(value * 1000).toLocaleString();
  if (typeof value === "number") {
    // Accuracies first: JSON's 1.0 arrives as the integer 1 and must read "100.00%" too.
    if (/accuracy/.test(key)) return (100 * value).toFixed(2) + "%";
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) < 1e-4 ? value.toExponential(2) : String(Number(value.toPrecision(4)));
  }
  return String(value);
}

// ---- runs table ---------------------------------------------------------------------------
const COLUMNS = [
  ["run", "run"], ["status", "status"], ["epochs_done", "epochs done"], ["data", "data"],
  ["model", "model"], ["model_args", "model args"], ["epochs", "epochs"], ["batch_size", "batch"],
  ["optimizer", "optimizer"], ["lr", "lr"], ["weight_decay", "wd"], ["schedule", "schedule"],
  ["augment", "augment"], ["seed", "seed"], ["backend", "backend"],
  ["best_val_accuracy", "best val acc"], ["test_accuracy", "test acc"], ["test_loss", "test loss"],
  ["seconds", "seconds"], ["modified", "modified"],
];

function compare(a, b) {
  const x = a[state.sortKey], y = b[state.sortKey];
  if (x === y) return 0;
  if (x === null || x === undefined || x === "") return 1; // blanks last, either direction
  if (y === null || y === undefined || y === "") return -1;
  if (typeof x === "number" && typeof y === "number") return state.sortDir * (x - y);
  return state.sortDir * String(x).localeCompare(String(y), undefined, { numeric: true });
}

function renderRuns() {
  const table = $("runs");
  const head = el("tr");
  for (const [key, label] of COLUMNS) {
    const th = el("th", { text: label, "data-key": key });
    if (key === state.sortKey) th.className = state.sortDir > 0 ? "sorted-asc" : "sorted-desc";
    th.addEventListener("click", () => {
      state.sortDir = key === state.sortKey ? -state.sortDir : 1;
      state.sortKey = key;
      renderRuns();
    });
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  const rows = [...state.runs].sort(compare).map((run) => {
    const tr = el("tr", { "data-run": run.run });
    if (run.run === state.run) tr.className = "selected";
    for (const [key] of COLUMNS) {
      const td = el("td", { text: fmt(run[key], key) });
      if (key === "status") td.className = "status-" + run.status;
      tr.append(td);
    }
    tr.addEventListener("click", () => selectRun(run.run));
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  $("no-runs").hidden = state.runs.length > 0;
}

// ---- line charts (SVG) --------------------------------------------------------------------
function lineChart(node, series, opts = {}) {
  const W = 400, H = 240, L = 48, R = 10, T = 24, B = 34;
  node.replaceChildren();
  const points = series.flatMap((s) => s.points);
  if (!points.length) {
    node.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "waiting for the first epoch"));
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(Math.max(...xs), x0 + 1);
  let y0 = opts.zero ? 0 : Math.min(...ys), y1 = Math.max(...ys);
  if (opts.max !== undefined) y1 = Math.max(y1, opts.max === 1 && y1 > 0.5 ? 1 : y1);
  if (y1 - y0 < 1e-12) { y0 -= 0.5 * Math.abs(y0 || 1); y1 += 0.5 * Math.abs(y1 || 1); }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (i / 4) * (y1 - y0);
    node.append(svg("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: "gridline" }));
    node.append(svg("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end" }, fmtAxis(y)));
  }
  const step = Math.max(1, Math.ceil((x1 - x0) / 8));
  for (let x = x0; x <= x1; x += step) {
    node.append(svg("text", { x: sx(x), y: H - B + 14, "text-anchor": "middle" }, String(x)));
  }
  node.append(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  node.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  node.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, "epoch"));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + " " + sy(p[1]).toFixed(1)).join(" ");
    node.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, class: "series" }));
    for (const p of s.points) {
      const dot = svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3, fill: s.color, class: "pt", "data-series": s.name });
      dot.append(svg("title", {}, `${s.name} epoch ${p[0]}: ${p[1]}`));
      node.append(dot);
    }
    const lx = L + 8 + i * 110; // legend above the plot
    node.append(svg("rect", { x: lx, y: 8, width: 10, height: 3, fill: s.color }));
    node.append(svg("text", { x: lx + 14, y: 13 }, s.name));
  });
}

function fmtAxis(y) {
  const a = Math.abs(y);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? y.toExponential(1) : String(+y.toPrecision(3));
}

function curve(history, key) {
  return history.filter((r) => r[key] !== null && r[key] !== undefined).map((r) => [r.epoch, r[key]]);
}

function renderCurves(history) {
  lineChart($("chart-loss"), [
    { name: "train loss", color: "#1f77b4", points: curve(history, "train_loss") },
    { name: "val loss", color: "#ff7f0e", points: curve(history, "val_loss") },
  ]);
  lineChart($("chart-accuracy"), [
    { name: "train acc", color: "#1f77b4", points: curve(history, "train_accuracy") },
    { name: "val acc", color: "#ff7f0e", points: curve(history, "val_accuracy") },
  ], { max: 1 });
  lineChart($("chart-lr"), [{ name: "lr", color: "#2ca02c", points: curve(history, "lr") }], { zero: true });
}

// ---- evaluation ---------------------------------------------------------------------------
function barRows(names, values, digits = 1) {
  return names.map((name, i) => {
    const v = values[i] ?? 0;
    const bar = el("div", { className: "bar" });
    bar.style.width = Math.round(200 * Math.max(0, Math.min(1, v))) + "px";
    return el("div", { className: "bar-row" }, [
      el("span", { className: "name", text: name, title: name }), bar,
      el("span", { className: "value", text: (100 * v).toFixed(digits) + "%" }),
    ]);
  });
}

function renderEvaluation(evaluation) {
  if (!evaluation) {
    $("confusion").replaceChildren(el("p", { className: "muted", text: "Written when the run ends (metrics.json)." }));
    $("per-class").replaceChildren(el("p", { className: "muted", text: "Written when the run ends." }));
    return;
  }
  if (evaluation.summarized) { renderLargeEvaluation(evaluation); return; }
  const { classes, confusion_matrix: cm } = evaluation;
  const head = el("tr", {}, [el("th")]);
  classes.forEach((c) => head.append(el("th", { text: c, title: "predicted " + c })));
  const rows = cm.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const tr = el("tr", {}, [el("th", { text: classes[i], title: "true " + classes[i] })]);
    row.forEach((count, j) => {
      const share = count / total;
      const td = el("td", { text: String(count), title: `true ${classes[i]}, predicted ${classes[j]}: ${count}` });
      td.style.background = `rgba(31, 95, 191, ${share.toFixed(3)})`;
      td.style.color = share > 0.5 ? "#fff" : "#222";
      tr.append(td);
    });
    return tr;
  });
  $("confusion").replaceChildren(el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]));
  $("per-class").replaceChildren(...barRows(classes, evaluation.per_class_accuracy));
}

// Over 30 classes the server sends no cells (a million for 1000 classes): a heatmap, the
// most frequent confusions and the least accurate classes instead.
function renderLargeEvaluation(evaluation) {
  const { classes, top_confusions: top, per_class_summary: s } = evaluation;
  const parts = [el("p", { className: "muted", text: `${classes.length} classes: the matrix as a heatmap (rows: true, columns: predicted; darker: a larger share of the true class); every cell is in metrics.json.` })];
  if (evaluation.heatmap) parts.push(el("img", { src: evaluation.heatmap, alt: "confusion matrix heatmap", className: "heatmap" }));
  const rows = (top || []).map((t) => el("tr", {}, [
    el("td", { text: t.true }), el("td", { text: t.predicted }), el("td", { text: String(t.count) }),
    el("td", { text: (100 * t.share).toFixed(1) + "%" }),
  ]));
  const head = el("tr", {}, ["true", "predicted", "count", "share of true"].map((t) => el("th", { text: t })));
  parts.push(el("h4", { text: `Top ${rows.length} confusions` }), el("table", { className: "top-confusions" }, [el("thead", {}, [head]), el("tbody", {}, rows)]));
  $("confusion").replaceChildren(...parts);
  if (!s) { $("per-class").replaceChildren(); return; }
  const summary = `mean ${(100 * s.mean).toFixed(2)}%, median ${(100 * s.median).toFixed(2)}%, min ${(100 * s.min).toFixed(2)}%, max ${(100 * s.max).toFixed(2)}% over ${s.with_images} classes; ${s.perfect} at 100%, ${s.zero} at 0%`;
  $("per-class").replaceChildren(el("p", { className: "muted", text: summary }),
    el("h4", { text: `The ${s.worst.length} least accurate` }),
    ...barRows(s.worst.map((w) => w.class), s.worst.map((w) => w.accuracy), 2));
}

// An answer's JSON, or an error naming the status when the body is not JSON.
async function answer(r) {
  try {
    return await r.json();
  } catch {
    return { error: `${r.status} ${r.statusText || "error"} (the server's answer was not JSON)` };
  }
}

// ---- the selected run ---------------------------------------------------------------------
function renderRun(details) {
  $("run-section").hidden = false;
  $("run-name").textContent = details.run;
  const s = details.summary;
  $("run-status").textContent = `${s.status}, ${s.epochs_done} of ${s.epochs ?? "?"} epochs`;
  renderCurves(details.history);
  renderEvaluation(details.evaluation);
  $("config").textContent = JSON.stringify(details.config, null, 2);
  $("files").replaceChildren(...details.files.map((f) => el("li", {}, [
    el("a", { href: "/files/" + details.run.split("/").map(encodeURIComponent).join("/") + "/" + f.split("/").map(encodeURIComponent).join("/"), target: "_blank", rel: "noopener", text: f }),
  ])));
  setTryMode(details.files.includes("vocab.json")); // a text run: a text box, not the pad
  if (state.featuresShown) loadFeatures(false);
}

// A text run (vocab.json in its folder) gets a text area and highlighted words instead of
// the drawing pad; its feature-map card (test images) is hidden.
function setTryMode(text) {
  if (state.text === text) return;
  state.text = text;
  $("try-image").hidden = $("try-seen").hidden = text;
  $("try-text").hidden = !text;
  $("features-form").closest(".card").hidden = text;
  $("try-hint").textContent = text ? "type a text: top-5 classes and the words that decided" : "draw with the mouse, or upload a PNG/JPEG";
  $("prediction").replaceChildren(el("p", { className: "muted", text: placeholder() }));
  $("text-words").replaceChildren();
}

const placeholder = () => (state.text ? "Type a sentence." : "Draw something.");

function selectRun(name) {
  if (state.source) state.source.close();
  state.run = name;
  state.featuresShown = false;
  $("features").replaceChildren();
  $("prediction").replaceChildren(el("p", { className: "muted", text: placeholder() }));
  $("text-words").replaceChildren();
  history.replaceState(null, "", name ? "#run=" + encodeURIComponent(name) : "#");
  renderRuns();
  connect();
}

function connect() {
  const url = "/api/events" + (state.run ? "?run=" + encodeURIComponent(state.run) : "");
  const source = (state.source = new EventSource(url));
  source.onopen = () => { $("live").textContent = "live"; $("live").className = "live"; };
  source.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; };
  source.addEventListener("runs", (e) => {
    state.runs = JSON.parse(e.data).runs;
    if (!state.run && state.runs.length) {
      const newest = [...state.runs].sort((a, b) => b.modified - a.modified)[0];
      selectRun(newest.run);
      return;
    }
    renderRuns();
    document.body.dataset.ready = "1";
  });
  source.addEventListener("run", (e) => {
    cnnlab.events += 1;
    renderRun(JSON.parse(e.data));
    document.body.dataset.ready = "1";
  });
  source.addEventListener("pending", (e) => {
    $("run-section").hidden = false;
    $("run-name").textContent = JSON.parse(e.data).run;
    $("run-status").textContent = "waiting for the run to write its first file";
    renderCurves([]);
    document.body.dataset.ready = "1";
  });
  source.addEventListener("gone", () => { source.close(); state.run = null; $("run-section").hidden = true; connect(); });
}

// ---- feature maps -------------------------------------------------------------------------
let featuresBusy = false;
async function loadFeatures(explicit = true) {
  if (!state.run || featuresBusy) return;
  featuresBusy = true;
  state.featuresShown = true;
  const index = $("features-index").value || "0";
  try {
    const r = await fetch(`/api/features?run=${encodeURIComponent(state.run)}&index=${encodeURIComponent(index)}`);
    const body = await answer(r);
    if (!r.ok) { if (explicit) $("features").replaceChildren(el("p", { className: "error", text: `${r.status}: ${body.error}` })); return; }
    $("features-index").value = body.index;
    $("features-source").textContent = `(weights: ${body.source}; ${body.count} test images)`;
    const first = el("figure", {}, [el("img", { src: body.image, alt: "test image" }),
      el("figcaption", { text: `#${body.index}: true ${body.label}, predicted ${body.predicted} (${(100 * body.probability).toFixed(1)}%)` })]);
    const maps = body.layers.map((layer) => el("figure", {}, [el("img", { src: layer.png, alt: layer.label }),
      el("figcaption", { text: `${layer.label} ${layer.shape.join("x")}` })]));
    $("features").replaceChildren(first, ...maps);
  } finally {
    featuresBusy = false;
  }
}

// ---- try it -------------------------------------------------------------------------------
const pad = () => $("pad");
function clearPad() {
  const ctx = pad().getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad().width, pad().height);
}

function setupPad() {
  clearPad();
  let drawing = false, last = null;
  const pos = (e) => { const r = pad().getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  pad().addEventListener("pointerdown", (e) => { drawing = true; last = pos(e); stroke(last, last); });
  pad().addEventListener("pointermove", (e) => { if (!drawing) return; const p = pos(e); stroke(last, p); last = p; });
  const end = () => { if (!drawing) return; drawing = false; sendPad(); };
  pad().addEventListener("pointerup", end);
  pad().addEventListener("pointerleave", end);
  $("pad-clear").addEventListener("click", () => { clearPad(); $("prediction").replaceChildren(el("p", { className: "muted", text: "Draw something." })); });
  $("upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try { // show it on the pad; the original bytes are what is sent
      const bitmap = await createImageBitmap(file);
      clearPad();
      pad().getContext("2d").drawImage(bitmap, 0, 0, pad().width, pad().height);
    } catch (err) { clearPad(); } // not decodable here: the server says why
    await send(new Uint8Array(await file.arrayBuffer()));
  });
}

function stroke(a, b) {
  const ctx = pad().getContext("2d");
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a[0], a[1]);
  ctx.lineTo(b[0], b[1]);
  ctx.stroke();
}

function sendPad() {
  pad().toBlob(async (blob) => send(new Uint8Array(await blob.arrayBuffer())), "image/png");
}

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function send(bytes) {
  if (!state.run) return;
  cnnlab.lastUpload = toBase64(bytes);
  const r = await fetch(`/api/predict?run=${encodeURIComponent(state.run)}&top_k=5`, {
    method: "POST", body: bytes, headers: { "Content-Type": "application/octet-stream" },
  });
  const body = await answer(r);
  cnnlab.answers += 1;
  if (!r.ok) {
    cnnlab.lastPrediction = { error: body.error, status: r.status };
    $("prediction").replaceChildren(el("p", { className: "error", text: `${r.status}: ${body.error}` }));
    return;
  }
  cnnlab.lastPrediction = body;
  const top = body.top;
  $("prediction").replaceChildren(
    el("p", { id: "top1", text: `${top[0].class} (${(100 * top[0].probability).toFixed(2)}%)`, "data-class": top[0].class }),
    ...barRows(top.map((t) => t.class), top.map((t) => t.probability), 2),
    el("p", { className: "muted", text: `weights: ${body.source}` }),
  );
  await drawSeen(body.input, body.cam);
}

async function sendText() {
  const text = $("text-input").value;
  if (!state.run || !text.trim()) return;
  cnnlab.lastUpload = text;
  const r = await fetch(`/api/predict?run=${encodeURIComponent(state.run)}&top_k=5`, {
    method: "POST", body: text, headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
  const body = await answer(r);
  cnnlab.answers += 1;
  if (!r.ok) {
    cnnlab.lastPrediction = { error: body.error, status: r.status };
    $("prediction").replaceChildren(el("p", { className: "error", text: `${r.status}: ${body.error}` }));
    $("text-words").replaceChildren();
    return;
  }
  cnnlab.lastPrediction = body;
  const top = body.top;
  $("prediction").replaceChildren(
    el("p", { id: "top1", text: `${top[0].class} (${(100 * top[0].probability).toFixed(2)}%)`, "data-class": top[0].class }),
    ...barRows(top.map((t) => t.class), top.map((t) => t.probability), 2),
    el("p", { className: "muted", text: `weights: ${body.source}` }),
  );
  // Each token on a background as strong as its Grad-CAM weight (textContent: no markup read).
  const words = body.tokens.map((t, i) => {
    const span = el("span", {
      className: "tok" + (body.unknown[i] ? " unk" : ""), text: t,
      title: `${body.weights[i].toFixed(2)}${body.unknown[i] ? " (not in the vocabulary: <unk>)" : ""}`,
    });
    span.style.background = `rgba(220, 40, 20, ${(0.85 * body.weights[i]).toFixed(2)})`; // CSSOM: allowed by the CSP
    return span;
  });
  const spaced = words.flatMap((w, i) => (i ? [" ", w] : [w]));
  $("text-words").replaceChildren(
    el("p", { className: "muted", text: `Grad-CAM for ${top[0].class}:` }),
    el("p", { className: "words" }, spaced),
    ...(body.cut ? [el("p", { className: "muted", text: `(+${body.cut} tokens past the padded length were not read)` })] : []),
    el("p", { className: "muted", text: "words that decided: " + body.deciding.map((d) => `${d.token} ${d.weight.toFixed(2)}`).join(", ") }),
  );
}

function jet(v) {
  const r = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 3)));
  const g = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 2)));
  const b = Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - 1)));
  return [255 * r, 255 * g, 255 * b];
}

async function drawSeen(src, cam) {
  const img = new Image();
  img.src = src;
  await img.decode();
  for (const id of ["seen", "overlay"]) {
    const ctx = $(id).getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, 196, 196);
    ctx.drawImage(img, 0, 0, 196, 196);
  }
  const ctx = $("overlay").getContext("2d");
  if (!cam) {
    ctx.fillStyle = "rgba(255,255,255,0.8)";
    ctx.fillRect(0, 170, 196, 26);
    ctx.fillStyle = "#000";
    ctx.fillText("Grad-CAM not available", 6, 187);
    return;
  }
  const h = cam.length, w = cam[0].length;
  if (Math.max(...cam.flat()) <= 0) { // ReLU(sum) was zero everywhere: no positive evidence
    ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(0, 170, 196, 26);
    ctx.fillStyle = "#000";
    ctx.fillText("Grad-CAM is zero everywhere", 6, 187);
    return;
  }
  const heat = document.createElement("canvas");
  heat.width = w; heat.height = h;
  const data = heat.getContext("2d").createImageData(w, h);
  cam.forEach((row, y) => row.forEach((v, x) => {
    const [r, g, b] = jet(v);
    data.data.set([r, g, b, 120], 4 * (y * w + x)); // the usual Grad-CAM look: jet at ~half opacity
  }));
  heat.getContext("2d").putImageData(data, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(heat, 0, 0, 196, 196);
}

// ---- start --------------------------------------------------------------------------------
window.addEventListener("DOMContentLoaded", () => {
  setupPad();
  $("text-send").addEventListener("click", sendText);
  $("text-input").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) sendText(); });
  $("features-form").addEventListener("submit", (e) => { e.preventDefault(); loadFeatures(); });
  $("features-next").addEventListener("click", () => { $("features-index").value = +$("features-index").value + 1; loadFeatures(); });
  const match = location.hash.match(/^#run=(.+)$/);
  state.run = match ? decodeURIComponent(match[1]) : null;
  connect();
});
