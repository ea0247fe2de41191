"""``compile -o DIR`` removes the files an earlier compile wrote there and this one does not
(generator/manifest.py), and only those; ``--check`` reports them as drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewright.generator.manifest import MANIFEST, digest, read
from cachewright.harness.cli import main

PLAIN = """version: 1
name: out
origin: {url: http://127.0.0.1:8000}
listen:
  http: {port: 8080}
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1h
"""
HTTPS = PLAIN.replace("  http: {port: 8080}\n", """  http: {port: 8080}
  https: {port: 8443, certificate: certs/c.crt, key: certs/c.key}
""")
NJS = PLAIN + "nginx: {njs: true}\n"
FLEET = PLAIN + """fleet:
  tiers:
    - name: edge
      engine: nginx
      nodes:
        - {name: edge-1, address: 10.0.1.11}
        - {name: edge-2, address: 10.0.1.12}
    - name: shield
      engine: varnish
      routing: shard
      port: 8080
      nodes:
        - {name: shield-1, address: 10.0.1.21}
        - {name: shield-2, address: 10.0.1.22}
"""


def compile_into(tmp_path: Path, policy: str, *extra: str) -> int:
    source = tmp_path / "policy.yaml"
    source.write_text(policy, encoding="utf-8")
    return main(["compile", str(source), "-o", str(tmp_path / "out"), *extra])


def files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def test_the_manifest_lists_every_written_file_with_its_hash(tmp_path: Path) -> None:
    assert compile_into(tmp_path, HTTPS) == 0
    out = tmp_path / "out"
    written = [p for p in files(out) if p != MANIFEST]
    assert written == ["hitch/hitch.conf", "nginx/ffdhe2048.pem", "nginx/nginx.conf",
                       "varnish/default.vcl", "varnish/varnishd.args"]
    assert read(out) == {p: digest((out / p).read_text()) for p in written}


def test_njs_turned_off_leaves_no_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compile_into(tmp_path, NJS, "--target", "nginx") == 0
    assert (tmp_path / "out/nginx/cachewright.js").is_file()
    assert compile_into(tmp_path, PLAIN, "--target", "nginx") == 0
    assert files(tmp_path / "out") == [MANIFEST, "nginx/nginx.conf"]
    assert "out/nginx/cachewright.js: removed" in capsys.readouterr().out


def test_https_dropped_leaves_no_hitch_conf_and_a_users_files_stay(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert compile_into(tmp_path, HTTPS) == 0
    (out / "README").write_text("mine\n")
    (out / "nginx/extra.conf").write_text("# mine\n")
    assert compile_into(tmp_path, PLAIN) == 0
    assert not (out / "hitch").exists()  # its only file removed, the empty folder too
    assert not (out / "nginx/ffdhe2048.pem").exists()  # nginx's DHE parameters went with HTTPS
    assert files(out) == [MANIFEST, "README", "nginx/extra.conf", "nginx/nginx.conf",
                          "varnish/default.vcl", "varnish/varnishd.args"]
    assert "hitch/hitch.conf" not in read(out)


def test_a_users_file_in_a_generated_folder_keeps_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert compile_into(tmp_path, HTTPS) == 0
    (out / "hitch/mine.pem").write_text("mine\n")
    assert compile_into(tmp_path, PLAIN) == 0
    assert files(out / "hitch") == ["mine.pem"]


def test_a_fleet_node_removed_takes_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert compile_into(tmp_path, FLEET) == 0
    assert (out / "edge-2/nginx/nginx.conf").is_file()
    assert compile_into(tmp_path, FLEET.replace("        - {name: edge-2, address: 10.0.1.12}\n", "")) == 0
    assert not (out / "edge-2").exists()
    assert {p.split("/")[0] for p in files(out)} == {MANIFEST, "edge-1", "shield-1", "shield-2"}


def test_check_reports_a_stale_file_as_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compile_into(tmp_path, HTTPS) == 0
    assert compile_into(tmp_path, HTTPS, "--check") == 0
    capsys.readouterr()
    assert compile_into(tmp_path, PLAIN, "--check") == 1
    out, err = capsys.readouterr()
    assert f"--- {tmp_path}/out/hitch/hitch.conf\n+++ /dev/null\n" in out
    assert "out of date" in err
    assert (tmp_path / "out/hitch/hitch.conf").is_file()  # --check writes nothing
    assert compile_into(tmp_path, PLAIN) == 0
    assert compile_into(tmp_path, PLAIN, "--check") == 0


def test_an_edited_stale_file_is_left_with_a_warning(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert compile_into(tmp_path, HTTPS) == 0
    hitch = out / "hitch/hitch.conf"
    hitch.write_text(hitch.read_text() + "# tuned by hand\n")
    capsys.readouterr()
    assert compile_into(tmp_path, PLAIN) == 0
    warning = f"warning: {hitch}: no longer generated, but edited since cachewright wrote it"
    assert warning in capsys.readouterr().err
    assert hitch.read_text().endswith("# tuned by hand\n")
    assert compile_into(tmp_path, PLAIN, "--check") == 1  # still listed: still a trap
    assert warning in capsys.readouterr().err
    hitch.unlink()
    assert compile_into(tmp_path, PLAIN) == 0  # the manifest forgets it
    assert "warning" not in capsys.readouterr().err
    assert compile_into(tmp_path, PLAIN, "--check") == 0


def test_another_targets_files_stay(tmp_path: Path) -> None:
    """--target varnish owns varnish/ and hitch/ only: the nginx files stay, and stay listed."""
    out = tmp_path / "out"
    assert compile_into(tmp_path, HTTPS) == 0
    assert compile_into(tmp_path, PLAIN, "--target", "varnish") == 0
    assert files(out) == [MANIFEST, "nginx/ffdhe2048.pem", "nginx/nginx.conf", "varnish/default.vcl",
                          "varnish/varnishd.args"]  # hitch.conf, Varnish's, is gone
    assert {"nginx/nginx.conf", "nginx/ffdhe2048.pem"} <= read(out).keys()
    assert compile_into(tmp_path, PLAIN, "--target", "varnish", "--check") == 0


def test_a_tampered_manifest_removes_nothing_outside(tmp_path: Path) -> None:
    """Entries outside the folder, of the manifest itself, or whose file holds something else
    are never removed."""
    out = tmp_path / "out"
    assert compile_into(tmp_path, PLAIN) == 0
    outside = tmp_path / "precious"
    outside.write_text("x")
    (out / "nginx/other.conf").write_text("y")
    lines = [f"{digest('x')}  ../precious", f"{digest('x')}  {outside}", f"{digest('x')}  nginx/../../precious",
             f"{digest('z')}  nginx/other.conf", f"{digest('x')}  {MANIFEST}"]
    with (out / MANIFEST).open("a") as manifest:
        manifest.write("\n".join(lines) + "\n")
    assert compile_into(tmp_path, PLAIN) == 0
    assert outside.read_text() == "x" and (out / "nginx/other.conf").read_text() == "y"


def test_a_failed_write_removes_nothing(tmp_path: Path) -> None:
    """Nothing half-done: where the files cannot be written, the stale ones and the manifest
    stay as they were."""
    out = tmp_path / "out"
    assert compile_into(tmp_path, HTTPS) == 0
    before = (out / MANIFEST).read_text()
    (out / "varnish/default.vcl").unlink()
    (out / "varnish/default.vcl").mkdir()  # os.replace cannot put a file there
    (out / "varnish/default.vcl/x").write_text("")
    assert compile_into(tmp_path, PLAIN) == 2
    assert (out / "hitch/hitch.conf").is_file()
    assert (out / MANIFEST).read_text() == before


def test_check_reports_a_missing_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check passes exactly when a compile would change nothing, the manifest included."""
    assert compile_into(tmp_path, PLAIN) == 0
    (tmp_path / "out" / MANIFEST).unlink()
    capsys.readouterr()
    assert compile_into(tmp_path, PLAIN, "--check") == 1
    assert f"+++ {tmp_path}/out/{MANIFEST}\n" in capsys.readouterr().out
    assert compile_into(tmp_path, PLAIN) == 0
    assert compile_into(tmp_path, PLAIN, "--check") == 0
