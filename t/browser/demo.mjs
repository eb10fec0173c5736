// The demo page, conf/html/index.html, as two people use it (t/111): alice
// on a desktop, bob on a phone.
//
//   --base=URL   nginx with Redis serving conf/html and /chat
//   --out=DIR    where the screenshots go
//
// Actions of the test file: stop (nginx stopped), start (started again on
// the same port), reload (nginx reloaded: its workers close with 1001).
import { args, ok, is, note, action, launch, until, sleep, main } from './lib.mjs';

const base = args.base;
const out = args.out;
const url = base + '/?transports=websocket';

// in the page: the messages shown, in the order shown
function shown() {
  return Array.from(document.querySelectorAll('#messages li.msg')).map((li) => ({
    seq: li.dataset.seq === undefined ? null : Number(li.dataset.seq),
    user: li.querySelector('.msg-user').textContent,
    text: li.querySelector('.msg-text').textContent,
    pending: li.classList.contains('pending') || li.classList.contains('failed'),
  }));
}

const connected = () => document.body.dataset.state === 'connected' &&
                        !document.querySelector('#rooms li.current.pending');

async function signIn(page, name) {
  await page.goto(url);
  await page.fill('#signin-name', name);
  await page.press('#signin-name', 'Enter');
  return until(page, connected);
}

