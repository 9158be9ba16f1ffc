// Waiting pages for bench/progress.py: many Socket.IO clients (socket.io-client, the library the
// browser page uses) in ONE Node process, so the clients' own cost stays small next to the servers'.
//
//   node bench/node/pages.js '{"namespace": "/progress", "auth": {...}, "follow": true,
//                              "key": "data.done", "type": "<routing key>"}'
//
// Commands on stdin, one JSON object a line; answers on stdout, one JSON object a line:
//   {"connect": "http://127.0.0.1:8010", "path": "/gateway/socket.io", "count": 250}
//       -> {"connected": <pages connected so far>}
//   every event whose `type` (if given) matches: its key (the dotted `key` field of the payload);
//   when every connected page has the event with key K
//       -> {"all": K, "first": <unix seconds of the first page's arrival>, "at": <of the last>}
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const options = JSON.parse(process.argv[2]);
const path = options.key.split(".");
const pages = [];
const arrivals = new Map(); // key -> [count, first arrival, last arrival]

function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function say(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function onEvent(payload) {
  const at = now();
  if (options.type && payload.type !== options.type) return;
  let key = payload;
  for (const part of path) key = key == null ? undefined : key[part];
  if (key === undefined) return;
  const seen = arrivals.get(key) || [0, at, at];
  seen[0] += 1;
  seen[2] = Math.max(seen[2], at);
  arrivals.set(key, seen);
  if (seen[0] === pages.length) say({ all: key, first: seen[1], at: seen[2] });
}

function connectOne(url, socketPath) {
  return new Promise((resolve, reject) => {
    const socket = io(url + options.namespace, {
      path: socketPath,
      auth: options.auth || {},
      transports: ["websocket"],
      forceNew: true, // one connection per page, as browsers have (no multiplexing)
      reconnection: false,
      timeout: 60000,
    });
    socket.on("event", onEvent);
    socket.once("connect_error", reject);
    socket.once("connect", () => {
      if (!options.follow) return resolve(socket);
      socket.timeout(60000).emit("follow", { last_id: 2 ** 53 - 1 }, (err) => (err ? reject(err) : resolve(socket)));
    });
  });
}

async function connect(command) {
  // A few at a time: a burst of handshakes is not what is measured.
  for (let start = 0; start < command.count; start += 25) {
    const batch = [];
    for (let i = start; i < Math.min(command.count, start + 25); i++) batch.push(connectOne(command.connect, command.path));
    pages.push(...(await Promise.all(batch)));
  }
  say({ connected: pages.length });
}

let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  queue = queue.then(() => connect(command)).catch((err) => {
    say({ error: String(err && err.message ? err.message : err) });
    process.exit(1);
  });
});
process.stdin.on("end", () => process.exit(0));
