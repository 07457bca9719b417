// Dockmaster's operators' page: reads the HTTP API (and nothing else) with the caller's credentials.
// No framework and no build step: DOM built from text nodes only (never parsed from strings), so whatever a
// registry or a resource group is called is shown as text. Routes live in the URL's fragment.
"use strict";

const KEY = "dockmaster.functionKey"; // this tab only (sessionStorage), sent to this origin only
const PAGE_SIZE = 100;
const POLL_MS = 2000;
const main = document.getElementById("main");
const announcer = document.getElementById("status");
let generation = 0; // bumped by every navigation: late answers of an older view are dropped
let timers = [];

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function functionKey() {
  return window.sessionStorage.getItem(KEY);
}

async function call(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = { Accept: "application/json" };
  const key = functionKey();
  if (key) headers["x-functions-key"] = key;
  const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
  if (!response.ok) {
    let code = "HttpError";
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) ({ code, message } = body.error);
    } catch (_) {
      // not the API's error shape (App Service authentication answers 401 with no body)
    }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

const api = async (path, params) => (await call(path, params)).json();
const seg = encodeURIComponent;
const repoPath = (repository) => repository.split("/").map(seg).join("/");
const registryApi = (registry) => `/api/registries/${seg(registry)}`;

// ---------------------------------------------------------------- DOM helpers

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2).toLowerCase(), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const link = (href, ...children) => h("a", { href }, ...children);

function badge(status, text) {
  const value = status || "none";
  return h("span", { class: `badge b-${value.replace(/[^A-Za-z-]/g, "")}` }, text || value);
}

function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const shown = `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  return h("time", { datetime: iso, title: relative(date) }, shown);
}

function relative(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  const format = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(Math.round(seconds), "second");
}

function table(caption, headings, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    {},
    h("caption", { class: caption ? "" : "visually-hidden" }, caption || headings.join(", ")),
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))),
  );
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function crumbs(...items) {
  const entries = [["Registries", "#/"], ...items];
  return h(
    "nav",
    { class: "crumbs", "aria-label": "Breadcrumb" },
    h("ol", {}, entries.map(([text, href], i) => h("li", {}, i === entries.length - 1 ? h("span", { "aria-current": "page" }, text) : link(href, text)))),
  );
}

const shortDigest = (digest) => (digest ? h("code", { title: digest }, digest.replace(/^sha256:/, "").slice(0, 12)) : "—");

// A section loads on its own: one failing read shows its error in place, the rest of the view stands.
async function section(title, load) {
  const heading = h("h2", {}, title);
  try {
    return [heading, await load()];
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return [heading, problem(error)];
  }
}

function problem(error) {
  const what = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
  return h("p", { class: "notice error", role: "alert" }, what);
}

// ---------------------------------------------------------------- views

async function registriesView() {
  const { registries } = await api("/api/registries");
  return {
    title: "Registries",
    section: "registries",
    nodes: [
      h("h1", { tabindex: "-1" }, "Registries"),
      table(
        "",
        ["Registry", "Login server", "Resource"],
        registries.map((r) => [link(`#/registries/${seg(r.name)}`, r.name), h("code", {}, r.loginServer), h("span", { class: "small muted" }, r.resourceId)]),
        "No registries are configured (DOCKMASTER_REGISTRIES).",
      ),
    ],
  };
}

function pager(base, query, nextLast) {
  const page = Number(query.get("page") || "1");
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    page > 1 ? link(base, "First page") : null,
    h("span", { class: "muted" }, `Page ${page}`),
    nextLast ? link(`${base}?last=${seg(nextLast)}&page=${page + 1}`, "Next page") : null,
  );
}

