//! A minimal client of the runner scale set API in plain reqwest, written from PROTOCOL.md
//! and not from the operator's code: what the fake's own tests drive it with.

#![allow(dead_code)] // each test file uses a different part

use fake_github::FakeGithub;
use reqwest::{header::HeaderMap, Method};
use serde_json::{json, Value};

pub const PAT: &str = "ghp_scaleset_test";

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The JSON body (a leading BOM stripped, as clients must).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.text.trim_start_matches('\u{feff}'))
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn type_name(&self) -> String {
        self.json()["typeName"].as_str().unwrap_or_default().to_owned()
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub api: String,
    pub config_url: String,
    /// The Actions service base from R3 (with its trailing slash).
    pub base: String,
    pub admin_token: String,
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn send(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req =
        http.request(method, url).header("content-type", "application/json").header("user-agent", "scaleset-test");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Answer { status, headers, text: resp.text().await.unwrap() }
}

/// R2 then R3 for `scope_path` (`o/r` or `org`): the registration token, then the admin
/// connection.
pub async fn registration_token(fake: &FakeGithub, scope_path: &str) -> String {
    let api = format!("{}/api/v3", fake.url());
    let r2 = if scope_path.contains('/') {
        format!("{api}/repos/{scope_path}/actions/runners/registration-token")
    } else {
        format!("{api}/orgs/{scope_path}/actions/runners/registration-token")
    };
    let resp = http()
        .post(r2)
        .header("authorization", format!("Bearer {PAT}"))
        .header("user-agent", "scaleset-test")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

pub async fn runner_registration(fake: &FakeGithub, token: &str, config_url: &str) -> Answer {
    let resp = http()
        .post(format!("{}/api/v3/actions/runner-registration", fake.url()))
        .header("authorization", format!("RemoteAuth {token}"))
        .header("content-type", "application/json")
        .header("user-agent", "scaleset-test")
        .body(format!("{}\n", json!({"url": config_url, "runner_event": "register"})))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Answer { status, headers, text: resp.text().await.unwrap() }
}

impl Client {
    pub async fn connect(fake: &FakeGithub, scope_path: &str) -> Client {
        fake.add_pat(PAT);
        let token = registration_token(fake, scope_path).await;
        let config_url = format!("{}/{scope_path}", fake.url());
        let r3 = runner_registration(fake, &token, &config_url).await;
        assert_eq!(r3.status, 201, "{}", r3.text);
        let body = r3.json();
        Client {
            http: http(),
            api: format!("{}/api/v3", fake.url()),
            config_url,
            base: body["url"].as_str().unwrap().to_owned(),
            admin_token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// An admin call: `path` joined onto the base, `api-version=6.0-preview` added.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.admin_with(method, path, body, Some(&self.admin_token.clone())).await
    }

    pub async fn admin_with(&self, method: Method, path: &str, body: Option<Value>, token: Option<&str>) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{}{sep}api-version=6.0-preview", self.base, path.trim_start_matches('/'));
        send(&self.http, method, &url, token, body).await
    }

    pub async fn create_set(&self, name: &str) -> Value {
        let body = json!({"name": name, "runnerGroupId": 1, "labels": [{"type": "System", "name": name}],
            "RunnerSetting": {"disableUpdate": true}, "createdOn": "0001-01-01T00:00:00Z"});
        let a = self.admin(Method::POST, "_apis/runtime/runnerscalesets", Some(body)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub async fn open_session(&self, set_id: u64) -> Session {
        let a = self.try_session(set_id).await;
        assert_eq!(a.status, 200, "{}", a.text);
        Session::from(&a.json())
    }

    pub async fn try_session(&self, set_id: u64) -> Answer {
        let body = json!({"sessionId": "00000000-0000-0000-0000-000000000000", "ownerName": "test-host"});
        self.admin(Method::POST, &format!("_apis/runtime/runnerscalesets/{set_id}/sessions"), Some(body)).await
    }

    pub async fn refresh(&self, set_id: u64, session: &Session) -> Answer {
        self.admin(Method::PATCH, &format!("_apis/runtime/runnerscalesets/{set_id}/sessions/{}", session.id), None)
            .await
    }

    pub async fn close(&self, set_id: u64, session: &Session) -> Answer {
        self.admin(Method::DELETE, &format!("_apis/runtime/runnerscalesets/{set_id}/sessions/{}", session.id), None)
            .await
    }

    /// M1 as SS sends it.
    pub async fn poll(&self, session: &Session, last: i64, capacity: u32) -> Answer {
        let url =
            if last > 0 { format!("{}&lastMessageId={last}", session.queue_url) } else { session.queue_url.clone() };
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json; api-version=6.0-preview")
            .header("authorization", format!("Bearer {}", session.token))
            .header("user-agent", "scaleset-test")
            .header("x-scalesetmaxcapacity", capacity.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Answer { status, headers, text: resp.text().await.unwrap() }
    }

    /// M2: `{path}/{id}` with the original query.
    pub async fn ack(&self, session: &Session, message_id: i64) -> Answer {
        let (path, query) = session.queue_url.split_once('?').unwrap();
        send(&self.http, Method::DELETE, &format!("{path}/{message_id}?{query}"), Some(&session.token), None).await
    }

    pub async fn jit(&self, set_id: u64, name: &str) -> Answer {
        let body = json!({"name": name, "workFolder": ""});
        self.admin(Method::POST, &format!("_apis/runtime/runnerscalesets/{set_id}/generatejitconfig"), Some(body)).await
    }
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub queue_url: String,
    pub token: String,
    pub statistics: Value,
}

impl From<&Value> for Session {
    fn from(v: &Value) -> Self {
        Session {
            id: v["sessionId"].as_str().unwrap().to_owned(),
            queue_url: v["messageQueueUrl"].as_str().unwrap().to_owned(),
            token: v["messageQueueAccessToken"].as_str().unwrap().to_owned(),
            statistics: v["statistics"].clone(),
        }
    }
}

/// A message: id, its job messages (the body decoded twice), statistics.
pub struct Message {
    pub id: i64,
    pub jobs: Vec<Value>,
    pub statistics: Value,
}

impl Message {
    pub fn parse(a: &Answer) -> Message {
        assert_eq!(a.status, 200, "{}", a.text);
        let v = a.json();
        assert_eq!(v["messageType"], "RunnerScaleSetJobMessages");
        let body = v["body"].as_str().expect("body is a JSON string");
        Message {
            id: v["messageId"].as_i64().unwrap(),
            jobs: serde_json::from_str(body).unwrap(),
            statistics: v["statistics"].clone(),
        }
    }

    pub fn types(&self) -> Vec<&str> {
        self.jobs.iter().map(|j| j["messageType"].as_str().unwrap()).collect()
    }
}

/// Polls (and acks) until a message arrives; panics after `tries` empty polls.
pub async fn next_message(c: &Client, s: &Session, last: &mut i64, capacity: u32) -> Message {
    for _ in 0..20 {
        let a = c.poll(s, *last, capacity).await;
        if a.status == 202 {
            continue;
        }
        let m = Message::parse(&a);
        *last = m.id;
        assert_eq!(c.ack(s, m.id).await.status, 204);
        return m;
    }
    panic!("no message after 20 polls")
}
