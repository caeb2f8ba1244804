// Conformance check: Pipedrive's official npm client (`pipedrive`, pinned in package.json) lists
// every endpoint the simulator supports through all pages, and the ids it sees must equal the
// simulator's ground truth (`GET /__sim/truth/{entity}`): nothing missing, extra or duplicated.
//
//   PDS_SIM_URL=http://127.0.0.1:PORT PDS_SIM_TOKEN=... node tests/conformance/official-client.mjs
//
// Prints one JSON line per endpoint: {endpoint, pages, records, ids, truth}. Exits 1 on any thrown
// error, any envelope the client cannot parse, or any difference from the truth.

import v1 from "pipedrive/v1";
import v2 from "pipedrive/v2";

const url = process.env.PDS_SIM_URL?.replace(/\/+$/, "");
const token = process.env.PDS_SIM_TOKEN;
if (!url || !token) {
  console.error("official-client: set PDS_SIM_URL and PDS_SIM_TOKEN");
  process.exit(2);
}

// Small pages, so that paging (and the exact-multiple boundary) is exercised even on tiny lists.
const LIMIT = Number(process.env.PDS_PAGE_LIMIT ?? 3);
const MAX_PAGES = 10_000;
const cfg1 = new v1.Configuration({ apiKey: token, basePath: `${url}/api/v1` });
const cfg2 = new v2.Configuration({ apiKey: token, basePath: `${url}/api/v2` });
const failures = [];
const fail = (msg) => {
  failures.push(msg);
  console.error(`FAIL ${msg}`);
};

// The real API sends its rate-limit headers on every response, whatever the plan; clients pace
// themselves by them. Checked on every response the client receives, before it unwraps the body.
const RATE_LIMIT_HEADERS = [
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
  "x-daily-ratelimit-token-limit",
  "x-daily-ratelimit-token-remaining",
];
let responsesSeen = 0;
function checkRateLimitHeaders(response) {
  responsesSeen++;
  const missing = RATE_LIMIT_HEADERS.filter((h) => response?.headers?.[h] === undefined);
  if (missing.length) {
    fail(`${response?.config?.method?.toUpperCase()} ${response?.config?.url}: no ${missing.join(", ")}`);
  }
}
function watched(api) {
  api.axios.interceptors.response.handlers.unshift({
    fulfilled: (response) => {
      checkRateLimitHeaders(response);
      return response;
    },
    rejected: (error) => {
      if (error?.response) checkRateLimitHeaders(error.response);
      return Promise.reject(error);
    },
    synchronous: false,
    runWhen: null,
  });
  return api;
}
const api1 = (name) => watched(new v1[name](cfg1));
const api2 = (name) => watched(new v2[name](cfg2));

/** The client rejects with the parsed error body (or an Error); make either readable. */
function describe(e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  try {
    return JSON.stringify(e).slice(0, 500);
  } catch {
    return String(e);
  }
}

/** A response the client parsed into a Pipedrive envelope with `success: true`. */
function envelope(endpoint, r) {
  if (r === null || typeof r !== "object" || Array.isArray(r)) {
    throw new Error(`${endpoint}: client could not parse the envelope: ${String(r).slice(0, 200)}`);
  }
  if (r.success !== true) {
    throw new Error(`${endpoint}: success is not true: ${JSON.stringify(r).slice(0, 300)}`);
  }
  return r;
}

function rows(endpoint, data) {
  if (data === null) return []; // v1 lists answer `data: null` when empty
  if (!Array.isArray(data)) {
    throw new Error(`${endpoint}: data is not an array: ${JSON.stringify(data).slice(0, 200)}`);
  }
  return data;
}

/** v2: follow `additional_data.next_cursor` until it is null. */
async function pagesV2(endpoint, call) {
  const out = [];
  let cursor;
  let pages = 0;
  const seen = new Set();
  for (;;) {
    const r = envelope(endpoint, await call({ limit: LIMIT, ...(cursor ? { cursor } : {}) }));
    pages++;
    const page = rows(endpoint, r.data);
    if (page.length > LIMIT) throw new Error(`${endpoint}: page of ${page.length} > limit ${LIMIT}`);
    out.push(...page);
    const next = r.additional_data?.next_cursor ?? null;
    if (next === null) break;
    if (typeof next !== "string" || seen.has(next)) {
      throw new Error(`${endpoint}: bad or repeated next_cursor ${JSON.stringify(next)}`);
    }
    if (page.length === 0) throw new Error(`${endpoint}: empty page with a next_cursor`);
    seen.add(next);
    cursor = next;
    if (pages > MAX_PAGES) throw new Error(`${endpoint}: more than ${MAX_PAGES} pages`);
  }
  return { rows: out, pages };
}

