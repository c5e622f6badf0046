//! One simulated VM boot: what cloud-init and the hook scripts do on a real runner.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;

use super::SimContext;
use crate::{memory::Boot, model::JobRef};

/// How a VM boot ended (when it was not killed).
#[derive(Debug, PartialEq, Eq)]
pub enum VmOutcome {
    RanJob(JobRef),
    RegistrationRefused(u16),
    RunnerRejected,
}

/// The operator's registration reply (see `api::RegistrationResponse`), as a VM reads it.
#[derive(serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum Reply {
    Jit { encoded_jit_config: String },
    Token { runner_name: String, token: String, config_args: Vec<String> },
}

pub(super) async fn run(boot: Boot, ctx: SimContext, in_job: Arc<AtomicBool>) -> VmOutcome {
    let client = reqwest::Client::builder()
        .local_address(boot.ip)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a loopback client builds");
    let base = format!("http://{}", ctx.operator);

    // cloud-init: ask for this boot's registration until it is handed out.
    let reply = loop {
        match client.post(format!("{base}/api/v1/registration")).json(&json!({})).send().await {
            Ok(r) if r.status() == StatusCode::OK => match r.json::<Reply>().await {
                Ok(reply) => break reply,
                Err(_) => return VmOutcome::RegistrationRefused(200),
            },
            // 403: the operator has not listed this VM yet; 503: it is recovering.
            Ok(r) if r.status().is_client_error() && r.status() != StatusCode::FORBIDDEN => {
                return VmOutcome::RegistrationRefused(r.status().as_u16());
            }
            _ => {}
        }
        ctx.stats.hook_retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let runner_id = match reply {
        Reply::Jit { encoded_jit_config } => ctx.github.start_with_jit(&encoded_jit_config),
        Reply::Token { runner_name, token, config_args } => {
            // config.sh --labels a,b ...
            let labels: Vec<String> = config_args
                .windows(2)
                .find(|w| w[0] == "--labels")
                .map(|w| w[1].split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            ctx.github.register_with_token(&token, &runner_name, &labels)
        }
    };
    let Some(runner_id) = runner_id else { return VmOutcome::RunnerRejected };

    // run.sh: wait for GitHub to assign a job.
    let job = loop {
        if let Some(job) = ctx.github.poll_job(runner_id) {
            break job;
        }
        tokio::time::sleep(ctx.poll).await;
    };
    in_job.store(true, Ordering::SeqCst);
    post_until_ok(&client, &ctx, &format!("{base}/api/v1/hooks/job-started"), json!(job)).await;
    tokio::time::sleep((ctx.durations)(&job)).await;
    post_until_ok(&client, &ctx, &format!("{base}/api/v1/hooks/job-completed"), json!(job)).await;
    ctx.github.finish_job(runner_id);
    in_job.store(false, Ordering::SeqCst);
    ctx.stats.jobs_run.fetch_add(1, Ordering::SeqCst);
    // run.sh has exited: the boot script reports it.
    post_until_ok(&client, &ctx, &format!("{base}/api/v1/hooks/runner-exited"), json!({"exit_code": 0})).await;
    VmOutcome::RanJob(job)
}

/// Hooks retry on 503 (and on transport errors), as the real hook scripts do.
async fn post_until_ok(client: &reqwest::Client, ctx: &SimContext, url: &str, body: serde_json::Value) {
    for _ in 0..100 {
        match client.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                tracing::warn!(status = r.status().as_u16(), url, "hook refused");
                return;
            }
            _ => {}
        }
        ctx.stats.hook_retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