// the states the page went through, from now on
async function recordStates(page) {
  await page.evaluate(() => {
    window.__states = [];
    new MutationObserver(() => {
      const s = document.body.dataset.state;
      if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
    }).observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  });
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// every message once, in seq order, seqs contiguous, none pending
function orderOk(list) {
  const seqs = list.map((m) => m.seq);
  return list.every((m) => !m.pending && m.seq !== null) &&
         seqs.every((s, i) => !i || s === seqs[i - 1] + 1) &&
         new Set(list.map((m) => m.text)).size === list.length;
}

async function hasAll(page, texts, timeout = 15000) {
  return until(page, (want) => {
    const got = Array.from(document.querySelectorAll('#messages li.msg[data-seq] .msg-text'))
      .map((e) => e.textContent);
    return want.every((t) => got.includes(t)) &&
           !document.querySelector('#messages li.msg.pending, #messages li.msg.failed');
  }, texts, timeout);
}

async function openRooms(page) {
  await page.click('#nav-toggle');
  await until(page, () => document.body.classList.contains('nav-open'));
}

main(async () => {
  const browser = await launch();
  const desk = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
                                           isMobile: true, hasTouch: true });
  const A = await desk.newPage();
  const B = await phone.newPage();
  const errors = [];
  for (const [p, n] of [[A, 'alice'], [B, 'bob']]) {
    p.on('pageerror', (e) => errors.push(`${n}: ${e.message}`));
    p.on('dialog', (d) => { errors.push(`${n}: a dialog: ${d.message()}`); d.dismiss(); });
  }

  ok(await signIn(A, 'alice'), 'alice signed in, connected, lobby joined');
  ok(await signIn(B, 'bob'), 'bob signed in on a phone, connected, lobby joined');
  is(await A.evaluate(() => [document.body.dataset.transport, document.querySelector('#conn-pill').textContent]),
     ['websocket', 'Connected'], 'the connection state shows: Connected (WebSocket)');
  ok(/^websocket · conn \d+ · worker [0-9a-f]{16}$/.test(await A.textContent('#diag')),
     'the diagnostics line: transport, conn, worker', await A.textContent('#diag'));
  await recordStates(A);
  await recordStates(B);

  // both ways, interleaved
  const sent = [];
  for (let i = 1; i <= 5; i++) {
    await say(A, `alice ${i}`);
    await say(B, `bob ${i}`);
    sent.push(`alice ${i}`, `bob ${i}`);
  }
  for (const [p, n] of [[A, 'alice'], [B, 'bob']]) {
    ok(await hasAll(p, sent), `${n}: all 10 messages shown`);
    const list = await p.evaluate(shown);
    ok(orderOk(list) && list.length === 10, `${n}: each once, in seq order, seqs contiguous`, list);
    is(list.filter((m) => m.user === 'alice').map((m) => m.text), [1, 2, 3, 4, 5].map((i) => `alice ${i}`),
       `${n}: alice's in the order she sent them, under her name`);
    is(list.filter((m) => m.user === 'bob').map((m) => m.text), [1, 2, 3, 4, 5].map((i) => `bob ${i}`),
       `${n}: bob's in the order he sent them, under his name`);
  }

  // hostile text stays text
  const hostile = ['<img src=x onerror="window.__pwned=1">',
                   '<b>bold</b> &amp; <script>window.__pwned=2</script>',
                   '\u202Eevil\u202C <a href="javascript:window.__pwned=3">x</a>'];
  for (const t of hostile) await say(A, t);
  ok(await hasAll(B, hostile), 'bob: the hostile texts arrive');
  await sleep(300);
  is((await B.evaluate(shown)).slice(-3).map((m) => m.text), hostile, 'bob: shown exactly as sent, as text');
  is(await B.evaluate(() => document.querySelectorAll('#messages img, #messages script, #messages b, #messages a').length),
     0, 'bob: no element made of them');
  is(await B.evaluate(() => window.__pwned), undefined, 'bob: none of them ran');
  is(await A.evaluate(() => window.__pwned), undefined, 'alice: none of them ran');

  // typing, members
  await B.fill('#text', 'hmm');
  ok(await until(A, () => document.querySelector('#typing').textContent === 'bob is typing…', null, 6000),
     'alice sees "bob is typing…"');
  await B.fill('#text', '');
  is(await A.evaluate(() => Array.from(document.querySelectorAll('#member-list .member.online .member-name'))
                              .map((e) => e.textContent).sort()),
     ['alice', 'bob'], 'alice: both members online in the member list');

  // unread counts: bob joins a second room and looks at it
  await openRooms(B);
  await B.fill('#join-name', 'side');
  await B.press('#join-name', 'Enter');
  ok(await until(B, () => document.querySelector('#room-title').textContent === 'side' && !document.querySelector('#rooms li.pending')),
     'bob joined "side" from the room list');
  await say(A, 'unread 1');
  await say(A, 'unread 2');
  ok(await until(B, () => {
    const b = document.querySelector('#rooms li[data-room="lobby"] .badge');
    return b && b.textContent === '2';
  }), 'bob: lobby shows 2 unread');
  ok(await until(B, () => !document.querySelector('#nav-badge').hidden), 'bob: the menu button shows a dot');
  await openRooms(B);
  await B.screenshot({ path: `${out}/phone-rooms.png` });
  await B.click('#rooms li[data-room="lobby"]');
  ok(await until(B, () => document.querySelector('#room-title').textContent === 'lobby' &&
                          !document.querySelector('#rooms .badge') && document.querySelector('#nav-badge').hidden),
     'bob: back in lobby, the unread count gone');

  // nginx goes away: what alice and bob write meanwhile waits, and
  // arrives once when it is back
  await action('stop');
  ok(await until(A, () => document.body.dataset.state !== 'connected') &&
     await until(B, () => document.body.dataset.state !== 'connected'), 'nginx stopped: both pages not connected');
  ok(await until(A, () => !document.querySelector('#banner').hidden), 'alice: a banner says the connection is lost',
     await A.textContent('#banner'));
  await say(A, 'alice while down');
  await say(B, 'bob while down');
  is((await A.evaluate(shown)).filter((m) => m.pending).map((m) => m.text), ['alice while down'],
     'alice: her message shown as waiting');
  await A.screenshot({ path: `${out}/desktop-reconnecting.png` });
  await action('start');
  for (const [p, n] of [[A, 'alice'], [B, 'bob']]) {
    ok(await until(p, connected, null, 30000), `${n}: connected again`);
    ok(await hasAll(p, ['alice while down', 'bob while down'], 20000), `${n}: both messages written while down arrived`);
  }
  await sleep(500);
  for (const [p, n] of [[A, 'alice'], [B, 'bob']]) {
    const list = await p.evaluate(shown);
    ok(orderOk(list), `${n}: after the outage each message once, in order, contiguous`, list);
  }

  // nginx reloads: workers close with 1001, the pages come back at once
  await action('reload');
  ok(await until(A, () => window.__states.filter((s) => s === 'connected').length >= 2 &&
                          document.body.dataset.state === 'connected', null, 20000),
     'alice: reconnected after the reload');
  ok(await until(B, () => window.__states.filter((s) => s === 'connected').length >= 2 &&
                          document.body.dataset.state === 'connected', null, 20000),
     'bob: reconnected after the reload');
  await until(B, connected);
  await say(A, 'alice after the reload');
  await say(B, 'bob after the reload');
  const all = sent.concat(hostile, ['unread 1', 'unread 2', 'alice while down', 'bob while down',
                                    'alice after the reload', 'bob after the reload']);
  for (const [p, n] of [[A, 'alice'], [B, 'bob']]) {
    ok(await hasAll(p, all), `${n}: every message of the test shown`);
    await sleep(200);
    const list = await p.evaluate(shown);
    ok(orderOk(list) && list.length === all.length, `${n}: after the reload each once, in order, contiguous`,
       { count: list.length, want: all.length, list });
  }
  note(`alice's states: ${(await A.evaluate(() => window.__states)).join(' ')}`);
  note(`bob's states: ${(await B.evaluate(() => window.__states)).join(' ')}`);
  is((await A.evaluate(shown)).map((m) => m.seq), (await B.evaluate(shown)).map((m) => m.seq),
     'both pages show the same seqs');

  // a reload of the page keeps the name, the rooms, the room shown
  await B.reload();
  ok(await until(B, connected), 'bob reloaded the page: connected again, without signing in');
  is(await B.evaluate(() => [document.querySelector('#me-name').textContent,
                             Array.from(document.querySelectorAll('#rooms li')).map((li) => li.dataset.room),
                             document.querySelector('#room-title').textContent]),
     ['bob', ['lobby', 'side'], 'lobby'], 'bob: name, rooms and current room remembered');
  ok(await hasAll(B, all), 'bob: the history of lobby shown again');
  is((await B.evaluate(shown)).map((m) => m.text), (await A.evaluate(shown)).map((m) => m.text),
     'bob: the same messages as alice, in the same order');

  await A.fill('#text', '');
  await B.fill('#text', 'typing on a phone');
  await until(A, () => document.querySelector('#typing').textContent !== '', null, 5000);
  await A.screenshot({ path: `${out}/desktop.png` });
  await B.screenshot({ path: `${out}/phone.png` });
  const dark = await browser.newContext({ viewport: { width: 1100, height: 720 }, colorScheme: 'dark' });
  const C = await dark.newPage();
  C.on('pageerror', (e) => errors.push(`carol: ${e.message}`));
  await C.goto(url);
  await C.screenshot({ path: `${out}/signin-dark.png` });
  await C.fill('#signin-name', 'carol');
  await C.press('#signin-name', 'Enter');
  await until(C, connected);
  await hasAll(C, ['bob after the reload']);
  await C.screenshot({ path: `${out}/desktop-dark.png` });
  note(`screenshots: ${out}/{desktop,phone,phone-rooms,desktop-reconnecting,signin-dark,desktop-dark}.png`);

  is(errors, [], 'no page error, no dialog');
  await browser.close();
});