/** v1: follow `additional_data.pagination.next_start` while `more_items_in_collection`. */
async function pagesV1(endpoint, call, pick = (r) => r.data) {
  const out = [];
  let start = 0;
  let pages = 0;
  for (;;) {
    const r = envelope(endpoint, await call({ start, limit: LIMIT }));
    pages++;
    const page = rows(endpoint, pick(r));
    if (page.length > LIMIT) throw new Error(`${endpoint}: page of ${page.length} > limit ${LIMIT}`);
    out.push(...page);
    const p = r.additional_data?.pagination;
    if (!p || typeof p.more_items_in_collection !== "boolean") {
      throw new Error(`${endpoint}: no additional_data.pagination: ${JSON.stringify(r.additional_data)}`);
    }
    if (!p.more_items_in_collection) break;
    if (!Number.isInteger(p.next_start) || p.next_start <= start) {
      throw new Error(`${endpoint}: bad next_start ${JSON.stringify(p.next_start)} after start ${start}`);
    }
    start = p.next_start;
    if (pages > MAX_PAGES) throw new Error(`${endpoint}: more than ${MAX_PAGES} pages`);
  }
  return { rows: out, pages };
}

/** An endpoint without paging parameters in the client: one call must return everything. */
async function once(endpoint, call, pick = (r) => r.data) {
  const r = envelope(endpoint, await call());
  const p = r.additional_data?.pagination;
  if (p?.more_items_in_collection === true) {
    throw new Error(`${endpoint}: more_items_in_collection but the client has no paging parameters`);
  }
  if (r.additional_data?.next_cursor) {
    throw new Error(`${endpoint}: next_cursor but the client has no paging parameters`);
  }
  return { rows: rows(endpoint, pick(r)), pages: 1 };
}

const truthCache = new Map();
async function truth(entity) {
  if (!truthCache.has(entity)) {
    const res = await fetch(`${url}/__sim/truth/${entity}`);
    if (!res.ok) throw new Error(`truth ${entity}: HTTP ${res.status}`);
    const body = await res.json();
    if (!Array.isArray(body.records)) throw new Error(`truth ${entity}: no records array`);
    truthCache.set(entity, body.records);
  }
  return truthCache.get(entity);
}

/** Compares ids seen through the client with the expected ids: missing, extra, duplicates. */
function compare(endpoint, got, want) {
  const counts = new Map();
  for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
  const dups = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const wantSet = new Set(want);
  const missing = [...wantSet].filter((id) => !counts.has(id));
  const extra = [...counts.keys()].filter((id) => !wantSet.has(id));
  if (wantSet.size !== want.length) fail(`${endpoint}: the truth itself has duplicate ids`);
  const show = (xs) => JSON.stringify(xs.slice(0, 20)) + (xs.length > 20 ? ` (+${xs.length - 20})` : "");
  if (missing.length) fail(`${endpoint}: ${missing.length} missing vs truth: ${show(missing)}`);
  if (extra.length) fail(`${endpoint}: ${extra.length} extra vs truth: ${show(extra)}`);
  if (dups.length) fail(`${endpoint}: ${dups.length} duplicate ids across pages: ${show(dups)}`);
  return missing.length + extra.length + dups.length === 0;
}

const results = [];
/**
 * Runs one listing. `list()` returns {rows, pages}; `key(row)` gives the id compared;
 * `expect()` returns the expected ids (or null when there is no truth to compare with).
 */
async function check(endpoint, list, key, expect) {
  let res;
  try {
    res = await list();
  } catch (e) {
    fail(`${endpoint}: ${describe(e)}`);
    return [];
  }
  const ids = res.rows.map(key);
  const line = { endpoint, pages: res.pages, records: res.rows.length, ids: new Set(ids).size };
  if (ids.some((id) => id === undefined || id === null)) fail(`${endpoint}: a record has no id`);
  if (expect) {
    try {
      const want = await expect();
      line.truth = want.length;
      line.ok = compare(endpoint, ids, want);
    } catch (e) {
      fail(`${endpoint}: truth: ${describe(e)}`);
    }
  }
  console.log(JSON.stringify(line));
  results.push(line);
  return res.rows;
}

/** Runs a per-parent listing for each parent and checks the union. */
async function checkEach(endpoint, parents, listOne, key, expect) {
  return check(
    endpoint,
    async () => {
      const all = [];
      let pages = 0;
      for (const p of parents) {
        const r = await listOne(p);
        pages += r.pages;
        all.push(...r.rows.map((row) => ({ parent: p, row })));
      }
      return { rows: all, pages };
    },
    key,
    expect,
  );
}

/** GET one record by id and check the id it carries. */
async function single(endpoint, call, wantId, idOf = (d) => d?.id) {
  try {
    const r = envelope(endpoint, await call());
    const got = idOf(r.data);
    if (got !== wantId) fail(`${endpoint}: asked for ${JSON.stringify(wantId)}, got ${JSON.stringify(got)}`);
    else console.log(JSON.stringify({ endpoint, pages: 1, records: 1, ids: 1, ok: true }));
  } catch (e) {
    fail(`${endpoint}: ${describe(e)}`);
  }
}

