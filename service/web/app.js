// painbattery web page: sign in with a token, studies, drag-and-drop upload with progress,
// live job status, battery and report. Plain JS, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("painbattery-token") || "";
let study = null;
let poller = null;

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("application/json") ? res.json() : res.text();
}

function cell(text) { const td = document.createElement("td"); td.textContent = text ?? ""; return td; }

async function signIn() {
  token = $("token").value.trim() || token;
  try {
    const me = await api("/api/v1/me");
    localStorage.setItem("painbattery-token", token);
    $("who").textContent = `lab: ${me.lab}`;
    $("signin").classList.add("hidden");
    $("studies-section").classList.remove("hidden");
    $("signin-msg").textContent = "";
    await loadStudies();
  } catch (e) {
    $("signin-msg").textContent = `sign-in failed (${e.message})`;
  }
}

async function loadStudies() {
  const studies = await api("/api/v1/studies");
  const body = $("studies");
  body.replaceChildren();
  for (const s of studies) {
    const tr = document.createElement("tr");
    tr.append(cell(s.id), cell(s.name), cell(s.sessions));
    const open = document.createElement("button");
    open.className = "link"; open.textContent = "open"; open.dataset.study = s.id;
    open.onclick = () => openStudy(s);
    const td = document.createElement("td"); td.append(open); tr.append(td);
    body.append(tr);
  }
}

async function createStudy() {
  try {
    await api("/api/v1/studies", { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify({ name: $("study-name").value }) });
    $("study-name").value = ""; $("study-msg").textContent = "";
    await loadStudies();
  } catch (e) { $("study-msg").textContent = e.message; }
}

function openStudy(s) {
  study = s;
  $("study-title").textContent = `Study ${s.id}: ${s.name}`;
  $("study-section").classList.remove("hidden");
  $("report").classList.add("hidden");
  if (poller) clearInterval(poller);
  refresh();
  poller = setInterval(refresh, 1500);
}

async function refresh() {
  if (!study) return;
  const sessions = await api(`/api/v1/studies/${study.id}/sessions`);
  const body = $("sessions");
  body.replaceChildren();
  for (const s of sessions) {
    const tr = document.createElement("tr");
    const job = s.job || {};
    const status = cell(job.status); status.className = `status-${job.status}`;
    tr.append(cell(s.session_id), cell(s.animal_id), cell(s.group), cell(s.timepoint), cell(s.assay), status,
              cell(job.progress !== undefined ? `${Math.round(100 * job.progress)} %` : ""), cell(job.error || job.message));
    body.append(tr);
  }
  const battery = await api(`/api/v1/studies/${study.id}/battery`);
  renderBattery(battery);
}

function renderBattery(rows) {
  const div = $("battery");
  div.replaceChildren();
  if (!rows.length) { div.textContent = "No scored sessions yet."; return; }
  const table = document.createElement("table");
  const cols = Object.keys(rows[0]);
  const head = document.createElement("tr");
  for (const c of cols) { const th = document.createElement("th"); th.textContent = c; head.append(th); }
  table.append(head);
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of cols) tr.append(cell(typeof r[c] === "number" ? r[c].toFixed(3) : r[c]));
    table.append(tr);
  }
  div.append(table);
}

function metadata() {
  const m = {
    session_id: $("m-session").value, animal_id: $("m-animal").value, group: $("m-group").value,
    timepoint: $("m-timepoint").value, assay: $("m-assay").value, fps: parseFloat($("m-fps").value),
    events: JSON.parse($("m-events").value || "[]"),
  };
  if ($("m-side").value) m.side = $("m-side").value;
  if ($("m-pxmm").value) m.px_per_mm = parseFloat($("m-pxmm").value);
  return m;
}

function upload(file) {
  let meta;
  try { meta = metadata(); } catch (e) { $("upload-msg").className = "error"; $("upload-msg").textContent = `events: ${e.message}`; return; }
  const form = new FormData();
  form.append("file", file);
  form.append("metadata", JSON.stringify(meta));
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/api/v1/studies/${study.id}/sessions`);
  xhr.setRequestHeader("Authorization", `Bearer ${token}`);
  const bar = $("upload-progress");
  bar.classList.remove("hidden"); bar.value = 0;
  xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) bar.value = (100 * ev.loaded) / ev.total; };
  xhr.onload = () => {
    const msg = $("upload-msg");
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 201) {
      msg.className = "ok"; msg.textContent = `uploaded ${file.name}: session ${body.session_id}, job ${body.job_id}`;
      bar.value = 100; refresh();
    } else {
      msg.className = "error"; msg.textContent = `upload failed (${xhr.status}): ${body.detail || xhr.statusText}`;
    }
  };
  xhr.onerror = () => { $("upload-msg").className = "error"; $("upload-msg").textContent = "upload failed: network error"; };
  xhr.send(form);
}

async function showReport() {
  try {
    const html = await api(`/api/v1/studies/${study.id}/report`);
    const frame = $("report");
    frame.srcdoc = html;
    frame.classList.remove("hidden");
    $("report-msg").textContent = "";
  } catch (e) { $("report-msg").textContent = e.message; }
}

$("signin-btn").onclick = signIn;
$("create-study").onclick = createStudy;
$("show-report").onclick = showReport;
$("file").onchange = (ev) => { if (ev.target.files.length) upload(ev.target.files[0]); };
const drop = $("drop");
drop.ondragover = (ev) => { ev.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (ev) => { ev.preventDefault(); drop.classList.remove("over"); if (ev.dataTransfer.files.length) upload(ev.dataTransfer.files[0]); };
if (token) { $("token").value = token; signIn(); }
