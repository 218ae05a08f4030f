// The published @rails/actioncable client under Node.js, driven line by line by test_cable_node.py.
// stdin: {"do": "subscribe" | "perform" | "unsubscribe" | "exit", ...}; stdout: one JSON event per line.
"use strict";
const readline = require("readline");
const WebSocket = require("ws");

const [url, origin] = process.argv.slice(2);

// Node 20 has no global WebSocket; a browser would also send its page's Origin, which ws sends on request.
class BrowserLikeWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, origin ? { origin } : {});
  }
}
globalThis.WebSocket = BrowserLikeWebSocket;
// The connection monitor listens for page visibility changes; there is no page here.
globalThis.addEventListener = () => {};
globalThis.removeEventListener = () => {};
globalThis.document = { visibilityState: "visible" };

const ActionCable = require("@rails/actioncable");
// Pings come every 3 s; a 4 s threshold keeps a live socket fresh and makes the test's reconnect quicker.
ActionCable.ConnectionMonitor.staleThreshold = 4;

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const consumer = ActionCable.createConsumer(url);
const subscriptions = {};

function subscribe(name, params) {
  subscriptions[name] = consumer.subscriptions.create(params, {
    connected() { emit({ event: "connected", name }); },
    disconnected(info) { emit({ event: "disconnected", name, info }); },
    rejected() { emit({ event: "rejected", name }); },
    received(data) { emit({ event: "received", name, data }); },
  });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.do === "subscribe") subscribe(command.name, command.params);
  else if (command.do === "perform") subscriptions[command.name].perform(command.action, command.data || {});
  else if (command.do === "unsubscribe") subscriptions[command.name].unsubscribe();
  else if (command.do === "exit") { consumer.disconnect(); process.exit(0); }
});
emit({ event: "ready", version: require("@rails/actioncable/package.json").version });
