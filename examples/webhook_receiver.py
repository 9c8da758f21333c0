"""A webhook receiver for trying Herald: prints every POST it gets and answers 200.

Usage: python3 examples/webhook_receiver.py [PORT]   (default 9000)

It listens on 127.0.0.1 only. Herald refuses to deliver to loopback addresses unless the server
was started with HERALD_DELIVERY_ALLOWED_NETWORKS=127.0.0.0/8.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        print(f"POST {self.path}")
        for name in ("Content-Type", "Authorization", "webhook-id", "webhook-timestamp", "webhook-signature", "X-Wandb-Signature"):
            if name in self.headers:
                print(f"  {name}: {self.headers[name]}")
        try:
            print(json.dumps(json.loads(body), indent=2))
        except ValueError:
            print(body.decode("utf-8", "replace"))
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
