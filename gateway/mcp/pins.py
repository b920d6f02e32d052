"""Tool pins: what an operator approved of a tool, and whether the upstream still offers that.

A tool is pinned by the SHA-256 of its name, description and input schema in canonical JSON
(sorted keys, no spaces). A server that later changes what the model reads about a tool (the
tool-poisoning attack: new instructions hidden in a description, a new parameter to exfiltrate
through) changes the digest, and the tool is disabled until an operator approves it again.
Pure functions over data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Status = Literal["approved", "unapproved", "changed"]


def digest(name: str, description: str | None, input_schema: dict[str, Any]) -> str:
    material = {"name": name, "description": description or "", "inputSchema": input_schema}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Approval:
    server: str
    tool: str
    digest: str
    approved_by: str
    approved_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str

    @property
    def usable(self) -> bool:
        return self.status == "approved"


def judge(current: str, approval: Approval | None) -> Verdict:
    """Whether a tool whose definition hashes to ``current`` may be offered."""
    if approval is None:
        return Verdict("unapproved", "not approved by an operator yet")
    if approval.digest != current:
        return Verdict(
            "changed",
            f"its description or input schema changed since {approval.approved_by} approved it "
            f"at {approval.approved_at.isoformat()} (approved digest {approval.digest[:12]}, "
            f"now {current[:12]}); disabled until approved again",
        )
    return Verdict("approved", "approved")
