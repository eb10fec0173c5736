#!/usr/bin/python3
"""An example notification worker for ngx_chat's stream (chat_notify on).

ngx_chat appends every stored message to the Redis stream PREFIX:notify
(fields room, seq, msg_id, user, ts, text).  This worker reads it in a
consumer group, so that any number of workers share the messages, each
entry going to one of them:

  1. entries this consumer read before and did not acknowledge (its own
     pending entries, after a restart under the same --consumer name);
  2. every --claim-every seconds, XAUTOCLAIM: entries another consumer has
     held unacknowledged for --claim-idle ms (it crashed, or its host went
     away) become this one's;
  3. XREADGROUP ... COUNT --batch BLOCK --block: new entries.

For each batch it decides the recipients of every message (recipients()
below: the one function an application replaces), asks Redis which of
them are online with one MGET of their presence keys PREFIX:presence:user:U,
prints one JSON line per message and offline recipient on stdout (where a
real worker sends an email or a push notification), then XACKs the batch.
An entry is acknowledged only after its notifications went out, so a
worker killed in the middle of a batch loses nothing: another one claims
the batch and notifies again (at least once; some recipients may get a
notification twice).

Redis going away is retried after a pause (--retry seconds, doubling up to
--retry-max); a group that has vanished (Redis restarted without its data)
is created again, from the start of what the stream holds.

Needs Debian's python3-redis.  Runs until SIGTERM or SIGINT (after the
batch in hand), or until --max-seconds or --max-entries.

  conf/notify-consumer.py --redis redis://127.0.0.1:6379/0 \\
      --members conf/members.json
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

import redis


FIELDS = {"room", "seq", "msg_id", "user", "ts", "text"}


def is_message(f):
    return (f and FIELDS <= set(f) and f["seq"].isdigit()
            and f["ts"].isdigit())


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="ngx_chat notification worker (example)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                   help="redis://[[user]:password@]host[:port][/db] or "
                        "unix:/path, as chat_redis takes it")
    p.add_argument("--prefix", default="chat",
                   help="chat_key_prefix (default: chat)")
    p.add_argument("--group", default="notify",
                   help="consumer group (default: notify)")
    p.add_argument("--consumer",
                   default="%s-%d" % (socket.gethostname(), os.getpid()),
                   help="this consumer's name, unique in the group "
                        "(default: host-pid)")
    p.add_argument("--start", default="$",
                   help="where a new group starts: $ (default: messages "
                        "from now on) or 0 (all the stream holds)")
    p.add_argument("--members", metavar="FILE",
                   help='JSON {"room": ["user", ...]}: the example\'s '
                        "stand-in for the application's data")
    p.add_argument("--batch", type=int, default=100,
                   help="entries read at a time (default: 100)")
    p.add_argument("--block", type=int, default=2000,
                   help="ms to wait for new entries (default: 2000)")
    p.add_argument("--claim-idle", type=int, default=60000,
                   help="ms another consumer may hold an entry before it "
                        "is claimed (default: 60000; keep it above the "
                        "time a batch takes)")
    p.add_argument("--claim-every", type=float, default=10.0,
                   help="seconds between claims (default: 10)")
    p.add_argument("--max-seconds", type=float, default=0,
                   help="stop after this long (default: 0, never)")
    p.add_argument("--max-entries", type=int, default=0,
                   help="stop after this many entries (default: 0, never)")
    p.add_argument("--retry", type=float, default=1.0,
                   help="pause after a Redis error, doubled up to "
                        "--retry-max (default: 1 s)")
    p.add_argument("--retry-max", type=float, default=10.0)
    p.add_argument("--delay", type=float, default=0,
                   help="pause after each notification: a slow delivery "
                        "(default: 0)")
    a = p.parse_args(argv)
    if a.batch < 1 or a.block < 1 or a.claim_idle < 0 or a.retry <= 0:
        p.error("--batch and --block must be positive, --retry above 0")
    return a


def log(msg):
    sys.stderr.write("notify-consumer: %s\n" % msg)
    sys.stderr.flush()


def connect(args):
    opts = dict(decode_responses=True, encoding_errors="replace",
                socket_connect_timeout=5,
                socket_timeout=args.block / 1000.0 + 5)
    if args.redis.startswith("unix:") and not args.redis.startswith("unix://"):
        return redis.Redis(unix_socket_path=args.redis[5:], **opts)
    return redis.Redis.from_url(args.redis, **opts)


class Members:
    """Who should hear of a message: the room's members but the sender.

    This is what an application replaces, typically with a query of its
    own database (memberships, mute settings, notification preferences),
    batched for the whole batch of messages.
    """

    def __init__(self, path):
        self.rooms = {}
        if path:
            with open(path, encoding="utf-8") as f:
                self.rooms = json.load(f)

    def recipients(self, entry):
        return set(self.rooms.get(entry["room"], ())) - {entry["user"]}


class Worker:

    def __init__(self, args):
        self.args = args
        self.r = connect(args)
        self.stream = args.prefix + ":notify"
        self.members = Members(args.members)
        self.group_start = args.start
        self.need_group = True
        self.own = True             # our own pending entries first
        self.next_claim = 0.0
        self.claim_cursor = "0-0"
        self.entries = 0
        self.stop = False

    def deadline_left(self, started):
        if not self.args.max_seconds:
            return None
        return started + self.args.max_seconds - time.monotonic()

    def done(self, started):
        if self.stop:
            return True
        if self.args.max_entries and self.entries >= self.args.max_entries:
            return True
        left = self.deadline_left(started)
        return left is not None and left <= 0

    def ensure_group(self):
        try:
            self.r.xgroup_create(self.stream, self.args.group,
                                 id=self.group_start, mkstream=True)
            log("group %s created on %s at %s"
                % (self.args.group, self.stream, self.group_start))
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self.need_group = False

    def read(self, block_ms):
        a = self.args
        if time.monotonic() >= self.next_claim:
            got = self.r.xautoclaim(self.stream, a.group, a.consumer,
                                    a.claim_idle, self.claim_cursor,
                                    count=a.batch)
            self.claim_cursor = got[0]
            if self.claim_cursor == "0-0":
                self.next_claim = time.monotonic() + a.claim_every
            if got[1]:
                log("claimed %d entries left by other consumers"
                    % len(got[1]))
            return got[1]
        if self.own:
            got = self.r.xreadgroup(a.group, a.consumer, {self.stream: "0"},
                                    count=a.batch)
            entries = got[0][1] if got else []
            if entries:
                return entries
            self.own = False
        got = self.r.xreadgroup(a.group, a.consumer, {self.stream: ">"},
                                count=a.batch, block=block_ms)
        return got[0][1] if got else []

    def online(self, users):
        if not users:
            return set()
        users = sorted(users)
        keys = ["%s:presence:user:%s" % (self.args.prefix, u) for u in users]
        return {u for u, v in zip(users, self.r.mget(keys)) if v is not None}

    def handle(self, entries):
        batch = []
        for entry_id, f in entries:
            # an entry trimmed away while it was pending has no fields
            if entry_id is None:
                continue
            if not is_message(f):
                if f:
                    log("entry %s is not a message, skipped" % entry_id)
                batch.append((entry_id, f, set()))
                continue
            batch.append((entry_id, f, self.members.recipients(f)))

        online = self.online(set().union(*(b[2] for b in batch)))

        for entry_id, f, rcpt in batch:
            for user in sorted(rcpt - online):
                print(json.dumps({"to": user, "room": f["room"],
                                  "seq": int(f["seq"]),
                                  "msg_id": f["msg_id"],
                                  "from": f["user"], "ts": int(f["ts"]),
                                  "text": f["text"], "entry": entry_id},
                                 ensure_ascii=False), flush=True)
                if self.args.delay:
                    time.sleep(self.args.delay)

        if batch:
            self.r.xack(self.stream, self.args.group,
                        *[b[0] for b in batch])
        self.entries += len(batch)

    def run(self):
        started = time.monotonic()
        pause = self.args.retry
        while not self.done(started):
            left = self.deadline_left(started)
            block = self.args.block
            if left is not None:
                block = max(1, min(block, int(left * 1000)))
            try:
                if self.need_group:
                    self.ensure_group()
                self.handle(self.read(block))
                pause = self.args.retry
                continue
            except redis.ResponseError as e:
                if "NOGROUP" in str(e):
                    # the stream or the group is gone (Redis lost its
                    # data): what the stream holds now is all new to us
                    log("group %s gone, creating it again" % self.args.group)
                    self.need_group = True
                    self.group_start = "0"
                    self.own = True
                    self.claim_cursor = "0-0"
                else:
                    log("redis: %s" % e)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                log("redis unreachable (%s), retrying in %.1f s"
                    % (e, pause))
            left = self.deadline_left(started)
            time.sleep(pause if left is None else max(0, min(pause, left)))
            pause = min(pause * 2, self.args.retry_max)
        log("%d entries handled, stopping" % self.entries)


def main(argv):
    args = parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    w = Worker(args)

    def stop(signum, frame):
        w.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    w.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
