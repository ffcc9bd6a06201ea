// The Express 4 app behind Gatehouse in the bypass corpus (tests/it/bypass), with
// method-override honouring X-HTTP-Method-Override and a `_method` query parameter. Express
// routes case-insensitively and ignores a trailing slash. Every handler that runs appends
// "<handler> <probe>" to the log file named on the command line.
"use strict";
const fs = require("fs");
const express = require("express");
const methodOverride = require("method-override");

const log = fs.openSync(process.argv[2], "a");
const app = express();
app.use(methodOverride("X-HTTP-Method-Override"));
app.use(methodOverride("X-HTTP-Method"));
app.use(methodOverride("X-Method-Override"));
app.use(methodOverride((req) => (req.query && req.query._method) || undefined));

function ran(handler) {
  return (req, res) => {
    fs.writeSync(log, `${handler} ${req.get("X-Probe") || "-"}\n`);
    res.type("text").send(`${handler}\n`);
  };
}

app.all("/admin/*", ran("admin"));
app.all("/reports", ran("reports"));
app.delete("/items/:item", ran("item-delete"));
app.get("/items/:item", ran("item-other"));
app.post("/items/:item", ran("item-other"));
app.get("/export/:name", ran("export"));
app.all("/public/*", ran("public"));
app.all("/private/*", ran("private"));

const server = app.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
