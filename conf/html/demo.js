/*
 * The ngx_chat demo, built on ngx-chat.js (loaded before it as a classic
 * script).  Everything users wrote (names, texts) goes into the page as
 * text (textContent, attributes), never as markup.
 *
 * ?transports=websocket,sse,poll restricts the client's transports, for
 * trying the fallbacks.
 */
(function () {
  'use strict';

  var STORE = 'ngx-chat-demo';
  var NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;
  var ROOM_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;
  var PAGE = 50;              /* messages a history request asks for */
  var KEEP = 2000;            /* messages kept per room */
  var GROUP_MS = 5 * 60000;   /* one header for a user's messages within this */
  var TYPING_MS = 4000;

  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /* ---- settings, kept across reloads */

  function load() {
    try {
      var s = JSON.parse(localStorage.getItem(STORE) || '{}');
      return {
        user: typeof s.user === 'string' && NAME_RE.test(s.user) ? s.user : null,
        rooms: Array.isArray(s.rooms) ? s.rooms.filter(function (r) { return ROOM_RE.test(r); }) : [],
        current: typeof s.current === 'string' ? s.current : null
      };
    } catch (e) {
      return { user: null, rooms: [], current: null };
    }
  }

  var settings = load();

  function save() {
    try { localStorage.setItem(STORE, JSON.stringify(settings)); } catch (e) { /* private mode */ }
  }

  var query = new URLSearchParams(location.search);
  var transports = query.get('transports') ? query.get('transports').split(',') : undefined;

  /* ---- state */

  var chat = null;
  var current = null;
  var views = new Map();       /* room -> what the page knows of it */
  var pending = [];            /* sends not acked, or failed: {room, text, state, seq, code} */
  var conn = { state: 'idle', transport: null, until: 0 };

  function view(name) {
    var v = views.get(name);
    if (!v) {
      v = { name: name, msgs: new Map(), unread: 0, members: new Map(), typing: new Map(),
            loaded: false, loading: false, noOlder: false, gaps: new Set(), joined: false };
      views.set(name, v);
    }
    return v;
  }

  function me() { return (chat && chat.user) || settings.user; }

  /* ---- formatting */

  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  var fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  function dayKey(d) { return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate(); }

  function dayLabel(d) {
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (dayKey(d) === dayKey(today)) return 'Today';
    if (dayKey(d) === dayKey(yesterday)) return 'Yesterday';
    var o = { weekday: 'long', day: 'numeric', month: 'long' };
    if (d.getFullYear() !== today.getFullYear()) o.year = 'numeric';
    return new Intl.DateTimeFormat(undefined, o).format(d);
  }

  function hue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function avatar(name, small) {
    var a = el('span', 'avatar' + (small ? ' small' : ''), Array.from(name || '?')[0]);
    a.style.background = 'hsl(' + hue(name || '') + ' 52% 46%)';
    a.setAttribute('aria-hidden', 'true');
    return a;
  }

  /* ---- rendering, batched to one pass per frame */

  var dirty = { rooms: false, messages: false, members: false, typing: false, conn: false };
  var scrollMode = null;    /* 'bottom': jump to the newest; 'keep': older ones were prepended */
  var queued = false;

  function render(what, mode) {
    what.split(' ').forEach(function (w) { dirty[w] = true; });
    if (mode === 'bottom' || (mode === 'keep' && scrollMode !== 'bottom')) scrollMode = mode;
    if (queued) return;
    queued = true;
    requestAnimationFrame(flush);
  }

  function flush() {
    queued = false;
    if (dirty.rooms) renderRooms();
    if (dirty.messages) renderMessages();
    if (dirty.members) renderMembers();
    if (dirty.typing) renderTyping();
    if (dirty.conn) renderConn();
    dirty = { rooms: false, messages: false, members: false, typing: false, conn: false };
  }

  function renderRooms() {
    var list = $('rooms');
    list.replaceChildren();
    var others = 0;
    settings.rooms.forEach(function (name) {
      var v = view(name);
      var li = el('li', 'room');
      if (name === current) li.classList.add('current');
      if (v.unread) li.classList.add('unread');
      if (!v.joined) li.classList.add('pending');
      li.dataset.room = name;
      li.append(el('span', 'room-hash', '#'), el('span', 'room-name', name));
      if (v.unread && name !== current) {
        li.append(el('span', 'badge', v.unread > 99 ? '99+' : v.unread));
        others += v.unread;
      }
      li.title = name;
      li.onclick = function () { select(name); closeDrawers(); };
      list.append(li);
    });
    $('nav-badge').hidden = !others;
    var total = 0;
    views.forEach(function (v) { total += v.unread; });
    document.title = (total ? '(' + total + ') ' : '') + (current ? '#' + current + ' · ' : '') + 'ngx_chat';
  }

  function renderMessages() {
    var log = $('log');
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
    var oldHeight = log.scrollHeight;
    var oldTop = log.scrollTop;
    var box = $('messages');
    box.replaceChildren();
    var v = current ? view(current) : null;
    var msgs = v ? Array.from(v.msgs.values()).sort(function (a, b) { return a.seq - b.seq; }) : [];
    var prev = null;
    var mine = me();
    msgs.forEach(function (m) {
      var d = new Date(m.ts);
      if (!prev || dayKey(d) !== dayKey(new Date(prev.ts))) {
        box.append(el('li', 'day', dayLabel(d)));
        prev = null;
      }
      if (v.gaps.has(m.seq)) {
        box.append(el('li', 'notice', 'Some earlier messages are no longer available.'));
        prev = null;
      }
      var first = !prev || prev.user !== m.user || m.ts - prev.ts > GROUP_MS;
      box.append(messageItem(m.user, m.text, d, first, m.user === mine, m.seq));
      prev = m;
    });
    pending.forEach(function (p) {
      if (p.room !== current) return;
      var li = messageItem(mine, p.text, new Date(), !prev || prev.user !== mine, true, null);
      li.classList.add(p.state === 'failed' ? 'failed' : 'pending');
      var state = el('div', 'msg-state');
      if (p.state === 'failed') {
        state.append(document.createTextNode('Not sent (' + p.code + ').'));
        var retry = el('button', null, 'Retry');
        retry.type = 'button';
        retry.onclick = function () { resend(p); };
        var drop = el('button', null, 'Discard');
        drop.type = 'button';
        drop.onclick = function () { pending.splice(pending.indexOf(p), 1); render('messages'); };
        state.append(retry, drop);
      } else {
        state.textContent = conn.state === 'connected' ? 'Sending…' : 'Waiting for the connection…';
      }
      li.append(state);
      box.append(li);
      prev = { user: mine, ts: Date.now() };
    });
    $('empty').hidden = !v || !v.loaded || msgs.length > 0 || pending.some(function (p) { return p.room === current; });
    var older = $('older');
    older.hidden = !v || !v.loading;
    older.textContent = 'Loading earlier messages…';

    if (scrollMode === 'bottom' || (atBottom && scrollMode !== 'keep')) {
      log.scrollTop = log.scrollHeight;
      $('jump').hidden = true;
    } else if (scrollMode === 'keep') {
      log.scrollTop = oldTop + (log.scrollHeight - oldHeight);
    } else if (log.scrollHeight > oldHeight) {
      $('jump').hidden = false;
      $('jump').textContent = 'New messages ↓';
    }
    scrollMode = null;
  }

  function messageItem(user, text, date, first, mine, seq) {
    var li = el('li', 'msg' + (first ? ' first' : '') + (mine ? ' mine' : ''));
    if (seq !== null) li.dataset.seq = seq;
    li.append(avatar(user));
    var body = el('div', 'msg-body');
    var head = el('div', 'msg-head');
    var time = el('time', 'msg-time', timeFmt.format(date));
    time.dateTime = date.toISOString();
    time.title = fullFmt.format(date) + (seq !== null ? ' · #' + seq : '');
    head.append(el('span', 'msg-user', user), time);
    body.append(head, el('div', 'msg-text', text));
    li.append(body);
    return li;
  }

  function renderMembers() {
    var list = $('member-list');
    list.replaceChildren();
    var v = current ? view(current) : null;
    var sub = $('room-sub');
    if (!v) { sub.textContent = 'Join a room to start chatting'; return; }
    var mine = me();
    var live = conn.state === 'connected';
    var all = new Map();
    /* while disconnected nobody's presence is known */
    v.members.forEach(function (on, name) { all.set(name, live && on); });
    if (mine) all.set(mine, live);
    var names = Array.from(all.keys()).sort(function (a, b) {
      return (all.get(b) - all.get(a)) || a.localeCompare(b);
    });
    var online = 0;
    names.forEach(function (name) {
      var on = all.get(name);
      if (on) online++;
      var li = el('li', 'member' + (on ? ' online' : ''));
      li.title = name + (on ? ' (online)' : ' (away)');
      li.append(avatar(name, true), el('span', 'member-name', name));
      if (name === mine) li.append(el('span', 'member-you', 'you'));
      list.append(li);
    });
    sub.textContent = v.joined ? online + ' online' : 'joining…';
  }

  function renderTyping() {
    var v = current ? view(current) : null;
    var t = Date.now();
    var who = [];
    if (v) v.typing.forEach(function (until, user) { if (until > t) who.push(user); else v.typing.delete(user); });
    var text = '';
    if (who.length === 1) text = who[0] + ' is typing…';
    else if (who.length === 2) text = who[0] + ' and ' + who[1] + ' are typing…';
    else if (who.length > 2) text = 'Several people are typing…';
    $('typing').textContent = text;
  }

  var STATE_TEXT = {
    idle: 'Not connected', connecting: 'Connecting…', connected: 'Connected',
    reconnecting: 'Reconnecting…', offline: 'Offline', closed: 'Disconnected'
  };
  var TRANSPORT_TEXT = { websocket: 'WebSocket', sse: 'SSE', poll: 'long polling' };

  function renderConn() {
    var s = conn.state;
    document.body.dataset.state = s;
    document.body.dataset.transport = conn.transport || '';
    document.body.dataset.fallback = conn.fallback ? '1' : '0';
    var pill = STATE_TEXT[s] || s;
    if (s === 'connected' && conn.fallback) pill += ' · ' + TRANSPORT_TEXT[conn.transport];
    $('conn-pill').textContent = pill;
    $('conn-pill').title = conn.transport ? 'over ' + TRANSPORT_TEXT[conn.transport] : '';
    $('conn-text').textContent = s === 'connected' ? 'online' : (STATE_TEXT[s] || s).toLowerCase();

    var banner = $('banner');
    banner.className = 'banner';
    banner.replaceChildren();
    if (s === 'reconnecting' || s === 'connecting' && conn.was) {
      var secs = Math.max(0, Math.ceil((conn.until - Date.now()) / 1000));
      banner.textContent = secs > 0 ? 'Connection lost. Reconnecting in ' + secs + ' s…'
                                    : 'Connection lost. Reconnecting…';
      banner.hidden = false;
    } else if (s === 'offline') {
      banner.textContent = 'You are offline. Messages are sent when the connection is back.';
      banner.hidden = false;
    } else if (s === 'closed' && conn.code === 1008) {
      banner.classList.add('bad');
      banner.append(document.createTextNode('The server closed the connection (' +
                    (conn.reason || 'policy') + '). '));
      var again = el('button', 'btn btn-ghost btn-small', 'Connect again');
      again.type = 'button';
      again.onclick = function () { chat.connect(); };
      banner.append(again);
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }

    var w = chat && chat.welcome;
    var diag = [conn.transport || '-'];
    if (w && conn.transport !== 'poll') diag.push('conn ' + w.conn, 'worker ' + w.worker);
    $('diag').textContent = diag.join(' · ');
    renderMembers();
    if (pending.length) renderMessages();
  }

  setInterval(function () {
    if (conn.state === 'reconnecting') render('conn');
    var v = current && views.get(current);
    if (v && v.typing.size) render('typing');
  }, 500);

  /* ---- rooms */

  function select(name) {
    if (name !== current) scrollMode = 'bottom';
    current = name;
    settings.current = name;
    save();
    $('room-title').textContent = name || '';
    $('leave-room').hidden = !name;
    $('leave-room-narrow').hidden = !name;
    $('composer').hidden = !name;
    if (name) view(name).unread = 0;
    $('jump').hidden = true;
    render('rooms messages members typing', 'bottom');
    if (name && !matchMedia('(max-width: 700px)').matches) $('text').focus();
  }

  function joinRoom(name) {
    var err = $('join-error');
    err.hidden = true;
    if (!ROOM_RE.test(name)) {
      err.textContent = 'Room names: 1 to 128 of A-Z a-z 0-9 _ . : @ -';
      err.hidden = false;
      return;
    }
    if (settings.rooms.indexOf(name) < 0) {
      settings.rooms.push(name);
      save();
      chat.join(name).catch(function (e) {
        forget(name);
        err.textContent = 'Cannot join ' + name + ': ' + e.code;
        err.hidden = false;
      });
    }
    select(name);
  }

  function forget(name) {
    settings.rooms = settings.rooms.filter(function (r) { return r !== name; });
    views.delete(name);
    pending = pending.filter(function (p) { return p.room !== name; });
    save();
    if (current === name) select(settings.rooms[0] || null);
    else render('rooms');
  }

  function leaveRoom() {
    if (!current) return;
    var name = current;
    chat.leave(name);
    forget(name);
  }

  function addMessage(m, live) {
    var v = views.get(m.room);
    if (!v || v.msgs.has(m.seq)) return;
    v.msgs.set(m.seq, { seq: m.seq, user: m.user, text: m.text, ts: m.ts });
    if (v.msgs.size > KEEP) {
      var oldest = Math.min.apply(null, Array.from(v.msgs.keys()));
      v.msgs.delete(oldest);
      v.noOlder = false;
    }
    if (!v.members.has(m.user) && v.members.size < 300) v.members.set(m.user, false);
    if (live) {
      v.typing.delete(m.user);
      if (m.user !== me() && (m.room !== current || document.hidden)) v.unread++;
    }
    /* an own message acked before it came: shown now, no longer pending */
    var before = pending.length;
    pending = pending.filter(function (p) { return !(p.room === m.room && p.seq === m.seq); });
    if (pending.length !== before && m.room === current) scrollMode = 'bottom';
    if (m.room === current) render('messages members typing');
    render('rooms');
  }

  /* the latest messages of a room joined for the first time, or older ones */
  function loadHistory(name, older) {
    var v = views.get(name);
    if (!v || v.loading || (older && v.noOlder)) return;
    var opts = { limit: PAGE };
    if (older) {
      if (!v.msgs.size) return;
      opts.before = Math.min.apply(null, Array.from(v.msgs.keys()));
    }
    v.loading = true;
    if (name === current) render('messages', older ? 'keep' : undefined);
    chat.history(name, opts).then(function (msgs) {
      v.loading = false;
      v.loaded = true;
      if (msgs.length < PAGE) v.noOlder = true;
      msgs.forEach(function (m) { addMessage(m, false); });
      if (name === current) render('messages', older ? 'keep' : 'bottom');
    }, function () {
      v.loading = false;
      v.loaded = true;
      if (name === current) render('messages');
    });
  }

  /* ---- sending */

  function send() {
    var box = $('text');
    var text = box.value;
    if (!current || !text.trim()) return;
    box.value = '';
    grow();
    var p = { room: current, text: text, state: 'sending', seq: null, code: null };
    pending.push(p);
    scrollMode = 'bottom';
    deliver(p);
    render('messages', 'bottom');
  }

  function deliver(p) {
    chat.send(p.room, p.text).then(function (ack) {
      p.seq = ack.seq;
      var v = views.get(p.room);
      if (v && v.msgs.has(ack.seq)) {
        pending = pending.filter(function (x) { return x !== p; });
        render('messages');
      }
    }, function (e) {
      p.state = 'failed';
      p.code = e.code;
      render('messages');
    });
  }

  function resend(p) {
    p.state = 'sending';
    p.code = null;
    deliver(p);
    render('messages');
  }

  function grow() {
    var t = $('text');
    t.style.height = 'auto';
    t.style.height = Math.min(t.scrollHeight, 160) + 'px';
  }

  /* ---- the client */

  function start() {
    $('signin').hidden = true;
    $('app').hidden = false;
    $('me-name').textContent = settings.user;
    var a = avatar(settings.user);
    a.id = 'me-avatar';
    $('me-avatar').replaceWith(a);
    if (!settings.rooms.length) settings.rooms = ['lobby'];
    save();
    views.clear();
    pending = [];
    settings.rooms.forEach(view);

    chat = new NgxChat({ url: 'chat', params: { user: settings.user }, rooms: settings.rooms,
                         transports: transports });
    chat.on('state', function (s) {
      if (s.state === 'connected') conn.was = true;
      conn.state = s.state;
      if (s.state === 'connected') { conn.transport = s.transport; conn.fallback = s.fallback; }
      if (s.state === 'reconnecting') conn.until = Date.now() + s.delay;
      if (s.state !== 'connected') views.forEach(function (v) { v.joined = false; });
      conn.code = s.code;
      conn.reason = s.reason;
      render('conn rooms');
    });
    chat.on('joined', function (j) {
      var v = views.get(j.room);
      if (!v) return;
      v.joined = true;
      if (!v.loaded) loadHistory(j.room, false);
      chat.presence(j.room).then(function (users) {
        v.members.forEach(function (on, u) { v.members.set(u, false); });
        users.forEach(function (u) { v.members.set(u, true); });
        render('members');
      }, function () { /* best effort */ });
      render('rooms members');
    });
    chat.on('reset', function (r) {
      var v = views.get(r.room);
      if (!v) return;
      v.msgs.clear();
      v.gaps.clear();
      v.loaded = false;
      v.noOlder = false;
      render('messages');
    });
    chat.on('gap', function (g) {
      var v = views.get(g.room);
      if (v) v.gaps.add(g.to + 1);
    });
    chat.on('message', function (m) { addMessage(m, true); });
    chat.on('presence', function (p) {
      var v = views.get(p.room);
      if (!v || !p.user) return;
      v.members.set(p.user, p.event === 'join');
      if (p.event === 'leave') v.typing.delete(p.user);
      if (p.room === current) render('members typing');
    });
    chat.on('typing', function (t) {
      var v = views.get(t.room);
      if (!v) return;
      v.typing.set(t.user, Date.now() + TYPING_MS);
      if (t.room === current) render('typing');
    });
    chat.on('left', function (l) {
      if (l.reason && settings.rooms.indexOf(l.room) >= 0) forget(l.room);
    });
    chat.on('error', function (e) {
      if (e.room && e.code === 'forbidden' && settings.rooms.indexOf(e.room) >= 0) forget(e.room);
    });
    chat.on('welcome', function () { render('conn'); });
    chat.connect();

    var want = settings.current && settings.rooms.indexOf(settings.current) >= 0
             ? settings.current : settings.rooms[0];
    select(want);
    render('conn');
  }

  function signOut() {
    if (chat) chat.close();
    chat = null;
    settings.user = null;
    save();
    $('app').hidden = true;
    $('signin').hidden = false;
    $('signin-name').value = '';
    $('signin-name').focus();
    document.title = 'ngx_chat';
  }

  /* ---- drawers (narrow screens) */

  function closeDrawers() {
    document.body.classList.remove('nav-open', 'members-open');
    $('scrim').hidden = true;
  }

  function toggleDrawer(cls) {
    var open = !document.body.classList.contains(cls);
    closeDrawers();
    if (open) {
      document.body.classList.add(cls);
      $('scrim').hidden = false;
    }
  }

  /* ---- wiring */

  $('signin-form').onsubmit = function (e) {
    e.preventDefault();
    var name = $('signin-name').value.trim();
    if (!NAME_RE.test(name)) return;
    settings.user = name;
    save();
    start();
  };
  $('signout').onclick = signOut;
  $('join-form').onsubmit = function (e) {
    e.preventDefault();
    var name = $('join-name').value.trim();
    if (!name) return;
    $('join-name').value = '';
    joinRoom(name);
    closeDrawers();
  };
  $('leave-room').onclick = leaveRoom;
  $('leave-room-narrow').onclick = function () { closeDrawers(); leaveRoom(); };
  $('composer').onsubmit = function (e) { e.preventDefault(); send(); };
  $('text').addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('text').addEventListener('input', function () {
    grow();
    if (current && chat && $('text').value.trim()) chat.typing(current);
  });
  $('log').addEventListener('scroll', function () {
    var log = $('log');
    if (log.scrollTop < 80 && current) loadHistory(current, true);
    if (log.scrollTop + log.clientHeight >= log.scrollHeight - 40) $('jump').hidden = true;
  });
  $('jump').onclick = function () { render('messages', 'bottom'); };
  $('nav-toggle').onclick = function () { toggleDrawer('nav-open'); };
  $('members-toggle').onclick = function () {
    if (matchMedia('(max-width: 1000px)').matches) toggleDrawer('members-open');
    else document.body.classList.toggle('members-hidden');
  };
  $('members-close').onclick = closeDrawers;
  $('scrim').onclick = closeDrawers;
  document.addEventListener('keydown', function (e) { if (e.key === 'Escape') closeDrawers(); });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && current && views.get(current)) {
      views.get(current).unread = 0;
      render('rooms');
    }
  });

  if (settings.user) start();
  else $('signin').hidden = false;
})();
