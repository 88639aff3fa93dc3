#!/usr/bin/python3
"""The PetTube user story from Python, with Debian's python3-grpcio.

Stubs are generated from proto/ at test time (grpc_tools.protoc), the suite
runs as real processes (tests/e2e/stack_runner), and the test signs in
through the development identity provider, uploads a 2 s clip in chunks,
watches it reach READY over the WatchMedia server stream, lists it, fetches
a rendition over its signed URL with an HTTP Range request, checks another
person cannot see it, and deletes it.

Usage: story_test.py STACK_RUNNER RUNFILES_ROOT
"""

import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import grpc
from grpc_tools import protoc

RUNNER, ROOT = sys.argv[1], sys.argv[2]
TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
GEN = os.path.join(TMP, "gen")


def generate_stubs():
    os.makedirs(GEN, exist_ok=True)
    protos = sorted(glob.glob(os.path.join(ROOT, "proto/**/*.proto"), recursive=True))
    rel = [os.path.relpath(p, ROOT) for p in protos]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", "-I" + ROOT, "-I/usr/include", "-I" + include,
            "--python_out=" + GEN, "--grpc_python_out=" + GEN] + rel
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: %s" % " ".join(args))
    sys.path.insert(0, GEN)


generate_stubs()
from proto.pettube.auth.v1 import auth_pb2, auth_pb2_grpc  # noqa: E402
from proto.pettube.catalog.v1 import catalog_pb2, catalog_pb2_grpc  # noqa: E402
from proto.pettube.upload.v1 import upload_pb2, upload_pb2_grpc  # noqa: E402

CHUNK = 256 * 1024


class Stack:
    def __init__(self):
        self.proc = subprocess.Popen([RUNNER, os.path.join(TMP, "stack"), ROOT],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.endpoints = {}
        for line in self.proc.stdout:  # Blocks until the runner speaks.
            line = line.strip()
            if line == "ready":
                return
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                self.endpoints[k] = v
        raise RuntimeError("stack_runner exited before ready (see its stderr)")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


def make_clip(path):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
                    "sine=frequency=440", "-t", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path],
                   check=True)


class StoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack()
        ep = cls.stack.endpoints
        cls.auth = grpc.insecure_channel(ep["PETTUBE_AUTH"])
        cls.upload = upload_pb2_grpc.UploadStub(grpc.insecure_channel(ep["PETTUBE_UPLOAD"]))
        cls.catalog = catalog_pb2_grpc.MediaCatalogStub(
            grpc.insecure_channel(ep["PETTUBE_CATALOG"]))

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def sign_in(self, user):
        idp = auth_pb2_grpc.DevIdentityProviderStub(self.auth)
        id_token = idp.MintIdToken(auth_pb2.MintIdTokenRequest(user=user), timeout=10).id_token
        resp = auth_pb2_grpc.TokenExchangeStub(self.auth).ExchangeToken(
            auth_pb2.ExchangeTokenRequest(
                subject_token=id_token,
                subject_token_type="urn:ietf:params:oauth:token-type:id_token"),
            timeout=10)
        self.assertIn("media.upload", resp.scopes)
        return [("authorization", "Bearer " + resp.access_token)]

    def upload_file(self, auth, path, title):
        with open(path, "rb") as f:
            data = f.read()
        digest = hashlib.sha256(data).hexdigest()
        session = self.upload.CreateUpload(
            upload_pb2.CreateUploadRequest(title=title, content_type="video/mp4",
                                           total_size=len(data)),
            metadata=auth, timeout=10)

        def chunks():
            for offset in range(0, len(data), CHUNK):
                last = offset + CHUNK >= len(data)
                yield upload_pb2.WriteRequest(
                    upload=session.name if offset == 0 else "", write_offset=offset,
                    data=data[offset:offset + CHUNK], finish_write=last,
                    sha256=digest if last else "")

        resp = self.upload.Write(chunks(), metadata=auth, timeout=60)
        self.assertEqual(resp.committed_size, len(data))
        self.assertEqual(resp.committed.sha256, digest)
        return resp.committed.media

    def test_story(self):
        alice = self.sign_in("py-alice")
        clip = os.path.join(TMP, "clip.mp4")
        make_clip(clip)
        media = self.upload_file(alice, clip, "Rex from Python")
        self.assertTrue(media.startswith("media/"), media)

        # Pushed changes until READY (or FAILED), bounded by the deadline.
        # All of alice's media ("media/-"): the record appears once the
        # catalog has the upload's event, a moment after the commit.
        final = None
        for m in self.catalog.WatchMedia(catalog_pb2.WatchMediaRequest(name="media/-"),
                                         metadata=alice, timeout=180):
            if m.name == media and m.state in (catalog_pb2.READY, catalog_pb2.FAILED):
                final = m
                break
        self.assertIsNotNone(final, "WatchMedia ended before READY")
        self.assertEqual(final.state, catalog_pb2.READY, final.error)
        self.assertGreater(len(final.renditions), 0)

        listed = self.catalog.ListMedia(catalog_pb2.ListMediaRequest(owner="me"),
                                        metadata=alice, timeout=10)
        self.assertIn(media, [m.name for m in listed.media])

        rendition = final.renditions[0]
        self.assertTrue(rendition.url.startswith("http://"), rendition.url)
        req = urllib.request.Request(rendition.url, headers={"Range": "bytes=0-99"})
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.status, 206)
            body = r.read()
        self.assertEqual(len(body), 100)
        self.assertEqual(body[4:8], b"ftyp")  # An MP4 starts with its ftyp box.

        bob = self.sign_in("py-bob")
        with self.assertRaises(grpc.RpcError) as e:
            self.catalog.GetMedia(catalog_pb2.GetMediaRequest(name=media), metadata=bob,
                                  timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)
        listed_bob = self.catalog.ListMedia(catalog_pb2.ListMediaRequest(owner="me"),
                                            metadata=bob, timeout=10)
        self.assertNotIn(media, [m.name for m in listed_bob.media])

        self.catalog.DeleteMedia(catalog_pb2.DeleteMediaRequest(name=media), metadata=alice,
                                 timeout=10)
        with self.assertRaises(grpc.RpcError) as e:
            self.catalog.GetMedia(catalog_pb2.GetMediaRequest(name=media), metadata=alice,
                                  timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
