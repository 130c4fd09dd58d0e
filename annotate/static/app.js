// The annotation page: draws strokes, sends rounds, polls the server's job status, shows masks and the timeline.
"use strict";

const PALETTE = [[200, 200, 200], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128], [128, 0, 128],
                 [0, 128, 128], [128, 128, 128], [64, 0, 0], [192, 0, 0]];
const $ = (id) => document.getElementById(id);
const view = $("view"), ctx = view.getContext("2d");
const tl = $("timeline"), tctx = tl.getContext("2d");

let status = null;          // the server's /api/status
let frame = 0;
let brush = 1;
let showMasks = true;
let pending = { frame: null, strokes: [] };   // strokes drawn and not yet run: all on one frame
let drawing = null;          // the stroke being drawn
let lastJob = null;          // id of the last job whose end was shown
let polling = false;
let image = null, imageKey = "";

function rgb(c) { return `rgb(${c[0]},${c[1]},${c[2]})`; }
function numObjects() { return status && status.session ? status.session.num_objects : 0; }
function numFrames() { return status && status.session ? status.session.num_frames : 0; }

function say(text, kind = "info") {
  const m = $("msg");
  m.textContent = text || "";
  m.className = text ? kind : "";
}

async function api(path, body) {
  const opts = body === undefined ? { method: "POST" } :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `server answered ${r.status}` }));
  if (!r.ok || data.error) { say(data.error || `server answered ${r.status}`, "error"); return null; }
  if (data.job) { lastJob = null; poll(); }
  return data;
}

// -- status polling: never blocks the page; fast while a job runs ----------------------------------
async function poll() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const r = await fetch("/api/status");
      const s = await r.json();
      const before = status;
      status = s;
      showJob(s.job);
      if (!before || !before.session || !s.session || before.version !== s.version ||
          JSON.stringify(before.session) !== JSON.stringify(s.session)) refresh();
      if (!s.job || s.job.state !== "running") break;
      await new Promise((res) => setTimeout(res, 200));
    }
  } catch (e) {
    say(`lost the server: ${e}`, "error");
  } finally {
    polling = false;
  }
}

function showJob(job) {
  const p = $("progress");
  if (!job) { p.hidden = true; return; }
  if (job.state === "running") {
    p.hidden = false;
    // rounds report their stage; within the backend's step the last round's time gives the estimate
    const est = job.expected ? Math.min(0.95, job.elapsed / job.expected) : 0;
    $("bar").style.width = `${Math.round(100 * Math.max(0.05, job.fraction, est))}%`;
    const left = job.expected ? `, about ${Math.max(0, job.expected - job.elapsed).toFixed(0)} s left` : "";
    $("stage").textContent = `${job.kind}: ${job.stage} (${job.elapsed.toFixed(1)} s${left})`;
    return;
  }
  p.hidden = true;
  if (lastJob === job.id) return;
  lastJob = job.id;
  if (job.state === "error") { say(job.message, "error"); return; }
  const res = job.result || {};
  if (job.kind === "round") {
    say(`round ${res.round} on frame ${res.frame} done in ${job.elapsed.toFixed(1)} s; next: frame ${res.recommendation.frame}`);
    pending = { frame: null, strokes: [] };
  } else if (job.kind === "open") {
    frame = 0;
    pending = { frame: null, strokes: [] };
    say(`opened ${res.opened}`);
  } else if (job.kind === "save") say(`workspace saved in ${res.workspace}`);
  else if (job.kind === "export") say(`masks (PNG), overlay.mp4, quality.csv and quality.png written to ${res.out}`);
  else if (job.kind === "undo") say(`undone: ${res.rounds} round(s) left`);
  else if (job.kind === "method") say(`recommendation: frame ${res.frame ?? "-"} (${res.method})`);
}

// -- drawing ------------------------------------------------------------------------------------------
function refresh() {
  const s = status && status.session;
  if (!s) { drawTimeline(); return; }
  const [h, w] = s.work_size;
  if (view.width !== w || view.height !== h) { view.width = w; view.height = h; }
  $("objects").value = s.num_objects;
  if (!$("path").value) $("path").value = s.video;
  $("method").value = s.method;
  frame = Math.min(frame, s.num_frames - 1);
  $("slider").max = s.num_frames - 1;
  $("frame-count").textContent = s.num_frames - 1;
  buildBrushes();
  showFacts(s);
  showFrame();
}

function showFrame() {
  const s = status && status.session;
  if (!s) return;
  $("slider").value = frame;
  $("frame-no").textContent = frame;
  const overlay = showMasks && s.rounds > 0 ? 1 : 0;
  const key = `${frame}:${status.version}:${overlay}`;
  if (key !== imageKey) {
    const img = new Image();
    img.onload = () => { if (imageKey === key) { image = img; draw(); } };
    imageKey = key;
    img.src = `/api/frame/${frame}.jpg?overlay=${overlay}&v=${status.version}`;
  }
  draw();
  drawTimeline();
}

