// The fleet dashboard: every call goes through the admin API (`/v1/`) with the token the
// admin signed in with (kept in sessionStorage: this browser session only), so the page can
// do nothing the token cannot. No library: charts are drawn as SVG here.

const $ = (selector, root = document) => root.querySelector(selector);
const TOKEN_KEY = "edge-admin-token";
const REFRESH_MS = 10_000;
let refreshTimer = null;
let spaces = [];

/// An API call: the reply's JSON (null for 204), or an Error carrying the status and message.
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error((value && value.error) || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return value;
}

/// Shows `error` next to the field it names (`"<field>: <reason>"`), or at the form's foot.
function showError(form, error) {
  clearErrors(form);
  const message = error.message || String(error);
  const field = message.split(":")[0].trim();
  const slot = $(`[data-error="${CSS.escape(field)}"]`, form) || $('[data-error="body"]', form);
  if (slot) slot.textContent = message;
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error]")) slot.textContent = "";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  row.append(td);
  return td;
}

function fill(table, rows, render) {
  const body = $("tbody", table);
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    render(row, item);
    body.append(row);
  }
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

/// A button that asks once more before `action`.
function confirmButton(text, action) {
  const b = button(text, async () => {
    if (b.dataset.armed !== "1") {
      b.dataset.armed = "1";
      b.textContent = `Confirm ${text.toLowerCase()}`;
      b.classList.add("danger");
      return;
    }
    b.disabled = true;
    await action();
  });
  return b;
}

