"""verify.yamlsubset reads what it accepts exactly as PyYAML does, and refuses the rest by line.

The environment checks read the policy files with it (no PyYAML from the environment under
check); a document it accepts must never mean something else to PyYAML.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from verify import yamlsubset

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "policies").glob("*.yaml")))
def test_every_shipped_policy_file_reads_as_pyyaml_reads_it(name: str) -> None:
    text = (REPO / "policies" / name).read_text()
    assert yamlsubset.load(text) == yaml.safe_load(text)


ACCEPTED = [
    "a: 1\nb: -2\nc: +3\n",
    "a: ~\nb: null\nc:\nd: ''\n",
    "a: true\nb: False\nc: TRUE\n",
    "url: https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v0.1.0\n",
    "k: 'it''s: fine # not a comment'\n",
    'k: "tab\\there \\u00e9 \\x41 \\"q\\" \\\\ \\/"\n',
    "list:\n- a\n- b # comment\n-   c\n",
    "list:\n  - name: x\n    owner: y\n  - name: z\n",
    "nested:\n  - - 1\n    - 2\n  -\n    k: v\n",
    "flow: [a, 'b c', \"d\", 1, true, ~]\nempty: []\nnone: {}\n",
    "# only a comment\n\nk: v   # trailing\n",
    "deep:\n  a:\n    b:\n      c: d\n  e: f\n",
    "hash: a#b\ncolon: a:b\ndash: -x\n",
    "sha256: 2638ce9e2500e572a5e0de7faed6661eb569d1b696fcba07b0dd223da5f5d224\n",
    "- top\n- level\n",
    "plain scalar with spaces\n",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_what_the_subset_accepts_means_the_same_to_pyyaml(text: str) -> None:
    assert yamlsubset.load(text) == yaml.safe_load(text)


REFUSED = {
    "anchor": "a: &x 1\nb: *x\n",
    "tag": "a: !!str 1\n",
    "literal block": "a: |\n  text\n",
    "folded block": "a: >\n  text\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "duplicate key": "a: 1\na: 2\n",
    "tab indentation": "a:\n\tb: 1\n",
    "yes": "a: yes\n",
    "off": "a: off\n",
    "float": "a: 1.5\n",
    "octal": "a: 0755\n",
    "hex": "a: 0x1f\n",
    "date": "a: 2024-01-01\n",
    "sexagesimal": "a: 1:30\n",
    "merge key": "<<: {}\n",
    "multi-line plain": "a: one\n  two\n",
    "unterminated quote": "a: 'one\n",
    "nested flow": "a: [[1]]\n",
    "flow mapping": "a: {b: 1}\n",
    "mapping in a value": "a: b: c\n",
    "non-string key": "1: a\n",
    "complex key": "? a\n: b\n",
    "unknown escape": 'a: "\\q"\n',
    "trailing comma": "a: [1, ]\n",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_subset_does_not_support_is_refused_with_its_line(text: str) -> None:
    with pytest.raises(yamlsubset.YamlError) as caught:
        yamlsubset.load(text)
    assert 1 <= caught.value.line <= text.count("\n") + 1
    assert str(caught.value).startswith(f"line {caught.value.line}: ")


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randrange(-(10**6), 10**6)
    if kind == 1:
        return rng.choice([True, False, None])
    if kind == 2:
        return rng.choice(["yes", "off", "1.5", "0x10", "2024-01-01", "~", "null", "1:30", ""])
    alphabet = string.ascii_letters + string.digits + " -_:#'\"!&*[]{},|>%@`éß/\\."
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 24))).strip() or "x"


def _tree(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.3:
        return _scalar(rng)
    if rng.random() < 0.5:
        return [_tree(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = {str(_scalar(rng)) or "k" for _ in range(rng.randrange(0, 4))}
    return {k: _tree(rng, depth + 1) for k in keys}


def test_a_thousand_random_documents_pyyaml_writes_read_back_equal() -> None:
    rng = random.Random(11)
    accepted = 0
    for _ in range(1000):
        data = {"root": _tree(rng)}
        text = yaml.safe_dump(data, width=10**9, allow_unicode=True, sort_keys=False)
        try:
            loaded = yamlsubset.load(text)
        except yamlsubset.YamlError:
            continue  # refusing is allowed; reading differently is not
        assert loaded == yaml.safe_load(text) == data, text
        accepted += 1
    assert accepted > 900  # and what PyYAML writes for such data, the subset reads
