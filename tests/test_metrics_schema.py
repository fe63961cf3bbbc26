"""metrics.json follows its schema: the committed file, and anything write_metrics would write."""

from __future__ import annotations

import copy
import json
import re

import pytest

from fer_helpers.core.paths import METRICS_SCHEMA, REPO
from fer_helpers.publish.summary import check_metrics, write_metrics

COMMITTED = REPO / "reports" / "metrics.json"


@pytest.fixture(scope="module")
def committed() -> dict:
    if not COMMITTED.exists():
        pytest.skip("no reports/metrics.json committed yet")
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def test_the_committed_metrics_follow_the_schema(committed):
    check_metrics(committed)


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        (lambda m: m["models"]["model_b"]["private_test"].update(accuracy=1.2), "models/model_b/private_test/accuracy"),
        (lambda m: m["models"]["hog_svm"].pop("private_test_dedup"), "models/hog_svm"),
        (lambda m: m["models"]["model_b"]["public_test"].update(accuracy_ci95=[0.5]), "accuracy_ci95"),
        (lambda m: m["data"].update(sha256="not a checksum"), "data/sha256"),
        (lambda m: m.pop("models"), "(top level)"),
        (lambda m: m.update(profile="huge"), "profile"),
    ],
)
def test_a_broken_file_is_refused_naming_where_and_nothing_is_written(committed, tmp_path, break_it, where):
    broken = copy.deepcopy(committed)
    break_it(broken)
    with pytest.raises(ValueError, match=re.escape(where)):
        write_metrics(broken, tmp_path / "metrics.json")
    assert not (tmp_path / "metrics.json").exists()


def test_the_schema_documentation_names_every_field_the_schema_fixes():
    schema = json.loads(METRICS_SCHEMA.read_text(encoding="utf-8"))
    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    fields = [*schema["properties"], *schema["$defs"]["model"]["properties"]]
    undocumented = [name for name in fields if f"`{name}`" not in doc]
    assert not undocumented, f"docs/metrics.md does not explain {undocumented}"