// ---- charts ---------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function human(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  const steps = unit === "bit/s" ? ["", "k", "M", "G", "T"] : [""];
  let v = value;
  let i = 0;
  while (v >= 1000 && i < steps.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)} ${steps[i]}${unit}`;
}

/// A line chart of `lines` ([{name, values}]) over the buckets' times.
function chart(title, times, lines, unit) {
  const width = 360;
  const height = 120;
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.dataset.chart = title;
  const caption = document.createElement("figcaption");
  const latest = lines.map((l) => `${l.name} ${human(l.values.filter((v) => v !== null).at(-1), unit)}`);
  caption.textContent = `${title}: ${latest.join(", ")}`;
  const max = Math.max(0, ...lines.flatMap((l) => l.values.filter((v) => v !== null)));
  const scale = max > 0 ? max : 1;
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  plot.append(svg("rect", { x: 0, y: 0, width, height, class: "frame" }));
  lines.forEach((line, index) => {
    const points = [];
    line.values.forEach((v, i) => {
      if (v === null) return;
      const x = (i / Math.max(1, times.length - 1)) * width;
      const y = height - 4 - (v / scale) * (height - 16);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (points.length > 1) {
      plot.append(svg("polyline", { points: points.join(" "), class: `line line-${index}` }));
    }
    // Points stand out on their own: a bucket with traffic between empty ones.
    for (const point of points) {
      const [cx, cy] = point.split(",");
      plot.append(svg("circle", { cx, cy, r: 2, class: `dot line-${index}` }));
    }
  });
  const top = svg("text", { x: 4, y: 12, class: "axis" });
  top.textContent = human(max, unit);
  plot.append(top);
  const left = svg("text", { x: 4, y: height - 4, class: "axis" });
  left.textContent = "-60 min";
  const right = svg("text", { x: width - 4, y: height - 4, class: "axis", "text-anchor": "end" });
  right.textContent = "now";
  plot.append(left, right);
  figure.append(caption, plot);
  return figure;
}

/// The four charts of a series of buckets.
function charts(container, points) {
  const seconds = 10;
  const times = points.map((p) => p.t);
  const rate = (p) => p.requests / seconds;
  container.replaceChildren(
    chart("Requests", times, [{ name: "req/s", values: points.map(rate) }], "/s"),
    chart(
      "Hit ratio",
      times,
      [{ name: "hits", values: points.map((p) => (p.requests ? (100 * p.hits) / p.requests : null)) }],
      "%",
    ),
    chart("Bandwidth", times, [{ name: "out", values: points.map((p) => (8 * p.bytes_out) / seconds) }], "bit/s"),
    chart(
      "Origin latency",
      times,
      [
        { name: "p50", values: points.map((p) => p.origin_p50_ms) },
        { name: "p99", values: points.map((p) => p.origin_p99_ms) },
      ],
      "ms",
    ),
  );
  container.dataset.drawn = String(points.some((p) => p.requests > 0));
}

// ---- views ----------------------------------------------------------------------------

async function loadOverview() {
  const chosen = $("#chart-space").value;
  // Only the series shown: the whole PoP's, or one space's.
  const [fleet, stats, listed, certs, purges] = await Promise.all([
    api("GET", "/v1/fleet"),
    api("GET", `/v1/stats?window=1h&space=${encodeURIComponent(chosen)}`),
    api("GET", "/v1/spaces"),
    api("GET", "/v1/certificates").catch(() => ({ certificates: [] })),
    api("GET", "/v1/purges").catch(() => []),
  ]);
  fill($("#fleet"), fleet.pops, (row, pop) => {
    cell(row, pop.name);
    cell(row, pop.admin);
    cell(row, pop.status).className = pop.status === "up" ? "up" : "down";
    cell(row, pop.last_seen);
  });
  const select = $("#chart-space");
  const names = listed.spaces.map((s) => s.name);
  select.replaceChildren(new Option("Whole PoP", ""), ...names.map((s) => new Option(s, s)));
  select.value = names.includes(chosen) ? chosen : "";
  charts($("#charts"), select.value ? stats.spaces[select.value] || [] : stats.total);
  const now = Date.now();
  fill($("#cert-expiry"), certs.certificates, (row, cert) => {
    cell(row, cert.names.join(", "));
    const days = Math.floor((Date.parse(cert.not_after) - now) / 86_400_000);
    const td = cell(row, days);
    td.className = days < 14 ? "warn" : "";
    cell(row, cert.source);
  });
  fill($("#purges"), purges.slice(-20).reverse(), (row, purge) => {
    cell(row, new Date(purge.at * 1000).toLocaleString());
    cell(row, purge.space);
    const what = [...(purge.files || []), ...(purge.tags || []).map((t) => `tag:${t}`)];
    cell(row, `${purge.soft ? "soft " : ""}${what.join(" ")}`);
  });
}

async function loadSpaces() {
  const reply = await api("GET", "/v1/spaces");
  spaces = reply.spaces;
  fill($("#space-list"), spaces, (row, space) => {
    cell(row, space.name);
    cell(row, space.ttl);
    cell(row, space.custom_domain);
    const cert = space.certificate;
    cell(row, cert && typeof cert === "object" ? cert.id || cert.file : cert);
    cell(row, space.source);
    const actions = cell(row, "");
    actions.textContent = "";
    actions.append(button("Charts", () => showSpaceCharts(space.name)));
    if (space.source === "api") {
      actions.append(button("Edit", () => editSpace(space)));
      actions.append(
        confirmButton("Delete", async () => {
          try {
            await api("DELETE", `/v1/spaces/${encodeURIComponent(space.name)}`);
            $("#space-status").textContent = `Space ${space.name} deleted.`;
          } catch (e) {
            $("#space-status").textContent = e.message;
          }
          await loadSpaces();
        }),
      );
    }
  });
  const purgeSpace = $("#purge-space");
  const chosen = purgeSpace.value;
  purgeSpace.replaceChildren(...spaces.map((s) => new Option(s.name, s.name)));
  if (spaces.some((s) => s.name === chosen)) purgeSpace.value = chosen;
}

async function showSpaceCharts(name) {
  const stats = await api("GET", `/v1/stats?window=1h&space=${encodeURIComponent(name)}`);
  const container = $("#space-charts");
  charts(container, stats.spaces[name] || []);
  container.dataset.space = name;
}

/// The space being edited, as listed: a save sends only the fields changed from it.
let editing = null;

/// A space's fields as the form shows them.
function formValues(space) {
  const cert = space.certificate;
  return {
    region: space.region || "",
    ttl: space.ttl || "",
    custom_domain: space.custom_domain || "",
    certificate: cert && typeof cert === "object" ? cert.id || "" : cert || "",
    query: typeof space.query === "string" ? space.query : "allow-list",
    http: space.http,
  };
}

function editSpace(space) {
  editing = space;
  const form = $("#space-form");
  clearErrors(form);
  form.elements.editing.value = space.name;
  form.elements.name.value = space.name;
  form.elements.name.disabled = true;
  form.elements.region.value = space.region || "";
  form.elements.ttl.value = space.ttl || "";
  form.elements.custom_domain.value = space.custom_domain || "";
  const cert = space.certificate;
  form.elements.certificate.value = cert && typeof cert === "object" ? cert.id || "" : cert || "";
  // An allow list stays as it is unless another policy is picked.
  for (const option of form.elements.query.querySelectorAll("option[value=allow-list]")) option.remove();
  if (typeof space.query !== "string") {
    form.elements.query.append(new Option(`allow: ${space.query.allow.join(", ")}`, "allow-list"));
  }
  form.elements.query.value = formValues(space).query;
  form.elements.http.value = space.http;
  $("#space-form-title").textContent = `Edit ${space.name}`;
  $("#space-save").textContent = "Save";
  $("#space-cancel").hidden = false;
}

function resetSpaceForm() {
  editing = null;
  const form = $("#space-form");
  form.reset();
  for (const option of form.elements.query.querySelectorAll("option[value=allow-list]")) option.remove();
  form.elements.editing.value = "";
  form.elements.name.disabled = false;
  $("#space-form-title").textContent = "Create a space";
  $("#space-save").textContent = "Create";
  $("#space-cancel").hidden = true;
}

async function saveSpace(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const name = form.elements.editing.value;
  const text = (field) => form.elements[field].value.trim();
  const before = name && editing ? formValues(editing) : {};
  const changed = (field) => !name || text(field) !== before[field];
  const body = {};
  for (const field of ["region", "ttl", "custom_domain"]) {
    if (!changed(field)) continue;
    if (text(field)) body[field] = text(field);
    else if (name) body[field] = null;
  }
  if (changed("certificate")) {
    const cert = text("certificate");
    if (cert) body.certificate = cert === "acme" ? "acme" : { id: cert };
    else if (name) body.certificate = null;
  }
  if (changed("query") && text("query") !== "allow-list") body.query = text("query");
  if (changed("http")) body.http = text("http");
  try {
    if (name) {
      await api("PATCH", `/v1/spaces/${encodeURIComponent(name)}`, body);
      $("#space-status").textContent = `Space ${name} saved.`;
    } else {
      body.name = text("name");
      await api("POST", "/v1/spaces", body);
      $("#space-status").textContent = `Space ${body.name} created.`;
    }
    resetSpaceForm();
    await loadSpaces();
  } catch (e) {
    showError(form, e);
  }
}

async function loadCertificates() {
  const reply = await api("GET", "/v1/certificates");
  fill($("#cert-list"), reply.certificates, (row, cert) => {
    cell(row, cert.id);
    cell(row, cert.names.join(", "));
    cell(row, cert.not_after);
    cell(row, cert.source);
    const actions = cell(row, "");
    actions.textContent = "";
    if (cert.source === "api") {
      actions.append(
        confirmButton("Delete", async () => {
          try {
            await api("DELETE", `/v1/certificates/${encodeURIComponent(cert.id)}`);
            $("#cert-status").textContent = `Certificate ${cert.id} deleted.`;
          } catch (e) {
            $("#cert-status").textContent = e.message;
          }
          await loadCertificates();
        }),
      );
    }
  });
}

async function uploadCertificate(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  try {
    const cert = await api("POST", "/v1/certificates", {
      cert: form.elements.cert.value,
      key: form.elements.key.value,
    });
    form.reset();
    $("#cert-status").textContent = `Uploaded ${cert.id} for ${cert.names.join(", ")}.`;
    await loadCertificates();
  } catch (e) {
    showError(form, e);
  }
}

async function loadKeys() {
  try {
    const reply = await api("GET", "/v1/keys");
    $("#keys-unavailable").hidden = true;
    fill($("#key-list"), reply.keys, (row, key) => {
      cell(row, key.access_key);
      cell(row, key.name);
      cell(row, key.grants.map((g) => `${g.bucket}:${g.access}`).join(", "));
      const actions = cell(row, "");
      actions.textContent = "";
      actions.append(
        confirmButton("Revoke", async () => {
          try {
            await api("DELETE", `/v1/keys/${encodeURIComponent(key.access_key)}`);
            $("#key-status").textContent = `Key ${key.access_key} revoked.`;
          } catch (e) {
            $("#key-status").textContent = e.message;
          }
          await loadKeys();
        }),
      );
    });
  } catch (e) {
    const note = $("#keys-unavailable");
    note.hidden = false;
    note.textContent = e.status === 404 ? "Access keys are not available on this PoP." : e.message;
  }
}

async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  try {
    const key = await api("POST", "/v1/keys", {
      name: form.elements.name.value.trim(),
      grants: [{ bucket: form.elements.bucket.value.trim(), access: form.elements.access.value }],
    });
    form.reset();
    $("#key-secret").hidden = false;
    $("#key-secret-value").textContent = key.secret_key;
    $("#key-status").textContent = `Key ${key.access_key} created.`;
    await loadKeys();
  } catch (e) {
    showError(form, e);
  }
}

async function purge(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const space = form.elements.space.value;
  const files = form.elements.files.value.split("\n").map((f) => f.trim()).filter(Boolean);
  const tags = form.elements.tags.value.split(/[\s,]+/).filter(Boolean);
  try {
    const reply = await api("DELETE", `/v1/spaces/${encodeURIComponent(space)}/cache`, {
      files,
      tags,
      soft: form.elements.soft.checked,
    });
    fill($("#purge-result"), reply.pops, (row, pop) => {
      cell(row, pop.pop);
      cell(row, pop.status);
      cell(row, pop.dropped);
    });
    $("#purge-result").dataset.done = "true";
  } catch (e) {
    showError(form, e);
  }
}

// ---- navigation -----------------------------------------------------------------------

const LOADERS = {
  overview: loadOverview,
  spaces: loadSpaces,
  certificates: loadCertificates,
  keys: loadKeys,
  purge: loadSpaces,
};

async function show(tab) {
  for (const name of Object.keys(LOADERS)) $(`#${name}`).hidden = name !== tab;
  for (const b of document.querySelectorAll("#tabs [data-tab]")) {
    b.classList.toggle("active", b.dataset.tab === tab);
  }
  document.body.dataset.tab = tab;
  clearInterval(refreshTimer);
  try {
    await LOADERS[tab]();
    document.body.dataset.loaded = tab;
  } catch (e) {
    if (e.status === 401 || e.status === 403) return signOut(e.message);
  }
  if (tab === "overview") refreshTimer = setInterval(() => loadOverview().catch(() => {}), REFRESH_MS);
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(refreshTimer);
  $("#tabs").hidden = true;
  for (const name of Object.keys(LOADERS)) $(`#${name}`).hidden = true;
  $("#sign-in").hidden = false;
  $('[data-error="token"]').textContent = reason || "";
}

