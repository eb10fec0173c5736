// conf/html/ngx-chat.js in Chromium against the real server (t/110):
// loaded as an ES module, two clients per transport the server speaks.
//
//   --base=URL   nginx with Redis: /chat, /admin, /nochat (404), /wsoff
//                (no WebSocket while ?ws=0), /blank.html
//   --mem=URL    nginx in embedded mode (a reload starts rooms at seq 0),
//                chat_history_cache 5
import { args, ok, is, skip, note, action, launch, until, sleep, main } from './lib.mjs';

const base = args.base;
const mem = args.mem;

// in the page: clients by name, and what each has seen
function helpers() {
  const events = ['message', 'joined', 'presence', 'typing', 'left', 'error',
                  'state', 'welcome', 'transport', 'gap', 'reset'];
  window.T = {
    c: {},
    make(name, opts) {
      const c = new globalThis.NgxChat(opts);
      const rec = { c, events: [], msgs: {} };
      for (const ev of events) {
        c.on(ev, (d) => {
          const plain = d instanceof Error ? { code: d.code, message: d.message, room: d.room } : d;
          rec.events.push({ ev, d: JSON.parse(JSON.stringify(plain)) });
          if (ev === 'message') (rec.msgs[d.room] ||= []).push({ seq: d.seq, text: d.text, user: d.user });
        });
      }
      this.c[name] = rec;
    },
    texts(name, room) { return (this.c[name].msgs[room] || []).map((m) => m.text); },
    seqs(name, room) { return (this.c[name].msgs[room] || []).map((m) => m.seq); },
    has(name, room, text) { return this.texts(name, room).includes(text); },
    seen(name, ev, pred) {
      return this.c[name].events.filter((e) => e.ev === ev && (!pred || pred(e.d))).map((e) => e.d);
    },
    state(name) { return this.c[name].c.state; },
    async settle(p) {
      try { return { ok: true, v: await p }; } catch (e) { return { ok: false, code: e.code, message: e.message }; }
    },
  };
}

async function newPage(browser, origin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => note(`page error: ${e.message}`));
  await page.goto(origin + '/blank.html');
  await page.evaluate(async () => { await import('/ngx-chat.js'); });
  await page.evaluate(helpers);
  return page;
}

// seqs strictly one after the other
function contiguous(seqs) {
  return seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1);
}

async function probe(path, init) {
  try {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), 3000);
    const res = await fetch(base + path, { ...init, signal: ac.signal });
    const type = res.headers.get('content-type') || '';
    const body = type.startsWith('text/event-stream') ? null : await res.text();
    ac.abort();
    clearTimeout(t);
    return { status: res.status, type, body };
  } catch {
    return { status: 0, type: '', body: null };
  }
}

// the HTTP transports, where the server has them
async function serverTransports() {
  const list = ['websocket'];
  const post = await probe('/chat?user=probe', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: '{"op":"heartbeat","id":"p"}' });
  const postOk = post.status === 200 && /"heartbeat"/.test(post.body || '');
  const sse = await probe('/chat?user=probe&rooms=probe', { headers: { Accept: 'text/event-stream' } });
  if (sse.status === 200 && sse.type.startsWith('text/event-stream') && postOk) list.push('sse');
  else skip('SSE transport', `the server does not speak SSE + POST (stream ${sse.status}, POST ${post.status})`);
  const poll = await probe('/chat?user=probe&poll=1&cursor=probe:&timeout=1');
  if (poll.status === 200 && /"poll"/.test(poll.body || '') && postOk) list.push('poll');
  else skip('long polling transport', `the server does not speak long polling + POST (poll ${poll.status}, POST ${post.status})`);
  return list;
}

