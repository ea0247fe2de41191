"""policy → plan (capability check + lowering) → rendered files, per engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import capabilities, lower_hitch, lower_nginx, lower_varnish
from .errors import CapabilityError
from .model import Policy
from .render import OutputFile, render
from .tls import FFDHE2048_PEM

TARGETS = ("nginx", "varnish")


@dataclass(frozen=True)
class Options:
    """Compile options that are not part of the policy (they describe the target machine)."""

    nginx_version: tuple[int, int, int] = (1, 22, 1)
    nginx_modules_dir: str = "/usr/lib/nginx/modules"
    varnish_version: tuple[int, int, int] = (7, 1, 1)


@dataclass(frozen=True)
class Compiled:
    files: tuple[OutputFile, ...]
    warnings: tuple[str, ...] = field(default=())


def compile_policy(policy: Policy, targets: tuple[str, ...] = TARGETS,
                   options: Options | None = None) -> Compiled:
    """Every file for ``targets``; raises CapabilityError naming each unsupported feature."""
    options = options or Options()
    files: list[OutputFile] = []
    warnings: list[str] = []
    errors: list[str] = []
    for target in targets:
        try:
            warnings.extend(capabilities.check(policy, target))
        except CapabilityError as exc:
            errors.append(str(exc))
            continue
        files.extend(_files(policy, target, options))
    if errors:
        raise CapabilityError("\n".join(errors))
    return Compiled(tuple(files), tuple(warnings))


def _files(policy: Policy, target: str, options: Options) -> list[OutputFile]:
    source = policy.source
    if target == "nginx":
        model = lower_nginx.lower(policy, options.nginx_version, options.nginx_modules_dir)
        out = [OutputFile("nginx/nginx.conf", render("nginx/nginx.conf.j2", model, source))]
        if model.tls is not None and model.tls.dhparam:
            out.append(OutputFile(f"nginx/{model.tls.dhparam}", FFDHE2048_PEM))
        return out
    vcl = lower_varnish.lower(policy)
    out = [
        OutputFile("varnish/default.vcl", render("varnish/default.vcl.j2", vcl, source)),
        OutputFile("varnish/varnishd.args", render("varnish/varnishd.args.j2", vcl, source)),
    ]
    if policy.listen.https is not None:
        hitch = lower_hitch.lower(policy)
        out.append(OutputFile("hitch/hitch.conf", render("hitch/hitch.conf.j2", hitch, source)))
    return out