async function signIn(event) {
  event.preventDefault();
  const token = event.target.elements.token.value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("GET", "/v1/spaces");
  } catch (e) {
    return signOut(e.status === 401 ? "That token is not valid here." : e.message);
  }
  event.target.reset();
  $("#sign-in").hidden = true;
  $("#tabs").hidden = false;
  await show("overview");
}

$("#sign-in-form").addEventListener("submit", signIn);
$("#sign-out").addEventListener("click", () => signOut());
for (const b of document.querySelectorAll("#tabs [data-tab]")) {
  b.addEventListener("click", () => show(b.dataset.tab));
}
$("#chart-space").addEventListener("change", () => loadOverview().catch(() => {}));
$("#space-form").addEventListener("submit", saveSpace);
$("#space-cancel").addEventListener("click", resetSpaceForm);
$("#cert-form").addEventListener("submit", uploadCertificate);
$("#key-form").addEventListener("submit", createKey);
$("#purge-form").addEventListener("submit", purge);
$("#key-copy").addEventListener("click", () => navigator.clipboard.writeText($("#key-secret-value").textContent));
for (const [input, target] of [["#cert-file", "#cert-pem"], ["#key-file", "#key-pem"]]) {
  $(input).addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) $(target).value = await file.text();
  });
}
if (sessionStorage.getItem(TOKEN_KEY)) {
  $("#sign-in").hidden = true;
  $("#tabs").hidden = false;
  show("overview");
}
