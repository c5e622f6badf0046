//! The checker against the official examples (positive), against altered examples (negative),
//! with the recorded exceptions, and the integrity of the copied files.

use std::collections::BTreeSet;
use std::path::Path;

use contract::{contracts_dir, exceptions, Api, Contract, Example, Exchange};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const VMSS: &str = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool";

fn exchange(method: &str, path: &str, request: Option<Value>, status: u16, response: Option<Value>) -> Exchange {
    Exchange { method: method.into(), path: path.into(), request_body: request, status, response_body: response }
}

/// The problems of one exchange, which must not conform.
fn problems(api: Api, ex: &Exchange) -> Vec<String> {
    match Contract::load(api).check(ex) {
        Ok(()) => panic!("{} {} ({}) was accepted", ex.method, ex.path, ex.status),
        Err(p) => p,
    }
}

fn assert_one_problem_mentions(api: Api, ex: &Exchange, needles: &[&str]) {
    let problems = problems(api, ex);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    for needle in needles {
        assert!(problems[0].contains(needle), "`{needle}` not in: {}", problems[0]);
    }
    assert!(problems[0].starts_with(&format!("{} {}", ex.method, ex.path)), "{}", problems[0]);
}

fn example(api: Api, name_part: &str) -> Exchange {
    let all = Contract::load(api).examples();
    let found: Vec<&Example> = all.iter().filter(|e| e.name.contains(name_part)).collect();
    assert_eq!(
        found.len(),
        1,
        "examples named like `{name_part}`: {:?}",
        found.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    found[0].exchange.clone()
}

/// Official examples that contradict their own description, with the problems the checker reports
/// (each problem contains one of the fragments, and each fragment is reported). The description
/// (not the example) matches the live service, so the fakes follow the description.
const KNOWN_BAD_EXAMPLES: &[(&str, &[&str])] = &[
    // GitHub's job example predates `created_at`, which the schema requires and the API returns.
    ("actions/get-job-for-workflow-run 200 default", &["\"created_at\" is a required property"]),
    ("actions/list-jobs-for-workflow-run 200 default", &["\"created_at\" is a required property"]),
    // Unit-test stubs of actions/scaleset, not recordings (contracts/actions-scaleset/README.md):
    // a JIT answer of the wrong shape that SS decodes into an empty config, and a message without
    // the statistics SS's listener dereferences.
    (
        "actions-scaleset/examples/17-generate-jit-config-stub.json (200)",
        &[
            "\"runner\" is a required property",
            "\"encodedJITConfig\" is a required property",
            "undocumented field(s) `count`, `value`",
        ],
    ),
    ("actions-scaleset/examples/21-get-message-stub.json (200)", &["\"statistics\" is a required property"]),
];

/// Whether `problems` are exactly the known ones: every problem matches a fragment, every
/// fragment matches a problem.
fn only_known(problems: &[String], fragments: &[&str]) -> bool {
    problems.iter().all(|p| fragments.iter().any(|f| p.contains(f)))
        && fragments.iter().all(|f| problems.iter().any(|p| p.contains(f)))
}

// ---------------------------------------------------------------- positive: official examples

#[test]
fn every_official_example_validates_as_an_exchange() {
    let mut failures = Vec::new();
    let mut count = 0;
    for api in Api::ALL {
        let contract = Contract::load(api);
        for ex in contract.examples() {
            count += 1;
            let known = KNOWN_BAD_EXAMPLES.iter().find(|(name, _)| ex.name == *name);
            match (contract.check(&ex.exchange), known) {
                (Ok(()), None) => {}
                (Ok(()), Some(_)) => failures.push(format!("{}: listed as known bad but conforms", ex.name)),
                (Err(p), Some((_, expected))) if only_known(&p, expected) => {}
                (Err(p), _) => failures.push(format!("{}:\n  {}", ex.name, p.join("\n  "))),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 69 + 28, "only {count} examples were built");
}

#[test]
fn every_copied_example_file_is_used() {
    let mut on_disk = BTreeSet::new();
    collect_example_files(&contracts_dir(), "", &mut on_disk);
    let used: BTreeSet<String> =
        Api::ALL.iter().flat_map(|api| Contract::load(*api).examples()).filter_map(|e| e.file).collect();
    let unused: Vec<&String> = on_disk.difference(&used).collect();
    assert!(unused.is_empty(), "example files no exchange was built from: {unused:?}");
    // 27 copied from shared/specs, 28 recorded from actions/scaleset (contracts/actions-scaleset/).
    assert_eq!(on_disk.len(), 27 + 28);
}

fn collect_example_files(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if entry.file_type().unwrap().is_dir() {
            collect_example_files(&entry.path(), &rel, out);
        } else if rel.contains("examples") && name.ends_with(".json") {
            out.insert(rel);
        }
    }
}

#[test]
fn the_2025_04_01_compute_examples_are_checked_with_their_own_api_version() {
    let examples = Contract::load(Api::Compute).examples();
    let newer: Vec<&Example> = examples.iter().filter(|e| e.name.contains("examples-2025-04-01")).collect();
    assert_eq!(newer.iter().filter_map(|e| e.file.as_ref()).collect::<BTreeSet<_>>().len(), 10);
    for e in newer {
        assert!(e.exchange.path.contains("api-version=2025-04-01"), "{}", e.exchange.path);
    }
}

#[test]
fn deallocate_and_start_are_checked_against_the_exact_compute_description() {
    // Taken from compute.json (exact, the file the subset was cut from): 200 or 202, no body,
    // `{"instanceIds": [...]}` optional.
    let compute = Contract::load(Api::Compute);
    for action in ["deallocate", "start"] {
        let path = format!("{VMSS}/{action}?api-version=2025-04-01");
        let body = Some(json!({ "instanceIds": ["0", "3"] }));
        assert_eq!(compute.check(&exchange("POST", &path, body.clone(), 202, None)), Ok(()), "{action}");
        assert_eq!(compute.check(&exchange("POST", &path, None, 200, None)), Ok(()), "{action} without a body");
        let throttled = json!({ "error": { "code": "TooManyRequests", "message": "throttled" } });
        assert_eq!(compute.check(&exchange("POST", &path, body.clone(), 429, Some(throttled))), Ok(()));
        let unknown = exchange("POST", &path, Some(json!({ "instanceIds": ["0"], "hibernate": true })), 202, None);
        assert_one_problem_mentions(Api::Compute, &unknown, &["hibernate"]);
        let with_body = exchange("POST", &path, body, 202, Some(json!({ "status": "InProgress" })));
        assert_one_problem_mentions(Api::Compute, &with_body, &["202"]);
    }
    // Power off stays undescribed: the operator never stops a VM without deallocating it.
    let poweroff = exchange("POST", &format!("{VMSS}/poweroff?api-version=2025-04-01"), None, 202, None);
    assert_one_problem_mentions(Api::Compute, &poweroff, &["poweroff"]);
}

#[test]
fn github_examples_cover_every_runner_operation_the_operator_uses() {
    let names: Vec<String> = Contract::load(Api::GithubRest).examples().into_iter().map(|e| e.name).collect();
    for id in [
        "actions/list-self-hosted-runners-for-repo 200",
        "actions/list-self-hosted-runners-for-org 200",
        "actions/get-self-hosted-runner-for-repo 200",
        "actions/delete-self-hosted-runner-from-repo 204",
        "actions/delete-self-hosted-runner-from-org 204",
        "actions/generate-runner-jitconfig-for-repo 201",
        "actions/generate-runner-jitconfig-for-org 201",
        "actions/create-registration-token-for-repo 201",
        "actions/create-remove-token-for-org 201",
        "apps/create-installation-access-token 201",
    ] {
        assert!(names.iter().any(|n| n.starts_with(id)), "no example exchange for {id}");
    }
}

#[test]
fn hand_written_exchanges_in_the_shapes_the_clients_use_conform() {
    let runner = json!({ "id": 7, "name": "vmss-1", "os": "linux", "status": "online", "busy": false,
        "ephemeral": true, "labels": [{ "id": 1, "name": "self-hosted", "type": "read-only" }] });
    let gh = [
        exchange(
            "GET",
            "/orgs/acme/actions/runners?per_page=100&page=2",
            None,
            200,
            Some(json!({ "total_count": 1, "runners": [runner.clone()] })),
        ),
        exchange("GET", "/repos/acme/app/actions/runners/7", None, 200, Some(runner)),
        exchange("DELETE", "/repos/acme/app/actions/runners/7", None, 204, None),
        exchange("GET", "/orgs/acme/actions/runners?per_page=100", None, 304, None),
        exchange(
            "GET",
            "/repos/acme/app/actions/runners/8",
            None,
            404,
            Some(json!({ "message": "Not Found", "documentation_url": "https://docs.github.com/rest" })),
        ),
        exchange(
            "POST",
            "/orgs/acme/actions/runners/registration-token",
            None,
            201,
            Some(json!({ "token": "AAA", "expires_at": "2026-01-01T00:00:00Z" })),
        ),
    ];
    assert_eq!(Contract::load(Api::GithubRest).check_all(&gh), Vec::<String>::new());

    let vmss_path = format!("{VMSS}?api-version=2025-04-01");
    let arm = [
        exchange(
            "PATCH",
            &vmss_path,
            Some(json!({ "sku": { "capacity": 5 } })),
            200,
            Some(json!({ "location": "westeurope", "sku": { "capacity": 5 } })),
        ),
        exchange(
            "POST",
            &format!("{VMSS}/delete?api-version=2025-04-01"),
            Some(json!({ "instanceIds": ["1", "2"] })),
            202,
            None,
        ),
        exchange(
            "POST",
            &format!("{VMSS}/reimage?api-version=2025-04-01"),
            Some(json!({ "instanceIds": ["3"] })),
            202,
            None,
        ),
        exchange(
            "GET",
            &format!("{VMSS}/virtualMachines?api-version=2025-04-01&$expand=instanceView"),
            None,
            200,
            Some(json!({ "value": [] })),
        ),
        // ARM paths are case-insensitive.
        exchange(
            "GET",
            &format!("{}?api-version=2025-04-01", VMSS.to_lowercase()),
            None,
            200,
            Some(json!({ "location": "westeurope" })),
        ),
        exchange(
            "GET",
            &format!("{VMSS}/virtualMachines?api-version=2025-04-01"),
            None,
            429,
            Some(json!({ "error": { "code": "TooManyRequests", "message": "slow down" } })),
        ),
    ];
    assert_eq!(Contract::load(Api::Compute).check_all(&arm), Vec::<String>::new());
}

// ---------------------------------------------------------------- negative: altered examples

#[test]
fn an_undocumented_field_in_a_response_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.response_body.as_mut().unwrap()["assigned_job"] = json!(12);
    assert_one_problem_mentions(Api::GithubRest, &ex, &["undocumented field", "`assigned_job`", "response 200"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_Get_WithUserData");
    ex.response_body.as_mut().unwrap()["properties"]["sparePool"] = json!(3);
    assert_one_problem_mentions(Api::Compute, &ex, &["`sparePool`", "at `/properties`"]);

    let mut ex = example(Api::KeyVaultSecrets, "Secrets-tsp");
    ex.response_body.as_mut().unwrap()["attributes"]["rotated"] = json!(true);
    assert_one_problem_mentions(Api::KeyVaultSecrets, &ex, &["`rotated`", "at `/attributes`"]);
}

#[test]
fn a_field_of_the_wrong_type_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/list-self-hosted-runners-for-org 200");
    ex.response_body.as_mut().unwrap()["runners"][0]["busy"] = json!("yes");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["/runners/0/busy", "boolean"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_Get_WithUserData");
    ex.response_body.as_mut().unwrap()["sku"]["capacity"] = json!("4");
    assert_one_problem_mentions(Api::Compute, &ex, &["/sku/capacity", "integer"]);

    let mut ex = example(Api::Imds, "GetIdentityToken.2023-07-01");
    ex.response_body.as_mut().unwrap()["expires_on"] = json!(1541705014);
    assert_one_problem_mentions(Api::Imds, &ex, &["/expires_on", "string"]);
}

#[test]
fn a_missing_required_field_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-org 200");
    ex.response_body.as_mut().unwrap().as_object_mut().unwrap().remove("status");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["\"status\" is a required property"]);

    let mut ex = example(Api::GithubRest, "actions/generate-runner-jitconfig-for-repo 201");
    ex.request_body.as_mut().unwrap().as_object_mut().unwrap().remove("labels");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["request body", "\"labels\" is a required property"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_DeleteInstances_MinimumSet_Gen.json (202)");
    ex.request_body = Some(json!({}));
    assert_one_problem_mentions(Api::Compute, &ex, &["request body", "\"instanceIds\" is a required property"]);
}

#[test]
fn an_undocumented_field_in_a_request_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/generate-runner-jitconfig-for-org 201");
    ex.request_body.as_mut().unwrap()["ephemeral"] = json!(true);
    assert_one_problem_mentions(Api::GithubRest, &ex, &["request body", "`ephemeral`"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_Update_MinimumSet_Gen");
    ex.request_body = Some(json!({ "sku": { "capacity": 3, "count": 3 } }));
    assert_one_problem_mentions(Api::Compute, &ex, &["request body", "`count`", "at `/sku`"]);
}

#[test]
fn read_only_fields_are_never_required_in_a_request_and_are_rejected_when_sent() {
    // VirtualMachineScaleSet.properties.provisioningState and .uniqueId are readOnly.
    let path = format!("{VMSS}?api-version=2025-04-01");
    let ok = exchange(
        "PUT",
        &path,
        Some(json!({ "location": "westeurope" })),
        200,
        Some(json!({ "location": "westeurope" })),
    );
    assert_eq!(Contract::load(Api::Compute).check(&ok), Ok(()));
    let sent = exchange(
        "PUT",
        &path,
        Some(json!({ "location": "westeurope", "properties": { "provisioningState": "Succeeded" } })),
        200,
        Some(json!({ "location": "westeurope", "properties": { "provisioningState": "Succeeded" } })),
    );
    assert_one_problem_mentions(Api::Compute, &sent, &["request body", "`provisioningState`"]);
}

#[test]
fn an_unknown_query_parameter_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/list-self-hosted-runners-for-repo 200");
    ex.path.push_str("?per_page=100&status=online");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["unknown query parameter `status`", "per_page"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_GetInstanceView_MinimumSet_Gen");
    ex.path.push_str("&%24expand=instanceView");
    assert_one_problem_mentions(Api::Compute, &ex, &["unknown query parameter `$expand`"]);
}

#[test]
fn a_query_parameter_of_the_wrong_type_or_a_missing_required_one_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/list-self-hosted-runners-for-repo 200");
    ex.path.push_str("?per_page=all");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["query parameter `per_page` = `all`", "integer"]);

    let mut ex = example(Api::Imds, "GetIdentityToken.2023-07-01");
    ex.path = "/metadata/identity/oauth2/token?api-version=2023-07-01".into();
    assert_one_problem_mentions(Api::Imds, &ex, &["required query parameter `resource` is missing"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_GetInstanceView_MinimumSet_Gen");
    ex.path = ex.path.replace("api-version=2025-04-01", "api-version=2024-03-01");
    assert_one_problem_mentions(Api::Compute, &ex, &["api-version `2024-03-01`", "2021-03-01"]);
}

#[test]
fn an_undocumented_status_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.status = 202;
    assert_one_problem_mentions(Api::GithubRest, &ex, &["status 202 is not documented", "200"]);

    let mut ex = example(Api::Compute, "VirtualMachineScaleSet_Reimage_MinimumSet_Gen.json (202)");
    ex.status = 201;
    assert_one_problem_mentions(Api::Compute, &ex, &["status 201 is not documented", "200, 202"]);
}

#[test]
fn a_body_where_none_is_described_or_none_where_one_is_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/delete-self-hosted-runner-from-repo 204");
    ex.response_body = Some(json!({}));
    assert_one_problem_mentions(Api::GithubRest, &ex, &["response 204 has a body"]);

    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.response_body = None;
    assert_one_problem_mentions(Api::GithubRest, &ex, &["response 200 has no body"]);

    let mut ex = example(Api::GithubRest, "actions/create-registration-token-for-repo 201");
    ex.request_body = Some(json!({}));
    assert_one_problem_mentions(Api::GithubRest, &ex, &["takes no request body"]);
}

#[test]
fn an_unknown_path_or_method_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.path = ex.path.replace("/runners/", "/runner/");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["unknown path"]);

    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.method = "PATCH".into();
    assert_one_problem_mentions(Api::GithubRest, &ex, &["method PATCH is not described", "DELETE", "GET"]);

    // GitHub Enterprise Server's `/api/v3` prefix is understood, other prefixes are not.
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.path = format!("/api/v3{}", ex.path);
    assert_eq!(Contract::load(Api::GithubRest).check(&ex), Ok(()));
    ex.path = ex.path.replace("/api/v3", "/api/v4");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["unknown path"]);

    // GitHub paths are case-sensitive.
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.path = ex.path.replace("/actions/", "/Actions/");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["unknown path"]);

    let ex = exchange("GET", &format!("{VMSS}/spares?api-version=2025-04-01"), None, 200, Some(json!({})));
    assert_one_problem_mentions(Api::Compute, &ex, &["unknown path"]);

    let ex = exchange("GET", "/identity/oauth2/token?api-version=2023-07-01&resource=x", None, 200, Some(json!({})));
    assert_one_problem_mentions(Api::Imds, &ex, &["unknown path"]);
}

