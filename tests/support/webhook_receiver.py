"""A CRM's webhook receiver for tests/webhooks.rs: HTTPS on loopback, every request verified
with the `standardwebhooks` package (PyPI), an implementation independent of Aviso's.

Usage: webhook_receiver.py PORT CERT KEY SECRET_FILE LOG MODE_FILE

Each request is appended to LOG as one JSON line: {"id", "verified", "type", "data"}. A
request whose signature does not verify is logged with "verified": false and answered 401.
MODE_FILE holds how to answer verified requests: "ok" (204) or "500". The secret is read from
SECRET_FILE at each request (the test writes it once the webhook exists).
"""

import json
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port, cert, key, secret_file, log_path, mode_file = sys.argv[1:7]


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"id": headers.get("webhook-id"), "verified": False}
        try:
            payload = Webhook(read(secret_file)).verify(body, headers)
            record.update(verified=True, type=payload["type"], data=payload["data"])
        except Exception as error:  # any failure to verify is a forgery to the CRM
            record["error"] = str(error)
        status = 401
        if record["verified"]:
            status = 500 if read(mode_file, "ok") == "500" else 204
        record["status"] = status
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