// every scenario of one transport, both clients on it
async function scenarios(pa, pb, T) {
  const room = `room-${T}`;
  const A = `alice-${T}`;
  const B = `bob-${T}`;
  const opts = (user) => ({ url: '/chat', params: { user }, rooms: [room], transports: [T],
                            backoff: { base: 200, cap: 2000 } });
  await pa.evaluate(([o]) => { T.make('a', o); T.c.a.c.connect(); }, [opts(A)]);
  await pb.evaluate(([o]) => { T.make('b', o); T.c.b.c.connect(); }, [opts(B)]);

  const joined = (name) => T.seen(name, 'joined').length > 0;
  ok(await until(pa, joined, 'a') && await until(pb, joined, 'b'), `${T}: both clients joined ${room}`);
  is(await pa.evaluate(() => [T.state('a'), T.c.a.c.transport]), ['connected', T],
     `${T}: state connected, transport ${T}`);
  is(await pa.evaluate(() => T.seen('a', 'state').map((s) => s.state)), ['connecting', 'connected'],
     `${T}: states connecting, connected`);
  if (T !== 'poll') {
    is(await pa.evaluate(() => T.c.a.c.user), A, `${T}: the welcome names the user`);
  }

  // sends, acks, every message once and in order on both
  const acks = await pa.evaluate(async (r) => Promise.all(
    ['one', 'two', 'three'].map((t) => T.c.a.c.send(r, t))), room);
  ok(acks.every((a) => a.room === room && typeof a.id === 'string') &&
     contiguous(acks.map((a) => a.seq)), `${T}: three acks, consecutive seqs`, acks);
  for (const [p, n] of [[pa, 'a'], [pb, 'b']]) {
    await until(p, ([n, r]) => T.texts(n, r).length >= 3, [n, room]);
    is(await p.evaluate(([n, r]) => T.texts(n, r), [n, room]), ['one', 'two', 'three'],
       `${T}: ${n} got the three messages once, in order`);
    is(await p.evaluate(([n, r]) => T.seqs(n, r), [n, room]), acks.map((a) => a.seq),
       `${T}: ${n}: their seqs are the acks'`);
  }

  // typing, presence, online, history
  await pb.evaluate((r) => T.c.b.c.typing(r), room);
  ok(await until(pa, (u) => T.seen('a', 'typing', (d) => d.user === u).length, B),
     `${T}: typing reaches the other user`);
  const users = await pa.evaluate((r) => T.c.a.c.presence(r), room);
  if (T === 'poll') {
    // polls keep a user online, they make no room member
    ok(Array.isArray(users) && !users.includes(A), `${T}: presence answers, without the polling users`, users);
  } else {
    ok(users.includes(A) && users.includes(B), `${T}: presence lists both users`, users);
  }
  is(await pa.evaluate(([a, b]) => T.c.a.c.online([a, b, 'nobody-here']), [A, B]),
     { [A]: true, [B]: true, 'nobody-here': false }, `${T}: online`);
  const h = await pa.evaluate((r) => T.c.a.c.history(r, { limit: 2 }), room);
  is(h.map((m) => [m.room, m.text]), [[room, 'two'], [room, 'three']], `${T}: history, the latest 2`);
  const h2 = await pa.evaluate(([r, s]) => T.c.a.c.history(r, { before: s, limit: 5 }), [room, acks[1].seq]);
  is(h2.map((m) => m.text), ['one'], `${T}: history before a seq`);

  // b away: what a sends meanwhile comes on reconnect, once, in order
  await pb.evaluate(() => T.c.b.c.close());
  is(await pb.evaluate(() => T.state('b')), 'closed', `${T}: close(): state closed`);
  if (T !== 'poll') {
    ok(await until(pa, (u) => T.seen('a', 'presence', (d) => d.user === u && d.event === 'leave').length, B),
       `${T}: presence: the other user left`);
  }
  await pa.evaluate(async (r) => { for (const t of ['away 1', 'away 2', 'away 3']) await T.c.a.c.send(r, t); }, room);
  await pb.evaluate(() => T.c.b.c.connect());
  ok(await until(pb, (r) => T.texts('b', r).length >= 6, room), `${T}: b back: the missed messages come`);
  await sleep(300);
  is(await pb.evaluate((r) => T.texts('b', r), room), ['one', 'two', 'three', 'away 1', 'away 2', 'away 3'],
     `${T}: b resumed from its last seq: no gap, no duplicate`);
  ok(await pb.evaluate((r) => { const s = T.seqs('b', r); return s.every((x, i) => !i || x === s[i - 1] + 1); }, room),
     `${T}: b's seqs contiguous`);
  if (T !== 'poll') {
    ok(await until(pa, (u) => T.seen('a', 'presence', (d) => d.user === u && d.event === 'join').length, B),
       `${T}: presence: the other user joined again`);
  }

  // a message lost on the way: the gap is filled from history
  await pb.evaluate((r) => {
    const c = T.c.b.c;
    const orig = c._onEvent;
    let drop = 2;
    c._onEvent = function (link, ev) {
      if (drop > 0 && ev && ev.type === 'message' && ev.room === r) { drop--; return undefined; }
      return orig.call(this, link, ev);
    };
  }, room);
  await pa.evaluate(async (r) => { for (const t of ['gap 1', 'gap 2', 'gap 3']) await T.c.a.c.send(r, t); }, room);
  ok(await until(pb, (r) => T.has('b', r, 'gap 3'), room), `${T}: the message after a gap arrives`);
  is(await pb.evaluate((r) => T.texts('b', r).slice(-3), room), ['gap 1', 'gap 2', 'gap 3'],
     `${T}: the 2 dropped messages filled in from history, in order`);
  is(await pb.evaluate(() => T.seen('b', 'gap').length), 0, `${T}: no gap reported`);

  if (T === 'websocket') {
    // a send whose ack is lost with the connection: resent with its id,
    // stored once, acked with the first seq
    const r = await pa.evaluate(async (r) => {
      const p = T.c.a.c.send(r, 'resent with its id');
      T.c.a.c.reconnect();
      return T.settle(p);
    }, room);
    ok(r.ok, `${T}: the send survives the reconnect`, r);
    await until(pb, (r) => T.has('b', r, 'resent with its id'), room);
    await sleep(500);
    for (const [p, n] of [[pa, 'a'], [pb, 'b']]) {
      const got = await p.evaluate(([n, r]) => T.c[n].msgs[r].filter((m) => m.text === 'resent with its id'), [n, room]);
      ok(got.length === 1 && r.ok && got[0].seq === r.v.seq, `${T}: ${n}: stored once, the ack's seq`, { got, ack: r.v });
    }
  }

  // a new room on a live connection (SSE: a new stream, which takes over
  // from the old one without the user leaving the first room meanwhile)
  const leaves = (u) => T.seen('a', 'presence', (d) => d.user === u && d.event === 'leave').length;
  const before = await pa.evaluate(leaves, B);
  const j = await pb.evaluate(async (r) => T.settle(T.c.b.c.join(r + '-2')), room);
  ok(j.ok && j.v.room === `${room}-2`, `${T}: join on a live connection`, j);
  await pa.evaluate((r) => T.c.a.c.join(r + '-2').then(() => T.c.a.c.send(r + '-2', 'in the second room')), room);
  ok(await until(pb, (r) => T.has('b', r + '-2', 'in the second room'), room), `${T}: a message of the new room`);
  await pa.evaluate(async (r) => T.c.a.c.send(r, 'first room still'), room);
  ok(await until(pb, (r) => T.has('b', r, 'first room still'), room), `${T}: the first room goes on`);
  is(await pa.evaluate(leaves, B), before, `${T}: the other user never left the first room meanwhile`);

  // leave
  const left = await pb.evaluate(async (r) => {
    await T.c.b.c.leave(r);
    return [T.seen('b', 'left').length, await T.settle(T.c.b.c.send(r, 'after leave'))];
  }, room);
  ok(left[0] === 1 && !left[1].ok && left[1].code === 'not_joined', `${T}: leave: left, then send rejected not_joined`, left);
  if (T !== 'poll') {
    ok(await until(pa, ([u, n]) => T.seen('a', 'presence', (d) => d.user === u && d.event === 'leave').length > n,
                   [B, before]),
       `${T}: presence: the other user left the room`);
  }
  await pa.evaluate(async (r) => T.c.a.c.send(r + '-2', 'second room still'), room);
  ok(await until(pb, (r) => T.has('b', r + '-2', 'second room still'), room), `${T}: the other room goes on after the leave`);
  const errs = await pa.evaluate(() => T.seen('a', 'error'));
  is(errs, [], `${T}: no error event on a`);

  await pa.evaluate(() => T.c.a.c.close());
  await pb.evaluate(() => T.c.b.c.close());
}

