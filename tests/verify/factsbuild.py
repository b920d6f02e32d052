"""Build EnvFacts by hand for the pure checks: a site directory with distributions and files."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from verify.facts import Dist, EnvFacts, Hook, PthFile

SITE = "/venv/lib/python3.11/site-packages"
MARKERS = {
    "implementation_name": "cpython",
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "os_name": "posix",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class FakeEnv:
    dists: list[Dist] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)
    pth: list[PthFile] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)

    def install(
        self, name: str, version: str, files: dict[str, bytes], record: bool = True
    ) -> FakeEnv:
        info = f"{name.replace('-', '_')}-{version}.dist-info"
        rows = []
        for rel, data in files.items():
            self.files[f"{SITE}/{rel}"] = sha(data)
            rows.append(f"{rel},{record_hash(data)},{len(data)}")
            if rel.endswith(".pth"):
                self.pth.append(PthFile(SITE, rel, data.decode(), sha(data)))
        if record:
            rows.append(f"{info}/RECORD,,")
            self.files[f"{SITE}/{info}/RECORD"] = "x"
        text = "\n".join(rows) + "\n" if record else None
        self.dists.append(Dist(SITE, info, name, version, text))
        return self

    def drop(self, rel: str, data: bytes) -> FakeEnv:
        self.files[f"{SITE}/{rel}"] = sha(data)
        if rel.endswith(".pth"):
            self.pth.append(PthFile(SITE, rel, data.decode(), sha(data)))
        return self

    def facts(self) -> EnvFacts:
        return EnvFacts(
            executable="/venv/bin/python",
            prefix="/venv",
            site_dirs=(SITE,),
            markers=dict(MARKERS),
            pth=tuple(self.pth),
            hooks=tuple(self.hooks),
            dists=tuple(self.dists),
            files=dict(self.files),
        )
