// The care home portal in a real Chromium, on the demo's synthetic London.
//
// Started by scripts/browser-tests.sh, which runs `carerecord demo` and passes BASE_URL and
// ACCOUNTS (the demo accounts written by `demo --accounts-file`). Every page visited is
// checked with axe (WCAG 2.2 AA: zero violations) and photographed at tablet (768×1024) and
// desktop (1280×900) widths, failing if the page scrolls sideways.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, sign } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

const BASE = process.env.BASE_URL;
const ACCOUNTS = JSON.parse(readFileSync(process.env.ACCOUNTS, 'utf8'));
const SHOTS = process.env.SCREENSHOTS ?? new URL('./screenshots/', import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

const WIDTHS = [
  { name: 'tablet', width: 768, height: 1024 },
  { name: 'desktop', width: 1280, height: 900 },
];

let browser;
let api; // the demo service client's bearer token
const checked = new Set();

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const { client_id, secret } = ACCOUNTS.client;
  const r = await fetch(`${BASE}/auth/token`, {
    method: 'POST',
    headers: {
      authorization: 'Basic ' + Buffer.from(`${client_id}:${secret}`).toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  assert.equal(r.status, 200, 'the demo service client gets a token');
  api = (await r.json()).access_token;
});

after(async () => {
  for (const s of sessions.values()) await s.context.close();
  await browser?.close();
});

/// RFC 6238 (SHA-1, 30 s, 6 digits) from a base32 secret, as an authenticator app does.
function totp(secret, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, '0');
}

function account(role) {
  const u = ACCOUNTS.users.find((x) => x.role === role && !x.note);
  assert.ok(u, `a demo ${role}`);
  return u;
}

async function fhir(path) {
  const r = await fetch(`${BASE}/fhir/${path}`, { headers: { authorization: `Bearer ${api}` } });
  assert.equal(r.status, 200, path);
  return r.json();
}

/// axe (WCAG 2.2 AA) and screenshots at both widths, once per page name.
async function check(page, name) {
  if (checked.has(name)) return;
  checked.add(name);
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze();
  const summary = results.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`,
  );
  assert.deepEqual(summary, [], `axe on ${name}`);
  for (const w of WIDTHS) {
    await page.setViewportSize({ width: w.width, height: w.height });
    const { scroll, client } = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    assert.ok(scroll <= client, `${name} scrolls sideways at ${w.name} width (${scroll} > ${client})`);
    await page.screenshot({ path: `${SHOTS}/${name}-${w.name}.png`, fullPage: true });
  }
  await page.setViewportSize(WIDTHS[1]);
}

// A TOTP code is spent by its first use, so each person signs in once and keeps the session.
const sessions = new Map();

async function signIn(role) {
  if (sessions.has(role)) {
    const s = sessions.get(role);
    await s.page.goto(`${BASE}/`);
    return s;
  }
  const u = account(role);
  const context = await browser.newContext({ viewport: WIDTHS[1] });
  const page = await context.newPage();
  await page.goto(`${BASE}/sign-in`);
  await check(page, 'sign-in');
  await page.fill('#username', u.username);
  await page.fill('#password', u.password);
  await page.fill('#totp', totp(u.totp_secret));
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/sign-in')), page.click('button[type=submit]')]);
  const s = { context, page, user: u };
  sessions.set(role, s);
  return s;
}

const NHS_NUMBER = 'https://fhir.nhs.uk/Id/nhs-number';
const SOURCE = 'https://fhir.carerecord.example/CodeSystem/source-organisation';

// Whether the home may see this person: a person whose NHS number is not verified (01) is shared
// only with the organisation that recorded them (reference §1), so the oracle leaves them out
// unless the home is the Patient's source.
function sharedWith(patient, ods) {
  const nhs = (patient.identifier ?? []).find((i) => i.system === NHS_NUMBER);
  const status = (nhs?.extension ?? [])
    .flatMap((e) => e.valueCodeableConcept?.coding ?? [])
    .map((c) => c.code)[0];
  if (status === undefined || status === '01') return true;
  return (patient.meta?.tag ?? []).some((t) => t.system === SOURCE && t.code === ods);
}

async function residentIds(home) {
  const org = await fhir(`Organization/${home}`);
  const ods = (org.identifier ?? [])[0]?.value;
  const b = await fhir(
    `EpisodeOfCare?organization=Organization/${home}&status=active&_include=EpisodeOfCare:patient&_count=500`,
  );
  return (b.entry ?? [])
    .filter((e) => e.resource.resourceType === 'Patient' && sharedWith(e.resource, ods))
    .map((e) => e.resource.id);
}

async function rowNames(page) {
  return page.$$eval('#residents tbody tr td:first-child a', (as) => as.map((a) => a.textContent.trim()));
}

test('a care worker and a nurse of the same home see the same residents, through different views', async () => {
  const home = account('registered-nurse').organisation;
  assert.equal(account('care-worker').organisation, home);
  const ids = await residentIds(home);
  assert.ok(ids.length > 0, 'the demo home has residents');

  const carer = await signIn('care-worker');
  await check(carer.page, 'residents');
  const carerRows = await rowNames(carer.page);
  assert.equal(carerRows.length, ids.length);

  const nurse = await signIn('registered-nurse');
  const nurseRows = await rowNames(nurse.page);
  assert.deepEqual([...nurseRows].sort(), [...carerRows].sort());

  // The care worker is told results are not for her role; the nurse is not.
  await carer.page.goto(`${BASE}/residents/${ids[0]}/results`);
  await check(carer.page, 'record-results-restricted');
  assert.ok(await carer.page.isVisible('#section-unavailable'));
  await nurse.page.goto(`${BASE}/residents/${ids[0]}/results`);
  assert.ok(!(await nurse.page.isVisible('#section-unavailable')));
  await carer.page.goto(`${BASE}/residents/${ids[0]}`);
  await check(carer.page, 'record-summary-restricted');
  assert.match(await carer.page.textContent('#not-available'), /Results/);

  // Search within the list.
  await carer.page.goto(`${BASE}/`);
  await carer.page.fill('#q', carerRows[0].split(' ')[0]);
  await Promise.all([carer.page.waitForURL(/\?q=/), carer.page.click('form[role=search] button')]);
  assert.ok((await rowNames(carer.page)).includes(carerRows[0]));
});

/// The home's resident whose latest discharge summary is the most recent.
async function recentlyDischarged(home) {
  let best = null;
  for (const id of await residentIds(home)) {
    const b = await fhir(`Composition?subject=Patient/${id}&type=http://snomed.info/sct|373942005&_sort=-date&_count=1`);
    const c = b.entry?.[0]?.resource;
    if (c?.date && (!best || c.date > best.date)) best = { id, date: c.date };
  }
  return best?.id;
}

