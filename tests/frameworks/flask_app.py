"""The Flask app behind Gatehouse in the bypass corpus (tests/it/bypass). Served by Werkzeug's
own server. Every handler that runs appends "<handler> <probe>" to the log file named on the
command line, so the test sees which handler the app really ran for each request."""

import sys

from flask import Flask, request
from werkzeug.serving import make_server

LOG = open(sys.argv[1], "a", buffering=1)
app = Flask(__name__)


def ran(handler):
    LOG.write(f"{handler} {request.headers.get('X-Probe', '-')}\n")
    return f"{handler}\n"


ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


@app.route("/admin/<path:rest>", methods=ALL)
def admin(rest):
    return ran("admin")


@app.route("/reports", methods=ALL)
def reports():
    return ran("reports")


@app.route("/items/<item>", methods=["DELETE"])
def item_delete(item):
    return ran("item-delete")


@app.route("/items/<item>", methods=["GET", "POST"])
def item_other(item):
    return ran("item-other")


@app.route("/export/<name>", methods=["GET"])
def export(name):
    return ran("export")


@app.route("/public/<path:rest>", methods=ALL)
def public(rest):
    return ran("public")


@app.route("/private/<path:rest>", methods=ALL)
def private(rest):
    return ran("private")


server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.port, flush=True)
server.serve_forever()
