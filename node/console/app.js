// The privacy officer's console (see node/src/api/console.rs). Plain DOM; every value
// from the node goes in as text, never as markup.
"use strict";

let csrf = "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function short(id) {
  return id ? String(id).slice(0, 12) + "…" : "";
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) {
    if (c instanceof Node) {
      const td = el("td");
      td.appendChild(c);
      tr.appendChild(td);
    } else {
      tr.appendChild(el("td", c));
    }
  }
  return tr;
}

function fill(tableId, rows, empty) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr", null, "empty");
    const td = el("td", empty);
    td.colSpan = document.querySelectorAll("#" + tableId + " thead th").length;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  for (const r of rows) body.appendChild(r);
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!r.ok) {
    const why = body && body.issue && body.issue[0] ? body.issue[0].diagnostics : r.statusText;
    const e = new Error(why || ("HTTP " + r.status));
    e.status = r.status;
    throw e;
  }
  return body;
}

function showError(message) {
  const p = document.getElementById("error");
  p.textContent = message;
  p.hidden = false;
}

function clearError() {
  const p = document.getElementById("error");
  p.textContent = "";
  p.hidden = true;
}

async function loadOverview() {
  const o = await api("/console/api/overview");
  fill("datasets-table", o.datasets.map(d => row([
    d.name || "(erased)", el("span", short(d.id), "id"), d.records, d.capacity, d.policy, d.registered,
    d.erased ? d.erased.at + ": " + d.erased.reason : "",
  ])), "No datasets.");
  const select = document.getElementById("f-dataset");
  select.replaceChildren(el("option", "all"));
  select.firstChild.value = "";
  for (const d of o.datasets) {
    const opt = el("option", d.name || short(d.id));
    opt.value = d.id;
    select.appendChild(opt);
  }
  fill("grants-table", o.grants.map(g => row([
    el("span", short(g.id), "id"), g.dataset_name || short(g.dataset), g.requester, g.granted, g.expires, g.status,
    g.break_glass ? "break-glass" : "demand + policy proof",
  ], g.break_glass ? "etreat" : "")), "No grants.");
  fill("demands-table", o.demands.map(d => row([
    el("span", short(d.id), "id"), d.dataset_name || short(d.dataset), d.requester, d.purpose, d.published,
    d.threshold, d.supplied ? "yes" : "no",
  ])), "No demands.");
  fill("consent-table", o.consents.map(c => row([
    c.patient, c.status, c.provision, c.recorded, c.permits.length ? c.permits.join(", ") : "no use",
  ], c.permits.length === 8 ? "" : "restricted")), "No Consent recorded.");
}

async function loadAccess() {
  const q = new URLSearchParams();
  const pairs = [["dataset", "f-dataset"], ["patient", "f-patient"], ["from", "f-from"], ["to", "f-to"]];
  for (const [k, id] of pairs) {
    const v = document.getElementById(id).value.trim();
    if (v) q.set(k, v);
  }
  const a = await api("/console/api/access?" + q.toString());
  fill("access-table", a.rows.map(r => row([
    r.recorded, r.event, r.purpose, r.requester, r.dataset_name || short(r.dataset),
    r.records === null ? "" : r.records, (r.patients || []).join(", "),
    r.verified ? "proof checks" : "PROOF FAILS",
  ], r.purpose === "ETREAT" ? "etreat" : "")), "No access in this selection.");
}

function reviewCell(r) {
  if (r.review) {
    const v = r.review;
    const span = el("span", (v.justified ? "justified" : "unjustified") + ": " + v.note,
      v.justified ? "verdict-yes" : "verdict-no");
    return span;
  }
  const box = el("div");
  const note = el("input");
  note.type = "text";
  note.placeholder = "note (public on chain: no patient details)";
  note.className = "note";
  const revoke = el("input");
  revoke.type = "checkbox";
  revoke.className = "revoke";
  const label = el("label");
  label.appendChild(revoke);
  label.appendChild(document.createTextNode(" revoke credential"));
  const yes = el("button", "Justified", "justified");
  const no = el("button", "Unjustified", "unjustified");
  const send = async (justified) => {
    try {
      await api("/console/api/break-glass/" + r.id + "/review", {
        method: "POST",
        headers: { "content-type": "application/json", "x-console-csrf": csrf },
        body: JSON.stringify({ justified, note: note.value, revoke_credential: !justified && revoke.checked }),
      });
      await refresh();
      clearError();
    } catch (e) {
      showError("The review was refused: " + e.message);
    }
  };
  yes.addEventListener("click", () => send(true));
  no.addEventListener("click", () => send(false));
  box.append(note, el("br"), label, el("br"), yes, no);
  return box;
}

async function loadBreakGlass() {
  const b = await api("/console/api/break-glass");
  fill("bg-table", b.requests.map(r => {
    const tr = row([
      new Date(r.requested_ms).toISOString().slice(0, 19).replace("T", " "), r.requester,
      r.scope && r.scope.patients ? r.scope.patients.join(", ") : "(scope unreadable)",
      r.scope && r.scope.justification ? r.scope.justification : "",
      new Date(r.until_ms).toISOString().slice(0, 19).replace("T", " "), r.grants.length,
    ], r.pending ? "pending" : "");
    tr.dataset.request = r.id;
    const td = el("td", null, "review");
    td.appendChild(reviewCell(r));
    tr.appendChild(td);
    return tr;
  }), "No break-glass requests.");
}

async function refresh() {
  await Promise.all([loadOverview(), loadAccess(), loadBreakGlass()]);
}

async function start() {
  let s;
  try {
    s = await api("/console/api/session");
  } catch (e) {
    if (e.status !== 401) showError("The node refused the console: " + e.message);
    return;
  }
  csrf = s.csrf;
  document.getElementById("who").textContent = "Signed in as " + s.member + " · consortium " + s.consortium;
  document.getElementById("signin").hidden = true;
  document.getElementById("console").hidden = false;
  const out = document.getElementById("signout");
  out.hidden = false;
  out.addEventListener("click", async () => {
    await api("/console/api/signout", { method: "POST" });
    location.reload();
  });
  document.getElementById("filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAccess().then(clearError, e => showError("The access log was refused: " + e.message));
  });
  try {
    await refresh();
    document.body.dataset.loaded = "true";
  } catch (e) {
    showError(e.message);
  }
}

document.addEventListener("DOMContentLoaded", start);