async function registryView([registry], query) {
  const base = `#/registries/${seg(registry)}`;
  const repos = section("Repositories", async () => {
    const page = await api(`${registryApi(registry)}/repositories`, { n: PAGE_SIZE, last: query.get("last") });
    const last = page.nextLink ? page.repositories[page.repositories.length - 1] : null;
    return [
      table("", ["Repository"], page.repositories.map((name) => [link(`${base}/repositories/${seg(name)}`, name)]), "No repositories yet."),
      pager(base, query, last),
    ];
  });
  const runs = section("Recent runs", async () => {
    const { runs: found } = await api(`${registryApi(registry)}/runs`, { top: 20 });
    return runsTable(registry, found);
  });
  return {
    title: registry,
    section: "registries",
    nodes: [crumbs([registry, base]), h("h1", { tabindex: "-1" }, registry), ...(await repos), ...(await runs)],
  };
}

function runsTable(registry, runs) {
  return table(
    "",
    ["Run", "Status", "Type", "Created", "Finished", "Images"],
    runs.map((run) => [
      link(`#/registries/${seg(registry)}/runs/${seg(run.runId)}`, run.runId),
      badge(run.status),
      run.runType || "—",
      when(run.createTime),
      when(run.finishTime),
      (run.outputImages || []).map((i) => h("div", { class: "small" }, `${i.repository}:${i.tag || ""}`)),
    ]),
    "No runs yet.",
  );
}

async function tagsView([registry, repository], query) {
  const base = `#/registries/${seg(registry)}/repositories/${seg(repository)}`;
  const page = await api(`${registryApi(registry)}/repositories/${repoPath(repository)}/tags`, {
    n: PAGE_SIZE,
    last: query.get("last"),
  });
  const last = page.nextLink ? page.tags[page.tags.length - 1].name : null;
  const rows = page.tags.map((tag) => {
    const verdict = tag.verdict;
    const attrs = tag.changeableAttributes || {};
    const locks = [attrs.writeEnabled === false ? "write-locked" : null, attrs.deleteEnabled === false ? "delete-locked" : null, attrs.readEnabled === false ? "quarantined (read off)" : null].filter(Boolean);
    return [
      h("span", { class: "mono" }, tag.name),
      verdict
        ? [link(`#/verifications/${seg(verdict.id)}`, badge(verdict.status)), verdict.tagRules && verdict.tagRules.status === "failed" ? h("div", { class: "small" }, verdict.tagRules.reason) : null]
        : badge("none", "not verified"),
      shortDigest(tag.digest),
      when(tag.lastUpdateTime),
      locks.length ? locks.join(", ") : h("span", { class: "muted" }, "none"),
    ];
  });
  return {
    title: repository,
    section: "registries",
    nodes: [
      crumbs([registry, `#/registries/${seg(registry)}`], [repository, base]),
      h("h1", { tabindex: "-1" }, repository),
      h("p", { class: "muted" }, `Verdicts under policy ${page.policyVersion}. ${PAGE_SIZE} tags per page.`),
      table(`Tags of ${repository}`, ["Tag", "Verdict", "Digest", "Updated", "Locks"], rows, "No tags."),
      pager(base, query, last),
    ],
  };
}