const ids = (records, pred = () => true, k = (r) => r.id) => records.filter(pred).map(k);
const chunks = (xs, n) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));
const notDeleted = (r) => !r.is_deleted;

// ---------------------------------------------------------------- v2
const deals2 = api2("DealsApi");
await check("v2 GET /deals", () => pagesV2("deals", (p) => deals2.getDeals(p)), (d) => d.id, async () =>
  ids(await truth("deals"), (d) => !d.is_deleted && !d.is_archived),
);
await check(
  "v2 GET /deals?status=open,won,lost,deleted",
  () => pagesV2("deals", (p) => deals2.getDeals({ ...p, status: "open,won,lost,deleted" })),
  (d) => d.id,
  async () => ids(await truth("deals"), (d) => !d.is_archived),
);
await check(
  "v2 GET /deals?status=deleted",
  () => pagesV2("deals", (p) => deals2.getDeals({ ...p, status: "deleted" })),
  (d) => d.id,
  async () => ids(await truth("deals"), (d) => d.is_deleted && !d.is_archived),
);
await check("v2 GET /deals/archived", () => pagesV2("deals/archived", (p) => deals2.getArchivedDeals(p)), (d) => d.id, async () =>
  ids(await truth("deals"), (d) => !d.is_deleted && d.is_archived),
);
await check(
  "v2 GET /deals/archived?status=open,won,lost,deleted",
  () => pagesV2("deals/archived", (p) => deals2.getArchivedDeals({ ...p, status: "open,won,lost,deleted" })),
  (d) => d.id,
  async () => ids(await truth("deals"), (d) => d.is_archived),
);
// Per-deal endpoints walk every deal the truth knows (deleted and archived included), so a
// failed deal listing above does not cascade into them.
const dealIds = ids(await truth("deals"));

for (const [endpoint, apiName, method, entity] of [
  ["persons", "PersonsApi", "getPersons", "persons"],
  ["organizations", "OrganizationsApi", "getOrganizations", "organizations"],
  ["activities", "ActivitiesApi", "getActivities", "activities"],
  ["products", "ProductsApi", "getProducts", "products"],
  ["pipelines", "PipelinesApi", "getPipelines", "pipelines"],
  ["stages", "StagesApi", "getStages", "stages"],
]) {
  const a = api2(apiName);
  await check(`v2 GET /${endpoint}`, () => pagesV2(endpoint, (p) => a[method](p)), (r) => r.id, async () =>
    ids(await truth(entity), notDeleted),
  );
}

for (const [endpoint, apiName, method, entity] of [
  ["dealFields", "DealFieldsApi", "getDealFields", "deal_fields"],
  ["personFields", "PersonFieldsApi", "getPersonFields", "person_fields"],
  ["organizationFields", "OrganizationFieldsApi", "getOrganizationFields", "organization_fields"],
  ["productFields", "ProductFieldsApi", "getProductFields", "product_fields"],
  ["activityFields", "ActivityFieldsApi", "getActivityFields", "activity_fields"],
  ["projectFields", "ProjectFieldsApi", "getProjectFields", "project_fields"],
]) {
  const a = api2(apiName);
  await check(`v2 GET /${endpoint}`, () => pagesV2(endpoint, (p) => a[method](p)), (f) => f.field_code, async () =>
    ids(await truth(entity), () => true, (f) => f.field_code),
  );
}

const dp = api2("DealProductsApi");
await checkEach(
  "v2 GET /deals/products?deal_ids=… (chunks of 100)",
  chunks(dealIds, 100),
  (chunk) => pagesV2("deals/products", (p) => dp.getDealsProducts({ ...p, deal_ids: chunk })),
  (x) => x.row.id,
  async () => ids(await truth("deal_products")),
);
await checkEach(
  "v2 GET /deals/{id}/products (every deal)",
  dealIds,
  (id) => pagesV2("deals/{id}/products", (p) => dp.getDealProducts({ ...p, id })),
  (x) => x.row.id,
  async () => ids(await truth("deal_products")),
);
const inst = api2("DealInstallmentsApi");
await checkEach(
  "v2 GET /deals/installments?deal_ids=… (chunks of 100)",
  chunks(dealIds, 100),
  (chunk) => pagesV2("deals/installments", (p) => inst.getInstallments({ ...p, deal_ids: chunk })),
  (x) => x.row.id,
  async () => ids(await truth("deal_installments")),
);
await checkEach(
  "v2 GET /deals/{id}/followers (every deal)",
  dealIds,
  (id) => pagesV2("deals/{id}/followers", (p) => deals2.getDealFollowers({ ...p, id })),
  (x) => `${x.parent}:${x.row.user_id}`,
  async () => ids(await truth("deal_followers"), () => true, (f) => `${f.deal_id}:${f.user_id}`),
);