function draw() {
  if (image && image.complete) ctx.drawImage(image, 0, 0, view.width, view.height);
  if (pending.frame === frame) for (const st of pending.strokes) drawStroke(st);
  if (drawing) drawStroke(drawing);
  const n = pending.strokes.length;
  $("pending").textContent = n ? `${n} stroke(s) on frame ${pending.frame}, not run yet` : "";
}

function drawStroke(st) {
  if (!st.path.length) return;
  ctx.lineCap = "round"; ctx.lineJoin = "round";
  for (const [width, colour] of [[5, "rgba(255,255,255,0.9)"], [3, rgb(PALETTE[st.object_id] || [255, 0, 255])]]) {
    ctx.lineWidth = width; ctx.strokeStyle = colour;
    ctx.beginPath();
    st.path.forEach(([x, y], i) => {
      const px = x * view.width, py = y * view.height;
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    if (st.path.length === 1) ctx.lineTo(st.path[0][0] * view.width + 0.1, st.path[0][1] * view.height);
    ctx.stroke();
  }
}

function drawTimeline() {
  const W = tl.clientWidth || tl.width;
  if (tl.width !== W) tl.width = W;
  const H = tl.height, m = 12;
  tctx.clearRect(0, 0, W, H);
  const T = numFrames();
  if (!T) return;
  const s = status.session;
  const x = (t) => m + (T > 1 ? t / (T - 1) : 0.5) * (W - 2 * m);
  const y = (q) => H - 14 - q * (H - 28);
  tctx.strokeStyle = "#ddd"; tctx.lineWidth = 1;
  for (const q of [0, 0.5, 1]) { tctx.beginPath(); tctx.moveTo(m, y(q)); tctx.lineTo(W - m, y(q)); tctx.stroke(); }
  tctx.fillStyle = "#888"; tctx.font = "10px sans-serif";
  tctx.fillText("1", 1, y(1) + 3); tctx.fillText("0", 1, y(0) + 3);
  for (const a of s.annotated) {
    tctx.strokeStyle = "#999"; tctx.setLineDash([2, 2]);
    tctx.beginPath(); tctx.moveTo(x(a), 8); tctx.lineTo(x(a), H - 12); tctx.stroke(); tctx.setLineDash([]);
  }
  if (s.quality) {
    tctx.strokeStyle = "#2b6cb0"; tctx.lineWidth = 2; tctx.beginPath();
    s.quality.forEach((q, t) => { if (t === 0) tctx.moveTo(x(t), y(q)); else tctx.lineTo(x(t), y(q)); });
    tctx.stroke();
  } else if (s.rounds > 0) {
    tctx.fillStyle = "#7a4b00";
    tctx.fillText("no QA network weights: no predicted quality (see the note on the right)", m + 4, H / 2);
  }
  const rec = s.recommendation;
  if (rec) {
    const rx = x(rec.frame);
    tctx.fillStyle = "#d22";
    tctx.beginPath(); tctx.moveTo(rx - 6, 0); tctx.lineTo(rx + 6, 0); tctx.lineTo(rx, 9); tctx.fill();
    tctx.fillRect(rx - 1, 9, 2, H - 21);
  }
  tctx.fillStyle = "#000"; tctx.fillRect(x(frame) - 1, H - 12, 3, 12);
  tctx.fillStyle = "#555"; tctx.fillText(`frame ${frame}`, Math.min(W - 60, x(frame) + 4), H - 2);
}

function buildBrushes() {
  const K = numObjects();
  const box = $("brushes");
  if (box.childElementCount === K + 1) { markBrush(); return; }
  box.innerHTML = "";
  for (let k = 0; k <= K; k++) {
    const b = document.createElement("button");
    b.textContent = k === 0 ? "background (0)" : `object ${k} (${k})`;
    b.style.background = rgb(k === 0 ? [90, 90, 90] : PALETTE[k]);
    b.dataset.k = k;
    b.onclick = () => { brush = k; markBrush(); };
    box.appendChild(b);
  }
  if (brush > K) brush = 1;
  markBrush();
}

function markBrush() {
  for (const b of $("brushes").children) b.classList.toggle("active", Number(b.dataset.k) === brush);
}

function showFacts(s) {
  const rec = s.recommendation;
  const el = $("rec");
  if (rec) {
    el.dataset.frame = rec.frame;
    el.innerHTML = `Recommended next frame: <span id="rec-frame">${rec.frame}</span> (${rec.method})`;
    if (rec.note) el.insertAdjacentHTML("beforeend", `<span class="note"></span>`), el.lastChild.textContent = rec.note;
  } else {
    el.dataset.frame = "";
    el.textContent = "No recommendation yet: scribble on any frame and press Run.";
  }
  const q = s.quality;
  const facts = [
    ["video", `${s.video} (${s.num_frames} frames, ${s.full_size[1]}x${s.full_size[0]}; worked on at ${s.work_size[1]}x${s.work_size[0]})`],
    ["objects / VOS", `${s.num_objects} / ${s.backend}`],
    ["rounds", `${s.rounds}; annotated frames ${s.annotated.join(", ") || "none"}`],
    ["predicted quality", q ? `mean ${(q.reduce((a, b) => a + b, 0) / q.length).toFixed(3)}, this frame ${q[frame].toFixed(3)}` : "-"],
    ["QA network", s.qa], ["agent", s.agent],
  ];
  $("facts").innerHTML = "";
  for (const [k, v] of facts) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v;
    $("facts").append(dt, dd);
  }
}

// -- input ----------------------------------------------------------------------------------------------
function pointAt(ev) {
  const r = view.getBoundingClientRect();
  return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))];
}

