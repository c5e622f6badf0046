//! vmss-github-runner operator: hands out runner registrations, records busy runners
//! and scales an Azure VM Scale Set of self-hosted GitHub Actions runners.
//!
//! This crate is the shipped binary and its I/O: the HTTP API, the controller runtime
//! that awaits the ports, the Azure, GitHub and Storage Queue clients, telemetry and
//! `main`. The decisions it carries out are pure values in `operator-core`, re-exported
//! here under their module names. ARCHITECTURE.md draws the whole flow.

pub mod api;
pub mod azure;
pub mod cli;
pub mod config;
pub mod connect;
pub mod controller;
pub mod demo;
pub mod github;
pub mod learned;
pub mod listener;
pub mod metrics;
pub mod queue;
pub mod readiness;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod shutdown;
pub mod simulate;
pub mod telemetry;

pub use operator_core::{budget, demand, fleet, labels, model, pass, policy, ports, retry, targets, truth};