const projects2 = api2("ProjectsApi");
await check("v2 GET /projects", () => pagesV2("projects", (p) => projects2.getProjects(p)), (r) => r.id, async () =>
  ids(await truth("projects"), (p) => p.archive_time === null),
);
await check(
  "v2 GET /projects/archived",
  () => pagesV2("projects/archived", (p) => projects2.getArchivedProjects(p)),
  (r) => r.id,
  async () => ids(await truth("projects"), (p) => p.archive_time !== null),
);
const tasks2 = api2("TasksApi");
await check("v2 GET /tasks", () => pagesV2("tasks", (p) => tasks2.getTasks(p)), (r) => r.id, async () =>
  ids(await truth("tasks")),
);

// ---------------------------------------------------------------- v1
const users = api1("UsersApi");
await check("v1 GET /users", () => once("users", () => users.getUsers()), (u) => u.id, async () => ids(await truth("users")));
await check(
  "v1 GET /users/me",
  async () => {
    const r = envelope("users/me", await users.getCurrentUser());
    return { rows: [r.data], pages: 1 };
  },
  (u) => u.id,
  async () => ids(await truth("users"), (u) => u.is_you),
);

const notes = api1("NotesApi");
await check("v1 GET /notes", () => pagesV1("notes", (p) => notes.getNotes(p)), (n) => n.id, async () =>
  ids(await truth("notes"), (n) => n.active_flag),
);
const leads = api1("LeadsApi");
await check("v1 GET /leads", () => pagesV1("leads", (p) => leads.getLeads(p)), (l) => l.id, async () =>
  ids(await truth("leads"), (l) => !l.is_archived),
);
await check(
  "v1 GET /leads/archived",
  () => pagesV1("leads/archived", (p) => leads.getArchivedLeads(p)),
  (l) => l.id,
  async () => ids(await truth("leads"), (l) => l.is_archived),
);
const leadLabels = api1("LeadLabelsApi");
await check("v1 GET /leadLabels", () => once("leadLabels", () => leadLabels.getLeadLabels()), (l) => l.id, async () =>
  ids(await truth("lead_labels")),
);
const leadSources = api1("LeadSourcesApi");
await check(
  "v1 GET /leadSources",
  () => once("leadSources", () => leadSources.getLeadSources()),
  (s) => s.name,
  async () => ids(await truth("lead_sources"), () => true, (s) => s.name),
);
const activityTypes = api1("ActivityTypesApi");
await check(
  "v1 GET /activityTypes",
  () => once("activityTypes", () => activityTypes.getActivityTypes()),
  (t) => t.id,
  async () => ids(await truth("activity_types")),
);
const currencies = api1("CurrenciesApi");
await check("v1 GET /currencies", () => once("currencies", () => currencies.getCurrencies()), (c) => c.id, async () =>
  ids(await truth("currencies")),
);
const filters = api1("FiltersApi");
await check("v1 GET /filters", () => once("filters", () => filters.getFilters()), (f) => f.id, async () =>
  ids(await truth("filters")),
);

// v1 field lists: v1 `key` vs v2 `field_code` (Pipedrive renamed these few in v2).
const V2_CODE = {
  deal: { user_id: "owner_id", label: "label_ids" },
  person: { label: "label_ids", email: "emails", phone: "phones" },
  organization: { label: "label_ids" },
  product: {},
  activity: { user_id: "owner_id", busy_flag: "busy" },
};
for (const [entity, apiName, method, paged] of [
  ["deal", "DealFieldsApi", "getDealFields", true],
  ["person", "PersonFieldsApi", "getPersonFields", true],
  ["organization", "OrganizationFieldsApi", "getOrganizationFields", true],
  ["product", "ProductFieldsApi", "getProductFields", true],
  ["activity", "ActivityFieldsApi", "getActivityFields", false],
]) {
  const a = api1(apiName);
  const ep = `${entity}Fields`;
  await check(
    `v1 GET /${ep}`,
    () => (paged ? pagesV1(ep, (p) => a[method](p)) : once(ep, () => a[method]())),
    (f) => V2_CODE[entity][f.key] ?? f.key,
    async () => ids(await truth(`${entity}_fields`), () => true, (f) => f.field_code),
  );
}
const leadFields = api1("LeadFieldsApi");
await check("v1 GET /leadFields", () => pagesV1("leadFields", (p) => leadFields.getLeadFields(p)), (f) => f.id, async () =>
  ids(await truth("lead_fields")),
);
const noteFields = api1("NoteFieldsApi");
await check("v1 GET /noteFields", () => once("noteFields", () => noteFields.getNoteFields()), (f) => f.id, async () =>
  ids(await truth("note_fields")),
);