view.addEventListener("pointerdown", (ev) => {
  if (!numFrames()) { say("open a video first", "error"); return; }
  if (pending.strokes.length && pending.frame !== frame) {
    say(`strokes on frame ${pending.frame} are not run yet: run them (Enter) or clear them (Esc) before drawing on frame ${frame}`, "error");
    return;
  }
  view.setPointerCapture(ev.pointerId);
  drawing = { object_id: brush, path: [pointAt(ev)] };
  draw();
});
view.addEventListener("pointermove", (ev) => { if (drawing) { drawing.path.push(pointAt(ev)); draw(); } });
view.addEventListener("pointerup", () => {
  if (!drawing) return;
  pending.frame = frame;
  pending.strokes.push(drawing);
  drawing = null;
  draw();
});

function goTo(t) {
  const T = numFrames();
  if (!T) return;
  frame = Math.max(0, Math.min(T - 1, t));
  showFrame();
  if (status.session.quality) showFacts(status.session);
}

function run() {
  if (!numFrames()) { say("open a video first", "error"); return; }
  // an empty stroke list is sent as is: the server says what is wrong, as the API and the CLI do
  const f = pending.strokes.length ? pending.frame : frame;
  api("/api/run", { frame: f, strokes: pending.strokes });
}

tl.addEventListener("click", (ev) => {
  const T = numFrames();
  if (!T) return;
  const r = tl.getBoundingClientRect(), m = 12;
  goTo(Math.round(((ev.clientX - r.left) * (tl.width / r.width) - m) / (tl.width - 2 * m) * (T - 1)));
});
$("slider").addEventListener("input", (ev) => goTo(Number(ev.target.value)));
$("run").onclick = run;
$("clear").onclick = () => { pending = { frame: null, strokes: [] }; draw(); };
$("undo").onclick = () => api("/api/undo");
$("jump").onclick = () => { const r = status && status.session && status.session.recommendation; if (r) goTo(r.frame); };
$("save").onclick = () => api("/api/save", {});
$("export").onclick = () => api("/api/export", {});
$("method").onchange = (ev) => { if (numFrames()) api("/api/method", { method: ev.target.value }); };
$("open-form").onsubmit = (ev) => {
  ev.preventDefault();
  api("/api/open", { path: $("path").value, objects: Number($("objects").value), backend: $("backend").value,
                     method: $("method").value });
};
$("upload").onchange = async (ev) => {
  const file = ev.target.files[0];
  if (!file) return;
  say(`uploading ${file.name} (${(file.size / 1e6).toFixed(1)} MB)...`);
  const r = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "PUT", body: file });
  const data = await r.json().catch(() => ({ error: `server answered ${r.status}` }));
  if (!r.ok || data.error) { say(data.error, "error"); return; }
  $("path").value = data.path;
  api("/api/open", { path: data.path, objects: Number($("objects").value), backend: $("backend").value,
                     method: $("method").value });
};

document.addEventListener("keydown", (ev) => {
  if (ev.target.closest("input, select, textarea")) return;
  const step = ev.shiftKey ? 10 : 1;
  if (ev.key === "ArrowRight") { goTo(frame + step); ev.preventDefault(); }
  else if (ev.key === "ArrowLeft") { goTo(frame - step); ev.preventDefault(); }
  else if (/^[0-9]$/.test(ev.key)) {
    const k = Number(ev.key);
    if (k <= numObjects()) { brush = k; markBrush(); } else say(`no object ${k}: this video has ${numObjects()}`, "error");
  }
  else if (ev.key === "r" || ev.key === "R") $("jump").onclick();
  else if (ev.key === "Enter") { run(); ev.preventDefault(); }
  else if (ev.key === "u" || ev.key === "U" || (ev.key === "z" && (ev.ctrlKey || ev.metaKey))) api("/api/undo");
  else if (ev.key === "Escape") $("clear").onclick();
  else if (ev.key === "m" || ev.key === "M") { showMasks = !showMasks; showFrame(); }
});
window.addEventListener("resize", drawTimeline);
poll();
