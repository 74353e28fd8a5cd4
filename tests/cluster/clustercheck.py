"""An HTTP health check of one Galera node for HAProxy (Percona's ``clustercheck``, in Python).

    python -m tests.cluster.clustercheck --socket /path/mysqld.sock --port 9200

``GET`` (any path) answers 200 when the node is Synced (``wsrep_local_state`` 4) in the
primary component and ready, 503 otherwise -- a node that is joining, donating (SST), cut off
in a minority, or not answering at all. HAProxy checks it with ``option httpchk`` and
``check port 9200``, as the Pacemaker/TripleO reference design does with clustercheck under
xinetd: a plain MySQL handshake check (``option mysql-check``) passes a node that accepts
connections but refuses every query (non-primary, "WSREP has not yet prepared node for
application use").

It runs in the controller's namespace, so killing the controller kills it too. Each request
opens its own connection over the unix socket (as root, unix_socket authentication), with a
1 s timeout.
"""

from __future__ import annotations

import argparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymysql


def node_state(socket_path: str, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        conn = pymysql.connect(unix_socket=socket_path, user="root", connect_timeout=timeout,
                               read_timeout=timeout, write_timeout=timeout)
    except pymysql.MySQLError as exc:
        return False, f"not answering: {exc}"
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                        "('wsrep_local_state', 'wsrep_cluster_status', 'wsrep_ready')")
            st = dict(cur.fetchall())
    except pymysql.MySQLError as exc:
        return False, f"status failed: {exc}"
    finally:
        conn.close()
    ok = (st.get("wsrep_local_state") == "4" and st.get("wsrep_cluster_status") == "Primary"
          and st.get("wsrep_ready") == "ON")
    return ok, " ".join(f"{k}={v}" for k, v in sorted(st.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args(argv)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok, detail = node_state(args.socket)
            body = (("Galera node is synced: " if ok else "Galera node is not synced: ")
                    + detail + "\n").encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_OPTIONS = do_GET  # HAProxy's default httpchk method

        def log_message(self, format: str, *args: object) -> None:  # quiet: 1 check/s
            pass

    class Server(ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # HAProxy closes a check's connection as soon as it has the status line

    server = Server((args.bind, args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
