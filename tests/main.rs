//! Integration tests of the whole thing: one binary, one module per concern.

mod buggify;
mod canaries;
mod cli;
mod corpus;
mod coverage;
mod data_plane;
mod determinism;
mod fuzz;
mod judge_dispatch;
mod properties;
mod scenarios;
mod summaries;
mod support;
mod timeline;
mod workflow;