main(async () => {
  const transports = await serverTransports();
  note(`transports of the server: ${transports.join(' ')}`);
  const browser = await launch();
  const pa = await newPage(browser, base);
  const pb = await newPage(browser, base);

  for (const T of transports) await scenarios(pa, pb, T);

  // what the library refuses at once
  const local = await pa.evaluate(async () => {
    T.make('q', { url: '/chat', params: { user: 'queue' }, rooms: ['q'], maxPending: 2,
                  maxMessageSize: 100 });
    const c = T.c.q.c;
    const p1 = T.settle(c.send('q', 'first'));
    const p2 = T.settle(c.send('q', 'second'));
    const r = {
      full: await T.settle(c.send('q', 'third')),
      notJoined: await T.settle(c.send('elsewhere', 'x')),
      empty: await T.settle(c.send('q', '')),
      badRoom: await T.settle(c.join('no spaces')),
    };
    c.connect();
    c.close();
    r.closed = [await p1, await p2];
    const d = new globalThis.NgxChat({ url: '/chat', rooms: ['q'], maxMessageSize: 100 });
    r.big = await T.settle(d.send('q', 'x'.repeat(200)));
    return r;
  });
  is(local.full.code, 'queue_full', 'maxPending: the send beyond it rejected queue_full');
  is(local.notJoined.code, 'not_joined', 'a send to a room not joined: not_joined');
  is(local.empty.code, 'bad_request', 'an empty text: bad_request');
  is(local.badRoom.code, 'bad_request', 'a bad room name: bad_request');
  is(local.closed.map((x) => x.code), ['closed', 'closed'], 'close(): the unacked sends rejected closed');
  is(local.big.code, 'too_large', 'a send over maxMessageSize: too_large');

  // the fallback order when nothing works: 2 tries each, then the next,
  // after the last the first again
  await pa.evaluate(() => {
    T.make('f', { url: '/nochat', params: { user: 'f' }, rooms: ['f'],
                  backoff: { base: 20, cap: 40 }, connectTimeout: 3000 });
    T.c.f.c.connect();
  });
  ok(await until(pa, () => T.seen('f', 'state', (s) => s.state === 'connecting').length >= 7, null, 30000),
     'fallback: seven connects tried');
  await pa.evaluate(() => T.c.f.c.close());
  is(await pa.evaluate(() => T.seen('f', 'state', (s) => s.state === 'connecting').slice(0, 7).map((s) => s.transport)),
     ['websocket', 'websocket', 'sse', 'sse', 'poll', 'poll', 'websocket'],
     'fallback: websocket twice, sse twice, poll twice, websocket again');
  ok(await pa.evaluate(() => T.seen('f', 'state', (s) => s.state === 'reconnecting')
                             .every((s) => s.delay >= 0 && s.delay <= 40)),
     'fallback: every delay within the backoff cap');

  // back to the WebSocket from a fallback, without gap or duplicate
  if (transports.includes('sse')) {
    await pa.evaluate(() => {
      window.wsAllowed = false;
      T.make('u', { url: '/wsoff', params: () => ({ user: 'upgrader', ws: window.wsAllowed ? '1' : '0' }),
                    rooms: ['up'], transports: ['websocket', 'sse'], backoff: { base: 20, cap: 40 },
                    upgradeInterval: 1500 });
      T.c.u.c.connect();
    });
    ok(await until(pa, () => T.c.u.c.transport === 'sse' && T.seen('u', 'joined').length), 'upgrade: on sse');
    await pb.evaluate(() => { T.make('w', { url: '/chat', params: { user: 'writer' }, rooms: ['up'] }); T.c.w.c.connect(); });
    await until(pb, () => T.seen('w', 'joined').length);
    await pb.evaluate(async () => { for (let i = 1; i <= 3; i++) await T.c.w.c.send('up', 'before ' + i); });
    await pa.evaluate(() => { window.wsAllowed = true; });
    const sent = pb.evaluate(async () => {
      for (let i = 1; i <= 20; i++) { await T.c.w.c.send('up', 'during ' + i); await new Promise((r) => setTimeout(r, 100)); }
    });
    ok(await until(pa, () => T.c.u.c.transport === 'websocket', null, 8000), 'upgrade: back on the WebSocket');
    await sent;
    await until(pa, () => T.has('u', 'up', 'during 20'));
    await sleep(300);
    const want = [1, 2, 3].map((i) => 'before ' + i).concat(Array.from({ length: 20 }, (_, i) => 'during ' + (i + 1)));
    is(await pa.evaluate(() => T.texts('u', 'up')), want, 'upgrade: every message once, in order, across the switch');
    is(await pa.evaluate(() => T.seen('u', 'transport').map((t) => t.transport)), ['sse', 'websocket'],
       'upgrade: transport events sse, websocket');
    await pa.evaluate(() => T.c.u.c.close());
    await pb.evaluate(() => T.c.w.c.close());
  } else {
    skip('upgrade from a fallback back to the WebSocket', 'needs the SSE transport');
  }

  // the application disconnects a user: 1008, no reconnect
  await pa.evaluate(() => { T.make('d', { url: '/chat', params: { user: 'dave' }, rooms: ['d'] }); T.c.d.c.connect(); });
  await until(pa, () => T.seen('d', 'joined').length);
  const st = await pa.evaluate(() => fetch('/admin', { method: 'POST', body: '{"op":"disconnect","user":"dave"}' })
                                 .then((r) => r.status));
  is(st, 200, 'chat_admin disconnect: 200');
  ok(await until(pa, () => T.state('d') === 'closed'), '1008: state closed');
  await sleep(1000);
  const closed = await pa.evaluate(() => [T.state('d'), T.seen('d', 'state').pop()]);
  ok(closed[0] === 'closed' && closed[1].code === 1008, '1008: still closed a second later, code 1008', closed);

  // embedded mode: a reload starts the room at seq 0 again; the client
  // says "reset" and takes the new numbers (none dropped as duplicates)
  const pm = await newPage(browser, mem);
  await pm.evaluate(() => {
    T.make('m', { url: '/chat', params: { user: 'mem' }, rooms: ['m'], backoff: { base: 100, cap: 500 } });
    T.c.m.c.connect();
  });
  await until(pm, () => T.seen('m', 'joined').length);
  await pm.evaluate(async () => { await T.c.m.c.send('m', 'm1'); await T.c.m.c.send('m', 'm2'); });
  await action('reload_mem');
  ok(await until(pm, () => T.seen('m', 'reset').length), 'embedded reload: reset');
  const after = await pm.evaluate(async () => T.settle(T.c.m.c.send('m', 'after the reload')));
  ok(await until(pm, () => T.has('m', 'm', 'after the reload')), 'embedded reload: the new seq 1 delivered');
  const ms = await pm.evaluate(() => [T.c.m.msgs.m, T.seen('m', 'reset')]);
  is(ms[0].map((m) => [m.seq, m.text]), [[1, 'm1'], [2, 'm2'], [1, 'after the reload']],
     'embedded reload: m1, m2, then seq 1 again');
  is(ms[1], [{ room: 'm', seq: 0 }], 'embedded reload: reset {room, seq: 0}');
  ok(after.ok && after.v.seq === 1, 'embedded reload: ack seq 1', after);

  // a gap history cannot fill (chat_history_cache 5 there): "gap", then
  // the messages it still has, in order
  await pm.evaluate(() => {
    const c = T.c.m.c;
    const orig = c._onEvent;
    let drop = 8;
    c._onEvent = function (link, ev) {
      if (drop > 0 && ev && ev.type === 'message') { drop--; return undefined; }
      return orig.call(this, link, ev);
    };
  });
  await pm.evaluate(async () => { for (let i = 1; i <= 9; i++) await T.c.m.c.send('m', 'c' + i); });
  ok(await until(pm, () => T.has('m', 'm', 'c9')), 'gap: the message after it arrives');
  is(await pm.evaluate(() => T.texts('m', 'm').slice(3)), ['c5', 'c6', 'c7', 'c8', 'c9'],
     'gap: what history still has, in order');
  is(await pm.evaluate(() => T.seen('m', 'gap')), [{ room: 'm', from: 2, to: 5 }],
     'gap: reported, seqs 2 to 5');
  await pm.evaluate(() => T.c.m.c.close());

  await browser.close();
});