const files = api1("FilesApi");
const fileRows = await check("v1 GET /files", () => pagesV1("files", (p) => files.getFiles(p)), (f) => f.id, async () =>
  ids(await truth("files")),
);
const callLogs = api1("CallLogsApi");
const callLogRows = await check(
  "v1 GET /callLogs",
  () => pagesV1("callLogs", (p) => callLogs.getUserCallLogs(p)),
  (l) => l.id,
  async () => ids(await truth("call_logs")),
);
const mailbox = api1("MailboxApi");
const threads = await checkEach(
  "v1 GET /mailbox/mailThreads?folder=inbox|drafts|sent|archive",
  ["inbox", "drafts", "sent", "archive"],
  (folder) => pagesV1(`mailThreads?folder=${folder}`, (p) => mailbox.getMailThreads({ ...p, folder })),
  (x) => x.row.id,
  async () => ids(await truth("mail_threads")),
);
await checkEach(
  "v1 GET /mailbox/mailThreads/{id}/mailMessages (every thread)",
  [...new Set(threads.map((t) => t.row.id))],
  (id) => once("mailThreads/{id}/mailMessages", () => mailbox.getMailThreadMessages({ id })),
  (x) => x.row.id,
  async () => ids(await truth("mail_messages")),
);
const roles = api1("RolesApi");
const roleRows = await check("v1 GET /roles", () => pagesV1("roles", (p) => roles.getRoles(p)), (r) => r.id, async () =>
  ids(await truth("roles")),
);
const permSets = api1("PermissionSetsApi");
const sets = await check(
  "v1 GET /permissionSets",
  () => once("permissionSets", () => permSets.getPermissionSets()),
  (s) => s.id,
  async () => ids(await truth("permission_sets")),
);
await checkEach(
  "v1 GET /permissionSets/{id}/assignments (every set)",
  sets.map((s) => s.id),
  (id) => pagesV1("permissionSets/{id}/assignments", (p) => permSets.getPermissionSetAssignments({ ...p, id })),
  (x) => `${x.row.permission_set_id}:${x.row.user_id}`,
  async () =>
    ids(await truth("permission_set_assignments"), () => true, (a) => `${a.permission_set_id}:${a.user_id}`),
);
const goals = api1("GoalsApi");
const goalRows = await check(
  "v1 GET /goals/find",
  () => once("goals/find", () => goals.getGoals(), (r) => r.data?.goals),
  (g) => g.id,
  async () => ids(await truth("goals")),
);

// Recents: everything changed since a date more than a month back (the API caps it at one
// month); expected = every truth record of those types updated at or after the effective since.
const recents = api1("RecentsApi");
let recentsSince = null;
await check(
  "v1 GET /recents?since_timestamp=…",
  () =>
    pagesV1("recents", async (p) => {
      const r = await recents.getRecents({ ...p, since_timestamp: "2000-01-01 00:00:00" });
      recentsSince = r?.additional_data?.since_timestamp ?? recentsSince;
      return r;
    }),
  (x) => `${x.item}:${x.id}`,
  async () => {
    if (!recentsSince) throw new Error("no additional_data.since_timestamp");
    const since = parseTime(recentsSince);
    const want = [];
    for (const [item, entity, upd] of [
      ["deal", "deals", "update_time"],
      ["person", "persons", "update_time"],
      ["organization", "organizations", "update_time"],
      ["activity", "activities", "update_time"],
      ["product", "products", "update_time"],
      ["note", "notes", "update_time"],
      ["pipeline", "pipelines", "update_time"],
      ["stage", "stages", "update_time"],
      ["user", "users", "modified"],
    ]) {
      for (const r of await truth(entity)) {
        if (parseTime(r[upd]) >= since) want.push(`${item}:${r.id}`);
      }
    }
    return want;
  },
);
function parseTime(s) {
  // v1 "YYYY-MM-DD HH:MM:SS" is UTC; v2 is RFC 3339.
  const t = Date.parse(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(s) ? `${s.replace(" ", "T")}Z` : s);
  if (Number.isNaN(t)) throw new Error(`unparseable time ${JSON.stringify(s)}`);
  return t;
}

