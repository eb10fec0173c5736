// What the browser test scripts share: their arguments, the results as
// JSON lines for t/lib/ChatTest/Browser.pm, the actions the test file
// carries out for them, Chromium, and waiting for a page.
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

// --key=value arguments
export const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)=(.*)$/s.exec(a);
  return m ? [m[1], m[2]] : [a, true];
}));

function line(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

let failures = 0;

export function ok(cond, name, diag) {
  const o = { ok: !!cond, name };
  if (!cond) {
    failures++;
    if (diag !== undefined) o.diag = typeof diag === 'string' ? diag : JSON.stringify(diag);
  }
  line(o);
  return !!cond;
}

export function is(got, want, name) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  return ok(g === w, name, `got:  ${g}\nwant: ${w}`);
}

export function skip(name, why) { line({ skip: why, name }); }
export function note(text) { line({ note: text }); }
export function failed() { return failures; }

// answers of the test file to actions, one JSON line each, in order
const answers = [];
const waiters = [];
createInterface({ input: process.stdin }).on('line', (l) => {
  let m;
  try { m = JSON.parse(l); } catch { return; }
  const w = waiters.shift();
  if (w) w(m); else answers.push(m);
});

// asks the test file to do something (stop nginx, ...) and waits for it
export async function action(name, arg) {
  line({ action: name, arg: arg === undefined ? null : arg });
  const m = answers.length ? answers.shift()
          : await new Promise((resolve) => waiters.push(resolve));
  if (m.error) throw new Error(`action ${name}: ${m.error}`);
  return m.result;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    headless: true,
  });
}

// page.waitForFunction that reports instead of throwing: true when fn
// (run in the page with arg) returned something truthy within timeout
export async function until(page, fn, arg, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return true;
  } catch (e) {
    if (!/Timeout/.test(String(e && e.message))) throw e;
    return false;
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// runs main, reports an exception as a failed check, ends with "done"
export async function main(fn) {
  let code = 0;
  try {
    await fn();
  } catch (e) {
    ok(false, 'the script threw', String((e && e.stack) || e));
    code = 1;
  }
  line({ done: true });
  process.exit(code);
}
