//! vmss-github-runner operator: hands out runner registrations, records busy runners
//! and scales an Azure VM Scale Set of self-hosted GitHub Actions runners.

pub mod config;
pub mod model;
pub mod policy;
pub mod memory;
pub mod ports;
pub mod fleet;
pub mod budget;
pub mod metrics;
pub mod controller;
pub mod api;
pub mod queue;
pub mod retry;
pub mod run;
pub mod telemetry;
pub mod sim;
pub mod demo;
pub mod cli;
pub mod shutdown;