async function verdictView([id]) {
  const v = await api(`/api/verifications/${seg(id)}`);
  const repoHref = `#/registries/${seg(v.registry)}/repositories/${seg(v.repository)}`;
  if (!v.final) later(POLL_MS); // still pending: show it again shortly
  const history = section("History of this digest", async () => {
    const found = await api(`${registryApi(v.registry)}/repositories/${repoPath(v.repository)}/verdicts`, { digest: v.digest, top: 20 });
    return table(
      "",
      ["Policy", "Verdict", "Tag", "Completed"],
      found.verifications.map((o) => [o.policyVersion, link(`#/verifications/${seg(o.id)}`, badge(o.status)), o.tag || "—", when(o.completedAt)]),
    );
  });
  const smoke = v.runId ? section("Smoke run", async () => runLog(v.registry, v.runId, true)) : null;
  const tagResults = Object.entries(v.tagResults || {});
  const images = Object.entries(v.images || {});
  return {
    title: `Verdict ${v.repository}`,
    section: "registries",
    nodes: [
      crumbs([v.registry, `#/registries/${seg(v.registry)}`], [v.repository, repoHref], ["Verdict", `#/verifications/${seg(id)}`]),
      h("h1", { tabindex: "-1" }, `${v.repository}${v.tag ? ":" + v.tag : ""} `, badge(v.status)),
      h(
        "div",
        { class: "panel" },
        facts([
          ["Status", v.final ? v.status : `${v.status} (in progress)`],
          ["Digest", h("code", {}, v.digest)],
          ["Policy version", v.policyVersion],
          ["Created", when(v.createdAt)],
          ["Completed", when(v.completedAt)],
          ["Actions", v.actions.length ? v.actions.join(", ") : "none"],
          ["Pending actions", v.pendingActions.length ? v.pendingActions.join(", ") : undefined],
          ["Attached as", v.referrer ? h("code", {}, v.referrer) : "—"],
          ["Events", String(v.eventCount)],
        ]),
      ),
      h("h2", {}, "Checks"),
      table("", ["Check", "Result", "Reason"], v.checks.map((c) => [c.name, badge(c.status), c.reason]), "No checks recorded yet."),
      tagResults.length ? [h("h2", {}, "Tags"), table("", ["Tag", "Result", "Reason", "Action"], tagResults.map(([tag, r]) => [tag, badge(r.status), r.reason, r.action || "—"]))] : null,
      images.length ? [h("h2", {}, "Images of the index"), table("", ["Image", "Result"], images.map(([digest, status]) => [h("code", {}, digest), badge(status)]))] : null,
      ...(smoke ? await smoke : []),
      ...(await history),
    ],
  };
}

// A run's log: what there is now, then (while it grows) each follow-up long poll appended.
async function runLog(registry, runId, withLink) {
  const path = `${registryApi(registry)}/runs/${seg(runId)}/log`;
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": `Log of run ${runId}` });
  const decoder = new TextDecoder();
  const first = await call(path, { offset: 0 });
  pre.textContent = decoder.decode(await first.arrayBuffer(), { stream: true });
  const mine = generation;
  let offset = Number(first.headers.get("X-Log-Next-Offset") || 0);
  let complete = first.headers.get("X-Log-Complete") === "true";
  (async () => {
    while (!complete && mine === generation) {
      const next = await call(path, { offset, follow: "true" });
      if (mine !== generation) return;
      pre.append(decoder.decode(await next.arrayBuffer(), { stream: true }));
      offset = Number(next.headers.get("X-Log-Next-Offset") || offset);
      complete = next.headers.get("X-Log-Complete") === "true";
    }
  })().catch(() => pre.append("\n[the log could not be read further]"));
  return [withLink ? h("p", {}, link(`#/registries/${seg(registry)}/runs/${seg(runId)}`, `Run ${runId}`)) : null, pre];
}

async function runView([registry, runId]) {
  const run = await api(`${registryApi(registry)}/runs/${seg(runId)}`);
  if (!run.finished) later(POLL_MS * 2);
  return {
    title: `Run ${runId}`,
    section: "registries",
    nodes: [
      crumbs([registry, `#/registries/${seg(registry)}`], [`Run ${runId}`, `#/registries/${seg(registry)}/runs/${seg(runId)}`]),
      h("h1", { tabindex: "-1" }, `Run ${runId} `, badge(run.status)),
      h(
        "div",
        { class: "panel" },
        facts([
          ["Type", run.runType || "—"],
          ["Created", when(run.createTime)],
          ["Started", when(run.startTime)],
          ["Finished", when(run.finishTime)],
          ["Platform", run.platform ? Object.values(run.platform).filter(Boolean).join("/") : "—"],
          ["Output images", (run.outputImages || []).map((i) => h("div", { class: "mono" }, `${i.repository}:${i.tag || ""} ${i.digest || ""}`))],
          ["Error", run.error || undefined],
        ]),
      ),
      ...(await section("Log", async () => runLog(registry, runId, false))),
    ],
  };
}

