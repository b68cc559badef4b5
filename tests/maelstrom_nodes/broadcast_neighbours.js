#!/usr/bin/env node
// A broadcast node in the style of a student's Gossip Glomers 3c solution: Maelstrom's
// protocol spoken directly (no library), messages forwarded only to the neighbours the
// `topology` message names, each forward retried until the neighbour acknowledges it.
//
// It relies on what Maelstrom guarantees: `topology` reaches every node before any client
// op. A message that arrives before the topology is stored but forwarded to nobody, so a
// harness that sends the topology late makes this correct node lose messages.
"use strict";

const readline = require("readline");

let nodeId = null;
let neighbours = [];
const messages = new Set();
let nextMsgId = 0;
const unacked = new Map(); // msg_id -> [dest, body]

function send(dest, body) {
  process.stdout.write(JSON.stringify({ src: nodeId, dest: dest, body: body }) + "\n");
}

function reply(req, body) {
  body.in_reply_to = req.body.msg_id;
  send(req.src, body);
}

function forward(message, except) {
  for (const peer of neighbours) {
    if (peer === except) continue;
    nextMsgId += 1;
    const body = { type: "gossip", message: message, msg_id: nextMsgId };
    unacked.set(nextMsgId, [peer, body]);
    send(peer, body);
  }
}

function learn(message, from) {
  if (messages.has(message)) return;
  messages.add(message);
  forward(message, from);
}

// partitions drop messages: send again whatever was not acknowledged
setInterval(() => {
  for (const [dest, body] of unacked.values()) send(dest, body);
}, 300);

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const msg = JSON.parse(line);
  const body = msg.body;
  switch (body.type) {
    case "init":
      nodeId = body.node_id;
      reply(msg, { type: "init_ok" });
      break;
    case "topology":
      neighbours = body.topology[nodeId] || [];
      reply(msg, { type: "topology_ok" });
      break;
    case "broadcast":
      learn(body.message, null);
      reply(msg, { type: "broadcast_ok" });
      break;
    case "gossip":
      learn(body.message, msg.src);
      reply(msg, { type: "gossip_ok" });
      break;
    case "gossip_ok":
      unacked.delete(body.in_reply_to);
      break;
    case "read":
      reply(msg, { type: "read_ok", messages: Array.from(messages) });
      break;
    default:
      process.stderr.write("unexpected message " + line + "\n");
  }
});
