"""harness.engines: one home per engine. The shell scripts that install the engines keep their
own package lists (.ci/setup, harness/images/build-local.sh); they must name every Debian package
the Python list (``harness.engines.PACKAGES``) names, so an error's install hint and what CI and
the stand-in images install cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cachewright.generator.load import load
from cachewright.generator.targets import ENGINES
from cachewright.harness import engines
from cachewright.harness.engines import PACKAGES, binaries, hitch, nginx, packages, varnish

REPO = Path(__file__).resolve().parents[1]
SHELL_LISTS = {
    ".ci/setup": r"apt-get install[^\n]*\\\n((?:[^\n]*\\\n)*[^\n]*)",
    "harness/images/build-local.sh": r'^PACKAGES="([^"]*)"',
}


def _python_packages() -> set[str]:
    return {name for names in PACKAGES.values() for name in names.split()}


@pytest.mark.parametrize("script", sorted(SHELL_LISTS))
def test_shell_package_lists_name_every_python_package(script: str) -> None:
    text = (REPO / script).read_text()
    match = re.search(SHELL_LISTS[script], text, re.M)
    assert match, f"{script}: no package list found"
    listed = set(match[1].replace("\\", " ").split())
    assert _python_packages() <= listed, f"{script} lacks {sorted(_python_packages() - listed)}"


def test_every_engine_of_the_language_has_a_module() -> None:
    assert [engines.engine(name).NAME for name in ENGINES] == list(ENGINES)


def test_every_binary_has_its_packages() -> None:
    for name in ENGINES:
        module = engines.engine(name)
        assert set(module.BINARIES + module.HTTPS_BINARIES) <= set(PACKAGES)
    assert {*nginx.PACKAGES, *varnish.PACKAGES, *hitch.PACKAGES} == set(PACKAGES)


def test_varnish_needs_hitch_only_for_https() -> None:
    plain = load(REPO / "examples" / "static-site" / "policy.yaml")
    https = load(REPO / "examples" / "shop" / "policy.yaml")
    assert plain.listen.https is None and https.listen.https is not None
    assert binaries("varnish", plain) == binaries("varnish") == ("varnishd",)
    assert binaries("varnish", https) == ("varnishd", "hitch")
    assert binaries("nginx", https) == ("nginx",)
    assert packages("varnish") == "varnish varnish-modules hitch"
    assert packages("nginx") == PACKAGES["nginx"]


def test_start_commands() -> None:
    assert nginx.argv("nginx", "/p/", "stderr") == ["nginx", "-p", "/p/", "-c", "/p/nginx.conf", "-e", "stderr",
                                                    "-g", "daemon off;"]
    args = varnish.args("# c\n-a http=0.0.0.0:80\n-a https=/x.sock,PROXY\n-s malloc,64m\n", "127.0.0.1:6086")
    assert args == ["-a http=0.0.0.0:80", "-a https=127.0.0.1:6086,PROXY", "-s malloc,64m"]
    assert varnish.argv("varnishd", "/w", "/w/default.vcl", "127.0.0.1:1", "none", args)[-4:] == [
        "-a", "https=127.0.0.1:6086,PROXY", "-s", "malloc,64m"]
    conf = hitch.conf('backend = "[::1]:1"\n', "varnish", 6086, "/o", "docker", drop=True)
    assert conf == ('backend = "[varnish]:6086"\n# added by the cachewright docker runtime\n'
                    'ocsp-dir = "/o"\nuser = "_hitch"\ngroup = "_hitch"\n')
