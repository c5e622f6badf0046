//! A simulated VM's call straight into a controller, without HTTP: what the script
//! would have seen over the API. A refusal carries the status the API would answer
//! ([`crate::controller::HookError::status`]); what the script retries is the
//! simulation's one rule (`Failure::is_retried`). `operator simulate` uses
//! [`DirectTransport`]; the fault suite calls [`call`] on whichever operator process
//! is alive.

use std::net::IpAddr;

use async_trait::async_trait;
use operator_sim::vms::{Answer, Failure, Registration, Request, VmTransport};

use crate::controller::{self, Controller};

/// Carry one request of the VM at `ip` to `controller`.
pub async fn call(controller: &Controller, ip: IpAddr, request: &Request) -> Result<Answer, Failure> {
    let result = match request {
        Request::Register => controller.register(ip).await.map(|r| Answer::Registration(as_read_by_boot_sh(r))),
        Request::JobStarted(job) => controller.job_started(ip, job.clone()).await.map(|_| Answer::Taken),
        Request::JobCompleted(job) => controller.job_completed(ip, job.clone()).await.map(|_| Answer::Taken),
        Request::RunnerExited { .. } => controller.runner_exited(ip).await.map(|_| Answer::Taken),
    };
    result.map_err(|e| Failure::Status { status: e.status(), code: e.kind().to_owned() })
}

/// The registration as the API sends it and boot.sh reads it.
fn as_read_by_boot_sh(registration: controller::Registration) -> Registration {
    match registration {
        controller::Registration::Park { retry_after } => {
            Registration::Park { retry_after_seconds: retry_after.as_secs() }
        }
        controller::Registration::Jit { runner_name, encoded_jit_config } => {
            Registration::Jit { runner_name, encoded_jit_config }
        }
        controller::Registration::Token { runner_name, url, token, args, .. } => {
            Registration::Token { runner_name, url, token, config_args: args }
        }
    }
}

/// One VM's transport to one controller that never dies.
pub struct DirectTransport {
    pub controller: Controller,
    pub ip: IpAddr,
}

#[async_trait]
impl VmTransport for DirectTransport {
    async fn send(&self, request: &Request) -> Result<Answer, Failure> {
        call(&self.controller, self.ip, request).await
    }
}
