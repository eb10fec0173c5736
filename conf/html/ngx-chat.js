/*
 * ngx-chat.js: the browser client of ngx_chat.  One file, no dependencies.
 *
 * A classic script: it defines globalThis.NgxChat (and module.exports where
 * there is a CommonJS module object, for bundlers).  In a page:
 *
 *     <script src="/ngx-chat.js"></script>
 *     <script> const chat = new NgxChat({ url: '/chat', rooms: ['lobby'] }); </script>
 *
 * From an ES module (an import that runs the script once, for its effect):
 *
 *     import './ngx-chat.js';
 *     const { NgxChat } = globalThis;
 *
 * What it does (README, "JavaScript client", is the reference):
 *
 *   - transports: a WebSocket; else Server-Sent Events for what the server
 *     sends and POST for requests; else long polling and POST.  A transport
 *     that fails `fallbackAfter` times in a row before its welcome gives way
 *     to the next one (after the last: the first again).  On a fallback it
 *     tries the first transport again every `upgradeInterval` (doubling up
 *     to `upgradeMax` while that fails) and moves back when it works.
 *   - reconnects with capped exponential backoff and full jitter, the
 *     backoff reset by a connection that got its welcome and lived
 *     `stableAfter` ms (or that the server closed with 1001);
 *   - resumes every room from the last seq it delivered (join with since,
 *     since= of a stream, cursor= of a poll): every room's messages reach
 *     the application once, in seq order; a gap is filled with history;
 *   - send() gives every message an id and keeps it until its ack, through
 *     reconnects, resending it with the same id (the server stores it once).
 */
