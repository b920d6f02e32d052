"""The list from which a GitHub runner rebuilds the sigstore test vectors stays true.

The vectors the tests use are committed in tests/assets/sigstore (with their provenance, licence
and SHA256SUMS). ci.yml also checks out sigstore-python at a pinned commit and
.github/scripts/sigstore-vectors.sh copies the files named in .github/sigstore-vectors.txt,
refusing any whose sha256 differs, and runs the tests against that copy: the committed files
are the upstream ones, and the list names each with its sha256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIST = REPO / ".github" / "sigstore-vectors.txt"
SCRIPT = REPO / ".github" / "scripts" / "sigstore-vectors.sh"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def listed() -> tuple[str, dict[str, str]]:
    commit, files = "", {}
    for line in LIST.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] == "commit":
            commit = fields[1]
        else:
            files[fields[1]] = fields[0]
    return commit, files


def vectors_dir() -> Path:
    default = REPO / "tests" / "assets" / "sigstore"
    return Path(os.environ.get("SEALGATE_VECTORS", default))


@pytest.mark.vectors
def test_the_list_names_every_local_vector_with_its_sha256() -> None:
    local = {}
    for line in (vectors_dir() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        local[name.lstrip("*").removeprefix("./")] = digest
    assert listed()[1] == local


def test_the_committed_vectors_are_exactly_the_listed_files_with_their_sha256() -> None:
    committed = REPO / "tests" / "assets" / "sigstore"
    paperwork = {"SHA256SUMS", "README.md", "LICENSE"}
    found = {
        p.relative_to(committed).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in committed.rglob("*")
        if p.is_file() and p.name not in paperwork
    }
    assert found == listed()[1]


def test_ci_checks_out_sigstore_python_at_the_listed_commit() -> None:
    commit, _ = listed()
    text = WORKFLOW.read_text()
    assert f"ref: {commit}" in text
    assert "sigstore-vectors.sh" in text and 'SEALGATE_VECTORS="$RUNNER_TEMP/vectors"' in text


def _source_repo(tmp_path: Path) -> tuple[Path, str]:
    src = tmp_path / "src"
    (src / "assets").mkdir(parents=True)
    (src / "assets" / "a.txt").write_bytes(b"vector\n")
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    git += ["-c", "commit.gpgsign=false"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "vectors"], check=True)
    head = subprocess.run(
        [*git[:3], "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return src, head


def _run(tmp_path: Path, src: Path, text: str) -> subprocess.CompletedProcess[str]:
    vector_list = tmp_path / "list.txt"
    vector_list.write_text(text)
    env = {**os.environ, "SIGSTORE_VECTORS_LIST": str(vector_list)}
    return subprocess.run(
        [str(SCRIPT), str(src), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )


def test_the_script_copies_listed_files_and_writes_their_sha256sums(tmp_path: Path) -> None:
    src, head = _source_repo(tmp_path)
    digest = hashlib.sha256(b"vector\n").hexdigest()
    result = _run(tmp_path, src, f"commit {head}\n{digest} legacy/a.txt assets/a.txt\n")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "legacy" / "a.txt").read_bytes() == b"vector\n"
    assert (tmp_path / "out" / "SHA256SUMS").read_text() == f"{digest}  ./legacy/a.txt\n"


def test_the_script_refuses_a_file_whose_sha256_is_not_the_listed_one(tmp_path: Path) -> None:
    src, head = _source_repo(tmp_path)
    result = _run(tmp_path, src, f"commit {head}\n{'0' * 64} legacy/a.txt assets/a.txt\n")
    assert result.returncode != 0
    assert not (tmp_path / "out" / "SHA256SUMS").exists()


def test_the_script_refuses_a_checkout_at_another_commit(tmp_path: Path) -> None:
    src, _ = _source_repo(tmp_path)
    digest = hashlib.sha256(b"vector\n").hexdigest()
    result = _run(tmp_path, src, f"commit {'1' * 40}\n{digest} legacy/a.txt assets/a.txt\n")
    assert result.returncode == 1
    assert "not " + "1" * 40 in result.stderr