const deals1 = api1("DealsApi");
await check(
  "v1 GET /deals/archived",
  () => pagesV1("deals/archived", (p) => deals1.getArchivedDeals(p)),
  (d) => d.id,
  async () => ids(await truth("deals"), (d) => d.is_archived && !d.is_deleted),
);
await checkEach(
  "v1 GET /deals/{id}/flow (every deal)",
  dealIds,
  (id) => pagesV1("deals/{id}/flow", (p) => deals1.getDealUpdates({ ...p, id })),
  (x) => x.row.data?.id,
  async () => ids(await truth("deal_flow")),
);
await checkEach(
  "v1 GET /deals/{id}/changelog (every deal)",
  dealIds,
  (id) => pagesV2("deals/{id}/changelog", (p) => deals1.getDealChangelog({ ...p, id })),
  (x) => `${x.parent}:${x.row.field_key}:${x.row.time}`,
  async () => ids(await truth("deal_flow"), () => true, (f) => `${f.item_id}:${f.field_key}:${f.log_time}`),
);
await checkEach(
  "v1 GET /deals/{id}/participants (every deal)",
  dealIds,
  (id) => pagesV1("deals/{id}/participants", (p) => deals1.getDealParticipants({ ...p, id })),
  (x) => x.row.id,
  async () => ids(await truth("deal_participants")),
);
await checkEach(
  "v1 GET /deals/{id}/followers (every deal)",
  dealIds,
  (id) => once("deals/{id}/followers", () => deals1.getDealFollowers({ id })),
  (x) => `${x.row.deal_id}:${x.row.user_id}`,
  async () => ids(await truth("deal_followers"), () => true, (f) => `${f.deal_id}:${f.user_id}`),
);

const projects1 = api1("ProjectsApi");
await check(
  "v1 GET /projects?include_archived=1",
  () => pagesV2("v1 projects", (p) => projects1.getProjects({ ...p, include_archived: true })),
  (r) => r.id,
  async () => ids(await truth("projects")),
);
const tasks1 = api1("TasksApi");
await check("v1 GET /tasks", () => pagesV2("v1 tasks", (p) => tasks1.getTasks(p)), (r) => r.id, async () =>
  ids(await truth("tasks")),
);

// Legacy teams have no truth entity: every member must be a known user.
const teams = api1("LegacyTeamsApi");
const teamRows = await check("v1 GET /legacyTeams", () => once("legacyTeams", () => teams.getTeams()), (t) => t.id, null);
{
  const known = new Set(ids(await truth("users")));
  for (const t of teamRows) {
    for (const u of t.users ?? []) if (!known.has(u)) fail(`v1 GET /legacyTeams: team ${t.id} has unknown user ${u}`);
  }
  if (teamRows.length === 0) fail("v1 GET /legacyTeams: no teams");
}

// ---------------------------------------------------------------- derived sub-lists
const productIds = ids(await truth("products"), notDeleted);
const products2 = api2("ProductsApi");
await checkEach(
  "v2 GET /products/{id}/variations (every product)",
  productIds,
  (id) => pagesV2("products/{id}/variations", (p) => products2.getProductVariations({ ...p, id })),
  (x) => x.row.id,
  async () => ids(await truth("product_variations"), (v) => productIds.includes(v.product_id)),
);
for (const [endpoint, apiName, method, entity, parentKey] of [
  ["persons", "PersonsApi", "getPersonFollowers", "person", "person_id"],
  ["organizations", "OrganizationsApi", "getOrganizationFollowers", "organization", "org_id"],
  ["products", "ProductsApi", "getProductFollowers", "product", "product_id"],
]) {
  const parents = ids(await truth(endpoint), notDeleted);
  const followed = async () =>
    ids(await truth(`${entity}_followers`), (f) => parents.includes(f[parentKey]), (f) => `${f[parentKey]}:${f.user_id}`);
  await checkEach(
    `v2 GET /${endpoint}/{id}/followers (every record)`,
    parents,
    (id) => pagesV2(`${endpoint}/{id}/followers`, (p) => api2(apiName)[method]({ ...p, id })),
    (x) => `${x.parent}:${x.row.user_id}`,
    followed,
  );
  await checkEach(
    `v1 GET /${endpoint}/{id}/followers (every record)`,
    parents,
    (id) => pagesV1(`v1 ${endpoint}/{id}/followers`, (p) => api1(apiName)[method]({ ...p, id })),
    (x) => `${x.row[parentKey]}:${x.row.user_id}`,
    followed,
  );
}
const beta2 = api2("BetaApi");
const boardRows = await check("v2 GET /boards", () => once("boards", () => beta2.getProjectsBoards()), (b) => b.id, async () =>
  ids(await truth("boards")),
);
await checkEach(
  "v2 GET /phases?board_id= (every board)",
  boardRows.map((b) => b.id),
  (board_id) => once("phases", () => beta2.getProjectsPhases({ board_id })),
  (x) => x.row.id,
  async () => ids(await truth("phases")),
);
const boards1 = api1("ProjectBoardsApi");
const boardRows1 = await check("v1 GET /projects/boards", () => once("projects/boards", () => boards1.getProjectsBoards()), (b) => b.id, async () =>
  ids(await truth("boards")),
);
const phases1 = api1("ProjectPhasesApi");
await checkEach(
  "v1 GET /projects/phases?board_id= (every board)",
  boardRows1.map((b) => b.id),
  (board_id) => once("projects/phases", () => phases1.getProjectsPhases({ board_id })),
  (x) => x.row.id,
  async () => ids(await truth("phases")),
);
await check(
  "v2 GET /projectTemplates",
  () => pagesV2("projectTemplates", (p) => api2("ProjectTemplatesApi").getProjectTemplates(p)),
  (t) => t.id,
  async () => ids(await truth("project_templates")),
);
await check(
  "v1 GET /projectTemplates",
  () => pagesV2("v1 projectTemplates", (p) => api1("ProjectTemplatesApi").getProjectTemplates(p)),
  (t) => t.id,
  async () => ids(await truth("project_templates")),
);
const liveNoteIds = ids(await truth("notes"), (n) => n.active_flag);
await checkEach(
  "v1 GET /notes/{id}/comments (every note)",
  liveNoteIds,
  (id) => pagesV1("notes/{id}/comments", (p) => notes.getNoteComments({ ...p, id })),
  (x) => x.row.uuid,
  async () => ids(await truth("note_comments"), (c) => liveNoteIds.includes(Number(c.object_id)), (c) => c.uuid),
);
await checkEach(
  "v1 GET /deals/{id}/files (every deal)",
  dealIds,
  (id) => pagesV1("deals/{id}/files", (p) => deals1.getDealFiles({ ...p, id })),
  (x) => x.row.id,
  async () => ids(await truth("files")),
);
await checkEach(
  "v1 GET /deals/{id}/mailMessages (every deal)",
  dealIds,
  (id) => pagesV1("deals/{id}/mailMessages", (p) => deals1.getDealMailMessages({ ...p, id })),
  (x) => x.row.data?.id,
  async () => ids(await truth("mail_messages")),
);