// ---------------------------------------------------------------- cleanup

async function cleanupView() {
  const listing = await api("/api/cleanup/plans", { top: 1 });
  const latest = listing.plans.length ? await api(`/api/cleanup/plans/${seg(listing.plans[0].planId)}`) : null;
  const nodes = [h("h1", { tabindex: "-1" }, "Lab cleanup")];
  if (!listing.enabled) nodes.push(h("p", { class: "notice" }, "Cleanup is turned off here (CLEANUP_ENABLED=false): nothing is planned or deleted. Stored plans and runs are shown as they were."));
  if (latest) {
    nodes.push(h("h2", {}, "Latest plan"), ...planDetails(latest));
  } else {
    nodes.push(h("p", { class: "notice" }, "No plan yet: the cleanup timer stores one at each run, and POST /api/cleanup/plan makes one."));
  }
  nodes.push(...(await section("Past runs", async () => cleanupRunsTable((await api("/api/cleanup/runs", { top: 20 })).runs))));
  return { title: "Lab cleanup", section: "cleanup", nodes };
}

function planDetails(plan) {
  const chips = Object.entries(plan.counts).map(([decision, count]) => h("li", {}, badge(decision, `${decision}: ${count}`)));
  const rows = plan.groups.map((g) => [
    h("span", { class: "mono" }, g.name),
    badge(g.decision),
    g.reason,
    [when(g.expiry), g.expirySource ? h("div", { class: "small muted" }, g.expirySource) : null],
    h("span", { class: "small muted" }, g.subscription),
  ]);
  return [
    h(
      "div",
      { class: "panel" },
      facts([
        ["Plan", link(`#/cleanup/plans/${seg(plan.planId)}`, plan.planId)],
        ["Made", when(plan.createdAt)],
        ["Dry run", plan.dryRun ? "yes (CLEANUP_DRY_RUN): nothing is deleted" : "no"],
        ["Per-run cap", String(plan.maxDeletions)],
        ["Groups listed", `${plan.scanned} in ${plan.pages} page(s) of ${plan.subscriptions.length} subscription(s)`],
      ]),
    ),
    h("ul", { class: "chips", "aria-label": "Labs per decision" }, chips),
    timeline(plan.groups),
    table(`Labs in plan ${plan.planId}`, ["Resource group", "Decision", "Reason", "Expiry", "Subscription"], rows, "No labs found."),
  ];
}

function cleanupRunsTable(runs) {
  return table(
    "",
    ["Run", "Trigger", "Started", "Finished", "Deleted", "Blocked", "Failed"],
    runs.map((r) => [
      [link(`#/cleanup/runs/${seg(r.runId)}`, r.runId), r.dryRun ? h("div", {}, badge("would-delete", "dry run")) : null],
      r.trigger,
      when(r.startedAt),
      r.finishedAt ? when(r.finishedAt) : h("span", {}, r.error ? "stopped" : "not finished"),
      r.deleted.length ? r.deleted.join(", ") : "—",
      r.blocked.length ? r.blocked.join(", ") : "—",
      r.failed.length ? r.failed.join(", ") : r.error || "—",
    ]),
    "No runs yet.",
  );
}

async function planView([planId]) {
  const plan = await api(`/api/cleanup/plans/${seg(planId)}`);
  return { title: `Plan ${planId}`, section: "cleanup", nodes: [h("p", {}, link("#/cleanup", "Lab cleanup")), h("h1", { tabindex: "-1" }, `Plan ${planId}`), ...planDetails(plan)] };
}