(function (root) {
  'use strict';

  var ROOM_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

  var TRANSPORTS = ['websocket', 'sse', 'poll'];

  var DEFAULTS = {
    url: '/chat',
    rooms: [],
    params: null,               /* {k: v} or a function (may be async) */
    token: null,                /* async ({reason}) => string */
    transports: TRANSPORTS,
    fallbackAfter: 2,
    backoff: { base: 500, cap: 30000 },
    stableAfter: 5000,
    connectTimeout: 10000,
    upgradeInterval: 60000,
    upgradeMax: 600000,
    heartbeat: 15000,
    heartbeatTimeout: 10000,
    requestTimeout: 30000,
    pollTimeout: 25,
    maxPending: 1000,
    maxRequests: 100,
    maxMessageSize: 8192,
    maxGapFill: 500,
    maxBuffered: 5000,
    sendWindow: 8,
    sendRetries: 5,
    typingInterval: 2000,
    withCredentials: false
  };

  /* errors a request may get again later: it is retried (a send with the
   * same id), the others reject its promise */
  var TRANSIENT = { unavailable: true, internal: true, rate_limited: true };

  /* what a join of a stream's room may get instead of its joined */
  var JOIN_ERRORS = { forbidden: true, too_many_rooms: true, unavailable: true, internal: true };

  function now() { return Date.now(); }

  function newId() {
    var c = root.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    var b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      c.getRandomValues(b);
    } else {
      for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    var s = '';
    for (var j = 0; j < 16; j++) s += (b[j] < 16 ? '0' : '') + b[j].toString(16);
    return s;
  }

  function utf8Length(s) {
    if (typeof TextEncoder === 'function') return new TextEncoder().encode(s).length;
    return unescape(encodeURIComponent(s)).length;
  }

  function jitter(attempt, base, cap) {
    return Math.floor(Math.random() * Math.min(cap, base * Math.pow(2, attempt)));
  }

  /* An error as the server sends it, as an Error: code, message, and the
   * request's id and room where there is one. */
  class ChatError extends Error {
    constructor(obj) {
      super((obj && obj.message) || (obj && obj.code) || 'error');
      this.name = 'NgxChatError';
      this.type = 'error';
      this.code = (obj && obj.code) || 'error';
      if (obj && obj.id !== undefined) this.id = obj.id;
      if (obj && obj.room !== undefined) this.room = obj.room;
      if (obj && obj.status !== undefined) this.status = obj.status;
    }
  }

  function chatError(code, message, extra) {
    var o = { code: code, message: message };
    if (extra) for (var k in extra) o[k] = extra[k];
    return new ChatError(o);
  }

  /* "R1:7,R2:,R3:9" (the seq after the last colon; room names may hold
   * colons, never commas) into a Map room -> seq or null */
  function parseCursor(s) {
    var out = new Map();
    if (typeof s !== 'string' || s === '') return out;
    s.split(',').forEach(function (item) {
      var i = item.lastIndexOf(':');
      var name = i < 0 ? item : item.slice(0, i);
      var v = i < 0 ? '' : item.slice(i + 1);
      if (!ROOM_RE.test(name)) return;
      out.set(name, /^\d+$/.test(v) ? Number(v) : null);
    });
    return out;
  }


  /* ------------------------------------------------------------ links */

  /*
   * A link is one transport's connection.  The client has one primary
   * link; while it replaces that one (a probe of the first transport that
   * succeeded, a new SSE stream for another room list) the old one drains:
   * its messages still count (duplicates are dropped by seq) until every
   * room is joined on the new one.
   */
  var linkIds = 0;

  class Link {
    constructor(client, kind, role) {
      this.client = client;
      this.kind = kind;
      this.role = role;           /* primary, probe, restream, draining */
      this.id = ++linkIds;
      this.stopped = false;
      this.welcomedAt = 0;
      this.lastRx = 0;
      this.timer = null;
    }

    /* the link ends on its own: the client decides what follows */
    fail(code, reason) {
      if (this.stopped) return;
      this.stop();
      this.client._linkDown(this, { code: code, reason: reason || '' });
    }
  }

  class WsLink extends Link {
    start(url) {
      var self = this;
      var ws;
      try {
        ws = new root.WebSocket(url);
      } catch (e) {
        setTimeout(function () { self.fail(1006, String(e && e.message)); }, 0);
        return;
      }
      this.ws = ws;
      ws.onmessage = function (e) {
        if (self.stopped) return;
        self.lastRx = now();
        var ev;
        try { ev = JSON.parse(e.data); } catch (err) { return; }
        self.client._onEvent(self, ev);
      };
      ws.onclose = function (e) {
        if (self.stopped) return;
        self.stopped = true;
        self.client._linkDown(self, { code: e.code, reason: e.reason || '' });
      };
      ws.onerror = function () { /* onclose follows */ };
    }

    ready() { return !this.stopped && this.ws && this.ws.readyState === 1; }

    transmit(req) {
      if (!this.ready()) return false;
      this.ws.send(JSON.stringify(req));
      return true;
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      var ws = this.ws;
      if (!ws) return;
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch (e) { /* already closing */ }
    }
  }

  /* SSE and polling: what the server sends comes by GET, requests by POST */
  class HttpLink extends Link {
    ready() { return !this.stopped; }
  }

  class SseLink extends HttpLink {
    start(url, rooms) {
      var self = this;
      this.rooms = rooms;
      this.answered = new Set();    /* rooms with a joined or an error */
      if (!rooms.length) {
        /* a stream needs a room: without one, a heartbeat tells that the
         * server answers, and requests go by POST */
        this.client._post({ op: 'heartbeat' }).then(function (reply) {
          if (self.stopped) return;
          if (reply.type === 'error' && reply.status !== 429) {
            self.fail(1006, reply.message);
          } else {
            self.client._welcomed(self, null);
          }
        });
        return;
      }
      var es;
      try {
        es = new root.EventSource(url, { withCredentials: !!this.client._o.withCredentials });
      } catch (e) {
        setTimeout(function () { self.fail(1006, String(e && e.message)); }, 0);
        return;
      }
      this.es = es;
      es.onmessage = function (e) {
        if (self.stopped) return;
        self.lastRx = now();
        var ev;
        try { ev = JSON.parse(e.data); } catch (err) { return; }
        if (ev && ev.type === 'close') {
          /* the server ends the stream on purpose, with a close code */
          self.fail(typeof ev.code === 'number' ? ev.code : 1001, ev.reason || '');
          return;
        }
        self.client._onEvent(self, ev);
      };
      /* EventSource would reconnect by itself, with the URL (and token) it
       * has: the client reconnects instead, with a fresh token and cursors */
      es.onerror = function () { self.fail(1006, 'stream error'); };
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.es) {
        this.es.onmessage = this.es.onerror = null;
        this.es.close();
      }
    }
  }

  class PollLink extends HttpLink {
    start() {
      this.cursor = new Map();    /* room -> seq of the server's last cursor */
      this.confirmed = new Set(); /* rooms a poll has answered for */
      this.unauthorized = 0;
      this.changed = true;
      this.loop();
    }

    /* the rooms changed: the poll in flight is given up for a new one */
    wake() {
      this.changed = true;
      if (this.abort) { this.abortWhy = 'rooms'; this.abort.abort(); }
      if (this.idle) { var f = this.idle; this.idle = null; f(); }
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.abort) { this.abortWhy = 'stop'; this.abort.abort(); }
      if (this.idle) { var f = this.idle; this.idle = null; f(); }
    }

    async loop() {
      var client = this.client;
      while (!this.stopped) {
        var names = client._roomNames();
        if (!names.length) {
          if (!this.welcomedAt) {
            var hb = await client._post({ op: 'heartbeat' });
            if (this.stopped) return;
            if (hb.type === 'error' && hb.status !== 429) { this.fail(1006, hb.message); return; }
            client._welcomed(this, null);
          }
          var self = this;
          await new Promise(function (resolve) { self.idle = resolve; });
          continue;
        }
        var cursor = names.map(function (name) {
          var seq = this.cursor.has(name) ? this.cursor.get(name) : client._rooms.get(name).last;
          return name + ':' + (seq === null || seq === undefined ? '' : seq);
        }, this).join(',');
        /* the first poll, and one for a new room list, is answered within a
         * second: it confirms the rooms and their seqs */
        var timeout = this.changed ? 1 : client._o.pollTimeout;
        this.changed = false;
        var res = await this.get(cursor, timeout);
        if (this.stopped) return;
        if (res === 'again') continue;
        if (res !== 'ok') { this.fail(1006, res); return; }
      }
    }

    /* one poll: 'ok', 'again' (given up for new rooms, or a new token), or
     * why the link failed */
    async get(cursor, timeout) {
      var client = this.client;
      var reason = this.unauthorized === 1 ? 'unauthorized' : 'request';
      var url;
      try {
        url = await client._url('poll', reason, [['poll', '1'], ['cursor', cursor],
                                                 ['timeout', String(timeout)]]);
      } catch (e) {
        client._emitError('token', e);
        return 'token hook failed';
      }
      if (this.stopped) return 'stopped';
      var ac = new AbortController();
      var self = this;
      this.abort = ac;
      this.abortWhy = 'timeout';
      var t = setTimeout(function () { ac.abort(); }, (timeout + 15) * 1000);
      var res, body;
      try {
        res = await root.fetch(url, { signal: ac.signal, cache: 'no-store',
                                      credentials: client._credentials() });
        body = await res.json().catch(function () { return null; });
      } catch (e) {
        return this.abortWhy === 'rooms' ? 'again' : 'network error';
      } finally {
        clearTimeout(t);
        if (self.abort === ac) self.abort = null;
      }
      if (this.stopped) return 'stopped';
      this.lastRx = now();
      if (res.status === 401 && this.unauthorized++ === 0) {
        this.changed = true;
        return 'again';
      }
      if (res.status === 403 && body && body.code === 'forbidden') {
        return client._pollForbidden(this, body) ? 'again' : 'forbidden';
      }
      if (res.status !== 200 || !body || body.type !== 'poll') {
        return 'HTTP ' + res.status + (body && body.code ? ' ' + body.code : '');
      }
      this.unauthorized = 0;
      if (!this.welcomedAt) client._welcomed(this, null);
      client._pollAnswer(this, body);
      return 'ok';
    }
  }

  var LINKS = { websocket: WsLink, sse: SseLink, poll: PollLink };


  /* ------------------------------------------------------------ client */

  class NgxChat {
    constructor(options) {
      var o = {};
      var k;
      for (k in DEFAULTS) o[k] = DEFAULTS[k];
      for (k in options || {}) if (options[k] !== undefined) o[k] = options[k];
      o.backoff = Object.assign({}, DEFAULTS.backoff, (options && options.backoff) || {});
      o.transports = (o.transports || []).filter(function (t) { return LINKS[t]; });
      if (!o.transports.length) throw new TypeError('NgxChat: no known transport in "transports"');
      if (!root.WebSocket) o.transports = o.transports.filter(function (t) { return t !== 'websocket'; });
      if (!root.EventSource) o.transports = o.transports.filter(function (t) { return t !== 'sse'; });
      if (!o.transports.length) throw new TypeError('NgxChat: this environment has none of the transports');
      this._o = o;

      this._handlers = new Map();
      this._rooms = new Map();          /* name -> room state */
      this._sends = new Map();          /* id -> send, in the order of send() */
      this._requests = new Map();       /* id -> history, presence, online */
      this._joinIds = new Map();        /* join request id -> room */
      this._leaveIds = new Map();       /* leave request id -> resolve */
      this._draining = new Set();
      this._link = null;
      this._candidate = null;
      this._state = 'idle';
      this._closed = true;
      this._ti = 0;                     /* index of the transport in use */
      this._attempt = 0;                /* failed connects since the last stable one */
      this._failures = {};              /* kind -> failures before welcome, in a row */
      this._probeFails = 0;
      this._restreamFails = 0;
      this._netFails = 0;
      this._window = o.sendWindow;
      this._pausedUntil = 0;
      this._rateLimited = 0;
      this._kind = null;                /* transport of the last welcome */
      this._typed = new Map();          /* room -> last typing sent */
      this.user = null;
      this.welcome = null;

      var self = this;
      /* the browser's network events: offline drops the connection at
       * once (and waits), online tries again at once */
      this._onOnline = function () {
        if (self._state === 'offline' || self._state === 'reconnecting') self._open();
      };
      this._onOffline = function () { self._goOffline(); };

      (o.rooms || []).forEach(function (name) { self._room(name); });
    }

    /* ---------------------------------------------------------- events */

    on(event, fn) {
      if (!this._handlers.has(event)) this._handlers.set(event, new Set());
      this._handlers.get(event).add(fn);
      var self = this;
      return function () { self.off(event, fn); };
    }

    off(event, fn) {
      var set = this._handlers.get(event);
      if (set) set.delete(fn);
      return this;
    }

    _emit(event, data) {
      var set = this._handlers.get(event);
      if (!set) return;
      Array.from(set).forEach(function (fn) {
        try {
          fn(data);
        } catch (e) {
          /* a handler's exception is reported, and breaks nothing here */
          setTimeout(function () { throw e; }, 0);
        }
      });
    }

    _emitError(code, e, extra) {
      this._emit('error', chatError(code, String((e && e.message) || e), extra));
    }

    _setState(state, info) {
      var data = Object.assign({ state: state }, info || {});
      var same = state === this._state && state !== 'reconnecting' &&
                 state !== 'connecting' && data.transport === this._stateTransport;
      this._state = state;
      this._stateTransport = data.transport;
      if (!same) this._emit('state', data);
    }

    get state() { return this._state; }
    get transport() { return this._link && this._link.welcomedAt ? this._link.kind : null; }
    get rooms() { return Array.from(this._rooms.keys()); }

    lastSeq(room) {
      var r = this._rooms.get(room);
      return r ? r.last : null;
    }

    /* ---------------------------------------------------------- lifecycle */

    connect() {
      if (!this._closed) return this;
      this._closed = false;
      this._ti = 0;
      this._attempt = 0;
      this._failures = {};
      if (root.addEventListener) {
        root.addEventListener('online', this._onOnline);
        root.addEventListener('offline', this._onOffline);
      }
      this._open();
      return this;
    }

    close() {
      if (this._closed) return this;
      this._closed = true;
      this._unlisten();
      this._teardown();
      this._failAll('closed', 'the client was closed');
      this._setState('closed', { code: 1000, reason: 'closed by the client' });
      return this;
    }

    /* drops the connection and makes a new one at once (a new token, new
     * parameters); unacked sends are resent with their ids */
    reconnect() {
      if (this._closed) return this;
      this._teardown();
      this._open();
      return this;
    }

    _unlisten() {
      if (root.removeEventListener) {
        root.removeEventListener('online', this._onOnline);
        root.removeEventListener('offline', this._onOffline);
      }
    }

    _teardown() {
      clearTimeout(this._retryTimer);
      clearTimeout(this._probeTimer);
      clearTimeout(this._flushTimer);
      clearTimeout(this._restreamTimer);
      clearInterval(this._hbTimer);
      var links = [this._link, this._candidate].concat(Array.from(this._draining));
      this._link = this._candidate = null;
      this._draining.clear();
      links.forEach(function (l) { if (l) this._retire(l); }, this);
      this._resetRooms();
    }

    /* the primary link is gone: a gap being filled is given up (the next
     * join resumes from the last seq delivered, which covers it) */
    _resetRooms() {
      this._rooms.forEach(function (r) {
        r.buffer.clear();
        r.filling = false;
        r.fills++;
      });
      this._requests.forEach(function (q, id) {
        if (!q.internal) return;
        clearTimeout(q.timer);
        this._requests.delete(id);
      }, this);
    }

    _goOffline() {
      if (this._closed) return;
      this._teardown();
      this._setState('offline', {});
    }

    async _open() {
      if (this._closed) return;
      clearTimeout(this._retryTimer);
      var kind = this._o.transports[this._ti];
      this._setState('connecting', { transport: kind, attempt: this._attempt });
      this._startLink(kind, 'primary');
    }

    /* a new link of kind: the primary one, a probe of the first transport,
     * or a new SSE stream for a new room list */
    async _startLink(kind, role) {
      var link = new LINKS[kind](this, kind, role);
      if (role === 'primary') this._link = link; else this._candidate = link;
      var rooms = this._roomNames();
      var url;
      try {
        url = await this._url(kind, 'connect', kind === 'sse' ? this._sseParams(rooms) : []);
      } catch (e) {
        if (link.stopped || this._closed) return;
        this._emitError('token', e);
        link.tokenFailed = true;
        link.fail(4000, 'token hook failed');
        return;
      }
      if (link.stopped || this._closed) return;
      var self = this;
      link.timer = setTimeout(function () {
        if (!link.welcomedAt) link.fail(4000, 'no welcome within ' + self._o.connectTimeout + ' ms');
      }, this._o.connectTimeout);
      link.start(url, rooms);
    }

    _sseParams(rooms) {
      if (!rooms.length) return [];
      var since = [];
      rooms.forEach(function (name) {
        var r = this._rooms.get(name);
        if (r.last !== null) since.push(name + ':' + r.last);
      }, this);
      var p = [['rooms', rooms.join(',')]];
      if (since.length) p.push(['since', since.join(',')]);
      return p;
    }

    async _params() {
      var p = this._o.params;
      if (typeof p === 'function') p = await p();
      return p || {};
    }

    /* the URL of the chat location for kind, with the parameters, a token
     * and extra [[k, v]] */
    async _url(kind, reason, extra) {
      var base = new URL(this._o.url, root.location ? root.location.href : undefined);
      if (kind === 'websocket') {
        if (base.protocol === 'http:') base.protocol = 'ws:';
        else if (base.protocol === 'https:') base.protocol = 'wss:';
      } else if (base.protocol === 'ws:') {
        base.protocol = 'http:';
      } else if (base.protocol === 'wss:') {
        base.protocol = 'https:';
      }
      var pairs = [];
      var params = await this._params();
      Object.keys(params).forEach(function (k) {
        if (params[k] !== undefined && params[k] !== null) pairs.push([k, String(params[k])]);
      });
      if (this._o.token) {
        var t = await this._o.token({ reason: reason, transport: kind });
        if (t) pairs.push(['token', String(t)]);
      }
      pairs = pairs.concat(extra || []);
      /* encodeURIComponent, not URLSearchParams: a space is %20, never "+"
       * (chat_user $arg_user takes the argument as it is) */
      var q = pairs.map(function (p) {
        return encodeURIComponent(p[0]) + '=' + encodeURIComponent(p[1]);
      }).join('&');
      var s = base.search ? base.search.slice(1) : '';
      base.search = s && q ? s + '&' + q : s + q;
      return base.href;
    }

    _credentials() { return this._o.withCredentials ? 'include' : 'same-origin'; }

    /* One request by POST.  Resolves (never rejects) with the reply, or an
     * error object with its HTTP status: one of the server's, or
     * "unavailable" for a network error or an answer that is not JSON. */
    async _post(req, unauthorized) {
      var url;
      try {
        url = await this._url('post', unauthorized ? 'unauthorized' : 'request', []);
      } catch (e) {
        return { type: 'error', code: 'token', message: String(e && e.message), id: req.id, status: 0 };
      }
      var ac = new AbortController();
      var t = setTimeout(function () { ac.abort(); }, this._o.requestTimeout);
      var res, body;
      try {
        res = await root.fetch(url, {
          method: 'POST', body: JSON.stringify(req), signal: ac.signal, cache: 'no-store',
          headers: { 'Content-Type': 'application/json' }, credentials: this._credentials()
        });
        body = await res.json().catch(function () { return null; });
      } catch (e) {
        return { type: 'error', code: 'unavailable', message: 'network error', id: req.id, status: 0 };
      } finally {
        clearTimeout(t);
      }
      if (res.status === 401 && !unauthorized) return this._post(req, true);
      if (!body || typeof body !== 'object') {
        return { type: 'error', code: res.status === 401 ? 'unauthorized' : 'unavailable',
                 message: 'HTTP ' + res.status, id: req.id, status: res.status };
      }
      if (body.id === undefined && req.id !== undefined) body.id = req.id;
      if (!res.ok && body.type !== 'error') {
        body = { type: 'error', code: 'unavailable', message: 'HTTP ' + res.status, id: req.id };
      }
      if (body.type === 'error') body.status = res.status;
      return body;
    }

    /* ---------------------------------------------------------- link events */

    _welcomed(link, ev) {
      if (link.welcomedAt || link.stopped) return;
      link.welcomedAt = now();
      clearTimeout(link.timer);
      if (link.role === 'probe' || link.role === 'restream') {
        this._promote(link);
      } else if (link !== this._link) {
        this._retire(link);
        return;
      }
      this._failures[link.kind] = 0;
      this._ti = this._o.transports.indexOf(link.kind);
      var previous = this._kind;
      this._kind = link.kind;
      if (ev) {
        this.user = ev.user;
        this.welcome = ev;
        this._emit('welcome', Object.assign({}, ev, { transport: link.kind }));
      }
      this._setState('connected', { transport: link.kind, fallback: this._ti > 0 });
      if (previous !== link.kind) this._emit('transport', { transport: link.kind, previous: previous });
      if (link.kind === 'websocket') {
        this._rooms.forEach(function (r) { this._sendJoin(link, r); }, this);
      } else if (link.kind === 'sse' && link.rooms.join(',') !== this._roomNames().join(',')) {
        this._roomsChanged();
      }
      this._startHeartbeat();
      this._scheduleProbe();
      this._drainCheck();
      this._flush();
    }

    /* the candidate takes over; the old primary drains */
    _promote(link) {
      var old = this._link;
      this._candidate = null;
      this._link = link;
      if (link.role === 'probe') this._probeFails = 0;
      else this._restreamFails = 0;
      link.role = 'primary';
      if (old) {
        old.role = 'draining';
        this._draining.add(old);
        var self = this;
        old.timer = setTimeout(function () { self._retire(old); }, this._o.connectTimeout);
      }
    }

    /* drained links go once every room is joined on the primary and
     * nothing they carried waits for an answer */
    _drainCheck() {
      if (!this._draining.size) return;
      var link = this._link;
      var rooms = Array.from(this._rooms.values());
      if (!rooms.every(function (r) { return r.joinedOn === link; })) return;
      this._draining.forEach(function (old) {
        var busy = false;
        this._sends.forEach(function (s) { if (s.sentOn === old) busy = true; });
        if (!busy) this._retire(old);
      }, this);
    }

    /* a link the client ends itself: what it carried is sent again */
    _retire(link) {
      link.stop();
      this._draining.delete(link);
      this._forget(link);
    }

    _forget(link) {
      this._sends.forEach(function (s) { if (s.sentOn === link && !s.posting) s.sentOn = null; });
      this._requests.forEach(function (q) {
        if (q.sentOn === link && !q.posting) q.sentOn = null;
      });
      this._rooms.forEach(function (r) {
        if (r.joinedOn === link) r.joinedOn = null;
        if (r.joinLink === link) r.joinLink = null;
      });
    }

    _linkDown(link, info) {
      clearTimeout(link.timer);
      if (link.role === 'draining' || this._draining.has(link)) {
        this._draining.delete(link);
        this._forget(link);
        this._flush();
        return;
      }
      if (link === this._candidate) {
        this._candidate = null;
        this._forget(link);
        if (link.role === 'probe') {
          this._probeFails++;
          this._scheduleProbe();
        } else {
          var self = this;
          this._restreamTimer = setTimeout(function () { self._restream(); },
            jitter(Math.min(this._restreamFails++, 6), this._o.backoff.base, this._o.backoff.cap));
        }
        return;
      }
      if (link !== this._link) return;

      this._link = null;
      clearInterval(this._hbTimer);
      if (this._candidate) { this._retire(this._candidate); this._candidate = null; }
      this._forget(link);
      this._resetRooms();
      if (info.code === 1009) this._tooLarge(link);
      if (this._closed) return;

      if (info.code === 1008) {
        /* closed by policy (the application disconnected this user, or
         * too many requests refused): no reconnect */
        this._closed = true;
        this._unlisten();
        this._teardown();
        this._failAll('disconnected', 'closed by the server: ' + (info.reason || 'policy'));
        this._setState('closed', { code: info.code, reason: info.reason });
        return;
      }

      /* a connection that lived, or that the server closed on purpose
       * (1001: a reload, a shutdown) after its welcome, resets the
       * backoff: the next try comes within backoff.base */
      var o = this._o;
      var lived = link.welcomedAt &&
                  (now() - link.welcomedAt >= o.stableAfter || info.code === 1001);
      if (lived) this._attempt = 0;
      if (!link.welcomedAt && !link.tokenFailed) {
        var f = (this._failures[link.kind] || 0) + 1;
        this._failures[link.kind] = f;
        if (f >= o.fallbackAfter) {
          this._failures[link.kind] = 0;
          this._ti = (this._ti + 1) % o.transports.length;
        }
      }
      var delay = jitter(this._attempt, o.backoff.base, o.backoff.cap);
      this._attempt++;
      this._setState('reconnecting', { transport: o.transports[this._ti], delay: delay,
                                       attempt: this._attempt, code: info.code,
                                       reason: info.reason });
      var self = this;
      this._retryTimer = setTimeout(function () { self._open(); }, delay);
    }

    /* the server closed with 1009: the largest send in flight was over its
     * chat_max_message_size; it would close the next connection too */
    _tooLarge(link) {
      var big = null;
      this._sends.forEach(function (s) {
        if (s.lastLink === link && (!big || s.size > big.size)) big = s;
      });
      if (big) {
        this._sends.delete(big.id);
        big.reject(chatError('too_large', 'message too large for the server', { id: big.id, room: big.room }));
      }
    }

    _failAll(code, message) {
      var sends = Array.from(this._sends.values());
      var reqs = Array.from(this._requests.values());
      this._sends.clear();
      this._requests.clear();
      sends.forEach(function (s) { s.reject(chatError(code, message, { id: s.id, room: s.room })); });
      reqs.forEach(function (q) {
        clearTimeout(q.timer);
        q.reject(chatError(code, message, { id: q.id, room: q.room }));
      });
    }

    /* ---------------------------------------------------------- upgrade */

    _scheduleProbe() {
      clearTimeout(this._probeTimer);
      if (this._closed || !this._link || this._ti === 0 || this._candidate) return;
      var o = this._o;
      var delay = Math.min(o.upgradeMax, o.upgradeInterval * Math.pow(2, this._probeFails));
      delay = Math.floor(delay * (0.8 + 0.4 * Math.random()));
      var self = this;
      this._probeTimer = setTimeout(function () {
        if (self._closed || !self._link || self._ti === 0 || self._candidate) return;
        self._startLink(self._o.transports[0], 'probe');
      }, delay);
    }

    /* SSE: the rooms are the stream's; a new list takes a new stream, which
     * replaces the old one once it has its welcome */
    _roomsChanged() {
      var link = this._link;
      if (!link) return;
      if (link.kind === 'poll') {
        link.wake();
      } else if (link.kind === 'sse' && link.welcomedAt) {
        /* (a stream still opening compares its rooms at its welcome) */
        var self = this;
        clearTimeout(this._restreamTimer);
        this._restreamTimer = setTimeout(function () { self._restream(); }, 0);
      }
    }

    _restream() {
      var link = this._link;
      if (this._closed || !link || link.kind !== 'sse' || !link.welcomedAt) return;
      if (this._candidate) {
        if (this._candidate.role === 'probe') return;   /* it joins them all */
        this._retire(this._candidate);
        this._candidate = null;
      }
      this._startLink('sse', 'restream');
    }

    /* ---------------------------------------------------------- heartbeat */

    _startHeartbeat() {
      clearInterval(this._hbTimer);
      var self = this;
      this._hbTimer = setInterval(function () { self._heartbeat(); }, this._o.heartbeat);
    }

    /* Keeps the user online (presence keys live chat_presence_ttl, 30 s by
     * default) and, on a WebSocket, finds a dead connection: nothing
     * received within heartbeatTimeout of a heartbeat closes it.  Polls
     * keep the user online themselves. */
    _heartbeat() {
      var link = this._link;
      if (!link || !link.welcomedAt) return;
      if (link.kind === 'poll' && this._rooms.size) return;
      var sent = now();
      if (link.kind === 'websocket') {
        link.transmit({ op: 'heartbeat', id: 'hb' });
        var timeout = this._o.heartbeatTimeout;
        setTimeout(function () {
          if (!link.stopped && link.lastRx < sent) link.fail(4001, 'no answer to a heartbeat');
        }, timeout);
      } else {
        this._post({ op: 'heartbeat' });
      }
    }

    /* ---------------------------------------------------------- rooms */

    _room(name) {
      var r = this._rooms.get(name);
      if (r) return r;
      r = {
        name: name,
        last: null,             /* last seq delivered to the application */
        joinedOn: null,         /* the link whose joined came */
        joinLink: null,         /* the link the join went on */
        joinId: null,
        joinTries: 0,
        joinTimer: null,
        joinedInfo: null,
        waiters: [],
        buffer: new Map(),      /* seq -> message, ahead of a gap */
        filling: false,
        fills: 0,
        fillTries: 0
      };
      this._rooms.set(name, r);
      return r;
    }

    _roomNames() { return Array.from(this._rooms.keys()); }

    /* Joins a room (again after every reconnect, from its last seq).
     * Resolves with {room, seq, truncated} once the server has joined it. */
    join(room) {
      if (typeof room !== 'string' || !ROOM_RE.test(room)) {
        return Promise.reject(chatError('bad_request', 'room names are 1 to 128 of A-Z a-z 0-9 _ . : @ -', { room: room }));
      }
      var existing = this._rooms.get(room);
      if (existing && existing.joinedOn && existing.joinedOn === this._link) {
        return Promise.resolve(existing.joinedInfo);
      }
      var r = this._room(room);
      var p = new Promise(function (resolve, reject) { r.waiters.push({ resolve: resolve, reject: reject }); });
      if (!existing) {
        var link = this._link;
        if (link && link.welcomedAt && link.kind === 'websocket') this._sendJoin(link, r);
        else this._roomsChanged();
      }
      return p;
    }

    _sendJoin(link, r) {
      clearTimeout(r.joinTimer);
      var req = { op: 'join', room: r.name, id: newId() };
      if (r.last !== null) req.since = r.last;
      if (r.joinId) this._joinIds.delete(r.joinId);
      r.joinId = req.id;
      r.joinLink = link;
      this._joinIds.set(req.id, r.name);
      link.transmit(req);
    }

    _onJoined(link, ev) {
      var r = this._rooms.get(ev.room);
      if (!r) return;
      if (link !== this._link && link !== this._candidate) return;
      if (ev.id !== undefined) this._joinIds.delete(ev.id);
      if (link.answered) link.answered.add(r.name);
      if (typeof ev.seq === 'number') this._base(r, ev.seq);
      r.joinedOn = link;
      r.joinTries = 0;
      r.joinedInfo = { room: r.name, seq: ev.seq, truncated: !!ev.truncated };
      this._emit('joined', r.joinedInfo);
      var w = r.waiters;
      r.waiters = [];
      w.forEach(function (x) { x.resolve(r.joinedInfo); });
      this._drainCheck();
      this._flush();
    }

    /* the room's seq as the server has it at a join: the start of a room
     * joined for the first time, or a seq that went back (an embedded-mode
     * reload, a Redis that lost its data without Postgres): the room starts
     * again, and the application is told with "reset" */
    _base(r, seq) {
      if (r.last === null) {
        r.last = seq;
      } else if (seq < r.last) {
        r.last = seq;
        r.buffer.clear();
        r.fills++;
        r.filling = false;
        this._emit('reset', { room: r.name, seq: seq });
      }
    }

    _joinFailed(name, err) {
      var r = this._rooms.get(name);
      if (!r) return;
      if (TRANSIENT[err.code]) {
        /* unavailable, rate_limited: again, with backoff */
        var self = this;
        var delay = jitter(Math.min(r.joinTries++, 6), 1000, this._o.backoff.cap) + 250;
        clearTimeout(r.joinTimer);
        r.joinTimer = setTimeout(function () {
          var link = self._link;
          if (self._rooms.get(name) !== r || !link || !link.welcomedAt) return;
          if (link.kind === 'websocket') self._sendJoin(link, r); else self._roomsChanged();
        }, delay);
        return;
      }
      this._dropRoom(r, err);
      this._emit('error', err);
    }

    /* the room is no longer joined: forbidden, too_many_rooms, kicked */
    _dropRoom(r, err) {
      clearTimeout(r.joinTimer);
      this._rooms.delete(r.name);
      var t = this._typed.get(r.name);
      if (t) clearTimeout(t.timer);
      this._typed.delete(r.name);
      if (r.joinId) this._joinIds.delete(r.joinId);
      r.waiters.forEach(function (x) { x.reject(err); });
      r.waiters = [];
      this._sends.forEach(function (s, id) {
        if (s.room !== r.name) return;
        this._sends.delete(id);
        s.reject(chatError(err.code, err.message, { id: id, room: r.name }));
      }, this);
      this._requests.forEach(function (q, id) {
        if (q.room !== r.name) return;
        this._requests.delete(id);
        clearTimeout(q.timer);
        if (!q.internal) q.reject(chatError(err.code, err.message, { id: id, room: r.name }));
      }, this);
      this._drainCheck();
    }

    /* Leaves a room: its unacked sends are rejected (not_joined).
     * Resolves once the server has confirmed it, or at once when offline. */
    leave(room) {
      var r = this._rooms.get(room);
      if (!r) return Promise.resolve({ room: room });
      this._dropRoom(r, chatError('not_joined', 'left the room', { room: room }));
      var link = this._link;
      var self = this;
      var done = function () {
        var ev = { room: room };
        self._emit('left', ev);
        return ev;
      };
      if (link && link.welcomedAt && link.kind === 'websocket' && r.joinLink === link) {
        var id = newId();
        return new Promise(function (resolve) {
          var t = setTimeout(function () { self._leaveIds.delete(id); resolve(done()); },
                             self._o.requestTimeout);
          self._leaveIds.set(id, function () { clearTimeout(t); resolve(done()); });
          link.transmit({ op: 'leave', room: room, id: id });
        });
      }
      this._roomsChanged();
      return Promise.resolve(done());
    }

    /* ---------------------------------------------------------- messages */

    /* every room's messages to the application in seq order, once */
    _deliver(m) {
      if (typeof m.seq !== 'number' || typeof m.room !== 'string') return;
      var r = this._rooms.get(m.room);
      if (!r) return;
      if (r.last === null) r.last = m.seq - 1;
      if (m.seq <= r.last || r.buffer.has(m.seq)) return;
      if (m.seq === r.last + 1) {
        r.last = m.seq;
        this._emit('message', m);
        this._drainBuffer(r);
        return;
      }
      r.buffer.set(m.seq, m);
      if (r.buffer.size > this._o.maxBuffered) this._skipGap(r);
      this._fillGap(r);
    }

    _drainBuffer(r) {
      var m;
      while (this._rooms.get(r.name) === r && (m = r.buffer.get(r.last + 1))) {
        r.buffer.delete(m.seq);
        r.last = m.seq;
        this._emit('message', m);
      }
      r.buffer.forEach(function (v, seq) { if (seq <= r.last) r.buffer.delete(seq); });
    }

    _firstBuffered(r) {
      var first = Infinity;
      r.buffer.forEach(function (v, seq) { if (seq < first) first = seq; });
      return first;
    }

    /* the messages up to `to` (default: up to the first one waiting) are
     * gone, or too many to fetch: the application is told with "gap"
     * {room, from, to}, and the room goes on after them */
    _skipGap(r, to) {
      if (to === undefined) {
        if (!r.buffer.size) return;
        to = this._firstBuffered(r) - 1;
      }
      if (to > r.last) {
        this._emit('gap', { room: r.name, from: r.last + 1, to: to });
        r.last = to;
      }
      this._drainBuffer(r);
    }

    /* a message came ahead of the next one: the missing ones are asked
     * with history, 100 at a time, later ones wait in the buffer; one
     * request at a time per room */
    _fillGap(r) {
      this._drainBuffer(r);
      if (r.filling || !r.buffer.size) return;
      var first = this._firstBuffered(r);
      var from = r.last + 1;
      if (first - from > this._o.maxGapFill) {
        this._skipGap(r);
        this._fillGap(r);
        return;
      }
      var before = Math.min(first, from + 100);
      r.filling = true;
      var fills = ++r.fills;
      var self = this;
      var mine = function () { return r.fills === fills && self._rooms.get(r.name) === r; };
      this._request({ op: 'history', room: r.name, before: before, limit: before - from },
                    { internal: true }).then(function (msgs) {
        if (!mine()) return;
        r.filling = false;
        r.fillTries = 0;
        msgs.sort(function (a, b) { return a.seq - b.seq; }).forEach(function (m) {
          if (m.seq <= r.last || m.seq >= before) return;
          if (m.seq > r.last + 1) self._skipGap(r, m.seq - 1);
          r.last = m.seq;
          self._emit('message', m);
        });
        /* what history did not have up to `before` is gone */
        self._skipGap(r, before - 1);
        self._fillGap(r);
      }, function () {
        if (!mine()) return;
        r.filling = false;
        if (++r.fillTries < 3) {
          setTimeout(function () { if (r.fills === fills) self._fillGap(r); }, 1000);
        } else {
          r.fillTries = 0;
          self._skipGap(r);
          self._fillGap(r);
        }
      });
    }

    /* Sends text to a room; resolves with the ack {room, seq, id}, or
     * rejects with the error (an NgxChatError: code, message).  Kept and
     * resent with its id across reconnects until acked. */
    send(room, text) {
      if (!this._rooms.has(room)) {
        return Promise.reject(chatError('not_joined', 'join the room first', { room: room }));
      }
      if (typeof text !== 'string' || text === '') {
        return Promise.reject(chatError('bad_request', '"text" must be a non-empty string', { room: room }));
      }
      if (this._sends.size >= this._o.maxPending) {
        return Promise.reject(chatError('queue_full', 'more than ' + this._o.maxPending + ' sends wait for an ack', { room: room }));
      }
      var id = newId();
      var req = { op: 'send', room: room, text: text, id: id };
      var size = utf8Length(JSON.stringify(req));
      if (size > this._o.maxMessageSize) {
        return Promise.reject(chatError('too_large', 'message over ' + this._o.maxMessageSize + ' bytes', { id: id, room: room }));
      }
      var typed = this._typed.get(room);
      if (typed && typed.timer) {
        /* a message ends the typing: no late typing notice after it */
        clearTimeout(typed.timer);
        typed.timer = null;
      }
      var self = this;
      return new Promise(function (resolve, reject) {
        self._sends.set(id, { id: id, room: room, req: req, size: size, resolve: resolve,
                              reject: reject, sentOn: null, lastLink: null, tries: 0, posting: false });
        self._flush();
      });
    }

    /* A request other than send: history, presence, online.  Resolves with
     * what the reply carries; queued while disconnected, for at most
     * requestTimeout. */
    _request(req, opts) {
      opts = opts || {};
      if (req.room !== undefined && !this._rooms.has(req.room)) {
        return Promise.reject(chatError('not_joined', 'join the room first', { room: req.room }));
      }
      if (this._requests.size >= this._o.maxRequests) {
        return Promise.reject(chatError('queue_full', 'more than ' + this._o.maxRequests + ' requests wait', { room: req.room }));
      }
      var id = newId();
      req.id = id;
      var self = this;
      return new Promise(function (resolve, reject) {
        var q = { id: id, room: req.room, req: req, resolve: resolve, reject: reject,
                  sentOn: null, posting: false, tries: 0, notBefore: 0, internal: !!opts.internal };
        q.timer = setTimeout(function () {
          if (self._requests.get(id) !== q) return;
          self._requests.delete(id);
          reject(chatError('timeout', req.op + ' not answered within ' + self._o.requestTimeout + ' ms', { id: id, room: req.room }));
        }, self._o.requestTimeout);
        self._requests.set(id, q);
        self._flush();
      });
    }

    /* the messages before `before` (default: the latest), at most `limit`
     * (default 50, at most 100), ascending */
    history(room, opts) {
      var req = { op: 'history', room: room };
      if (opts && opts.before !== undefined && opts.before !== null) req.before = opts.before;
      if (opts && opts.limit !== undefined && opts.limit !== null) req.limit = opts.limit;
      return this._request(req);
    }

    /* the users in the room */
    presence(room) { return this._request({ op: 'presence', room: room }); }

    /* {user: true|false} for at most 100 users */
    online(users) {
      if (!Array.isArray(users)) return Promise.reject(chatError('bad_request', '"users" must be an array'));
      return this._request({ op: 'online', users: users.slice() });
    }

    /* tells the room's other users that this one types: at most one every
     * typingInterval ms per room (one more at the end of the interval when
     * called meanwhile), none while disconnected */
    typing(room) {
      var r = this._rooms.get(room);
      if (!r) return;
      var t = this._typed.get(room);
      if (!t) {
        t = { last: 0, timer: null };
        this._typed.set(room, t);
      }
      var wait = t.last + this._o.typingInterval - now();
      if (wait > 0) {
        if (!t.timer) {
          var self = this;
          t.timer = setTimeout(function () {
            t.timer = null;
            if (self._typed.get(room) === t) self.typing(room);
          }, wait);
        }
        return;
      }
      var link = this._link;
      if (!link || !link.welcomedAt) return;
      if (link.kind === 'websocket' && r.joinedOn !== link) return;
      t.last = now();
      if (link.kind === 'websocket') link.transmit({ op: 'typing', room: room, id: 't' });
      else this._post({ op: 'typing', room: room });
    }

    /* ---------------------------------------------------------- the queue */

    /* sends what waits: sends in the order of send(), at most the window
     * in flight (on a WebSocket, once the room is joined on it: a send
     * there needs the membership), then the other requests */
    _flush() {
      var link = this._link;
      if (!link || !link.welcomedAt || !link.ready()) return;
      var t = now();
      if (t < this._pausedUntil) {
        var self = this;
        clearTimeout(this._flushTimer);
        this._flushTimer = setTimeout(function () { self._flush(); }, this._pausedUntil - t);
      } else {
        var ws = link.kind === 'websocket';
        var max = ws ? this._window : 1;
        var inflight = 0;
        this._sends.forEach(function (s) { if (s.sentOn) inflight++; });
        var it = this._sends.values();
        for (var s = it.next(); !s.done && inflight < max; s = it.next()) {
          var e = s.value;
          if (e.sentOn) continue;
          if (ws && this._rooms.get(e.room).joinedOn !== link) continue;
          this._transmit(link, e, 'send');
          inflight++;
        }
      }
      this._requests.forEach(function (q) {
        if (q.sentOn || q.notBefore > t) return;
        if (link.kind === 'websocket' && q.room !== undefined &&
            this._rooms.get(q.room).joinedOn !== link) return;
        this._transmit(link, q, 'request');
      }, this);
    }

    _transmit(link, e, what) {
      e.sentOn = link;
      e.lastLink = link;
      if (link.kind === 'websocket') {
        if (!link.transmit(e.req)) e.sentOn = null;
        return;
      }
      var self = this;
      e.posting = true;
      this._post(e.req).then(function (reply) {
        e.posting = false;
        e.sentOn = null;
        var map = what === 'send' ? self._sends : self._requests;
        if (map.get(e.id) !== e) return;
        e.sentOn = link;    /* as if the reply had come on the link */
        self._onReply(reply);
      });
    }

    _onReply(ev) {
      var s = this._sends.get(ev.id);
      if (s) { this._sendReply(s, ev); return true; }
      var q = this._requests.get(ev.id);
      if (q) { this._requestReply(q, ev); return true; }
      return false;
    }

    _sendReply(s, ev) {
      var self = this;
      if (ev.type === 'ack') {
        this._sends.delete(s.id);
        this._rateLimited = 0;
        this._netFails = 0;
        this._window = Math.min(this._o.sendWindow, this._window * 2);
        s.resolve({ room: ev.room, seq: ev.seq, id: ev.id });
        this._drainCheck();
        this._flush();
        return;
      }
      if (ev.type !== 'error') return;
      s.sentOn = null;
      if (ev.code === 'rate_limited') {
        /* chat_rate: one at a time, after a pause that doubles while the
         * refusals go on (more than 10 in a row close the connection) */
        this._window = 1;
        if (now() >= this._pausedUntil) {
          this._pausedUntil = now() + Math.min(10000, 1000 * Math.pow(2, this._rateLimited++));
        }
        this._flush();
        return;
      }
      if (ev.status === 0 && (ev.code === 'unavailable' || ev.code === 'token')) {
        /* a POST that did not reach the server (or no token to send it
         * with): kept, as a WebSocket send is while disconnected */
        if (now() >= this._pausedUntil) {
          this._pausedUntil = now() + jitter(Math.min(this._netFails++, 6), 1000, this._o.backoff.cap) + 250;
        }
        this._flush();
        return;
      }
      if ((ev.code === 'unavailable' || ev.code === 'internal') && ++s.tries <= this._o.sendRetries) {
        /* perhaps stored all the same: the same id again gets its ack */
        this._pausedUntil = now() + jitter(s.tries, 1000, this._o.backoff.cap) + 250;
        this._flush();
        return;
      }
      this._sends.delete(s.id);
      s.reject(new ChatError(Object.assign({ room: s.room }, ev)));
      setTimeout(function () { self._flush(); }, 0);
    }

    _requestReply(q, ev) {
      var self = this;
      if (ev.type === 'error') {
        q.sentOn = null;
        if (TRANSIENT[ev.code] && ++q.tries <= 3) {
          q.notBefore = now() + 1000 * q.tries;
          setTimeout(function () { if (self._requests.get(q.id) === q) self._flush(); },
                     1000 * q.tries);
          return;
        }
        this._requests.delete(q.id);
        clearTimeout(q.timer);
        q.reject(new ChatError(Object.assign({ room: q.room }, ev)));
        return;
      }
      this._requests.delete(q.id);
      clearTimeout(q.timer);
      var op = q.req.op;
      if (op === 'history') {
        var msgs = Array.isArray(ev.messages) ? ev.messages : [];
        q.resolve(msgs.map(function (m) { return m.room ? m : Object.assign({ room: q.room }, m); }));
      } else if (op === 'presence') {
        q.resolve(Array.isArray(ev.users) ? ev.users : []);
      } else if (op === 'online') {
        q.resolve(ev.users && typeof ev.users === 'object' ? ev.users : {});
      } else {
        q.resolve(ev);
      }
    }

    /* ---------------------------------------------------------- events in */

    _onEvent(link, ev) {
      if (!ev || typeof ev !== 'object') return;
      if (link.stopped) return;
      var primary = link === this._link;
      switch (ev.type) {
      case 'welcome':
        this._welcomed(link, ev);
        return;
      case 'joined':
        this._onJoined(link, ev);
        return;
      case 'message':
        this._deliver(ev);
        return;
      case 'left':
        this._onLeft(ev);
        return;
      case 'typing':
        if (primary && this._rooms.has(ev.room)) this._emit('typing', ev);
        return;
      case 'presence':
        if (ev.id !== undefined) break;
        if (primary && this._rooms.has(ev.room)) this._emit('presence', ev);
        return;
      case 'error':
        if (ev.id !== undefined && this._leaveIds.has(ev.id)) {
          this._onLeft(ev);
          return;
        }
        if (ev.id !== undefined && this._joinIds.has(ev.id)) {
          var name = this._joinIds.get(ev.id);
          this._joinIds.delete(ev.id);
          this._joinFailed(name, new ChatError(Object.assign({ room: name }, ev)));
          return;
        }
        if (ev.id === undefined) {
          /* a stream's error about one of its rooms (forbidden) */
          var room = this._streamRoom(link, ev);
          if (room) {
            this._joinFailed(room, new ChatError(Object.assign({ room: room }, ev)));
          } else {
            this._emit('error', new ChatError(ev));
          }
          return;
        }
        break;
      }
      if (ev.id !== undefined) this._onReply(ev);
    }

    /* The room a stream's error without id is about: the one it names, else
     * (the server joins a stream's rooms in the order of ?rooms= and
     * answers each with joined or an error) the first not answered yet. */
    _streamRoom(link, ev) {
      if (link.kind !== 'sse' || !JOIN_ERRORS[ev.code] || !link.answered) return null;
      var room = typeof ev.room === 'string' ? ev.room : null;
      if (!room) {
        room = link.rooms.filter(function (n) { return !link.answered.has(n); })[0] || null;
      }
      if (!room || !this._rooms.has(room)) return null;
      link.answered.add(room);
      return room;
    }

    _onLeft(ev) {
      if (ev.id !== undefined && this._leaveIds.has(ev.id)) {
        var done = this._leaveIds.get(ev.id);
        this._leaveIds.delete(ev.id);
        done();
        return;
      }
      var r = this._rooms.get(ev.room);
      if (!r || ev.id !== undefined) return;
      /* taken out by the application (a kick) */
      var reason = ev.reason || 'left';
      this._dropRoom(r, chatError('not_joined', 'taken out of the room (' + reason + ')', { room: ev.room }));
      this._emit('left', { room: ev.room, reason: reason });
      this._roomsChanged();
    }

    /* ---------------------------------------------------------- polling */

    _pollAnswer(link, body) {
      var cursor = parseCursor(body.cursor);
      var events = Array.isArray(body.events) ? body.events : [];
      cursor.forEach(function (seq, name) {
        var r = this._rooms.get(name);
        if (!r || seq === null) return;
        if (!link.confirmed.has(name)) {
          /* the first answer for the room stands for its joined; a room
           * new to the client starts before the messages it carries */
          if (r.last === null) {
            r.last = seq;
            events.forEach(function (ev) {
              if (ev && ev.type === 'message' && ev.room === name && ev.seq - 1 < r.last) {
                r.last = ev.seq - 1;
              }
            });
          }
          link.confirmed.add(name);
          this._onJoined(link, { type: 'joined', room: name, seq: seq });
        } else if (link.cursor.has(name) && seq < link.cursor.get(name)) {
          this._base(r, seq);
        }
        link.cursor.set(name, seq);
      }, this);
      events.forEach(function (ev) { this._onEvent(link, ev); }, this);
    }

    /* a poll refused with forbidden: the room it names, else the rooms the
     * link has not had an answer for, are dropped; true to poll on */
    _pollForbidden(link, body) {
      var err = new ChatError(body);
      var names = typeof body.room === 'string' ? [body.room]
                : this._roomNames().filter(function (n) { return !link.confirmed.has(n); });
      names = names.filter(function (n) { return this._rooms.has(n); }, this);
      if (!names.length) return false;
      names.forEach(function (n) {
        var e = new ChatError(Object.assign({}, body, { room: n }));
        this._dropRoom(this._rooms.get(n), e);
        this._emit('error', e);
      }, this);
      void err;
      link.changed = true;
      return true;
    }
  }

  NgxChat.Error = ChatError;
  NgxChat.version = '0.2.0';

  root.NgxChat = NgxChat;
  if (typeof module === 'object' && module && typeof module.exports === 'object') {
    module.exports = NgxChat;
    module.exports.NgxChat = NgxChat;
    module.exports.default = NgxChat;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this);
