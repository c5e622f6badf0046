//! vmss-github-runner operator: hands out runner registrations, records busy runners
//! and scales an Azure VM Scale Set of self-hosted GitHub Actions runners.

pub mod api;
pub mod azure;
pub mod budget;
pub mod cli;
pub mod config;
pub mod connect;
pub mod controller;
pub mod demo;
pub mod fleet;
pub mod github;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod ports;
pub mod queue;
pub mod retry;
pub mod run;
pub mod shutdown;
pub mod sim;
pub mod telemetry;