test('a nurse opens a resident with a recent discharge and finds the discharge plan', async () => {
  const nurse = await signIn('registered-nurse');
  // The badge when the discharge is recent enough to be news; else the latest one.
  const row = nurse.page.locator('#residents tbody tr', { hasText: 'new discharge summary' }).first();
  if ((await row.count()) > 0) {
    await Promise.all([nurse.page.waitForURL(/\/residents\//), row.locator('a').first().click()]);
  } else {
    const id = await recentlyDischarged(account('registered-nurse').organisation);
    assert.ok(id, 'a resident of the home has a discharge summary');
    await nurse.page.goto(`${BASE}/residents/${id}`);
  }
  await check(nurse.page, 'record-summary');
  await Promise.all([
    nurse.page.waitForURL(/\/discharge$/),
    nurse.page.click('nav.nhsuk-contents-list a:has-text("Discharge summaries")'),
  ]);
  await check(nurse.page, 'record-discharge');
  assert.match(await nurse.page.textContent('#section'), /Plan and requested actions/);
});

test('the results tab flags an abnormal result and draws a trend chart', async () => {
  const home = account('registered-nurse').organisation;
  const ids = await residentIds(home);
  const nurse = await signIn('registered-nurse');
  let found = false;
  for (const id of ids) {
    await nurse.page.goto(`${BASE}/residents/${id}/results`);
    const abnormal = await nurse.page.locator('.cr-result--abnormal').count();
    const charts = await nurse.page.locator('svg.cr-trend').count();
    if (abnormal > 0 && charts > 0) {
      found = true;
      await check(nurse.page, 'record-results');
      const flagged = await nurse.page.locator('.cr-result--abnormal').first().textContent();
      assert.match(flagged, /high|low|abnormal/i, 'the flag is said in words');
      break;
    }
  }
  assert.ok(found, 'a resident has an abnormal result with a trend');
});

test('a resident of another home is refused; emergency access opens it and reaches the privacy officer', async () => {
  const home = account('registered-nurse').organisation;
  const mine = new Set(await residentIds(home));
  const b = await fhir('EpisodeOfCare?status=active&_include=EpisodeOfCare:patient&_count=500');
  const other = (b.entry ?? [])
    .map((e) => e.resource)
    .find(
      (r) =>
        r.resourceType === 'Patient' &&
        !mine.has(r.id) &&
        r.birthDate &&
        (r.identifier ?? []).some((i) => i.system === 'https://fhir.nhs.uk/Id/nhs-number'),
    );
  assert.ok(other, 'a resident of another home');
  const nhs = other.identifier.find((i) => i.system === 'https://fhir.nhs.uk/Id/nhs-number').value;
  const [year, month, day] = other.birthDate.split('-');

  const nurse = await signIn('registered-nurse');
  const refused = await nurse.page.goto(`${BASE}/residents/${other.id}`);
  assert.equal(refused.status(), 403);
  assert.match(await nurse.page.textContent('main'), /not available to you/);
  await check(nurse.page, 'refused');

  await nurse.page.goto(`${BASE}/find`);
  await check(nurse.page, 'find');
  await nurse.page.fill('#nhs', nhs);
  await nurse.page.fill('#dob-day', String(Number(day)));
  await nurse.page.fill('#dob-month', String(Number(month)));
  await nurse.page.fill('#dob-year', year);
  await nurse.page.click('button[type=submit]');
  await nurse.page.waitForSelector('#not-available');
  await check(nurse.page, 'find-not-in-care');
  await nurse.page.check('#reason-emergency');
  const why = `Browser test emergency ${Date.now()}`;
  await nurse.page.fill('#text', why);
  await Promise.all([
    nurse.page.waitForURL(new RegExp(`/residents/${other.id}$`)),
    nurse.page.click('button.nhsuk-button--warning'),
  ]);
  assert.ok(await nurse.page.isVisible('#emergency-access'));
  assert.match(await nurse.page.textContent('#emergency-access'), /until/);
  await check(nurse.page, 'record-emergency');

  const officer = await signIn('privacy-officer');
  await check(officer.page, 'privacy-audit');
  await officer.page.goto(`${BASE}/privacy/emergency-access`);
  await check(officer.page, 'privacy-queue');
  assert.match(await officer.page.textContent('main'), new RegExp(why));
  // Review it: outcome and note, then it is in the reviewed list.
  const card = officer.page.locator('.nhsuk-card', { hasText: why });
  await card.locator('input[value=appropriate]').check();
  await card.locator('textarea').fill('Checked with the nurse: a fall at the day centre.');
  await Promise.all([officer.page.waitForURL(/emergency-access$/), card.locator('button[type=submit]').click()]);
  await officer.page.goto(`${BASE}/privacy/emergency-access?status=reviewed`);
  await check(officer.page, 'privacy-queue-reviewed');
  assert.match(await officer.page.textContent('main'), /Checked with the nurse/);
  await officer.page.goto(`${BASE}/privacy/people/${other.id}`);
  await check(officer.page, 'privacy-report');
  assert.match(await officer.page.textContent('main'), /break-glass/);
});

test('kind pages: not found, signed out, training due', async () => {
  const nurse = await signIn('registered-nurse');
  const missing = await nurse.page.goto(`${BASE}/no-such-page`);
  assert.equal(missing.status(), 404);
  await check(nurse.page, 'not-found');
  await nurse.page.goto(`${BASE}/`);
  await Promise.all([nurse.page.waitForURL(/signed-out/), nurse.page.click('.nhsuk-header__account-button')]);
  await check(nurse.page, 'signed-out');
  // The cookie is gone and the token revoked: back to sign in.
  await nurse.page.goto(`${BASE}/`);
  assert.match(nurse.page.url(), /\/sign-in$/, 'the ended session opens nothing');
  sessions.delete('registered-nurse');
  await nurse.context.close();

  const lapsed = ACCOUNTS.users.find((u) => u.note);
  if (lapsed) {
    const context = await browser.newContext({ viewport: WIDTHS[1] });
    const page = await context.newPage();
    await page.goto(`${BASE}/sign-in`);
    await page.fill('#username', lapsed.username);
    await page.fill('#password', lapsed.password);
    await page.fill('#totp', totp(lapsed.totp_secret));
    await Promise.all([page.waitForURL(/\/training$/), page.click('button[type=submit]')]);
    await check(page, 'training');
    await context.close();
  }
});

/// A signed context launch token (ES256) from the demo's care home record system, whose
/// private key the demo wrote beside its database (`docs/integrating.md`).
function launchToken(claims) {
  const b64 = (b) => Buffer.from(b).toString('base64url');
  const head = b64(JSON.stringify({ alg: 'ES256', typ: 'JWT' }));
  const body = b64(JSON.stringify(claims));
  const key = readFileSync(ACCOUNTS.launch.key_file, 'utf8');
  const sig = sign('sha256', Buffer.from(`${head}.${body}`), { key, dsaEncoding: 'ieee-p1363' });
  return `${head}.${body}.${b64(sig)}`;
}

/// The care home system's own page (another origin: here `about:blank`) posting the token.
async function launchFrom(page, token) {
  await page.setContent(
    `<main><form method="post" action="${BASE}/launch">` +
      `<input type="hidden" name="launch_token" value="${token}">` +
      `<button type="submit">Open the shared care record</button></form></main>`,
  );
  await Promise.all([page.waitForURL((url) => url.href.startsWith(BASE)), page.click('button')]);
}

test('a care home system launches a carer straight into a resident\'s record, once', async () => {
  const L = ACCOUNTS.launch;
  assert.ok(L, 'the demo registers a care home record system');
  const now = Math.floor(Date.now() / 1000);
  const token = launchToken({
    iss: L.client_id,
    aud: `${BASE}/launch`,
    iat: now,
    exp: now + 120,
    jti: `browser-${now}-${Math.random()}`,
    sub: 'browser-carer',
    name: 'Browser Launched Carer',
    role: 'care-worker',
    ods: L.ods,
    nhs_number: L.nhs_number,
    birth_date: L.birth_date,
    training_completed: new Date().toISOString().slice(0, 10),
  });
  const context = await browser.newContext({ viewport: WIDTHS[1] });
  const page = await context.newPage();
  await launchFrom(page, token);
  // The redirect arrives without the Strict session cookie; the page reloads itself once.
  await page.waitForFunction(() => {
    const h1 = document.querySelector('h1');
    return h1 && h1.textContent.trim() !== 'Opening the record';
  });
  assert.match(new URL(page.url()).pathname, /^\/residents\/[^/]+$/);
  assert.match(await page.textContent('header'), /Browser Launched Carer/);
  await check(page, 'launch-record');

  // The same token again is refused, and says why.
  await launchFrom(page, token);
  assert.equal((await page.textContent('#launch-refusal')).trim(), 'launch-replayed');
  await check(page, 'launch-refused');
  await context.close();
});

/// Someone in the demo's record who lives in no care home, shared beyond their source (verified
/// NHS number, no objection), with a full birth date: who a manager can record moving in.
async function notYetAResident() {
  const b = await fhir('EpisodeOfCare?status=active&_count=1000');
  const living = new Set((b.entry ?? []).map((e) => e.resource.patient?.reference));
  // A person who objected to sharing stays hidden from the home even while living there.
  const c = await fhir('Consent?status=active&_count=1000');
  for (const e of c.entry ?? []) living.add(e.resource.patient?.reference);
  const people = await fhir('Patient?_count=1000');
  return (people.entry ?? [])
    .map((e) => e.resource)
    .find(
      (p) =>
        !living.has(`Patient/${p.id}`) &&
        p.active !== false &&
        !(p.link ?? []).some((l) => l.type === 'replaced-by') &&
        /^\d{4}-\d{2}-\d{2}$/.test(p.birthDate ?? '') &&
        sharedWith(p, '') &&
        (p.identifier ?? []).some((i) => i.system === NHS_NUMBER),
    );
}

test('a manager records a move-in by NHS number and date of birth, a move-out, and undoes it', async () => {
  const home = account('care-home-manager').organisation;
  const person = await notYetAResident();
  assert.ok(person, 'the demo has someone who lives in no care home');
  assert.ok(!(await residentIds(home)).includes(person.id));
  const nhs = person.identifier.find((i) => i.system === NHS_NUMBER).value;
  const [year, month, day] = person.birthDate.split('-');

  const manager = await signIn('care-home-manager');
  const { page } = manager;
  await page.goto(`${BASE}/`);
  await Promise.all([page.waitForURL(/\/moves\/in$/), page.click('a:has-text("A resident moved in")')]);
  await check(page, 'moves-in');

  // A wrong date of birth is refused without saying which detail was wrong, or whose they are.
  await page.fill('#nhs', nhs);
  await page.fill('#born-day', String(Number(day)));
  await page.fill('#born-month', String(Number(month)));
  await page.fill('#born-year', String(Number(year) + 1));
  await page.click('form[action="/moves/in"] button[type=submit]');
  await page.waitForSelector('.nhsuk-error-summary');
  assert.match(await page.textContent('.nhsuk-error-summary'), /no person with this NHS number and date of birth/);
  assert.ok(!(await page.textContent('main')).includes(person.name?.[0]?.family ?? '\u0000'));
  await check(page, 'moves-in-error');

  // The right details: the person moves in, today.
  await page.fill('#born-year', year);
  await Promise.all([page.waitForURL(/\/moves\/done\//), page.click('form[action="/moves/in"] button[type=submit]')]);
  assert.match(await page.textContent('#confirmation'), /has moved in/);
  await check(page, 'moves-done-in');
  await page.goto(`${BASE}/`);
  const link = page.locator(`#residents a[href="/residents/${person.id}"]`);
  assert.equal(await link.count(), 1, 'the new resident is on the list');
  assert.ok((await residentIds(home)).includes(person.id));

  // Moved out: a confirmation step with the date, then they are gone from the list.
  await Promise.all([
    page.waitForURL(new RegExp(`/moves/out/${person.id}$`)),
    page.click(`a[href="/moves/out/${person.id}"]`),
  ]);
  await check(page, 'moves-out');
  await Promise.all([page.waitForURL(/\/moves\/done\//), page.click('button.nhsuk-button--warning')]);
  assert.match(await page.textContent('#confirmation'), /has moved out/);
  await check(page, 'moves-done-out');
  await page.goto(`${BASE}/`);
  assert.equal(await page.locator(`#residents a[href="/residents/${person.id}"]`).count(), 0, 'gone from the list');
  const refused = await page.goto(`${BASE}/residents/${person.id}`);
  assert.equal(refused.status(), 403, 'the home no longer sees the record');

  // Recent moves: undo the move-out, and they are back.
  await page.goto(`${BASE}/moves`);
  await check(page, 'moves-recent');
  const row = page.locator('#moves tbody tr', { hasText: 'Moved out' }).first();
  await Promise.all([page.waitForURL(/\/moves\/done\/.*did=undo/), row.locator('button').click()]);
  assert.match(await page.textContent('#confirmation'), /back on your list/);
  await page.goto(`${BASE}/`);
  assert.equal(await page.locator(`#residents a[href="/residents/${person.id}"]`).count(), 1, 'back on the list');
});

test('systems and apps: the programme administrator lists, registers and is told what is wrong', async () => {
  const { page } = await signIn('programme-admin');
  await page.goto(`${BASE}/systems`);
  await check(page, 'systems-list');
  assert.match(await page.textContent('main'), /Systems and apps/);
  await page.goto(`${BASE}/systems/new-system`);
  await check(page, 'systems-new-system');
  // Nothing filled in: the error summary names each problem, and nothing is registered.
  await page.fill('#client_id', 'has spaces');
  await page.click('button[type=submit]');
  await page.waitForSelector('.nhsuk-error-summary');
  await check(page, 'systems-new-system-errors');
  await page.goto(`${BASE}/systems/new-app`);
  await check(page, 'systems-new-app');
  // Disabling is asked first: the list's button leads to the question, which disables nothing.
  await page.goto(`${BASE}/systems`);
  await Promise.all([
    page.waitForURL(/\/systems\/demo-care-system\/disable$/),
    page.click('a[href="/systems/demo-care-system/disable"]'),
  ]);
  await check(page, 'systems-disable');
  assert.match(await page.textContent('h1'), /Disable demo-care-system\?/);
  await page.click('text=Keep demo-care-system active and go back');
  await page.waitForURL(/\/systems$/);
  assert.equal(await page.locator('a[href="/systems/demo-care-system/disable"]').count(), 1, 'still active');
});
