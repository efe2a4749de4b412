"""`jukesep import-jukebox --download` against a server on 127.0.0.1 that serves a file in the
official layout: progress, resume after a dropped connection, checksum, cache."""
import hashlib
import http.server
import threading

import pytest
import torch

from jukesep.cli import main
from tests.test_checkpoint import official_state


class Server(http.server.ThreadingHTTPServer):
    payload = b""
    drop_after = None  # bytes sent before the first response is cut off
    requests: list


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = server.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.drop_after is not None:
            self.wfile.write(body[:server.drop_after])
            server.drop_after = None
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    torch.save({"model": official_state(), "step": 1}, tmp_path / "vqvae.pth.tar")
    srv = Server(("127.0.0.1", 0), Handler)
    srv.payload, srv.requests = (tmp_path / "vqvae.pth.tar").read_bytes(), []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}/jukebox/models/5b/vqvae.pth.tar"


def test_download_resumes_checks_and_caches(tmp_path, server, capsys):
    server.drop_after = len(server.payload) // 3
    cache, out = tmp_path / "cache", tmp_path / "jb.pt"
    args = ["import-jukebox", "--download", str(out), "--url", url(server), "--cache", str(cache)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and len(err.strip().splitlines()) == 1
    assert (cache / "vqvae.pth.tar.part").stat().st_size == len(server.payload) // 3
    sha = hashlib.sha256(server.payload).hexdigest()
    assert main(args + ["--sha256", sha]) == 0
    assert server.requests == [None, f"bytes={len(server.payload) // 3}-"]  # resumed, not restarted
    assert (cache / "vqvae.pth.tar").read_bytes() == server.payload and out.exists()
    assert main(args) == 0 and len(server.requests) == 2  # cached: no new request


def test_wrong_checksum_is_refused_and_deleted(tmp_path, server, capsys):
    args = ["import-jukebox", "--download", str(tmp_path / "jb.pt"), "--url", url(server),
            "--cache", str(tmp_path / "cache"), "--sha256", "0" * 64]
    assert main(args) == 1
    assert "does not match" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "vqvae.pth.tar").exists() and not (tmp_path / "jb.pt").exists()


def test_unreachable_server_is_one_line(tmp_path, capsys):
    args = ["import-jukebox", "--download", str(tmp_path / "jb.pt"), "--url", "http://127.0.0.1:9/x/vqvae.pth.tar",
            "--cache", str(tmp_path / "c")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect" in err[0]