async function cleanupRunView([runId]) {
  const run = await api(`/api/cleanup/runs/${seg(runId)}`);
  const rows = run.outcomes.map((o) => [
    h("span", { class: "mono" }, o.name),
    badge(o.result),
    o.reason,
    o.heldCount ? [String(o.heldCount), h("div", { class: "small" }, Object.entries(o.heldByType).map(([type, n]) => `${n} × ${type}`).join(", "))] : "—",
    [...o.locks, ...o.residue].join("; ") || "—",
  ]);
  return {
    title: `Cleanup run ${runId}`,
    section: "cleanup",
    nodes: [
      h("p", {}, link("#/cleanup", "Lab cleanup")),
      h("h1", { tabindex: "-1" }, `Cleanup run ${runId}`),
      h(
        "div",
        { class: "panel" },
        facts([
          ["Trigger", run.trigger],
          ["Dry run", run.dryRun ? "yes" : "no"],
          ["Started", when(run.startedAt)],
          ["Finished", run.finishedAt ? when(run.finishedAt) : "not finished"],
          ["Plan acted on", link(`#/cleanup/plans/${seg(run.planId)}`, run.planId)],
          ["Reviewed plan", run.reviewedPlanId ? link(`#/cleanup/plans/${seg(run.reviewedPlanId)}`, run.reviewedPlanId) : undefined],
          ["Error", run.error || undefined],
        ]),
      ),
      h("h2", {}, "What it did"),
      table("", ["Resource group", "Result", "Reason", "Held", "Locks and residue"], rows, "It acted on no lab."),
    ],
  };
}

// Expiries on a time axis (SVG attributes only: the page's policy allows no inline style). The table
// below it says the same in words; this is for the eye.
function timeline(groups) {
  const dated = groups.filter((g) => g.expiry).map((g) => ({ ...g, at: new Date(g.expiry).getTime() })).sort((a, b) => a.at - b.at);
  if (!dated.length) return null;
  const shown = dated.slice(0, 40);
  const now = Date.now();
  const day = 86400000;
  let start = Math.min(now, shown[0].at) - day / 4;
  let end = Math.max(now + day, shown[shown.length - 1].at) + day / 4;
  if (end - start > 120 * day) [start, end] = [Math.max(start, now - 30 * day), Math.min(end, now + 90 * day)];
  const [left, right, row] = [190, 980, 20];
  const height = 40 + shown.length * row;
  const x = (t) => left + ((Math.min(Math.max(t, start), end) - start) / (end - start)) * (right - left);
  const svg = (tag, attrs, ...children) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    for (const child of children) node.append(child);
    return node;
  };
  const summary = `Expiry of ${dated.length} lab(s), ${new Date(dated[0].at).toISOString().slice(0, 10)} to ${new Date(dated[dated.length - 1].at).toISOString().slice(0, 10)}`;
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 1000 ${height}`, role: "img", "aria-label": summary });
  chart.append(svg("line", { class: "axis", x1: left, x2: right, y1: height - 20, y2: height - 20 }));
  const ticks = Math.min(10, Math.max(2, Math.round((end - start) / day)));
  for (let i = 0; i <= ticks; i += 1) {
    const t = start + ((end - start) * i) / ticks;
    chart.append(svg("text", { x: x(t), y: height - 5, "text-anchor": "middle" }, new Date(t).toISOString().slice(5, 10)));
  }
  chart.append(svg("line", { class: "now", x1: x(now), x2: x(now), y1: 5, y2: height - 20 }), svg("text", { x: x(now) + 3, y: 14 }, "now"));
  shown.forEach((g, i) => {
    const y = 30 + i * row;
    const kind = ["delete", "keep", "warn"].includes(g.decision) ? g.decision : "other";
    chart.append(
      svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, g.name.length > 28 ? `${g.name.slice(0, 27)}…` : g.name),
      svg("circle", { class: `m-${kind}`, cx: x(g.at), cy: y, r: 6 }, svg("title", {}, `${g.name}: ${g.decision}, expires ${g.expiry}`)),
    );
  });
  const more = dated.length > shown.length ? h("p", { class: "small muted" }, `The ${shown.length} soonest of ${dated.length} are drawn; the table lists all.`) : null;
  return h("figure", {}, chart, h("figcaption", { class: "small muted" }, `${summary}. Red: to be deleted; green: kept or warned; grey: other decisions.`), more);
}

// ---------------------------------------------------------------- signing in

function signInView(error) {
  const input = h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    {
      class: "key",
      onSubmit: (event) => {
        event.preventDefault();
        window.sessionStorage.setItem(KEY, input.value.trim());
        render();
      },
    },
    h("label", { for: "key" }, "Function key"),
    input,
    h("button", { type: "submit" }, "Use this key"),
  );
  return {
    title: "Sign in",
    section: "",
    nodes: [
      h("h1", { tabindex: "-1" }, "Sign in"),
      h("p", { class: "notice error", role: "alert" }, error.message || "The API asked for credentials."),
      h("p", {}, "The page reads Dockmaster's API as you: give it a function key of this app. It is kept for this browser tab only and sent to this app only, as the x-functions-key header."),
      h("p", {}, "Where the app also requires Entra ID sign-in, sign in first at ", link(`/.auth/login/aad?post_login_redirect_uri=${seg("/api/ui/")}`, "/.auth/login/aad"), "; your account needs the app role Dockmaster.Read."),
      form,
    ],
  };
}

function showWho() {
  const who = document.getElementById("who");
  if (!functionKey()) {
    who.replaceChildren(h("span", {}, "No function key set"));
    return;
  }
  who.replaceChildren(
    h("span", {}, "Function key set for this tab"),
    h("button", { type: "button", onClick: () => { window.sessionStorage.removeItem(KEY); render(); } }, "Forget key"),
  );
}

// ---------------------------------------------------------------- routing

const ROUTES = [
  [/^\/$/, registriesView],
  [/^\/registries\/([^/]+)$/, registryView],
  [/^\/registries\/([^/]+)\/runs\/([^/]+)$/, runView],
  [/^\/registries\/([^/]+)\/repositories\/([^/]+)$/, tagsView],
  [/^\/verifications\/([^/]+)$/, verdictView],
  [/^\/cleanup$/, cleanupView],
  [/^\/cleanup\/plans\/([^/]+)$/, planView],
  [/^\/cleanup\/runs\/([^/]+)$/, cleanupRunView],
];

function later(ms) {
  const mine = generation;
  timers.push(window.setTimeout(() => mine === generation && render({ refresh: true }), ms));
}

// `make run` prints the page's address as .../api/ui/#code=<key>: the fragment never leaves the browser.
// Take the key into this tab's storage and drop it from the address bar and history.
function adoptKey() {
  const match = /^#code=([^&]+)$/.exec(window.location.hash);
  if (!match) return;
  window.sessionStorage.setItem(KEY, decodeURIComponent(match[1]));
  window.history.replaceState(null, "", `${window.location.pathname}#/`);
}