// Webhooks: registered through the client, listed back, removed; the list must follow.
{
  const hooks = api1("WebhooksApi");
  const created = [];
  for (const [event_action, event_object] of [["*", "deal"], ["delete", "person"]]) {
    try {
      const r = envelope("v1 POST /webhooks", await hooks.addWebhook({
        AddWebhookRequest: {
          subscription_url: "https://hooks.example.com/pipedrive",
          event_action,
          event_object,
          name: `conformance ${event_action}.${event_object}`,
          version: "2.0",
          http_auth_user: "pd",
          http_auth_password: "secret",
        },
      }));
      created.push(r.data.id);
    } catch (e) {
      fail(`v1 POST /webhooks: ${describe(e)}`);
    }
  }
  await check("v1 GET /webhooks", () => once("webhooks", () => hooks.getWebhooks()), (h) => h.id, async () =>
    ids(await truth("webhooks")),
  );
  truthCache.delete("webhooks");
  try {
    envelope("v1 DELETE /webhooks/{id}", await hooks.deleteWebhook({ id: created[0] }));
  } catch (e) {
    fail(`v1 DELETE /webhooks/{id}: ${describe(e)}`);
  }
  await check("v1 GET /webhooks after a delete", () => once("webhooks", () => hooks.getWebhooks()), (h) => h.id, async () => {
    const want = ids(await truth("webhooks"));
    if (want.includes(created[0]) || want.length !== created.length - 1) fail("v1 DELETE /webhooks/{id}: still in the truth");
    return want;
  });
}