#[test]
fn a_path_parameter_of_the_wrong_type_is_rejected() {
    let mut ex = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    ex.path = ex.path.replace("/42", "/vmss-1");
    assert_one_problem_mentions(Api::GithubRest, &ex, &["path parameter `runner_id` = `vmss-1`"]);
}

#[test]
fn every_problem_of_every_exchange_is_reported() {
    let mut bad = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    bad.path.push_str("?x=1");
    bad.response_body.as_mut().unwrap()["id"] = json!("seven");
    let good = example(Api::GithubRest, "actions/delete-self-hosted-runner-from-repo 204");
    let problems = Contract::load(Api::GithubRest).check_all(&[bad.clone(), good, bad]);
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

// ---------------------------------------------------------------- descriptions per api-version

#[test]
fn key_vault_and_imds_exchanges_are_checked_against_the_description_of_their_api_version() {
    // The 7.2 description is chosen for api-version=7.2, 2025-07-01 otherwise.
    let v72 = example(Api::KeyVaultSecrets, "exact-2021-07-snapshot-7.2/examples/GetSecret-example.json");
    assert!(v72.path.ends_with("api-version=7.2"), "{}", v72.path);
    assert_eq!(Contract::load(Api::KeyVaultSecrets).check(&v72), Ok(()));
    let mut unknown = v72.clone();
    unknown.path = unknown.path.replace("7.2", "7.3");
    assert_one_problem_mentions(Api::KeyVaultSecrets, &unknown, &["api-version `7.3`", "2025-07-01"]);

    let token = example(Api::Imds, "exact-2021-07-snapshot-2021-02-01/examples/GetIdentityToken.json");
    assert!(token.path.contains("api-version=2021-02-01"));
    assert_eq!(Contract::load(Api::Imds).check(&token), Ok(()));
}

// ---------------------------------------------------------------- exceptions

#[test]
fn exceptions_file_parses_and_every_entry_says_what_differs_and_why() {
    let all = contract::load_exceptions();
    assert!(all.len() >= 10, "{}", all.len());
    for e in &all {
        assert!(Api::from_key(&e.api).is_some(), "{}", e.id);
        assert!(e.reason.trim().len() > 50 && e.differs.trim().len() > 20, "{}", e.id);
    }
}

#[test]
fn an_exception_without_a_reason_or_with_an_unknown_field_is_refused() {
    let entry = r#"
        [[exception]]
        id = "x"
        api = "compute"
        method = "GET"
        path = "/a"
        kind = "undescribed-operation"
        differs = "something differs here"
        reason = ""
    "#;
    let problems = exceptions::parse(entry).unwrap_err();
    assert!(problems.iter().any(|p| p.contains("`reason`")), "{problems:?}");
    assert!(exceptions::parse(&entry.replace("reason = \"\"", "reason = \"r\"\nwhy = \"w\"")).is_err());
    let wrong_kind_fields =
        entry.replace("reason = \"\"", "reason = \"a reason that is long enough\"\nstatuses = [500]");
    assert!(exceptions::parse(&wrong_kind_fields).is_ok(), "unused fields are tolerated, missing ones are not");
    let no_statuses =
        wrong_kind_fields.replace("undescribed-operation", "undocumented-status").replace("statuses = [500]", "");
    assert!(exceptions::parse(&no_statuses).unwrap_err().iter().any(|p| p.contains("`statuses`")));
}

#[test]
fn exchanges_covered_by_an_exception_pass_and_the_same_ones_elsewhere_do_not() {
    let c = Contract::load(Api::Compute);
    // Network resource provider operation under the scale set path.
    let nics = exchange(
        "GET",
        &format!("{VMSS}/networkInterfaces?api-version=2024-05-01"),
        None,
        200,
        Some(json!({ "value": [] })),
    );
    assert_eq!(c.check(&nics), Ok(()));
    let vm_nics = exchange(
        "GET",
        &format!("{VMSS}/virtualMachines/3/networkInterfaces?api-version=2024-05-01"),
        None,
        200,
        Some(json!({ "value": [] })),
    );
    assert_eq!(c.check(&vm_nics), Ok(()));
    // Long-running operation status.
    let status = exchange(
        "GET",
        "/subscriptions/sub/providers/Microsoft.Compute/locations/westeurope/operations/op-1?api-version=2025-04-01",
        None,
        200,
        Some(json!({ "status": "Succeeded" })),
    );
    assert_eq!(c.check(&status), Ok(()));
    // ARM errors: allowed statuses with a CloudError body; a malformed error body still fails.
    let throttled = exchange(
        "POST",
        &format!("{VMSS}/delete?api-version=2025-04-01"),
        Some(json!({ "instanceIds": ["1"] })),
        429,
        Some(json!({ "error": { "code": "TooManyRequests", "message": "retry later" } })),
    );
    assert_eq!(c.check(&throttled), Ok(()));
    let mut malformed = throttled.clone();
    malformed.response_body = Some(json!({ "error": "TooManyRequests" }));
    assert_one_problem_mentions(Api::Compute, &malformed, &["response 429 body at `/error`", "object"]);
    let mut teapot = throttled.clone();
    teapot.status = 418;
    assert_one_problem_mentions(Api::Compute, &teapot, &["status 418 is not documented"]);

    // IMDS token with the SDK's api-version passes; another undescribed version does not.
    let mut token = example(Api::Imds, "GetIdentityToken.2023-07-01");
    token.path = token.path.replace("2023-07-01", "2019-08-01");
    assert_eq!(Contract::load(Api::Imds).check(&token), Ok(()));
    token.path = token.path.replace("2019-08-01", "2018-02-01");
    assert_one_problem_mentions(Api::Imds, &token, &["api-version `2018-02-01`"]);

    // GitHub rate limit on any operation, with the basic-error body.
    let limited = exchange(
        "GET",
        "/repos/acme/app/actions/runners",
        None,
        429,
        Some(json!({ "message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest" })),
    );
    assert_eq!(Contract::load(Api::GithubRest).check(&limited), Ok(()));
    let mut not_modified_with_body = limited.clone();
    not_modified_with_body.status = 304;
    assert_one_problem_mentions(Api::GithubRest, &not_modified_with_body, &["response 304 has a body"]);
}

#[test]
fn an_undocumented_property_exception_allows_only_the_listed_locations() {
    let mut ex = example(Api::Compute, "VirtualMachineScaleSetVM_Get_WithUserData");
    assert!(ex.response_body.as_ref().unwrap().get("etag").is_some());
    assert_eq!(Contract::load(Api::Compute).check(&ex), Ok(()));
    ex.response_body.as_mut().unwrap()["properties"]["etag"] = json!("\"1\"");
    assert_one_problem_mentions(Api::Compute, &ex, &["`etag`", "at `/properties`"]);
}

#[test]
fn nulls_are_accepted_only_where_an_exception_allows_them_and_never_for_required_fields() {
    let ex = example(Api::Compute, "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup");
    assert_eq!(Contract::load(Api::Compute).check(&ex), Ok(()));
    // instanceIds is required in the request body and a request is never lenient.
    let mut del = example(Api::Compute, "VirtualMachineScaleSet_DeleteInstances_MinimumSet_Gen.json (202)");
    del.request_body = Some(json!({ "instanceIds": null }));
    assert_one_problem_mentions(Api::Compute, &del, &["/instanceIds", "array"]);
    // GitHub has no such exception: a null where the description has no `nullable` fails.
    let mut runner = example(Api::GithubRest, "actions/get-self-hosted-runner-for-repo 200");
    runner.response_body.as_mut().unwrap()["ephemeral"] = Value::Null;
    assert_one_problem_mentions(Api::GithubRest, &runner, &["/ephemeral"]);
    // ...but it accepts null where the description says `nullable: true`.
    runner.response_body.as_mut().unwrap()["ephemeral"] = json!(false);
    runner.response_body.as_mut().unwrap()["version"] = Value::Null;
    assert_eq!(Contract::load(Api::GithubRest).check(&runner), Ok(()));
}

// ---------------------------------------------------------------- integrity of the copies

#[test]
fn copied_descriptions_match_the_upstream_sha256_sums() {
    let dir = contracts_dir();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut listed = BTreeSet::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (expected, file) = line.split_once("  ").expect("`<sha256>  <path>` lines");
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(actual, expected, "{file} differs from the upstream copy; restore it from shared/specs");
        listed.insert(file.to_string());
    }
    // Every copied description, example and license is listed.
    let mut on_disk = BTreeSet::new();
    collect_all(&dir, "", &mut on_disk);
    on_disk.retain(|f| f.ends_with(".json") || f.ends_with(".LICENSE"));
    // Written here, not copied from shared/specs: no upstream hash exists (its own README names
    // the sources; tests/contract/tests/actions_scaleset.rs checks each fixture names its commit).
    on_disk.retain(|f| !f.starts_with("actions-scaleset/"));
    let unlisted: Vec<&String> = on_disk.difference(&listed).collect();
    assert!(unlisted.is_empty(), "copied files without an upstream hash: {unlisted:?}");
    assert_eq!(listed.len(), 37);
}

fn collect_all(dir: &Path, rel: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if entry.file_type().unwrap().is_dir() {
            collect_all(&entry.path(), &rel, out);
        } else {
            out.insert(rel);
        }
    }
}

#[test]
fn examples_whose_api_version_is_an_authoring_leftover_are_sent_with_the_description_version() {
    let mut replaced: Vec<String> = Api::ALL
        .iter()
        .flat_map(|api| Contract::load(*api).examples())
        .filter(|e| e.name.contains("replaced"))
        .filter_map(|e| e.file)
        .collect();
    replaced.dedup();
    assert_eq!(
        replaced,
        [
            // 2020-06-01 inside the 2021-03-01 folder.
            "azure/compute/exact-2021-07-snapshot-2021-03-01/examples/ForceDeleteVirtualMachineScaleSets.json",
            "azure/compute/exact-2021-07-snapshot-2021-03-01/examples/ForceDeleteVirtualMachineScaleSetVM.json",
            // 7.6-preview.1 in the TypeSpec-generated example of 2025-07-01.
            "azure/keyvault-secrets/examples/GetSecret-example.Security.KeyVault.Secrets-tsp.json",
        ]
    );
}