async function render({ refresh = false } = {}) {
  const mine = ++generation;
  timers.forEach((t) => window.clearTimeout(t));
  timers = [];
  document.body.dataset.state = "loading";
  const [path, search] = (window.location.hash.replace(/^#/, "") || "/").split("?");
  const query = new URLSearchParams(search || "");
  let view;
  try {
    const found = ROUTES.find(([pattern]) => pattern.test(path));
    if (!found) throw new ApiError(404, "NotFound", `no view at #${path}`);
    const params = found[0].exec(path).slice(1).map(decodeURIComponent);
    view = await found[1](params, query);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) view = signInView(error);
    else view = { title: "Error", section: "", nodes: [h("h1", { tabindex: "-1" }, "Something went wrong"), problem(error)] };
  }
  if (mine !== generation) return; // the reader moved on meanwhile
  main.replaceChildren(...view.nodes.flat(Infinity).filter(Boolean));
  document.title = `${view.title} · Dockmaster`;
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.dataset.section === view.section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  showWho();
  if (!refresh) {
    const heading = main.querySelector("h1");
    if (heading) heading.focus({ preventScroll: true });
    announcer.textContent = `${view.title} loaded`;
  }
  document.body.dataset.state = "ready";
}

adoptKey();
window.addEventListener("hashchange", () => render());
render();
