//! The description of the runner scale set API written in `contracts/actions-scaleset/`: its
//! fixtures from actions/scaleset, and proof that the checker rejects what it must.

use contract::{Api, Contract, Example, Exchange};
use serde_json::{json, Value};

fn contract() -> Contract {
    Contract::load(Api::ActionsScaleset)
}

fn fixture(name_part: &str) -> Exchange {
    let all = contract().examples();
    let found: Vec<&Example> = all.iter().filter(|e| e.name.contains(name_part)).collect();
    assert_eq!(
        found.len(),
        1,
        "fixtures named like `{name_part}`: {:?}",
        found.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    found[0].exchange.clone()
}

/// The problems of an exchange that must not conform; each must name what is wrong.
fn rejected(ex: &Exchange, needles: &[&str]) {
    let problems = match contract().check(ex) {
        Ok(()) => panic!("{} {} ({}) was accepted", ex.method, ex.path, ex.status),
        Err(p) => p,
    };
    assert_eq!(problems.len(), 1, "{problems:#?}");
    for needle in needles {
        assert!(problems[0].contains(needle), "`{needle}` not in: {}", problems[0]);
    }
}

#[test]
fn every_fixture_names_its_source_commit_and_is_used() {
    let dir = contract::contracts_dir().join("actions-scaleset/examples");
    let files = std::fs::read_dir(&dir).unwrap().count();
    let examples = contract().examples();
    assert_eq!(examples.len(), files);
    assert_eq!(files, 28);
    for e in &examples {
        let text = std::fs::read_to_string(contract::contracts_dir().join(e.file.as_ref().unwrap())).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let source = &doc["source"];
        assert!(source["how"].as_str().is_some_and(|h| h.len() > 8), "{}", e.name);
        if source["repository"] == "actions/scaleset" {
            assert_eq!(source["commit"], "6ce025902cd964747a078c2aabe7340ebc667eca", "{}", e.name);
        }
    }
    let license =
        std::fs::read_to_string(contract::contracts_dir().join("actions-scaleset/LICENSE.actions-scaleset")).unwrap();
    assert!(license.starts_with("MIT License") && license.contains("Copyright GitHub, Inc."));
}

#[test]
fn a_message_body_is_checked_as_the_json_it_holds() {
    let good = fixture("28-message-with-job-started");
    assert_eq!(contract().check(&good), Ok(()));

    let mut unknown = good.clone();
    let body = unknown.response_body.as_ref().unwrap()["body"]
        .as_str()
        .unwrap()
        .replace("\"build\"", "\"build\",\"node\":\"x\"");
    unknown.response_body.as_mut().unwrap()["body"] = json!(body);
    rejected(&unknown, &["inside the JSON string at `/body`", "/0"]);

    let mut not_json = good.clone();
    not_json.response_body.as_mut().unwrap()["body"] = json!("[{\"messageType\":");
    rejected(&not_json, &["at `/body`: the string does not hold JSON"]);

    let mut wrong_type = good.clone();
    let started: Value = serde_json::from_str(good.response_body.as_ref().unwrap()["body"].as_str().unwrap()).unwrap();
    let mut started = started[0].clone();
    started["messageType"] = json!("JobQueued");
    wrong_type.response_body.as_mut().unwrap()["body"] = json!(json!([started]).to_string());
    rejected(&wrong_type, &["inside the JSON string", "/0"]);

    let mut too_many = good.clone();
    let one: Value = serde_json::from_str(good.response_body.as_ref().unwrap()["body"].as_str().unwrap()).unwrap();
    let many: Vec<Value> = (0..51).map(|_| one[0].clone()).collect();
    too_many.response_body.as_mut().unwrap()["body"] = json!(json!(many).to_string());
    rejected(&too_many, &["inside the JSON string"]);

    let mut started_without_runner = good;
    let mut job = one[0].clone();
    job.as_object_mut().unwrap().remove("runnerName");
    started_without_runner.response_body.as_mut().unwrap()["body"] = json!(json!([job]).to_string());
    rejected(&started_without_runner, &["inside the JSON string"]);
}

#[test]
fn an_unknown_field_in_a_request_body_is_rejected() {
    let mut create = fixture("14-create-scale-set");
    create.request_body.as_mut().unwrap()["maxRunners"] = json!(10);
    rejected(&create, &["request body", "`maxRunners`"]);

    let mut setting = fixture("14-create-scale-set");
    setting.request_body.as_mut().unwrap()["RunnerSetting"]["ephemeralish"] = json!(true);
    rejected(&setting, &["request body", "`ephemeralish`", "/RunnerSetting"]);

    let mut session = fixture("18-create-session");
    session.request_body.as_mut().unwrap()["statistics"] = json!({});
    rejected(&session, &["request body", "`statistics`"]);

    let mut registration = fixture("01-runner-registration-testserver");
    registration.request_body.as_mut().unwrap()["labels"] = json!([]);
    rejected(&registration, &["request body", "`labels`"]);

    let mut jit = fixture("25-jit-agent-exists");
    jit.request_body.as_mut().unwrap()["labels"] = json!(["x"]);
    rejected(&jit, &["request body", "`labels`"]);
}

#[test]
fn an_unknown_field_in_an_answer_is_rejected() {
    let mut set = fixture("12-get-scale-set-by-id");
    set.response_body.as_mut().unwrap()["enabled"] = json!(true);
    rejected(&set, &["response 200 body", "`enabled`"]);

    let mut runner = fixture("03-get-runner");
    runner.response_body.as_mut().unwrap()["status"] = json!("online");
    rejected(&runner, &["`status`"]);

    let mut error = fixture("26-get-runner-not-found");
    error.response_body.as_mut().unwrap()["errorCode"] = json!(0);
    rejected(&error, &["response 404 body", "`errorCode`"]);

    let mut stats = fixture("18-create-session");
    stats.response_body.as_mut().unwrap()["statistics"]["totalQueuedJobs"] = json!(0);
    rejected(&stats, &["at `/statistics`", "`totalQueuedJobs`"]);
}

#[test]
fn fields_the_protocol_requires_must_be_present() {
    for field in ["sessionId", "statistics", "messageQueueUrl", "messageQueueAccessToken"] {
        let mut session = fixture("18-create-session");
        session.response_body.as_mut().unwrap().as_object_mut().unwrap().remove(field);
        rejected(&session, &[&format!("\"{field}\" is a required property")]);
    }
    let mut stats = fixture("28-message-with-job-started");
    stats.response_body.as_mut().unwrap()["statistics"].as_object_mut().unwrap().remove("totalIdleRunners");
    rejected(&stats, &["\"totalIdleRunners\" is a required property"]);

    let mut registration = fixture("01-runner-registration-testserver");
    registration.response_body.as_mut().unwrap().as_object_mut().unwrap().remove("token");
    rejected(&registration, &["\"token\" is a required property"]);

    let mut owner = fixture("18-create-session");
    owner.request_body = Some(json!({"sessionId": "00000000-0000-0000-0000-000000000000"}));
    rejected(&owner, &["request body", "\"ownerName\" is a required property"]);
}

#[test]
fn wrong_types_statuses_paths_and_parameters_are_rejected() {
    let mut id = fixture("28-message-with-job-started");
    id.response_body.as_mut().unwrap()["messageId"] = json!("100000171");
    rejected(&id, &["/messageId", "integer"]);

    let mut kind = fixture("28-message-with-job-started");
    kind.response_body.as_mut().unwrap()["messageType"] = json!("RunnerScaleSetJobMessage");
    rejected(&kind, &["/messageType"]);

    let mut created = fixture("14-create-scale-set");
    created.status = 201;
    rejected(&created, &["status 201 is not documented", "200"]);

    let mut no_version = fixture("09-get-scale-set-by-name");
    no_version.path = no_version.path.replace("api-version=6.0-preview&", "");
    rejected(&no_version, &["required query parameter `api-version` is missing"]);

    let mut other_version = fixture("09-get-scale-set-by-name");
    other_version.path = other_version.path.replace("6.0-preview", "7.1");
    rejected(&other_version, &["api-version `7.1`"]);

    let mut unknown_query = fixture("03-get-runner");
    unknown_query.path.push_str("&expand=true");
    rejected(&unknown_query, &["unknown query parameter `expand`"]);

    let mut pool = fixture("03-get-runner");
    pool.path = pool.path.replace("/pools/0/", "/pools/1/");
    rejected(&pool, &["path parameter `poolId` = `1`"]);

    let mut path = fixture("03-get-runner");
    path.path = path.path.replace("/agents/", "/agent/");
    rejected(&path, &["unknown path"]);

    let mut no_body = fixture("16-delete-scale-set");
    no_body.response_body = Some(json!({}));
    rejected(&no_body, &["response 204 has a body"]);

    let mut poll = fixture("28-message-with-job-started");
    poll.status = 202;
    rejected(&poll, &["response 202 has a body"]);
}

#[test]
fn the_service_base_is_opaque_and_r3_is_accepted_with_or_without_api_v3() {
    let mut other_base = fixture("03-get-runner");
    other_base.path = other_base.path.replace("/tenant/123/", "/rest/");
    assert_eq!(contract().check(&other_base), Ok(()), "github.com's broker base is /rest/");
    let mut r3 = fixture("01-runner-registration-testserver");
    r3.path = "/actions/runner-registration".into();
    assert_eq!(contract().check(&r3), Ok(()));
    let groups = fixture("07-get-runner-group");
    assert!(groups.path.contains("/runnergroups/?"), "the trailing slash SS sends is kept in the fixture");
}