// ---------------------------------------------------------------- single records
const first = async (entity, pred = () => true) => (await truth(entity)).find(pred);
{
  const d = await first("deals", (x) => !x.is_deleted);
  await single("v2 GET /deals/{id}", () => deals2.getDeal({ id: d.id }), d.id);
  for (const [entity, apiName, method, ep] of [
    ["persons", "PersonsApi", "getPerson", "persons"],
    ["organizations", "OrganizationsApi", "getOrganization", "organizations"],
    ["activities", "ActivitiesApi", "getActivity", "activities"],
    ["products", "ProductsApi", "getProduct", "products"],
    ["pipelines", "PipelinesApi", "getPipeline", "pipelines"],
    ["stages", "StagesApi", "getStage", "stages"],
  ]) {
    const r = await first(entity, notDeleted);
    await single(`v2 GET /${ep}/{id}`, () => api2(apiName)[method]({ id: r.id }), r.id);
  }
  const f = await first("deal_fields", (x) => x.is_custom_field);
  await single(
    "v2 GET /dealFields/{field_code}",
    () => api2("DealFieldsApi").getDealField({ field_code: f.field_code }),
    f.field_code,
    (x) => x?.field_code,
  );
  const p = await first("projects");
  await single("v2 GET /projects/{id}", () => projects2.getProject({ id: p.id }), p.id);
  const t = await first("tasks");
  await single("v2 GET /tasks/{id}", () => tasks2.getTask({ id: t.id }), t.id);

  const u = await first("users");
  await single("v1 GET /users/{id}", () => users.getUser({ id: u.id }), u.id);
  const n = await first("notes", (x) => x.active_flag);
  await single("v1 GET /notes/{id}", () => notes.getNote({ id: n.id }), n.id);
  const l = await first("leads");
  await single("v1 GET /leads/{id}", () => leads.getLead({ id: l.id }), l.id);
  const fl = await first("filters");
  await single("v1 GET /filters/{id}", () => filters.getFilter({ id: fl.id }), fl.id);
  if (fileRows[0]) await single("v1 GET /files/{id}", () => files.getFile({ id: fileRows[0].id }), fileRows[0].id);
  if (callLogRows[0]) {
    await single("v1 GET /callLogs/{id}", () => callLogs.getCallLog({ id: callLogRows[0].id }), callLogRows[0].id);
  }
  const th = threads[0]?.row;
  if (th) await single("v1 GET /mailbox/mailThreads/{id}", () => mailbox.getMailThread({ id: th.id }), th.id);
  if (roleRows[0]) await single("v1 GET /roles/{id}", () => roles.getRole({ id: roleRows[0].id }), roleRows[0].id);
  if (sets[0]) await single("v1 GET /permissionSets/{id}", () => permSets.getPermissionSet({ id: sets[0].id }), sets[0].id);
  if (teamRows[0]) await single("v1 GET /legacyTeams/{id}", () => teams.getTeam({ id: teamRows[0].id }), teamRows[0].id);
  if (goalRows[0]) {
    await single(
      "v1 GET /goals/{id}/results",
      () => goals.getGoalResult({ id: goalRows[0].id, period_start: "2026-01-01", period_end: "2026-12-31" }),
      goalRows[0].id,
      (x) => x?.goal?.id,
    );
  }
  const th0 = threads[0]?.row;
  if (th0) {
    const messageId = th0.id * 10;
    await single("v1 GET /mailbox/mailMessages/{id}", () => mailbox.getMailMessage({ id: messageId }), messageId);
  }
  for (const [entity, apiName, method] of [
    ["deal_fields", "DealFieldsApi", "getDealField"],
    ["person_fields", "PersonFieldsApi", "getPersonField"],
    ["organization_fields", "OrganizationFieldsApi", "getOrganizationField"],
    ["product_fields", "ProductFieldsApi", "getProductField"],
  ]) {
    // v1 addresses a field by its numeric id, which only the v1 list shows.
    const list = envelope(entity, await api1(apiName)[method.replace("Field", "Fields")]({ start: 0, limit: 1 }));
    const id = list.data[0].id;
    await single(`v1 GET /${method.slice(3, 4).toLowerCase()}${method.slice(4)}s/{id}`, () => api1(apiName)[method]({ id }), id);
  }
  for (const [entity, apiName, method] of [
    ["activity_fields", "ActivityFieldsApi", "getActivityField"],
    ["person_fields", "PersonFieldsApi", "getPersonField"],
    ["organization_fields", "OrganizationFieldsApi", "getOrganizationField"],
    ["product_fields", "ProductFieldsApi", "getProductField"],
    ["project_fields", "ProjectFieldsApi", "getProjectField"],
  ]) {
    const f2 = await first(entity);
    const ep = `v2 GET /${method.slice(3, 4).toLowerCase()}${method.slice(4)}s/{field_code}`;
    await single(ep, () => api2(apiName)[method]({ field_code: f2.field_code }), f2.field_code, (x) => x?.field_code);
  }
  const comment = await first("note_comments");
  await single(
    "v1 GET /notes/{id}/comments/{commentId}",
    () => notes.getComment({ id: Number(comment.object_id), commentId: comment.uuid }),
    comment.uuid,
    (x) => x?.uuid,
  );
  const tpl = await first("project_templates");
  await single("v1 GET /projectTemplates/{id}", () => api1("ProjectTemplatesApi").getProjectTemplate({ id: tpl.id }), tpl.id);
  await single("v2 GET /projectTemplates/{id}", () => api2("ProjectTemplatesApi").getProjectTemplate({ id: tpl.id }), tpl.id);
  const board = await first("boards");
  await single("v2 GET /boards/{id}", () => beta2.getProjectsBoard({ id: board.id }), board.id);
  await single("v1 GET /projects/boards/{id}", () => boards1.getProjectsBoard({ id: board.id }), board.id);
  const phase = await first("phases");
  await single("v1 GET /projects/phases/{id}", () => phases1.getProjectsPhase({ id: phase.id }), phase.id);
  await single("v2 GET /phases/{id}", () => beta2.getProjectsPhase({ id: phase.id }), phase.id);
  await single("v1 GET /projects/{id}", () => projects1.getProject({ id: p.id }), p.id);
  await single("v1 GET /tasks/{id}", () => tasks1.getTask({ id: t.id }), t.id);
}

const total = results.reduce((n, r) => n + r.records, 0);
console.log(
  JSON.stringify({
    summary: true,
    endpoints: results.length,
    records: total,
    responses: responsesSeen,
    failures: failures.length,
  }),
);
if (failures.length) {
  console.error(`official-client: ${failures.length} failure(s)`);
  process.exit(1);
}
