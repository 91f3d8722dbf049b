"""The chart's CRDs: a byte copy of crds/ (the source of truth) plus kopf's peering resources,
all valid apiextensions.k8s.io/v1 objects that `helm install` applies first."""

import jsonschema
import kubernetes_validate
import yaml

from chart_crds import CHART_CRDS, CHART_ONLY, MODELROUTE_CRD, ROOT, SOURCE, source_crds
from chart_helm import kinds, render
from chart_kube import KUBERNETES_VERSIONS


def test_modelroute_crd_source_exists() -> None:
    assert (SOURCE / MODELROUTE_CRD).is_file(), f"crds/{MODELROUTE_CRD} is missing"


def test_chart_copies_equal_the_source_byte_for_byte() -> None:
    stale = [
        src.name
        for src in source_crds()
        if not (CHART_CRDS / src.name).is_file()
        or (CHART_CRDS / src.name).read_bytes() != src.read_bytes()
    ]
    assert stale == [], "run: python tests/support/chart_crds.py"


def test_chart_ships_no_crd_without_a_source() -> None:
    chart_files = {p.name for p in CHART_CRDS.glob("*.yaml")}
    assert chart_files - CHART_ONLY == {p.name for p in source_crds()}


def test_every_chart_crd_is_a_valid_v1_crd() -> None:
    crds = kinds(render(include_crds=True), "CustomResourceDefinition")
    names = {c["metadata"]["name"] for c in crds}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= names
    assert ("modelroutes.modelgate.dev" in names) == (SOURCE / MODELROUTE_CRD).is_file()
    for crd in crds:
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(crd, version, strict=True)
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        assert crd["metadata"]["name"] == f"{plural}.{group}"
        assert sum(v["storage"] for v in crd["spec"]["versions"]) == 1


def test_crds_stay_out_of_the_templates() -> None:
    assert kinds(render(), "CustomResourceDefinition") == []


def test_kopf_peering_scopes() -> None:
    docs = [
        d for d in yaml.safe_load_all((CHART_CRDS / "kopfpeerings.kopf.dev.yaml").read_text()) if d
    ]
    scopes = {d["spec"]["names"]["kind"]: d["spec"]["scope"] for d in docs}
    assert scopes == {"ClusterKopfPeering": "Cluster", "KopfPeering": "Namespaced"}


def test_install_example_modelroute_matches_the_chart_crd() -> None:
    example = ROOT / "examples" / "modelroute-gpt-4o.yaml"
    assert example.is_file(), "docs/install.md applies examples/modelroute-gpt-4o.yaml"
    crd = yaml.safe_load((CHART_CRDS / MODELROUTE_CRD).read_text())
    route = yaml.safe_load(example.read_text())
    version = route["apiVersion"].split("/")[1]
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"][
        "openAPIV3Schema"
    ]
    assert route["kind"] == crd["spec"]["names"]["kind"]
    # A CRD's openAPIV3Schema is OpenAPI 3.0: draft-4 semantics (boolean exclusiveMinimum).
    jsonschema.Draft4Validator(schema).validate(route)
